//! Decision cards in Telegram, against a fake Bot API started by each test
//! (real HTTP, every call recorded): one card per READY across replicas,
//! answers by button (allowed, refused, stale), edits on each change, 429
//! and outages retried without touching the decision, the poller lease
//! moving between replicas, and the grace period.

use crate::common::fake_telegram::{FakeTelegram, buttons};
use crate::common::{self, RedisServer, TestServer, within};
use std::sync::Arc;
use std::time::Duration;
use verdict::clock::{Clock, ManualClock};
use verdict::config::Config;
use verdict::domain::Role;
use verdict::notify::{ChatUser, Secret};
use verdict::proto;
use verdict::server::Overrides;

const BOT_TOKEN: &str = "123456:fake-bot-token";
const CHAT: i64 = -1_001_234_567_890;
/// A Telegram id that needs more than 32 bits.
const ALICE: i64 = 5_000_000_000;
const VICTOR: i64 = 7;
const STRANGER: i64 = 99;
const BOB: i64 = 6_000_000_001;

/// The default approval policy applies: the tests answer a restart
/// (PodCrashLooping, MEDIUM risk: one approval) except
/// `four_eyes_through_two_chat_users` (a HIGH-risk rollback: two).
fn config(redis: &RedisServer, tg: &FakeTelegram) -> Config {
    let mut c = common::config(Some(redis));
    c.notify_telegram_api_url = tg.url();
    c.notify_telegram_chat = Some(CHAT);
    c.notify_poll_timeout = Duration::from_secs(1);
    c.notify_retry_interval = Duration::from_millis(100);
    c.notify_after = Vec::new();
    c.notify_users = vec![
        ChatUser {
            telegram_id: Some(ALICE),
            slack_id: None,
            subject: "alice".into(),
            roles: [Role::Approver].into_iter().collect(),
        },
        ChatUser {
            telegram_id: Some(BOB),
            slack_id: None,
            subject: "bob".into(),
            roles: [Role::Approver].into_iter().collect(),
        },
        ChatUser {
            telegram_id: Some(VICTOR),
            slack_id: None,
            subject: "victor".into(),
            roles: [Role::Viewer].into_iter().collect(),
        },
    ];
    c
}

async fn replica(c: Config, clock: Option<Arc<dyn Clock>>) -> TestServer {
    let notify = c
        .notify_settings_with(Some(Secret::new(BOT_TOKEN)), None)
        .expect("notify settings");
    TestServer::start_overridden(
        c,
        Overrides {
            clock,
            notify: Some(notify),
            ..Overrides::default()
        },
    )
    .await
}

async fn get(s: &TestServer, token: &str) -> proto::Decision {
    s.decisions
        .clone()
        .get_decision(proto::GetDecisionRequest {
            token: token.into(),
        })
        .await
        .expect("get decision")
        .into_inner()
        .decision
        .expect("decision")
}

async fn first_card(tg: &FakeTelegram) -> (String, String) {
    let calls = tg
        .until("the card is sent", |c| {
            c.iter().any(|c| c.method == "sendMessage")
        })
        .await;
    let sent = calls
        .iter()
        .find(|c| c.method == "sendMessage")
        .expect("sent");
    buttons(sent).expect("the card has two buttons")
}

async fn counter(redis: &RedisServer, field: &str) -> i64 {
    let mut conn = redis.conn().await;
    let v: Option<i64> = redis::cmd("HGET")
        .arg("verdict:notify:{outbox}:counts")
        .arg(field)
        .query_async(&mut conn)
        .await
        .expect("hget");
    v.unwrap_or(0)
}

#[tokio::test]
async fn one_card_per_ready_across_two_replicas() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut a = replica(config(&redis, &tg), None).await;
    let mut b = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut a, "PodCrashLooping").await;
    let d = common::decide(&mut b, &id).await;
    let (approve, reject) = first_card(&tg).await;
    assert_eq!(approve.len(), 64);
    assert_ne!(approve, reject);
    let sent = tg.calls_of("sendMessage");
    assert_eq!(sent[0].token, BOT_TOKEN);
    assert_eq!(sent[0].body["chat_id"], CHAT);
    let text = sent[0].body["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&d.token) && text.contains("kubectl"),
        "{text}"
    );
    assert!(!text.contains(BOT_TOKEN));

    // A later change is edited in; by then both replicas have seen READY.
    a.decisions
        .approve_decision(proto::ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "grpc-user".into(),
            expected_version: d.version,
        })
        .await
        .expect("approve");
    tg.until("the card is edited", |c| {
        c.iter().any(|c| c.method == "editMessageText")
    })
    .await;
    assert_eq!(tg.calls_of("sendMessage").len(), 1, "one card, not two");
    assert_eq!(counter(&redis, "sent").await, 1);
}

#[tokio::test]
async fn approve_by_button_acts_as_the_mapped_user_once() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;

    let q = tg.press(ALICE, CHAT, 1, &approve);
    let answer = tg.answer_to(&q).await;
    assert!(answer.contains("EXECUTING"), "{answer}");
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Executing as i32);
    assert_eq!(now.decided_by, "alice");

    let calls = tg
        .until("the card shows the approval", |c| {
            c.iter().any(|c| {
                c.method == "editMessageText"
                    && c.body["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains("APPROVED by alice")
            })
        })
        .await;
    let edit = calls
        .iter()
        .rfind(|c| c.method == "editMessageText")
        .expect("edit");
    assert!(buttons(edit).is_none(), "buttons are removed once decided");

    let again = tg.press(ALICE, CHAT, 1, &approve);
    let answer = tg.answer_to(&again).await;
    assert!(answer.contains("no longer valid"), "{answer}");
}

#[tokio::test]
async fn reject_by_button() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (_, reject) = first_card(&tg).await;
    let q = tg.press(ALICE, CHAT, 1, &reject);
    let answer = tg.answer_to(&q).await;
    assert!(answer.contains("REJECTED"), "{answer}");
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Rejected as i32);
    assert_eq!(now.decided_by, "alice");
}

#[tokio::test]
async fn users_not_allowed_change_nothing() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;

    let q = tg.press(STRANGER, CHAT, 1, &approve);
    let answer = tg.answer_to(&q).await;
    assert!(answer.contains("Not allowed"), "{answer}");
    let q = tg.press(VICTOR, CHAT, 1, &approve);
    let answer = tg.answer_to(&q).await;
    assert!(answer.contains("victor may not approve"), "{answer}");
    let q = tg.press(ALICE, 42, 1, &approve);
    let answer = tg.answer_to(&q).await;
    assert!(answer.contains("not belong to this chat"), "{answer}");
    let now = get(&s, &d.token).await;
    assert_eq!(
        (now.state, now.version),
        (d.state, d.version),
        "nothing changed"
    );

    // The refused presses did not use the button up.
    let q = tg.press(ALICE, CHAT, 1, &approve);
    let answer = tg.answer_to(&q).await;
    assert!(answer.contains("EXECUTING"), "{answer}");
}

#[tokio::test]
async fn no_user_mapping_means_nobody_approves_from_chat() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut c = config(&redis, &tg);
    c.notify_users = Vec::new();
    let mut s = replica(c, None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;
    let q = tg.press(ALICE, CHAT, 1, &approve);
    assert!(tg.answer_to(&q).await.contains("Not allowed"));
    assert_eq!(get(&s, &d.token).await.version, d.version);
}

#[tokio::test]
async fn a_stale_card_says_the_decision_changed() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;
    s.decisions
        .reject_decision(proto::RejectDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "bob".into(),
            reason: "not now".into(),
            expected_version: d.version,
        })
        .await
        .expect("reject");
    let q = tg.press(ALICE, CHAT, 1, &approve);
    let answer = tg.answer_to(&q).await;
    assert!(
        answer.contains("decision changed") && answer.contains("REJECTED"),
        "{answer}"
    );
    assert_eq!(
        get(&s, &d.token).await.state,
        proto::DecisionState::Rejected as i32
    );
}

#[tokio::test]
async fn the_card_is_edited_on_each_change() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    first_card(&tg).await;
    s.decisions
        .approve_decision(proto::ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "bob".into(),
            expected_version: d.version,
        })
        .await
        .expect("approve");
    let has = |c: &[common::fake_telegram::Call], what: &str| {
        c.iter().any(|c| {
            c.method == "editMessageText" && c.body["text"].as_str().unwrap_or("").contains(what)
        })
    };
    tg.until("executing is shown", |c| has(c, "executing"))
        .await;
    s.decisions
        .complete_decision(proto::CompleteDecisionRequest {
            lease_id: String::new(),
            request_id: String::new(),
            token: d.token.clone(),
            success: true,
            output: "ok".into(),
        })
        .await
        .expect("complete");
    tg.until("completed is shown", |c| has(c, "completed"))
        .await;
    assert_eq!(tg.calls_of("sendMessage").len(), 1);
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    tg.fail(
        "sendMessage",
        429,
        serde_json::json!({
            "ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": { "retry_after": 1 }
        }),
    );
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    common::decide(&mut s, &id).await;
    let calls = tg
        .until("the card is sent after the 429", |c| {
            c.iter().filter(|c| c.method == "sendMessage").count() >= 2
        })
        .await;
    let sends: Vec<_> = calls.iter().filter(|c| c.method == "sendMessage").collect();
    // A lower bound: the retry waited at least as long as Telegram said.
    assert!(sends[1].at.duration_since(sends[0].at) >= Duration::from_secs(1));
    assert_eq!(counter(&redis, "rate_limited").await, 1);
}

#[tokio::test]
async fn a_chat_api_down_delays_only_its_card() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    for _ in 0..3 {
        tg.fail(
            "sendMessage",
            502,
            serde_json::json!({ "ok": false, "description": "Bad Gateway" }),
        );
    }
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    // The decision is READY whatever the chat API does.
    let d = common::decide(&mut s, &id).await;
    assert_eq!(d.state, proto::DecisionState::Ready as i32);
    tg.until("the card is delivered once the API is back", |c| {
        c.iter().filter(|c| c.method == "sendMessage").count() >= 4
    })
    .await;
    assert_eq!(counter(&redis, "failed").await, 3);
    assert_eq!(counter(&redis, "sent").await, 1);
}

#[tokio::test]
async fn the_poller_lease_moves_without_handling_an_update_twice() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut a = replica(config(&redis, &tg), None).await;
    // A polls first, so it holds the lease.
    tg.until("A polls", |c| c.iter().any(|c| c.method == "getUpdates"))
        .await;
    let b = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut a, "PodCrashLooping").await;
    let d = common::decide(&mut a, &id).await;
    let (approve, _) = first_card(&tg).await;
    let q1 = tg.press(STRANGER, CHAT, 1, &approve);
    tg.answer_to(&q1).await;
    a.stop().await;
    // B takes the lease over and handles the next press, not the first.
    let q2 = tg.press(ALICE, CHAT, 1, &approve);
    let answer = tg.answer_to(&q2).await;
    assert!(answer.contains("EXECUTING"), "{answer}");
    let answers = tg.calls_of("answerCallbackQuery");
    for q in [&q1, &q2] {
        assert_eq!(
            answers
                .iter()
                .filter(|c| c.body["callback_query_id"] == **q)
                .count(),
            1,
            "{q} answered once"
        );
    }
    assert_eq!(get(&b, &d.token).await.decided_by, "alice");
}

#[tokio::test]
async fn the_grace_period_pages_nobody_for_an_incident_that_resolves_itself() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut c = config(&redis, &tg);
    c.notify_after = vec!["P2=2m".into()];
    let mut s = replica(c, Some(clock.clone())).await;
    let quiet = common::create_incident(&mut s, "FlappingAlert").await;
    common::decide(&mut s, &quiet).await;
    s.incidents
        .update_incident_status(proto::UpdateIncidentStatusRequest {
            request_id: String::new(),
            id: quiet.clone(),
            status: proto::IncidentStatus::Resolved as i32,
            actor: "alertmanager".into(),
            note: "resolved by itself".into(),
        })
        .await
        .expect("resolve");
    let loud = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &loud).await;
    let mut events = redis.key_events("verdict:notify:{outbox}:counts").await;
    clock.advance(chrono::Duration::minutes(3));
    let calls = tg
        .until("the other incident's card is sent", |c| {
            c.iter().any(|c| c.method == "sendMessage")
        })
        .await;
    within(Duration::from_secs(30), "self_resolved is counted", async {
        while counter(&redis, "self_resolved").await < 1 {
            events
                .next("hincrby", Duration::from_secs(30), "a counter changes")
                .await;
        }
    })
    .await;
    let sent: Vec<_> = calls.iter().filter(|c| c.method == "sendMessage").collect();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].body["text"]
            .as_str()
            .unwrap_or("")
            .contains(&d.token)
    );
}

#[tokio::test]
async fn the_webhook_checks_its_secret_token() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut c = config(&redis, &tg);
    c.notify_telegram_updates = verdict::notify::Updates::Webhook;
    let notify = c
        .notify_settings_with(
            Some(Secret::new(BOT_TOKEN)),
            Some(Secret::new("hook-secret")),
        )
        .expect("notify settings");
    let mut s = TestServer::start_overridden(
        c,
        Overrides {
            notify: Some(notify),
            ..Overrides::default()
        },
    )
    .await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;
    let update = serde_json::json!({
        "update_id": 1,
        "callback_query": {
            "id": "cb-hook",
            "from": { "id": ALICE },
            "message": { "message_id": 1, "chat": { "id": CHAT } },
            "data": approve,
        }
    });
    let url = format!("{}/api/v1/telegram", s.http_base());
    let http = reqwest::Client::new();
    for secret in [None, Some("wrong"), Some("hook-secret-but-longer")] {
        let mut req = http.post(&url).body(update.to_string());
        if let Some(v) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", v);
        }
        let status = req.send().await.expect("webhook answers").status();
        assert_eq!(status.as_u16(), 401, "{secret:?}");
    }
    assert_eq!(
        get(&s, &d.token).await.version,
        d.version,
        "nothing changed"
    );
    assert!(
        tg.calls_of("getUpdates").is_empty(),
        "no polling with a webhook"
    );
    let status = http
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", "hook-secret")
        .body(update.to_string())
        .send()
        .await
        .expect("webhook answers")
        .status();
    assert_eq!(status.as_u16(), 200);
    assert!(tg.answer_to("cb-hook").await.contains("EXECUTING"));
    assert_eq!(get(&s, &d.token).await.decided_by, "alice");
}

/// A HIGH-risk proposal (a rollback) needs two distinct approvers: the
/// first press is recorded and the card is re-issued with fresh buttons
/// for the new version; a second approver's press executes it.
#[tokio::test]
async fn four_eyes_through_two_chat_users() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "HighErrorRate").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;

    let first = tg.answer_to(&tg.press(ALICE, CHAT, 1, &approve)).await;
    assert!(first.contains("1 of 2"), "{first}");
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Ready as i32);
    assert_eq!(now.approvals.len(), 1);

    let calls = tg
        .until("the card is re-issued with buttons", |c| {
            c.iter()
                .any(|c| c.method == "editMessageText" && buttons(c).is_some())
        })
        .await;
    let (again, _) = calls
        .iter()
        .rev()
        .filter(|c| c.method == "editMessageText")
        .find_map(buttons)
        .expect("fresh buttons");
    assert_ne!(again, approve, "buttons are bound to a version");

    let second = tg.answer_to(&tg.press(BOB, CHAT, 1, &again)).await;
    assert!(second.contains("EXECUTING"), "{second}");
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Executing as i32);
    let who: Vec<&str> = now.approvals.iter().map(|a| a.subject.as_str()).collect();
    assert_eq!(who, ["alice", "bob"]);
}

/// A refused press does not use the button up: the first approver of a
/// four-eyes decision pressing again is told no (the policy wants a second,
/// different approver), and the same button then works for that approver.
#[tokio::test]
async fn a_refused_press_leaves_the_button_to_an_allowed_user() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "HighErrorRate").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;
    let first = tg.answer_to(&tg.press(ALICE, CHAT, 1, &approve)).await;
    assert!(first.contains("1 of 2"), "{first}");
    let calls = tg
        .until("the card is re-issued with buttons", |c| {
            c.iter()
                .any(|c| c.method == "editMessageText" && buttons(c).is_some())
        })
        .await;
    let (again, _) = calls
        .iter()
        .rev()
        .filter(|c| c.method == "editMessageText")
        .find_map(buttons)
        .expect("fresh buttons");

    let refused = tg.answer_to(&tg.press(ALICE, CHAT, 1, &again)).await;
    assert!(
        refused.contains("Not allowed") && refused.contains("already approved"),
        "{refused}"
    );
    let unchanged = get(&s, &d.token).await;
    assert_eq!(unchanged.approvals.len(), 1, "nothing changed");

    let second = tg.answer_to(&tg.press(BOB, CHAT, 1, &again)).await;
    assert!(second.contains("EXECUTING"), "{second}");
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Executing as i32);
    assert_eq!(now.decided_by, "bob");
    // Used by a successful answer: it works no more.
    let late = tg.answer_to(&tg.press(BOB, CHAT, 1, &again)).await;
    assert!(late.contains("no longer valid"), "{late}");
}

/// The card update is enqueued by the script that writes READY, not by the
/// writer's notifier afterwards: a replica whose notifier never runs (it
/// died right after the write) loses no card; a replica started later
/// sends it, once.
#[tokio::test]
async fn a_card_written_by_a_replica_that_died_is_sent_once() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let c = config(&redis, &tg);
    let notify = c
        .notify_settings_with(Some(Secret::new(BOT_TOKEN)), None)
        .expect("notify settings");
    let mut a = TestServer::start_overridden(
        c,
        Overrides {
            notify: Some(notify),
            notifier_idle: true,
            ..Overrides::default()
        },
    )
    .await;
    let id = common::create_incident(&mut a, "PodCrashLooping").await;
    let d = common::decide(&mut a, &id).await;
    a.stop().await;
    assert!(tg.calls_of("sendMessage").is_empty(), "A sent nothing");

    // B starts after the change: its change feed never sees READY.
    let b = replica(config(&redis, &tg), None).await;
    let (approve, _) = first_card(&tg).await;
    let answer = tg.answer_to(&tg.press(ALICE, CHAT, 1, &approve)).await;
    assert!(answer.contains("EXECUTING"), "{answer}");
    tg.until("the card shows the approval", |c| {
        c.iter().any(|c| {
            c.method == "editMessageText"
                && c.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("APPROVED by alice")
        })
    })
    .await;
    assert_eq!(tg.calls_of("sendMessage").len(), 1, "one card");
    assert_eq!(get(&b, &d.token).await.decided_by, "alice");
}

/// The executor's verification (written on the decision after the run)
/// edits the card: the person who approved sees whether the fix held.
#[tokio::test]
async fn the_card_shows_the_verification() {
    use verdict::domain::{DecisionState, Verification, VerificationState};
    use verdict::store::Store;
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;
    let answer = tg.answer_to(&tg.press(ALICE, CHAT, 1, &approve)).await;
    assert!(answer.contains("EXECUTING"), "{answer}");

    // Written as the executor writes it: EXECUTING → COMPLETED with the
    // verification, one compare-and-set through the store.
    let store = verdict::store::RedisStore::new(
        &redis.url(),
        verdict::store::redis::PoolConfig {
            size: 2,
            wait: Duration::from_secs(2),
            ..Default::default()
        },
        Default::default(),
    )
    .expect("store")
    .with_chat_outbox();
    let token = verdict::domain::Token::parse(&d.token).expect("token");
    let cur = store
        .get_decision(&token)
        .await
        .expect("read")
        .expect("decision");
    assert_eq!(cur.state, DecisionState::Executing);
    let now = chrono::Utc::now();
    let mut next = cur.clone();
    next.version += 1;
    next.updated_at = now;
    next.state = DecisionState::Completed;
    next.completed_at = Some(now);
    next.verification = Some(Verification {
        state: VerificationState::Verified,
        summary: "incident resolved 40s after the rollout".into(),
        until: now,
        at: now,
    });
    let written = store
        .update_decision(cur.version, &next, &verdict::stats::StatDelta::none(), None)
        .await
        .expect("write");
    assert!(matches!(written, verdict::store::Cas::Written));
    let calls = tg
        .until("the card shows the verification", |c| {
            c.iter().any(|c| {
                c.method == "editMessageText"
                    && c.body["text"].as_str().unwrap_or("").contains("VERIFIED")
            })
        })
        .await;
    let edit = calls
        .iter()
        .rfind(|c| c.method == "editMessageText")
        .expect("edit");
    let text = edit.body["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("completed") && text.contains("incident resolved 40s after"),
        "{text}"
    );
}

/// The notifier's counters are in `/metrics`: cards sent and edited,
/// presses approved, refused and stale, by channel.
#[tokio::test]
async fn counters_show_in_metrics() {
    let redis = RedisServer::start();
    let tg = FakeTelegram::start().await;
    let mut s = replica(config(&redis, &tg), None).await;
    let mut events = redis.key_events("verdict:notify:{outbox}:counts").await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&tg).await;
    // The metric moves before the store's counter, so once that moved
    // the scrape shows it.
    within(Duration::from_secs(30), "sent is counted", async {
        while counter(&redis, "sent").await < 1 {
            events
                .next("hincrby", Duration::from_secs(30), "a counter changes")
                .await;
        }
    })
    .await;
    tg.answer_to(&tg.press(STRANGER, CHAT, 1, &approve)).await;
    tg.answer_to(&tg.press(ALICE, CHAT, 1, &approve)).await;
    tg.answer_to(&tg.press(ALICE, CHAT, 1, &approve)).await;
    within(Duration::from_secs(30), "the edit is counted", async {
        while counter(&redis, "edited").await < 1 {
            events
                .next("hincrby", Duration::from_secs(30), "a counter changes")
                .await;
        }
    })
    .await;
    let text = reqwest::get(format!("{}/metrics", s.http_base()))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let value = |name: &str, outcome: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains("channel=\"telegram\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(value("verdict_notify_cards_total", "sent"), 1.0, "{text}");
    assert!(
        value("verdict_notify_cards_total", "edited") >= 1.0,
        "{text}"
    );
    assert_eq!(value("verdict_notify_presses_total", "refused"), 1.0);
    assert_eq!(value("verdict_notify_presses_total", "approved"), 1.0);
    assert_eq!(value("verdict_notify_presses_total", "stale"), 1.0);
}

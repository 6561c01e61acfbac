//! Decision cards in Slack, against a fake Web API started by each test
//! (real HTTP, every call recorded), and button presses sent to the
//! interactivity route signed as Slack signs them: one card per READY
//! across replicas, approve and reject by button, users not allowed,
//! wrong / missing / stale signatures refused with nothing changed, the
//! card updated on each change, Slack's `Retry-After` honoured.

use crate::common::fake_slack::{self, FakeSlack, buttons, press_body, sign};
use crate::common::{self, RedisServer, TestServer};
use std::time::Duration;
use verdict::config::Config;
use verdict::domain::Role;
use verdict::notify::{ChatUser, Secret};
use verdict::proto;
use verdict::server::Overrides;

const BOT_TOKEN: &str = "xoxb-fake-bot-token";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const CHANNEL: &str = "C0INCIDENTS";
const ALICE: &str = "U0ALICE";
const VICTOR: &str = "U0VICTOR";
const STRANGER: &str = "U0STRANGER";
const PATH: &str = "/api/v1/slack/interactions";

/// Slack only: alice approves, victor only views. The tests answer a
/// restart (PodCrashLooping, MEDIUM risk: one approval).
fn config(redis: &RedisServer, slack: &FakeSlack) -> Config {
    let mut c = common::config(Some(redis));
    c.notify_slack_api_url = slack.url();
    c.notify_slack_channel = Some(CHANNEL.into());
    c.notify_retry_interval = Duration::from_millis(100);
    c.notify_after = Vec::new();
    let user = |id: &str, subject: &str, role: Role| ChatUser {
        telegram_id: None,
        slack_id: Some(id.into()),
        subject: subject.into(),
        roles: [role].into_iter().collect(),
    };
    c.notify_users = vec![
        user(ALICE, "alice", Role::Approver),
        user(VICTOR, "victor", Role::Viewer),
    ];
    c
}

async fn replica(c: Config) -> TestServer {
    let notify = c
        .notify_settings_with_all(
            None,
            None,
            Some(Secret::new(BOT_TOKEN)),
            Some(Secret::new(SIGNING_SECRET)),
        )
        .expect("notify settings");
    TestServer::start_overridden(
        c,
        Overrides {
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

async fn first_card(slack: &FakeSlack) -> (String, String) {
    let calls = slack
        .until("the card is posted", |c| {
            c.iter().any(|c| c.method == "chat.postMessage")
        })
        .await;
    let posted = calls
        .iter()
        .find(|c| c.method == "chat.postMessage")
        .expect("posted");
    buttons(posted).expect("the card has two buttons")
}

/// Sends `body` to the interactivity route with the given headers; the
/// status.
async fn send(s: &TestServer, body: &str, timestamp: Option<i64>, signature: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("{}{PATH}", s.http_base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(t) = timestamp {
        request = request.header("x-slack-request-timestamp", t.to_string());
    }
    if let Some(sig) = signature {
        request = request.header("x-slack-signature", sig);
    }
    request
        .send()
        .await
        .expect("interactivity request")
        .status()
        .as_u16()
}

/// `user` presses `button` in `channel`, signed now; the ephemeral reply
/// (the `nth` one the fake has seen, from 1).
async fn press(
    s: &TestServer,
    slack: &FakeSlack,
    user: &str,
    channel: &str,
    button: &str,
    nth: usize,
) -> String {
    let body = press_body(user, channel, button);
    let now = chrono::Utc::now().timestamp();
    let status = send(s, &body, Some(now), Some(&sign(SIGNING_SECRET, now, &body))).await;
    assert_eq!(status, 200, "a signed press is answered at once");
    let calls = slack
        .until("the ephemeral reply", |c| {
            c.iter()
                .filter(|c| c.method == "chat.postEphemeral")
                .count()
                >= nth
        })
        .await;
    let reply = calls
        .iter()
        .filter(|c| c.method == "chat.postEphemeral")
        .nth(nth - 1)
        .expect("reply");
    assert_eq!(reply.body["user"], user, "only the presser sees it");
    assert_eq!(reply.body["channel"], channel);
    reply.body["text"].as_str().unwrap_or_default().to_string()
}

fn updated_with(c: &[fake_slack::Call], what: &str) -> bool {
    c.iter()
        .any(|c| c.method == "chat.update" && c.body["text"].as_str().unwrap_or("").contains(what))
}

#[tokio::test]
async fn one_card_per_ready_across_two_replicas_updated_on_each_change() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    let mut a = replica(config(&redis, &slack)).await;
    let mut b = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut a, "PodCrashLooping").await;
    let d = common::decide(&mut b, &id).await;
    let (approve, reject) = first_card(&slack).await;
    assert_eq!(approve.len(), 64);
    assert_ne!(approve, reject);
    let posted = slack.calls_of("chat.postMessage");
    assert_eq!(posted[0].auth, format!("Bearer {BOT_TOKEN}"));
    assert_eq!(posted[0].body["channel"], CHANNEL);
    let text = posted[0].body["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&d.token) && text.contains("kubectl"),
        "{text}"
    );
    assert!(!text.contains(BOT_TOKEN) && !text.contains(&approve));
    assert_eq!(posted[0].body["blocks"][0]["text"]["type"], "plain_text");

    a.decisions
        .approve_decision(proto::ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "bob".into(),
            expected_version: d.version,
        })
        .await
        .expect("approve");
    let calls = slack
        .until("executing is shown", |c| updated_with(c, "executing"))
        .await;
    let update = calls
        .iter()
        .find(|c| c.method == "chat.update")
        .expect("update");
    // The fake's first call (the post) got this ts.
    assert_eq!(
        update.body["ts"], "1700000000.000001",
        "the posted card is updated"
    );
    assert_eq!(update.body["channel"], CHANNEL);
    assert!(
        buttons(update).is_none(),
        "buttons are removed once decided"
    );
    b.decisions
        .complete_decision(proto::CompleteDecisionRequest {
            lease_id: String::new(),
            request_id: String::new(),
            token: d.token.clone(),
            success: true,
            output: "ok".into(),
        })
        .await
        .expect("complete");
    slack
        .until("completed is shown", |c| updated_with(c, "completed"))
        .await;
    assert_eq!(
        slack.calls_of("chat.postMessage").len(),
        1,
        "one card, not two"
    );
}

#[tokio::test]
async fn approve_by_button_acts_as_the_mapped_user_once() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    let mut s = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&slack).await;

    let reply = press(&s, &slack, ALICE, CHANNEL, &approve, 1).await;
    assert!(reply.contains("EXECUTING"), "{reply}");
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Executing as i32);
    assert_eq!(now.decided_by, "alice");
    let calls = slack
        .until("the card shows the approval", |c| {
            updated_with(c, "APPROVED by alice")
        })
        .await;
    let update = calls
        .iter()
        .rfind(|c| c.method == "chat.update")
        .expect("update");
    assert!(
        buttons(update).is_none(),
        "buttons are removed once decided"
    );

    let again = press(&s, &slack, ALICE, CHANNEL, &approve, 2).await;
    assert!(again.contains("no longer valid"), "{again}");
}

#[tokio::test]
async fn reject_by_button() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    let mut s = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (_, reject) = first_card(&slack).await;
    let reply = press(&s, &slack, ALICE, CHANNEL, &reject, 1).await;
    assert!(reply.contains("REJECTED"), "{reply}");
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Rejected as i32);
    assert_eq!(now.decided_by, "alice");
    slack
        .until("the card shows the rejection", |c| {
            updated_with(c, "REJECTED by alice")
        })
        .await;
}

#[tokio::test]
async fn users_not_allowed_get_an_ephemeral_no_and_change_nothing() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    let mut s = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&slack).await;

    let reply = press(&s, &slack, STRANGER, CHANNEL, &approve, 1).await;
    assert!(
        reply.contains("Not allowed") && reply.contains("Slack"),
        "{reply}"
    );
    let reply = press(&s, &slack, VICTOR, CHANNEL, &approve, 2).await;
    assert!(reply.contains("victor may not approve"), "{reply}");
    let reply = press(&s, &slack, ALICE, "C0ELSEWHERE", &approve, 3).await;
    assert!(reply.contains("not belong to this chat"), "{reply}");
    let now = get(&s, &d.token).await;
    assert_eq!(
        (now.state, now.version),
        (d.state, d.version),
        "nothing changed"
    );

    // The refused presses did not use the button up.
    let reply = press(&s, &slack, ALICE, CHANNEL, &approve, 4).await;
    assert!(reply.contains("EXECUTING"), "{reply}");
}

#[tokio::test]
async fn wrong_missing_or_stale_signatures_are_refused() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    let mut s = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&slack).await;
    let body = press_body(ALICE, CHANNEL, &approve);
    let now = chrono::Utc::now().timestamp();

    let wrong = sign("not-the-signing-secret", now, &body);
    assert_eq!(
        send(&s, &body, Some(now), Some(&wrong)).await,
        401,
        "wrong secret"
    );
    let other_body = press_body(ALICE, CHANNEL, "x");
    let for_other = sign(SIGNING_SECRET, now, &other_body);
    assert_eq!(
        send(&s, &body, Some(now), Some(&for_other)).await,
        401,
        "another body's"
    );
    assert_eq!(send(&s, &body, Some(now), None).await, 401, "no signature");
    let signed = sign(SIGNING_SECRET, now, &body);
    assert_eq!(
        send(&s, &body, None, Some(&signed)).await,
        401,
        "no timestamp"
    );
    let old = now - 6 * 60;
    let stale = sign(SIGNING_SECRET, old, &body);
    assert_eq!(
        send(&s, &body, Some(old), Some(&stale)).await,
        401,
        "older than five minutes"
    );

    let unchanged = get(&s, &d.token).await;
    assert_eq!((unchanged.state, unchanged.version), (d.state, d.version));
    assert!(
        slack.calls_of("chat.postEphemeral").is_empty(),
        "no press was acted on"
    );
    // The button is still there for a properly signed press.
    let reply = press(&s, &slack, ALICE, CHANNEL, &approve, 1).await;
    assert!(reply.contains("EXECUTING"), "{reply}");
}

#[tokio::test]
async fn slacks_retry_after_is_honoured() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    // Longer than the one-second spacing per channel, so only the header
    // explains the wait.
    slack.fail("chat.postMessage", 429, Some(2));
    let mut s = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    assert_eq!(
        d.state,
        proto::DecisionState::Ready as i32,
        "never in the way"
    );
    let calls = slack
        .until("the card is posted after the 429", |c| {
            c.iter().filter(|c| c.method == "chat.postMessage").count() >= 2
        })
        .await;
    let posts: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    // A lower bound: the retry waited at least as long as Slack said.
    assert!(posts[1].at.duration_since(posts[0].at) >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_stale_card_gets_an_ephemeral_decision_changed() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    let mut s = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let d = common::decide(&mut s, &id).await;
    let (approve, _) = first_card(&slack).await;
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
    let reply = press(&s, &slack, ALICE, CHANNEL, &approve, 1).await;
    assert!(
        reply.contains("decision changed") && reply.contains("REJECTED"),
        "{reply}"
    );
    let now = get(&s, &d.token).await;
    assert_eq!(now.state, proto::DecisionState::Rejected as i32);
    assert_eq!(now.decided_by, "bob", "the press changed nothing");
    // The card shows the current state, without buttons.
    let calls = slack
        .until("the card shows the rejection", |c| {
            updated_with(c, "REJECTED by bob")
        })
        .await;
    let update = calls
        .iter()
        .rfind(|c| c.method == "chat.update")
        .expect("update");
    assert!(buttons(update).is_none());
}

#[tokio::test]
async fn slack_down_then_back_delivers_the_card_later() {
    let redis = RedisServer::start();
    let slack = FakeSlack::start().await;
    for _ in 0..3 {
        slack.fail("chat.postMessage", 503, None);
    }
    let mut s = replica(config(&redis, &slack)).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    // The decision is READY whatever Slack does.
    let d = common::decide(&mut s, &id).await;
    assert_eq!(d.state, proto::DecisionState::Ready as i32);
    let calls = slack
        .until("the card is posted once Slack is back", |c| {
            c.iter().filter(|c| c.method == "chat.postMessage").count() >= 4
        })
        .await;
    let posted = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .nth(3)
        .expect("the fourth post");
    let (approve, _) = buttons(posted).expect("buttons");
    let unchanged = get(&s, &d.token).await;
    assert_eq!(
        (unchanged.state, unchanged.version),
        (d.state, d.version),
        "the outage changed nothing"
    );
    let reply = press(&s, &slack, ALICE, CHANNEL, &approve, 1).await;
    assert!(reply.contains("EXECUTING"), "{reply}");
    assert_eq!(slack.calls_of("chat.postMessage").len(), 4, "one card");
}

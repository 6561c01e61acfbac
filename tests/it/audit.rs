//! The audit trail against a real Redis (and the memory store): every
//! change leaves exactly one event, written with the change; refusals are
//! recorded and change nothing; the chains verify, and an edited or deleted
//! event is found at that event; two replicas keep each chain whole.

use crate::common::{self, RedisServer, TestServer, create_incident, decide};
use std::sync::Arc;
use verdict::audit::{Action, DEVELOPMENT_KEY, Event, Signer};
use verdict::clock::SystemClock;
use verdict::manager::{AuditFilter, AuditLog};
use verdict::proto::{
    ApproveDecisionRequest, CompleteDecisionRequest, IngestSignalsRequest, RejectDecisionRequest,
    UpdateIncidentStatusRequest,
};
use verdict::store::redis::PoolConfig;
use verdict::store::{RedisStore, Retention, Store};

/// A reader of the trail in `redis` (with the key the test servers use).
fn trail(redis: &RedisServer) -> AuditLog {
    let store = RedisStore::new(
        &redis.url(),
        PoolConfig {
            size: 2,
            wait: std::time::Duration::from_secs(2),
            ..Default::default()
        },
        Retention::default(),
    )
    .expect("store")
    .with_audit(signer());
    AuditLog::new(Arc::new(store) as Arc<dyn Store>, Arc::new(SystemClock))
}

fn signer() -> Signer {
    Signer::new(DEVELOPMENT_KEY)
}

/// Every event kept, oldest first.
async fn events(log: &AuditLog) -> Vec<Event> {
    let page = log
        .list(&AuditFilter::default(), None, 1000)
        .await
        .expect("list");
    page.events.into_iter().map(|(_, e)| e).collect()
}

fn actions(events: &[Event]) -> Vec<Action> {
    events.iter().map(|e| e.action).collect()
}

/// The events a call added: runs it, returns what appeared after the
/// events already there.
async fn added<F: std::future::Future<Output = ()>>(log: &AuditLog, call: F) -> Vec<Event> {
    let before = events(log).await.len();
    call.await;
    events(log).await.split_off(before)
}

#[tokio::test]
async fn every_mutating_rpc_leaves_exactly_its_events() {
    let redis = RedisServer::start();
    let mut cfg = common::config(Some(&redis));
    // A background decision would add events at a time of its own.
    cfg.ingest.auto_decide = false;
    let mut s = TestServer::start(cfg).await;
    let log = trail(&redis);

    // (what the call is, the events it must leave, in order)
    let created = added(&log, async {
        create_incident(&mut s, "PodCrashLooping").await;
    })
    .await;
    assert_eq!(actions(&created), [Action::IncidentCreated]);
    let id = created[0].incident.clone().expect("incident id");
    assert_eq!(created[0].rpc, "CreateIncident");
    assert_eq!(created[0].subject, "anonymous");
    assert_eq!(created[0].version_after, Some(1));

    let status = added(&log, async {
        s.incidents
            .update_incident_status(UpdateIncidentStatusRequest {
                request_id: String::new(),
                id: id.clone(),
                status: verdict::proto::IncidentStatus::Investigating as i32,
                actor: "alice".into(),
                note: "looking".into(),
            })
            .await
            .expect("status");
    })
    .await;
    assert_eq!(actions(&status), [Action::StatusChanged]);
    assert_eq!(status[0].actor, "alice");
    assert_eq!(
        (status[0].version_before, status[0].version_after),
        (Some(1), Some(2))
    );

    // Issuing a decision and its proposal are two changes: two events.
    let mut token = String::new();
    let issued = added(&log, async {
        token = decide(&mut s, &id).await.token;
    })
    .await;
    assert_eq!(
        actions(&issued),
        [Action::DecisionIssued, Action::ProposalReady]
    );
    assert!(
        issued
            .iter()
            .all(|e| e.token.as_deref() == Some(token.as_str()))
    );

    let approved = added(&log, async {
        s.decisions
            .approve_decision(ApproveDecisionRequest {
                token: token.clone(),
                actor: "bob".into(),
                ..Default::default()
            })
            .await
            .expect("approve");
    })
    .await;
    assert_eq!(actions(&approved), [Action::Approved]);
    assert_eq!(approved[0].actor, "bob");
    let shown = s
        .decisions
        .get_decision(verdict::proto::GetDecisionRequest {
            token: token.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .decision
        .and_then(|d| d.proposal)
        .map(|p| p.kubectl)
        .expect("proposal");
    assert_eq!(approved[0].detail, shown, "the command exactly as shown");

    let completed = added(&log, async {
        s.decisions
            .complete_decision(CompleteDecisionRequest {
                lease_id: String::new(),
                request_id: String::new(),
                token: token.clone(),
                success: true,
                output: "done".into(),
            })
            .await
            .expect("complete");
    })
    .await;
    assert_eq!(actions(&completed), [Action::ExecutionCompleted]);

    // A second decision, rejected.
    let other = create_incident(&mut s, "HighLatencyP99").await;
    let t2 = decide(&mut s, &other).await.token;
    let rejected = added(&log, async {
        s.decisions
            .reject_decision(RejectDecisionRequest {
                token: t2.clone(),
                actor: "carol".into(),
                reason: "not now".into(),
                ..Default::default()
            })
            .await
            .expect("reject");
    })
    .await;
    assert_eq!(actions(&rejected), [Action::Rejected]);
    assert!(rejected[0].detail.contains("not now"));

    let ingested = added(&log, async {
        s.incidents
            .ingest_signals(IngestSignalsRequest {
                signals: vec![verdict::proto::Signal {
                    alert_name: "DiskFull".into(),
                    labels: [("incident_key".to_string(), "disk".to_string())].into(),
                    status: verdict::proto::SignalStatus::Firing as i32,
                    ..Default::default()
                }],
            })
            .await
            .expect("ingest");
    })
    .await;
    assert_eq!(actions(&ingested)[0], Action::IncidentCreated);
    assert!(ingested.iter().all(|e| e.rpc == "IngestSignals"));

    let report = log.verify(signer(), None).await.expect("verify");
    assert!(report.is_whole(), "{report:?}");
    assert_eq!(report.events, events(&log).await.len() as u64);
}

#[tokio::test]
async fn an_approval_race_on_two_replicas_has_one_approval_and_the_rest_refused() {
    let redis = RedisServer::start();
    let mut a = TestServer::start(common::config(Some(&redis))).await;
    let b = TestServer::start(common::config(Some(&redis))).await;
    let id = create_incident(&mut a, "PodCrashLooping").await;
    let token = decide(&mut a, &id).await.token;
    let calls = (0..8).map(|i| {
        let mut c = if i % 2 == 0 {
            a.decisions.clone()
        } else {
            b.decisions.clone()
        };
        let token = token.clone();
        async move {
            c.approve_decision(ApproveDecisionRequest {
                token,
                actor: format!("approver-{i}"),
                ..Default::default()
            })
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");

    let log = trail(&redis);
    let chain: Vec<Event> = events(&log)
        .await
        .into_iter()
        .filter(|e| e.chain == id)
        .collect();
    let approved = chain
        .iter()
        .filter(|e| e.action == Action::Approved)
        .count();
    let refused: Vec<&Event> = chain
        .iter()
        .filter(|e| e.action == Action::Refused)
        .collect();
    assert_eq!(approved, 1);
    assert_eq!(refused.len(), 7);
    assert!(refused.iter().all(|e| e.outcome == "FAILED_PRECONDITION"
        && e.token.as_deref() == Some(token.as_str())
        && e.rpc == "ApproveDecision"));
    // Sequence numbers without gaps, across both replicas' writes.
    let seqs: Vec<u64> = chain.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=chain.len() as u64).collect::<Vec<_>>());
    assert!(log.verify(signer(), None).await.expect("verify").is_whole());
}

#[tokio::test]
async fn a_stale_version_is_refused_changes_nothing_and_is_recorded() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(common::config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let log = trail(&redis);
    let before = events(&log).await.len();
    let e = s
        .decisions
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "late".into(),
            expected_version: d.version + 5,
        })
        .await
        .expect_err("stale");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let after = events(&log).await;
    assert_eq!(after.len(), before + 1);
    let refusal = &after[before];
    assert_eq!(refusal.action, Action::Refused);
    assert_eq!(refusal.actor, "late");
    assert_eq!(refusal.version_before, Some(d.version));
    let now = common::history(&s, &id).await;
    assert_eq!(now[0].version, d.version, "nothing changed");
}

/// Rewrites the audit stream with `edit` applied to the entries (keeping
/// their ids): what someone with write access to Redis could do.
async fn rewrite(redis: &RedisServer, edit: impl Fn(&str, Event) -> Option<Event>) {
    let mut c = redis.conn().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("verdict:audit")
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .expect("xrange");
    let _: () = redis::cmd("DEL")
        .arg("verdict:audit")
        .query_async(&mut c)
        .await
        .expect("del");
    for (id, fields) in entries {
        let json = &fields.iter().find(|(f, _)| f == "e").expect("event").1;
        let event: Event = serde_json::from_str(json).expect("event json");
        if let Some(e) = edit(&id, event) {
            let _: String = redis::cmd("XADD")
                .arg("verdict:audit")
                .arg(&id)
                .arg("e")
                .arg(serde_json::to_string(&e).expect("json"))
                .query_async(&mut c)
                .await
                .expect("xadd");
        }
    }
}

async fn trail_of_two_incidents(redis: &RedisServer) -> String {
    let mut s = TestServer::start(common::config(Some(redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    decide(&mut s, &id).await;
    let other = create_incident(&mut s, "HighLatencyP99").await;
    decide(&mut s, &other).await;
    id
}

#[tokio::test]
async fn an_edited_event_is_found_at_that_event() {
    let redis = RedisServer::start();
    let id = trail_of_two_incidents(&redis).await;
    let log = trail(&redis);
    assert!(log.verify(signer(), None).await.expect("verify").is_whole());
    rewrite(&redis, |_, mut e| {
        if e.chain == id && e.seq == 2 {
            e.detail = "kubectl delete namespace prod".into();
        }
        Some(e)
    })
    .await;
    let report = log.verify(signer(), None).await.expect("verify");
    assert_eq!(report.breaks.len(), 1, "{report:?}");
    assert_eq!(
        (report.breaks[0].chain.as_str(), report.breaks[0].seq),
        (id.as_str(), 2)
    );
    assert!(report.breaks[0].reason.contains("hash"));
}

#[tokio::test]
async fn a_deleted_event_is_found_at_that_event_even_the_last() {
    let redis = RedisServer::start();
    let id = trail_of_two_incidents(&redis).await;
    let log = trail(&redis);
    rewrite(&redis, |_, e| (!(e.chain == id && e.seq == 2)).then_some(e)).await;
    let report = log.verify(signer(), None).await.expect("verify");
    assert_eq!(report.breaks.len(), 1, "{report:?}");
    assert_eq!(
        (report.breaks[0].chain.as_str(), report.breaks[0].seq),
        (id.as_str(), 2)
    );

    // The chain's last event: no gap follows it, the head still tells.
    let redis = RedisServer::start();
    let id = trail_of_two_incidents(&redis).await;
    let log = trail(&redis);
    let last = events(&log)
        .await
        .iter()
        .filter(|e| e.chain == id)
        .map(|e| e.seq)
        .max()
        .expect("events");
    rewrite(&redis, |_, e| {
        (!(e.chain == id && e.seq == last)).then_some(e)
    })
    .await;
    let report = log.verify(signer(), None).await.expect("verify");
    assert_eq!(report.breaks.len(), 1, "{report:?}");
    assert_eq!(report.breaks[0].seq, last);
}

#[tokio::test]
async fn a_wrong_key_is_named_as_such() {
    let redis = RedisServer::start();
    trail_of_two_incidents(&redis).await;
    let report = trail(&redis)
        .verify(Signer::new(b"another key"), None)
        .await
        .expect("verify");
    assert!(!report.is_whole());
    assert!(report.breaks[0].reason.contains("sealed with key"));
}

#[tokio::test]
async fn trimming_by_retention_keeps_verify_passing() {
    let redis = RedisServer::start();
    let id = trail_of_two_incidents(&redis).await;
    let log = trail(&redis);
    // Retention drops the oldest entries of the stream (XTRIM MINID, as
    // the scripts' XADD … MINID ~ does): here the first two.
    let all: Vec<(verdict::audit::Position, Event)> = log
        .list(&AuditFilter::default(), None, 1000)
        .await
        .expect("list")
        .events;
    // The first two events are the first incident's first two.
    assert!(all[..2].iter().all(|(_, e)| e.chain == id));
    let cut = all[2].0;
    let mut c = redis.conn().await;
    let _: i64 = redis::cmd("XTRIM")
        .arg("verdict:audit")
        .arg("MINID")
        .arg(cut.to_string())
        .query_async(&mut c)
        .await
        .expect("xtrim");
    let report = log.verify(signer(), None).await.expect("verify");
    assert!(report.is_whole(), "{report:?}");
    assert_eq!(report.trimmed, [(id, 3)]);
}

#[tokio::test]
async fn the_memory_store_chains_and_verifies_the_same_way() {
    use verdict::audit::Draft;
    let store: Arc<dyn Store> =
        Arc::new(verdict::store::MemoryStore::new(Retention::default()).with_audit(signer()));
    let incident = common::IncidentBuilder::new().domain();
    let none = verdict::stats::StatDelta::none();
    let created = Draft::incident_change(Action::IncidentCreated, 0, &incident);
    store
        .create_incident(&incident, None, &none, Some(&created))
        .await
        .expect("create");
    let mut next = incident.clone();
    next.version = 2;
    let changed = Draft::incident_change(Action::StatusChanged, 1, &next);
    store
        .update_incident(1, &next, &none, Some(&changed))
        .await
        .expect("update");
    // A lost compare-and-set leaves no event.
    store
        .update_incident(1, &next, &none, Some(&changed))
        .await
        .expect("stale update");
    let log = AuditLog::new(store, Arc::new(SystemClock));
    let all = events(&log).await;
    assert_eq!(
        actions(&all),
        [Action::IncidentCreated, Action::StatusChanged]
    );
    assert_eq!(all[1].prev, all[0].hash);
    assert!(log.verify(signer(), None).await.expect("verify").is_whole());
}

/// `verdict …` against `s`, returning (success, stdout and stderr). Async:
/// the server runs on this test's runtime.
async fn cli(s: &TestServer, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .arg("--addr")
        .arg(s.http_base())
        .env_remove("VERDICT_AUDIT_KEY")
        .output()
        .await
        .expect("run verdict");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_cli_answers_who_approved_and_verifies() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(common::config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            token: d.token.clone(),
            actor: "bob".into(),
            ..Default::default()
        })
        .await
        .expect("approve");
    let (ok, out) = cli(
        &s,
        &[
            "audit",
            "list",
            "--decision",
            &d.token,
            "--action",
            "approved",
            "--json",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let lines: Vec<Event> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].actor, "bob");
    assert_eq!(
        Some(lines[0].detail.as_str()),
        d.proposal.as_ref().map(|p| p.kubectl.as_str())
    );
    let (ok, text) = cli(&s, &["audit", "list", "--decision", &d.token]).await;
    assert!(
        ok && text.contains("approved OK by anonymous (actor bob)"),
        "{text}"
    );

    let (ok, out) = cli(&s, &["audit", "verify"]).await;
    assert!(ok && out.contains("every chain is whole"), "{out}");
    rewrite(&redis, |_, mut e| {
        if e.action == Action::Approved {
            e.actor = "mallory".into();
        }
        Some(e)
    })
    .await;
    let (ok, out) = cli(&s, &["audit", "verify"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("{id}: BROKEN at event 4")), "{out}");
}

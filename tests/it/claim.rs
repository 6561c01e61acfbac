//! External runners' execution leases (`ClaimExecution`) with the
//! `external` executor, against a real Redis: two runners racing for one
//! decision (exactly one wins), a lease that ran out (on a manual clock)
//! claimed by another runner, completions without, with a wrong and with
//! an expired lease refused, the claim in the audit trail, and bad input.

use crate::common;
use common::{RedisServer, TestServer, config, create_incident, decide, violations};
use std::sync::Arc;
use tonic::Code;
use verdict::clock::ManualClock;
use verdict::proto::audit_service_client::AuditServiceClient;
use verdict::proto::{
    ApproveDecisionRequest, AuditFilter, ClaimExecutionRequest, CompleteDecisionRequest,
    DecisionState, ListAuditEventsRequest,
};

fn claim(token: &str, runner: &str, secs: i64) -> ClaimExecutionRequest {
    ClaimExecutionRequest {
        token: token.into(),
        runner_id: runner.into(),
        lease_duration: Some(prost_types::Duration {
            seconds: secs,
            nanos: 0,
        }),
    }
}

fn complete(token: &str, lease_id: &str) -> CompleteDecisionRequest {
    CompleteDecisionRequest {
        token: token.into(),
        success: true,
        output: "restarted by the runner".into(),
        request_id: String::new(),
        lease_id: lease_id.into(),
    }
}

/// A server on a manual clock with an EXECUTING decision; its token.
async fn executing(redis: &RedisServer, clock: Arc<ManualClock>) -> (TestServer, String) {
    let mut s = TestServer::start_with(config(Some(redis)), Some(clock)).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect("approve");
    (s, d.token)
}

#[tokio::test]
async fn of_two_racing_runners_exactly_one_wins_and_only_its_lease_completes() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let (mut s, token) = executing(&redis, clock.clone()).await;

    // Sixteen claims at once, eight runners: one lease, the rest refused.
    let mut calls = Vec::new();
    for i in 0..16 {
        let mut c = s.decisions.clone();
        let req = claim(&token, &format!("runner-{}", i % 8), 30);
        calls.push(tokio::spawn(async move { c.claim_execution(req).await }));
    }
    let mut granted = Vec::new();
    for call in calls {
        match call.await.expect("join") {
            Ok(r) => granted.push(r.into_inner()),
            Err(e) => {
                assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
                assert!(e.message().contains("is claimed by runner"), "{e:?}");
            }
        }
    }
    let leases: std::collections::HashSet<_> = granted.iter().map(|g| g.lease_id.clone()).collect();
    assert_eq!(leases.len(), 1, "one lease: {granted:?}");
    let lease = leases.into_iter().next().unwrap_or_default();
    let winner = granted[0]
        .decision
        .as_ref()
        .map(|d| d.state)
        .unwrap_or_default();
    assert_eq!(winner, DecisionState::Executing as i32);

    // Without the lease, or with another one: refused, nothing changes.
    for wrong in ["", "0123456789abcdef0123456789abcdef"] {
        let e = s
            .decisions
            .complete_decision(complete(&token, wrong))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    }
    let done = s
        .decisions
        .complete_decision(complete(&token, &lease))
        .await
        .expect("completed with the lease")
        .into_inner()
        .decision
        .expect("decision");
    assert_eq!(done.state, DecisionState::Completed as i32);

    // The claim is in the audit trail, written with it.
    let events = AuditServiceClient::new(s.channel.clone())
        .list_audit_events(ListAuditEventsRequest {
            filter: Some(AuditFilter {
                token: token.clone(),
                action: "execution_claimed".into(),
                ..Default::default()
            }),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.detail.contains("runner \"runner-")),
        "{events:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_expired_lease_can_be_claimed_by_another_runner_and_no_longer_completes() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let (mut s, token) = executing(&redis, clock.clone()).await;
    let first = s
        .decisions
        .claim_execution(claim(&token, "runner-a", 30))
        .await
        .expect("a claims")
        .into_inner();
    // The holder renews: the same lease.
    clock.advance(chrono::Duration::seconds(20));
    let renewed = s
        .decisions
        .claim_execution(claim(&token, "runner-a", 30))
        .await
        .expect("a renews")
        .into_inner();
    assert_eq!(renewed.lease_id, first.lease_id);
    let e = s
        .decisions
        .claim_execution(claim(&token, "runner-b", 30))
        .await
        .expect_err("b must wait");
    assert_eq!(e.code(), Code::FailedPrecondition);

    // Past the renewed lease: b may claim it, a's lease is dead.
    clock.advance(chrono::Duration::seconds(31));
    let second = s
        .decisions
        .claim_execution(claim(&token, "runner-b", 30))
        .await
        .expect("b claims the expired lease")
        .into_inner();
    assert_ne!(second.lease_id, first.lease_id);
    let e = s
        .decisions
        .complete_decision(complete(&token, &first.lease_id))
        .await
        .expect_err("a's lease no longer completes");
    assert_eq!(e.code(), Code::FailedPrecondition);

    // b's lease, once run out, does not complete either: claim again.
    clock.advance(chrono::Duration::seconds(31));
    let e = s
        .decisions
        .complete_decision(complete(&token, &second.lease_id))
        .await
        .expect_err("expired");
    assert!(e.message().contains("ran out"), "{e:?}");
    s.stop().await;
}

#[tokio::test]
async fn claims_are_validated_and_need_an_executing_decision() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut s = TestServer::start_with(config(Some(&redis)), Some(clock)).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;

    let e = s
        .decisions
        .claim_execution(ClaimExecutionRequest {
            token: "nope".into(),
            runner_id: "a b;c".into(),
            lease_duration: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
        })
        .await
        .expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields = violations(&e);
    for f in ["token", "runner_id", "lease_duration"] {
        assert!(fields.iter().any(|v| v.starts_with(f)), "{f}: {fields:?}");
    }
    // READY, not EXECUTING: nothing to claim yet.
    let e = s
        .decisions
        .claim_execution(claim(&d.token, "runner-a", 30))
        .await
        .expect_err("not executing");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("not EXECUTING"), "{e:?}");
    // A lease id on a decision nobody claimed cannot be right.
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect("approve");
    let e = s
        .decisions
        .complete_decision(complete(&d.token, "0123456789abcdef0123456789abcdef"))
        .await
        .expect_err("never claimed");
    assert_eq!(e.code(), Code::FailedPrecondition);
    // Unclaimed and no lease: completes as before claims existed.
    s.decisions
        .complete_decision(complete(&d.token, ""))
        .await
        .expect("legacy completion");
    s.stop().await;
}

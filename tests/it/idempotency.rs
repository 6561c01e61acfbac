//! Issue 12.2: retries after an ambiguous failure. State changes take a
//! `request_id`; a retry with it returns the first outcome instead of
//! applying the change twice or failing on the version. And the Redis reply
//! timeout is an explicit setting: a stall longer than redis-rs's hidden
//! 500 ms no longer fails calls.

use crate::common;

use common::{RedisServer, TestServer, config, create_incident, decide, within};
use std::time::Duration;
use tonic::Code;
use verdict::proto::{
    ApproveDecisionRequest, CompleteDecisionRequest, DecisionState, GetIncidentRequest,
    IncidentStatus, RejectDecisionRequest, UpdateIncidentStatusRequest,
};

fn approve(token: &str, version: u64, request_id: &str) -> ApproveDecisionRequest {
    ApproveDecisionRequest {
        token: token.into(),
        actor: "alice".into(),
        expected_version: version,
        request_id: request_id.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_twice_with_one_request_id_answers_the_same_and_transitions_once() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    assert_eq!(d.state, DecisionState::Ready as i32);

    let first = s
        .decisions
        .approve_decision(approve(&d.token, d.version, "retry-1"))
        .await
        .expect("approve")
        .into_inner()
        .decision
        .expect("decision");
    // The same call again, as a client retries after a lost reply: the
    // expected version is stale now, and the decision is no longer READY.
    let again = s
        .decisions
        .approve_decision(approve(&d.token, d.version, "retry-1"))
        .await
        .expect("the retry succeeds")
        .into_inner()
        .decision
        .expect("decision");
    assert_eq!(again.version, first.version, "one transition");
    assert_eq!(again.version, d.version + 1);
    assert_eq!(again.state, DecisionState::Executing as i32);
    assert_eq!(again.decided_by, first.decided_by);

    // Another request id is another approval: refused as before.
    let e = s
        .decisions
        .approve_decision(approve(&d.token, 0, "retry-2"))
        .await
        .expect_err("a second approval");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    // And without one, too.
    let e = s
        .decisions
        .approve_decision(approve(&d.token, d.version, ""))
        .await
        .expect_err("a stale approval");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // Completion: the retry answers the completed decision, once.
    let complete = |rid: &str| CompleteDecisionRequest {
        lease_id: String::new(),
        token: d.token.clone(),
        success: true,
        output: "ok".into(),
        request_id: rid.into(),
    };
    let done = s
        .decisions
        .complete_decision(complete("done-1"))
        .await
        .expect("complete")
        .into_inner()
        .decision
        .expect("decision");
    let done_again = s
        .decisions
        .complete_decision(complete("done-1"))
        .await
        .expect("the retry succeeds")
        .into_inner()
        .decision
        .expect("decision");
    assert_eq!(done_again, done);
    assert_eq!(done.state, DecisionState::Completed as i32);

    // A malformed request id is a field violation.
    let e = s
        .decisions
        .approve_decision(approve(&d.token, 0, "not an id!"))
        .await
        .expect_err("malformed");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(common::violations(&e).iter().any(|f| f == "request_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_rejection_and_status_change_apply_once() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let reject = RejectDecisionRequest {
        token: d.token.clone(),
        actor: "bob".into(),
        reason: "not now".into(),
        expected_version: d.version,
        request_id: "no-1".into(),
    };
    let first = s
        .decisions
        .reject_decision(reject.clone())
        .await
        .expect("reject");
    let again = s
        .decisions
        .reject_decision(reject)
        .await
        .expect("the retry succeeds");
    assert_eq!(again.into_inner(), first.into_inner());

    let status = |st: IncidentStatus, rid: &str| UpdateIncidentStatusRequest {
        id: id.clone(),
        status: st as i32,
        actor: "carol".into(),
        note: String::new(),
        request_id: rid.into(),
    };
    let resolved = s
        .incidents
        .update_incident_status(status(IncidentStatus::Resolved, "st-1"))
        .await
        .expect("resolve")
        .into_inner()
        .incident
        .expect("incident");
    s.incidents
        .update_incident_status(status(IncidentStatus::Open, "st-2"))
        .await
        .expect("reopen");
    // The first call retried after the reopen: it was applied, so it does
    // not resolve the incident a second time.
    let retried = s
        .incidents
        .update_incident_status(status(IncidentStatus::Resolved, "st-1"))
        .await
        .expect("the retry succeeds")
        .into_inner()
        .incident
        .expect("incident");
    assert_eq!(retried.status, IncidentStatus::Open as i32);
    assert_eq!(retried.version, resolved.version + 1);
}

/// A Redis stall longer than redis-rs's default 500 ms reply timeout
/// (`CLIENT PAUSE` for 1.5 s stands in for an fsync stall): with the
/// explicit 5 s default, a call made during it waits and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_past_half_a_second_does_not_fail_calls() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let mut admin = redis.conn().await;
    // Answered at once; every command after it waits until the pause ends.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let got = within(
        Duration::from_secs(20),
        "the call during the stall",
        async {
            s.incidents
                .get_incident(GetIncidentRequest { id: id.clone() })
                .await
        },
    )
    .await;
    assert!(got.is_ok(), "{got:?}");
}

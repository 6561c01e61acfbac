//! The decision lifecycle through the real gRPC server against a real Redis.

use crate::common;

use common::{RedisServer, TestServer, config, create_incident, decide, violations};
use std::collections::HashSet;
use std::sync::Arc;
use tonic::Code;
use verdict::clock::ManualClock;
use verdict::proto::{
    ApproveDecisionRequest, CompleteDecisionRequest, DecisionState, GetDecisionRequest,
    GetOrCreateDecisionRequest, IncidentStatus, ListDecisionsRequest, ProposalSource,
    RejectDecisionRequest, UpdateIncidentStatusRequest,
};

fn approve(token: &str, actor: &str, expected_version: u64) -> ApproveDecisionRequest {
    ApproveDecisionRequest {
        request_id: String::new(),
        token: token.into(),
        actor: actor.into(),
        expected_version,
    }
}

fn complete(token: &str, success: bool) -> CompleteDecisionRequest {
    CompleteDecisionRequest {
        lease_id: String::new(),
        request_id: String::new(),
        token: token.into(),
        success,
        output: "done".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_get_or_create_on_two_replicas_yields_one_token() {
    let redis = RedisServer::start();
    let mut a = TestServer::start(config(Some(&redis))).await;
    let b = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut a, "PodCrashLooping").await;

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let mut client = if i % 2 == 0 {
            a.decisions.clone()
        } else {
            b.decisions.clone()
        };
        let id = id.clone();
        calls.spawn(async move {
            client
                .get_or_create_decision(GetOrCreateDecisionRequest {
                    incident_id: id,
                    wait: i % 4 < 2,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        });
    }
    let mut tokens = HashSet::new();
    let mut created = 0;
    while let Some(r) = calls.join_next().await {
        let r = r.expect("task").expect("rpc");
        created += r.created as usize;
        tokens.insert(r.decision.expect("decision").token);
    }
    assert_eq!(
        tokens.len(),
        1,
        "every caller got the same token: {tokens:?}"
    );
    assert_eq!(created, 1, "exactly one call issued it");
    let history = common::history(&a, &id).await;
    assert_eq!(history.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_approvals_exactly_one_wins() {
    let redis = RedisServer::start();
    let mut a = TestServer::start(config(Some(&redis))).await;
    let b = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut a, "HighLatencyP99").await;
    let d = decide(&mut a, &id).await;
    assert_eq!(d.state, DecisionState::Ready as i32);

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20 {
        let mut client = if i % 2 == 0 {
            a.decisions.clone()
        } else {
            b.decisions.clone()
        };
        let token = d.token.clone();
        // Half name the version they saw, half do not.
        let expected = if i % 3 == 0 { d.version } else { 0 };
        calls.spawn(async move {
            client
                .approve_decision(approve(&token, &format!("approver-{i}"), expected))
                .await
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(r) = calls.join_next().await {
        match r.expect("task") {
            Ok(resp) => {
                ok += 1;
                assert_eq!(
                    resp.into_inner().decision.unwrap().state,
                    DecisionState::Executing as i32
                );
            }
            Err(s) => {
                assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (1, 19));
    let after = a
        .decisions
        .get_decision(GetDecisionRequest {
            token: d.token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(after.state, DecisionState::Executing as i32);
    assert_eq!(after.version, d.version + 1);
    assert!(after.decided_by.starts_with("approver-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_decision_of_an_active_incident_gets_a_new_token() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let first = decide(&mut s, &id).await;
    assert_eq!(
        decide(&mut s, &id).await.token,
        first.token,
        "READY is returned as it is"
    );
    s.decisions
        .approve_decision(approve(&first.token, "alice", 0))
        .await
        .unwrap();
    assert_eq!(
        decide(&mut s, &id).await.token,
        first.token,
        "EXECUTING is returned as it is"
    );
    s.decisions
        .complete_decision(complete(&first.token, true))
        .await
        .unwrap();

    // The Y/n fix: the incident is still open, so the buttons must come back.
    let second = decide(&mut s, &id).await;
    assert_ne!(second.token, first.token);
    assert_eq!(second.state, DecisionState::Ready as i32);

    // Once the incident is resolved, a completed decision is final.
    s.decisions
        .approve_decision(approve(&second.token, "alice", 0))
        .await
        .unwrap();
    s.decisions
        .complete_decision(complete(&second.token, true))
        .await
        .unwrap();
    s.incidents
        .update_incident_status(UpdateIncidentStatusRequest {
            request_id: String::new(),
            id: id.clone(),
            status: IncidentStatus::Resolved as i32,
            actor: "alice".into(),
            note: "fixed".into(),
        })
        .await
        .unwrap();
    let third = decide(&mut s, &id).await;
    assert_eq!(third.token, second.token);
    assert_eq!(third.state, DecisionState::Completed as i32);

    let history = common::history(&s, &id).await;
    let tokens: Vec<_> = history.iter().map(|d| d.token.clone()).collect();
    assert_eq!(tokens, vec![second.token, first.token], "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_and_failed_decisions_are_replaced() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "HTTP5xxRate").await;
    let d = decide(&mut s, &id).await;
    let p = d.proposal.as_ref().unwrap();
    assert_eq!(p.source, ProposalSource::Expert as i32);
    assert_eq!(p.matched_rule, "high_error_rate");
    assert_eq!(
        p.kubectl,
        "kubectl rollout undo deployment/checkout -n shop"
    );
    let r = s
        .decisions
        .reject_decision(RejectDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "bob".into(),
            reason: "too risky".into(),
            expected_version: d.version,
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(r.state, DecisionState::Rejected as i32);
    assert_eq!(r.reason, "too risky");
    let d2 = decide(&mut s, &id).await;
    assert_ne!(d2.token, d.token);
    s.decisions
        .approve_decision(approve(&d2.token, "alice", 0))
        .await
        .unwrap();
    let e = s
        .decisions
        .complete_decision(complete(&d2.token, false))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(e.state, DecisionState::Error as i32);
    let d3 = decide(&mut s, &id).await;
    assert_ne!(d3.token, d2.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_transition_is_failed_precondition() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let t = d.token.clone();

    let reject = |token: &str| RejectDecisionRequest {
        request_id: String::new(),
        token: token.into(),
        actor: "bob".into(),
        reason: String::new(),
        expected_version: 0,
    };
    // READY: cannot complete; a stale version cannot approve.
    let e = s
        .decisions
        .complete_decision(complete(&t, true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = s
        .decisions
        .approve_decision(approve(&t, "a", d.version + 7))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("version"), "{}", e.message());

    // EXECUTING: cannot approve or reject again.
    s.decisions
        .approve_decision(approve(&t, "a", d.version))
        .await
        .unwrap();
    for e in [
        s.decisions
            .approve_decision(approve(&t, "a", 0))
            .await
            .unwrap_err(),
        s.decisions.reject_decision(reject(&t)).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    }
    // COMPLETED: terminal.
    s.decisions
        .complete_decision(complete(&t, true))
        .await
        .unwrap();
    for e in [
        s.decisions
            .approve_decision(approve(&t, "a", 0))
            .await
            .unwrap_err(),
        s.decisions.reject_decision(reject(&t)).await.unwrap_err(),
        s.decisions
            .complete_decision(complete(&t, false))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    }
    // REJECTED: terminal.
    let d2 = decide(&mut s, &id).await;
    s.decisions
        .reject_decision(reject(&d2.token))
        .await
        .unwrap();
    for e in [
        s.decisions
            .approve_decision(approve(&d2.token, "a", 0))
            .await
            .unwrap_err(),
        s.decisions
            .reject_decision(reject(&d2.token))
            .await
            .unwrap_err(),
        s.decisions
            .complete_decision(complete(&d2.token, true))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    }
    // The refused calls changed nothing.
    let after = s
        .decisions
        .get_decision(GetDecisionRequest { token: t })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(after.state, DecisionState::Completed as i32);
    assert_eq!(after.version, d.version + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_after_their_ttl_and_history_outlives_them() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut s = TestServer::start_with(config(Some(&redis)), Some(clock.clone())).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;

    clock.advance(chrono::Duration::minutes(59));
    let still = s
        .decisions
        .get_decision(GetDecisionRequest {
            token: d.token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(still.state, DecisionState::Ready as i32);

    clock.advance(chrono::Duration::minutes(2));
    let expired = s
        .decisions
        .get_decision(GetDecisionRequest {
            token: d.token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(expired.state, DecisionState::Expired as i32);
    let e = s
        .decisions
        .approve_decision(approve(&d.token, "alice", 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("expired"), "{}", e.message());

    let fresh = decide(&mut s, &id).await;
    assert_ne!(fresh.token, d.token);
    assert_eq!(fresh.state, DecisionState::Ready as i32);
    let history = common::history(&s, &id).await;
    let states: Vec<_> = history.iter().map(|d| (d.token.clone(), d.state)).collect();
    assert_eq!(
        states,
        vec![
            (fresh.token, DecisionState::Ready as i32),
            (d.token, DecisionState::Expired as i32)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_the_call_returns_analyzing_and_the_analysis_finishes() {
    let mut s = TestServer::start(config(None)).await;
    let id = create_incident(&mut s, "CPUThrottling").await;
    let r = s
        .decisions
        .get_or_create_decision(GetOrCreateDecisionRequest {
            incident_id: id.clone(),
            wait: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.created);
    let d = r.decision.unwrap();
    assert_eq!(d.state, DecisionState::Analyzing as i32);
    // A waiting caller joins the same analysis and sees it READY.
    let joined = decide(&mut s, &id).await;
    assert_eq!(joined.token, d.token);
    assert_eq!(joined.state, DecisionState::Ready as i32);
    assert_eq!(
        joined.proposal.unwrap().kubectl,
        "kubectl scale deployment/checkout --replicas=2 -n shop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_not_found_and_malformed_ones_invalid() {
    let mut s = TestServer::start(config(None)).await;
    let e = s
        .decisions
        .get_decision(GetDecisionRequest {
            token: "DEC-000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = s
        .decisions
        .get_decision(GetDecisionRequest {
            token: "DEC-abc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violations(&e), vec!["token"]);
    let e = s
        .decisions
        .get_or_create_decision(GetOrCreateDecisionRequest {
            incident_id: "INC-NOPE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = s
        .decisions
        .list_decisions(ListDecisionsRequest {
            incident_id: "INC-NOPE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_current_decisions_reads_a_page_of_incidents_in_one_call() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let a = create_incident(&mut s, "PodCrashLooping").await;
    let undecided = create_incident(&mut s, "PodCrashLooping").await;
    let c = create_incident(&mut s, "PodCrashLooping").await;
    let da = decide(&mut s, &a).await;
    let dc = decide(&mut s, &c).await;
    let ask = |ids: Vec<String>| verdict::proto::ListCurrentDecisionsRequest { incident_ids: ids };
    let got = s
        .decisions
        .list_current_decisions(ask(vec![
            c.clone(),
            undecided,
            "INC-NEVER-MADE".into(),
            a.clone(),
        ]))
        .await
        .unwrap()
        .into_inner()
        .decisions;
    assert_eq!(
        got.iter()
            .map(|d| (d.token.as_str(), d.incident_id.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (dc.token.as_str(), c.as_str()),
            (da.token.as_str(), a.as_str())
        ],
        "in the order asked; undecided and unknown incidents left out"
    );

    // Bad input names the field; nothing is read.
    for (ids, field) in [
        (vec![], "incident_ids"),
        (vec!["INC-1".to_string(); 501], "incident_ids"),
        (vec![a.clone(), "not an id".into()], "incident_ids[1]"),
    ] {
        let e = s
            .decisions
            .list_current_decisions(ask(ids))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violations(&e), vec![field.to_string()]);
    }
}

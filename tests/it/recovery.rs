//! A replica killed mid-analysis (SIGKILL, with the LLM hanging) leaves its
//! decision ANALYZING; another replica finishes it with the expert proposal
//! (reason RECOVERED), on read or by its periodic sweep, once the analysis
//! deadline (plus the recovery grace) has passed — and not before.

use crate::common;

use common::fake_llm::{FakeLlm, Reply};
use common::{RedisServer, TestServer, VerdictProcess, config};
use std::sync::Arc;
use std::time::Duration;
use verdict::clock::ManualClock;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::incident_service_client::IncidentServiceClient;
use verdict::proto::{
    CreateIncidentRequest, DecisionState, FallbackReason, GetDecisionRequest,
    GetOrCreateDecisionRequest, ListDecisionsRequest, ProposalSource,
};

/// Replica A issues a decision for a new incident and starts analysing it
/// (the LLM hangs); returns the token once the LLM has the request, then A
/// is killed.
async fn abandoned_decision(redis: &RedisServer, llm: &FakeLlm) -> String {
    // `verdict serve` as a separate process, so it can really be killed.
    let llm_url = llm.base_url();
    let a = VerdictProcess::start(
        &[
            "--redis-url",
            &redis.url(),
            "--llm-base-url",
            &llm_url,
            "--sweep-interval",
            "0s",
        ],
        &[],
    )
    .await;
    let channel = a.serving_channel().await;
    let mut incidents = IncidentServiceClient::new(channel.clone());
    let mut decisions = DecisionServiceClient::new(channel);
    let id = incidents
        .create_incident(CreateIncidentRequest {
            incident: Some(
                common::IncidentBuilder::alerting(
                    "Checkout crashing",
                    "PodCrashLooping",
                    "checkout",
                )
                .proto(),
            ),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .id;
    let r = decisions
        .get_or_create_decision(GetOrCreateDecisionRequest {
            incident_id: id,
            wait: false,
            timeout: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.created);
    let d = r.decision.unwrap();
    assert_eq!(d.state, DecisionState::Analyzing as i32);
    llm.wait_for(1).await;
    a.kill();
    d.token
}

async fn analyzing_index_len(redis: &RedisServer) -> u64 {
    redis::cmd("ZCARD")
        .arg("verdict:analyzing")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap()
}

fn assert_recovered(d: &verdict::proto::Decision) {
    assert_eq!(d.state, DecisionState::Ready as i32, "{d:?}");
    let p = d.proposal.as_ref().unwrap();
    assert_eq!(p.source, ProposalSource::Expert as i32);
    assert_eq!(p.fallback_reason, FallbackReason::Recovered as i32);
    assert_eq!(
        p.kubectl,
        "kubectl rollout restart deployment/checkout -n shop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_decision_is_finished_on_read_by_another() {
    let redis = RedisServer::start();
    let llm = FakeLlm::always(Reply::Hang).await;
    let token = abandoned_decision(&redis, &llm).await;
    assert_eq!(analyzing_index_len(&redis).await, 1);

    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut cfg = config(Some(&redis));
    cfg.sweep_interval = Duration::ZERO;
    let mut b = TestServer::start_with(cfg, Some(clock.clone())).await;
    let get = GetDecisionRequest {
        token: token.clone(),
    };
    // Before its deadline the analysis may still be alive: left alone.
    let d = b
        .decisions
        .get_decision(get.clone())
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(d.state, DecisionState::Analyzing as i32);

    clock.advance(chrono::Duration::seconds(15));
    let d = b
        .decisions
        .get_decision(get.clone())
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_recovered(&d);
    assert_eq!(
        analyzing_index_len(&redis).await,
        0,
        "finished decisions leave the index"
    );
    let again = b
        .decisions
        .get_decision(get)
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(again.version, d.version, "finished once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_decision_is_finished_by_another_replicas_sweep() {
    let redis = RedisServer::start();
    let llm = FakeLlm::always(Reply::Hang).await;
    let token = abandoned_decision(&redis, &llm).await;

    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut cfg = config(Some(&redis));
    cfg.sweep_interval = Duration::from_millis(50);
    let mut b = TestServer::start_with(cfg, Some(clock.clone())).await;
    // Read before the deadline, so the read leaves the analysis alone.
    let before = b
        .decisions
        .get_decision(GetDecisionRequest {
            token: token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(before.state, DecisionState::Analyzing as i32);
    // Leaving ANALYZING removes the token from the index in the same
    // script, so that ZREM is the event; subscribed before the deadline
    // passes, it cannot be missed.
    let mut index = redis.key_events("verdict:analyzing").await;
    clock.advance(chrono::Duration::seconds(15));
    index
        .next(
            "zrem",
            Duration::from_secs(10),
            "the sweep finishing the abandoned decision",
        )
        .await;
    // ListDecisions never finishes anything itself: only the sweep can.
    let d = b
        .decisions
        .list_decisions(ListDecisionsRequest {
            incident_id: before.incident_id,
        })
        .await
        .unwrap()
        .into_inner()
        .decisions
        .into_iter()
        .find(|d| d.token == token)
        .unwrap();
    assert_recovered(&d);
    assert_eq!(analyzing_index_len(&redis).await, 0);
}

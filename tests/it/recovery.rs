//! A replica killed mid-analysis (SIGKILL, with the LLM hanging) leaves its
//! decision ANALYZING; another replica finishes it with the expert proposal
//! (reason RECOVERED), on read or by its periodic sweep, once the analysis
//! deadline (plus the recovery grace) has passed — and not before.

use crate::common;

use common::fake_llm::{FakeLlm, Reply};
use common::{RedisServer, TestServer, config, free_port};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use verdict::clock::ManualClock;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::incident_service_client::IncidentServiceClient;
use verdict::proto::{
    CreateIncidentRequest, DecisionState, FallbackReason, GetDecisionRequest,
    GetOrCreateDecisionRequest, ListDecisionsRequest, ProposalSource,
};

/// `verdict serve` as a separate process, so it can really be killed.
struct Replica {
    child: Child,
    channel: Channel,
}

impl Replica {
    // The child is reaped by `Drop` (or `kill`) on every path.
    #[allow(clippy::zombie_processes)]
    async fn start(redis: &RedisServer, llm: &FakeLlm) -> Replica {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--redis-url", &redis.url()])
            .args(["--llm-base-url", &llm.base_url()])
            .args(["--sweep-interval", "0s"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn verdict serve");
        // Ready when its health says SERVING (it has reached Redis).
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(ch) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("uri")
                .connect()
                .await
            {
                let status = HealthClient::new(ch.clone())
                    .check(HealthCheckRequest::default())
                    .await
                    .map(|r| r.into_inner().status);
                if status.ok() == Some(ServingStatus::Serving as i32) {
                    return Replica { child, channel: ch };
                }
            }
            assert!(Instant::now() < until, "verdict serve did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replica A issues a decision for a new incident and starts analysing it
/// (the LLM hangs); returns the token once the LLM has the request, then A
/// is killed.
async fn abandoned_decision(redis: &RedisServer, llm: &FakeLlm) -> String {
    let a = Replica::start(redis, llm).await;
    let mut incidents = IncidentServiceClient::new(a.channel.clone());
    let mut decisions = DecisionServiceClient::new(a.channel.clone());
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
    clock.advance(chrono::Duration::seconds(15));
    let incident_id = b
        .decisions
        .get_decision(GetDecisionRequest {
            token: token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .incident_id;
    // ListDecisions never finishes anything itself: only the sweep can.
    let until = Instant::now() + Duration::from_secs(10);
    let d = loop {
        let list = b
            .decisions
            .list_decisions(ListDecisionsRequest {
                incident_id: incident_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .decisions;
        let d = list.into_iter().find(|d| d.token == token).unwrap();
        if d.state != DecisionState::Analyzing as i32 {
            break d;
        }
        assert!(Instant::now() < until, "the sweep never finished it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_recovered(&d);
    assert_eq!(analyzing_index_len(&redis).await, 0);
}

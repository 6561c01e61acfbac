//! Verification after execution (issue 18 item 5), against the fake API
//! server (`common::fake_kube`) and a manual clock: once the rollout
//! finished, the decision stays EXECUTING with its verification PENDING
//! while the incident is watched; resolved within the window → COMPLETED,
//! VERIFIED; still firing at the window's end, or a rollout that never
//! completes → COMPLETED, FAILED, and the incident's next decision is a new
//! token. A replica killed mid-verification is taken over without running
//! the command again.

use crate::common;
use common::fake_kube::{FakeKube, Rollouts};
use common::{IncidentBuilder, RedisServer, TestServer, VerdictProcess, config, decide, within};
use std::sync::Arc;
use std::time::Duration;
use verdict::clock::{Clock, ManualClock};
use verdict::config::Config;
use verdict::manager::ExecutorKind;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::incident_service_client::IncidentServiceClient;
use verdict::proto::stats_service_client::StatsServiceClient;
use verdict::proto::{
    ApproveDecisionRequest, Decision, DecisionState, GetAiPerformanceRequest, IncidentStatus,
    TimeRange, UpdateIncidentStatusRequest, VerificationState, WatchDecisionRequest,
};

const WAIT: Duration = Duration::from_secs(20);

fn kube_config(fake: &FakeKube, redis: Option<&RedisServer>) -> Config {
    Config {
        executor: ExecutorKind::Kubernetes,
        executor_namespaces: vec!["shop".into()],
        executor_kubeconfig: Some(fake.kubeconfig()),
        // Only the tests' own moves of the clock take leases over.
        sweep_interval: Duration::from_secs(3600),
        ..config(redis)
    }
}

async fn incident(incidents: &mut IncidentServiceClient<tonic::transport::Channel>) -> String {
    incidents
        .create_incident(
            IncidentBuilder::alerting("Checkout in trouble", "PodCrashLooping", "checkout")
                .request(),
        )
        .await
        .expect("create incident")
        .into_inner()
        .incident
        .expect("incident")
        .id
}

async fn set_status(
    incidents: &mut IncidentServiceClient<tonic::transport::Channel>,
    id: &str,
    status: IncidentStatus,
) {
    incidents
        .update_incident_status(UpdateIncidentStatusRequest {
            request_id: String::new(),
            id: id.into(),
            status: status as i32,
            actor: "bob".into(),
            note: String::new(),
        })
        .await
        .expect("status");
}

fn verification(d: &Decision) -> Option<VerificationState> {
    d.verification
        .as_ref()
        .and_then(|v| VerificationState::try_from(v.state).ok())
}

/// Waits on the decision's watch stream for the first version that
/// satisfies `done`.
async fn until(
    client: &mut DecisionServiceClient<tonic::transport::Channel>,
    token: &str,
    what: &str,
    done: impl Fn(&Decision) -> bool,
) -> Decision {
    let mut stream = client
        .watch_decision(WatchDecisionRequest {
            token: token.into(),
            after_version: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    within(WAIT, what, async {
        loop {
            let d = stream
                .message()
                .await
                .expect("stream")
                .expect("open")
                .decision
                .expect("decision");
            if done(&d) {
                return d;
            }
        }
    })
    .await
}

/// Waits for the decision's dry run, then approves it.
async fn approve(client: &mut DecisionServiceClient<tonic::transport::Channel>, token: &str) {
    until(client, token, "the dry run is recorded", |d| {
        d.dry_run.is_some()
    })
    .await;
    client
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: token.into(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect("approve");
}

/// Waits until the command ran and its verification is PENDING.
async fn pending(client: &mut DecisionServiceClient<tonic::transport::Channel>, token: &str) {
    let d = until(client, token, "the verification is pending", |d| {
        verification(d) == Some(VerificationState::Pending)
    })
    .await;
    assert_eq!(d.state, DecisionState::Executing as i32, "{d:?}");
    assert!(d.output.contains("restarted"), "{}", d.output);
}

/// (verified, not verified) fixes summed over the sources.
async fn fixes(s: &TestServer) -> (u64, u64) {
    let ai = StatsServiceClient::new(s.channel.clone())
        .get_ai_performance(GetAiPerformanceRequest {
            range: Some(TimeRange {
                all_time: true,
                ..Default::default()
            }),
        })
        .await
        .expect("ai performance")
        .into_inner();
    ai.sources.iter().fold((0, 0), |(v, n), s| {
        (v + s.fixes_verified, n + s.fixes_not_verified)
    })
}

fn completed(d: &Decision) -> bool {
    d.state == DecisionState::Completed as i32 || d.state == DecisionState::Error as i32
}

#[tokio::test]
async fn an_incident_resolved_within_the_window_verifies_the_fix() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut s = TestServer::start_with(
        kube_config(&fake, None),
        Some(clock.clone() as Arc<dyn Clock>),
    )
    .await;
    let id = incident(&mut s.incidents).await;
    let d = decide(&mut s, &id).await;
    approve(&mut s.decisions, &d.token).await;
    pending(&mut s.decisions, &d.token).await;

    clock.advance(chrono::Duration::minutes(3));
    set_status(&mut s.incidents, &id, IncidentStatus::Resolved).await;
    let done = until(
        &mut s.decisions,
        &d.token,
        "the decision completes",
        completed,
    )
    .await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert_eq!(verification(&done), Some(VerificationState::Verified));
    let summary = done.verification.map(|v| v.summary).unwrap_or_default();
    assert!(
        summary.contains("RESOLVED") && summary.contains("3m after the rollout"),
        "{summary}"
    );
    assert_eq!(fake.writes(), 1);
    assert_eq!(fixes(&s).await, (1, 0), "counted as a verified fix");

    // A resolved incident keeps its completed decision.
    let again = decide(&mut s, &id).await;
    assert_eq!(again.token, d.token);
    s.stop().await;
}

#[tokio::test]
async fn an_incident_still_firing_at_the_end_of_the_window_fails_verification() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut s = TestServer::start_with(
        kube_config(&fake, None),
        Some(clock.clone() as Arc<dyn Clock>),
    )
    .await;
    let id = incident(&mut s.incidents).await;
    let d = decide(&mut s, &id).await;
    approve(&mut s.decisions, &d.token).await;
    pending(&mut s.decisions, &d.token).await;

    clock.advance(chrono::Duration::minutes(10));
    let done = until(
        &mut s.decisions,
        &d.token,
        "the decision completes",
        completed,
    )
    .await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert_eq!(verification(&done), Some(VerificationState::Failed));
    let summary = done.verification.map(|v| v.summary).unwrap_or_default();
    assert!(
        summary.contains("still firing at the end of the 10m window"),
        "{summary}"
    );

    // The incident stays open, and its next decision is a new token.
    let again = decide(&mut s, &id).await;
    assert_ne!(again.token, d.token);
    assert_eq!(
        fake.writes(),
        1,
        "verification never runs the command again"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_rollout_that_never_completes_fails_verification() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    fake.rollouts(Rollouts::Stall);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    // The rollout timeout is real time (1 s here, waited out as the
    // behaviour under test).
    let mut s = TestServer::start_with(
        Config {
            executor_rollout_timeout: Duration::from_secs(1),
            ..kube_config(&fake, None)
        },
        Some(clock.clone() as Arc<dyn Clock>),
    )
    .await;
    let id = incident(&mut s.incidents).await;
    let d = decide(&mut s, &id).await;
    approve(&mut s.decisions, &d.token).await;
    let done = until(
        &mut s.decisions,
        &d.token,
        "the decision completes",
        completed,
    )
    .await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert_eq!(verification(&done), Some(VerificationState::Failed));
    let summary = done.verification.map(|v| v.summary).unwrap_or_default();
    assert!(
        summary.contains("the rollout failed") && summary.contains("did not finish within 1s"),
        "{summary}"
    );
    let again = decide(&mut s, &id).await;
    assert_ne!(again.token, d.token);
    s.stop().await;
}

/// A replica killed while verifying leaves the decision EXECUTING with its
/// verification PENDING; another replica takes the lease over once it ran
/// out, does not restart the workload again, and finishes the watch.
#[tokio::test]
async fn a_replica_killed_mid_verification_is_taken_over_without_running_again() {
    let redis = RedisServer::start();
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let args = fake.replica_args(&redis.url(), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = VerdictProcess::start(&args, &[]).await;
    let mut client = DecisionServiceClient::new(a.serving_channel().await);
    let mut incidents = IncidentServiceClient::new(a.serving_channel().await);
    let id = incident(&mut incidents).await;
    let token = client
        .get_or_create_decision(verdict::proto::GetOrCreateDecisionRequest {
            incident_id: id.clone(),
            wait: true,
            ..Default::default()
        })
        .await
        .expect("decide")
        .into_inner()
        .decision
        .expect("decision")
        .token;
    approve(&mut client, &token).await;
    pending(&mut client, &token).await;
    a.kill();

    let mut b = TestServer::start(Config {
        executor_lease_ttl: Duration::from_millis(600),
        sweep_interval: Duration::from_millis(50),
        ..kube_config(&fake, Some(&redis))
    })
    .await;
    set_status(&mut b.incidents, &id, IncidentStatus::Resolved).await;
    let done = until(
        &mut b.decisions,
        &token,
        "the decision completes",
        completed,
    )
    .await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert_eq!(verification(&done), Some(VerificationState::Verified));
    assert_eq!(fake.writes(), 1, "the restart ran once");
    b.stop().await;
}

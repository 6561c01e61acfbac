//! The `kubernetes` executor against a fake API server (`common::fake_kube`):
//! restart and scale as kubectl sends them, the refusals (paused, namespace
//! allowlist, RBAC, missing object), the server-side dry run, and exactly
//! once across replicas — one killed after its write landed, another taking
//! its execution over without a second rollout. No real cluster is used.

use crate::common;
use common::fake_kube::{FakeKube, Rollouts};
use common::{IncidentBuilder, RedisServer, TestServer, VerdictProcess, config, decide, within};
use std::time::Duration;
use verdict::config::Config;
use verdict::domain::proposal::WorkloadKind;
use verdict::domain::{CommandVerb, K8sName, RemediationCommand};
use verdict::executor::kubernetes::{KubernetesExecutor, RESTARTED_AT};
use verdict::executor::{ExecError, Executor, ExecutorSettings, Run};
use verdict::manager::ExecutorKind;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::{ApproveDecisionRequest, DecisionState, WatchDecisionRequest};

const WAIT: Duration = Duration::from_secs(20);

fn kube_config(fake: &FakeKube, redis: Option<&RedisServer>) -> Config {
    Config {
        executor: ExecutorKind::Kubernetes,
        executor_namespaces: vec!["shop".into()],
        executor_kubeconfig: Some(fake.kubeconfig()),
        // Verification has its own tests (`verify.rs`): here a decision
        // completes once its rollout finished.
        executor_verify_window: Duration::ZERO,
        ..config(redis)
    }
}

async fn incident(s: &mut TestServer, alert: &str) -> String {
    s.incidents
        .create_incident(
            IncidentBuilder::alerting("Checkout in trouble", alert, "checkout").request(),
        )
        .await
        .expect("create incident")
        .into_inner()
        .incident
        .expect("incident")
        .id
}

/// Issues the incident's decision and waits (on the watch stream) until
/// its dry run is recorded.
async fn decide_checked(s: &mut TestServer, id: &str) -> verdict::proto::Decision {
    let d = decide(s, id).await;
    let mut stream = s
        .decisions
        .watch_decision(WatchDecisionRequest {
            token: d.token.clone(),
            after_version: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    within(WAIT, "the dry run is recorded", async {
        loop {
            let d = stream
                .message()
                .await
                .expect("stream")
                .expect("open")
                .decision
                .expect("decision");
            if d.dry_run.is_some() {
                return d;
            }
        }
    })
    .await
}

/// Real (not dry-run) requests the fake saw, as `METHOD path`.
fn real_requests(fake: &FakeKube) -> Vec<String> {
    fake.seen()
        .into_iter()
        .filter(|r| !r.query.contains("dryRun"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Approves and waits (on the watch stream) until the decision leaves
/// EXECUTING; returns it.
async fn approve_and_finish(
    client: &mut DecisionServiceClient<tonic::transport::Channel>,
    token: &str,
) -> verdict::proto::Decision {
    let mut stream = client
        .watch_decision(WatchDecisionRequest {
            token: token.into(),
            after_version: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    client
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: token.into(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect("approve");
    within(WAIT, "the decision finishes executing", async {
        loop {
            let d = stream
                .message()
                .await
                .expect("stream")
                .expect("open")
                .decision
                .expect("decision");
            if d.state == DecisionState::Completed as i32 || d.state == DecisionState::Error as i32
            {
                return d;
            }
        }
    })
    .await
}

fn kubectl(d: &verdict::proto::Decision) -> String {
    d.proposal
        .as_ref()
        .map(|p| p.kubectl.clone())
        .unwrap_or_default()
}

fn restarted_at(fake: &FakeKube, name: &str) -> Option<String> {
    fake.object("deployments", "shop", name)?["spec"]["template"]["metadata"]["annotations"]
        [RESTARTED_AT]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn an_approved_restart_patches_the_template_like_kubectl_once() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let mut s = TestServer::start(kube_config(&fake, None)).await;
    let id = incident(&mut s, "PodCrashLooping").await;
    let d = decide_checked(&mut s, &id).await;
    assert_eq!(
        kubectl(&d),
        "kubectl rollout restart deployment/checkout -n shop"
    );
    let dry = d.dry_run.clone().expect("dry run");
    assert!(dry.would_succeed, "{dry:?}");
    assert!(dry.summary.starts_with("would succeed"), "{dry:?}");
    assert_eq!(fake.writes(), 0, "the dry run persisted nothing");
    let before = real_requests(&fake).len();

    let done = approve_and_finish(&mut s.decisions, &d.token).await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert_eq!(
        done.output,
        "deployment.apps/checkout -n shop restarted; deployment \"checkout\" successfully rolled out"
    );
    assert_eq!(fake.writes(), 1);
    let obj = fake
        .object("deployments", "shop", "checkout")
        .expect("object");
    assert_eq!(obj["metadata"]["generation"], 2, "one new rollout");
    assert!(restarted_at(&fake, "checkout").is_some());
    // The look before running (unchanged since the dry run), then
    // kubectl's requests: read (paused?), then the strategic-merge patch.
    assert_eq!(
        real_requests(&fake)[before..],
        [
            "GET /shop/deployments/checkout",
            "GET /shop/deployments/checkout",
            "PATCH /shop/deployments/checkout",
            "GET /shop/deployments/checkout"
        ],
        "after the dry run's requests; the last read is the rollout status"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_approved_scale_patches_the_scale_subresource() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 1, false);
    let mut s = TestServer::start(kube_config(&fake, None)).await;
    let id = incident(&mut s, "HighLatency").await;
    let d = decide_checked(&mut s, &id).await;
    assert_eq!(
        kubectl(&d),
        "kubectl scale deployment/checkout --replicas=3 -n shop"
    );
    assert!(d.dry_run.as_ref().is_some_and(|r| r.would_succeed));

    let done = approve_and_finish(&mut s.decisions, &d.token).await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    let obj = fake
        .object("deployments", "shop", "checkout")
        .expect("object");
    assert_eq!(obj["spec"]["replicas"], 3);
    // The dry run's read of what it checked, the look before running
    // (unchanged), the patch, the rollout status.
    assert_eq!(
        real_requests(&fake),
        [
            "GET /shop/deployments/checkout",
            "GET /shop/deployments/checkout",
            "PATCH /shop/deployments/checkout/scale",
            "GET /shop/deployments/checkout"
        ]
    );
    s.stop().await;
}

async fn approval_refused(s: &mut TestServer, token: &str) -> tonic::Status {
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: token.into(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect_err("not approvable")
}

#[tokio::test]
async fn a_paused_deployment_fails_its_dry_run_and_cannot_be_approved() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, true);
    let mut s = TestServer::start(kube_config(&fake, None)).await;
    let id = incident(&mut s, "PodCrashLooping").await;
    let d = decide_checked(&mut s, &id).await;
    let dry = d.dry_run.clone().expect("dry run");
    assert!(!dry.would_succeed);
    assert!(dry.summary.contains("paused"), "{dry:?}");

    let refused = approval_refused(&mut s, &d.token).await;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(refused.message().contains("paused"), "{refused:?}");
    assert_eq!(fake.writes(), 0);
    let now = common::history(&s, &id).await;
    assert_eq!(
        now[0].state,
        DecisionState::Ready as i32,
        "still READY, unchanged"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_namespace_outside_the_allowlist_is_never_contacted() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let config = Config {
        executor_namespaces: vec!["payments".into()],
        ..kube_config(&fake, None)
    };
    let mut s = TestServer::start(config).await;
    let id = incident(&mut s, "PodCrashLooping").await;
    let d = decide_checked(&mut s, &id).await;
    let dry = d.dry_run.clone().expect("dry run");
    assert!(!dry.would_succeed);
    assert!(dry.summary.contains("allowlist"), "{dry:?}");
    let refused = approval_refused(&mut s, &d.token).await;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(fake.seen().is_empty(), "nothing was sent to the cluster");
    s.stop().await;
}

fn command(verb: CommandVerb, name: &str, ns: &str, replicas: Option<u32>) -> RemediationCommand {
    RemediationCommand {
        verb,
        kind: WorkloadKind::Deployment,
        name: K8sName::parse(name).expect("name"),
        namespace: K8sName::parse(ns).expect("namespace"),
        replicas,
    }
}

async fn executor(fake: &FakeKube) -> KubernetesExecutor {
    KubernetesExecutor::connect(ExecutorSettings {
        namespaces: vec!["shop".into(), "locked".into()],
        kubeconfig: Some(fake.kubeconfig()),
        ..ExecutorSettings::default()
    })
    .await
    .expect("connect")
}

#[tokio::test]
async fn the_dry_run_asks_the_server_and_changes_nothing() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    fake.add_deployment("locked", "checkout", 2, false);
    fake.forbid("locked");
    let ex = executor(&fake).await;
    let run = Run::at(chrono::Utc::now());
    let before = fake.object("deployments", "shop", "checkout");

    let ok = ex
        .check(
            &command(CommandVerb::RolloutRestart, "checkout", "shop", None),
            &run,
        )
        .await
        .expect("would succeed");
    assert!(ok.summary.starts_with("would succeed"), "{}", ok.summary);
    let ok = ex
        .check(
            &command(CommandVerb::Scale, "checkout", "shop", Some(5)),
            &run,
        )
        .await
        .expect("would succeed");
    assert!(ok.summary.contains("scaled"), "{}", ok.summary);
    assert_eq!(
        fake.object("deployments", "shop", "checkout"),
        before,
        "nothing persisted"
    );
    assert_eq!(fake.writes(), 0);
    let patches: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(
        patches.iter().all(|r| r.query.contains("dryRun=All")),
        "{patches:?}"
    );

    let missing = ex
        .check(
            &command(CommandVerb::RolloutRestart, "nope", "shop", None),
            &run,
        )
        .await;
    assert!(
        matches!(missing, Err(ExecError::NotFound(_))),
        "{missing:?}"
    );
    let forbidden = ex
        .check(
            &command(CommandVerb::Scale, "checkout", "locked", Some(2)),
            &run,
        )
        .await;
    assert!(
        matches!(forbidden, Err(ExecError::Forbidden(_))),
        "{forbidden:?}"
    );
    let undo = ex
        .check(
            &command(CommandVerb::RolloutUndo, "checkout", "shop", None),
            &run,
        )
        .await;
    assert!(
        matches!(&undo, Err(ExecError::Refused(m)) if m.contains("no rollout history")),
        "{undo:?}"
    );
}

#[tokio::test]
async fn running_the_same_restart_twice_changes_nothing_the_second_time() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let ex = executor(&fake).await;
    let run = Run::at(chrono::Utc::now());
    let cmd = command(CommandVerb::RolloutRestart, "checkout", "shop", None);
    ex.execute(&cmd, &run).await.expect("first");
    let after_first = fake.object("deployments", "shop", "checkout");
    ex.execute(&cmd, &run).await.expect("second");
    assert_eq!(fake.object("deployments", "shop", "checkout"), after_first);
    assert_eq!(fake.writes(), 1, "one rollout, not two");
}

/// Replica A wins the approval and its restart lands, then it is killed
/// before it hears back. Replica B's sweep finds the execution once A's
/// lease ran out, takes it over, sends the identical patch (a no-op) and
/// completes the decision: one rollout, one COMPLETED.
#[tokio::test]
async fn a_replica_killed_mid_execution_is_taken_over_without_a_second_rollout() {
    let redis = RedisServer::start();
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    fake.hang_after_write(true);
    let args = fake.replica_args(&redis.url(), &["--executor-verify-window", "0s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = VerdictProcess::start(&args, &[]).await;
    let mut client = DecisionServiceClient::new(a.serving_channel().await);
    let mut incidents = verdict::proto::incident_service_client::IncidentServiceClient::new(
        a.serving_channel().await,
    );
    let id = incidents
        .create_incident(
            IncidentBuilder::alerting("Checkout in trouble", "PodCrashLooping", "checkout")
                .request(),
        )
        .await
        .expect("create")
        .into_inner()
        .incident
        .expect("incident")
        .id;
    let d = client
        .get_or_create_decision(verdict::proto::GetOrCreateDecisionRequest {
            incident_id: id,
            wait: true,
            ..Default::default()
        })
        .await
        .expect("decide")
        .into_inner()
        .decision
        .expect("decision");
    client
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect("approve");
    within(
        WAIT,
        "replica A's restart lands",
        fake.until(|f| f.writes() == 1),
    )
    .await;
    let stamp = restarted_at(&fake, "checkout");
    a.kill();
    fake.hang_after_write(false);

    let (b, done) = take_over(&fake, &redis, &d.token, "replica B completes the execution").await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert_eq!(fake.writes(), 1, "B's patch changed nothing: one rollout");
    assert_eq!(
        restarted_at(&fake, "checkout"),
        stamp,
        "the same annotation value"
    );
    let patches = real_requests(&fake)
        .iter()
        .filter(|r| r.starts_with("PATCH"))
        .count();
    assert_eq!(patches, 2, "A's patch and B's identical one");
    // The EXECUTING index is empty again.
    let mut conn = redis.conn().await;
    let left: i64 = redis::cmd("ZCARD")
        .arg("verdict:executing")
        .query_async(&mut conn)
        .await
        .expect("zcard");
    assert_eq!(left, 0);
    b.stop().await;
}

#[tokio::test]
async fn a_statefulset_is_restarted_and_scaled_through_its_own_api() {
    let fake = FakeKube::start().await;
    fake.add_statefulset("shop", "ledger", 1);
    let ex = executor(&fake).await;
    let run = Run::at(chrono::Utc::now());
    let mut cmd = command(CommandVerb::RolloutRestart, "ledger", "shop", None);
    cmd.kind = WorkloadKind::StatefulSet;
    let out = ex.execute(&cmd, &run).await.expect("restart");
    assert_eq!(out.summary, "statefulset.apps/ledger -n shop restarted");
    cmd.verb = CommandVerb::Scale;
    cmd.replicas = Some(2);
    ex.execute(&cmd, &run).await.expect("scale");
    let obj = fake
        .object("statefulsets", "shop", "ledger")
        .expect("object");
    assert_eq!(obj["spec"]["replicas"], 2);
    assert!(obj["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT].is_string());
    let paths: Vec<String> = fake
        .seen()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            "PATCH /shop/statefulsets/ledger",
            "PATCH /shop/statefulsets/ledger/scale"
        ]
    );
}

#[tokio::test]
async fn a_rollout_past_its_progress_deadline_ends_in_error() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    fake.rollouts(Rollouts::Fail);
    let mut s = TestServer::start(kube_config(&fake, None)).await;
    let id = incident(&mut s, "PodCrashLooping").await;
    let d = decide_checked(&mut s, &id).await;
    let done = approve_and_finish(&mut s.decisions, &d.token).await;
    assert_eq!(done.state, DecisionState::Error as i32, "{done:?}");
    assert!(
        done.output.contains("exceeded its progress deadline"),
        "{}",
        done.output
    );
    assert_eq!(fake.writes(), 1, "the restart itself ran");
    s.stop().await;
}

/// The rollout never brings up a new replica: after the rollout timeout
/// (1 s here, waited out as the behaviour under test) the decision is ERROR.
#[tokio::test]
async fn a_rollout_that_never_completes_times_out_in_error() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    fake.rollouts(Rollouts::Stall);
    let mut s = TestServer::start(Config {
        executor_rollout_timeout: Duration::from_secs(1),
        ..kube_config(&fake, None)
    })
    .await;
    let id = incident(&mut s, "PodCrashLooping").await;
    let d = decide_checked(&mut s, &id).await;
    let done = approve_and_finish(&mut s.decisions, &d.token).await;
    assert_eq!(done.state, DecisionState::Error as i32, "{done:?}");
    assert!(
        done.output.contains("did not finish within 1s")
            && done
                .output
                .contains("0 out of 2 new replicas have been updated"),
        "{}",
        done.output
    );
    s.stop().await;
}

/// A Deployment at revision 3 (image app:3) with revisions 1 and 2 behind
/// it, annotated as `kubectl apply` and the controller leave it.
async fn with_history(fake: &FakeKube) -> KubernetesExecutor {
    fake.add_deployment("shop", "checkout", 2, false);
    fake.add_history(
        "shop",
        "checkout",
        &[(1, "app:1"), (2, "app:2"), (3, "app:3")],
        serde_json::json!({"team": "shop"}),
    );
    executor(fake).await
}

fn image(fake: &FakeKube) -> serde_json::Value {
    fake.object("deployments", "shop", "checkout")
        .expect("object")["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone()
}

#[tokio::test]
async fn a_rollback_restores_the_previous_revision_exactly_as_kubectl_does() {
    let fake = FakeKube::start().await;
    let ex = with_history(&fake).await;
    let undo = command(CommandVerb::RolloutUndo, "checkout", "shop", None);
    let before = fake.object("deployments", "shop", "checkout");

    // The dry run chooses the previous revision and persists nothing.
    let checked = ex
        .check(&undo, &Run::at(chrono::Utc::now()))
        .await
        .expect("check");
    assert_eq!(
        checked.summary,
        "would succeed: deployment.apps/checkout -n shop rolled back to revision 2 (server dry run)"
    );
    let target = checked
        .observed
        .as_ref()
        .and_then(|o| o.rollback_to.clone())
        .expect("a target");
    assert_eq!(target.replica_set, "checkout-h2x1");
    assert_eq!(target.revision, 2);
    assert_eq!(fake.object("deployments", "shop", "checkout"), before);
    assert_eq!(fake.writes(), 0);
    assert!(
        fake.seen()
            .iter()
            .any(|r| r.method == "PATCH" && r.query.contains("dryRun=All")),
        "the patch was sent, dry"
    );

    // Run to that target: the template of revision 2 without its
    // pod-template-hash, the annotations merged as kubectl merges them.
    let run = Run {
        rollback_to: Some(target.clone()),
        ..Run::at(chrono::Utc::now())
    };
    let done = ex.execute(&undo, &run).await.expect("rollback");
    assert_eq!(
        done.summary,
        "deployment.apps/checkout -n shop rolled back to revision 2"
    );
    assert_eq!(fake.writes(), 1);
    let obj = fake
        .object("deployments", "shop", "checkout")
        .expect("object");
    assert_eq!(
        obj["spec"]["template"],
        serde_json::json!({
            "metadata": {"labels": {"app": "checkout"}},
            "spec": {"containers": [{"name": "app", "image": "app:2"}]}
        })
    );
    assert_eq!(
        obj["metadata"]["annotations"],
        serde_json::json!({
            // The Deployment's own (kubectl's annotationsToSkip)…
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}",
            // …and the ReplicaSet's others; its desired/max-replicas are
            // skipped and the Deployment's "team" is gone, as with kubectl.
            "note": "built from app:2"
        })
    );
    assert_eq!(obj["metadata"]["generation"], 2, "a new rollout");

    // The attempt that takes over sends the same run: the template already
    // matches, so it skips — where a fresh `rollout undo` would go on.
    let again = ex.execute(&undo, &run).await.expect("second run");
    assert_eq!(
        again.summary,
        "deployment.apps/checkout -n shop skipped rollback (current template already matches revision 2)"
    );
    assert_eq!(fake.writes(), 1, "one rollback, not two");
    assert_eq!(image(&fake), "app:2");
}

#[tokio::test]
async fn a_rollback_needs_history_an_unpaused_deployment_and_its_approved_target() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "fresh", 1, false);
    fake.add_deployment("shop", "held", 1, true);
    fake.add_history("shop", "held", &[(1, "a"), (2, "b")], serde_json::json!({}));
    let ex = with_history(&fake).await;
    let run = Run::at(chrono::Utc::now());

    let none = ex
        .check(
            &command(CommandVerb::RolloutUndo, "fresh", "shop", None),
            &run,
        )
        .await;
    assert!(
        matches!(&none, Err(ExecError::Refused(m)) if m == "no rollout history found for deployment \"fresh\""),
        "{none:?}"
    );
    let paused = ex
        .check(
            &command(CommandVerb::RolloutUndo, "held", "shop", None),
            &run,
        )
        .await;
    assert!(
        matches!(&paused, Err(ExecError::Refused(m)) if m.contains("paused")),
        "{paused:?}"
    );
    let gone = ex
        .execute(
            &command(CommandVerb::RolloutUndo, "checkout", "shop", None),
            &Run {
                rollback_to: Some(verdict::domain::RollbackTarget {
                    replica_set: "checkout-deleted".into(),
                    revision: 7,
                }),
                ..run.clone()
            },
        )
        .await;
    assert!(
        matches!(&gone, Err(ExecError::NotFound(m)) if m.contains("checkout-deleted")),
        "{gone:?}"
    );
    let mut sts = command(CommandVerb::RolloutUndo, "checkout", "shop", None);
    sts.kind = WorkloadKind::StatefulSet;
    assert!(matches!(
        ex.check(&sts, &run).await,
        Err(ExecError::Unsupported(_))
    ));
    assert_eq!(fake.writes(), 0, "nothing was changed");
    assert_eq!(image(&fake), "app:3");
}

/// The object changes between the dry run at READY and the approval
/// (someone scaled it): the replica compares resourceVersions before
/// running, re-checks it, records that, then runs.
#[tokio::test]
async fn an_object_changed_since_its_dry_run_is_rechecked_before_it_runs() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let mut s = TestServer::start(kube_config(&fake, None)).await;
    let id = incident(&mut s, "PodCrashLooping").await;
    let d = decide_checked(&mut s, &id).await;
    assert!(d.dry_run.as_ref().is_some_and(|r| r.would_succeed));
    fake.change(
        "deployments",
        "shop",
        "checkout",
        serde_json::json!({"spec": {"replicas": 4}}),
    );

    let done = approve_and_finish(&mut s.decisions, &d.token).await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert!(
        done.output.starts_with(
            "changed since its dry run (resourceVersion 1 → 2, generation 1 → 2); re-checked: would succeed: deployment.apps/checkout -n shop restarted (server dry run); deployment.apps/checkout -n shop restarted"
        ),
        "{}",
        done.output
    );
    let dry_patches = fake
        .seen()
        .iter()
        .filter(|r| r.method == "PATCH" && r.query.contains("dryRun=All"))
        .count();
    assert_eq!(dry_patches, 2, "the dry run at READY and the re-check");
    assert_eq!(fake.writes(), 2, "the change and the restart");
    s.stop().await;
}

/// Changed since the dry run, and now paused: the re-check refuses, the
/// command is not run and the decision ends in ERROR saying why.
#[tokio::test]
async fn a_changed_object_that_fails_its_recheck_is_not_run() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let mut s = TestServer::start(kube_config(&fake, None)).await;
    let id = incident(&mut s, "PodCrashLooping").await;
    let d = decide_checked(&mut s, &id).await;
    fake.change(
        "deployments",
        "shop",
        "checkout",
        serde_json::json!({"spec": {"paused": true}}),
    );
    let done = approve_and_finish(&mut s.decisions, &d.token).await;
    assert_eq!(done.state, DecisionState::Error as i32, "{done:?}");
    assert!(
        done.output
            .starts_with("changed since its dry run (resourceVersion 1 → 2")
            && done
                .output
                .contains("re-checked: refused: deployment.apps/checkout -n shop is paused"),
        "{}",
        done.output
    );
    assert_eq!(fake.writes(), 1, "only the change; no restart");
    assert!(restarted_at(&fake, "checkout").is_none());
    s.stop().await;
}

/// Replica A rolls back (to the revision its dry run chose) and is killed
/// before it hears back; replica B takes the execution over, restores the
/// same ReplicaSet — which it finds already restored, so it skips — where a
/// second `kubectl rollout undo` would have gone back one more revision.
#[tokio::test]
async fn a_replica_killed_mid_rollback_is_taken_over_without_a_second_undo() {
    let redis = RedisServer::start();
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    fake.add_history(
        "shop",
        "checkout",
        &[(1, "app:1"), (2, "app:2"), (3, "app:3")],
        serde_json::json!({}),
    );
    fake.hang_after_write(true);
    let args = fake.replica_args(&redis.url(), &["--executor-verify-window", "0s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = VerdictProcess::start(&args, &[]).await;
    let mut client = DecisionServiceClient::new(a.serving_channel().await);
    let mut incidents = verdict::proto::incident_service_client::IncidentServiceClient::new(
        a.serving_channel().await,
    );
    let id = incidents
        .create_incident(
            IncidentBuilder::alerting("Checkout failing", "HTTP5xxRate", "checkout").request(),
        )
        .await
        .expect("create")
        .into_inner()
        .incident
        .expect("incident")
        .id;
    let d = client
        .get_or_create_decision(verdict::proto::GetOrCreateDecisionRequest {
            incident_id: id,
            wait: true,
            ..Default::default()
        })
        .await
        .expect("decide")
        .into_inner()
        .decision
        .expect("decision");
    assert_eq!(
        kubectl(&d),
        "kubectl rollout undo deployment/checkout -n shop"
    );
    for actor in ["alice", "bob"] {
        let after = client
            .approve_decision(ApproveDecisionRequest {
                request_id: String::new(),
                token: d.token.clone(),
                actor: actor.into(),
                expected_version: 0,
            })
            .await
            .expect("approve")
            .into_inner()
            .decision
            .expect("decision");
        if after.state != DecisionState::Ready as i32 {
            break;
        }
    }
    within(
        WAIT,
        "replica A's rollback lands",
        fake.until(|f| f.writes() == 1),
    )
    .await;
    assert_eq!(image(&fake), "app:2");
    a.kill();
    fake.hang_after_write(false);

    let (b, done) = take_over(&fake, &redis, &d.token, "replica B completes the rollback").await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    // (Preceded by the re-check's note when the approval raced ahead of
    // the dry run at READY.)
    assert!(
        done.output.contains(
            "deployment.apps/checkout -n shop skipped rollback (current template already matches revision 2)"
        ),
        "{}",
        done.output
    );
    assert_eq!(fake.writes(), 1, "one rollback, not two");
    assert_eq!(image(&fake), "app:2", "not app:1");
    b.stop().await;
}

/// With `impersonate`, an approved command's writes carry
/// `Impersonate-User: <approver>` (so the cluster's RBAC decides for that
/// person); the dry run before approval (no approver yet) does not.
/// Without it, nothing is impersonated.
#[tokio::test]
async fn with_impersonation_the_writes_carry_the_approver() {
    let fake = FakeKube::start().await;
    fake.add_deployment("shop", "checkout", 2, false);
    let ex = KubernetesExecutor::connect(ExecutorSettings {
        namespaces: vec!["shop".into()],
        kubeconfig: Some(fake.kubeconfig()),
        impersonate: true,
        ..ExecutorSettings::default()
    })
    .await
    .expect("connect");
    let cmd = command(CommandVerb::RolloutRestart, "checkout", "shop", None);
    ex.check(&cmd, &Run::at(chrono::Utc::now()))
        .await
        .expect("dry run");
    let run = Run {
        approver: Some("alice@example.com".into()),
        ..Run::at(chrono::Utc::now())
    };
    ex.execute(&cmd, &run).await.expect("execute");
    let seen = fake.seen();
    let patches: Vec<_> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 2, "{seen:?}");
    assert_eq!(patches[0].impersonate, None, "the dry run is verdict's own");
    assert_eq!(
        patches[1].impersonate.as_deref(),
        Some("alice@example.com"),
        "the approved write is the approver's"
    );

    let plain = executor(&fake).await;
    plain.execute(&cmd, &run).await.expect("execute");
    assert!(
        fake.seen()[seen.len()..]
            .iter()
            .all(|r| r.impersonate.is_none()),
        "off by default"
    );
}

/// Starts a second replica with a short execution lease and waits until
/// the decision `token` leaves READY/EXECUTING there: the replica that
/// takes over an execution whose first replica was killed.
async fn take_over(
    fake: &FakeKube,
    redis: &RedisServer,
    token: &str,
    what: &str,
) -> (TestServer, verdict::proto::Decision) {
    let b = TestServer::start(Config {
        executor_lease_ttl: Duration::from_millis(600),
        sweep_interval: Duration::from_millis(50),
        ..kube_config(fake, Some(redis))
    })
    .await;
    let mut stream = b
        .decisions
        .clone()
        .watch_decision(WatchDecisionRequest {
            token: token.to_owned(),
            after_version: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let done = within(WAIT, what, async {
        loop {
            let d = stream
                .message()
                .await
                .expect("stream")
                .expect("open")
                .decision
                .expect("decision");
            if d.state != DecisionState::Executing as i32 && d.state != DecisionState::Ready as i32
            {
                return d;
            }
        }
    })
    .await;
    (b, done)
}

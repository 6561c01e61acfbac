//! The `kubectl` executor against a fake `kubectl` (a shell script written
//! by the test) that records its argv, one argument a line, and answers
//! like kubectl: the exact argv, no shell in between, the timeout (a
//! kubectl that hangs is killed), bounded output (one that prints 10 MB),
//! kubectl's errors, and the refusal to repeat an interrupted undo. Then
//! one decision end to end through a server using it.

use crate::common;
use common::{IncidentBuilder, TestServer, config, decide, within};
use std::path::{Path, PathBuf};
use std::time::Duration;
use verdict::config::Config;
use verdict::domain::proposal::WorkloadKind;
use verdict::domain::{CommandVerb, K8sName, RemediationCommand};
use verdict::executor::kubectl::{KubectlExecutor, OUTPUT_LIMIT};
use verdict::executor::{ExecError, Executor, ExecutorSettings, Rollout, Run};
use verdict::manager::ExecutorKind;
use verdict::proto::{ApproveDecisionRequest, DecisionState, WatchDecisionRequest};

/// A fake kubectl in its own directory: records every call's argv to
/// `argv.log` (a `--` line after each) and runs `body` for the answer.
struct FakeKubectl {
    dir: tempfile::TempDir,
}

impl FakeKubectl {
    fn new(body: &str) -> FakeKubectl {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("argv.log");
        let script = format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{}'; done\nprintf -- '--\\n' >> '{}'\n{body}\n",
            log.display(),
            log.display()
        );
        let path = dir.path().join("kubectl");
        std::fs::write(&path, script).expect("write script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        FakeKubectl { dir }
    }

    /// kubectl's answers for the calls the executor makes.
    fn answering() -> FakeKubectl {
        FakeKubectl::new(
            r#"case "$*" in
  *"jsonpath="*) echo "7 3" ;;
  *"rollout status"*) echo 'deployment "checkout" successfully rolled out' ;;
  *"--dry-run=server"*) echo "deployment.apps/checkout restarted (server dry run)" ;;
  *"rollout restart"*) echo "deployment.apps/checkout restarted" ;;
  *) echo "Error from server (NotFound): deployments.apps \"x\" not found" >&2; exit 1 ;;
esac"#,
        )
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("kubectl")
    }

    /// Every call so far, each its argv.
    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("argv.log")).unwrap_or_default();
        let mut calls = vec![];
        let mut cur = vec![];
        for line in text.lines() {
            if line == "--" {
                calls.push(std::mem::take(&mut cur));
            } else {
                cur.push(line.to_owned());
            }
        }
        calls
    }
}

fn settings(kubectl: &Path, timeout: Duration) -> ExecutorSettings {
    ExecutorSettings {
        namespaces: vec!["shop".into()],
        kubeconfig: Some("/etc/verdict/kubeconfig".into()),
        kubectl_path: kubectl.to_owned(),
        context: Some("prod-eu".into()),
        timeout,
        ..ExecutorSettings::default()
    }
}

fn restart() -> RemediationCommand {
    RemediationCommand {
        verb: CommandVerb::RolloutRestart,
        kind: WorkloadKind::Deployment,
        name: K8sName::parse("checkout").expect("name"),
        namespace: K8sName::parse("shop").expect("namespace"),
        replicas: None,
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[tokio::test]
async fn the_argv_is_exact_and_reaches_kubectl_without_a_shell() {
    let fake = FakeKubectl::answering();
    let ex = KubectlExecutor::new(settings(&fake.path(), Duration::from_secs(20)));
    let cmd = restart();
    let run = Run::at(chrono::Utc::now());

    let checked = ex.check(&cmd, &run).await.expect("check");
    assert_eq!(
        checked.summary,
        "would succeed: deployment.apps/checkout restarted (server dry run)"
    );
    let observed = checked.observed.expect("observed");
    assert_eq!(
        (observed.resource_version.as_str(), observed.generation),
        ("7", 3)
    );
    let done = ex.execute(&cmd, &run).await.expect("execute");
    assert_eq!(done.summary, "deployment.apps/checkout restarted");
    let rolled = ex.rollout(&cmd).await.expect("rollout");
    assert!(matches!(rolled, Rollout::Done(_)), "{rolled:?}");

    let global = ["--kubeconfig=/etc/verdict/kubeconfig", "--context=prod-eu"];
    let with = |rest: &[&str]| {
        let mut v = argv(&global);
        v.extend(argv(rest));
        v
    };
    assert_eq!(
        fake.calls(),
        vec![
            with(&[
                "get",
                "deployment/checkout",
                "-n",
                "shop",
                "-o",
                "jsonpath={.metadata.resourceVersion} {.metadata.generation}"
            ]),
            with(&[
                "rollout",
                "restart",
                "deployment/checkout",
                "-n",
                "shop",
                "--dry-run=server"
            ]),
            with(&["rollout", "restart", "deployment/checkout", "-n", "shop"]),
            with(&[
                "rollout",
                "status",
                "deployment/checkout",
                "-n",
                "shop",
                "--watch=false"
            ]),
        ]
    );
    // What a shell would have split or run can never be a name: the only
    // way into the argv is a validated label.
    for hostile in ["a;b", "$(reboot)", "a b", "--all", "x\ny", "`id`"] {
        assert!(K8sName::parse(hostile).is_err(), "{hostile:?}");
    }
}

#[tokio::test]
async fn a_namespace_outside_the_allowlist_never_starts_kubectl() {
    let fake = FakeKubectl::answering();
    let ex = KubectlExecutor::new(settings(&fake.path(), Duration::from_secs(20)));
    let mut cmd = restart();
    cmd.namespace = K8sName::parse("kube-system").expect("namespace");
    let r = ex.check(&cmd, &Run::at(chrono::Utc::now())).await;
    assert!(matches!(r, Err(ExecError::NamespaceNotAllowed(_))), "{r:?}");
    let r = ex.execute(&cmd, &Run::at(chrono::Utc::now())).await;
    assert!(matches!(r, Err(ExecError::NamespaceNotAllowed(_))), "{r:?}");
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn a_kubectl_that_hangs_is_killed_at_the_timeout() {
    let fake = FakeKubectl::new("exec sleep 60");
    let ex = KubectlExecutor::new(settings(&fake.path(), Duration::from_millis(300)));
    let r = within(
        Duration::from_secs(20),
        "the executor gives up",
        ex.execute(&restart(), &Run::at(chrono::Utc::now())),
    )
    .await;
    assert!(
        matches!(&r, Err(ExecError::Cluster(m)) if m.contains("no answer within 300ms; killed")),
        "{r:?}"
    );
}

#[tokio::test]
async fn ten_megabytes_of_output_are_cut_to_the_limit() {
    let fake = FakeKubectl::new("head -c 10485760 /dev/zero | tr '\\0' 'x'; exit 0");
    let ex = KubectlExecutor::new(settings(&fake.path(), Duration::from_secs(20)));
    let done = ex
        .execute(&restart(), &Run::at(chrono::Utc::now()))
        .await
        .expect("execute");
    let marker = format!(" … [output cut: {} more bytes]", 10_485_760 - OUTPUT_LIMIT);
    assert!(
        done.summary.ends_with(&marker),
        "{}",
        &done.summary[OUTPUT_LIMIT..]
    );
    assert_eq!(done.summary.len(), OUTPUT_LIMIT + marker.len());
}

#[tokio::test]
async fn kubectls_errors_and_an_interrupted_undo_are_reported_not_repeated() {
    let fake = FakeKubectl::answering();
    let ex = KubectlExecutor::new(settings(&fake.path(), Duration::from_secs(20)));
    let mut scale = restart();
    scale.verb = CommandVerb::Scale;
    scale.replicas = Some(3);
    let r = ex.execute(&scale, &Run::at(chrono::Utc::now())).await;
    assert!(matches!(r, Err(ExecError::NotFound(_))), "{r:?}");

    let mut undo = restart();
    undo.verb = CommandVerb::RolloutUndo;
    let calls = fake.calls().len();
    let resumed = Run {
        resumed: true,
        ..Run::at(chrono::Utc::now())
    };
    let r = ex.execute(&undo, &resumed).await;
    assert!(
        matches!(&r, Err(ExecError::Refused(m)) if m.contains("not repeated")),
        "{r:?}"
    );
    assert_eq!(fake.calls().len(), calls, "kubectl was not started");
}

/// A server with `executor = "kubectl"`: the dry run at READY, then the
/// approved restart and its rollout, all through the fake.
#[tokio::test]
async fn a_server_runs_an_approved_decision_through_kubectl() {
    let fake = FakeKubectl::answering();
    let mut s = TestServer::start(Config {
        executor: ExecutorKind::Kubectl,
        executor_namespaces: vec!["shop".into()],
        executor_kubectl_path: fake.path(),
        executor_verify_window: Duration::ZERO,
        ..config(None)
    })
    .await;
    let id = s
        .incidents
        .create_incident(
            IncidentBuilder::alerting("Checkout in trouble", "PodCrashLooping", "checkout")
                .request(),
        )
        .await
        .expect("create incident")
        .into_inner()
        .incident
        .expect("incident")
        .id;
    let d = decide(&mut s, &id).await;
    let mut stream = s
        .decisions
        .watch_decision(WatchDecisionRequest {
            token: d.token.clone(),
            after_version: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    within(Duration::from_secs(20), "the dry run is recorded", async {
        loop {
            let d = stream.message().await.expect("stream").expect("open");
            if d.decision
                .is_some_and(|d| d.dry_run.is_some_and(|r| r.would_succeed))
            {
                return;
            }
        }
    })
    .await;
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect("approve");
    let done = within(Duration::from_secs(20), "the decision completes", async {
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
    .await;
    assert_eq!(done.state, DecisionState::Completed as i32, "{done:?}");
    assert_eq!(
        done.output,
        "deployment.apps/checkout restarted; deployment \"checkout\" successfully rolled out"
    );
    let runs: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| {
            c.iter().any(|a| a == "restart") && !c.iter().any(|a| a.starts_with("--dry-run"))
        })
        .collect();
    assert_eq!(runs.len(), 1, "restarted once");
    s.stop().await;
}

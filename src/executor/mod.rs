//! Executors: what runs an approved command against the cluster.
//!
//! The decision manager decides *whether* and *when* a command runs (after
//! approval, under an execution lease so exactly one replica runs it); an
//! [`Executor`] only knows *how*. Implementations:
//!
//! - [`kubernetes::KubernetesExecutor`]: the Kubernetes API through kube-rs,
//!   never a shell (restart, scale, and `rollout undo` ported from kubectl).
//! - [`kubectl::KubectlExecutor`]: the `kubectl` binary, for clusters where
//!   only kubectl is allowed: an argv built from the structured command, no
//!   shell, a timeout, bounded output.
//!
//! The `external` and `dry-run` kinds need no executor: the manager leaves
//! the decision EXECUTING for an outside runner, or completes it at once.
//!
//! Architecture invariant: only this module speaks to a cluster, only
//! `kubernetes.rs` knows kube-rs and only `kubectl.rs` starts a process. Every command it runs is built from the
//! structured [`RemediationCommand`], whose names are validated labels.

pub mod kubectl;
pub mod kubernetes;
pub mod rollback;

use crate::domain::{Observed, RemediationCommand, RollbackTarget};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One run of a command. The same `Run` may be executed twice (a replica
/// took over an execution whose owner died mid-way), so executors derive
/// everything they write from it: a restart writes `stamp` as its
/// `restartedAt`, so running it again changes nothing.
#[derive(Debug, Clone)]
pub struct Run {
    /// When the command was approved; the restart annotation's value.
    pub stamp: DateTime<Utc>,
    /// For a rollback: the revision checked (and approved) to restore.
    /// None: choose kubectl's "previous revision" now (a dry run does).
    pub rollback_to: Option<RollbackTarget>,
    /// An earlier attempt may have run the command already (a replica
    /// took over). An executor that cannot make a command converge must
    /// refuse to repeat it rather than run it twice.
    pub resumed: bool,
    /// Who approved the command (the principal's subject); None for a dry
    /// run before approval. Impersonated when `impersonate` is on.
    pub approver: Option<String>,
}

impl Run {
    /// A first run stamped `stamp`, with nothing chosen yet.
    pub fn at(stamp: DateTime<Utc>) -> Run {
        Run {
            stamp,
            rollback_to: None,
            resumed: false,
            approver: None,
        }
    }
}

/// What an executor did (or, for [`Executor::check`], would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One line for the decision's `output`, e.g. "deployment.apps/api
    /// restarted".
    pub summary: String,
    /// The object as the check saw it (and a rollback's chosen revision);
    /// None when the executor cannot tell.
    pub observed: Option<Observed>,
}

impl Outcome {
    /// An outcome with nothing observed.
    pub fn said(summary: impl Into<String>) -> Outcome {
        Outcome {
            summary: summary.into(),
            observed: None,
        }
    }
}

/// Why a command did not (or would not) run. Each variant says what a
/// person needs to act on it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The namespace is not in `executor_namespaces`.
    #[error("namespace {0:?} is not in the executor's allowlist")]
    NamespaceNotAllowed(String),
    /// The target workload does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The cluster's RBAC refused the request.
    #[error("forbidden by RBAC: {0}")]
    Forbidden(String),
    /// The command cannot run on the object as it is (e.g. a paused
    /// Deployment cannot be restarted).
    #[error("refused: {0}")]
    Refused(String),
    /// The command ran but its rollout failed or did not finish in time.
    #[error("{0}")]
    RolloutFailed(String),
    /// The executor does not implement this verb.
    #[error("not supported by this executor: {0}")]
    Unsupported(String),
    /// The cluster could not be reached or answered with an error.
    #[error("cluster error: {0}")]
    Cluster(String),
    /// The object changed since its dry run and the re-check before running
    /// refused the command (or chose another rollback target than the one
    /// approved). Not run.
    #[error("{0}")]
    Changed(String),
}

/// Where a workload's rollout stands, as `kubectl rollout status` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Rolled out: every replica updated and available.
    Done(String),
    /// Still rolling out; the message says what it waits for.
    Progressing(String),
    /// Will not finish by itself (`ProgressDeadlineExceeded`).
    Failed(String),
}

/// Runs approved commands.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Where the rollout of the command's workload stands (checked after
    /// the command ran, until done, failed or out of time).
    async fn rollout(&self, command: &RemediationCommand) -> Result<Rollout, ExecError>;

    /// The target object's `resourceVersion` and `generation` now (one
    /// read), to compare with the dry run's before running. None when the
    /// executor cannot tell.
    async fn observe(&self, command: &RemediationCommand) -> Result<Option<Observed>, ExecError>;

    /// Checks the command against the cluster without changing anything
    /// (a server-side dry run of the exact request).
    async fn check(&self, command: &RemediationCommand, run: &Run) -> Result<Outcome, ExecError>;

    /// Runs the command. Safe to call again with the same `run` after a
    /// failure mid-way: the second call converges on the same state.
    async fn execute(&self, command: &RemediationCommand, run: &Run) -> Result<Outcome, ExecError>;
}

/// Settings of the executors and their lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorSettings {
    /// Namespaces commands may touch; empty = none (a cluster executor
    /// refuses everything until this is set).
    pub namespaces: Vec<String>,
    /// A kubeconfig file; None = infer (in-cluster service account, then
    /// `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The `kubectl` executor's binary (looked up in `$PATH` when not a
    /// path).
    pub kubectl_path: std::path::PathBuf,
    /// The `kubectl` executor's kubeconfig context; None = its current one.
    pub context: Option<String>,
    /// The `kubernetes` executor sends `Impersonate-User: <approver>` with
    /// the writes of an approved command, so the cluster's RBAC also
    /// decides what each approver may change.
    pub impersonate: bool,
    /// How long an execution lease lasts without renewal; the owner renews
    /// it every third of that. A replica that died is taken over after it.
    pub lease_ttl: Duration,
    /// Longest a single command may take against the cluster.
    pub timeout: Duration,
    /// How long after the command its rollout may take to finish; later,
    /// the decision ends in ERROR.
    pub rollout_timeout: Duration,
    /// How long after the rollout the incident may take to resolve before
    /// the fix counts as not verified; zero = no verification.
    pub verify_window: Duration,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            namespaces: Vec::new(),
            kubeconfig: None,
            kubectl_path: "kubectl".into(),
            context: None,
            impersonate: false,
            lease_ttl: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            rollout_timeout: Duration::from_secs(600),
            verify_window: Duration::from_secs(600),
        }
    }
}

impl ExecutorSettings {
    /// Whether commands may touch `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
    }

    /// Refuses settings that cannot work, naming each as a person writes it.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.lease_ttl >= Duration::from_millis(300),
            "executor_lease_ttl must be at least 300ms"
        );
        anyhow::ensure!(!self.timeout.is_zero(), "executor_timeout must be positive");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_is_exact_and_empty_allows_nothing() {
        let mut s = ExecutorSettings::default();
        assert!(!s.allows("default"));
        s.namespaces = vec!["payments".into()];
        assert!(s.allows("payments"));
        assert!(!s.allows("payment"));
        assert!(!s.allows("kube-system"));
    }
}

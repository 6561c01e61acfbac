//! The `kubectl` executor: for clusters where only kubectl is allowed.
//!
//! Every command is an argv built from the structured
//! [`RemediationCommand`] ([`RemediationCommand::argv`], the same line the
//! decision shows), started directly — never through a shell — so a name
//! can only ever be one argument (and names are validated labels anyway).
//! Each run has the executor timeout and is killed when it passes (or when
//! the attempt is dropped: `kill_on_drop`); stdout and stderr are captured
//! up to [`OUTPUT_LIMIT`] each and the rest is read and dropped, marked.
//!
//! - the dry run is the same argv with `--dry-run=server`;
//! - the observation before running is `kubectl get … -o jsonpath=` of
//!   `resourceVersion` and `generation`;
//! - the rollout is `kubectl rollout status --watch=false`.
//!
//! A `rollout undo` cannot be pinned to a revision across a crash with
//! kubectl alone (the restored revision is renumbered), so an attempt that
//! takes over an interrupted undo refuses to repeat it (a second undo
//! would go back one revision further); restart and scale converge.

use super::{ExecError, Executor, ExecutorSettings, Outcome, Rollout, Run};
use crate::domain::{CommandVerb, Observed, RemediationCommand};
use async_trait::async_trait;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes kept of each of stdout and stderr; the rest is read and dropped.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// Runs commands with the `kubectl` binary.
pub struct KubectlExecutor {
    settings: ExecutorSettings,
}

/// One finished kubectl run.
struct Ran {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

impl KubectlExecutor {
    pub fn new(settings: ExecutorSettings) -> Self {
        KubectlExecutor { settings }
    }

    /// The global flags, before the subcommand.
    fn global(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(k) = &self.settings.kubeconfig {
            v.push(format!("--kubeconfig={}", k.display()));
        }
        if let Some(c) = &self.settings.context {
            v.push(format!("--context={c}"));
        }
        v
    }

    /// Runs kubectl with `args` under the timeout; the output bounded.
    async fn kubectl(&self, args: Vec<String>) -> Result<Ran, ExecError> {
        let mut child = tokio::process::Command::new(&self.settings.kubectl_path)
            .args(self.global())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ExecError::Cluster(format!(
                    "cannot start {}: {e}",
                    self.settings.kubectl_path.display()
                ))
            })?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ExecError::Cluster("kubectl's output is not piped".into()));
        };
        let run = async {
            let (stdout, stderr, status) = tokio::join!(bounded(out), bounded(err), child.wait());
            (stdout, stderr, status)
        };
        match tokio::time::timeout(self.settings.timeout, run).await {
            Ok((stdout, stderr, status)) => {
                let status =
                    status.map_err(|e| ExecError::Cluster(format!("waiting for kubectl: {e}")))?;
                Ok(Ran {
                    success: status.success(),
                    status: status.to_string(),
                    stdout,
                    stderr,
                })
            }
            Err(_) => {
                // Dropping `child` kills it too; this makes it explicit.
                let _ = child.start_kill();
                Err(ExecError::Cluster(format!(
                    "kubectl {}: no answer within {}; killed",
                    args.first().map(String::as_str).unwrap_or_default(),
                    humantime::format_duration(self.settings.timeout)
                )))
            }
        }
    }

    fn allowed(&self, command: &RemediationCommand) -> Result<(), ExecError> {
        let ns = command.namespace.as_str();
        if self.settings.allows(ns) {
            Ok(())
        } else {
            Err(ExecError::NamespaceNotAllowed(ns.to_owned()))
        }
    }
}

/// Reads `r` to its end, keeping the first [`OUTPUT_LIMIT`] bytes and
/// marking how much was dropped. Reading on (rather than stopping) keeps a
/// chatty kubectl from blocking on a full pipe until the timeout.
async fn bounded(mut r: impl AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut dropped: u64 = 0;
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                let take = n.min(room);
                kept.extend_from_slice(&buf[..take]);
                dropped += (n - take) as u64;
            }
        }
    }
    let mut s = String::from_utf8_lossy(&kept).trim().to_owned();
    if dropped > 0 {
        s.push_str(&format!(" … [output cut: {dropped} more bytes]"));
    }
    s
}

/// `deployment/api -n shop`, as the argv names it.
fn target(command: &RemediationCommand) -> String {
    format!(
        "{}/{} -n {}",
        command.kind.as_str(),
        command.name,
        command.namespace
    )
}

/// kubectl's error output as one of ours (`Error from server (NotFound):
/// …` and the like).
fn failure(command: &RemediationCommand, ran: &Ran) -> ExecError {
    let said = if ran.stderr.is_empty() {
        &ran.stdout
    } else {
        &ran.stderr
    };
    if said.contains("(NotFound)") {
        ExecError::NotFound(target(command))
    } else if said.contains("(Forbidden)") {
        ExecError::Forbidden(said.clone())
    } else {
        ExecError::Cluster(format!("kubectl exited with {}: {said}", ran.status))
    }
}

#[async_trait]
impl Executor for KubectlExecutor {
    async fn observe(&self, command: &RemediationCommand) -> Result<Option<Observed>, ExecError> {
        self.allowed(command)?;
        let ran = self
            .kubectl(vec![
                "get".into(),
                format!("{}/{}", command.kind.as_str(), command.name),
                "-n".into(),
                command.namespace.to_string(),
                "-o".into(),
                "jsonpath={.metadata.resourceVersion} {.metadata.generation}".into(),
            ])
            .await?;
        if !ran.success {
            return Err(failure(command, &ran));
        }
        let mut parts = ran.stdout.split_whitespace();
        let (Some(rv), Some(generation)) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        Ok(generation.parse().ok().map(|generation| Observed {
            resource_version: rv.to_owned(),
            generation,
            rollback_to: None,
        }))
    }

    async fn check(&self, command: &RemediationCommand, _run: &Run) -> Result<Outcome, ExecError> {
        let observed = self.observe(command).await?;
        let mut args = command.argv();
        args.push("--dry-run=server".into());
        let ran = self.kubectl(args).await?;
        if !ran.success {
            return Err(failure(command, &ran));
        }
        Ok(Outcome {
            summary: format!("would succeed: {}", ran.stdout),
            observed,
        })
    }

    async fn execute(&self, command: &RemediationCommand, run: &Run) -> Result<Outcome, ExecError> {
        self.allowed(command)?;
        if run.resumed && command.verb == CommandVerb::RolloutUndo {
            return Err(ExecError::Refused(format!(
                "an interrupted rollout undo of {} is not repeated by the kubectl executor \
                 (a second undo goes back one revision further); check `kubectl rollout history`",
                target(command)
            )));
        }
        let ran = self.kubectl(command.argv()).await?;
        if !ran.success {
            return Err(failure(command, &ran));
        }
        Ok(Outcome::said(ran.stdout))
    }

    async fn rollout(&self, command: &RemediationCommand) -> Result<Rollout, ExecError> {
        let ran = self
            .kubectl(vec![
                "rollout".into(),
                "status".into(),
                format!("{}/{}", command.kind.as_str(), command.name),
                "-n".into(),
                command.namespace.to_string(),
                "--watch=false".into(),
            ])
            .await?;
        if !ran.success {
            if ran.stderr.contains("exceeded its progress deadline") {
                return Ok(Rollout::Failed(ran.stderr));
            }
            return Err(failure(command, &ran));
        }
        let done = [
            "successfully rolled out",
            "rolling update complete",
            "roll out complete",
        ]
        .iter()
        .any(|m| ran.stdout.contains(m));
        Ok(if done {
            Rollout::Done(ran.stdout)
        } else {
            Rollout::Progressing(ran.stdout)
        })
    }
}

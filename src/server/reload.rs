//! Configuration reloads (SIGHUP or a changed config file, see `main.rs`):
//! the credentials, the approval policy and the LLM answers' safety policy
//! swapped in a running server, and each reload — applied or refused — an
//! audit event (`config_reloaded`) on the chain of events with no incident.
//!
//! The event is written *before* anything is swapped, as every audited
//! change is (fail closed): when the trail cannot take it, the previous
//! configuration stays in force. A refused reload is recorded with its
//! reason and outcome `INVALID_ARGUMENT`; failing to record that is only
//! logged, since nothing changed. The detail names what changed — the
//! trigger, principals by subject, counts, the safety policy's hash — and
//! never a secret: no token digests, no keys, no file contents.

use crate::audit::Action;
use crate::auth::{Authenticator, Prepared};
use crate::config::Config;
use crate::engine::policy::Policy;
use crate::manager::{AuditLog, DecisionManager};
use anyhow::Context;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The RPC field of a reload's audit event (no RPC: verdict's own act).
const RELOAD_RPC: &str = "reload";

/// How long a reload waits for the audit sink to reopen its file.
const SINK_REOPEN: std::time::Duration = std::time::Duration::from_secs(5);

/// Outcome of a refused reload: the new configuration did not check.
const REFUSED: &str = "INVALID_ARGUMENT";

/// Applies a reloaded configuration's authentication, approval policy and
/// safety policy to a running server, without a restart.
#[derive(Clone)]
pub struct Reloader {
    pub(super) auth: Arc<Authenticator>,
    pub(super) decisions: Arc<DecisionManager>,
    /// The LLM answers' safety policy (None without an LLM).
    pub(super) safety: Option<Policy>,
    /// Where reloads are recorded (None: auditing off).
    pub(super) audit: Option<AuditLog>,
    /// What the configuration in force holds, to say what a reload changed.
    pub(super) in_force: Arc<Mutex<Summary>>,
    /// Reopens the audit sink's file (logrotate sends SIGHUP after moving
    /// it); None without a sink.
    pub(super) sink_reopen: Option<tokio::sync::mpsc::Sender<super::audit_sink::Reopen>>,
    /// The listener's TLS configuration (None: plain text).
    pub(super) tls: Option<Arc<super::tls::ServerTls>>,
}

/// What a configuration holds that a reload swaps, as the audit trail
/// describes it: names and counts, never secrets.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Summary {
    /// Subjects of the static bearer tokens.
    subjects: BTreeSet<String>,
    /// Whether JWTs are accepted.
    jwt: bool,
    approval_rules: usize,
    /// The safety policy's hash (None without an LLM).
    safety: Option<String>,
}

impl Summary {
    pub(super) fn of(config: &Config, safety: Option<&Policy>) -> Summary {
        Summary {
            subjects: config
                .auth_tokens
                .iter()
                .map(|t| t.subject.clone())
                .collect(),
            jwt: config.auth_settings().jwt.is_some(),
            approval_rules: config.approval_rules.len(),
            safety: safety.map(Policy::hash),
        }
    }

    /// `self` (the new configuration) described against `old`.
    fn describe(&self, old: &Summary) -> String {
        let added: Vec<&str> = self
            .subjects
            .difference(&old.subjects)
            .map(String::as_str)
            .collect();
        let removed: Vec<&str> = old
            .subjects
            .difference(&self.subjects)
            .map(String::as_str)
            .collect();
        let mut s = format!("principals {}", self.subjects.len());
        if !added.is_empty() {
            s += &format!(", added {}", added.join(" "));
        }
        if !removed.is_empty() {
            s += &format!(", removed {}", removed.join(" "));
        }
        s += &format!(
            "; jwt {}; approval rules {}",
            if self.jwt { "on" } else { "off" },
            self.approval_rules
        );
        if self.approval_rules != old.approval_rules {
            s += &format!(" (was {})", old.approval_rules);
        }
        if let Some(h) = &self.safety {
            let short = h.get(..12).unwrap_or(h);
            s += &format!("; safety policy {short}");
            if self.safety != old.safety {
                s += " (changed)";
            }
        }
        s
    }
}

/// What [`Reloader::check`] read and checked, to be swapped in.
struct Checked {
    /// The new safety policy (None without an LLM).
    safety: Option<Policy>,
    /// The TLS files in force after the reload (None: plain text).
    tls: Option<super::tls::TlsFiles>,
}

impl Reloader {
    /// The files besides the config file whose change triggers a reload
    /// (the TLS certificate, key and client CA in force): certificate
    /// managers rotate those without touching the config.
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        self.tls
            .as_ref()
            .map(|t| t.files().paths())
            .unwrap_or_default()
    }

    /// Swaps in the configuration `loaded` (as read from its file; an error
    /// when the file did not load) — or keeps the one in force and says
    /// why: a file that does not load, a configuration that does not
    /// check, one that would turn authentication off (every caller an
    /// anonymous admin — that takes a restart, where the start rules
    /// apply), or an audit trail that cannot record the reload. `trigger`
    /// says what asked for it (`SIGHUP`, the file's path), for the trail.
    pub async fn reload(
        &self,
        loaded: anyhow::Result<Config>,
        trigger: &str,
    ) -> anyhow::Result<()> {
        // First, so this reload's own event goes to the new file.
        if let Some(reopen) = &self.sink_reopen {
            let (done, reopened) = tokio::sync::oneshot::channel();
            if reopen.send_timeout(done, SINK_REOPEN).await.is_err()
                || tokio::time::timeout(SINK_REOPEN, reopened).await.is_err()
            {
                tracing::warn!("audit sink: not reopened in time");
            }
        }
        let prepared = match loaded.and_then(|c| self.check(&c).map(|p| (c, p))) {
            // A new JWKS URL is read before anything is swapped.
            Ok((c, p)) => self.prepare_auth(&c).await.map(|a| (c, p, a)),
            Err(e) => Err(e),
        };
        let (config, Checked { safety, tls }, auth) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // First line only: a parse error quotes the file below it.
                let why = format!("{e:#}");
                let why = why.lines().next().unwrap_or_default();
                self.record(REFUSED, &format!("{trigger}: NOT reloaded: {why}"))
                    .await
                    .unwrap_or_else(|err| {
                        tracing::error!(error = %err, "could not record a refused reload");
                    });
                return Err(e);
            }
        };
        let next = Summary::of(&config, safety.as_ref());
        let detail = {
            let old = self.in_force.lock().unwrap_or_else(|p| p.into_inner());
            format!("{trigger}: {}", next.describe(&old))
        };
        // Fail closed: no reload the trail does not hold.
        self.record("OK", &detail)
            .await
            .map_err(|e| anyhow::anyhow!("the audit trail cannot record the reload: {e}"))?;
        self.apply(&config, auth, safety.as_ref(), tls)?;
        *self.in_force.lock().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// Checks `config` before anything is swapped, so a bad one changes
    /// nothing; returns the new safety policy (read from its file).
    fn check(&self, config: &Config) -> anyhow::Result<Checked> {
        let settings = config.auth_settings();
        anyhow::ensure!(
            settings.enabled() || !self.auth.enabled(),
            "the new configuration has no credentials; a reload cannot turn authentication off (restart for that)"
        );
        // The TLS files are read and checked before anything is swapped.
        let tls = match (&self.tls, super::tls::TlsFiles::from_config(config)) {
            (Some(_), Some(files)) => {
                super::tls::ServerTls::check(&files).context("TLS")?;
                Some(files)
            }
            (None, None) => None,
            _ => anyhow::bail!("turning TLS on or off takes a restart"),
        };
        config.approval_policy().validate()?;
        // Builds the credentials once to check them (digests, JWT keys).
        Authenticator::new(&settings).map_err(anyhow::Error::msg)?;
        let safety = match &self.safety {
            Some(_) => Some(
                config
                    .engine_settings()
                    .policy()
                    .map_err(|e| anyhow::anyhow!("policy_file: {e}"))?,
            ),
            None => None,
        };
        Ok(Checked { safety, tls })
    }

    /// The new credentials, checked, with a JWKS URL that changed already
    /// read (None: authentication stays off).
    async fn prepare_auth(&self, config: &Config) -> anyhow::Result<Option<Prepared>> {
        let settings = config.auth_settings();
        if !settings.enabled() {
            return Ok(None);
        }
        let next = self.auth.prepare(&settings).map_err(anyhow::Error::msg)?;
        next.fetch().await.map_err(anyhow::Error::msg)?;
        Ok(Some(next))
    }

    /// Swaps the checked configuration in.
    fn apply(
        &self,
        config: &Config,
        auth: Option<Prepared>,
        safety: Option<&Policy>,
        tls: Option<super::tls::TlsFiles>,
    ) -> anyhow::Result<()> {
        let settings = config.auth_settings();
        if let Some(next) = auth {
            self.auth.install(next);
        }
        self.decisions.set_approval_policy(config.approval_policy());
        if let (Some(current), Some(files)) = (&self.tls, tls) {
            // Checked before; a file replaced in between is caught here and
            // still leaves the old certificate in force.
            current.reload(files).context("TLS")?;
            tracing::info!("TLS certificate reloaded");
        }
        if let (Some(current), Some(new)) = (&self.safety, safety) {
            current.reload_from(new);
            tracing::info!(hash = %new.hash(), "safety policy reloaded");
        }
        tracing::info!(
            tokens = settings.tokens.len(),
            rules = config.approval_rules.len(),
            "authentication and approval policy reloaded"
        );
        Ok(())
    }

    /// Appends the reload's event (a no-op with auditing off).
    async fn record(&self, outcome: &str, detail: &str) -> anyhow::Result<()> {
        if let Some(log) = &self.audit {
            log.system_event(Action::ConfigReloaded, RELOAD_RPC, outcome, detail)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(subjects: &[&str], rules: usize) -> Summary {
        Summary {
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            jwt: false,
            approval_rules: rules,
            safety: Some("0123456789abcdef".into()),
        }
    }

    #[test]
    fn the_detail_names_what_changed() {
        let old = summary(&["vera", "neo"], 1);
        let new = Summary {
            safety: Some("fedcba9876543210".into()),
            ..summary(&["neo", "trin"], 2)
        };
        assert_eq!(
            new.describe(&old),
            "principals 2, added trin, removed vera; jwt off; approval rules 2 (was 1); safety policy fedcba987654 (changed)"
        );
        assert_eq!(
            old.describe(&old),
            "principals 2; jwt off; approval rules 1; safety policy 0123456789ab"
        );
    }
}

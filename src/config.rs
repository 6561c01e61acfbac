//! `verdict serve` settings: one [`Config`] filled from an optional TOML
//! file, then `VERDICT_*` environment variables, then flags (later wins).
//! Defaults live in `Config::default` and nowhere else.

use crate::domain::Severity;
use crate::manager::ExecutorKind;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `verdict serve`. Every flag also reads a `VERDICT_*` variable,
/// and every setting may come from the `--config` TOML file (same names
/// with underscores: `listen`, `redis_url`, `token_ttl`, ...).
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below.
    #[arg(long, env = "VERDICT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on for gRPC, gRPC-Web and HTTP [default: 127.0.0.1:50051].
    #[arg(long, env = "VERDICT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Redis URL (redis://host:port/db). Without one (or with --dev) the
    /// in-memory store is used and nothing is persisted.
    #[arg(long, env = "VERDICT_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Use the in-memory store (nothing persisted; for trying verdict out).
    #[arg(long, env = "VERDICT_DEV")]
    pub dev: bool,
    /// Redis connections in the pool [default: 32].
    #[arg(long, env = "VERDICT_REDIS_POOL_SIZE", value_name = "N")]
    pub redis_pool_size: Option<u32>,
    /// How long a request waits for a Redis connection before failing with
    /// UNAVAILABLE [default: 1s].
    #[arg(long, env = "VERDICT_REDIS_POOL_WAIT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub redis_pool_wait: Option<Duration>,
    /// How long a decision token stays approvable [default: 1h].
    #[arg(long, env = "VERDICT_TOKEN_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub token_ttl: Option<Duration>,
    /// Analysis deadline when a caller gives none; the expert proposal is
    /// used when it passes [default: 30s].
    #[arg(long, env = "VERDICT_DECISION_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub decision_timeout: Option<Duration>,
    /// How long decision records (the history) are kept after their last
    /// change [default: 30days].
    #[arg(long, env = "VERDICT_HISTORY_RETENTION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub history_retention: Option<Duration>,
    /// TOML file of expert rules (default: the five built-in rules).
    #[arg(long, env = "VERDICT_RULES_FILE", value_name = "FILE")]
    pub rules_file: Option<PathBuf>,
    /// Upper bound of `replicas` in any scale command [default: 50].
    #[arg(long, env = "VERDICT_MAX_REPLICAS", value_name = "N")]
    pub max_replicas: Option<u32>,
    /// What runs after approval [default: external].
    #[arg(long, env = "VERDICT_EXECUTOR", value_enum)]
    pub executor: Option<ExecutorKind>,
    /// Largest accepted request message in bytes [default: 4194304].
    #[arg(long, env = "VERDICT_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// How long in-flight requests may take to finish on shutdown [default: 10s].
    #[arg(long, env = "VERDICT_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Most watch streams open at once on this replica [default: 20000].
    #[arg(long, env = "VERDICT_MAX_WATCHERS", value_name = "N")]
    pub max_watchers: Option<usize>,
    /// Log format [default: text].
    #[arg(long, env = "VERDICT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(flatten)]
    pub ingest: IngestArgs,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of a running server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub redis_url: Option<String>,
    pub dev: bool,
    pub redis_pool_size: u32,
    #[serde(with = "humantime_serde")]
    pub redis_pool_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub decision_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub history_retention: Duration,
    pub rules_file: Option<PathBuf>,
    pub max_replicas: u32,
    pub executor: ExecutorKind,
    pub max_message_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub max_watchers: usize,
    pub log_format: LogFormat,
    /// Alert ingestion (`[ingest]` in the TOML file).
    pub ingest: IngestConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            redis_url: None,
            dev: false,
            redis_pool_size: 32,
            redis_pool_wait: Duration::from_secs(1),
            token_ttl: Duration::from_secs(3600),
            decision_timeout: Duration::from_secs(30),
            history_retention: Duration::from_secs(30 * 24 * 3600),
            rules_file: None,
            max_replicas: 50,
            executor: ExecutorKind::External,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            max_watchers: 20_000,
            log_format: LogFormat::Text,
            ingest: IngestConfig::default(),
        }
    }
}

impl Config {
    /// File, then environment and flags (clap already merged those two).
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let mut c = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => Config::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => {$( if let Some(v) = args.$f.clone() { c.$f = v; } )*};
        }
        over!(
            listen,
            redis_pool_size,
            redis_pool_wait,
            token_ttl,
            decision_timeout,
            history_retention,
            max_replicas,
            executor,
            max_message_bytes,
            shutdown_grace,
            max_watchers,
            log_format
        );
        if args.redis_url.is_some() {
            c.redis_url = args.redis_url.clone();
        }
        if args.rules_file.is_some() {
            c.rules_file = args.rules_file.clone();
        }
        c.dev |= args.dev;
        c.ingest.apply(&args.ingest);
        c.validate()?;
        Ok(c)
    }

    /// Refuses settings that cannot work, with the setting's name.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.redis_pool_size >= 1,
            "redis_pool_size must be at least 1"
        );
        anyhow::ensure!(!self.token_ttl.is_zero(), "token_ttl must be positive");
        anyhow::ensure!(self.max_watchers >= 1, "max_watchers must be at least 1");
        anyhow::ensure!(
            !self.decision_timeout.is_zero(),
            "decision_timeout must be positive"
        );
        anyhow::ensure!(
            self.decision_timeout <= crate::manager::decisions::MAX_TIMEOUT,
            "decision_timeout must be at most 10m"
        );
        anyhow::ensure!(
            self.history_retention >= self.token_ttl,
            "history_retention must be at least token_ttl, so history outlives tokens"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.max_replicas),
            "max_replicas must be in 1..=10000"
        );
        anyhow::ensure!(
            (4096..=64 * 1024 * 1024).contains(&self.max_message_bytes),
            "max_message_bytes must be between 4 KiB and 64 MiB"
        );
        self.ingest.validate()?;
        Ok(())
    }

    /// Whether the in-memory store is used.
    pub fn in_memory(&self) -> bool {
        self.dev || self.redis_url.is_none()
    }
}

/// Flags of the alert ingestion (`IngestSignals` and the Alertmanager
/// webhook); in the TOML file they live in an `[ingest]` table.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Alert ingestion")]
pub struct IngestArgs {
    /// Labels whose values group alerts into one incident, comma-separated;
    /// an `incident_key` label overrides them [default: namespace,service].
    #[arg(
        long,
        env = "VERDICT_GROUP_BY",
        value_name = "LABELS",
        value_delimiter = ','
    )]
    pub group_by: Option<Vec<String>>,
    /// Extra `severity` label values and the incident severity each maps
    /// to, comma-separated (e.g. page=P0,high=P2); added to the built-in
    /// critical=P1, warning=P3, info=P4.
    #[arg(long, env = "VERDICT_SEVERITY_MAP", value_name = "VALUE=P0..P4", value_delimiter = ',', value_parser = parse_severity_entry)]
    pub severity_map: Option<Vec<(String, Severity)>>,
    /// Severity of an alert whose `severity` label is missing or not mapped
    /// [default: P3].
    #[arg(long, env = "VERDICT_DEFAULT_SEVERITY", value_name = "P0..P4", value_parser = parse_severity)]
    pub default_severity: Option<Severity>,
    /// Labels naming the affected service, in order of preference,
    /// comma-separated; only RFC 1123 values become remediation targets
    /// [default: service,app.kubernetes.io/name,app,deployment,job].
    #[arg(
        long,
        env = "VERDICT_SERVICE_LABELS",
        value_name = "LABELS",
        value_delimiter = ','
    )]
    pub service_labels: Option<Vec<String>>,
    /// Resolve an incident when every one of its alerts is resolved
    /// [default: true].
    #[arg(long, env = "VERDICT_AUTO_RESOLVE", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub auto_resolve: Option<bool>,
    /// Start a decision (without waiting) as soon as alerts open an
    /// incident, so the proposal is ready before a person looks
    /// [default: true].
    #[arg(long, env = "VERDICT_AUTO_DECIDE", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub auto_decide: Option<bool>,
    /// Name of the environment variable holding the bearer token the
    /// Alertmanager webhook must present (Alertmanager's
    /// `http_config.authorization`); unset: no token is required. The token
    /// itself is never written to config files or logs.
    #[arg(long, env = "VERDICT_WEBHOOK_TOKEN_ENV", value_name = "VAR")]
    pub webhook_token_env: Option<String>,
    /// Largest accepted webhook body in bytes; larger bodies get 413
    /// [default: 4194304].
    #[arg(long, env = "VERDICT_MAX_WEBHOOK_BYTES", value_name = "BYTES")]
    pub max_webhook_bytes: Option<usize>,
}

/// Settings of the alert ingestion.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    pub group_by: Vec<String>,
    /// Extra or overriding entries of the severity mapping (keys are
    /// matched case-insensitively).
    pub severity_map: BTreeMap<String, Severity>,
    pub default_severity: Severity,
    pub service_labels: Vec<String>,
    pub auto_resolve: bool,
    pub auto_decide: bool,
    pub webhook_token_env: Option<String>,
    pub max_webhook_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            group_by: vec!["namespace".into(), "service".into()],
            severity_map: BTreeMap::new(),
            default_severity: Severity::P3,
            service_labels: [
                "service",
                "app.kubernetes.io/name",
                "app",
                "deployment",
                "job",
            ]
            .map(String::from)
            .to_vec(),
            auto_resolve: true,
            auto_decide: true,
            webhook_token_env: None,
            max_webhook_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The severity mapping every deployment starts from; `severity_map`
/// entries are added to it (and win).
pub const BUILTIN_SEVERITIES: [(&str, Severity); 3] = [
    ("critical", Severity::P1),
    ("warning", Severity::P3),
    ("info", Severity::P4),
];

impl IngestConfig {
    /// Flags and environment override the file.
    fn apply(&mut self, args: &IngestArgs) {
        if let Some(v) = &args.group_by {
            self.group_by = v.clone();
        }
        if let Some(v) = &args.severity_map {
            self.severity_map.extend(v.iter().cloned());
        }
        if let Some(v) = args.default_severity {
            self.default_severity = v;
        }
        if let Some(v) = &args.service_labels {
            self.service_labels = v.clone();
        }
        if let Some(v) = args.auto_resolve {
            self.auto_resolve = v;
        }
        if let Some(v) = args.auto_decide {
            self.auto_decide = v;
        }
        if args.webhook_token_env.is_some() {
            self.webhook_token_env = args.webhook_token_env.clone();
        }
        if let Some(v) = args.max_webhook_bytes {
            self.max_webhook_bytes = v;
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let label_ok = |l: &String| !l.trim().is_empty() && l.len() <= 128;
        anyhow::ensure!(
            !self.group_by.is_empty() && self.group_by.len() <= 16,
            "ingest.group_by must name 1 to 16 labels"
        );
        anyhow::ensure!(
            self.group_by.iter().all(label_ok),
            "ingest.group_by labels must be non-empty and at most 128 bytes"
        );
        anyhow::ensure!(
            self.service_labels.len() <= 16 && self.service_labels.iter().all(label_ok),
            "ingest.service_labels must be at most 16 non-empty labels of at most 128 bytes"
        );
        anyhow::ensure!(
            self.severity_map.len() <= 256
                && self
                    .severity_map
                    .keys()
                    .all(|k| !k.trim().is_empty() && k.len() <= 128),
            "ingest.severity_map keys must be non-empty and at most 128 bytes (at most 256 entries)"
        );
        anyhow::ensure!(
            (4096..=64 * 1024 * 1024).contains(&self.max_webhook_bytes),
            "ingest.max_webhook_bytes must be between 4 KiB and 64 MiB"
        );
        if let Some(name) = &self.webhook_token_env {
            anyhow::ensure!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "ingest.webhook_token_env must be an environment variable name ([A-Za-z0-9_])"
            );
        }
        Ok(())
    }

    /// The severity mapping in force: the built-in entries, then the
    /// configured ones; keys lower-cased.
    pub fn severities(&self) -> BTreeMap<String, Severity> {
        BUILTIN_SEVERITIES
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .chain(
                self.severity_map
                    .iter()
                    .map(|(k, v)| (k.trim().to_lowercase(), *v)),
            )
            .collect()
    }

    /// Reads the webhook bearer token from the environment variable named
    /// by `webhook_token_env`. A named variable that is unset or empty is
    /// an error: starting without the protection asked for would be worse
    /// than not starting.
    pub fn webhook_token(&self) -> anyhow::Result<Option<crate::ingest::WebhookToken>> {
        let Some(name) = &self.webhook_token_env else {
            return Ok(None);
        };
        let value = std::env::var(name).map_err(|_| {
            anyhow::anyhow!(
                "ingest.webhook_token_env names {name}, which is not set (or not UTF-8)"
            )
        })?;
        crate::ingest::WebhookToken::new(value)
            .map(Some)
            .ok_or_else(|| {
                anyhow::anyhow!("the webhook token in {name} is empty or not a valid header value")
            })
    }
}

/// Parses `P0`..`P4` (case-insensitive).
fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::ALL
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("{s:?} is not a severity: P0, P1, P2, P3 or P4"))
}

/// Parses one `value=P0` entry of the severity mapping.
fn parse_severity_entry(s: &str) -> Result<(String, Severity), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not VALUE=SEVERITY (e.g. page=P0)"))?;
    if k.trim().is_empty() {
        return Err(format!("{s:?} has an empty label value"));
    }
    Ok((k.trim().to_lowercase(), parse_severity(v)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "token_ttl = \"5m\"\nlisten = \"127.0.0.1:1\"\nexecutor = \"dry-run\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:2".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.token_ttl, Duration::from_secs(300));
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.executor, ExecutorKind::DryRun);
        assert!(c.in_memory());
        std::fs::write(&path, "tokn_ttl = \"5m\"\n").unwrap();
        assert!(Config::load(&args).is_err(), "unknown keys are refused");
    }

    #[test]
    fn ingest_settings_from_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "[ingest]\ngroup_by = [\"cluster\"]\nauto_decide = false\n[ingest.severity_map]\nPage = \"P0\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ingest: IngestArgs {
                severity_map: Some(vec![parse_severity_entry("high=p2").unwrap()]),
                auto_resolve: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.ingest.group_by, vec!["cluster".to_string()]);
        assert!(!c.ingest.auto_decide && !c.ingest.auto_resolve);
        let m = c.ingest.severities();
        assert_eq!(m.get("page"), Some(&Severity::P0));
        assert_eq!(m.get("high"), Some(&Severity::P2));
        assert_eq!(m.get("critical"), Some(&Severity::P1), "built-ins stay");
        assert_eq!(c.ingest.default_severity, Severity::P3);
        assert!(parse_severity_entry("page").is_err());
        assert!(parse_severity_entry("page=P9").is_err());
        std::fs::write(&path, "[ingest]\ngroup_by = []\n").unwrap();
        assert!(Config::load(&args).is_err(), "grouping needs a label");
    }
}

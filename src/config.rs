//! `verdict serve` settings: one [`Config`] filled from an optional TOML
//! file, then `VERDICT_*` environment variables, then flags (later wins).
//! Defaults live in `Config::default` and nowhere else.

use crate::manager::ExecutorKind;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Statistics are kept at least a day (day buckets must outlive their day)
/// and at most a year (bounds the buckets an "all time" query reads).
const MIN_STATS_RETENTION: Duration = Duration::from_secs(24 * 3600);
const MAX_STATS_RETENTION: Duration = Duration::from_secs(366 * 24 * 3600);

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
    /// How long statistics (hourly and daily buckets) are kept; also what
    /// "all time" covers [default: 90days].
    #[arg(long, env = "VERDICT_STATS_RETENTION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub stats_retention: Option<Duration>,
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
    #[serde(with = "humantime_serde")]
    pub stats_retention: Duration,
    pub rules_file: Option<PathBuf>,
    pub max_replicas: u32,
    pub executor: ExecutorKind,
    pub max_message_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub max_watchers: usize,
    pub log_format: LogFormat,
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
            stats_retention: crate::stats::DEFAULT_RETENTION,
            rules_file: None,
            max_replicas: 50,
            executor: ExecutorKind::External,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            max_watchers: 20_000,
            log_format: LogFormat::Text,
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
            stats_retention,
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
            (MIN_STATS_RETENTION..=MAX_STATS_RETENTION).contains(&self.stats_retention),
            "stats_retention must be between 1 day and 366 days"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.max_replicas),
            "max_replicas must be in 1..=10000"
        );
        anyhow::ensure!(
            (4096..=64 * 1024 * 1024).contains(&self.max_message_bytes),
            "max_message_bytes must be between 4 KiB and 64 MiB"
        );
        Ok(())
    }

    /// Whether the in-memory store is used.
    pub fn in_memory(&self) -> bool {
        self.dev || self.redis_url.is_none()
    }
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
            "token_ttl = \"5m\"\nlisten = \"127.0.0.1:1\"\nexecutor = \"dry-run\"\nstats_retention = \"30days\"\n",
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
        assert_eq!(c.stats_retention, Duration::from_secs(30 * 86_400));
        let args = ServeArgs {
            stats_retention: Some(Duration::from_secs(3600)),
            ..args
        };
        assert!(
            Config::load(&args).is_err(),
            "an hour of statistics is too short"
        );
        let args = ServeArgs {
            stats_retention: None,
            ..args
        };
        assert!(c.in_memory());
        std::fs::write(&path, "tokn_ttl = \"5m\"\n").unwrap();
        assert!(Config::load(&args).is_err(), "unknown keys are refused");
    }
}

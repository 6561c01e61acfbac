//! `verdict serve` settings: one [`Config`] filled from an optional TOML
//! file, then `VERDICT_*` environment variables, then flags (later wins).
//! Defaults live in `Config::default` and nowhere else.

use crate::domain::Severity;
use crate::engine::consensus::{Persona, default_personas};
use crate::manager::ExecutorKind;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// TOML file of the safety policy for model proposals (default: the
    /// built-in policy; see README "Safety"). Read at startup.
    #[arg(long, env = "VERDICT_POLICY_FILE", value_name = "FILE")]
    pub policy_file: Option<PathBuf>,
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
    /// Browser origin allowed to call gRPC-Web from another origin
    /// (repeatable; `*` for any). None: same-origin pages only.
    #[arg(
        long = "cors-origin",
        env = "VERDICT_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origins: Vec<String>,
    /// Log format [default: text].
    #[arg(long, env = "VERDICT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    // ---- engines: LLM, cache, consensus, recovery ----
    /// Base URL of an OpenAI-compatible API (`/chat/completions` is
    /// appended), e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1.
    /// Without one the expert engine decides alone.
    #[arg(
        long,
        env = "VERDICT_LLM_BASE_URL",
        value_name = "URL",
        help_heading = "LLM"
    )]
    pub llm_base_url: Option<String>,
    /// Model name sent to the LLM [default: gpt-4o-mini].
    #[arg(
        long,
        env = "VERDICT_LLM_MODEL",
        value_name = "NAME",
        help_heading = "LLM"
    )]
    pub llm_model: Option<String>,
    /// Provider label recorded on proposals [default: `openai` for
    /// api.openai.com, else the base URL's host].
    #[arg(
        long,
        env = "VERDICT_LLM_PROVIDER",
        value_name = "NAME",
        help_heading = "LLM"
    )]
    pub llm_provider: Option<String>,
    /// Name of the environment variable holding the API key (the key itself
    /// is never a flag and never logged; unset or empty: no key sent)
    /// [default: VERDICT_LLM_API_KEY].
    #[arg(
        long,
        env = "VERDICT_LLM_API_KEY_ENV",
        value_name = "VAR",
        help_heading = "LLM"
    )]
    pub llm_api_key_env: Option<String>,
    /// Sampling temperature, 0 to 2 [default: 0.2].
    #[arg(
        long,
        env = "VERDICT_LLM_TEMPERATURE",
        value_name = "T",
        help_heading = "LLM"
    )]
    pub llm_temperature: Option<f32>,
    /// Timeout of one LLM attempt [default: 20s].
    #[arg(long, env = "VERDICT_LLM_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "LLM")]
    pub llm_timeout: Option<Duration>,
    /// LLM calls in flight at most; more wait within their timeout [default: 8].
    #[arg(
        long,
        env = "VERDICT_LLM_MAX_CONCURRENCY",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub llm_max_concurrency: Option<usize>,
    /// Retries of one call after a transient failure (unreachable, 5xx, 429)
    /// [default: 2].
    #[arg(
        long,
        env = "VERDICT_LLM_MAX_RETRIES",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub llm_max_retries: Option<u32>,
    /// Retry budget: extra load retries may add, as a share of calls
    /// (0.2 = 20 %, plus one retry a second) [default: 0.2].
    #[arg(
        long,
        env = "VERDICT_LLM_RETRY_BUDGET",
        value_name = "RATIO",
        help_heading = "LLM"
    )]
    pub llm_retry_budget: Option<f32>,
    /// Consecutive failed LLM calls that open the circuit breaker [default: 5].
    #[arg(
        long,
        env = "VERDICT_LLM_BREAKER_THRESHOLD",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub llm_breaker_threshold: Option<u32>,
    /// How long an open circuit fails fast before one probe call [default: 30s].
    #[arg(long, env = "VERDICT_LLM_BREAKER_COOLDOWN", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "LLM")]
    pub llm_breaker_cooldown: Option<Duration>,
    /// How long a proposal is reused for incidents with the same signature
    /// (alert names, service, severity, namespace); 0s turns the cache off
    /// [default: 10m].
    #[arg(long, env = "VERDICT_LLM_CACHE_TTL", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "LLM")]
    pub llm_cache_ttl: Option<Duration>,
    /// LLM personas voting in consensus decisions (P0/P1 in mode AUTO, and
    /// mode CONSENSUS), the first N of `consensus_personas` in the config
    /// file, plus the expert [default: 3].
    #[arg(
        long,
        env = "VERDICT_CONSENSUS_AGENTS",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub consensus_agents: Option<usize>,
    /// A consensus score (agreeing weight / total weight) below this raises
    /// the proposal's risk one step [default: 0.6].
    #[arg(
        long,
        env = "VERDICT_CONSENSUS_THRESHOLD",
        value_name = "SCORE",
        help_heading = "LLM"
    )]
    pub consensus_threshold: Option<f64>,
    /// The expert engine's vote weight in a consensus (personas have theirs
    /// in the config file, default 1) [default: 1].
    #[arg(
        long,
        env = "VERDICT_CONSENSUS_EXPERT_WEIGHT",
        value_name = "W",
        help_heading = "LLM"
    )]
    pub consensus_expert_weight: Option<f64>,
    /// Lower bound of `replicas` in any scale command [default: 1].
    #[arg(long, env = "VERDICT_MIN_REPLICAS", value_name = "N")]
    pub min_replicas: Option<u32>,
    /// How often this replica finishes decisions left ANALYZING past their
    /// deadline by a replica that died; 0s turns the sweep off (reads still
    /// finish them) [default: 5s].
    #[arg(long, env = "VERDICT_SWEEP_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub sweep_interval: Option<Duration>,
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
    #[serde(with = "humantime_serde")]
    pub stats_retention: Duration,
    pub rules_file: Option<PathBuf>,
    pub policy_file: Option<PathBuf>,
    pub max_replicas: u32,
    pub executor: ExecutorKind,
    pub max_message_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub max_watchers: usize,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub llm_base_url: Option<String>,
    pub llm_model: String,
    pub llm_provider: Option<String>,
    pub llm_api_key_env: String,
    pub llm_temperature: f32,
    #[serde(with = "humantime_serde")]
    pub llm_timeout: Duration,
    pub llm_max_concurrency: usize,
    pub llm_max_retries: u32,
    pub llm_retry_budget: f32,
    pub llm_breaker_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub llm_breaker_cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub llm_cache_ttl: Duration,
    pub consensus_agents: usize,
    pub consensus_threshold: f64,
    pub consensus_expert_weight: f64,
    /// TOML only: `[[consensus_personas]]` with `name`, `instructions` and
    /// an optional `weight` (default 1).
    pub consensus_personas: Vec<Persona>,
    pub min_replicas: u32,
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
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
            stats_retention: crate::stats::DEFAULT_RETENTION,
            rules_file: None,
            policy_file: None,
            max_replicas: 50,
            executor: ExecutorKind::External,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            max_watchers: 20_000,
            cors_origins: Vec::new(),
            log_format: LogFormat::Text,
            llm_base_url: None,
            llm_model: "gpt-4o-mini".into(),
            llm_provider: None,
            llm_api_key_env: "VERDICT_LLM_API_KEY".into(),
            llm_temperature: 0.2,
            llm_timeout: Duration::from_secs(20),
            llm_max_concurrency: 8,
            llm_max_retries: 2,
            llm_retry_budget: 0.2,
            llm_breaker_threshold: 5,
            llm_breaker_cooldown: Duration::from_secs(30),
            llm_cache_ttl: Duration::from_secs(600),
            consensus_agents: 3,
            consensus_threshold: 0.6,
            consensus_expert_weight: 1.0,
            consensus_personas: default_personas(),
            min_replicas: 1,
            sweep_interval: Duration::from_secs(5),
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
            stats_retention,
            max_replicas,
            executor,
            max_message_bytes,
            shutdown_grace,
            max_watchers,
            log_format,
            llm_model,
            llm_api_key_env,
            llm_temperature,
            llm_timeout,
            llm_max_concurrency,
            llm_max_retries,
            llm_retry_budget,
            llm_breaker_threshold,
            llm_breaker_cooldown,
            llm_cache_ttl,
            consensus_agents,
            consensus_threshold,
            consensus_expert_weight,
            min_replicas,
            sweep_interval
        );
        if args.redis_url.is_some() {
            c.redis_url = args.redis_url.clone();
        }
        if args.llm_base_url.is_some() {
            c.llm_base_url = args.llm_base_url.clone();
        }
        if args.llm_provider.is_some() {
            c.llm_provider = args.llm_provider.clone();
        }
        if args.rules_file.is_some() {
            c.rules_file = args.rules_file.clone();
        }
        if args.policy_file.is_some() {
            c.policy_file = args.policy_file.clone();
        }
        if !args.cors_origins.is_empty() {
            c.cors_origins = args.cors_origins.clone();
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
        for o in &self.cors_origins {
            anyhow::ensure!(
                o == "*"
                    || ((o.starts_with("http://") || o.starts_with("https://"))
                        && o.parse::<http::HeaderValue>().is_ok()),
                "cors origin {o:?} must be `*` or an origin such as https://ui.example.com"
            );
        }
        self.validate_engines()
    }

    /// The engine settings: LLM client, cache, consensus, replica bounds.
    fn validate_engines(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        if let Some(url) = &self.llm_base_url {
            crate::engine::llm::http::chat_url(url)
                .map_err(|e| anyhow::anyhow!("llm_base_url: {e}"))?;
        }
        ensure!(
            !self.llm_model.trim().is_empty(),
            "llm_model must not be empty"
        );
        ensure!(
            !self.llm_api_key_env.is_empty()
                && self
                    .llm_api_key_env
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "llm_api_key_env must be an environment variable name (letters, digits, '_')"
        );
        ensure!(
            self.llm_temperature.is_finite() && (0.0..=2.0).contains(&self.llm_temperature),
            "llm_temperature must be between 0 and 2"
        );
        ensure!(
            !self.llm_timeout.is_zero()
                && self.llm_timeout <= crate::manager::decisions::MAX_TIMEOUT,
            "llm_timeout must be positive and at most 10m"
        );
        ensure!(
            (1..=1024).contains(&self.llm_max_concurrency),
            "llm_max_concurrency must be in 1..=1024"
        );
        ensure!(
            self.llm_max_retries <= 10,
            "llm_max_retries must be at most 10"
        );
        ensure!(
            self.llm_retry_budget.is_finite() && (0.0..=10.0).contains(&self.llm_retry_budget),
            "llm_retry_budget must be between 0 and 10"
        );
        ensure!(
            (1..=1000).contains(&self.llm_breaker_threshold),
            "llm_breaker_threshold must be in 1..=1000"
        );
        ensure!(
            !self.llm_breaker_cooldown.is_zero()
                && self.llm_breaker_cooldown <= Duration::from_secs(3600),
            "llm_breaker_cooldown must be positive and at most 1h"
        );
        ensure!(
            self.llm_cache_ttl <= Duration::from_secs(7 * 24 * 3600),
            "llm_cache_ttl must be at most 7days"
        );
        ensure!(
            (1..=9).contains(&self.consensus_agents),
            "consensus_agents must be in 1..=9"
        );
        ensure!(
            self.consensus_agents <= self.consensus_personas.len(),
            "consensus_agents is {} but only {} consensus_personas are configured",
            self.consensus_agents,
            self.consensus_personas.len()
        );
        let mut names = std::collections::HashSet::new();
        for p in &self.consensus_personas {
            ensure!(
                !p.name.trim().is_empty() && p.name.len() <= 64,
                "consensus_personas: names must be 1 to 64 characters"
            );
            ensure!(
                names.insert(p.name.as_str()),
                "consensus_personas: {:?} appears twice",
                p.name
            );
            ensure!(
                p.weight.is_finite() && p.weight > 0.0 && p.weight <= 100.0,
                "consensus_personas: {:?} needs a weight in (0, 100]",
                p.name
            );
            ensure!(
                p.instructions.len() <= 2000,
                "consensus_personas: {:?} instructions must be at most 2000 bytes",
                p.name
            );
        }
        ensure!(
            self.consensus_threshold.is_finite() && (0.0..=1.0).contains(&self.consensus_threshold),
            "consensus_threshold must be between 0 and 1"
        );
        ensure!(
            self.consensus_expert_weight.is_finite()
                && (0.0..=100.0).contains(&self.consensus_expert_weight),
            "consensus_expert_weight must be between 0 and 100"
        );
        ensure!(
            self.min_replicas >= 1 && self.min_replicas <= self.max_replicas,
            "min_replicas must be at least 1 and at most max_replicas"
        );
        ensure!(
            self.sweep_interval <= Duration::from_secs(3600),
            "sweep_interval must be at most 1h"
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

    #[test]
    fn llm_settings_from_file_and_flags_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            r#"
llm_base_url = "http://127.0.0.1:11434/v1"
llm_model = "llama3.1"
llm_timeout = "7s"
consensus_agents = 2
[[consensus_personas]]
name = "oncall"
instructions = "Be brief."
[[consensus_personas]]
name = "dba"
weight = 2.0
instructions = "Think about the database."
"#,
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            llm_model: Some("qwen2.5".into()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.llm_base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(c.llm_model, "qwen2.5");
        assert_eq!(c.llm_timeout, Duration::from_secs(7));
        assert_eq!(c.consensus_personas[1].weight, 2.0);
        assert_eq!(c.consensus_personas[0].weight, 1.0);
        let e = crate::engine::EngineSettings::from_config(&c);
        assert_eq!(e.consensus.personas.len(), 2);
        assert_eq!(e.llm.as_ref().unwrap().provider, "127.0.0.1");

        for bad in [
            "llm_base_url = \"ftp://x\"",
            "llm_temperature = 3.0",
            "consensus_agents = 4",
            "consensus_threshold = 1.5",
            "min_replicas = 0",
            "llm_api_key_env = \"A B\"",
            "consensus_agents = 1\n[[consensus_personas]]\nname = \"x\"\nweight = 0.0\ninstructions = \"\"",
        ] {
            std::fs::write(&path, bad).unwrap();
            let args = ServeArgs {
                config: Some(path.clone()),
                ..Default::default()
            };
            assert!(Config::load(&args).is_err(), "{bad}");
        }
        assert!(Config::default().validate().is_ok());
        assert!(
            crate::engine::EngineSettings::from_config(&Config::default())
                .llm
                .is_none()
        );
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

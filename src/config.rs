//! `verdict serve` settings: one [`Config`] filled in layers, later
//! winning: its defaults, then the TOML file (`--config`), then `VERDICT_*`
//! environment variables, then flags.
//!
//! Each setting is declared once: its type here (or in the module that owns
//! it, like `[ingest]`), its default in `Config::default` (which takes the
//! owning module's defaults where it has them), and its flag, variable and
//! help text on [`ServeArgs`]. Nothing else lists the settings:
//! - `--help` shows each default, rendered at run time from
//!   `Config::default()` ([`with_default`]).
//! - Flags and environment merge onto the file as one more layer: the
//!   arguments given are serialized (absent ones are skipped) and merged
//!   key by key over the file, so no merge list exists to forget a setting.
//! - A test checks that `--help`, `Config::default()` and the README's
//!   table name the same settings with the same defaults.
//!
//! Layering: `config` imports the modules' settings types and maps onto
//! them ([`Config::engine_settings`], [`Config::decision_settings`], the
//! ingestion's [`IngestConfig`]); the modules never import `config`, and
//! each checks its own settings ([`Config::validate`] only adds the checks
//! that span modules).

use crate::auth::{AuthSettings, Authenticator, GroupRoles, JwtSettings, MtlsEntry, TokenEntry};
use crate::domain::{RiskLevel, Severity};
use crate::engine::EngineSettings;
use crate::engine::consensus::{ConsensusSettings, Persona, default_personas, validate_personas};
use crate::engine::llm::{ApiKey, LlmSettings};
use crate::engine::settings::provider_from_url;
use crate::executor::ExecutorSettings;
use crate::manager::{ApprovalPolicy, ApprovalRule, DecisionSettings, ExecutorKind};
use crate::middleware::retry::RetrySettings;
use crate::store::Retention;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

pub use crate::ingest::IngestConfig;
use crate::notify::{
    ChatUser, NotifySettings, Route, Secret, SlackSettings, TelegramSettings, Updates,
};

/// Statistics are kept at least a day (day buckets must outlive their day)
/// and at most a year (bounds the buckets an "all time" query reads).
const MIN_STATS_RETENTION: Duration = Duration::from_secs(24 * 3600);
const MAX_STATS_RETENTION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Flags of `verdict serve`. Every flag also reads a `VERDICT_*` variable,
/// and every setting may come from the `--config` TOML file (same names
/// with underscores: `listen`, `redis_url`, `token_ttl`, ...).
///
/// Each flag is an `Option` (or empty) when not given, and serializes to
/// exactly the settings given: that is the layer [`Config::load`] merges
/// over the file. Defaults are never written here; `--help` appends them
/// from `Config::default()`.
#[derive(Debug, Default, clap::Args, Serialize)]
#[command(mut_args = with_default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below.
    #[arg(long, env = "VERDICT_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on for gRPC, gRPC-Web and HTTP.
    #[arg(long, env = "VERDICT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Redis URL (redis://host:port/db). Without one (or with --dev) the
    /// in-memory store is used and nothing is persisted.
    #[arg(long, env = "VERDICT_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Use the in-memory store (nothing persisted; for trying verdict out).
    #[arg(long, env = "VERDICT_DEV")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dev: bool,
    /// Redis connections in the pool.
    #[arg(long, env = "VERDICT_REDIS_POOL_SIZE", value_name = "N")]
    pub redis_pool_size: Option<u32>,
    /// How long a request waits for a Redis connection before failing with
    /// UNAVAILABLE.
    #[arg(long, env = "VERDICT_REDIS_POOL_WAIT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub redis_pool_wait: Option<Duration>,
    /// How long opening a Redis connection may take before the call fails
    /// UNAVAILABLE.
    #[arg(long, env = "VERDICT_REDIS_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub redis_connect_timeout: Option<Duration>,
    /// How long one Redis command may wait for its reply before the call
    /// fails UNAVAILABLE (the write may still have been applied: retry with
    /// the same request_id). Long enough to ride out an fsync stall; a
    /// caller's shorter gRPC deadline ends the wait first.
    #[arg(long, env = "VERDICT_REDIS_RESPONSE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub redis_response_timeout: Option<Duration>,
    /// How long a decision token stays approvable.
    #[arg(long, env = "VERDICT_TOKEN_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub token_ttl: Option<Duration>,
    /// Analysis deadline when a caller gives none; the expert proposal is
    /// used when it passes.
    #[arg(long, env = "VERDICT_DECISION_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub decision_timeout: Option<Duration>,
    /// How long decision records (the history) are kept after their last
    /// change.
    #[arg(long, env = "VERDICT_HISTORY_RETENTION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub history_retention: Option<Duration>,
    /// How long statistics (hourly and daily buckets) are kept; also what
    /// "all time" covers (1 day to 366 days).
    #[arg(long, env = "VERDICT_STATS_RETENTION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub stats_retention: Option<Duration>,
    /// Record every change and every refused call in the hash-chained audit
    /// trail (off only to measure its cost).
    #[arg(long, env = "VERDICT_AUDIT", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub audit: Option<bool>,
    /// The name of the environment variable holding the audit HMAC key.
    /// Unset or empty: a public development key, with a warning.
    #[arg(long, env = "VERDICT_AUDIT_KEY_ENV", value_name = "VAR")]
    pub audit_key_env: Option<String>,
    /// How long audit events are kept (1 day to 10 years).
    #[arg(long, env = "VERDICT_AUDIT_RETENTION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub audit_retention: Option<Duration>,
    /// Refusals of unauthenticated callers recorded one by one per peer IP
    /// and code per `audit_refusal_window`; the rest are counted and
    /// recorded as one summary event. Known principals (PERMISSION_DENIED,
    /// FAILED_PRECONDITION) get ten times as many. 0: record every one.
    #[arg(long, env = "VERDICT_AUDIT_REFUSAL_BURST", value_name = "N")]
    pub audit_refusal_burst: Option<u32>,
    /// The window `audit_refusal_burst` counts in (100ms to 1h).
    #[arg(long, env = "VERDICT_AUDIT_REFUSAL_WINDOW", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub audit_refusal_window: Option<Duration>,
    /// Also write every audit event this replica appends as one JSON line
    /// to `stdout` or to the file at this path (reopened on SIGHUP).
    /// Unset: the trail in Redis only.
    #[arg(long, env = "VERDICT_AUDIT_SINK", value_name = "stdout|FILE")]
    pub audit_sink: Option<String>,
    /// TOML file of expert rules. When unset: the five built-in rules.
    #[arg(long, env = "VERDICT_RULES_FILE", value_name = "FILE")]
    pub rules_file: Option<PathBuf>,
    /// TOML file of the safety policy for model proposals (see README
    /// "Safety"); read at startup and on every reload. When unset: the built-in policy.
    #[arg(long, env = "VERDICT_POLICY_FILE", value_name = "FILE")]
    pub policy_file: Option<PathBuf>,
    /// Upper bound of `replicas` in any scale command.
    #[arg(long, env = "VERDICT_MAX_REPLICAS", value_name = "N")]
    pub max_replicas: Option<u32>,
    /// What runs after approval: `external` waits for `CompleteDecision`,
    /// `dry-run` completes at once with the command that would have run.
    #[arg(long, env = "VERDICT_EXECUTOR", value_name = "EXECUTOR", value_parser = executor_parser())]
    pub executor: Option<ExecutorKind>,
    /// Namespaces the `kubernetes` executor may change (repeatable); none:
    /// it refuses every command.
    #[arg(
        long = "executor-namespace",
        env = "VERDICT_EXECUTOR_NAMESPACES",
        value_delimiter = ',',
        value_name = "NAMESPACE"
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub executor_namespaces: Vec<String>,
    /// Kubeconfig of the `kubernetes` executor. When unset: the in-cluster
    /// service account, else `$KUBECONFIG` or `~/.kube/config`.
    #[arg(long, env = "VERDICT_EXECUTOR_KUBECONFIG", value_name = "FILE")]
    pub executor_kubeconfig: Option<PathBuf>,
    /// The `kubectl` executor's binary; looked up in `$PATH` when not a
    /// path.
    #[arg(long, env = "VERDICT_EXECUTOR_KUBECTL_PATH", value_name = "FILE")]
    pub executor_kubectl_path: Option<PathBuf>,
    /// The `kubectl` executor's kubeconfig context; unset: the current one.
    #[arg(long, env = "VERDICT_EXECUTOR_CONTEXT", value_name = "NAME")]
    pub executor_context: Option<String>,
    /// The `kubernetes` executor impersonates the approver
    /// (`Impersonate-User`) for an approved command's writes.
    #[arg(long, env = "VERDICT_EXECUTOR_IMPERSONATE", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub executor_impersonate: Option<bool>,
    /// How long an execution lease lasts unrenewed: after it, another
    /// replica takes over an execution whose replica died.
    #[arg(long, env = "VERDICT_EXECUTOR_LEASE_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub executor_lease_ttl: Option<Duration>,
    /// Longest one request of the `kubernetes` executor may take.
    #[arg(long, env = "VERDICT_EXECUTOR_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub executor_timeout: Option<Duration>,
    /// How long the rollout an executed command started may take to finish
    /// (as `kubectl rollout status` decides); later, the decision is ERROR.
    #[arg(long, env = "VERDICT_EXECUTOR_ROLLOUT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub executor_rollout_timeout: Option<Duration>,
    /// How long after a command rolled out its incident may take to
    /// resolve: resolved within it = verified; still firing at its end =
    /// COMPLETED with the verification failed. 0 = no verification (the
    /// decision completes once the rollout finished).
    #[arg(long, env = "VERDICT_EXECUTOR_VERIFY_WINDOW", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub executor_verify_window: Option<Duration>,
    /// Largest accepted request message in bytes.
    #[arg(long, env = "VERDICT_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// How long in-flight requests may take to finish on shutdown.
    #[arg(long, env = "VERDICT_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    /// Most watch streams open at once on this replica.
    #[arg(long, env = "VERDICT_MAX_WATCHERS", value_name = "N")]
    pub max_watchers: Option<usize>,
    /// Most connections open at once; further clients wait in the listen
    /// backlog. 0: the open-file limit less a reserve for Redis, files and
    /// logs, so accepting never runs out of descriptors.
    #[arg(long, env = "VERDICT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most HTTP/2 streams (RPCs, watches included) open at once on one
    /// connection.
    #[arg(long, env = "VERDICT_HTTP2_MAX_CONCURRENT_STREAMS", value_name = "N")]
    pub http2_max_concurrent_streams: Option<u32>,
    /// Largest request header list (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
    #[arg(long, env = "VERDICT_HTTP2_MAX_HEADER_LIST_SIZE", value_name = "BYTES")]
    pub http2_max_header_list_size: Option<u32>,
    /// Largest HTTP/2 frame this server accepts (16 KiB to 16 MiB - 1).
    #[arg(long, env = "VERDICT_HTTP2_MAX_FRAME_SIZE", value_name = "BYTES")]
    pub http2_max_frame_size: Option<u32>,
    /// How long a stream may take to send its request message; one that
    /// sends none in time is answered DEADLINE_EXCEEDED and closed. Watches
    /// send theirs at once and then stream for as long as they like.
    #[arg(long, env = "VERDICT_HTTP2_REQUEST_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http2_request_timeout: Option<Duration>,
    /// Browser origin allowed to call gRPC-Web from another origin
    /// (repeatable; `*` for any). None: same-origin pages only.
    #[arg(
        long = "cors-origin",
        env = "VERDICT_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
    /// Serve the web dashboard at `/` on the listen address; `--no-ui`
    /// (or VERDICT_UI_ENABLED=false) leaves it out.
    #[arg(
        long = "no-ui",
        env = "VERDICT_UI_ENABLED",
        value_name = "BOOL",
        num_args = 0,
        default_missing_value = "false",
        action = clap::ArgAction::Set
    )]
    pub ui_enabled: Option<bool>,
    /// Log format.
    #[arg(long, env = "VERDICT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Prometheus metrics: `/metrics` served and every request counted.
    /// `false` serves none and records nothing.
    #[arg(long, env = "VERDICT_METRICS_ENABLED", value_name = "BOOL")]
    pub metrics_enabled: Option<bool>,
    /// A separate admin address for `/metrics` (e.g. 0.0.0.0:9464). None:
    /// `/metrics` is served on the main port.
    #[arg(long, env = "VERDICT_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

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
    /// Model name sent to the LLM.
    #[arg(
        long,
        env = "VERDICT_LLM_MODEL",
        value_name = "NAME",
        help_heading = "LLM"
    )]
    pub llm_model: Option<String>,
    /// Provider label recorded on proposals. When unset: `openai` for
    /// api.openai.com, else the base URL's host.
    #[arg(
        long,
        env = "VERDICT_LLM_PROVIDER",
        value_name = "NAME",
        help_heading = "LLM"
    )]
    pub llm_provider: Option<String>,
    /// Name of the environment variable holding the API key (the key itself
    /// is never a flag and never logged; unset or empty: no key sent).
    #[arg(
        long,
        env = "VERDICT_LLM_API_KEY_ENV",
        value_name = "VAR",
        help_heading = "LLM"
    )]
    pub llm_api_key_env: Option<String>,
    /// Sampling temperature, 0 to 2.
    #[arg(
        long,
        env = "VERDICT_LLM_TEMPERATURE",
        value_name = "T",
        help_heading = "LLM"
    )]
    pub llm_temperature: Option<f32>,
    /// Timeout of one LLM attempt.
    #[arg(long, env = "VERDICT_LLM_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "LLM")]
    #[serde(with = "humantime_serde")]
    pub llm_timeout: Option<Duration>,
    /// LLM calls in flight at most; more wait within their timeout.
    #[arg(
        long,
        env = "VERDICT_LLM_MAX_CONCURRENCY",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub llm_max_concurrency: Option<usize>,
    /// Retries of one call after a transient failure (unreachable, 5xx, 429).
    #[arg(
        long,
        env = "VERDICT_LLM_MAX_RETRIES",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub llm_max_retries: Option<u32>,
    /// Retry budget: extra load retries may add, as a share of calls
    /// (0.2 = 20 %, plus one retry a second).
    #[arg(
        long,
        env = "VERDICT_LLM_RETRY_BUDGET",
        value_name = "RATIO",
        help_heading = "LLM"
    )]
    pub llm_retry_budget: Option<f32>,
    /// Consecutive failed LLM calls that open the circuit breaker.
    #[arg(
        long,
        env = "VERDICT_LLM_BREAKER_THRESHOLD",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub llm_breaker_threshold: Option<u32>,
    /// How long an open circuit fails fast before one probe call.
    #[arg(long, env = "VERDICT_LLM_BREAKER_COOLDOWN", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "LLM")]
    #[serde(with = "humantime_serde")]
    pub llm_breaker_cooldown: Option<Duration>,
    /// How long a proposal is reused for incidents with the same signature
    /// (alert names, service, severity, namespace); 0s turns the cache off.
    #[arg(long, env = "VERDICT_LLM_CACHE_TTL", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "LLM")]
    #[serde(with = "humantime_serde")]
    pub llm_cache_ttl: Option<Duration>,
    /// LLM personas voting in consensus decisions (P0/P1 in mode AUTO, and
    /// mode CONSENSUS), the first N of `consensus_personas` in the config
    /// file, plus the expert.
    #[arg(
        long,
        env = "VERDICT_CONSENSUS_AGENTS",
        value_name = "N",
        help_heading = "LLM"
    )]
    pub consensus_agents: Option<usize>,
    /// A consensus score (agreeing weight / total weight) below this raises
    /// the proposal's risk one step.
    #[arg(
        long,
        env = "VERDICT_CONSENSUS_THRESHOLD",
        value_name = "SCORE",
        help_heading = "LLM"
    )]
    pub consensus_threshold: Option<f64>,
    /// The expert engine's vote weight in a consensus (personas have theirs
    /// in the config file, default 1).
    #[arg(
        long,
        env = "VERDICT_CONSENSUS_EXPERT_WEIGHT",
        value_name = "W",
        help_heading = "LLM"
    )]
    pub consensus_expert_weight: Option<f64>,
    /// Lower bound of `replicas` in any scale command.
    #[arg(long, env = "VERDICT_MIN_REPLICAS", value_name = "N")]
    pub min_replicas: Option<u32>,
    /// How often this replica finishes decisions left ANALYZING past their
    /// deadline by a replica that died; 0s turns the sweep off (reads still
    /// finish them).
    #[arg(long, env = "VERDICT_SWEEP_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Option<Duration>,
    // ---- chat notifications (Telegram) ----
    /// Telegram Bot API base URL (a self-hosted Bot API server, or a fake
    /// in tests).
    #[arg(
        long,
        env = "VERDICT_NOTIFY_TELEGRAM_API_URL",
        value_name = "URL",
        help_heading = "Chat notifications"
    )]
    pub notify_telegram_api_url: Option<String>,
    /// Name of the environment variable holding the bot token (never a
    /// flag, never logged).
    #[arg(
        long,
        env = "VERDICT_NOTIFY_TELEGRAM_TOKEN_ENV",
        value_name = "VAR",
        help_heading = "Chat notifications"
    )]
    pub notify_telegram_token_env: Option<String>,
    /// Chat id that gets the card of every incident no `notify_routes`
    /// entry matches. Telegram is on when this or a route is set.
    #[arg(
        long,
        env = "VERDICT_NOTIFY_TELEGRAM_CHAT",
        value_name = "CHAT_ID",
        allow_negative_numbers = true,
        help_heading = "Chat notifications"
    )]
    pub notify_telegram_chat: Option<i64>,
    /// How button presses arrive: `poll` (getUpdates, one replica at a
    /// time) or `webhook` (POST /api/v1/telegram with the secret token).
    #[arg(long, env = "VERDICT_NOTIFY_TELEGRAM_UPDATES", value_name = "MODE", value_parser = updates_parser(), help_heading = "Chat notifications")]
    pub notify_telegram_updates: Option<Updates>,
    /// Name of the environment variable holding the webhook's secret token.
    #[arg(
        long,
        env = "VERDICT_NOTIFY_TELEGRAM_WEBHOOK_SECRET_ENV",
        value_name = "VAR",
        help_heading = "Chat notifications"
    )]
    pub notify_telegram_webhook_secret_env: Option<String>,
    /// getUpdates long-poll timeout (1s to 50s).
    #[arg(long, env = "VERDICT_NOTIFY_POLL_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Chat notifications")]
    #[serde(with = "humantime_serde")]
    pub notify_poll_timeout: Option<Duration>,
    /// How long a card waits after READY, per severity, comma-separated
    /// (e.g. P3=2m,P4=5m); an incident that resolves itself meanwhile pages
    /// nobody.
    #[arg(
        long,
        env = "VERDICT_NOTIFY_AFTER",
        value_name = "SEVERITY=DURATION",
        value_delimiter = ',',
        help_heading = "Chat notifications"
    )]
    pub notify_after: Option<Vec<String>>,
    /// How long a replica holds a card job before another may take it over.
    #[arg(long, env = "VERDICT_NOTIFY_LEASE", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Chat notifications")]
    #[serde(with = "humantime_serde")]
    pub notify_lease: Option<Duration>,
    /// Wait before retrying a card the chat API failed (a 429's
    /// retry_after wins).
    #[arg(long, env = "VERDICT_NOTIFY_RETRY_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Chat notifications")]
    #[serde(with = "humantime_serde")]
    pub notify_retry_interval: Option<Duration>,
    /// Failed attempts after which a card is given up (counted as dead).
    #[arg(
        long,
        env = "VERDICT_NOTIFY_MAX_ATTEMPTS",
        value_name = "N",
        help_heading = "Chat notifications"
    )]
    pub notify_max_attempts: Option<u32>,
    /// Slack Web API base URL (a fake in tests).
    #[arg(
        long,
        env = "VERDICT_NOTIFY_SLACK_API_URL",
        value_name = "URL",
        help_heading = "Chat notifications"
    )]
    pub notify_slack_api_url: Option<String>,
    /// Name of the environment variable holding the Slack bot token
    /// (`xoxb-…`; never a flag, never logged).
    #[arg(
        long,
        env = "VERDICT_NOTIFY_SLACK_TOKEN_ENV",
        value_name = "VAR",
        help_heading = "Chat notifications"
    )]
    pub notify_slack_token_env: Option<String>,
    /// Name of the environment variable holding the Slack app's signing
    /// secret (verifies every button press).
    #[arg(
        long,
        env = "VERDICT_NOTIFY_SLACK_SIGNING_SECRET_ENV",
        value_name = "VAR",
        help_heading = "Chat notifications"
    )]
    pub notify_slack_signing_secret_env: Option<String>,
    /// Slack channel id (C…) that gets the card of every incident no
    /// `notify_routes` entry matches. Slack is on when this or a route's
    /// `slack_channel` is set.
    #[arg(
        long,
        env = "VERDICT_NOTIFY_SLACK_CHANNEL",
        value_name = "CHANNEL_ID",
        help_heading = "Chat notifications"
    )]
    pub notify_slack_channel: Option<String>,

    // ---- TLS on the listener ----
    /// PEM certificate chain the listener presents; with `tls_key_file`,
    /// the port speaks TLS only (h2 and http/1.1 by ALPN). Reloaded with
    /// the configuration (SIGHUP, or when this file changes).
    #[arg(
        long,
        env = "VERDICT_TLS_CERT_FILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`.
    #[arg(
        long,
        env = "VERDICT_TLS_KEY_FILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificate(s) that sign client certificates (mTLS). A client
    /// may still connect without a certificate (and use a bearer token);
    /// one it presents must verify against this CA, or the handshake fails.
    #[arg(
        long,
        env = "VERDICT_TLS_CLIENT_CA_FILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Longest a TLS handshake may take; a client that stalls is dropped
    /// and frees its handshake slot.
    #[arg(long, env = "VERDICT_TLS_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "TLS")]
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Option<Duration>,

    // ---- who decides: authentication, approval policy ----
    /// Start without authentication on an address other than loopback
    /// (every caller is then an anonymous admin). Without any credential
    /// configured (`[[auth_tokens]]`), `serve` refuses such an address.
    #[arg(
        long,
        env = "VERDICT_ALLOW_UNAUTHENTICATED",
        help_heading = "Authentication"
    )]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_unauthenticated: bool,
    /// Let anyone use gRPC reflection (default: any authenticated
    /// principal).
    #[arg(
        long,
        env = "VERDICT_AUTH_REFLECTION_OPEN",
        help_heading = "Authentication"
    )]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_reflection_open: bool,
    /// JWKS file (`{"keys": [...]}`) of the identity provider whose JWTs
    /// are accepted as bearer tokens. When unset: no JWT is accepted.
    #[arg(
        long,
        env = "VERDICT_AUTH_JWT_JWKS_FILE",
        value_name = "FILE",
        help_heading = "Authentication"
    )]
    pub auth_jwt_jwks_file: Option<PathBuf>,
    /// JWKS URL of the identity provider (https, or http), fetched at
    /// start (an unreadable URL fails startup) and cached; instead of
    /// `auth_jwt_jwks_file`.
    #[arg(
        long,
        env = "VERDICT_AUTH_JWT_JWKS_URL",
        value_name = "URL",
        help_heading = "Authentication"
    )]
    pub auth_jwt_jwks_url: Option<String>,
    /// How often the keys of `auth_jwt_jwks_url` are refetched (a token
    /// with an unknown `kid` also refetches them, at most once a minute).
    #[arg(long, env = "VERDICT_AUTH_JWT_JWKS_REFRESH", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Authentication")]
    #[serde(with = "humantime_serde")]
    pub auth_jwt_jwks_refresh: Option<Duration>,
    /// The only accepted JWT issuer (`iss`); required with a JWKS file.
    #[arg(
        long,
        env = "VERDICT_AUTH_JWT_ISSUER",
        value_name = "URL",
        help_heading = "Authentication"
    )]
    pub auth_jwt_issuer: Option<String>,
    /// The audience (`aud`) a JWT must carry; required with a JWKS file.
    #[arg(
        long,
        env = "VERDICT_AUTH_JWT_AUDIENCE",
        value_name = "AUDIENCE",
        help_heading = "Authentication"
    )]
    pub auth_jwt_audience: Option<String>,
    /// Accepted JWT algorithms, asymmetric only (RS*, PS*, ES256, ES384,
    /// EdDSA); `none` and HS* are refused.
    #[arg(
        long,
        env = "VERDICT_AUTH_JWT_ALGORITHMS",
        value_delimiter = ',',
        value_name = "ALG",
        help_heading = "Authentication"
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth_jwt_algorithms: Vec<String>,
    /// Clock leeway for a JWT's `exp` and `nbf`.
    #[arg(long, env = "VERDICT_AUTH_JWT_LEEWAY", value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Authentication")]
    #[serde(with = "humantime_serde")]
    pub auth_jwt_leeway: Option<Duration>,
    /// The JWT claim naming the principal.
    #[arg(
        long,
        env = "VERDICT_AUTH_JWT_SUBJECT_CLAIM",
        value_name = "CLAIM",
        help_heading = "Authentication"
    )]
    pub auth_jwt_subject_claim: Option<String>,
    /// The JWT claim listing the principal's groups (mapped to roles by
    /// `auth_jwt_group_roles`).
    #[arg(
        long,
        env = "VERDICT_AUTH_JWT_GROUPS_CLAIM",
        value_name = "CLAIM",
        help_heading = "Authentication"
    )]
    pub auth_jwt_groups_claim: Option<String>,
    /// Proposals at this risk or above need two distinct approvers
    /// (low, medium, high, critical).
    #[arg(long, env = "VERDICT_APPROVAL_FOUR_EYES_RISK", value_name = "RISK", value_parser = risk_parser(), help_heading = "Authentication")]
    pub approval_four_eyes_risk: Option<RiskLevel>,
    /// Decisions of incidents at this severity or worse need two distinct
    /// approvers (P0…P4).
    #[arg(long, env = "VERDICT_APPROVAL_FOUR_EYES_SEVERITY", value_name = "SEVERITY", value_parser = severity_parser(), help_heading = "Authentication")]
    pub approval_four_eyes_severity: Option<Severity>,
    #[command(flatten)]
    pub ingest: IngestArgs,
}

/// Risk levels by name, in any case (`high`, `High`).
fn risk_parser() -> impl clap::builder::TypedValueParser<Value = RiskLevel> {
    |s: &str| {
        RiskLevel::parse(s)
            .ok_or_else(|| format!("{s:?} is not a risk: low, medium, high or critical"))
    }
}

fn severity_parser() -> impl clap::builder::TypedValueParser<Value = Severity> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Severity::ALL.map(Severity::as_str)).try_map(|s| {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown severity {s}"))
    })
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of a running server, as the TOML file spells it. The
/// flag of each is on [`ServeArgs`] under the same name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub redis_url: Option<String>,
    pub dev: bool,
    pub redis_pool_size: u32,
    #[serde(with = "duration")]
    pub redis_pool_wait: Duration,
    #[serde(with = "duration")]
    pub redis_connect_timeout: Duration,
    #[serde(with = "duration")]
    pub redis_response_timeout: Duration,
    #[serde(with = "duration")]
    pub token_ttl: Duration,
    #[serde(with = "duration")]
    pub decision_timeout: Duration,
    #[serde(with = "duration")]
    pub history_retention: Duration,
    #[serde(with = "duration")]
    pub stats_retention: Duration,
    pub audit: bool,
    pub audit_key_env: String,
    #[serde(with = "duration")]
    pub audit_retention: Duration,
    pub audit_refusal_burst: u32,
    #[serde(with = "duration")]
    pub audit_refusal_window: Duration,
    pub audit_sink: Option<String>,
    pub rules_file: Option<PathBuf>,
    pub policy_file: Option<PathBuf>,
    pub max_replicas: u32,
    pub executor: ExecutorKind,
    pub executor_namespaces: Vec<String>,
    pub executor_kubeconfig: Option<PathBuf>,
    pub executor_kubectl_path: PathBuf,
    pub executor_context: Option<String>,
    pub executor_impersonate: bool,
    #[serde(with = "duration")]
    pub executor_lease_ttl: Duration,
    #[serde(with = "duration")]
    pub executor_timeout: Duration,
    #[serde(with = "duration")]
    pub executor_rollout_timeout: Duration,
    #[serde(with = "duration")]
    pub executor_verify_window: Duration,
    pub max_message_bytes: usize,
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    pub max_watchers: usize,
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
    pub http2_max_header_list_size: u32,
    pub http2_max_frame_size: u32,
    #[serde(with = "duration")]
    pub http2_request_timeout: Duration,
    pub cors_origins: Vec<String>,
    pub ui_enabled: bool,
    pub log_format: LogFormat,
    pub metrics_enabled: bool,
    pub metrics_listen: Option<SocketAddr>,
    pub llm_base_url: Option<String>,
    pub llm_model: String,
    pub llm_provider: Option<String>,
    pub llm_api_key_env: String,
    pub llm_temperature: f32,
    #[serde(with = "duration")]
    pub llm_timeout: Duration,
    pub llm_max_concurrency: usize,
    pub llm_max_retries: u32,
    pub llm_retry_budget: f32,
    pub llm_breaker_threshold: u32,
    #[serde(with = "duration")]
    pub llm_breaker_cooldown: Duration,
    #[serde(with = "duration")]
    pub llm_cache_ttl: Duration,
    pub consensus_agents: usize,
    pub consensus_threshold: f64,
    pub consensus_expert_weight: f64,
    /// TOML only: `[[consensus_personas]]` with `name`, `instructions` and
    /// an optional `weight` (default 1).
    pub consensus_personas: Vec<Persona>,
    pub min_replicas: u32,
    #[serde(with = "duration")]
    pub sweep_interval: Duration,
    pub notify_telegram_api_url: String,
    pub notify_telegram_token_env: String,
    pub notify_telegram_chat: Option<i64>,
    pub notify_telegram_updates: Updates,
    pub notify_telegram_webhook_secret_env: String,
    #[serde(with = "duration")]
    pub notify_poll_timeout: Duration,
    pub notify_after: Vec<String>,
    #[serde(with = "duration")]
    pub notify_lease: Duration,
    #[serde(with = "duration")]
    pub notify_retry_interval: Duration,
    pub notify_max_attempts: u32,
    pub notify_slack_api_url: String,
    pub notify_slack_token_env: String,
    pub notify_slack_signing_secret_env: String,
    pub notify_slack_channel: Option<String>,
    /// TOML only: `[[notify_routes]]` with `telegram_chat` and any of
    /// `namespace`, `service`, `severity`; the first match wins.
    pub notify_routes: Vec<Route>,
    /// TOML only: `[[notify_users]]` with `telegram_id`, `subject`, `roles`.
    /// Nobody else can answer a card.
    pub notify_users: Vec<ChatUser>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    #[serde(with = "duration")]
    pub tls_handshake_timeout: Duration,
    pub allow_unauthenticated: bool,
    pub auth_reflection_open: bool,
    /// TOML only: `[[auth_tokens]]` with `subject`, `roles` and `sha256`
    /// (of the token; `verdict token create` prints an entry).
    pub auth_tokens: Vec<TokenEntry>,
    /// TOML only: `[[auth_mtls]]` with `cert` (`CN=…`, `DNS=…` or `URI=…`),
    /// `roles` and an optional `subject`: verified client certificates
    /// that name `cert` are that principal.
    pub auth_mtls: Vec<MtlsEntry>,
    pub auth_jwt_jwks_file: Option<PathBuf>,
    pub auth_jwt_jwks_url: Option<String>,
    #[serde(with = "duration")]
    pub auth_jwt_jwks_refresh: Duration,
    pub auth_jwt_issuer: Option<String>,
    pub auth_jwt_audience: Option<String>,
    pub auth_jwt_algorithms: Vec<String>,
    #[serde(with = "duration")]
    pub auth_jwt_leeway: Duration,
    pub auth_jwt_subject_claim: String,
    pub auth_jwt_groups_claim: String,
    /// TOML only: `[[auth_jwt_group_roles]]` with `group` and `roles`: a
    /// JWT principal holds the roles of every group its groups claim names.
    pub auth_jwt_group_roles: Vec<GroupRoles>,
    pub approval_four_eyes_risk: RiskLevel,
    pub approval_four_eyes_severity: Severity,
    /// TOML only: `[[approval_rules]]` with `subjects` or `roles`, and
    /// optional `namespaces` and `max_risk`.
    pub approval_rules: Vec<ApprovalRule>,
    /// Alert ingestion (`[ingest]` in the TOML file), owned by `ingest`.
    pub ingest: IngestConfig,
}

/// The one place defaults are written; where a module has defaults of its
/// own (retention, retries, consensus, ingestion) they are taken from it.
impl Default for Config {
    fn default() -> Self {
        let retention = Retention::default();
        let refusals = crate::manager::RefusalLimits::default();
        let retry = RetrySettings::default();
        let consensus = ConsensusSettings::default();
        let executor = ExecutorSettings::default();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            redis_url: None,
            dev: false,
            redis_pool_size: 32,
            redis_pool_wait: Duration::from_secs(1),
            redis_connect_timeout: Duration::from_secs(1),
            redis_response_timeout: Duration::from_secs(5),
            token_ttl: Duration::from_secs(3600),
            decision_timeout: Duration::from_secs(30),
            history_retention: retention.decisions,
            stats_retention: retention.stats,
            audit: true,
            audit_key_env: "VERDICT_AUDIT_KEY".into(),
            audit_retention: retention.audit,
            audit_refusal_burst: refusals.burst,
            audit_refusal_window: refusals.window,
            audit_sink: None,
            rules_file: None,
            policy_file: None,
            max_replicas: 50,
            executor: ExecutorKind::External,
            executor_namespaces: executor.namespaces,
            executor_kubeconfig: executor.kubeconfig,
            executor_kubectl_path: executor.kubectl_path,
            executor_context: executor.context,
            executor_impersonate: executor.impersonate,
            executor_lease_ttl: executor.lease_ttl,
            executor_timeout: executor.timeout,
            executor_rollout_timeout: executor.rollout_timeout,
            executor_verify_window: executor.verify_window,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            max_watchers: 20_000,
            max_connections: 0,
            http2_max_concurrent_streams: 256,
            http2_max_header_list_size: 16 * 1024,
            http2_max_frame_size: 16 * 1024,
            http2_request_timeout: Duration::from_secs(10),
            cors_origins: Vec::new(),
            ui_enabled: true,
            log_format: LogFormat::Text,
            metrics_enabled: true,
            metrics_listen: None,
            llm_base_url: None,
            llm_model: "gpt-4o-mini".into(),
            llm_provider: None,
            llm_api_key_env: "VERDICT_LLM_API_KEY".into(),
            llm_temperature: 0.2,
            llm_timeout: Duration::from_secs(20),
            llm_max_concurrency: 8,
            llm_max_retries: retry.max_retries,
            llm_retry_budget: retry.budget_ratio,
            llm_breaker_threshold: 5,
            llm_breaker_cooldown: Duration::from_secs(30),
            llm_cache_ttl: Duration::from_secs(600),
            consensus_agents: consensus.personas.len(),
            consensus_threshold: consensus.threshold,
            consensus_expert_weight: consensus.expert_weight,
            consensus_personas: default_personas(),
            min_replicas: 1,
            sweep_interval: Duration::from_secs(5),
            notify_telegram_api_url: "https://api.telegram.org".into(),
            notify_telegram_token_env: "VERDICT_TELEGRAM_BOT_TOKEN".into(),
            notify_telegram_chat: None,
            notify_telegram_updates: Updates::Poll,
            notify_telegram_webhook_secret_env: "VERDICT_TELEGRAM_WEBHOOK_SECRET".into(),
            notify_poll_timeout: Duration::from_secs(25),
            notify_after: vec!["P3=2m".into(), "P4=5m".into()],
            notify_lease: Duration::from_secs(30),
            notify_retry_interval: Duration::from_secs(5),
            notify_max_attempts: 10,
            notify_slack_api_url: "https://slack.com/api".into(),
            notify_slack_token_env: "VERDICT_SLACK_BOT_TOKEN".into(),
            notify_slack_signing_secret_env: "VERDICT_SLACK_SIGNING_SECRET".into(),
            notify_slack_channel: None,
            notify_routes: Vec::new(),
            notify_users: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_handshake_timeout: Duration::from_secs(10),
            allow_unauthenticated: false,
            auth_reflection_open: false,
            auth_tokens: Vec::new(),
            auth_mtls: Vec::new(),
            auth_jwt_jwks_file: None,
            auth_jwt_jwks_url: None,
            auth_jwt_jwks_refresh: crate::auth::jwks::DEFAULT_REFRESH,
            auth_jwt_issuer: None,
            auth_jwt_audience: None,
            auth_jwt_algorithms: crate::auth::jwt::DEFAULT_ALGORITHMS
                .iter()
                .map(|a| a.to_string())
                .collect(),
            auth_jwt_leeway: Duration::from_secs(crate::auth::jwt::DEFAULT_LEEWAY_SECS),
            auth_jwt_subject_claim: "sub".into(),
            auth_jwt_groups_claim: "groups".into(),
            auth_jwt_group_roles: Vec::new(),
            approval_four_eyes_risk: ApprovalPolicy::default().four_eyes_risk,
            approval_four_eyes_severity: ApprovalPolicy::default().four_eyes_severity,
            approval_rules: Vec::new(),
            ingest: IngestConfig::default(),
        }
    }
}

impl Config {
    /// The layers in order: defaults, the file, then environment and flags
    /// (clap already merged those two). The file is read strictly (unknown
    /// keys refused, errors with their line); flags and environment are
    /// merged over it key by key, tables (`[ingest]`, `severity_map`) entry
    /// by entry.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => Config::default(),
        };
        let mut merged = toml::Table::try_from(&file).context("cannot layer the settings")?;
        let given = toml::Table::try_from(args).context("cannot layer the flags")?;
        merge(&mut merged, given);
        let c: Config = toml::Value::Table(merged)
            .try_into()
            .context("invalid flags or environment")?;
        c.validate()?;
        Ok(c)
    }

    /// Refuses settings that cannot work, with the setting's name. Each
    /// module checks its own settings; what is checked here spans modules
    /// (history outlives tokens) or belongs to the server's edge.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            self.redis_pool_size >= 1,
            "redis_pool_size must be at least 1"
        );
        Authenticator::new(&self.auth_settings()).map_err(anyhow::Error::msg)?;
        self.approval_policy().validate()?;
        self.decision_settings().validate()?;
        self.executor_settings().validate()?;
        ensure!(self.max_watchers >= 1, "max_watchers must be at least 1");
        ensure!(
            self.tls_cert_file.is_some() == self.tls_key_file.is_some(),
            "tls_cert_file and tls_key_file go together: give both (TLS) or neither (plain text)"
        );
        ensure!(
            self.tls_client_ca_file.is_none() || self.tls_cert_file.is_some(),
            "tls_client_ca_file needs TLS on the listener (tls_cert_file and tls_key_file)"
        );
        ensure!(
            self.auth_mtls.is_empty() || self.tls_client_ca_file.is_some(),
            "[[auth_mtls]] needs tls_client_ca_file: without a client CA no certificate is asked for"
        );
        ensure!(
            !self.tls_handshake_timeout.is_zero(),
            "tls_handshake_timeout must be above 0s"
        );
        ensure!(
            !self.redis_connect_timeout.is_zero() && !self.redis_response_timeout.is_zero(),
            "redis_connect_timeout and redis_response_timeout must be above 0s"
        );
        ensure!(
            self.http2_max_concurrent_streams >= 1,
            "http2_max_concurrent_streams must be at least 1"
        );
        ensure!(
            self.http2_max_header_list_size >= 4096,
            "http2_max_header_list_size must be at least 4096"
        );
        ensure!(
            (16_384..=16_777_215).contains(&self.http2_max_frame_size),
            "http2_max_frame_size must be between 16384 and 16777215 (HTTP/2's bounds)"
        );
        ensure!(
            !self.http2_request_timeout.is_zero(),
            "http2_request_timeout must be above 0s"
        );
        ensure!(
            self.history_retention >= self.token_ttl,
            "history_retention must be at least token_ttl, so history outlives tokens"
        );
        ensure!(
            (MIN_STATS_RETENTION..=MAX_STATS_RETENTION).contains(&self.stats_retention),
            "stats_retention must be between 1 day and 366 days"
        );
        ensure!(
            (4096..=64 * 1024 * 1024).contains(&self.max_message_bytes),
            "max_message_bytes must be between 4 KiB and 64 MiB"
        );
        for o in &self.cors_origins {
            ensure!(
                o == "*"
                    || ((o.starts_with("http://") || o.starts_with("https://"))
                        && o.parse::<http::HeaderValue>().is_ok()),
                "cors origin {o:?} must be `*` or an origin such as https://ui.example.com"
            );
        }
        self.validate_engine_mapping()?;
        ensure!(
            self.sweep_interval <= Duration::from_secs(3600),
            "sweep_interval must be at most 1h"
        );
        self.ingest.validate()?;
        let some = || Some(Secret::new("-"));
        self.notify_settings_with_all(some(), some(), some(), some())?
            .validate()
    }

    /// The chat notifier's settings. Reads the bot token and webhook secret
    /// from the variables named by their `…_env` settings, so call it once,
    /// at startup. Telegram is on when a default chat or a route is set;
    /// then a missing token is an error.
    pub fn notify_settings(&self) -> anyhow::Result<NotifySettings> {
        self.notify_settings_with(
            Secret::from_env(&self.notify_telegram_token_env),
            Secret::from_env(&self.notify_telegram_webhook_secret_env),
        )
    }

    /// [`Self::notify_settings`] with the Telegram secrets given (Slack's
    /// still from the environment).
    pub fn notify_settings_with(
        &self,
        token: Option<Secret>,
        webhook_secret: Option<Secret>,
    ) -> anyhow::Result<NotifySettings> {
        self.notify_settings_with_all(
            token,
            webhook_secret,
            Secret::from_env(&self.notify_slack_token_env),
            Secret::from_env(&self.notify_slack_signing_secret_env),
        )
    }

    /// [`Self::notify_settings`] with every secret given: Telegram's bot
    /// token and webhook secret, Slack's bot token and signing secret.
    pub fn notify_settings_with_all(
        &self,
        token: Option<Secret>,
        webhook_secret: Option<Secret>,
        slack_token: Option<Secret>,
        slack_signing_secret: Option<Secret>,
    ) -> anyhow::Result<NotifySettings> {
        let wanted = self.notify_telegram_chat.is_some()
            || self.notify_routes.iter().any(|r| r.telegram_chat.is_some());
        let telegram = if wanted {
            let token = token.ok_or_else(|| {
                anyhow::anyhow!(
                    "Telegram cards are configured but {} is unset or empty (the bot token)",
                    self.notify_telegram_token_env
                )
            })?;
            Some(TelegramSettings {
                api_url: self.notify_telegram_api_url.clone(),
                token,
                default_chat: self.notify_telegram_chat,
                updates: self.notify_telegram_updates,
                poll_timeout: self.notify_poll_timeout,
                webhook_secret,
            })
        } else {
            None
        };
        let slack_wanted = self.notify_slack_channel.is_some()
            || self.notify_routes.iter().any(|r| r.slack_channel.is_some());
        let slack = if slack_wanted {
            let missing = |var: &str, what: &str| {
                anyhow::anyhow!("Slack cards are configured but {var} is unset or empty ({what})")
            };
            Some(SlackSettings {
                api_url: self.notify_slack_api_url.clone(),
                token: slack_token
                    .ok_or_else(|| missing(&self.notify_slack_token_env, "the bot token"))?,
                signing_secret: slack_signing_secret.ok_or_else(|| {
                    missing(&self.notify_slack_signing_secret_env, "the signing secret")
                })?,
                default_channel: self.notify_slack_channel.clone(),
            })
        } else {
            None
        };
        Ok(NotifySettings {
            telegram,
            slack,
            routes: self.notify_routes.clone(),
            users: self.notify_users.clone(),
            notify_after: self
                .notify_after
                .iter()
                .map(|e| crate::notify::settings::parse_after(e))
                .collect::<anyhow::Result<_>>()?,
            lease: self.notify_lease,
            max_attempts: self.notify_max_attempts,
            retry_interval: self.notify_retry_interval,
        })
    }

    /// What the engine settings cannot see: the name of the key's variable,
    /// and how `consensus_agents` picks from `consensus_personas`. Then the
    /// engines' own checks, with the LLM client's knobs checked even while
    /// no LLM is configured (a bad value is found now, not the day the LLM
    /// is turned on).
    fn validate_engine_mapping(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            !self.audit_key_env.is_empty()
                && self
                    .audit_key_env
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "audit_key_env must be an environment variable name (letters, digits, '_')"
        );
        ensure!(
            (Duration::from_secs(86_400)..=Duration::from_secs(3650 * 86_400))
                .contains(&self.audit_retention),
            "audit_retention must be between 1 day and 10 years"
        );
        ensure!(
            (Duration::from_millis(100)..=Duration::from_secs(3600))
                .contains(&self.audit_refusal_window),
            "audit_refusal_window must be between 100ms and 1h"
        );
        ensure!(
            self.audit_sink
                .as_deref()
                .is_none_or(|s| !s.trim().is_empty()),
            "audit_sink must be `stdout` or a file path"
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
            (1..=ConsensusSettings::MAX_AGENTS).contains(&self.consensus_agents),
            "consensus_agents must be in 1..=9"
        );
        ensure!(
            self.consensus_agents <= self.consensus_personas.len(),
            "consensus_agents is {} but only {} consensus_personas are configured",
            self.consensus_agents,
            self.consensus_personas.len()
        );
        validate_personas(&self.consensus_personas)?;
        let mut engines = self.engine_settings_without_key();
        if engines.llm.is_none() {
            engines.llm = Some(self.llm_settings("", None));
        }
        engines.validate()
    }

    /// Whether the in-memory store is used.
    pub fn in_memory(&self) -> bool {
        self.dev || self.redis_url.is_none()
    }

    /// The engines' settings. Reads the API key from the variable named by
    /// `llm_api_key_env`, so call it once, at startup.
    pub fn engine_settings(&self) -> EngineSettings {
        let mut s = self.engine_settings_without_key();
        if let Some(llm) = &mut s.llm {
            llm.api_key = ApiKey::from_env(&self.llm_api_key_env);
        }
        s
    }

    fn engine_settings_without_key(&self) -> EngineSettings {
        EngineSettings {
            llm: self
                .llm_base_url
                .as_deref()
                .map(|url| self.llm_settings(url, None)),
            cache_ttl: self.llm_cache_ttl,
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            policy_file: self.policy_file.clone(),
            consensus: ConsensusSettings {
                personas: self
                    .consensus_personas
                    .iter()
                    .take(self.consensus_agents)
                    .cloned()
                    .collect(),
                threshold: self.consensus_threshold,
                expert_weight: self.consensus_expert_weight,
            },
        }
    }

    fn llm_settings(&self, base_url: &str, api_key: Option<ApiKey>) -> LlmSettings {
        LlmSettings {
            base_url: base_url.to_owned(),
            model: self.llm_model.clone(),
            provider: self
                .llm_provider
                .clone()
                .unwrap_or_else(|| provider_from_url(base_url)),
            api_key,
            temperature: self.llm_temperature,
            timeout: self.llm_timeout,
            max_concurrency: self.llm_max_concurrency,
            retry: RetrySettings {
                max_retries: self.llm_max_retries,
                budget_ratio: self.llm_retry_budget,
                ..RetrySettings::default()
            },
            breaker_threshold: self.llm_breaker_threshold,
            breaker_cooldown: self.llm_breaker_cooldown,
        }
    }

    /// How many refusals are recorded one by one (`audit::refusals`).
    pub fn audit_refusal_limits(&self) -> crate::manager::RefusalLimits {
        crate::manager::RefusalLimits {
            burst: self.audit_refusal_burst,
            window: self.audit_refusal_window,
        }
    }

    /// The authentication settings (the webhook's own token is known to
    /// exist or not; its value stays with the webhook).
    pub fn auth_settings(&self) -> AuthSettings {
        AuthSettings {
            tokens: self.auth_tokens.clone(),
            mtls: self.auth_mtls.clone(),
            jwt: (self.auth_jwt_jwks_file.is_some() || self.auth_jwt_jwks_url.is_some()).then(
                || JwtSettings {
                    jwks_file: self.auth_jwt_jwks_file.clone(),
                    jwks_url: self.auth_jwt_jwks_url.clone(),
                    jwks_refresh: self.auth_jwt_jwks_refresh,
                    issuer: self.auth_jwt_issuer.clone().unwrap_or_default(),
                    audience: self.auth_jwt_audience.clone().unwrap_or_default(),
                    algorithms: self.auth_jwt_algorithms.clone(),
                    leeway_secs: self.auth_jwt_leeway.as_secs(),
                    subject_claim: self.auth_jwt_subject_claim.clone(),
                    groups_claim: self.auth_jwt_groups_claim.clone(),
                    group_roles: self.auth_jwt_group_roles.clone(),
                },
            ),
            reflection_open: self.auth_reflection_open,
            webhook_token: self.ingest.webhook_token_env.is_some(),
            optional: false,
        }
    }

    /// The approval policy.
    pub fn approval_policy(&self) -> ApprovalPolicy {
        ApprovalPolicy {
            rules: self.approval_rules.clone(),
            four_eyes_risk: self.approval_four_eyes_risk,
            four_eyes_severity: self.approval_four_eyes_severity,
        }
    }

    /// The decision manager's settings.
    pub fn decision_settings(&self) -> DecisionSettings {
        DecisionSettings {
            token_ttl: self.token_ttl,
            default_timeout: self.decision_timeout,
            executor: self.executor,
            history_len: Retention::default().history_len,
        }
    }

    /// The executors' settings.
    pub fn executor_settings(&self) -> ExecutorSettings {
        ExecutorSettings {
            namespaces: self.executor_namespaces.clone(),
            kubeconfig: self.executor_kubeconfig.clone(),
            kubectl_path: self.executor_kubectl_path.clone(),
            context: self.executor_context.clone(),
            impersonate: self.executor_impersonate,
            lease_ttl: self.executor_lease_ttl,
            timeout: self.executor_timeout,
            rollout_timeout: self.executor_rollout_timeout,
            verify_window: self.executor_verify_window,
        }
    }
}

/// Durations in the file and in `--help`: read by humantime (`90days`,
/// `1h 30m`), written in the largest unit that divides them exactly
/// (`90days`, not humantime's `2months 29days 2h 52m 48s`).
mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub fn format(d: Duration) -> String {
        const UNITS: [(u64, &str); 4] = [(86_400, "days"), (3600, "h"), (60, "m"), (1, "s")];
        if d.subsec_nanos() != 0 {
            return humantime::format_duration(d).to_string();
        }
        let secs = d.as_secs();
        UNITS
            .iter()
            .find(|(unit, _)| secs >= *unit && secs.is_multiple_of(*unit))
            .map(|(unit, name)| format!("{}{name}", secs / unit))
            .unwrap_or_else(|| "0s".into())
    }
}

/// Merges `over` into `base`: tables entry by entry (recursively), any
/// other value replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `Config::default()` as TOML, the source of every `[default: …]`.
static DEFAULTS: LazyLock<toml::Table> =
    LazyLock::new(|| toml::Table::try_from(Config::default()).unwrap_or_default());

/// The default of the setting a flag sets (the flag's id is the setting's
/// name; `[ingest]` settings are looked up in that table), as `--help`
/// and the README show it. None when the setting has no default value
/// (unset `Option`s, empty lists and tables).
fn default_of(id: &str) -> Option<String> {
    let value = DEFAULTS.get(id).or_else(|| {
        DEFAULTS
            .get("ingest")
            .and_then(toml::Value::as_table)
            .and_then(|t| t.get(id))
    })?;
    render(value)
}

fn render(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        // Every float setting is an f32 or a short f64: shown as written.
        toml::Value::Float(f) => (*f as f32).to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(render)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        toml::Value::Array(_) | toml::Value::Table(_) => return None,
    })
}

/// Appends `[default: …]` from `Config::default()` to a flag's help, so the
/// help can never disagree with the default in force. Flags that take no
/// value (`--dev`) are left alone.
fn with_default(arg: clap::Arg) -> clap::Arg {
    if !arg.get_action().takes_values() {
        return arg;
    }
    let Some(default) = default_of(arg.get_id().as_str()) else {
        return arg;
    };
    let help = arg
        .get_help()
        .map(|h| format!("{h} [default: {default}]"))
        .unwrap_or_else(|| format!("[default: {default}]"));
    let long = arg
        .get_long_help()
        .map(|h| format!("{h}\n\n[default: {default}]"));
    let arg = arg.help(help);
    match long {
        Some(long) => arg.long_help(long),
        None => arg,
    }
}

/// `--executor`: the manager's kinds, listed in `--help`, parsed by their
/// own `FromStr` (the manager knows nothing of clap).
fn executor_parser() -> impl clap::builder::TypedValueParser<Value = ExecutorKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(ExecutorKind::ALL.map(ExecutorKind::as_str))
        .try_map(|s| s.parse::<ExecutorKind>())
}

/// `--notify-telegram-updates`: `poll` or `webhook`.
fn updates_parser() -> impl clap::builder::TypedValueParser<Value = Updates> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["poll", "webhook"]).map(|s| match s.as_str() {
        "webhook" => Updates::Webhook,
        _ => Updates::Poll,
    })
}

/// Flags of the alert ingestion (`IngestSignals` and the Alertmanager
/// webhook); in the TOML file they live in an `[ingest]` table.
#[derive(Debug, Default, clap::Args, Serialize)]
#[command(next_help_heading = "Alert ingestion")]
pub struct IngestArgs {
    /// Labels whose values group alerts into one incident, comma-separated;
    /// an `incident_key` label overrides them.
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
    #[serde(serialize_with = "entries_as_table")]
    pub severity_map: Option<Vec<(String, Severity)>>,
    /// Severity of an alert whose `severity` label is missing or not mapped.
    #[arg(long, env = "VERDICT_DEFAULT_SEVERITY", value_name = "P0..P4", value_parser = parse_severity)]
    pub default_severity: Option<Severity>,
    /// Labels naming the affected service, in order of preference,
    /// comma-separated; only RFC 1123 values become remediation targets.
    #[arg(
        long,
        env = "VERDICT_SERVICE_LABELS",
        value_name = "LABELS",
        value_delimiter = ','
    )]
    pub service_labels: Option<Vec<String>>,
    /// Resolve an incident when every one of its alerts is resolved.
    #[arg(long, env = "VERDICT_AUTO_RESOLVE", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub auto_resolve: Option<bool>,
    /// Start a decision (without waiting) as soon as alerts open an
    /// incident, so the proposal is ready before a person looks.
    #[arg(long, env = "VERDICT_AUTO_DECIDE", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub auto_decide: Option<bool>,
    /// Name of the environment variable holding the bearer token the
    /// Alertmanager webhook must present (Alertmanager's
    /// `http_config.authorization`); unset: no token is required. The token
    /// itself is never written to config files or logs.
    #[arg(long, env = "VERDICT_WEBHOOK_TOKEN_ENV", value_name = "VAR")]
    pub webhook_token_env: Option<String>,
    /// Largest accepted webhook body in bytes; larger bodies get 413.
    #[arg(long, env = "VERDICT_MAX_WEBHOOK_BYTES", value_name = "BYTES")]
    pub max_webhook_bytes: Option<usize>,
}

/// The `--severity-map` entries as the table the file has
/// (`[ingest.severity_map]`), so they merge into it entry by entry.
fn entries_as_table<S: serde::Serializer>(
    entries: &Option<Vec<(String, Severity)>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match entries {
        Some(v) => serializer.collect_map(v.iter().map(|(k, s)| (k, s))),
        None => serializer.serialize_none(),
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
    fn the_readme_jwt_example_loads() {
        let readme = include_str!("../README.md");
        let example = readme
            .split("**OIDC / JWT bearer tokens.**")
            .nth(1)
            .and_then(|s| s.split("```toml\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("README has the JWT example");
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        )
        .unwrap();
        let path = dir.path().join("v.toml");
        let text = example.replace("/etc/verdict/jwks.json", &jwks.display().to_string());
        std::fs::write(&path, text).unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let c = Config::load(&args).expect("the example loads");
        let jwt = c.auth_settings().jwt.expect("JWT on");
        assert_eq!(jwt.subject_claim, "email");
        assert_eq!(jwt.group_roles.len(), 2);
        assert_eq!(jwt.leeway_secs, 60);
    }

    #[test]
    fn the_readme_jwks_url_example_loads() {
        let readme = include_str!("../README.md");
        let example = readme
            .split("**JWKS from a URL.**")
            .nth(1)
            .and_then(|s| s.split("```toml\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("README has the JWKS URL example");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(&path, example).unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        // Loading checks the settings; the URL is read only by `serve`.
        let c = Config::load(&args).expect("the example loads");
        let jwt = c.auth_settings().jwt.expect("JWT on");
        assert!(
            jwt.jwks_url
                .unwrap()
                .ends_with("/protocol/openid-connect/certs")
        );
        assert_eq!(jwt.jwks_refresh, Duration::from_secs(600));
        assert!(jwt.jwks_file.is_none());
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
        let e = c.engine_settings();
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
        assert!(Config::default().engine_settings().llm.is_none());
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

    /// The names of a struct's fields, as serde sees them (the same list
    /// its `Deserialize` accepts), including `Option`s that are unset.
    fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::{Error as _, Visitor, value::Error};
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Probe<'_> {
            type Error = Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
                Err(Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Error> {
                *self.0 = fields;
                Err(Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut fields));
        fields
    }

    /// `verdict serve --help`, `Config::default()` and the README's table
    /// name the same settings, with the same flag, variable and default.
    #[test]
    fn telegram_needs_its_token_and_is_off_without_a_chat() {
        let mut c = Config::default();
        let off = c.notify_settings_with(None, None).unwrap();
        assert!(!off.enabled(), "no chat, no route: Telegram off");
        c.notify_telegram_chat = Some(-100);
        let err = c.notify_settings_with(None, None).unwrap_err().to_string();
        assert!(err.contains("VERDICT_TELEGRAM_BOT_TOKEN"), "{err}");
        let on = c
            .notify_settings_with(Some(crate::notify::Secret::new("t")), None)
            .unwrap();
        assert!(
            on.enabled() && on.users.is_empty(),
            "on, and nobody may answer"
        );
        c.notify_after = vec!["P9=1m".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn slack_needs_both_secrets_and_routes_pick_their_network() {
        use crate::notify::Secret;
        let s = || Some(Secret::new("s"));
        let mut c = Config {
            notify_routes: vec![Route {
                namespace: Some("payments".into()),
                service: None,
                severity: None,
                telegram_chat: None,
                slack_channel: Some("C1".into()),
            }],
            ..Config::default()
        };
        let err = c
            .notify_settings_with_all(None, None, s(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("VERDICT_SLACK_SIGNING_SECRET"), "{err}");
        let on = c.notify_settings_with_all(None, None, s(), s()).unwrap();
        assert!(
            on.slack.is_some() && on.telegram.is_none(),
            "a Slack-only route"
        );
        c.notify_users = vec![ChatUser {
            telegram_id: None,
            slack_id: None,
            subject: "nobody".into(),
            roles: Default::default(),
        }];
        let err = c
            .notify_settings_with_all(None, None, s(), s())
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither telegram_id nor slack_id"), "{err}");
    }

    #[test]
    fn help_defaults_and_readme_agree() {
        use std::collections::BTreeMap;
        let cmd = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let args: BTreeMap<&str, &clap::Arg> = cmd
            .get_arguments()
            .filter(|a| a.get_id() != "config")
            .map(|a| (a.get_id().as_str(), a))
            .collect();
        // (README key, flag id) of every setting of the file.
        let mut settings: Vec<(String, &str)> = fields_of::<Config>()
            .iter()
            .filter(|f| **f != "ingest")
            .map(|f| (f.to_string(), *f))
            .collect();
        settings.extend(
            fields_of::<IngestConfig>()
                .iter()
                .map(|f| (format!("ingest.{f}"), *f)),
        );
        assert!(settings.len() > 40, "the probe found the fields");
        let file_only = [
            "consensus_personas",
            "notify_routes",
            "notify_users",
            "auth_tokens",
            "auth_mtls",
            "auth_jwt_group_roles",
            "approval_rules",
        ];

        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Configuration section");
        let rows: BTreeMap<String, Vec<String>> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<String> = l
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_string())
                    .collect();
                (cells[0].trim_matches('`').to_string(), cells)
            })
            .collect();
        assert_eq!(
            rows.keys().collect::<Vec<_>>(),
            {
                let mut keys: Vec<&String> = settings.iter().map(|(k, _)| k).collect();
                keys.sort();
                keys
            },
            "the README's table lists exactly the settings of Config"
        );
        assert_eq!(
            args.len() + file_only.len(),
            settings.len(),
            "every flag is a setting and every setting but the file-only ones has a flag"
        );

        let help = cmd.clone().term_width(0).render_long_help().to_string();
        for (key, id) in &settings {
            let row = &rows[key];
            let default = default_of(id);
            if file_only.contains(id) {
                assert_eq!((row[1].as_str(), row[2].as_str()), ("—", "—"), "{key}");
                if *id != "consensus_personas" {
                    assert_eq!(row[3], "none", "{key}");
                    continue;
                }
                let names: Vec<String> = default_personas()
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect();
                assert_eq!(row[3], names.join(", "), "{key}");
                continue;
            }
            let arg = args.get(id).unwrap_or_else(|| panic!("{key} has no flag"));
            let long = arg.get_long().expect("a long flag");
            assert_eq!(row[1], format!("`--{long}`"), "{key}: README flag");
            let env = arg.get_env().and_then(|e| e.to_str()).expect("a variable");
            assert_eq!(env, format!("VERDICT_{}", id.to_uppercase()), "{key}");
            assert_eq!(row[2], format!("`{env}`"), "{key}: README variable");
            let readme_default = match &default {
                Some(d) => format!("`{d}`"),
                None => "none".into(),
            };
            assert_eq!(row[3], readme_default, "{key}: README default");
            let arg_help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let shown = arg_help.matches("[default: ").count();
            match &default {
                Some(d) if arg.get_action().takes_values() => {
                    assert!(
                        arg_help.ends_with(&format!("[default: {d}]")),
                        "{key}: {arg_help}"
                    );
                    assert_eq!(shown, 1, "{key}: one default, not a hand-typed one too");
                    assert!(
                        help.contains(&format!("[default: {d}]")),
                        "{key}: --help shows its default"
                    );
                }
                _ => assert_eq!(shown, 0, "{key} has no default to show: {arg_help}"),
            }
        }
    }

    /// The layers are lossless: the defaults survive the round trip through
    /// TOML that `Config::load` makes, durations keep their exact value,
    /// and a flag replaces the file's value while tables merge by entry.
    #[test]
    fn layering_is_lossless_and_merges_by_key() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let back: Config = toml::Value::Table(defaults.clone()).try_into().unwrap();
        assert_eq!(toml::Table::try_from(back).unwrap(), defaults);
        assert_eq!(default_of("stats_retention").as_deref(), Some("90days"));
        assert_eq!(duration::format(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(duration::format(Duration::ZERO), "0s");
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(
            toml::Table::try_from(c).unwrap(),
            defaults,
            "no flags: defaults"
        );
        for k in ExecutorKind::ALL {
            let t = toml::Table::try_from(Config {
                executor: k,
                ..Config::default()
            })
            .unwrap();
            assert_eq!(
                t["executor"].as_str(),
                Some(k.as_str()),
                "serde and FromStr agree"
            );
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "dev = true\nllm_retry_budget = 0.3\ncors_origins = [\"https://a.example\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            llm_breaker_cooldown: Some(Duration::from_millis(1500)),
            llm_temperature: Some(0.7),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert!(c.dev, "an absent --dev keeps the file's");
        assert_eq!(c.llm_retry_budget, 0.3);
        assert_eq!(c.llm_temperature, 0.7);
        assert_eq!(c.llm_breaker_cooldown, Duration::from_millis(1500));
        assert_eq!(c.cors_origins, vec!["https://a.example".to_string()]);
    }
    /// `--no-ui` turns the dashboard off; without it the file's (or the
    /// default) value stands, and `VERDICT_UI_ENABLED=false` also works.
    #[test]
    fn no_ui_turns_the_dashboard_off() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let parse = |argv: &[&str]| {
            let cli = Cli::try_parse_from(std::iter::once("verdict").chain(argv.iter().copied()))
                .expect("parses");
            Config::load(&cli.serve).expect("loads")
        };
        assert!(parse(&["--dev"]).ui_enabled);
        assert!(!parse(&["--dev", "--no-ui"]).ui_enabled);
    }
}

//! The client subcommands of `verdict`: typed gRPC clients for people and
//! scripts (the top-level command line that adds `serve` and `bench` is
//! `app.rs`).
//!
//! One file per resource: `incident.rs`, `decision.rs` (also `decide`),
//! `stats.rs`, `watch.rs`, `audit.rs`;
//! `output.rs` prints (text or `--json`), `error.rs` turns failures into a
//! message and an exit code; connecting and tables come from `client/`.
//! The CLI talks to the server only through the generated clients; it
//! knows nothing of the store, the managers or the benchmark.

mod audit;
mod decision;
mod error;
mod incident;
mod output;
mod stats;
mod watch;

pub use error::report;

use crate::client::{ClientTls, Target, connect};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};

/// Deadline of every RPC that does not wait for anything on the server.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags every client subcommand understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The verdict server to talk to (client commands).
    #[arg(
        long,
        global = true,
        help_heading = "Client options",
        env = "VERDICT_ADDR",
        value_name = "URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// Print the response as canonical proto3 JSON (for scripts and jq).
    #[arg(long, global = true, help_heading = "Client options")]
    pub json: bool,
    /// Bearer token sent with every call (`verdict token create` makes
    /// one; `serve --dev` prints one).
    #[arg(
        long,
        global = true,
        help_heading = "Client options",
        env = "VERDICT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PEM CA certificate that signs the server's certificate (for an
    /// `https://` address; without it the public web roots are trusted).
    #[arg(
        long,
        global = true,
        help_heading = "Client options",
        env = "VERDICT_CA_CERT",
        value_name = "FILE"
    )]
    pub ca_cert: Option<std::path::PathBuf>,
    /// PEM client certificate presented to the server (mTLS); with
    /// --client-key.
    #[arg(
        long,
        global = true,
        help_heading = "Client options",
        env = "VERDICT_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<std::path::PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        help_heading = "Client options",
        env = "VERDICT_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<std::path::PathBuf>,
}

impl GlobalArgs {
    /// Where the client commands connect, and how.
    pub(crate) fn target(&self) -> Target {
        Target {
            addr: self.addr.clone(),
            tls: ClientTls {
                ca_cert: self.ca_cert.clone(),
                client_cert: self.client_cert.clone(),
                client_key: self.client_key.clone(),
            },
        }
    }
}

/// The client subcommands: each is one or a few RPCs against `--addr`.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Create, read and update incidents.
    #[command(subcommand)]
    Incident(incident::IncidentCommand),
    /// Get the incident's current decision token, or issue one.
    ///
    /// Returns the current token when it is READY or EXECUTING; otherwise a
    /// new token is issued and analysed. With --wait the command returns
    /// once the token is READY, at the latest after --timeout (then with
    /// the expert engine's proposal).
    Decide(decision::DecideArgs),
    /// Read decision tokens and approve, reject or complete them.
    #[command(subcommand)]
    Decision(decision::DecisionCommand),
    /// Follow a decision (or all decisions) live, one line per change;
    /// reconnects and resumes after a dropped connection.
    Watch(watch::WatchArgs),
    /// Statistics: incident summary, resolution times, AI performance,
    /// affected services (default range: the last 24 hours).
    ///
    /// Example: verdict stats resolution --since 7d
    #[command(subcommand)]
    Stats(stats::StatsCommand),
    /// The audit trail: list events, verify the hash chains.
    ///
    /// Example: verdict audit list --decision DEC-… --action approved
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

/// The `authorization` value of every request of this process, set once
/// by [`run`] before the first call. A process-wide value rather than a
/// parameter because every request of every subcommand is built by
/// [`request`] / [`stream_request`], and a CLI process talks as one
/// principal.
static AUTHORIZATION: std::sync::OnceLock<MetadataValue<Ascii>> = std::sync::OnceLock::new();

/// Runs one client subcommand to completion, printing its result on stdout.
pub async fn run(global: &GlobalArgs, command: ClientCommand) -> anyhow::Result<()> {
    if let Some(token) = global
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("--token / VERDICT_TOKEN must be printable ASCII"))?;
        let _ = AUTHORIZATION.set(value);
    }
    let addr = &global.target();
    match command {
        ClientCommand::Incident(cmd) => incident::run(connect(addr).await?, global, cmd).await,
        ClientCommand::Decide(args) => decision::decide(connect(addr).await?, global, args).await,
        ClientCommand::Decision(cmd) => decision::run(connect(addr).await?, global, cmd).await,
        // `watch` reconnects by itself after a dropped connection.
        ClientCommand::Watch(args) => watch::run(global, args).await,
        ClientCommand::Stats(cmd) => stats::run(connect(addr).await?, global, cmd).await,
        ClientCommand::Audit(cmd) => audit::run(connect(addr).await?, global, cmd).await,
    }
}

/// Wraps `msg` in a request with a deadline (sent as `grpc-timeout`) and
/// the credentials.
fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = stream_request(msg);
    req.set_timeout(timeout);
    req
}

/// Wraps `msg` in a request with the credentials and no deadline (watch
/// streams run until stopped).
fn stream_request<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(v) = AUTHORIZATION.get() {
        req.metadata_mut().insert("authorization", v.clone());
    }
    req
}

/// The actor recorded when `--actor` is not given: `$USER`, else `cli`.
fn default_actor() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "cli".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The client commands alone, as `app::Cli` embeds them (the whole
    /// command line is tested in `app.rs`).
    #[derive(Debug, clap::Parser)]
    #[command(name = "verdict")]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: ClientCommand,
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_walkthrough() {
        let cli = Cli::try_parse_from([
            "verdict",
            "--addr",
            "http://127.0.0.1:1",
            "incident",
            "create",
            "--title",
            "t",
            "--severity",
            "p2",
            "--service",
            "a",
            "--service",
            "b",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.addr, "http://127.0.0.1:1");
        assert!(matches!(cli.command, ClientCommand::Incident(_)));
        let err = Cli::try_parse_from(["verdict", "decision", "complete", "DEC-0123456789AB"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let err = Cli::try_parse_from([
            "verdict",
            "decision",
            "complete",
            "DEC-0123456789AB",
            "--success",
            "--failure",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(
            Cli::try_parse_from(["verdict", "decide", "INC-1", "--timeout", "2 parsecs"]).is_err()
        );
    }

    #[test]
    fn parses_stats_ranges() {
        for args in [
            vec!["verdict", "stats", "summary"],
            vec!["verdict", "stats", "resolution", "--since", "7d"],
            vec!["verdict", "stats", "ai", "--all-time", "--json"],
            vec![
                "verdict", "stats", "services", "--since", "30d", "--limit", "5",
            ],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap();
            assert!(matches!(cli.command, ClientCommand::Stats(_)));
        }
        let err = Cli::try_parse_from(["verdict", "stats", "ai", "--since", "1d", "--all-time"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(Cli::try_parse_from(["verdict", "stats", "summary", "--since", "soon"]).is_err());
    }
}

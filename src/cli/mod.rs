//! The `verdict` command line: `serve` runs the server (wired in `main.rs`),
//! every other subcommand is a typed gRPC client for people and scripts.
//!
//! One file per resource: `incident.rs`, `decision.rs` (also `decide`),
//! `stats.rs`, `watch.rs`;
//! `output.rs` prints (text or `--json`), `error.rs` turns failures into a
//! message and an exit code. The CLI talks to the server only through the
//! generated clients; it knows nothing of the store or the managers.

mod decision;
mod error;
mod incident;
pub(crate) mod output;
mod stats;
mod watch;

pub(crate) use error::code_name;
pub use error::report;

use anyhow::Context;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline of every RPC that does not wait for anything on the server.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// verdict: incident-remediation decisions.
///
/// Alerts become incidents; each incident gets a decision token carrying a
/// safe remediation proposal that a person approves or rejects. `serve`
/// runs the server; the other commands talk to one at `--addr`.
#[derive(Debug, clap::Parser)]
#[command(name = "verdict", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

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
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the verdict server (gRPC, gRPC-Web and HTTP on one port).
    ///
    /// Settings come from --config FILE, then VERDICT_* variables, then
    /// flags. Without a Redis URL (or with --dev) state is kept in memory
    /// and lost on exit.
    Serve(Box<crate::config::ServeArgs>),
    #[command(flatten)]
    Client(ClientCommand),
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
    /// Load-test a server: requests/s, latency percentiles and errors per
    /// scenario, each throughput also as a ratio to Health/Check measured
    /// in the same run (see BENCHMARKS.md).
    ///
    /// Loads --target (default --addr), or a server started in-process with
    /// --spawn. Setup data is created by the tool; with --redis-url bulk
    /// data is seeded straight into that Redis, so use a throwaway one.
    Bench(Box<crate::bench::BenchArgs>),
    /// Statistics: incident summary, resolution times, AI performance,
    /// affected services (default range: the last 24 hours).
    ///
    /// Example: verdict stats resolution --since 7d
    #[command(subcommand)]
    Stats(stats::StatsCommand),
}

/// Runs one client subcommand to completion, printing its result on stdout.
pub async fn run(global: &GlobalArgs, command: ClientCommand) -> anyhow::Result<()> {
    let addr = &global.addr;
    match command {
        ClientCommand::Incident(cmd) => incident::run(connect(addr).await?, global, cmd).await,
        ClientCommand::Decide(args) => decision::decide(connect(addr).await?, global, args).await,
        ClientCommand::Decision(cmd) => decision::run(connect(addr).await?, global, cmd).await,
        // `bench` opens its own connections (several, or to a server it
        // spawns), so it gets the address rather than a channel.
        ClientCommand::Bench(args) => crate::bench::main(addr, global.json, *args).await,
        // `watch` reconnects by itself after a dropped connection.
        ClientCommand::Watch(args) => watch::run(global, args).await,
        ClientCommand::Stats(cmd) => stats::run(connect(addr).await?, global, cmd).await,
    }
}

/// Opens a channel to the server, eagerly, so an unreachable address fails
/// here with one clear line rather than inside the first RPC. Each call
/// opens its own HTTP/2 connection.
pub(crate) async fn connect(addr: &str) -> anyhow::Result<Channel> {
    // Accept `host:port` as well as a full URL.
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid server address {addr:?} (expected http://HOST:PORT)"))?
        .connect_timeout(CONNECT_TIMEOUT);
    // The connect timeout covers TCP only; this one also covers a server
    // that accepts but never completes the HTTP/2 handshake.
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(anyhow::anyhow!(
            "cannot connect to verdict at {url}: {}",
            error::root_cause(&e)
        )),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to verdict at {url}: no answer within {}",
            humantime::format_duration(CONNECT_TIMEOUT)
        )),
    }
}

/// Wraps `msg` in a request with a deadline (sent as `grpc-timeout`).
fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
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
        assert!(matches!(
            cli.command,
            Command::Client(ClientCommand::Incident(_))
        ));
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
            assert!(matches!(
                cli.command,
                Command::Client(ClientCommand::Stats(_))
            ));
        }
        let err = Cli::try_parse_from(["verdict", "stats", "ai", "--since", "1d", "--all-time"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(Cli::try_parse_from(["verdict", "stats", "summary", "--since", "soon"]).is_err());
    }
}

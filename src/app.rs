//! The `verdict` command line as a whole: `serve` (the server, wired in
//! `main.rs`), `bench` (the load generator, with the `bench` feature) and
//! the client subcommands of `cli/`. This is the one module that knows all
//! three, so none of them has to know another.

use crate::cli::{ClientCommand, GlobalArgs};

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
    /// Load-test a server: requests/s, latency percentiles and errors per
    /// scenario, each throughput also as a ratio to Health/Check measured
    /// in the same run (see BENCHMARKS.md).
    ///
    /// Loads --target (default --addr), or a server started in-process with
    /// --spawn. Setup data is created by the tool; with --redis-url bulk
    /// data is seeded straight into that Redis, so use a throwaway one.
    #[cfg(feature = "bench")]
    Bench(Box<crate::bench::BenchArgs>),
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
    fn every_command_parses_at_the_top_level() {
        let cli = Cli::try_parse_from(["verdict", "serve", "--dev"]).unwrap();
        assert!(matches!(cli.command, Command::Serve(_)));
        let cli = Cli::try_parse_from(["verdict", "--json", "incident", "list"]).unwrap();
        assert!(cli.global.json);
        assert!(matches!(
            cli.command,
            Command::Client(ClientCommand::Incident(_))
        ));
        #[cfg(feature = "bench")]
        {
            let cli =
                Cli::try_parse_from(["verdict", "bench", "--addr", "x:1", "-n", "5"]).unwrap();
            assert_eq!(cli.global.addr, "x:1");
            assert!(matches!(cli.command, Command::Bench(_)));
        }
    }
}

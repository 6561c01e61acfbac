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
    /// Make credentials for the server's configuration (offline; talks to
    /// no server).
    #[command(subcommand)]
    Token(TokenCommand),
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

/// `verdict token …`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Print a new random bearer token once, and the `[[auth_tokens]]`
    /// entry (its SHA-256, never the token) to paste into the server's
    /// config file; then reload the server (SIGHUP) or restart it.
    ///
    /// Example: verdict token create --subject alice --role approver
    Create(TokenCreateArgs),
}

/// `verdict token create`.
#[derive(Debug, clap::Args)]
pub struct TokenCreateArgs {
    /// Who will present the token (recorded as the approver, in logs).
    #[arg(long)]
    pub subject: String,
    /// A role the token grants (repeatable): viewer, operator, approver,
    /// admin, executor.
    #[arg(long = "role", required = true, value_parser = clap::value_parser!(String))]
    pub roles: Vec<String>,
}

impl TokenCommand {
    /// Runs the command: the token and the entry on stdout (JSON with
    /// `json`).
    pub fn run(self, json: bool) -> anyhow::Result<()> {
        let TokenCommand::Create(args) = self;
        let roles = crate::auth::token::parse_roles(&args.roles).map_err(anyhow::Error::msg)?;
        let (token, entry) =
            crate::auth::token::generate(&args.subject, roles).map_err(anyhow::Error::msg)?;
        #[derive(serde::Serialize)]
        struct File<'a> {
            auth_tokens: [&'a crate::auth::TokenEntry; 1],
        }
        if json {
            let out = serde_json::json!({ "token": token, "entry": entry });
            println!("{out}");
            return Ok(());
        }
        let toml = toml::to_string(&File {
            auth_tokens: [&entry],
        })?;
        println!(
            "token for {} (shown once; hand it over as a secret):",
            entry.subject
        );
        println!("{token}");
        println!();
        println!("add to the server's config file, then reload it (kill -HUP) or restart:");
        print!("{toml}");
        Ok(())
    }
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
        let cli = Cli::try_parse_from([
            "verdict",
            "token",
            "create",
            "--subject",
            "a",
            "--role",
            "viewer",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Token(_)));
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

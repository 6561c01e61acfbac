//! The `verdict` binary: `verdict serve` runs the server, `verdict bench`
//! the load generator (`verdict::bench`, with the `bench` feature); every
//! other subcommand is the typed gRPC client in [`verdict::cli`]. The
//! command line is [`verdict::app::Cli`].

use anyhow::Context;
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use verdict::app::{Cli, Command};
use verdict::config::{Config, LogFormat, ServeArgs};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args).await,
        Command::Client(command) => verdict::cli::run(&cli.global, command).await,
        Command::Token(command) => command.run(cli.global.json),
        // `bench` opens its own connections (several, or to a server it
        // spawns), so it gets the address rather than a channel.
        #[cfg(feature = "bench")]
        Command::Bench(args) => {
            verdict::bench::main(&cli.global.addr, cli.global.json, *args).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => verdict::cli::report(&err),
    }
}

/// Runs the server until SIGTERM or Ctrl-C (then drains gracefully), or
/// until it fails on its own.
async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    init_tracing(config.log_format)?;
    let running = verdict::server::start(config, Default::default()).await?;
    let stop = running.shutdown_token();
    // `Running::shutdown` is cancel-then-wait; `wait` is what lets us also
    // notice a server that stops by itself, so the two are done by hand.
    let stopped = running.wait();
    tokio::pin!(stopped);
    tokio::select! {
        result = &mut stopped => return result.context("the server stopped unexpectedly"),
        () = verdict::server::termination_signal() => {}
    }
    tracing::info!("termination signal received; shutting down");
    stop.cancel();
    stopped.await
}

/// Logs to stdout as text or JSON lines; the filter comes from `RUST_LOG`
/// (default `info`).
fn init_tracing(format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env()
        .context("invalid RUST_LOG")?;
    // Colours only for a person watching; never in files or log pipelines.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

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
    let exporter = init_tracing(config.log_format)?;
    let result = run_server(args, config).await;
    if let Some(e) = exporter {
        // The batch exporter blocks while it flushes.
        let _ = tokio::task::spawn_blocking(move || e.shutdown()).await;
    }
    result
}

/// Serves until a termination signal (then drains) or a failure.
async fn run_server(args: &ServeArgs, config: Config) -> anyhow::Result<()> {
    let running = verdict::server::start(config, Default::default()).await?;
    let stop = running.shutdown_token();
    let reloader = running.reloader();
    // `Running::shutdown` is cancel-then-wait; `wait` is what lets us also
    // notice a server that stops by itself, so the two are done by hand.
    let stopped = running.wait();
    tokio::pin!(stopped);
    tokio::select! {
        result = &mut stopped => return result.context("the server stopped unexpectedly"),
        () = verdict::server::termination_signal() => {}
        () = reload_on_change(args, &reloader) => {}
    }
    tracing::info!("termination signal received; shutting down");
    stop.cancel();
    stopped.await
}

/// How often the config file's modification time is compared.
const RELOAD_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Reloads the authentication, approval policy and TLS certificate on
/// SIGHUP and when the config file or a TLS file changes (their
/// modification times, compared every [`RELOAD_CHECK`]); a file that does
/// not load keeps the configuration in force and logs why. Never returns.
async fn reload_on_change(args: &ServeArgs, reloader: &verdict::server::Reloader) {
    let modified = || {
        args.config
            .iter()
            .cloned()
            .chain(reloader.watched_files())
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect::<Vec<_>>()
    };
    let mut seen = modified();
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(RELOAD_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hup.as_mut() {
                // A closed signal stream (no driver) never fires again.
                Some(h) => {
                    if h.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<()>();
        let why = tokio::select! {
            () = signalled => {
                // The file as it is now is what this reload reads: the
                // next check must not reload (and record) it again.
                seen = modified();
                "SIGHUP"
            }
            _ = tick.tick() => {
                let now = modified();
                if now == seen {
                    continue;
                }
                seen = now;
                "config or TLS file changed"
            }
        };
        let trigger = match &args.config {
            Some(path) => format!("{why} ({})", path.display()),
            None => why.to_owned(),
        };
        match reloader.reload(Config::load(args), &trigger).await {
            Ok(()) => tracing::info!(trigger = why, "configuration reloaded"),
            Err(e) => tracing::error!(
                trigger = why,
                error = format!("{e:#}"),
                "configuration NOT reloaded; the previous one stays in force"
            ),
        }
    }
}

/// Logs to stdout as text or JSON lines; the filter comes from `RUST_LOG`
/// (default `info`). With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are
/// also exported over OTLP; the returned exporter flushes them at exit.
fn init_tracing(format: LogFormat) -> anyhow::Result<Option<verdict::telemetry::Exporter>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env()
        .context("invalid RUST_LOG")?;
    // Colours only for a person watching; never in files or log pipelines.
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let (otel, exporter) = match verdict::telemetry::otlp_layer().map_err(anyhow::Error::msg)? {
        Some((layer, exporter)) => (Some(layer), Some(exporter)),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    if exporter.is_some() {
        tracing::info!(
            "exporting traces over OTLP ({})",
            verdict::telemetry::ENDPOINT_VAR
        );
    }
    Ok(exporter)
}

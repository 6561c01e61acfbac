//! `verdict bench`: a gRPC load generator in the spirit of ghz, measuring
//! the SPEC's throughput and latency targets against a running server (or
//! one it starts in-process with `--spawn`).
//!
//! Every throughput is reported beside its ratio to `health` measured in
//! the same run: `grpc.health.v1.Health/Check` does no work, so it is the
//! ceiling of this server on this machine, and the ratio survives the noise
//! of a shared machine that absolute figures do not.
//!
//! One file per concern: `scenarios.rs` (what one request is and the data
//! it needs), `runner.rs` (the load loop and histograms), `seed.rs` (bulk
//! data straight into Redis), `seed_stats.rs` (bulk resolved incidents and
//! their statistics, for `examples/stats_bench.rs`), `scaling.rs` (the
//! lookup latency as the store grows), `fanout.rs` (watch streams),
//! `report.rs` (tables and `--json`), `compare.rs` (`--compare` against a
//! saved run). The tool talks to the server only
//! through the generated clients (connecting and tables come from
//! `client/`, shared with the CLI); only seeding touches Redis, through
//! `RedisStore::seed_bulk` and `RedisStore::write_bulk`, so data lands in
//! the real key layout. Compiled with the `bench` cargo feature (default).

pub mod compare;
pub mod fanout;
pub mod report;
pub mod runner;
pub mod scaling;
pub mod scenarios;
pub mod seed;
pub mod seed_stats;

pub use report::Report;
pub use scenarios::Scenario;

use crate::config::Config;
use crate::domain::Role;
use crate::server::{Overrides, Running};
use anyhow::Context;
use report::{Figures, ScenarioReport};
use runner::{Limit, Load, Measurement};
use scenarios::Workload;
use seed::Seeder;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Bounds on the flags, so a typo cannot exhaust the machine.
const MAX_CONCURRENCY: u32 = 10_000;
const MAX_CONNECTIONS: u32 = 1_000;
const MAX_REQUESTS: u64 = 100_000_000;
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_RECORDS: usize = 100_000;
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the tool waits for the server to report SERVING (a fresh
/// server reports NOT_SERVING until its first store check).
const READY_WAIT: Duration = Duration::from_secs(10);

/// Approvals the warm-up of `approve` may consume.
const WARMUP_APPROVALS: u64 = 2_000;

/// Tokens `approve` prepares for a timed run when `--prepare` is not
/// given: seeded ones are cheap, ones made through the RPCs are not.
const PREPARE_SEEDED: u64 = 100_000;
const PREPARE_RPC: u64 = 5_000;

/// Flags of `verdict bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("limit").args(["duration", "requests"])))]
pub struct BenchArgs {
    /// The server to load (host:port or URL) [default: --addr].
    #[arg(long, value_name = "ADDR", conflicts_with = "spawn")]
    pub target: Option<String>,
    /// Start a server in this process (127.0.0.1, a free port) and load it:
    /// with --redis-url it uses that Redis, otherwise the in-memory store.
    #[arg(long)]
    pub spawn: bool,
    /// The server's Redis. The spawned server uses it; bulk setup data
    /// (the scaling scenario, `approve`'s tokens) is written straight into
    /// it. Use a throwaway Redis: the tool leaves its data behind.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// What to measure; every scenario other than health also runs health
    /// first, for the ratio.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: Scenario,
    /// Requests in flight.
    #[arg(long, short = 'c', default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY as i64))]
    pub concurrency: u32,
    /// HTTP/2 connections the requests share.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=MAX_CONNECTIONS as i64))]
    pub connections: u32,
    /// How long each scenario (and each scaling step) is measured
    /// [default: 10s].
    #[arg(long, short = 'z', value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Measure exactly this many requests per scenario instead of a duration.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    pub requests: Option<u64>,
    /// Load before each measurement, not counted (0s: none).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Per-request deadline, enforced by the tool.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Incidents with a READY token created through the RPCs for
    /// get-decision, get-or-create-existing and the scaling probes.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub records: usize,
    /// READY tokens prepared for a timed `approve` run (one per request)
    /// [default: 100000 seeded with --redis-url, else 5000 via RPCs].
    #[arg(long, value_name = "N")]
    pub prepare: Option<u64>,
    /// Rounds each scenario's measurement is split into. The scenarios take
    /// turns round by round, so a machine that gets busier or quieter
    /// during the run weighs on all of them alike and the ratios hold.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Decisions stored at each scaling step (comma-separated).
    #[arg(
        long,
        value_name = "N,N,…",
        value_delimiter = ',',
        default_value = "0,10000,100000,1000000"
    )]
    pub scaling_levels: Vec<u64>,
    /// watch-fanout: stream counts to measure (comma-separated).
    #[arg(
        long,
        value_name = "N,N,…",
        value_delimiter = ',',
        default_value = "1000,10000"
    )]
    pub watchers: Vec<usize>,
    /// watch-fanout: more replicas of the --target's service (sharing its
    /// Redis). The streams are spread over --target and these, connection
    /// by connection; the change is made through --target.
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub replica: Vec<String>,
    /// watch-fanout: the servers' process ids (comma-separated), to report
    /// their RSS.
    #[arg(long, value_name = "PID,PID,…", value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Also write this run's report as JSON to FILE (a baseline for a
    /// later `--compare`).
    #[arg(long, value_name = "FILE")]
    pub save: Option<std::path::PathBuf>,
    /// Compare each ratio to health with a saved run (`--json` or
    /// `--save` output) and exit non-zero when any fell by more than
    /// `--margin`.
    #[arg(long, value_name = "BASELINE.json")]
    pub compare: Option<std::path::PathBuf>,
    /// With --compare: compare this saved run instead of measuring one.
    #[arg(long, value_name = "FILE", requires = "compare")]
    pub current: Option<std::path::PathBuf>,
    /// With --compare: the largest fall of a ratio tolerated, in percent.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0, value_parser = margin)]
    pub margin: f64,
}

/// A margin in percent, 0 to 100.
fn margin(s: &str) -> Result<f64, String> {
    let m: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=100.0).contains(&m) {
        Ok(m)
    } else {
        Err("must be between 0 and 100".into())
    }
}

impl BenchArgs {
    fn limit(&self) -> Limit {
        match (self.requests, self.duration) {
            (Some(n), _) => Limit::Requests(n),
            (None, d) => Limit::Duration(d.unwrap_or(Duration::from_secs(10))),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(d) = self.duration {
            anyhow::ensure!(
                !d.is_zero() && d <= MAX_DURATION,
                "--duration must be between 1ms and 1h"
            );
        }
        anyhow::ensure!(self.warmup <= MAX_DURATION, "--warmup must be at most 1h");
        anyhow::ensure!(
            self.replica.is_empty() || self.scenario == Scenario::WatchFanout,
            "--replica spreads watch-fanout's streams; the load scenarios measure --target alone"
        );
        anyhow::ensure!(
            self.spawn || self.scenario != Scenario::GetDecisionAuth,
            "--scenario get-decision-auth needs --spawn: its server checks a token the bench makes"
        );
        anyhow::ensure!(
            !self.timeout.is_zero() && self.timeout <= MAX_TIMEOUT,
            "--timeout must be between 1ms and 2m"
        );
        anyhow::ensure!(
            (1..=MAX_RECORDS).contains(&self.records),
            "--records must be between 1 and {MAX_RECORDS}"
        );
        if let Some(p) = self.prepare {
            anyhow::ensure!(
                (1..=seed::MAX_SEED).contains(&p),
                "--prepare must be between 1 and {}",
                seed::MAX_SEED
            );
        }
        for &level in &self.scaling_levels {
            anyhow::ensure!(
                level <= seed::MAX_SEED,
                "scaling levels must be at most {}",
                seed::MAX_SEED
            );
        }
        Ok(())
    }

    /// The scenarios to run. Health is always among them: every other
    /// figure is read against it.
    fn plan(&self) -> Vec<Scenario> {
        match self.scenario {
            Scenario::All => {
                let mut all = Scenario::LOAD.to_vec();
                all.push(Scenario::Scaling);
                all
            }
            Scenario::Health => vec![Scenario::Health],
            Scenario::WatchFanout => vec![],
            Scenario::GetDecisionAuth => vec![
                Scenario::Health,
                Scenario::GetDecision,
                Scenario::GetDecisionAuth,
            ],
            other => vec![Scenario::Health, other],
        }
    }
}

/// Runs `verdict bench` and prints the report (a table, or JSON), then
/// the comparison with `--compare`'s baseline, failing on a regression.
pub async fn main(default_addr: &str, json: bool, args: BenchArgs) -> anyhow::Result<()> {
    // Read first: a typo in the path must not cost a whole run.
    let baseline = args
        .compare
        .as_deref()
        .map(compare::Saved::read)
        .transpose()?;
    if let (Some(baseline), Some(current)) = (&baseline, &args.current) {
        let current = compare::Saved::read(current)?;
        return print_comparison(baseline, &current, args.margin);
    }
    anyhow::ensure!(
        args.scenario != Scenario::WatchFanout || (baseline.is_none() && args.save.is_none()),
        "--compare and --save take the load scenarios' ratios; watch-fanout has none"
    );
    let text = if args.scenario == Scenario::WatchFanout {
        let mut targets = vec![
            args.target
                .clone()
                .unwrap_or_else(|| default_addr.to_owned()),
        ];
        targets.extend(args.replica.iter().cloned());
        let mut results = Vec::new();
        for &n in &args.watchers {
            results.push(
                fanout::run(
                    &targets,
                    n,
                    &args.server_pid,
                    args.timeout.max(Duration::from_secs(60)),
                )
                .await?,
            );
        }
        if json {
            serde_json::to_string_pretty(&results)? + "\n"
        } else {
            fanout::table(&results)
        }
    } else {
        let report = run(default_addr, &args).await?;
        let saved = report.json()?;
        if let Some(path) = &args.save {
            std::fs::write(path, &saved)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        write_out(&if json { saved.clone() } else { report.text() })?;
        if let Some(baseline) = &baseline {
            let current = compare::Saved::parse(&saved)?;
            return print_comparison(baseline, &current, args.margin);
        }
        return Ok(());
    };
    write_out(&text)
}

/// Prints how `current`'s ratios moved against `baseline`'s; an error when
/// any fell by more than `margin_pct`.
fn print_comparison(
    baseline: &compare::Saved,
    current: &compare::Saved,
    margin_pct: f64,
) -> anyhow::Result<()> {
    let comparison = compare::Comparison::new(baseline, current, margin_pct / 100.0);
    write_out(&format!("\n{}", comparison.text()))?;
    comparison.verdict()
}

fn write_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write the report")
}

/// Runs the benchmark and returns its report; the in-process entry point
/// (the smoke test drives it directly).
pub async fn run(default_addr: &str, args: &BenchArgs) -> anyhow::Result<Report> {
    args.validate()?;
    // `get-decision-auth` needs a token the spawned server checks.
    let bearer = (args.scenario == Scenario::GetDecisionAuth)
        .then(|| {
            crate::auth::token::generate("verdict-bench", [Role::Viewer].into_iter().collect())
                .map_err(anyhow::Error::msg)
        })
        .transpose()?;
    let spawned = if args.spawn {
        Some(
            spawn(
                args.redis_url.clone(),
                bearer.as_ref().map(|(_, e)| e.clone()),
            )
            .await?,
        )
    } else {
        None
    };
    let target = match &spawned {
        Some(r) => format!("http://{}", r.addr),
        None => args
            .target
            .clone()
            .unwrap_or_else(|| default_addr.to_owned()),
    };
    let result = measure(&target, args, bearer.as_ref().map(|(t, _)| t.as_str())).await;
    if let Some(r) = spawned {
        r.shutdown()
            .await
            .context("the spawned server did not stop cleanly")?;
    }
    let (scenarios, scaling, notes) = result?;
    Ok(Report {
        target,
        spawned: args.spawn,
        concurrency: args.concurrency,
        connections: args.connections,
        limit: match args.limit() {
            Limit::Requests(n) => format!("{n} requests"),
            Limit::Duration(d) => humantime::format_duration(d).to_string(),
        },
        warmup_s: args.warmup.as_secs_f64(),
        rounds: args.rounds,
        scenarios,
        scaling,
        notes,
    })
}

type Measured = (
    Vec<ScenarioReport>,
    Option<report::ScalingReport>,
    Vec<String>,
);

async fn measure(target: &str, args: &BenchArgs, bearer: Option<&str>) -> anyhow::Result<Measured> {
    let mut channels = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        channels.push(crate::client::connect(&crate::client::Target::plain(target)).await?);
    }
    wait_serving(&channels[0]).await?;
    let seeder = args.redis_url.as_deref().map(Seeder::new).transpose()?;
    let load = Load {
        concurrency: args.concurrency,
        limit: args.limit(),
        timeout: args.timeout,
    };
    let warmup = (!args.warmup.is_zero()).then_some(Load {
        limit: Limit::Duration(args.warmup),
        ..load
    });
    let plan = args.plan();
    let mut notes = Vec::new();

    // Incidents with READY tokens, created once through the RPCs and
    // shared by the lookup scenarios and the scaling probes.
    let needs_records = plan.iter().any(|s| {
        matches!(
            s,
            Scenario::GetDecision
                | Scenario::GetDecisionAuth
                | Scenario::GetOrCreateExisting
                | Scenario::Scaling
        )
    });
    let records = if needs_records {
        scenarios::create_records(&channels[0], args.records).await?
    } else {
        Vec::new()
    };

    // Scaling first, so its first step sees a store holding only its
    // probes; the other scenarios then run against the grown store (their
    // lookups are O(1), so they must not care).
    let mut scaling = None;
    if plan.contains(&Scenario::Scaling) {
        match &seeder {
            Some(seeder) => {
                let probes = records.iter().map(|(i, _)| i.clone()).collect();
                let s = scaling::run(
                    seeder,
                    &channels,
                    probes,
                    &args.scaling_levels,
                    warmup,
                    load,
                    args.rounds,
                )
                .await?;
                if let Some(last) = s.rows.last() {
                    notes.push(format!(
                        "the scenarios other than scaling ran with {} decisions stored",
                        last.stored
                    ));
                }
                scaling = Some(s);
            }
            None => notes.push(
                "scaling skipped: it seeds Redis directly, so it needs --redis-url (the server's Redis)"
                    .to_owned(),
            ),
        }
    }

    // Set up and warm up every load scenario, then measure them in rounds.
    let mut runs = Vec::new();
    for scenario in plan
        .into_iter()
        .filter(|s| Scenario::LOAD.contains(s) || *s == Scenario::GetDecisionAuth)
    {
        let started = Instant::now();
        let (warm, main) = workloads(
            scenario,
            args,
            load.limit,
            &records,
            &channels[0],
            seeder.as_ref(),
            bearer,
        )
        .await?;
        runs.push(Run {
            scenario,
            warm: Arc::new(warm),
            main: Arc::new(main),
            setup_s: started.elapsed().as_secs_f64(),
            measured: Measurement::empty()?,
        });
    }
    if let Some(w) = warmup {
        for run in &runs {
            runner::run(run.warm.clone(), &channels, w).await?;
        }
    }
    let mains: Vec<_> = runs.iter().map(|r| r.main.clone()).collect();
    let measured = runner::run_rounds(&mains, &channels, load, args.rounds).await?;
    for (run, m) in runs.iter_mut().zip(measured) {
        run.measured = m;
    }

    let health_rps = runs
        .iter()
        .find(|r| r.scenario == Scenario::Health)
        .map(|r| r.measured.throughput());
    let rps = |s: Scenario| {
        runs.iter()
            .find(|r| r.scenario == s)
            .map(|r| r.measured.throughput())
    };
    if let (Some(on), Some(off)) = (rps(Scenario::GetDecisionAuth), rps(Scenario::GetDecision))
        && off > 0.0
    {
        notes.push(format!(
            "get-decision-auth / get-decision = {:.1} % (a static token checked on every call vs none, same server, same rounds)",
            100.0 * on / off
        ));
    }
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        let mut figures = Figures::from(&run.measured);
        if run.scenario != Scenario::Health {
            figures.relative_to(health_rps);
        }
        if run.measured.exhausted {
            notes.push(format!(
                "{} ran out of prepared data after {} requests (raise --prepare)",
                run.scenario.name(),
                run.measured.requests
            ));
        }
        out.push(ScenarioReport {
            scenario: run.scenario.name(),
            figures,
            setup_s: run.setup_s,
        });
    }
    Ok((out, scaling, notes))
}

/// One load scenario being measured round by round.
struct Run {
    scenario: Scenario,
    warm: Arc<Workload>,
    main: Arc<Workload>,
    setup_s: f64,
    measured: Measurement,
}

/// The warm-up and measured workloads of one load scenario, with their
/// data prepared (`approve` gets two separate token queues: a token can be
/// approved only once).
async fn workloads(
    scenario: Scenario,
    args: &BenchArgs,
    limit: Limit,
    records: &[(String, String)],
    channel: &Channel,
    seeder: Option<&Seeder>,
    bearer: Option<&str>,
) -> anyhow::Result<(Workload, Workload)> {
    let tokens = || records.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
    let incidents = || records.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>();
    Ok(match scenario {
        Scenario::GetDecision => (
            Workload::GetDecision(tokens()),
            Workload::GetDecision(tokens()),
        ),
        Scenario::GetDecisionAuth => {
            let bearer = bearer
                .context("get-decision-auth needs --spawn (its server checks the bench's token)")?;
            let value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
                format!("Bearer {bearer}")
                    .parse()
                    .context("the bench token is not ASCII")?;
            (
                Workload::GetDecisionAuth(tokens(), value.clone()),
                Workload::GetDecisionAuth(tokens(), value),
            )
        }
        Scenario::GetOrCreateExisting => (
            Workload::GetOrCreateExisting(incidents()),
            Workload::GetOrCreateExisting(incidents()),
        ),
        Scenario::CreateAndDecide => (
            Workload::CreateAndDecide(scenarios::DECIDE_TIMEOUT),
            Workload::CreateAndDecide(scenarios::DECIDE_TIMEOUT),
        ),
        Scenario::Approve => {
            let wanted = match limit {
                Limit::Requests(n) => n,
                Limit::Duration(_) => args.prepare.unwrap_or(if seeder.is_some() {
                    PREPARE_SEEDED
                } else {
                    PREPARE_RPC
                }),
            };
            let warm_n = if args.warmup.is_zero() {
                0
            } else {
                WARMUP_APPROVALS.min(wanted)
            };
            let warm = scenarios::approve_tokens(channel, seeder, warm_n).await?;
            let main = scenarios::approve_tokens(channel, seeder, wanted).await?;
            (Workload::Approve(warm), Workload::Approve(main))
        }
        Scenario::Health | Scenario::Scaling | Scenario::All | Scenario::WatchFanout => {
            (Workload::Health, Workload::Health)
        }
    })
}

/// Starts a server in this process on a free loopback port.
/// With `bench_token`, the server takes that static token and checks it
/// when presented; calls without credentials are still served (as with
/// `serve --dev`), so the same server answers both with and without
/// authentication.
async fn spawn(
    redis_url: Option<String>,
    bench_token: Option<crate::auth::TokenEntry>,
) -> anyhow::Result<Running> {
    let config = Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        dev: redis_url.is_none(),
        redis_url,
        ..Config::default()
    };
    config.validate()?;
    let overrides = Overrides {
        auth: bench_token.map(|entry| crate::auth::AuthSettings {
            tokens: vec![entry],
            optional: true,
            ..Default::default()
        }),
        ..Overrides::default()
    };
    crate::server::start(config, overrides)
        .await
        .context("cannot start the in-process server")
}

/// Waits until the server reports SERVING: measuring a server that refuses
/// work would measure nothing.
async fn wait_serving(channel: &Channel) -> anyhow::Result<()> {
    let mut health = HealthClient::new(channel.clone());
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        let req = HealthCheckRequest {
            service: String::new(),
        };
        let status = tokio::time::timeout_at(deadline, health.check(req)).await;
        match status {
            Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
            Err(_) => anyhow::bail!(
                "the server is not SERVING after {} (is its Redis up?)",
                humantime::format_duration(READY_WAIT)
            ),
            _ if tokio::time::Instant::now() >= deadline => anyhow::bail!(
                "the server is not SERVING after {} (is its Redis up?)",
                humantime::format_duration(READY_WAIT)
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `verdict bench`'s own flags, parsed as `app::Cli` embeds them.
    #[derive(clap::Parser)]
    struct Bench {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut argv = vec!["bench"];
        argv.extend(args);
        Ok(Bench::try_parse_from(argv)?.args)
    }

    #[test]
    fn health_runs_first_for_the_ratio() {
        let b = parse(&["--scenario", "approve"]).unwrap();
        assert_eq!(b.plan(), vec![Scenario::Health, Scenario::Approve]);
        let b = parse(&[]).unwrap();
        assert_eq!(b.plan()[0], Scenario::Health);
        assert_eq!(b.plan().len(), 6);
        assert_eq!(b.limit(), Limit::Duration(Duration::from_secs(10)));
        assert_eq!(b.scaling_levels, scaling::DEFAULT_LEVELS);
    }

    #[test]
    fn rounds_share_the_limit_exactly() {
        let total: u64 = (0..7)
            .map(|r| match runner::round_limit(Limit::Requests(300), 7, r) {
                Limit::Requests(n) => n,
                Limit::Duration(_) => unreachable!(),
            })
            .sum();
        assert_eq!(total, 300);
        assert_eq!(
            runner::round_limit(Limit::Duration(Duration::from_secs(10)), 5, 0),
            Limit::Duration(Duration::from_secs(2))
        );
    }

    #[test]
    fn flags_are_bounded() {
        assert!(parse(&["-c", "0"]).is_err());
        assert!(parse(&["-c", "1000000"]).is_err());
        assert!(parse(&["-n", "10", "-z", "1s"]).is_err(), "one limit");
        assert!(parse(&["--spawn", "--target", "x:1"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        let b = parse(&["-n", "300", "--records", "0"]).unwrap();
        assert_eq!(b.limit(), Limit::Requests(300));
        assert!(b.validate().is_err());
        let b = parse(&["--scaling-levels", "0,99999999"]).unwrap();
        assert!(b.validate().is_err());
    }
}

//! Statistics at scale: seeds resolved incidents with
//! `verdict::bench::seed_stats::seed_resolved` (default 1 000 000 over 30 days), starts
//! a verdict server on the same Redis, and times each StatsService RPC over
//! gRPC for the last 24 h, 7 d and 30 d (and all time).
//!
//! ```sh
//! cargo run --release --example stats_bench                # private redis-server
//! cargo run --release --example stats_bench -- 100000      # fewer incidents
//! VERDICT_BENCH_REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --example stats_bench
//! ```
//!
//! Without `VERDICT_BENCH_REDIS_URL` it starts its own `redis-server` on a
//! free port (nothing persisted) and stops it at the end. The SPEC target is
//! < 5 ms per RPC at 1 M incidents.

use anyhow::Context;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use verdict::proto::stats_service_client::StatsServiceClient;
use verdict::proto::{
    GetAffectedServicesRequest, GetAiPerformanceRequest, GetIncidentSummaryRequest,
    GetResolutionStatsRequest, TimeRange,
};

/// Timed calls per RPC and range (after as many warm-up calls).
const CALLS: usize = 300;

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> anyhow::Result<(String, Redis, tempfile::TempDir)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = tempfile::tempdir()?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start redis-server")?;
    Ok((format!("redis://127.0.0.1:{port}/"), Redis(child), dir))
}

async fn wait_for(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    for _ in 0..100 {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok()
        {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("redis at {url} did not answer")
}

fn last(d: Duration) -> Option<TimeRange> {
    Some(TimeRange {
        last: Some(prost_types::Duration {
            seconds: d.as_secs() as i64,
            nanos: 0,
        }),
        ..Default::default()
    })
}

/// p50, p99 and mean of `CALLS` calls of `f`, in milliseconds.
async fn time<F, Fut>(mut f: F) -> anyhow::Result<(f64, f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..CALLS {
        f().await?;
    }
    let mut took = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        f().await?;
        took.push(t.elapsed().as_secs_f64() * 1_000.0);
    }
    took.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| took[((q * CALLS as f64).ceil() as usize).clamp(1, CALLS) - 1];
    Ok((at(0.50), at(0.99), took.iter().sum::<f64>() / CALLS as f64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .context("the argument is the number of incidents")?,
        None => 1_000_000,
    };
    let (url, _redis, _dir) = match std::env::var("VERDICT_BENCH_REDIS_URL") {
        Ok(url) => (url, None, None),
        Err(_) => {
            let (url, r, d) = start_redis()?;
            (url, Some(r), Some(d))
        }
    };
    let mut conn = wait_for(&url).await?;

    let store = verdict::store::RedisStore::new(
        &url,
        verdict::store::redis::PoolConfig {
            size: 4,
            wait: Duration::from_secs(30),
            ..Default::default()
        },
        Default::default(),
    )?;
    let spec = verdict::bench::seed_stats::SeedSpec {
        incidents: n,
        ..Default::default()
    };
    println!(
        "seeding {n} resolved incidents over {} (records, index and statistics)...",
        humantime::format_duration(spec.span)
    );
    let seeded = verdict::bench::seed_stats::seed_resolved(&store, &spec).await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_human:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
    println!(
        "seeded in {:.1} s ({:.0} incidents/s, {} commands); Redis: {keys} keys, {used}",
        seeded.elapsed.as_secs_f64(),
        n as f64 / seeded.elapsed.as_secs_f64(),
        seeded.commands,
    );

    let config = verdict::config::Config {
        listen: "127.0.0.1:0".parse()?,
        redis_url: Some(url.clone()),
        ..Default::default()
    };
    let server = verdict::server::start(config, Default::default()).await?;
    let channel = Channel::from_shared(format!("http://{}", server.addr))?
        .connect()
        .await?;
    let client = StatsServiceClient::new(channel);

    println!(
        "\nms per RPC over gRPC ({CALLS} sequential calls after {CALLS} warm-up), target < 5 ms"
    );
    println!(
        "{:<22} {:<8} {:>8} {:>8} {:>8}",
        "RPC", "RANGE", "P50", "P99", "MEAN"
    );
    let ranges = [
        ("24h", last(Duration::from_secs(86_400))),
        ("7d", last(Duration::from_secs(7 * 86_400))),
        ("30d", last(Duration::from_secs(30 * 86_400))),
        (
            "all",
            Some(TimeRange {
                all_time: true,
                ..Default::default()
            }),
        ),
    ];
    for (name, r) in ranges {
        let c = client.clone();
        let report = |rpc: &str, (p50, p99, mean): (f64, f64, f64)| {
            println!("{rpc:<22} {name:<8} {p50:>8.3} {p99:>8.3} {mean:>8.3}");
        };
        report(
            "GetIncidentSummary",
            time(|| {
                let mut c = c.clone();
                let range = r;
                async move {
                    c.get_incident_summary(GetIncidentSummaryRequest { range })
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
        report(
            "GetResolutionStats",
            time(|| {
                let mut c = c.clone();
                let range = r;
                async move {
                    c.get_resolution_stats(GetResolutionStatsRequest { range })
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
        report(
            "GetAiPerformance",
            time(|| {
                let mut c = c.clone();
                let range = r;
                async move {
                    c.get_ai_performance(GetAiPerformanceRequest { range })
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
        report(
            "GetAffectedServices",
            time(|| {
                let mut c = c.clone();
                let range = r;
                async move {
                    c.get_affected_services(GetAffectedServicesRequest { range, limit: 10 })
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
    }

    let mut c = client.clone();
    let res = c
        .get_resolution_stats(GetResolutionStatsRequest { range: ranges[3].1 })
        .await?
        .into_inner();
    let sum = c
        .get_incident_summary(GetIncidentSummaryRequest { range: ranges[3].1 })
        .await?
        .into_inner();
    let overall = res.overall.unwrap_or_default();
    println!(
        "\nall time: {} created, {} resolved (exact: {n})",
        sum.created, overall.count
    );
    let mut exact = seeded.resolution_ms;
    exact.sort_unstable();
    let ms = |d: Option<prost_types::Duration>| {
        d.map(|d| d.seconds as f64 * 1e3 + d.nanos as f64 / 1e6)
            .unwrap_or(0.0)
    };
    println!(
        "{:<6} {:>14} {:>14} {:>9}",
        "", "SKETCH (ms)", "EXACT (ms)", "ERROR"
    );
    for (q, got) in [
        ("p50", ms(overall.p50)),
        ("p95", ms(overall.p95)),
        ("p99", ms(overall.p99)),
    ] {
        let qf: f64 = match q {
            "p50" => 0.50,
            "p95" => 0.95,
            _ => 0.99,
        };
        let rank = ((qf * exact.len() as f64).ceil() as usize).clamp(1, exact.len().max(1));
        let want = exact.get(rank - 1).copied().unwrap_or(0) as f64;
        let err = if want > 0.0 {
            (got - want).abs() / want * 100.0
        } else {
            0.0
        };
        println!("{q:<6} {got:>14.1} {want:>14.1} {err:>8.3}%");
    }
    server.shutdown().await?;
    Ok(())
}

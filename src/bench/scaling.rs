//! The scaling scenario: `get-or-create-existing` latency while the store
//! grows from nothing to a million decisions. The lookup is by key (one Lua
//! script: a GET and two HGETs), so the table must stay flat; a scan on the
//! request path would show up here as latency growing with the row.
//!
//! The probe incidents are created once through the RPCs; between steps
//! the store is grown around them with pipelined bulk writes, and the
//! seeding time of each step is reported too.

use super::report::{Figures, ScalingReport, ScalingRow};
use super::runner::{self, Load};
use super::scenarios::Workload;
use super::seed::Seeder;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

/// The steps when none are given: the SPEC's "0 to 1 M stored decisions".
pub const DEFAULT_LEVELS: [u64; 4] = [0, 10_000, 100_000, 1_000_000];

/// Runs every step: grow the store to `level` decisions (never shrinks it:
/// a step below what is already stored is measured at what is stored),
/// warm up, then measure the probe lookups and health in interleaved
/// rounds. Each step's ratio is to the health measured in that step, so a
/// machine that gets busier between steps does not pass for a lookup that
/// gets slower with the store's size.
pub async fn run(
    seeder: &Seeder,
    channels: &[Channel],
    probe_incidents: Vec<String>,
    levels: &[u64],
    warmup: Option<Load>,
    load: Load,
    rounds: u32,
) -> anyhow::Result<ScalingReport> {
    let mut levels = levels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    let workload = Arc::new(Workload::GetOrCreateExisting(probe_incidents));
    let health = Arc::new(Workload::Health);
    let mut rows = Vec::with_capacity(levels.len());
    for level in levels {
        let before = seeder.stored().await?;
        let seeded = if level > before {
            Some(seeder.seed(level - before, false).await?.0)
        } else {
            None
        };
        let stored = seeder.stored().await?;
        // Let Redis settle after a bulk write: it grows its key space by
        // incremental rehashing, a step of which rides on every command
        // for a while after. Measured right after seeding a million
        // records, Redis spent twice as long per lookup as ten seconds
        // later (BENCHMARKS.md): a cost of bulk loading, not of lookups.
        if let Some(s) = &seeded {
            tokio::time::sleep(settle(s.records)).await;
        }
        if let Some(w) = warmup {
            runner::run(workload.clone(), channels, w).await?;
        }
        // A lookup that reaches Redis is one EVALSHA
        // (incident_and_current.lua); health does not touch Redis, so the
        // difference is the probes' alone. Most probes are answered from
        // the replica's copy (`store/redis/decision_cache.rs`): this times
        // the ones that are not, and is None when none reached Redis.
        let before = seeder.command_stats(LOOKUP_COMMAND).await?;
        let measured =
            runner::run_rounds(&[health.clone(), workload.clone()], channels, load, rounds).await?;
        let after = seeder.command_stats(LOOKUP_COMMAND).await?;
        let redis_us_per_call = match (before.unwrap_or((0, 0)), after) {
            ((c0, u0), Some((c1, u1))) if c1 > c0 => {
                Some(u1.saturating_sub(u0) as f64 / (c1 - c0) as f64)
            }
            _ => None,
        };
        let [health_m, probe_m] = <[_; 2]>::try_from(measured)
            .map_err(|_| anyhow::anyhow!("expected two measurements per scaling step"))?;
        let mut figures = Figures::from(&probe_m);
        figures.relative_to(Some(health_m.throughput()));
        rows.push(ScalingRow {
            stored,
            seeded,
            health_rps: health_m.throughput(),
            redis_us_per_call,
            figures,
        });
    }
    Ok(ScalingReport::new(rows))
}

/// The Redis command a `get-or-create-existing` lookup issues.
const LOOKUP_COMMAND: &str = "evalsha";

/// Pause between seeding `records` and measuring: half a second, plus a
/// second per 100 000 records, at most 15 s.
fn settle(records: u64) -> Duration {
    let ms = 500u64.saturating_add(records / 100);
    Duration::from_millis(ms.min(15_000))
}

//! The load loop, in the spirit of ghz: `concurrency` workers share
//! `connections` HTTP/2 connections (worker `i` uses connection
//! `i % connections`), and each keeps exactly one request in flight, so
//! `concurrency` is the number of requests in flight. Each worker records
//! into its own histogram; they are merged at the end, so nothing is shared
//! on the hot path but one atomic counter.

use super::scenarios::{Clients, Outcome, Workload};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Channel;

/// The slowest latency the histograms hold (slower ones are recorded as
/// this); well past any per-request deadline the tool allows.
const MAX_LATENCY: Duration = Duration::from_secs(120);

/// Significant decimal digits kept by the histograms: 0.1 % resolution.
const SIGFIG: u8 = 3;

/// When a phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After exactly this many requests (fewer only if the workload runs
    /// out of prepared data).
    Requests(u64),
    /// When this much time has passed; requests in flight then still finish
    /// and count.
    Duration(Duration),
}

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Requests issued and finished: always `ok + errors`.
    pub requests: u64,
    pub ok: u64,
    /// Failed requests by gRPC code name (or `DEADLINE_EXCEEDED` when the
    /// tool's own per-request deadline passed, or a harness label such as
    /// `UNEXPECTED_REPLY` when the answer was not what the scenario needs).
    pub errors: BTreeMap<&'static str, u64>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Latency of successful requests, in microseconds. Failures are left
    /// out: a fast refusal would otherwise flatter the percentiles.
    pub latency_us: Histogram<u64>,
    /// The workload ran out of prepared data before the limit.
    pub exhausted: bool,
}

impl Measurement {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Nothing measured yet.
    pub fn empty() -> anyhow::Result<Measurement> {
        Ok(Measurement {
            requests: 0,
            ok: 0,
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
            latency_us: new_histogram()?,
            exhausted: false,
        })
    }

    /// Adds one round of the same scenario: counts, latencies and time add
    /// up, so the throughput is over all rounds together.
    pub fn add_round(&mut self, round: Measurement) -> anyhow::Result<()> {
        self.elapsed += round.elapsed;
        self.merge(round)
    }

    fn merge(&mut self, other: Measurement) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.latency_us
            .add(&other.latency_us)
            .map_err(|e| anyhow::anyhow!("cannot merge latency histograms: {e:?}"))?;
        self.exhausted |= other.exhausted;
        Ok(())
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY.as_micros() as u64, SIGFIG)
        .map_err(|e| anyhow::anyhow!("cannot create a latency histogram: {e:?}"))
}

/// One phase's shape.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: u32,
    pub limit: Limit,
    /// Per-request deadline, enforced on the client side (nothing extra is
    /// sent to the server, so the server does the same work as for a
    /// caller without a deadline).
    pub timeout: Duration,
}

/// Runs `workload` under `load` over `channels` and returns what was
/// measured. Every worker is owned by a `JoinSet` and stops at the limit;
/// a panicking worker fails the phase instead of silently shrinking it.
pub async fn run(
    workload: Arc<Workload>,
    channels: &[Channel],
    load: Load,
) -> anyhow::Result<Measurement> {
    anyhow::ensure!(!channels.is_empty(), "no connection to load");
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop_at = match load.limit {
        Limit::Duration(d) => Some(started + d),
        Limit::Requests(_) => None,
    };
    let mut workers = JoinSet::new();
    for i in 0..load.concurrency.max(1) as usize {
        let clients = Clients::new(channels[i % channels.len()].clone());
        workers.spawn(worker(
            workload.clone(),
            clients,
            issued.clone(),
            load,
            stop_at,
        ));
    }
    let mut total = Measurement::empty()?;
    while let Some(done) = workers.join_next().await {
        let part = done.map_err(|e| anyhow::anyhow!("a load worker failed: {e}"))??;
        total.merge(part)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn worker(
    workload: Arc<Workload>,
    mut clients: Clients,
    issued: Arc<AtomicU64>,
    load: Load,
    stop_at: Option<Instant>,
) -> anyhow::Result<Measurement> {
    let mut m = Measurement::empty()?;
    loop {
        let seq = issued.fetch_add(1, Ordering::Relaxed);
        match (load.limit, stop_at) {
            (Limit::Requests(n), _) if seq >= n => break,
            (_, Some(end)) if Instant::now() >= end => break,
            _ => {}
        }
        let sent = Instant::now();
        let outcome = tokio::time::timeout(load.timeout, workload.call(&mut clients, seq)).await;
        let took = sent.elapsed();
        let outcome = outcome.unwrap_or(Outcome::Failed("DEADLINE_EXCEEDED"));
        match outcome {
            Outcome::Ok => {
                m.ok += 1;
                m.latency_us.saturating_record(took.as_micros() as u64);
            }
            Outcome::Failed(code) => *m.errors.entry(code).or_default() += 1,
            Outcome::Exhausted => {
                m.exhausted = true;
                break;
            }
        }
        m.requests += 1;
    }
    Ok(m)
}

/// Measures several workloads under the same `load`, split into `rounds`
/// rounds in which they take turns: drift in what else the machine is doing
/// then weighs on every workload alike, which is what keeps their ratios
/// meaningful on a shared machine. Returns one measurement per workload,
/// in order.
pub async fn run_rounds(
    workloads: &[Arc<Workload>],
    channels: &[Channel],
    load: Load,
    rounds: u32,
) -> anyhow::Result<Vec<Measurement>> {
    let mut out = Vec::with_capacity(workloads.len());
    for _ in workloads {
        out.push(Measurement::empty()?);
    }
    for round in 0..rounds.max(1) {
        let slice = Load {
            limit: round_limit(load.limit, rounds, round),
            ..load
        };
        for (workload, total) in workloads.iter().zip(out.iter_mut()) {
            total.add_round(run(workload.clone(), channels, slice).await?)?;
        }
    }
    Ok(out)
}

/// The limit of round `round` of `rounds`: an equal share of the time, or
/// of the requests (the first rounds take the remainder, so the total is
/// exact).
pub fn round_limit(limit: Limit, rounds: u32, round: u32) -> Limit {
    let rounds = rounds.max(1);
    match limit {
        Limit::Duration(d) => Limit::Duration(d / rounds),
        Limit::Requests(n) => {
            let (share, rest) = (n / u64::from(rounds), n % u64::from(rounds));
            Limit::Requests(share + u64::from(u64::from(round) < rest))
        }
    }
}

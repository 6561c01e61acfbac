//! Bulk setup data written straight into Redis with
//! [`RedisStore::seed_bulk`] (pipelined, in the real key layout), for the
//! scaling scenario and for the thousands of READY tokens `approve`
//! consumes. Going through the RPCs would take minutes for a million
//! records; going around the key layout would measure a store the server
//! never builds.

use crate::domain::{
    Decision, DecisionMode, DecisionState, Incident, IncidentId, K8sName, Severity, Signal,
    SignalStatus, Token,
};
use crate::engine::ExpertEngine;
use crate::store::RedisStore;
use crate::store::redis::PoolConfig;
use anyhow::Context;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records generated and handed to `seed_bulk` at a time: large enough to
/// keep Redis busy, small enough that a million records never sit in
/// memory at once (a chunk is a few MiB).
const CHUNK: usize = 10_000;

/// Chunks in flight at once: while Redis executes one chunk's pipelines
/// the next chunk is being generated. Redis is single-threaded, so more
/// would only queue (and risk the client's 500 ms response timeout).
const PARALLEL_CHUNKS: usize = 2;

/// The most records one seeding call writes (about 3 KiB of Redis memory
/// each): a bound, so a typo cannot fill the machine's memory.
pub const MAX_SEED: u64 = 5_000_000;

/// Records per `seed_bulk` call. Its pipelines must come back within the
/// Redis client's 500 ms response timeout even on a machine busy with other
/// work, so they are kept small.
const PIPELINE: usize = 250;

/// Tries per pipeline. A retry after a timeout may write a record twice:
/// every command is an overwrite except the history `LPUSH`, which then
/// lists the token twice; harmless for a benchmark's data.
const ATTEMPTS: u32 = 4;

/// How long one pipeline may wait for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Writes synthetic incidents, each with one READY decision, directly into
/// the server's Redis.
pub struct Seeder {
    store: RedisStore,
    expert: Arc<ExpertEngine>,
}

/// What one seeding call did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Seeded {
    /// Incidents written, each with one READY decision.
    pub records: u64,
    pub elapsed_s: f64,
}

impl Seeded {
    /// Records written per second.
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed_s.max(1e-9)
    }
}

impl Seeder {
    /// A seeder for the Redis at `url` (the one the server uses).
    pub fn new(url: &str) -> anyhow::Result<Seeder> {
        let store = RedisStore::new(
            url,
            PoolConfig {
                size: PARALLEL_CHUNKS as u32,
                wait: POOL_WAIT,
                ..PoolConfig::default()
            },
            Default::default(),
        )
        .with_context(|| format!("cannot use Redis at {url}"))?;
        Ok(Seeder {
            store,
            expert: Arc::new(ExpertEngine::builtin()),
        })
    }

    /// Writes `n` incidents with one READY decision each and returns their
    /// tokens when `keep_tokens` (for `approve`; the scaling scenario only
    /// needs the records to exist).
    pub async fn seed(&self, n: u64, keep_tokens: bool) -> anyhow::Result<(Seeded, Vec<Token>)> {
        anyhow::ensure!(
            n <= MAX_SEED,
            "cannot seed {n} records: at most {MAX_SEED} at a time"
        );
        let started = Instant::now();
        let chunks = (0..n)
            .step_by(CHUNK)
            .map(|from| (n - from).min(CHUNK as u64));
        let mut writes = futures::stream::iter(chunks)
            .map(|len| self.seed_chunk(len as usize, keep_tokens))
            .buffer_unordered(PARALLEL_CHUNKS);
        let mut tokens = Vec::new();
        while let Some(chunk) = writes.next().await {
            tokens.extend(chunk?);
        }
        let seeded = Seeded {
            records: n,
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        Ok((seeded, tokens))
    }

    /// Incidents stored (each seeded or created one has one decision, so
    /// this is also the number of current decisions).
    pub async fn stored(&self) -> anyhow::Result<u64> {
        Ok(self.store.incident_count().await?)
    }

    /// `(calls, usec)` Redis has spent in `command` so far (see
    /// [`RedisStore::command_stats`]).
    pub async fn command_stats(&self, command: &str) -> anyhow::Result<Option<(u64, u64)>> {
        Ok(self.store.command_stats(command).await?)
    }

    async fn seed_chunk(&self, len: usize, keep_tokens: bool) -> anyhow::Result<Vec<Token>> {
        // Generating ten thousand records is tens of milliseconds of CPU:
        // done on the runtime it would starve the Redis connections' I/O.
        let expert = self.expert.clone();
        let (decisions, incidents) = tokio::task::spawn_blocking(move || records(&expert, len))
            .await
            .context("generating seed records failed")?;
        for (d, i) in decisions.chunks(PIPELINE).zip(incidents.chunks(PIPELINE)) {
            let mut attempt = 1;
            while let Err(e) = self.store.seed_bulk(d, i).await {
                if attempt >= ATTEMPTS {
                    return Err(e).context(format!("seeding Redis failed {ATTEMPTS} times"));
                }
                tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                attempt += 1;
            }
        }
        Ok(if keep_tokens {
            decisions.into_iter().map(|d| d.token).collect()
        } else {
            Vec::new()
        })
    }
}

/// `len` realistic records: an incident with one firing alert and a READY
/// decision carrying the expert engine's proposal, so stored values have
/// the size real ones have.
fn records(expert: &ExpertEngine, len: usize) -> (Vec<Decision>, Vec<Incident>) {
    let now = chrono::Utc::now();
    let mut decisions = Vec::with_capacity(len);
    let mut incidents = Vec::with_capacity(len);
    for _ in 0..len {
        let incident = synthetic_incident(now);
        let mut d = Decision::start(
            incident.id.clone(),
            DecisionMode::Auto,
            now,
            chrono::Duration::hours(1),
            now,
        );
        d.state = DecisionState::Ready;
        d.version = 2;
        d.proposal = Some(expert.propose(&incident));
        decisions.push(d);
        incidents.push(incident);
    }
    (decisions, incidents)
}

fn synthetic_incident(now: chrono::DateTime<chrono::Utc>) -> Incident {
    Incident {
        signals: vec![Signal {
            alert_name: "PodCrashLooping".into(),
            labels: [("service".to_owned(), "checkout".to_owned())].into(),
            annotations: Default::default(),
            starts_at: Some(now),
            ends_at: None,
            fingerprint: "bench".into(),
            status: SignalStatus::Firing,
            generator_url: String::new(),
        }],
        // A constant valid label: `parse` cannot fail, and if it ever did
        // the proposal would fall back to its own default target.
        affected_services: K8sName::parse("checkout").into_iter().collect(),
        ..Incident::opened(
            IncidentId::generate(),
            "Seeded by verdict bench".into(),
            Severity::P3,
            now,
        )
    }
}

//! Bulk seeding for benchmarks: many resolved incidents (and one decision
//! each) with exactly the statistics the live path would have written for
//! them, written pipelined instead of one script call per change.
//!
//! Each incident's statistics come from [`crate::stats::record`] applied to the
//! same changes the server would make (created OPEN; decision issued,
//! READY, approved or rejected, executed; incident RESOLVED), so the stored
//! layout is the live one. Increments of a chunk of incidents are then
//! coalesced (`StatDelta::coalesced`), which turns ~40 increments per
//! incident into a few thousand commands per chunk. Decision records are
//! not written, only their statistics: nothing a statistics query reads
//! depends on them.

use crate::domain::proposal::ConsensusInfo;
use crate::domain::{
    Decision, DecisionMode, DecisionState, FallbackReason, Incident, IncidentId, IncidentStatus,
    K8sName, ProposalSource, Severity,
};
use crate::engine::ExpertEngine;
use crate::stats::{StatDelta, record};
use crate::store::{RedisStore, StoreError};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Resolved incidents to write.
    pub incidents: usize,
    /// They are created over `[end - span, end)` ...
    pub span: Duration,
    pub end: DateTime<Utc>,
    /// ... each affecting one to three of this many services (skewed, so
    /// a few services dominate the ranking).
    pub services: usize,
    /// Seed of the generator: the same spec writes the same data.
    pub seed: u64,
    /// Also write the incident records and listing index (as
    /// `create_incident` would), not only the statistics.
    pub records: bool,
}

impl Default for SeedSpec {
    fn default() -> Self {
        SeedSpec {
            incidents: 1_000_000,
            span: Duration::from_secs(30 * 86_400),
            end: Utc::now(),
            services: 200,
            seed: 1,
            records: true,
        }
    }
}

/// What seeding did.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub incidents: usize,
    /// Redis commands sent.
    pub commands: usize,
    pub elapsed: Duration,
    /// Every resolution time written, in milliseconds, in creation order
    /// (8 bytes per incident), so a benchmark can compare the sketch's
    /// percentiles with the exact ones.
    pub resolution_ms: Vec<i64>,
}

/// Incidents per chunk: generated, coalesced and written together.
const CHUNK: usize = 20_000;
/// The longest generated resolution time.
const MAX_RESOLUTION_S: f64 = 3.0 * 86_400.0;
/// The shortest.
const MIN_RESOLUTION_S: f64 = 30.0;

/// Writes `spec.incidents` resolved incidents, in creation order, with
/// their statistics. Creation times are uniform over the span; resolution
/// times log-uniform between 30 s and 3 days, cut short so every incident
/// is resolved by `spec.end` (recent incidents resolve faster); severities are P0 2 %, P1 8 %, P2 30 %, P3 40 %, P4 20 %;
/// decisions are proposed by the expert (50 %), an LLM (`llm:openai`,
/// 35 %) or a consensus (15 %), then approved (80 %, of which 90 %
/// succeed) or rejected.
pub async fn seed_resolved(store: &RedisStore, spec: &SeedSpec) -> Result<SeedReport, StoreError> {
    let started = Instant::now();
    let mut rng = SplitMix(spec.seed);
    let expert = ExpertEngine::builtin();
    let services: Vec<K8sName> = (0..spec.services.max(1))
        .filter_map(|i| K8sName::parse(&format!("svc-{i:04}")).ok())
        .collect();
    let span_ms = i64::try_from(spec.span.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let start = spec.end - chrono::Duration::milliseconds(span_ms);
    // Creation times in order, so a chunk covers a short stretch of time
    // and its increments coalesce well.
    let mut offsets: Vec<i64> = (0..spec.incidents)
        .map(|_| (rng.unit() * span_ms as f64) as i64)
        .collect();
    offsets.sort_unstable();
    let mut commands = 0;
    let mut resolution_ms = Vec::with_capacity(spec.incidents);
    for chunk in offsets.chunks(CHUNK) {
        let mut records = Vec::with_capacity(if spec.records { chunk.len() } else { 0 });
        let mut delta = StatDelta::none();
        for offset in chunk {
            let created = start + chrono::Duration::milliseconds(*offset);
            let open = incident(&mut rng, &services, created);
            let mut resolved = open.clone();
            // Resolved a millisecond before the end at the latest.
            let left_s = (span_ms - offset - 1).max(0) as f64 / 1_000.0;
            let (lo, hi) = (
                MIN_RESOLUTION_S.min(left_s / 2.0),
                MAX_RESOLUTION_S.min(left_s),
            );
            let res_s = if lo > 0.0 {
                (lo.ln() + rng.unit() * (hi.ln() - lo.ln())).exp()
            } else {
                0.0
            };
            let resolved_at = created + chrono::Duration::milliseconds((res_s * 1_000.0) as i64);
            resolved.set_status(IncidentStatus::Resolved, resolved_at);
            resolution_ms.push((resolved_at - created).num_milliseconds());
            delta.extend(record::incident(None, &open));
            delta.extend(decision_stats(&mut rng, &expert, &open));
            delta.extend(record::incident(Some(&open), &resolved));
            if spec.records {
                records.push(resolved);
            }
        }
        commands += store.write_bulk(&records, &delta.coalesced()).await?;
    }
    Ok(SeedReport {
        incidents: spec.incidents,
        commands,
        elapsed: started.elapsed(),
        resolution_ms,
    })
}

fn incident(rng: &mut SplitMix, services: &[K8sName], created: DateTime<Utc>) -> Incident {
    let severity = match rng.unit() {
        u if u < 0.02 => Severity::P0,
        u if u < 0.10 => Severity::P1,
        u if u < 0.40 => Severity::P2,
        u if u < 0.80 => Severity::P3,
        _ => Severity::P4,
    };
    // Squaring skews picks toward the first services.
    let n = 1 + (rng.unit() * 3.0) as usize;
    let affected = (0..n)
        .filter_map(|_| {
            let u = rng.unit();
            services
                .get((u * u * services.len() as f64) as usize)
                .cloned()
        })
        .collect();
    Incident {
        id: IncidentId::generate(),
        title: "seeded".into(),
        severity,
        status: IncidentStatus::Open,
        signals: vec![],
        affected_services: affected,
        namespace: None,
        created_at: created,
        updated_at: created,
        resolved_at: None,
        version: 1,
        status_actor: String::new(),
        status_note: String::new(),
        applied_requests: Default::default(),
    }
}

/// The statistics of one decision's life, issued a second after the
/// incident.
fn decision_stats(rng: &mut SplitMix, expert: &ExpertEngine, i: &Incident) -> StatDelta {
    let mut out = StatDelta::none();
    let issued = i.created_at + chrono::Duration::seconds(1);
    let d = Decision::start(
        i.id.clone(),
        DecisionMode::Auto,
        issued,
        chrono::Duration::hours(1),
        issued + chrono::Duration::seconds(30),
    );
    out.extend(record::decision(None, &d));
    let mut p = expert.propose(i);
    let u = rng.unit();
    let latency_ms = if u < 0.50 {
        p.source = ProposalSource::Expert;
        p.fallback_reason = Some(if rng.unit() < 0.3 {
            FallbackReason::Timeout
        } else {
            FallbackReason::NotConfigured
        });
        0.05 + rng.unit()
    } else if u < 0.85 {
        p.source = ProposalSource::Llm;
        p.provider = "openai".into();
        p.fallback_reason = None;
        p.from_cache = rng.unit() < 0.2;
        800.0 + rng.unit() * 9_000.0
    } else {
        p.source = ProposalSource::Consensus;
        p.fallback_reason = None;
        p.consensus = Some(ConsensusInfo {
            id: String::new(),
            score: 0.5 + rng.unit() / 2.0,
            agent_count: 3,
            dissenting: vec![],
            refused: vec![],
        });
        2_000.0 + rng.unit() * 20_000.0
    };
    p.analysis_latency = Duration::from_secs_f64(latency_ms / 1_000.0);
    let at = issued + chrono::Duration::milliseconds(latency_ms as i64);
    let Ok(mut ready) = d.transition(DecisionState::Ready, 0, at) else {
        return out;
    };
    ready.proposal = Some(p);
    out.extend(record::decision(Some(&d), &ready));
    let approve = rng.unit() < 0.8;
    let next = if approve {
        DecisionState::Executing
    } else {
        DecisionState::Rejected
    };
    let Ok(decided) = ready.transition(next, 0, at) else {
        return out;
    };
    out.extend(record::decision(Some(&ready), &decided));
    if approve {
        let outcome = if rng.unit() < 0.9 {
            DecisionState::Completed
        } else {
            DecisionState::Error
        };
        if let Ok(done) = decided.transition(outcome, 0, at) {
            out.extend(record::decision(Some(&decided), &done));
        }
    }
    out
}

/// SplitMix64: a tiny, fast, deterministic generator (statistical quality
/// is plenty for synthetic data; no dependency needed).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

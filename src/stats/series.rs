//! What is counted in each bucket, and under which names. Writers
//! ([`super::record`]) and readers ([`super::report`]) take every name from
//! here, so they cannot drift apart.

use crate::domain::{FallbackReason, IncidentStatus, Proposal, ProposalSource, Severity};
use std::fmt;

/// One statistic series of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    /// Counters about incidents (a hash): created by severity, status
    /// changes by status, resolutions (count and total time) by severity.
    Incidents,
    /// Counters about decisions (a hash): issued, proposals, fallbacks,
    /// cache hits, approvals, rejections, executions, LLM contests,
    /// consensus scores.
    Decisions,
    /// Services by incidents created (a sorted set).
    Services,
    /// Resolution-time sketch of one severity (milliseconds).
    Resolution(Severity),
    /// Analysis-latency sketch of one proposal source (microseconds).
    Latency(Source),
}

/// How a series is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Counters,
    Ranking,
    Sketch,
}

impl Series {
    pub fn shape(&self) -> Shape {
        match self {
            Series::Incidents | Series::Decisions => Shape::Counters,
            Series::Services => Shape::Ranking,
            Series::Resolution(_) | Series::Latency(_) => Shape::Sketch,
        }
    }
}

/// Where a proposal came from, as statistics name it: `expert`,
/// `consensus`, `llm` or `llm:<provider>`. The provider part is reduced to
/// at most [`Source::MAX_PROVIDER`] characters of `[a-z0-9._-]`, so it is
/// always a safe key part and the set of sources stays small.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(String);

impl Source {
    pub const MAX_PROVIDER: usize = 32;

    pub fn expert() -> Source {
        Source("expert".into())
    }

    pub fn of(p: &Proposal) -> Source {
        match p.source {
            ProposalSource::Expert => Source::expert(),
            ProposalSource::Consensus => Source("consensus".into()),
            ProposalSource::Llm => {
                let provider: String = p
                    .provider
                    .chars()
                    .map(|c| c.to_ascii_lowercase())
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    .take(Self::MAX_PROVIDER)
                    .collect();
                if provider.is_empty() {
                    Source("llm".into())
                } else {
                    Source(format!("llm:{provider}"))
                }
            }
        }
    }

    /// Parses a source read back from a field name; `None` for anything a
    /// writer could not have produced.
    pub fn parse(s: &str) -> Option<Source> {
        let ok = match s {
            "expert" | "consensus" | "llm" => true,
            _ => s.strip_prefix("llm:").is_some_and(|p| {
                !p.is_empty()
                    && p.len() <= Self::MAX_PROVIDER
                    && p.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            }),
        };
        ok.then(|| Source(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name statistics give a fallback reason.
pub fn reason_name(r: FallbackReason) -> &'static str {
    match r {
        FallbackReason::Timeout => "timeout",
        FallbackReason::Error => "error",
        FallbackReason::Invalid => "invalid",
        FallbackReason::Unsafe => "unsafe",
        FallbackReason::CircuitOpen => "circuit_open",
        FallbackReason::NotConfigured => "not_configured",
        FallbackReason::Recovered => "recovered",
    }
}

/// Every fallback reason, in the order reports list them.
pub const REASONS: [FallbackReason; 7] = [
    FallbackReason::Timeout,
    FallbackReason::Error,
    FallbackReason::Invalid,
    FallbackReason::Unsafe,
    FallbackReason::CircuitOpen,
    FallbackReason::NotConfigured,
    FallbackReason::Recovered,
];

/// Every incident status, in the order reports list them.
pub const STATUSES: [IncidentStatus; 4] = [
    IncidentStatus::Open,
    IncidentStatus::Investigating,
    IncidentStatus::Resolved,
    IncidentStatus::Closed,
];

/// Field names of the counter series.
pub mod field {
    use super::Source;
    use crate::domain::{IncidentStatus, Severity};

    // ---- Series::Incidents ----

    /// Incidents created with this severity.
    pub fn created(s: Severity) -> String {
        format!("new:{}", s.as_str())
    }
    /// Incidents that entered this status (creation enters the first).
    pub fn entered(s: IncidentStatus) -> String {
        format!("to:{}", s.as_str())
    }
    /// Incidents of this severity that became resolved.
    pub fn resolved(s: Severity) -> String {
        format!("res:n:{}", s.as_str())
    }
    /// Their total resolution time in milliseconds (for the mean).
    pub fn resolved_ms(s: Severity) -> String {
        format!("res:ms:{}", s.as_str())
    }

    // ---- Series::Decisions ----

    /// Decision tokens issued.
    pub const ISSUED: &str = "issued";
    /// Proposals that made a decision READY, by source.
    pub const PROPOSALS: &str = "prop:";
    /// Approvals (READY → EXECUTING), by source.
    pub const APPROVED: &str = "appr:";
    /// Rejections (READY → REJECTED), by source.
    pub const REJECTED: &str = "rej:";
    /// Executions that succeeded (→ COMPLETED), by source.
    pub const SUCCEEDED: &str = "ok:";
    /// Completed executions whose incident resolved within the verify
    /// window, by source.
    pub const VERIFIED: &str = "verified:";
    /// Completed executions whose verification failed, by source.
    pub const NOT_VERIFIED: &str = "unverified:";
    /// Executions that failed (→ ERROR), by source.
    pub const FAILED: &str = "fail:";
    /// Expert proposals used instead of the LLM's, by reason.
    pub const FALLBACK: &str = "fb:";
    /// Proposals answered from the proposal cache.
    pub const CACHE_HITS: &str = "cache:hit";
    /// Dual-engine contests the LLM won, and lost.
    pub const LLM_WON: &str = "llm:won";
    pub const LLM_LOST: &str = "llm:lost";
    /// Consensus proposals, and the sum of their scores in millionths.
    pub const CONSENSUS: &str = "cons:n";
    pub const CONSENSUS_SCORE: &str = "cons:score";

    /// `prefix` + `source`.
    pub fn by_source(prefix: &str, source: &Source) -> String {
        format!("{prefix}{source}")
    }
}

/// Consensus scores are summed as integers of this many parts per unit,
/// so sums are exact and independent of the order of additions.
pub const SCORE_SCALE: f64 = 1_000_000.0;

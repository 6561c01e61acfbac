//! The read side: what a query asks the store for, the merged result, and
//! the figures computed from it. Merging is addition (counters, sketch
//! bins), so the order in which buckets are read does not matter.

use super::bucket::Bucket;
use super::series::{REASONS, SCORE_SCALE, STATUSES, Series, Source, field, reason_name};
use super::sketch::{Bins, Mapping};
use crate::domain::{IncidentStatus, Severity};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The most sources a report lists (the set is small by construction: it
/// grows only with configured LLM providers).
pub const MAX_SOURCES: usize = 32;

/// What to read: these series over these buckets, and the status gauge.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    pub buckets: Vec<Bucket>,
    /// Counter and sketch series (rankings are read with
    /// `Store::top_services`).
    pub series: Vec<Series>,
    pub gauge: bool,
}

/// Counters added up over the buckets read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(HashMap<String, i64>);

impl Counters {
    pub fn add(&mut self, field: &str, by: i64) {
        let e = self.0.entry(field.to_owned()).or_insert(0);
        *e = e.saturating_add(by);
    }

    /// The total of `field` (0 when absent; never negative).
    pub fn get(&self, field: &str) -> u64 {
        self.0
            .get(field)
            .map(|v| u64::try_from(*v).unwrap_or(0))
            .unwrap_or(0)
    }

    /// The sources named by fields with this prefix.
    fn sources<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = Source> + 'a {
        self.0
            .keys()
            .filter_map(move |k| k.strip_prefix(prefix).and_then(Source::parse))
    }
}

/// The merged result of a [`StatsQuery`]; stores fill it while decoding.
#[derive(Debug, Clone, Default)]
pub struct StatsRead {
    pub incidents: Counters,
    pub decisions: Counters,
    pub gauge: Counters,
    pub sketches: BTreeMap<Series, Bins>,
}

impl StatsRead {
    /// Adds one stored counter of `series`.
    pub fn add_counter(&mut self, series: &Series, field: &str, by: i64) {
        match series {
            Series::Incidents => self.incidents.add(field, by),
            Series::Decisions => self.decisions.add(field, by),
            _ => {}
        }
    }

    /// Adds one stored sketch of `series` (big-endian u32 bins).
    pub fn add_sketch(&mut self, series: &Series, bytes: &[u8]) {
        self.sketches
            .entry(series.clone())
            .or_default()
            .add_be_u32(bytes);
    }

    /// Adds bins of `series` one by one (the memory store).
    pub fn add_bins(&mut self, series: &Series, counts: &[u32]) {
        let bins = self.sketches.entry(series.clone()).or_default();
        for (i, c) in counts.iter().enumerate() {
            if *c > 0 {
                bins.add(i as u32, u64::from(*c));
            }
        }
    }

    fn sketch(&self, series: &Series) -> Option<&Bins> {
        self.sketches.get(series)
    }
}

// ---- GetIncidentSummary -------------------------------------------------

/// Incidents in a range, and right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentSummary {
    /// Created in range.
    pub created: u64,
    /// Open now (OPEN or INVESTIGATING), whatever the range.
    pub open: u64,
    /// Created in range, by severity (every severity, P0 first).
    pub by_severity: Vec<(Severity, u64)>,
    /// Entries into each status in range (creation enters the first).
    pub by_status: Vec<(IncidentStatus, u64)>,
    /// Incidents in each status now.
    pub current: Vec<(IncidentStatus, u64)>,
}

/// The series a summary reads.
pub fn summary_query(buckets: Vec<Bucket>) -> StatsQuery {
    StatsQuery {
        buckets,
        series: vec![Series::Incidents],
        gauge: true,
    }
}

pub fn summary(r: &StatsRead) -> IncidentSummary {
    let by_severity: Vec<(Severity, u64)> = Severity::ALL
        .iter()
        .map(|s| (*s, r.incidents.get(&field::created(*s))))
        .collect();
    let current: Vec<(IncidentStatus, u64)> = STATUSES
        .iter()
        .map(|s| (*s, r.gauge.get(s.as_str())))
        .collect();
    IncidentSummary {
        created: by_severity.iter().map(|(_, n)| n).sum(),
        open: current
            .iter()
            .filter(|(s, _)| s.is_active())
            .map(|(_, n)| n)
            .sum(),
        by_severity,
        by_status: STATUSES
            .iter()
            .map(|s| (*s, r.incidents.get(&field::entered(*s))))
            .collect(),
        current,
    }
}

// ---- GetResolutionStats -------------------------------------------------

/// Resolution-time figures of one group of incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub count: u64,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    /// Exact (from the summed times), unlike the percentiles (within 1 %).
    pub mean: Duration,
}

/// Resolution times, overall and for each severity that has any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolutionReport {
    pub overall: Figures,
    pub by_severity: Vec<(Severity, Figures)>,
}

pub fn resolution_query(buckets: Vec<Bucket>) -> StatsQuery {
    let mut series = vec![Series::Incidents];
    series.extend(Severity::ALL.iter().map(|s| Series::Resolution(*s)));
    StatsQuery {
        buckets,
        series,
        gauge: false,
    }
}

pub fn resolution(r: &StatsRead) -> ResolutionReport {
    let m = Mapping::resolution();
    let figures = |bins: &Bins, count: u64, total_ms: u64| Figures {
        count,
        p50: millis(bins.quantile(&m, 0.50)),
        p95: millis(bins.quantile(&m, 0.95)),
        p99: millis(bins.quantile(&m, 0.99)),
        mean: Duration::from_millis(total_ms.checked_div(count).unwrap_or(0)),
    };
    let mut all = Bins::new();
    let (mut count, mut total) = (0u64, 0u64);
    let mut by_severity = Vec::new();
    let empty = Bins::new();
    for s in Severity::ALL {
        let n = r.incidents.get(&field::resolved(s));
        let ms = r.incidents.get(&field::resolved_ms(s));
        let bins = r.sketch(&Series::Resolution(s)).unwrap_or(&empty);
        all.merge(bins);
        count = count.saturating_add(n);
        total = total.saturating_add(ms);
        if n > 0 {
            by_severity.push((s, figures(bins, n, ms)));
        }
    }
    ResolutionReport {
        overall: figures(&all, count, total),
        by_severity,
    }
}

fn millis(v: Option<f64>) -> Duration {
    Duration::from_secs_f64(v.unwrap_or(0.0).max(0.0) / 1_000.0)
}

fn micros(v: Option<f64>) -> Duration {
    Duration::from_secs_f64(v.unwrap_or(0.0).max(0.0) / 1_000_000.0)
}

// ---- GetAiPerformance ---------------------------------------------------

/// How one proposal source did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    pub source: Source,
    pub proposals: u64,
    pub approvals: u64,
    pub rejections: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Completed, and the incident resolved within the verify window.
    pub verified: u64,
    /// Completed, but the rollout failed or the incident kept firing.
    pub not_verified: u64,
    pub latency_p50: Duration,
    pub latency_p95: Duration,
}

impl SourceReport {
    pub fn approval_rate(&self) -> f64 {
        rate(self.approvals, self.proposals)
    }

    pub fn rejection_rate(&self) -> f64 {
        rate(self.rejections, self.proposals)
    }

    pub fn execution_success_rate(&self) -> f64 {
        rate(self.succeeded, self.succeeded.saturating_add(self.failed))
    }
}

/// How the engines did for the decisions issued in a range.
#[derive(Debug, Clone, PartialEq)]
pub struct AiReport {
    /// Most proposals first, ties by name.
    pub sources: Vec<SourceReport>,
    pub decisions: u64,
    pub proposals: u64,
    pub llm_won: u64,
    pub llm_lost: u64,
    /// Every reason seen, in a fixed order.
    pub fallbacks: Vec<(&'static str, u64)>,
    pub cache_hits: u64,
    pub consensus: u64,
    pub mean_consensus_score: f64,
}

impl AiReport {
    pub fn llm_win_rate(&self) -> f64 {
        rate(self.llm_won, self.llm_won.saturating_add(self.llm_lost))
    }

    pub fn cache_hit_rate(&self) -> f64 {
        rate(self.cache_hits, self.proposals)
    }
}

/// First read: the decision counters (which name the sources).
pub fn ai_query(buckets: Vec<Bucket>) -> StatsQuery {
    StatsQuery {
        buckets,
        series: vec![Series::Decisions],
        gauge: false,
    }
}

/// The sources with proposals in `r`, at most [`MAX_SOURCES`].
pub fn ai_sources(r: &StatsRead) -> Vec<Source> {
    let mut s: Vec<Source> = r.decisions.sources(field::PROPOSALS).collect();
    s.sort();
    s.dedup();
    s.truncate(MAX_SOURCES);
    s
}

/// Second read: the latency sketches of those sources.
pub fn latency_query(buckets: Vec<Bucket>, sources: &[Source]) -> StatsQuery {
    StatsQuery {
        buckets,
        series: sources.iter().cloned().map(Series::Latency).collect(),
        gauge: false,
    }
}

/// Combines the counters (`r`) with the latency sketches (`latencies`).
pub fn ai(r: &StatsRead, latencies: &StatsRead) -> AiReport {
    let m = Mapping::latency();
    let c = &r.decisions;
    let mut sources: Vec<SourceReport> = ai_sources(r)
        .into_iter()
        .map(|s| {
            let bins = latencies.sketch(&Series::Latency(s.clone()));
            let q = |q| micros(bins.and_then(|b| b.quantile(&m, q)));
            SourceReport {
                proposals: c.get(&field::by_source(field::PROPOSALS, &s)),
                approvals: c.get(&field::by_source(field::APPROVED, &s)),
                rejections: c.get(&field::by_source(field::REJECTED, &s)),
                succeeded: c.get(&field::by_source(field::SUCCEEDED, &s)),
                failed: c.get(&field::by_source(field::FAILED, &s)),
                verified: c.get(&field::by_source(field::VERIFIED, &s)),
                not_verified: c.get(&field::by_source(field::NOT_VERIFIED, &s)),
                latency_p50: q(0.50),
                latency_p95: q(0.95),
                source: s,
            }
        })
        .collect();
    sources.sort_by(|a, b| b.proposals.cmp(&a.proposals).then(a.source.cmp(&b.source)));
    let consensus = c.get(field::CONSENSUS);
    let score_sum = c.get(field::CONSENSUS_SCORE) as f64 / SCORE_SCALE;
    AiReport {
        proposals: sources.iter().map(|s| s.proposals).sum(),
        sources,
        decisions: c.get(field::ISSUED),
        llm_won: c.get(field::LLM_WON),
        llm_lost: c.get(field::LLM_LOST),
        fallbacks: REASONS
            .iter()
            .map(|r| {
                let name = reason_name(*r);
                (name, c.get(&format!("{}{name}", field::FALLBACK)))
            })
            .filter(|(_, n)| *n > 0)
            .collect(),
        cache_hits: c.get(field::CACHE_HITS),
        consensus,
        mean_consensus_score: if consensus == 0 {
            0.0
        } else {
            score_sum / consensus as f64
        },
    }
}

// ---- GetAffectedServices ------------------------------------------------

/// Orders a ranking: most incidents first, ties by name (ascending), at
/// most `limit`. Both stores return their rankings through this, so they
/// order ties the same way.
pub fn rank(mut services: Vec<(String, u64)>, limit: usize) -> Vec<(String, u64)> {
    services.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    services.truncate(limit);
    services
}

/// `n / d`, 0 when `d` is 0.
fn rate(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_rank_by_name() {
        let r = rank(
            vec![
                ("web".into(), 3),
                ("api".into(), 5),
                ("cart".into(), 3),
                ("db".into(), 3),
            ],
            3,
        );
        assert_eq!(
            r,
            vec![("api".into(), 5), ("cart".into(), 3), ("db".into(), 3)]
        );
    }

    #[test]
    fn rates_never_divide_by_zero() {
        let s = SourceReport {
            source: Source::expert(),
            proposals: 0,
            approvals: 0,
            rejections: 0,
            succeeded: 3,
            failed: 1,
            verified: 0,
            not_verified: 0,
            latency_p50: Duration::ZERO,
            latency_p95: Duration::ZERO,
        };
        assert_eq!(s.approval_rate(), 0.0);
        assert_eq!(s.execution_success_rate(), 0.75);
    }

    #[test]
    fn an_empty_read_is_all_zeros() {
        let r = StatsRead::default();
        let s = summary(&r);
        assert_eq!((s.created, s.open), (0, 0));
        assert_eq!(s.by_severity.len(), 5);
        let res = resolution(&r);
        assert_eq!(res.overall, Figures::default());
        assert!(res.by_severity.is_empty());
        let ai = ai(&r, &r);
        assert!(ai.sources.is_empty());
        assert_eq!(ai.llm_win_rate(), 0.0);
    }
}

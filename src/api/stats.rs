//! `verdict.v1.StatsService`: parses the range (field violations →
//! INVALID_ARGUMENT), asks the [`StatsManager`], renders the figures. The
//! stats conversions live here rather than in `convert.rs` because nothing
//! else uses them.

use super::convert::{duration, from_duration, from_ts, severity_to, status_to, ts};
use crate::domain::Violations;
use crate::manager::stats::MAX_SERVICES;
use crate::manager::{ManagerError, StatsManager};
use crate::proto as pb;
use crate::proto::stats_service_server::StatsService;
use crate::stats::report::{Figures, IncidentSummary, ResolutionReport};
use crate::stats::{RangeSpec, Window};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Services returned when the request gives no limit.
const DEFAULT_SERVICES: usize = 10;

pub struct StatsApi {
    stats: Arc<StatsManager>,
}

impl StatsApi {
    pub fn new(stats: Arc<StatsManager>) -> Self {
        StatsApi { stats }
    }
}

#[tonic::async_trait]
impl StatsService for StatsApi {
    async fn get_incident_summary(
        &self,
        req: Request<pb::GetIncidentSummaryRequest>,
    ) -> Result<Response<pb::GetIncidentSummaryResponse>, Status> {
        let range = only_range(req.get_ref().range.as_ref())?;
        let (w, s) = self.stats.incident_summary(&range).await?;
        Ok(Response::new(summary_to(&w, &s)))
    }

    async fn get_resolution_stats(
        &self,
        req: Request<pb::GetResolutionStatsRequest>,
    ) -> Result<Response<pb::GetResolutionStatsResponse>, Status> {
        let range = only_range(req.get_ref().range.as_ref())?;
        let (w, r) = self.stats.resolution(&range).await?;
        Ok(Response::new(resolution_to(&w, &r)))
    }

    async fn get_ai_performance(
        &self,
        req: Request<pb::GetAiPerformanceRequest>,
    ) -> Result<Response<pb::GetAiPerformanceResponse>, Status> {
        let range = only_range(req.get_ref().range.as_ref())?;
        let (w, r) = self.stats.ai_performance(&range).await?;
        Ok(Response::new(pb::GetAiPerformanceResponse {
            sources: r
                .sources
                .iter()
                .map(|s| pb::SourcePerformance {
                    source: s.source.to_string(),
                    proposals: s.proposals,
                    approval_rate: s.approval_rate(),
                    rejection_rate: s.rejection_rate(),
                    execution_success_rate: s.execution_success_rate(),
                    latency_p50: Some(duration(s.latency_p50)),
                    latency_p95: Some(duration(s.latency_p95)),
                    approvals: s.approvals,
                    rejections: s.rejections,
                    executions_succeeded: s.succeeded,
                    executions_failed: s.failed,
                    fixes_verified: s.verified,
                    fixes_not_verified: s.not_verified,
                })
                .collect(),
            llm_win_rate: r.llm_win_rate(),
            fallbacks: r
                .fallbacks
                .iter()
                .map(|(reason, count)| pb::FallbackCount {
                    reason: (*reason).to_owned(),
                    count: *count,
                })
                .collect(),
            cache_hit_rate: r.cache_hit_rate(),
            mean_consensus_score: r.mean_consensus_score,
            covered: Some(covered(&w)),
            decisions: r.decisions,
            proposals: r.proposals,
            consensus_proposals: r.consensus,
        }))
    }

    async fn get_affected_services(
        &self,
        req: Request<pb::GetAffectedServicesRequest>,
    ) -> Result<Response<pb::GetAffectedServicesResponse>, Status> {
        let r = req.get_ref();
        let mut v = Violations::new();
        let range = range(&mut v, r.range.as_ref());
        let limit = match r.limit {
            0 => DEFAULT_SERVICES,
            n if (1..=MAX_SERVICES as i32).contains(&n) => n as usize,
            n => {
                v.add(
                    "limit",
                    format!("must be between 0 and {MAX_SERVICES} (got {n})"),
                );
                0
            }
        };
        v.into_result().map_err(ManagerError::from)?;
        let (w, top) = self.stats.affected_services(&range, limit).await?;
        Ok(Response::new(pb::GetAffectedServicesResponse {
            services: top
                .into_iter()
                .map(|(service, incidents)| pb::ServiceCount { service, incidents })
                .collect(),
            covered: Some(covered(&w)),
        }))
    }
}

/// Parses a request's optional range, recording every invalid field.
/// The range of a request whose only field is its range: parsed, or
/// INVALID_ARGUMENT naming what is wrong with it.
fn only_range(r: Option<&pb::TimeRange>) -> Result<RangeSpec, ManagerError> {
    let mut v = Violations::new();
    let range = range(&mut v, r);
    v.into_result()?;
    Ok(range)
}

fn range(v: &mut Violations, r: Option<&pb::TimeRange>) -> RangeSpec {
    let Some(r) = r else {
        return RangeSpec::default();
    };
    let mut time = |name: &str, t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| {
            let out = from_ts(t);
            if out.is_none() {
                v.add(format!("range.{name}"), "is not a valid timestamp");
            }
            out
        })
    };
    let from = time("from", r.from.as_ref());
    let to = time("to", r.to.as_ref());
    let last = r.last.as_ref().and_then(|d| {
        let out = from_duration(d);
        if out.is_none() {
            v.add("range.last", "must be a non-negative duration");
        }
        out
    });
    RangeSpec {
        from,
        to,
        last,
        all_time: r.all_time,
    }
}

fn covered(w: &Window) -> pb::TimeRange {
    pb::TimeRange {
        from: Some(ts(w.start())),
        to: Some(ts(w.end())),
        all_time: false,
        last: None,
    }
}

fn summary_to(w: &Window, s: &IncidentSummary) -> pb::GetIncidentSummaryResponse {
    let statuses = |list: &[(crate::domain::IncidentStatus, u64)]| {
        list.iter()
            .map(|(status, count)| pb::StatusCount {
                status: status_to(*status) as i32,
                count: *count,
            })
            .collect()
    };
    pb::GetIncidentSummaryResponse {
        created: s.created,
        open: s.open,
        by_severity: s
            .by_severity
            .iter()
            .map(|(severity, count)| pb::SeverityCount {
                severity: severity_to(*severity) as i32,
                count: *count,
            })
            .collect(),
        by_status: statuses(&s.by_status),
        covered: Some(covered(w)),
        current_by_status: statuses(&s.current),
    }
}

fn figures_to(f: &Figures) -> pb::ResolutionFigures {
    pb::ResolutionFigures {
        count: f.count,
        p50: Some(duration(f.p50)),
        p95: Some(duration(f.p95)),
        p99: Some(duration(f.p99)),
        mean: Some(duration(f.mean)),
    }
}

fn resolution_to(w: &Window, r: &ResolutionReport) -> pb::GetResolutionStatsResponse {
    pb::GetResolutionStatsResponse {
        overall: Some(figures_to(&r.overall)),
        by_severity: r
            .by_severity
            .iter()
            .map(|(s, f)| pb::SeverityResolution {
                severity: severity_to(*s) as i32,
                figures: Some(figures_to(f)),
            })
            .collect(),
        covered: Some(covered(w)),
    }
}

//! `verdict stats ...`: StatsService from the command line, as aligned
//! tables (or the responses as JSON with `--json`).

use super::output::{self, Fields};
use super::{GlobalArgs, RPC_TIMEOUT, request};
use crate::client::Table;
use crate::proto as pb;
use crate::proto::stats_service_client::StatsServiceClient;
use std::time::Duration;
use tonic::transport::Channel;

/// The `stats` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StatsCommand {
    /// Incidents created (by severity), status changes, and open now.
    Summary(RangeArgs),
    /// Resolution time P50/P95/P99 and mean, overall and by severity.
    Resolution(RangeArgs),
    /// Proposals by source, approval and execution rates, LLM win rate,
    /// fallbacks, cache hits, analysis latency.
    Ai(RangeArgs),
    /// Services ranked by incidents created (ties by name).
    Services {
        #[command(flatten)]
        range: RangeArgs,
        /// At most this many services [server default: 10, at most 100].
        #[arg(long, value_name = "N")]
        limit: Option<i32>,
    },
}

/// The time range of a `stats` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct RangeArgs {
    /// How far back, ending with the current hour: 24h, 7d, 30d, 90m, ...
    /// (rounded up to whole hours) [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "all_time")]
    since: Option<Duration>,
    /// Everything the server retains (90 days by default).
    #[arg(long)]
    all_time: bool,
}

impl RangeArgs {
    fn to_proto(&self) -> Option<pb::TimeRange> {
        if self.all_time {
            return Some(pb::TimeRange {
                all_time: true,
                ..Default::default()
            });
        }
        self.since.map(|d| pb::TimeRange {
            last: Some(pb_duration(d)),
            ..Default::default()
        })
    }
}

fn pb_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// Runs one `stats` subcommand.
pub(crate) async fn run(
    channel: Channel,
    global: &GlobalArgs,
    cmd: StatsCommand,
) -> anyhow::Result<()> {
    let mut client = StatsServiceClient::new(channel);
    let json = global.json;
    match cmd {
        StatsCommand::Summary(r) => {
            let req = pb::GetIncidentSummaryRequest {
                range: r.to_proto(),
            };
            let resp = client
                .get_incident_summary(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, summary)
        }
        StatsCommand::Resolution(r) => {
            let req = pb::GetResolutionStatsRequest {
                range: r.to_proto(),
            };
            let resp = client
                .get_resolution_stats(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, resolution)
        }
        StatsCommand::Ai(r) => {
            let req = pb::GetAiPerformanceRequest {
                range: r.to_proto(),
            };
            let resp = client
                .get_ai_performance(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, ai)
        }
        StatsCommand::Services { range, limit } => {
            let req = pb::GetAffectedServicesRequest {
                range: range.to_proto(),
                limit: limit.unwrap_or_default(),
            };
            let resp = client
                .get_affected_services(request(req, RPC_TIMEOUT))
                .await?
                .into_inner();
            output::print(&resp, json, services)
        }
    }
}

/// `from .. to (span)` of a covered range.
fn covered(r: Option<&pb::TimeRange>) -> String {
    let Some(r) = r else { return String::new() };
    let span = match (r.from.as_ref(), r.to.as_ref()) {
        (Some(f), Some(t)) => {
            let secs = u64::try_from(t.seconds.saturating_sub(f.seconds)).unwrap_or(0);
            format!(
                " ({})",
                humantime::format_duration(Duration::from_secs(secs))
            )
        }
        _ => String::new(),
    };
    format!(
        "{} .. {}{span}",
        output::time(r.from.as_ref()),
        output::time(r.to.as_ref())
    )
}

fn summary(r: &pb::GetIncidentSummaryResponse) -> String {
    let mut f = Fields::new();
    f.add("range", covered(r.covered.as_ref()))
        .add("created", r.created.to_string())
        .add("open now", r.open.to_string());
    let mut out = f.render();
    let mut t = Table::new(vec!["SEVERITY", "CREATED"]);
    for s in &r.by_severity {
        t.row(vec![output::severity(s.severity), s.count.to_string()]);
    }
    out.push('\n');
    out.push_str(&t.render());
    let mut t = Table::new(vec!["STATUS", "ENTERED", "NOW"]);
    for s in &r.by_status {
        let now = r
            .current_by_status
            .iter()
            .find(|c| c.status == s.status)
            .map(|c| c.count)
            .unwrap_or(0);
        t.row(vec![
            output::incident_status(s.status),
            s.count.to_string(),
            now.to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}

fn resolution(r: &pb::GetResolutionStatsResponse) -> String {
    let mut f = Fields::new();
    f.add("range", covered(r.covered.as_ref()));
    let mut out = f.render();
    let mut t = Table::new(vec!["SEVERITY", "RESOLVED", "P50", "P95", "P99", "MEAN"]);
    let mut row = |name: String, fig: Option<&pb::ResolutionFigures>| {
        let Some(fig) = fig else { return };
        t.row(vec![
            name,
            fig.count.to_string(),
            output::span(fig.p50.as_ref()),
            output::span(fig.p95.as_ref()),
            output::span(fig.p99.as_ref()),
            output::span(fig.mean.as_ref()),
        ]);
    };
    row("all".into(), r.overall.as_ref());
    for s in &r.by_severity {
        row(output::severity(s.severity), s.figures.as_ref());
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn ai(r: &pb::GetAiPerformanceResponse) -> String {
    let mut f = Fields::new();
    f.add("range", covered(r.covered.as_ref()))
        .add("decisions", r.decisions.to_string())
        .add("proposals", r.proposals.to_string())
        .add("llm win rate", percent(r.llm_win_rate))
        .add("cache hit rate", percent(r.cache_hit_rate));
    if r.consensus_proposals > 0 {
        f.add(
            "consensus",
            format!(
                "{} proposals, mean score {:.2}",
                r.consensus_proposals, r.mean_consensus_score
            ),
        );
    }
    let mut out = f.render();
    if !r.sources.is_empty() {
        let mut t = Table::new(vec![
            "SOURCE",
            "PROPOSALS",
            "APPROVED",
            "REJECTED",
            "EXEC OK",
            "LATENCY P50",
            "LATENCY P95",
        ]);
        for s in &r.sources {
            t.row(vec![
                s.source.clone(),
                s.proposals.to_string(),
                percent(s.approval_rate),
                percent(s.rejection_rate),
                percent(s.execution_success_rate),
                output::span(s.latency_p50.as_ref()),
                output::span(s.latency_p95.as_ref()),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    if !r.fallbacks.is_empty() {
        let mut t = Table::new(vec!["FALLBACK", "COUNT"]);
        for fb in &r.fallbacks {
            t.row(vec![fb.reason.clone(), fb.count.to_string()]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out
}

fn services(r: &pb::GetAffectedServicesResponse) -> String {
    let mut f = Fields::new();
    f.add("range", covered(r.covered.as_ref()));
    let mut out = f.render();
    out.push('\n');
    if r.services.is_empty() {
        out.push_str("no incidents in range\n");
        return out;
    }
    let mut t = Table::new(vec!["RANK", "SERVICE", "INCIDENTS"]);
    for (i, s) in r.services.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            s.service.clone(),
            s.incidents.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn services_are_a_ranked_table() {
        let r = pb::GetAffectedServicesResponse {
            services: vec![
                pb::ServiceCount {
                    service: "checkout".into(),
                    incidents: 12,
                },
                pb::ServiceCount {
                    service: "cart".into(),
                    incidents: 3,
                },
            ],
            covered: Some(pb::TimeRange {
                from: ts(0),
                to: ts(86_400),
                ..Default::default()
            }),
        };
        assert_eq!(
            services(&r),
            "range  1970-01-01T00:00:00Z .. 1970-01-02T00:00:00Z (1day)\n\n\
             RANK  SERVICE   INCIDENTS\n\
             1     checkout  12\n\
             2     cart      3\n"
        );
    }

    #[test]
    fn resolution_rows_align() {
        let d = |s| {
            Some(prost_types::Duration {
                seconds: s,
                nanos: 0,
            })
        };
        let fig = pb::ResolutionFigures {
            count: 10,
            p50: d(90),
            p95: d(7_200),
            p99: d(200_000),
            mean: d(3_000),
        };
        let r = pb::GetResolutionStatsResponse {
            overall: Some(fig),
            by_severity: vec![pb::SeverityResolution {
                severity: pb::Severity::P1 as i32,
                figures: Some(fig),
            }],
            covered: None,
        };
        assert_eq!(
            resolution(&r),
            "\nSEVERITY  RESOLVED  P50     P95     P99     MEAN\n\
             all       10        1m 30s  2h 00m  2d 07h  50m 00s\n\
             P1        10        1m 30s  2h 00m  2d 07h  50m 00s\n"
        );
    }
}

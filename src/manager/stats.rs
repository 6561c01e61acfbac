//! The statistics queries behind `StatsService`: resolve the caller's range
//! to whole hours, plan the buckets that cover it (day buckets for whole
//! days, hour buckets at the edges), read them from the store in one or two
//! round trips and compute the figures. Nothing here scans incidents: the
//! cost is proportional to the buckets in range.

use super::ManagerError;
use crate::clock::Clock;
use crate::stats::report::{self, AiReport, IncidentSummary, ResolutionReport};
use crate::stats::{RangeSpec, Window};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// The most services `GetAffectedServices` returns.
pub const MAX_SERVICES: usize = 100;

/// Answers statistics queries.
pub struct StatsManager {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// How long buckets are kept: "all time" means this long, and no range
    /// reaches further back.
    retention: Duration,
}

impl StatsManager {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, retention: Duration) -> Self {
        StatsManager {
            store,
            clock,
            retention,
        }
    }

    /// The hours `range` covers, or why it is refused.
    pub fn window(&self, range: &RangeSpec) -> Result<Window, ManagerError> {
        Ok(Window::resolve(range, self.clock.now(), self.retention)?)
    }

    /// Incidents created in range (by severity), status changes in range,
    /// and the current count in each status.
    pub async fn incident_summary(
        &self,
        range: &RangeSpec,
    ) -> Result<(Window, IncidentSummary), ManagerError> {
        let w = self.window(range)?;
        let read = self
            .store
            .read_stats(&report::summary_query(w.buckets()))
            .await?;
        Ok((w, report::summary(&read)))
    }

    /// Resolution times of the incidents resolved in range.
    pub async fn resolution(
        &self,
        range: &RangeSpec,
    ) -> Result<(Window, ResolutionReport), ManagerError> {
        let w = self.window(range)?;
        let read = self
            .store
            .read_stats(&report::resolution_query(w.buckets()))
            .await?;
        Ok((w, report::resolution(&read)))
    }

    /// How the engines did for the decisions issued in range: counters
    /// first (they name the sources), then the sources' latency sketches.
    pub async fn ai_performance(
        &self,
        range: &RangeSpec,
    ) -> Result<(Window, AiReport), ManagerError> {
        let w = self.window(range)?;
        let buckets = w.buckets();
        let counters = self
            .store
            .read_stats(&report::ai_query(buckets.clone()))
            .await?;
        let sources = report::ai_sources(&counters);
        let latencies = if sources.is_empty() {
            Default::default()
        } else {
            self.store
                .read_stats(&report::latency_query(buckets, &sources))
                .await?
        };
        Ok((w, report::ai(&counters, &latencies)))
    }

    /// The services with the most incidents created in range, most first,
    /// ties by name; `limit` is clamped to 1..=[`MAX_SERVICES`].
    pub async fn affected_services(
        &self,
        range: &RangeSpec,
        limit: usize,
    ) -> Result<(Window, Vec<(String, u64)>), ManagerError> {
        let w = self.window(range)?;
        let top = self
            .store
            .top_services(&w.buckets(), limit.clamp(1, MAX_SERVICES))
            .await?;
        Ok((w, top))
    }
}

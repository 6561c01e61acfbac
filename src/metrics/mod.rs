//! Prometheus metrics: one process-wide recorder (the `metrics` facade
//! with `metrics-exporter-prometheus`), the gRPC layer that counts every
//! RPC ([`grpc`]), and the small named calls the rest of verdict makes at
//! the moment something happens ([`record`]).
//!
//! Why a facade with a global recorder: an instrumentation point is then
//! one line anywhere (`crate::metrics::fallback(reason)`), nothing is
//! threaded through constructors, and with metrics off (no recorder
//! installed) every call is a no-op that costs a relaxed atomic load.
//!
//! Conventions (checked by `promtool check metrics` in the tests): every
//! name starts with `verdict_`, carries its unit (`_seconds`) and counters
//! end in `_total`. **Label values are bounded**: every label value is a
//! `&'static str` from an enum of ours or a known gRPC method — never a
//! token, an incident id, a request id or anything a caller typed. gRPC
//! paths that name no known method are counted as `unknown`.
//!
//! Layering: a foundation module. It knows `domain` (to label by state,
//! mode, source and reason) and nothing else of verdict; `server` installs
//! it and serves `/metrics`.

pub mod grpc;
mod record;

pub use record::*;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Latency buckets (seconds) for every `_seconds` histogram: 0.5 ms to
/// 60 s, dense where verdict's RPCs and Redis calls live (sub-millisecond
/// to tens of ms) and reaching the longest analysis deadline.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// How often [`Metrics::upkeep`] drains histogram samples into their
/// buckets between scrapes, bounding the memory they hold.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The installed recorder, set once per process.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// A handle on the process's metrics: renders the Prometheus text
/// exposition. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The recorder could not be installed (another recorder owns the process).
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct InstallError(String);

impl Metrics {
    /// Installs the Prometheus recorder for the whole process, or returns
    /// the one installed before (several in-process servers in one test
    /// share it, as they share the process).
    pub fn install() -> Result<Metrics, InstallError> {
        if let Some(h) = HANDLE.get() {
            return Ok(Metrics { handle: h.clone() });
        }
        // A `Full` matcher is tried before a `Suffix` one.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(WATCH_FANOUT.into()), WATCH_FANOUT_BUCKETS)
            })
            .map_err(|e| InstallError(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        // Two servers starting at once: one installs, the other finds it.
        match metrics::set_global_recorder(recorder) {
            Ok(()) => {
                let _ = HANDLE.set(handle);
                describe();
            }
            Err(_) if HANDLE.get().is_some() => {}
            Err(e) => return Err(InstallError(e.to_string())),
        }
        HANDLE
            .get()
            .map(|h| Metrics { handle: h.clone() })
            .ok_or_else(|| InstallError("another recorder is installed".into()))
    }

    /// The current values in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into buckets every [`UPKEEP_INTERVAL`]
    /// until `stop` resolves. Run by the server as a background task.
    pub async fn upkeep(self, stop: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => self.handle.run_upkeep(),
                _ = &mut stop => return,
            }
        }
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// HELP text for every metric, so `/metrics` documents itself.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for (name, help) in record::COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, help) in record::GAUGES {
        describe_gauge!(*name, *help);
    }
    for (name, help) in record::HISTOGRAMS {
        describe_histogram!(*name, metrics::Unit::Seconds, *help);
    }
}

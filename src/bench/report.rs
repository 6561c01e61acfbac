//! What a bench run prints: a table per run (or `--json`), every throughput
//! beside its ratio to `health` measured in the same run. Absolute figures
//! drift with whatever else the machine is doing; the ratio to the server's
//! own empty-RPC ceiling, measured minutes apart on the same machine, is
//! what the SPEC's targets are stated in.

use super::runner::Measurement;
use super::seed::Seeded;
use crate::client::Table;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The server measured (the spawned one's address with `--spawn`).
    pub target: String,
    /// Whether the tool started the server in its own process.
    pub spawned: bool,
    /// Requests in flight.
    pub concurrency: u32,
    /// HTTP/2 connections they share.
    pub connections: u32,
    /// `"10s"` or `"5000 requests"` per scenario (and per scaling step).
    pub limit: String,
    /// Warm-up before each measurement, in seconds.
    pub warmup_s: f64,
    /// Rounds the measurements were split into, scenarios taking turns.
    pub rounds: u32,
    pub scenarios: Vec<ScenarioReport>,
    pub scaling: Option<ScalingReport>,
    /// Anything a reader must know to trust the figures (skips, early ends).
    pub notes: Vec<String>,
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    #[serde(flatten)]
    pub figures: Figures,
    /// Time spent creating the scenario's data before the clock started.
    pub setup_s: f64,
}

/// Throughput, latency and errors of one measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Finished requests: always `ok` plus the sum of `errors`.
    pub requests: u64,
    pub ok: u64,
    /// Failures by gRPC code name (or harness label).
    pub errors: BTreeMap<&'static str, u64>,
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub rps: f64,
    /// `rps` divided by `health`'s in the same run (None for health itself
    /// or when health was not measured).
    pub ratio_to_health: Option<f64>,
    pub latency: Latency,
    /// The prepared data ran out before the limit.
    pub exhausted: bool,
}

/// Latency percentiles of successful requests, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Figures {
    /// Summarises a measurement; the ratio is filled in once health is known.
    pub fn from(m: &Measurement) -> Figures {
        let h = &m.latency_us;
        Figures {
            requests: m.requests,
            ok: m.ok,
            errors: m.errors.clone(),
            elapsed_s: m.elapsed.as_secs_f64(),
            rps: m.throughput(),
            ratio_to_health: None,
            latency: Latency {
                p50_us: h.value_at_quantile(0.50),
                p90_us: h.value_at_quantile(0.90),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
                mean_us: h.mean(),
            },
            exhausted: m.exhausted,
        }
    }

    /// Sets the ratio to the health throughput measured in the same run.
    pub fn relative_to(&mut self, health_rps: Option<f64>) {
        self.ratio_to_health = health_rps.filter(|h| *h > 0.0).map(|h| self.rps / h);
    }
}

/// The scaling scenario: the same lookup with more and more stored.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingReport {
    pub scenario: &'static str,
    pub rows: Vec<ScalingRow>,
    /// Highest p50 divided by the lowest: 1.0 is perfectly flat.
    pub p50_spread: f64,
    /// Highest ratio to health divided by the lowest: the same, corrected
    /// for what else the machine did during each step.
    pub ratio_spread: f64,
    /// Highest Redis time per lookup divided by the lowest: the store's
    /// side alone.
    pub redis_us_spread: f64,
}

/// One step of the scaling scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingRow {
    /// Decisions stored (seeded) when this step was measured.
    pub stored: u64,
    /// How the records added for this step were written.
    pub seeded: Option<Seeded>,
    /// Health throughput measured in this step, interleaved with the
    /// lookups; `ratio_to_health` is relative to it.
    pub health_rps: f64,
    /// Microseconds Redis itself spent per lookup script in this step
    /// (`INFO commandstats`): the store-side cost, immune to client noise.
    /// Only lookups the replica could not answer from its copy reach
    /// Redis; `None` when none did.
    pub redis_us_per_call: Option<f64>,
    #[serde(flatten)]
    pub figures: Figures,
}

impl ScalingReport {
    pub fn new(rows: Vec<ScalingRow>) -> Self {
        let p50s = rows.iter().map(|r| r.figures.latency.p50_us.max(1) as f64);
        let ratios = rows
            .iter()
            .filter_map(|r| r.figures.ratio_to_health)
            .filter(|r| *r > 0.0);
        ScalingReport {
            scenario: "get-or-create-existing",
            p50_spread: spread(p50s),
            ratio_spread: spread(ratios),
            redis_us_spread: spread(rows.iter().filter_map(|r| r.redis_us_per_call)),
            rows,
        }
    }
}

impl Report {
    /// The report as pretty JSON (`--json`).
    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// The report as tables for a person.
    pub fn text(&self) -> String {
        let mut out = format!(
            "verdict bench: {}{}, {} in flight over {} connection{}, {} per scenario in {} rounds after {} warm-up\n\n",
            self.target,
            if self.spawned {
                " (spawned in-process)"
            } else {
                ""
            },
            self.concurrency,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.limit,
            self.rounds,
            secs(self.warmup_s),
        );
        if !self.scenarios.is_empty() {
            let mut t = Table::new(FIGURE_HEADER.to_vec());
            for s in &self.scenarios {
                t.row(figure_cells(s.scenario.to_owned(), &s.figures));
            }
            out.push_str(&t.render());
            let errors = self
                .scenarios
                .iter()
                .filter(|s| !s.figures.errors.is_empty())
                .map(|s| format!("  {}: {}\n", s.scenario, error_list(&s.figures.errors)))
                .collect::<String>();
            if !errors.is_empty() {
                out.push_str("\nerrors by status code:\n");
                out.push_str(&errors);
            }
        }
        if let Some(scaling) = &self.scaling {
            let _ = writeln!(
                out,
                "\nscaling: {} by decisions stored, health measured in each step\n(max/min: p50 {:.2}x, ratio to health {:.2}x, Redis time per lookup {:.2}x)",
                scaling.scenario, scaling.p50_spread, scaling.ratio_spread, scaling.redis_us_spread
            );
            let mut header = vec!["stored", "seeded in"];
            header.extend(FIGURE_HEADER.iter().skip(1));
            header.push("health req/s");
            header.push("redis µs/lookup");
            let mut t = Table::new(header);
            for row in &scaling.rows {
                let seeded = match &row.seeded {
                    Some(s) if s.records > 0 => format!(
                        "+{} in {} ({:.0}/s)",
                        s.records,
                        secs(s.elapsed_s),
                        s.rate()
                    ),
                    _ => "-".to_owned(),
                };
                let mut cells = vec![row.stored.to_string(), seeded];
                cells.extend(
                    figure_cells(String::new(), &row.figures)
                        .into_iter()
                        .skip(1),
                );
                cells.push(format!("{:.0}", row.health_rps));
                cells.push(
                    row.redis_us_per_call
                        .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}")),
                );
                t.row(cells);
            }
            out.push_str(&t.render());
            for row in scaling.rows.iter().filter(|r| !r.figures.errors.is_empty()) {
                let _ = writeln!(
                    out,
                    "  errors at {}: {}",
                    row.stored,
                    error_list(&row.figures.errors)
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nnote: {note}");
        }
        out
    }
}

/// Largest over smallest of positive values; 1.0 when there are none.
fn spread(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    let min = values.fold(f64::INFINITY, f64::min);
    if min.is_finite() && min > 0.0 {
        max / min
    } else {
        1.0
    }
}

const FIGURE_HEADER: [&str; 9] = [
    "scenario",
    "requests",
    "errors",
    "req/s",
    "vs health",
    "p50",
    "p90",
    "p99",
    "max",
];

fn figure_cells(name: String, f: &Figures) -> Vec<String> {
    let errors: u64 = f.errors.values().sum();
    vec![
        name,
        f.requests.to_string(),
        errors.to_string(),
        format!("{:.0}", f.rps),
        f.ratio_to_health
            .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
        micros(f.latency.p50_us),
        micros(f.latency.p90_us),
        micros(f.latency.p99_us),
        micros(f.latency.max_us),
    ]
}

fn error_list(errors: &BTreeMap<&'static str, u64>) -> String {
    errors
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A latency for people: `850µs`, `1.42ms`, `2.1s`.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

fn secs(s: f64) -> String {
    humantime::format_duration(Duration::from_millis((s * 1000.0).round() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_pick_a_readable_unit() {
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(1_420), "1.42ms");
        assert_eq!(micros(2_100_000), "2.10s");
    }

    #[test]
    fn ratio_is_relative_to_health() {
        let mut f = Figures {
            requests: 10,
            ok: 10,
            errors: BTreeMap::new(),
            elapsed_s: 1.0,
            rps: 600.0,
            ratio_to_health: None,
            latency: Latency {
                p50_us: 1,
                p90_us: 1,
                p99_us: 1,
                max_us: 1,
                mean_us: 1.0,
            },
            exhausted: false,
        };
        f.relative_to(Some(1000.0));
        assert_eq!(f.ratio_to_health, Some(0.6));
        f.relative_to(Some(0.0));
        assert_eq!(f.ratio_to_health, None);
        assert_eq!(figure_cells("x".into(), &f)[4], "-");
    }
}

//! `verdict bench --compare BASELINE.json`: a regression guard for whoever
//! runs the bench, not a timed test in CI.
//!
//! What is compared is each scenario's ratio to `health` in the same run
//! (and each scaling step's), never requests/s: the ratio survives a
//! busier or quieter machine, the absolute figure does not (BENCHMARKS.md).
//! A ratio that fell by more than the margin (relative: 0.40 → 0.35 is a
//! 12.5 % fall) fails the run, so the command exits non-zero. Scenarios in
//! one run only are listed but never fail it: a baseline may hold more or
//! fewer scenarios than the run.
//!
//! A baseline is any `verdict bench --json` report (or `--save FILE`);
//! only the fields read here need to be present, so a report from an older
//! release still serves.

use crate::client::Table;
use anyhow::Context;
use serde::Deserialize;
use std::path::Path;

/// Largest saved report read (a report is a few KiB).
const MAX_REPORT_BYTES: u64 = 4 * 1024 * 1024;

/// The part of a saved report a comparison reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Saved {
    #[serde(default)]
    pub scenarios: Vec<SavedScenario>,
    #[serde(default)]
    pub scaling: Option<SavedScaling>,
}

/// One scenario of a saved report.
#[derive(Debug, Clone, Deserialize)]
pub struct SavedScenario {
    pub scenario: String,
    pub ratio_to_health: Option<f64>,
}

/// The scaling scenario of a saved report.
#[derive(Debug, Clone, Deserialize)]
pub struct SavedScaling {
    #[serde(default)]
    pub rows: Vec<SavedScalingRow>,
}

/// One scaling step of a saved report.
#[derive(Debug, Clone, Deserialize)]
pub struct SavedScalingRow {
    pub stored: u64,
    pub ratio_to_health: Option<f64>,
}

impl Saved {
    /// Reads a saved report (`--json` output) from `path`.
    pub fn read(path: &Path) -> anyhow::Result<Saved> {
        use std::io::Read;
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_REPORT_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read {}", path.display()))?;
        anyhow::ensure!(
            text.len() as u64 <= MAX_REPORT_BYTES,
            "{} is larger than a bench report can be ({MAX_REPORT_BYTES} bytes)",
            path.display()
        );
        Saved::parse(&text).with_context(|| format!("{} is not a bench report", path.display()))
    }

    /// Parses a saved report.
    pub fn parse(text: &str) -> anyhow::Result<Saved> {
        let saved: Saved = serde_json::from_str(text)?;
        anyhow::ensure!(
            !saved.ratios().is_empty(),
            "it holds no ratio to health (a watch-fanout report, or health alone?)"
        );
        Ok(saved)
    }

    /// Every ratio by name: scenarios, then scaling steps as
    /// `scaling@<stored>`.
    fn ratios(&self) -> Vec<(String, f64)> {
        let scenarios = self
            .scenarios
            .iter()
            .filter_map(|s| Some((s.scenario.clone(), s.ratio_to_health?)));
        let steps = self
            .scaling
            .iter()
            .flat_map(|s| &s.rows)
            .filter_map(|r| Some((format!("scaling@{}", r.stored), r.ratio_to_health?)));
        scenarios.chain(steps).collect()
    }
}

/// How one ratio moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub name: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// `current / baseline - 1` when both are known.
    pub change: Option<f64>,
    /// Fell by more than the margin.
    pub regressed: bool,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The margin, as a fraction (0.1 = 10 %).
    pub margin: f64,
    pub changes: Vec<Change>,
}

impl Comparison {
    /// Compares `current` against `baseline`: a ratio regressed when it is
    /// below `baseline × (1 − margin)`.
    pub fn new(baseline: &Saved, current: &Saved, margin: f64) -> Comparison {
        let (base, now) = (baseline.ratios(), current.ratios());
        let find = |list: &[(String, f64)], name: &str| {
            list.iter().find(|(n, _)| n == name).map(|(_, r)| *r)
        };
        let mut names: Vec<&String> = base.iter().map(|(n, _)| n).collect();
        for (n, _) in &now {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let changes = names
            .into_iter()
            .map(|name| {
                let (b, c) = (find(&base, name), find(&now, name));
                let change = match (b, c) {
                    (Some(b), Some(c)) if b > 0.0 => Some(c / b - 1.0),
                    _ => None,
                };
                Change {
                    name: name.clone(),
                    baseline: b,
                    current: c,
                    change,
                    regressed: change.is_some_and(|x| x < -margin),
                }
            })
            .collect();
        Comparison { margin, changes }
    }

    /// The ratios that fell by more than the margin.
    pub fn regressions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.regressed)
    }

    /// The comparison as a table and a verdict line.
    pub fn text(&self) -> String {
        let pct = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
        let mut t = Table::new(vec!["ratio to health", "baseline", "now", "change", ""]);
        for c in &self.changes {
            let change = c.change.map_or("not in both runs".to_owned(), |x| {
                format!("{:+.1}%", x * 100.0)
            });
            let flag = if c.regressed { "REGRESSED" } else { "" };
            t.row(vec![
                c.name.clone(),
                pct(c.baseline),
                pct(c.current),
                change,
                flag.to_owned(),
            ]);
        }
        let mut out = t.render();
        let fell: Vec<&str> = self.regressions().map(|c| c.name.as_str()).collect();
        let margin = self.margin * 100.0;
        if fell.is_empty() {
            out.push_str(&format!("\nno ratio fell by more than {margin}%\n"));
        } else {
            out.push_str(&format!(
                "\n{} fell by more than {margin}%: {}\n",
                if fell.len() == 1 {
                    "one ratio"
                } else {
                    "ratios"
                },
                fell.join(", ")
            ));
        }
        out
    }

    /// An error naming the regressions, if any: what makes the command
    /// exit non-zero.
    pub fn verdict(&self) -> anyhow::Result<()> {
        let fell: Vec<String> = self
            .regressions()
            .map(|c| format!("{} ({:+.1}%)", c.name, c.change.unwrap_or(0.0) * 100.0))
            .collect();
        anyhow::ensure!(
            fell.is_empty(),
            "slower than the baseline by more than {}%: {}",
            self.margin * 100.0,
            fell.join(", ")
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(ratios: &[(&str, Option<f64>)]) -> Saved {
        Saved {
            scenarios: ratios
                .iter()
                .map(|(n, r)| SavedScenario {
                    scenario: n.to_string(),
                    ratio_to_health: *r,
                })
                .collect(),
            scaling: None,
        }
    }

    #[test]
    fn a_fall_beyond_the_margin_regresses_and_one_within_does_not() {
        let base = saved(&[("health", None), ("a", Some(0.40)), ("b", Some(0.20))]);
        let now = saved(&[("health", None), ("a", Some(0.35)), ("b", Some(0.19))]);
        let c = Comparison::new(&base, &now, 0.10);
        let fell: Vec<&str> = c.regressions().map(|c| c.name.as_str()).collect();
        assert_eq!(fell, ["a"], "a fell 12.5 %, b 5 %");
        assert!(c.verdict().is_err());
        assert!(Comparison::new(&base, &now, 0.20).verdict().is_ok());
    }

    #[test]
    fn improvements_and_scenarios_in_one_run_only_never_fail() {
        let base = saved(&[("a", Some(0.40)), ("gone", Some(0.3))]);
        let now = saved(&[("a", Some(0.80)), ("new", Some(0.1))]);
        let c = Comparison::new(&base, &now, 0.0);
        assert!(c.verdict().is_ok());
        let names: Vec<&str> = c.changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "gone", "new"]);
        assert!(c.text().contains("not in both runs"));
    }

    #[test]
    fn reports_without_ratios_are_refused() {
        assert!(Saved::parse("[]").is_err(), "a watch-fanout report");
        assert!(
            Saved::parse(r#"{"scenarios":[{"scenario":"health","ratio_to_health":null}]}"#)
                .is_err()
        );
        assert!(Saved::parse("not json").is_err());
    }
}

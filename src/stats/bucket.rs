//! Time buckets and query windows.
//!
//! Every statistic is counted twice as it is written: in the UTC hour and
//! in the UTC day it belongs to. A query covers whole hours; it reads the
//! day buckets of the whole days inside its window and hour buckets only for
//! the ragged edges, so a 30-day range reads at most 30 + 46 buckets per
//! series, however many incidents there were.

use crate::domain::Violations;
use chrono::{DateTime, Utc};
use std::time::Duration;

const HOUR_S: i64 = 3_600;
const DAY_H: i64 = 24;

/// One UTC hour or one UTC day; counters of both kinds are written for
/// every event, so either can answer for the time it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Hours since the Unix epoch.
    Hour(i64),
    /// Days since the Unix epoch (the epoch is a UTC midnight, so day `d`
    /// is hours `24d .. 24d + 24`).
    Day(i64),
}

impl Bucket {
    /// The hour bucket holding `t`.
    pub fn hour_of(t: DateTime<Utc>) -> Bucket {
        Bucket::Hour(t.timestamp().div_euclid(HOUR_S))
    }

    /// The day bucket holding `t`.
    pub fn day_of(t: DateTime<Utc>) -> Bucket {
        Bucket::Day(t.timestamp().div_euclid(HOUR_S * DAY_H))
    }

    /// Both buckets of `t`: where an event at `t` is counted.
    pub fn both_of(t: DateTime<Utc>) -> [Bucket; 2] {
        [Bucket::hour_of(t), Bucket::day_of(t)]
    }

    /// First hour covered (hours since the epoch).
    pub fn start_hour(self) -> i64 {
        match self {
            Bucket::Hour(h) => h,
            Bucket::Day(d) => d.saturating_mul(DAY_H),
        }
    }

    /// First hour after it.
    pub fn end_hour(self) -> i64 {
        match self {
            Bucket::Hour(h) => h.saturating_add(1),
            Bucket::Day(d) => d.saturating_add(1).saturating_mul(DAY_H),
        }
    }

    /// When the bucket's keys expire: `retention` after its end. Fixed per
    /// bucket, so every write sets the same deadline (idempotent), and a
    /// write into a bucket already past it is dropped at once.
    pub fn expires_at(self, retention: Duration) -> i64 {
        let ret = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        self.end_hour().saturating_mul(HOUR_S).saturating_add(ret)
    }

    /// A readable, sortable label: `2025-11-25T18` (hour) or `2025-11-25`
    /// (day); distinct for every bucket.
    pub fn label(self) -> String {
        let start = DateTime::from_timestamp(self.start_hour().saturating_mul(HOUR_S), 0)
            .unwrap_or(DateTime::UNIX_EPOCH);
        match self {
            Bucket::Hour(_) => start.format("%Y-%m-%dT%H").to_string(),
            Bucket::Day(_) => start.format("%Y-%m-%d").to_string(),
        }
    }
}

/// What a caller asked for, parsed but not yet resolved against "now".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeSpec {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The last this long, ending now.
    pub last: Option<Duration>,
    /// Everything retained; overrides the rest.
    pub all_time: bool,
}

/// Whole UTC hours `[from, to)` (hours since the epoch) that a query
/// covers. Never longer than the retention plus the current hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

/// The default range: the last 24 hours.
pub const DEFAULT_HOURS: i64 = 24;

impl Window {
    /// Resolves a request against `now` and the retention. Ranges are
    /// rounded out to whole hours (every hour bucket that overlaps them
    /// counts) and clamped to what is retained: from the hour `retention`
    /// before now's to the end of now's hour. `last` (and the default of
    /// 24 hours) ends with the current hour: `last 24h` is the current hour
    /// and the 23 before it.
    pub fn resolve(
        spec: &RangeSpec,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<Window, Violations> {
        let mut v = Violations::new();
        let now_h = now.timestamp().div_euclid(HOUR_S);
        let latest = now_h.saturating_add(1);
        let retained_h = i64::try_from(retention.as_secs().div_ceil(HOUR_S as u64))
            .unwrap_or(i64::MAX)
            .max(1);
        let earliest = latest.saturating_sub(retained_h);
        let floor = |t: DateTime<Utc>| t.timestamp().div_euclid(HOUR_S);
        let ceil = |t: DateTime<Utc>| {
            let s = t.timestamp();
            let h = s.div_euclid(HOUR_S);
            if s.rem_euclid(HOUR_S) == 0 && t.timestamp_subsec_nanos() == 0 {
                h
            } else {
                h.saturating_add(1)
            }
        };
        let hours_of = |d: Duration| {
            i64::try_from(d.as_secs().div_ceil(HOUR_S as u64))
                .unwrap_or(i64::MAX)
                .max(1)
        };
        let (from, to) = if spec.all_time {
            (earliest, latest)
        } else {
            if spec.last.is_some() && (spec.from.is_some() || spec.to.is_some()) {
                v.add(
                    "range.last",
                    "cannot be combined with range.from or range.to",
                );
            }
            if spec.last.is_some_and(|d| d.is_zero()) {
                v.add("range.last", "must be positive");
            }
            if let (Some(f), Some(t)) = (spec.from, spec.to)
                && f >= t
            {
                v.add("range.to", "must be after range.from");
            }
            v.clone().into_result()?;
            match (spec.from, spec.to, spec.last) {
                (_, _, Some(last)) => (latest.saturating_sub(hours_of(last)), latest),
                (Some(f), Some(t), None) => (floor(f), ceil(t)),
                (Some(f), None, None) => (floor(f), latest),
                (None, Some(t), None) => {
                    let to = ceil(t);
                    (to.saturating_sub(DEFAULT_HOURS), to)
                }
                (None, None, None) => (latest.saturating_sub(DEFAULT_HOURS), latest),
            }
        };
        let from = from.max(earliest);
        let to = to.min(latest);
        Ok(if from < to {
            Window { from, to }
        } else {
            // Entirely outside what is retained: an empty window.
            Window { from, to: from }
        })
    }

    /// The window's start.
    pub fn start(&self) -> DateTime<Utc> {
        hour_time(self.from)
    }

    /// The window's end (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        hour_time(self.to)
    }

    /// The buckets that cover the window exactly, each hour once: a day
    /// bucket for each whole UTC day inside it, hour buckets for the rest.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::new();
        let mut h = self.from;
        while h < self.to {
            if h.rem_euclid(DAY_H) == 0 && h.saturating_add(DAY_H) <= self.to {
                out.push(Bucket::Day(h.div_euclid(DAY_H)));
                h += DAY_H;
            } else {
                out.push(Bucket::Hour(h));
                h += 1;
            }
        }
        out
    }
}

fn hour_time(h: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(h.saturating_mul(HOUR_S), 0).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const DAYS_90: Duration = Duration::from_secs(90 * 86_400);

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn labels_are_readable() {
        let at = t(2025, 11, 25, 18, 42);
        assert_eq!(Bucket::hour_of(at).label(), "2025-11-25T18");
        assert_eq!(Bucket::day_of(at).label(), "2025-11-25");
        assert_eq!(
            Bucket::hour_of(at).start_hour() * 3600,
            t(2025, 11, 25, 18, 0).timestamp()
        );
    }

    #[test]
    fn the_default_is_the_current_hour_and_the_23_before() {
        let now = t(2025, 11, 25, 18, 42);
        let w = Window::resolve(&RangeSpec::default(), now, DAYS_90).unwrap();
        assert_eq!(w.end(), t(2025, 11, 25, 19, 0));
        assert_eq!(w.start(), t(2025, 11, 24, 19, 0));
        assert_eq!(w.buckets().len(), 24);
    }

    #[test]
    fn explicit_ranges_round_out_to_whole_hours() {
        let now = t(2025, 11, 25, 18, 42);
        let spec = RangeSpec {
            from: Some(t(2025, 11, 25, 10, 30)),
            to: Some(t(2025, 11, 25, 12, 0)),
            ..Default::default()
        };
        let w = Window::resolve(&spec, now, DAYS_90).unwrap();
        assert_eq!(
            (w.start(), w.end()),
            (t(2025, 11, 25, 10, 0), t(2025, 11, 25, 12, 0))
        );
        let spec = RangeSpec {
            to: Some(t(2025, 11, 25, 12, 1)),
            ..spec
        };
        let w = Window::resolve(&spec, now, DAYS_90).unwrap();
        assert_eq!(w.end(), t(2025, 11, 25, 13, 0));
    }

    #[test]
    fn bad_ranges_name_the_field() {
        let now = t(2025, 11, 25, 18, 42);
        let field_of = |spec: RangeSpec| {
            Window::resolve(&spec, now, DAYS_90)
                .unwrap_err()
                .iter()
                .next()
                .unwrap()
                .field
                .clone()
        };
        let spec = RangeSpec {
            from: Some(now),
            to: Some(now),
            ..Default::default()
        };
        assert_eq!(field_of(spec), "range.to");
        let spec = RangeSpec {
            from: Some(now),
            last: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        assert_eq!(field_of(spec), "range.last");
        let spec = RangeSpec {
            last: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(field_of(spec), "range.last");
    }

    #[test]
    fn ranges_are_clamped_to_the_retention() {
        let now = t(2025, 11, 25, 18, 42);
        let all = RangeSpec {
            all_time: true,
            ..Default::default()
        };
        let w = Window::resolve(&all, now, DAYS_90).unwrap();
        assert_eq!(w.to - w.from, 90 * 24);
        let ancient = RangeSpec {
            from: Some(t(1990, 1, 1, 0, 0)),
            to: Some(t(1990, 2, 1, 0, 0)),
            ..Default::default()
        };
        let w = Window::resolve(&ancient, now, DAYS_90).unwrap();
        assert!(w.buckets().is_empty());
        let huge = RangeSpec {
            last: Some(Duration::from_secs(u64::MAX)),
            ..Default::default()
        };
        let w = Window::resolve(&huge, now, DAYS_90).unwrap();
        assert_eq!(w.to - w.from, 90 * 24);
    }

    #[test]
    fn thirty_days_read_few_buckets() {
        let now = t(2025, 11, 25, 18, 42);
        let spec = RangeSpec {
            last: Some(Duration::from_secs(30 * 86_400)),
            ..Default::default()
        };
        let b = Window::resolve(&spec, now, DAYS_90).unwrap().buckets();
        let days = b.iter().filter(|b| matches!(b, Bucket::Day(_))).count();
        assert_eq!(days, 29);
        assert_eq!(
            b.len(),
            29 + 24,
            "5 h before the first midnight, 19 h after the last"
        );
    }

    proptest! {
        /// The buckets of a window cover each of its hours exactly once.
        #[test]
        fn buckets_tile_the_window(from in -1_000i64..1_000_000, len in 0i64..3_000) {
            let w = Window { from, to: from + len };
            let mut hours = Vec::new();
            for b in w.buckets() {
                hours.extend(b.start_hour()..b.end_hour());
            }
            prop_assert_eq!(hours, (from..from + len).collect::<Vec<_>>());
        }
    }
}

//! Reading stored timestamps quickly. chrono's own `Deserialize` goes
//! through its general, relaxed RFC 3339 parser, which was a third of the
//! cost of decoding a stored decision, itself the largest cost of
//! `GetDecision` after the HTTP/2 stack (BENCHMARKS.md, "serialization").
//! The strict RFC 3339 parser reads exactly what chrono writes
//! (`2026-01-02T03:04:05.123456789Z`), so the stored format is unchanged:
//! only `deserialize_with` points here; serialization stays chrono's.
//!
//! Also the bounds on times from outside. chrono represents years far
//! beyond protobuf's `Timestamp` (0001-01-01 to 9999-12-31, UTC): such a
//! time, once stored, made every JSON rendering of the record fail for
//! every client (`MessageToJson`, `verdict --json`). So a time from a
//! request must be in that range, an alert's time must also be in a sane
//! window around now ([`alert_time`]), and a time read back that is out of
//! range anyway (stored before these checks) is clamped on the way out
//! ([`clamp_to_proto`]), never an error.

use chrono::{DateTime, Duration, Utc};
use serde::Deserializer;
use serde::de::{self, Visitor};
use std::fmt;
use thiserror::Error;

/// `0001-01-01T00:00:00Z`, the earliest protobuf `Timestamp`.
pub const PROTO_MIN_SECONDS: i64 = -62_135_596_800;
/// `9999-12-31T23:59:59Z`, the last second of protobuf `Timestamp`.
pub const PROTO_MAX_SECONDS: i64 = 253_402_300_799;

/// How far ahead of now an alert may say it started: clocks disagree,
/// but not by a day.
pub const STARTS_AT_AHEAD: Duration = Duration::days(1);
/// How far ahead of now an alert may say it ends. Alertmanager sends the
/// time a firing alert will be considered resolved (now plus its
/// `resolve_timeout`, minutes to hours), so this is generous.
pub const ENDS_AT_AHEAD: Duration = Duration::days(31);

/// The earliest protobuf `Timestamp`.
pub fn proto_min() -> DateTime<Utc> {
    DateTime::from_timestamp(PROTO_MIN_SECONDS, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest protobuf `Timestamp`.
pub fn proto_max() -> DateTime<Utc> {
    DateTime::from_timestamp(PROTO_MAX_SECONDS, 999_999_999).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether `t` can be written as a protobuf `Timestamp`.
pub fn in_proto_range(t: DateTime<Utc>) -> bool {
    (proto_min()..=proto_max()).contains(&t)
}

/// `t` moved into protobuf's range: the nearest end when outside.
pub fn clamp_to_proto(t: DateTime<Utc>) -> DateTime<Utc> {
    t.clamp(proto_min(), proto_max())
}

/// Which of an alert's times is checked: they have different windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertTime {
    StartsAt,
    EndsAt,
}

/// Why a time from outside was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")]
    OutOfRange,
    #[error("must not be before 1970-01-01T00:00:00Z")]
    BeforeEpoch,
    #[error("must be at most {0} after the server's time ({1})")]
    TooFarAhead(&'static str, String),
}

/// An alert's start or end time, checked against the window around `now`:
/// not before the Unix epoch (no monitoring system ran earlier; year 0
/// is a bug), and at most [`STARTS_AT_AHEAD`] / [`ENDS_AT_AHEAD`] ahead.
pub fn alert_time(
    t: DateTime<Utc>,
    which: AlertTime,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, TimeError> {
    let (ahead, words) = match which {
        AlertTime::StartsAt => (STARTS_AT_AHEAD, "1 day"),
        AlertTime::EndsAt => (ENDS_AT_AHEAD, "31 days"),
    };
    if t < DateTime::UNIX_EPOCH {
        return Err(TimeError::BeforeEpoch);
    }
    if t > now + ahead {
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        return Err(TimeError::TooFarAhead(words, now));
    }
    Ok(t)
}

struct Rfc3339;

impl Visitor<'_> for Rfc3339 {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 date and time")
    }

    /// The strict parser first (the fast path, every time chrono wrote
    /// for years 0 to 9999); chrono's own parser for what the strict one
    /// refuses, such as `+10000-01-01T00:00:00Z` (years beyond RFC 3339
    /// that chrono writes with a sign), so such a stored record still reads.
    fn visit_str<E: de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| s.parse::<DateTime<Utc>>())
            .map_err(E::custom)
    }
}

/// `#[serde(deserialize_with = "timestamp::deserialize")]`
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Rfc3339)
}

/// `#[serde(default, deserialize_with = "timestamp::option")]`
pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    struct Maybe;
    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 date and time or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            deserialize(d).map(Some)
        }
    }
    d.deserialize_option(Maybe)
}

#[cfg(test)]
mod tests {
    use super::{AlertTime, TimeError, alert_time, clamp_to_proto, in_proto_range};
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::deserialize")]
        at: DateTime<Utc>,
        #[serde(default, deserialize_with = "super::option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[test]
    fn reads_back_what_chrono_writes() {
        let at = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        for t in [
            T { at, maybe: None },
            T {
                at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
                maybe: Some(at),
            },
        ] {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t, "{json}");
        }
        let missing: T = serde_json::from_str(r#"{"at":"2026-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(missing.maybe, None);
        let offset: T = serde_json::from_str(r#"{"at":"2026-01-02T05:04:05+02:00"}"#).unwrap();
        assert_eq!(
            offset.at,
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
        );
        assert!(serde_json::from_str::<T>(r#"{"at":"yesterday"}"#).is_err());
    }

    #[test]
    fn reads_back_years_outside_the_proto_range() {
        // Stored before requests were checked: reading must not fail.
        for year in [0, -5, 10_000, 262_000] {
            let at = Utc.with_ymd_and_hms(year, 3, 4, 5, 6, 7).unwrap();
            let t = T {
                at,
                maybe: Some(at),
            };
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t, "{json}");
        }
    }

    #[test]
    fn the_proto_range_is_years_1_to_9999() {
        let first = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert!(in_proto_range(first) && in_proto_range(last));
        let year0 = Utc.with_ymd_and_hms(0, 6, 1, 0, 0, 0).unwrap();
        let year10k = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        assert!(!in_proto_range(year0) && !in_proto_range(year10k));
        assert_eq!(clamp_to_proto(year0), first);
        assert_eq!(clamp_to_proto(year10k).timestamp(), last.timestamp());
        assert_eq!(clamp_to_proto(last), last);
    }

    #[test]
    fn alert_times_stay_in_a_window_around_now() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let ok = |t, w| alert_time(t, w, now).is_ok();
        assert!(ok(DateTime::UNIX_EPOCH, AlertTime::StartsAt));
        assert!(ok(now + Duration::hours(23), AlertTime::StartsAt));
        assert!(ok(now + Duration::days(30), AlertTime::EndsAt));
        assert_eq!(
            alert_time(now - Duration::days(30_000), AlertTime::StartsAt, now),
            Err(TimeError::BeforeEpoch)
        );
        assert!(!ok(now + Duration::hours(25), AlertTime::StartsAt));
        assert!(!ok(now + Duration::days(32), AlertTime::EndsAt));
        let e = alert_time(now + Duration::days(2), AlertTime::StartsAt, now).unwrap_err();
        assert_eq!(
            e.to_string(),
            "must be at most 1 day after the server's time (2026-01-02T03:04:05Z)"
        );
    }
}

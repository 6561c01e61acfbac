//! Reading stored timestamps quickly. chrono's own `Deserialize` goes
//! through its general, relaxed RFC 3339 parser, which was a third of the
//! cost of decoding a stored decision, itself the largest cost of
//! `GetDecision` after the HTTP/2 stack (BENCHMARKS.md, "serialization").
//! The strict RFC 3339 parser reads exactly what chrono writes
//! (`2026-01-02T03:04:05.123456789Z`), so the stored format is unchanged:
//! only `deserialize_with` points here; serialization stays chrono's.

use chrono::{DateTime, Utc};
use serde::Deserializer;
use serde::de::{self, Visitor};
use std::fmt;

struct Rfc3339;

impl Visitor<'_> for Rfc3339 {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 date and time")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
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
    use chrono::{DateTime, TimeZone, Utc};
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
}

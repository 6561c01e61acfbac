//! The identity of a group of alerts that share one incident.
//!
//! Alerts are grouped by a set of label values (see `ingest::grouping`);
//! the group's identity is a digest of those values, so it has a fixed
//! size whatever the labels hold and can name a Redis key safely.

use super::ids::{IdError, IncidentId};
use std::fmt;

/// A group of alerts: the SHA-1 of the group's canonical label form, as 40
/// lower-case hex digits. Two alerts with the same grouping labels have the
/// same key on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey(String);

impl GroupKey {
    /// The key of a group from its canonical form (an unambiguous encoding
    /// of the grouping labels, built by the caller).
    pub fn of(canonical: &str) -> Self {
        GroupKey(
            sha1_smol::Sha1::from(canonical.as_bytes())
                .digest()
                .to_string(),
        )
    }

    /// Parses a key as stored (40 lower-case hex digits).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() == 40
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(GroupKey(s.to_owned()))
        } else {
            Err(IdError::Malformed("must be 40 lower-case hex digits"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the incident this group opens after `previous` (its last
    /// incident, or none). Deterministic on purpose: replicas that race to
    /// open the same group's next incident compute the same id, the store
    /// lets exactly one of them create it, and the others join it. A
    /// replica that dies between creating the incident and recording it as
    /// the group's current one leaves nothing to clean up: the next caller
    /// derives the same id and finds it.
    pub fn incident_id_after(&self, previous: Option<&IncidentId>) -> IncidentId {
        let mut h = sha1_smol::Sha1::new();
        h.update(b"verdict/group-incident\0");
        h.update(self.0.as_bytes());
        h.update(b"\0");
        h.update(previous.map(|p| p.as_str()).unwrap_or("").as_bytes());
        let hex = h.digest().to_string().to_ascii_uppercase();
        IncidentId::parse(&format!("INC-{}", &hex[..12]))
            .expect("INC- and 12 hex digits is a valid incident id")
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_digests() {
        let a = GroupKey::of("x");
        assert_eq!(a, GroupKey::of("x"));
        assert_ne!(a, GroupKey::of("y"));
        assert_eq!(GroupKey::parse(a.as_str()), Ok(a.clone()));
        assert!(GroupKey::parse("ABC").is_err());
        assert!(GroupKey::parse(&"g".repeat(40)).is_err());
    }

    #[test]
    fn incident_ids_form_a_chain() {
        let g = GroupKey::of("x");
        let first = g.incident_id_after(None);
        assert_eq!(first, g.incident_id_after(None), "deterministic");
        assert!(first.as_str().starts_with("INC-") && first.as_str().len() == 16);
        let second = g.incident_id_after(Some(&first));
        assert_ne!(first, second);
        assert_ne!(first, GroupKey::of("y").incident_id_after(None));
    }
}

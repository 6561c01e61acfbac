//! An incident's signature: what makes two incidents "the same problem"
//! for the proposal cache. Sorted, de-duplicated alert names, the first
//! affected service, the severity — and the target namespace, because a
//! cached command names it and must never be replayed into another one.
//! The engine that answered (dual or consensus) scopes it, so a vote is
//! never served as a single model's answer or the other way round.

use super::Incident;

/// A cache key for proposals. `text` is the full signature (stored beside
/// the proposal and compared on read, so a digest collision is a miss);
/// `digest` is its SHA-1, short enough for a Redis key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    text: String,
    digest: String,
}

impl Signature {
    pub fn of(incident: &Incident, scope: &str) -> Signature {
        let mut names: Vec<&str> = incident
            .signals
            .iter()
            .map(|s| s.alert_name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let service = incident
            .affected_services
            .first()
            .map(|s| s.as_str())
            .unwrap_or("");
        let namespace = incident.target_namespace();
        // JSON keeps the parts unambiguous whatever characters alert names
        // hold.
        let text = serde_json::json!([
            scope,
            incident.severity.as_str(),
            namespace.as_str(),
            service,
            names
        ])
        .to_string();
        let digest = sha1_smol::Sha1::from(text.as_bytes()).digest().to_string();
        Signature { text, digest }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{K8sName, Severity};

    fn incident(alerts: &[&str], service: &str, severity: Severity) -> Incident {
        crate::domain::incident::fixture::incident()
            .severity(severity)
            .alerts(alerts)
            .services(&[service])
            .build()
    }

    #[test]
    fn order_and_duplicates_of_alerts_do_not_matter_but_the_rest_does() {
        let a = Signature::of(&incident(&["B", "A", "B"], "web", Severity::P2), "dual");
        let b = Signature::of(&incident(&["A", "B"], "web", Severity::P2), "dual");
        assert_eq!(a, b);
        assert_eq!(a.digest().len(), 40);
        for other in [
            Signature::of(&incident(&["A", "B"], "api", Severity::P2), "dual"),
            Signature::of(&incident(&["A", "B"], "web", Severity::P1), "dual"),
            Signature::of(&incident(&["A"], "web", Severity::P2), "dual"),
            Signature::of(&incident(&["A", "B"], "web", Severity::P2), "consensus"),
        ] {
            assert_ne!(a.digest(), other.digest());
        }
        let mut ns = incident(&["A", "B"], "web", Severity::P2);
        ns.namespace = Some(K8sName::parse("shop").unwrap());
        assert_ne!(Signature::of(&ns, "dual"), a);
    }
}

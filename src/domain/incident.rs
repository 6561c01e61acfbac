//! Incidents and the alerts (signals) behind them.

use super::ids::{IncidentId, K8sName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits on what one incident may carry, so one request cannot blow up
/// storage or memory.
pub mod limits {
    pub const TITLE: usize = 256;
    pub const SIGNALS: usize = 100;
    pub const SERVICES: usize = 32;
    pub const ALERT_NAME: usize = 256;
    pub const LABELS: usize = 64;
    pub const LABEL_KEY: usize = 128;
    pub const LABEL_VALUE: usize = 1024;
    pub const FINGERPRINT: usize = 128;
    pub const URL: usize = 2048;
    pub const ACTOR: usize = 128;
    pub const NOTE: usize = 2048;
    pub const OUTPUT: usize = 64 * 1024;
}

/// P0 (worst) to P4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    P0,
    P1,
    P2,
    P3,
    P4,
}

impl Severity {
    pub const ALL: [Severity; 5] = [Self::P0, Self::P1, Self::P2, Self::P3, Self::P4];

    /// P0 and P1 get a consensus decision in mode AUTO.
    pub fn is_critical(self) -> bool {
        matches!(self, Severity::P0 | Severity::P1)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::P0 => "P0",
            Self::P1 => "P1",
            Self::P2 => "P2",
            Self::P3 => "P3",
            Self::P4 => "P4",
        }
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IncidentStatus {
    Open,
    Investigating,
    Resolved,
    Closed,
}

impl IncidentStatus {
    /// Resolved and closed incidents need no new decision.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Open | Self::Investigating)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Investigating => "INVESTIGATING",
            Self::Resolved => "RESOLVED",
            Self::Closed => "CLOSED",
        }
    }
}

/// Whether an alert still fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalStatus {
    Firing,
    Resolved,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub alert_name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub fingerprint: String,
    pub status: SignalStatus,
    #[serde(default)]
    pub generator_url: String,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub title: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    #[serde(default)]
    pub signals: Vec<Signal>,
    /// Validated RFC 1123 labels; the first is the default remediation target.
    #[serde(default)]
    pub affected_services: Vec<K8sName>,
    /// Explicit namespace, if the creator gave one.
    pub namespace: Option<K8sName>,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "super::timestamp::option")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Increments on every change; the compare-and-set key.
    pub version: u64,
    /// Who made the last status change, and why.
    #[serde(default)]
    pub status_actor: String,
    #[serde(default)]
    pub status_note: String,
    /// Request ids of the status changes applied, written with them: a
    /// retry with one of them changes nothing.
    #[serde(default, skip_serializing_if = "super::AppliedRequests::is_empty")]
    pub applied_requests: super::AppliedRequests,
}

impl Incident {
    /// A just-opened incident at version 1: OPEN, created and updated `now`,
    /// no signals, services or namespace yet. Every place that opens an
    /// incident starts here (struct update syntax fills in the rest), so a
    /// new bookkeeping field has one default.
    pub fn opened(id: IncidentId, title: String, severity: Severity, now: DateTime<Utc>) -> Self {
        Incident {
            id,
            title,
            severity,
            status: IncidentStatus::Open,
            signals: Vec::new(),
            affected_services: Vec::new(),
            namespace: None,
            created_at: now,
            updated_at: now,
            resolved_at: None,
            version: 1,
            status_actor: String::new(),
            status_note: String::new(),
            applied_requests: Default::default(),
        }
    }

    /// The namespace remediation targets: the explicit one, else the first
    /// signal's `namespace` label when it is a valid RFC 1123 label, else
    /// `default` (as in the seed). An invalid label is ignored, never used.
    pub fn target_namespace(&self) -> K8sName {
        if let Some(ns) = &self.namespace {
            return ns.clone();
        }
        self.signals
            .first()
            .and_then(|s| s.labels.get("namespace"))
            .and_then(|ns| K8sName::parse(ns).ok())
            .unwrap_or_else(default_namespace)
    }

    /// Applies a status change made at `now`. `resolved_at` is when the
    /// incident last stopped being active: set when it first reaches
    /// RESOLVED or CLOSED from OPEN or INVESTIGATING, never moved by going
    /// back and forth between RESOLVED and CLOSED, cleared when it is
    /// reopened. So each resolution is one setting of `resolved_at`, which
    /// is exactly what the statistics count (`stats::record`): a reopened
    /// incident resolved again is a new resolution, a closed one marked
    /// RESOLVED again is not.
    pub fn set_status(&mut self, status: IncidentStatus, now: DateTime<Utc>) {
        match status {
            IncidentStatus::Resolved | IncidentStatus::Closed => {
                if self.resolved_at.is_none() {
                    self.resolved_at = Some(now);
                }
            }
            IncidentStatus::Open | IncidentStatus::Investigating => self.resolved_at = None,
        }
        self.status = status;
        self.updated_at = now;
        self.version += 1;
    }
}

fn default_namespace() -> K8sName {
    K8sName::parse("default").expect("`default` is a valid RFC 1123 label")
}

/// The one builder unit tests use for incidents (issue 11: a dozen
/// hand-built literals drifted apart). Defaults: a generated id, title
/// `t`, P2, OPEN, version 1, created now, no signals, services or
/// namespace; each setter changes one thing.
#[cfg(test)]
pub mod fixture {
    use super::*;

    /// Starts an incident with the defaults.
    pub fn incident() -> Builder {
        let now = Utc::now();
        Builder(Incident::opened(
            IncidentId::generate(),
            "t".into(),
            Severity::P2,
            now,
        ))
    }

    /// An incident under construction; [`Builder::build`] ends it.
    pub struct Builder(Incident);

    fn name(s: &str) -> K8sName {
        K8sName::parse(s).expect("fixture names are RFC 1123 labels")
    }

    impl Builder {
        pub fn id(mut self, id: &str) -> Self {
            self.0.id = IncidentId::parse(id).expect("fixture ids are valid");
            self
        }
        pub fn severity(mut self, severity: Severity) -> Self {
            self.0.severity = severity;
            self
        }
        /// Created and last updated at `at`.
        pub fn at(mut self, at: DateTime<Utc>) -> Self {
            self.0.created_at = at;
            self.0.updated_at = at;
            self
        }
        pub fn services(mut self, services: &[&str]) -> Self {
            self.0.affected_services = services.iter().map(|s| name(s)).collect();
            self
        }
        pub fn namespace(mut self, ns: &str) -> Self {
            self.0.namespace = Some(name(ns));
            self
        }
        /// One firing signal per alert name, without labels.
        pub fn alerts(mut self, alerts: &[&str]) -> Self {
            self.0.signals = alerts.iter().map(|a| signal(a)).collect();
            self
        }
        pub fn signals(mut self, signals: Vec<Signal>) -> Self {
            self.0.signals = signals;
            self
        }
        pub fn build(self) -> Incident {
            self.0
        }
    }

    /// A firing signal named `alert`, without labels or times.
    pub fn signal(alert: &str) -> Signal {
        Signal {
            alert_name: alert.to_string(),
            labels: Default::default(),
            annotations: Default::default(),
            starts_at: None,
            ends_at: None,
            fingerprint: String::new(),
            status: SignalStatus::Firing,
            generator_url: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> Incident {
        fixture::incident().build()
    }

    #[test]
    fn namespace_falls_back_to_default_and_ignores_unsafe_labels() {
        let mut i = incident();
        assert_eq!(i.target_namespace().as_str(), "default");
        i.signals.push(Signal {
            labels: [("namespace".to_string(), "shop; rm -rf /".to_string())].into(),
            ..fixture::signal("PodCrash")
        });
        assert_eq!(i.target_namespace().as_str(), "default");
        i.signals[0]
            .labels
            .insert("namespace".into(), "shop".into());
        assert_eq!(i.target_namespace().as_str(), "shop");
    }

    #[test]
    fn resolved_at_follows_the_status() {
        let mut i = incident();
        let t1 = Utc::now();
        i.set_status(IncidentStatus::Resolved, t1);
        assert_eq!(i.resolved_at, Some(t1));
        i.set_status(IncidentStatus::Closed, t1 + chrono::Duration::seconds(5));
        assert_eq!(i.resolved_at, Some(t1));
        i.set_status(IncidentStatus::Open, t1);
        assert_eq!(i.resolved_at, None);
        assert_eq!(i.version, 4);
    }

    #[test]
    fn resolved_at_never_moves_between_resolved_and_closed() {
        let mut i = incident();
        let t1 = Utc::now();
        let later = |s| t1 + chrono::Duration::seconds(s);
        i.set_status(IncidentStatus::Resolved, t1);
        i.set_status(IncidentStatus::Closed, later(1));
        i.set_status(IncidentStatus::Resolved, later(2));
        assert_eq!(i.resolved_at, Some(t1), "CLOSED back to RESOLVED keeps it");
        i.set_status(IncidentStatus::Resolved, later(3));
        assert_eq!(i.resolved_at, Some(t1), "RESOLVED again keeps it");
        i.set_status(IncidentStatus::Investigating, later(4));
        i.set_status(IncidentStatus::Resolved, later(5));
        assert_eq!(
            i.resolved_at,
            Some(later(5)),
            "a reopened one resolves anew"
        );
    }
}

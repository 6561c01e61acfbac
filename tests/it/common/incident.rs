//! `IncidentBuilder`: the one way tests build an incident, as the proto
//! message a client sends or as the domain record a store holds.
//!
//! Every fixture starts from the same minimal incident (title "t", P2, open,
//! no services, namespace or signals, created now) and says only what its
//! test depends on, so a field added to `Incident` is added here once.

use chrono::{DateTime, Utc};
use verdict::domain::{self, IncidentId, IncidentStatus, K8sName, Severity, SignalStatus};
use verdict::proto;

/// A severity in either form, so a test uses the one it already imports.
pub trait AnySeverity {
    fn domain(self) -> Severity;
}

impl AnySeverity for Severity {
    fn domain(self) -> Severity {
        self
    }
}

impl AnySeverity for proto::Severity {
    fn domain(self) -> Severity {
        match self {
            proto::Severity::P0 => Severity::P0,
            proto::Severity::P1 => Severity::P1,
            proto::Severity::P3 => Severity::P3,
            proto::Severity::P4 => Severity::P4,
            // Unspecified is not a severity an incident can have.
            proto::Severity::P2 | proto::Severity::Unspecified => Severity::P2,
        }
    }
}

/// Builds a test incident; see the module doc for the defaults.
#[derive(Debug, Clone)]
pub struct IncidentBuilder {
    title: String,
    severity: Severity,
    services: Vec<String>,
    namespace: Option<String>,
    alerts: Vec<String>,
    created_at: DateTime<Utc>,
}

impl Default for IncidentBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl IncidentBuilder {
    pub fn new() -> Self {
        IncidentBuilder {
            title: "t".into(),
            severity: Severity::P2,
            services: Vec::new(),
            namespace: None,
            alerts: Vec::new(),
            created_at: Utc::now(),
        }
    }

    /// The common alerting incident: `alert` firing on `service` in
    /// namespace `shop`.
    pub fn alerting(title: &str, alert: &str, service: &str) -> Self {
        Self::new()
            .title(title)
            .service(service)
            .namespace("shop")
            .alert(alert)
    }

    pub fn title(mut self, title: &str) -> Self {
        self.title = title.into();
        self
    }

    /// A domain or a proto severity.
    pub fn severity(mut self, severity: impl AnySeverity) -> Self {
        self.severity = severity.domain();
        self
    }

    /// Adds an affected service (an RFC 1123 label).
    pub fn service(mut self, service: &str) -> Self {
        self.services.push(service.into());
        self
    }

    pub fn services(self, services: &[&str]) -> Self {
        services.iter().fold(self, |b, s| b.service(s))
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Adds a firing signal named `alert`, fingerprint `fp-ALERT`, labelled
    /// with the first affected service (as an Alertmanager alert would be).
    pub fn alert(mut self, alert: &str) -> Self {
        self.alerts.push(alert.into());
        self
    }

    /// Creation (and last update) time of the domain record.
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = at;
        self
    }

    /// Creation time in Unix milliseconds.
    pub fn created_ms(self, ms: i64) -> Self {
        let at = DateTime::from_timestamp_millis(ms).expect("a representable time");
        self.created_at(at)
    }

    fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.services
            .first()
            .map(|s| ("service".to_string(), s.clone()))
            .into_iter()
            .collect()
    }

    /// The incident a client sends in `CreateIncident`.
    pub fn proto(self) -> proto::Incident {
        let severity = match self.severity {
            Severity::P0 => proto::Severity::P0,
            Severity::P1 => proto::Severity::P1,
            Severity::P2 => proto::Severity::P2,
            Severity::P3 => proto::Severity::P3,
            Severity::P4 => proto::Severity::P4,
        };
        let labels = self.labels();
        proto::Incident {
            title: self.title,
            severity: severity as i32,
            affected_services: self.services,
            namespace: self.namespace.unwrap_or_default(),
            signals: self
                .alerts
                .into_iter()
                .map(|alert| proto::Signal {
                    fingerprint: format!("fp-{alert}"),
                    alert_name: alert,
                    labels: labels.clone().into_iter().collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// A `CreateIncident` request for it, without a request id.
    pub fn request(self) -> proto::CreateIncidentRequest {
        proto::CreateIncidentRequest {
            incident: Some(self.proto()),
            request_id: String::new(),
        }
    }

    /// The record a store holds: a fresh id, open, version 1.
    pub fn domain(self) -> domain::Incident {
        let label = |s: &str| K8sName::parse(s).expect("a test service is an RFC 1123 label");
        let labels = self.labels();
        domain::Incident {
            id: IncidentId::generate(),
            title: self.title,
            severity: self.severity,
            status: IncidentStatus::Open,
            signals: self
                .alerts
                .into_iter()
                .map(|alert| domain::Signal {
                    fingerprint: format!("fp-{alert}"),
                    alert_name: alert,
                    labels: labels.clone(),
                    annotations: Default::default(),
                    starts_at: None,
                    ends_at: None,
                    status: SignalStatus::Firing,
                    generator_url: String::new(),
                })
                .collect(),
            affected_services: self.services.iter().map(|s| label(s)).collect(),
            namespace: self.namespace.as_deref().map(label),
            created_at: self.created_at,
            updated_at: self.created_at,
            resolved_at: None,
            version: 1,
            status_actor: String::new(),
            status_note: String::new(),
            applied_requests: Default::default(),
        }
    }
}

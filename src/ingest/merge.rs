//! How alerts fold into an incident: deduplication by fingerprint, stale
//! replays, the per-incident bound, and the fields derived from the alerts
//! (severity, affected services, namespace). Pure functions; the ingestor
//! writes their result with a compare-and-set.

use super::grouping::{Policy, namespace_of, title_of};
use crate::domain::incident::limits;
use crate::domain::{Incident, IncidentId, Severity, Signal, SignalStatus};
use chrono::{DateTime, Utc};

/// What folding alerts into an incident did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Whether the incident differs from before.
    pub changed: bool,
    /// New alerts that did not fit ([`limits::SIGNALS`] per incident).
    pub dropped: usize,
}

/// Whether `incoming` is an old notification of an occurrence already seen
/// resolved: same alert, same start, but firing. Alertmanager retries and
/// reorders notifications; such a replay must not revive the alert. A
/// genuinely new occurrence has a new `starts_at`.
fn is_stale(known: &Signal, incoming: &Signal) -> bool {
    known.status == SignalStatus::Resolved
        && incoming.status == SignalStatus::Firing
        && known.starts_at == incoming.starts_at
}

/// Folds `signals` into `incident` in order. A signal whose fingerprint the
/// incident holds replaces it (a repeat changes nothing; a resolution marks
/// it resolved); a new one is added while there is room. Severity only
/// rises (to the most severe firing alert); services and the namespace are
/// taken from the alerts (RFC 1123 values only). Status, version and
/// timestamps are the caller's.
pub fn apply(policy: &Policy, incident: &mut Incident, signals: &[Signal]) -> Applied {
    let before = incident.clone();
    let mut out = Applied::default();
    for s in signals {
        let full = incident.signals.len() >= limits::SIGNALS;
        match incident
            .signals
            .iter_mut()
            .find(|e| e.fingerprint == s.fingerprint)
        {
            Some(known) if is_stale(known, s) || *known == *s => continue,
            Some(known) => *known = s.clone(),
            None if full => {
                out.dropped += 1;
                continue;
            }
            None => incident.signals.push(s.clone()),
        }
        if s.status == SignalStatus::Firing {
            incident.severity = incident.severity.min(policy.severity_of(s));
        }
        if let Some(svc) = policy.service_of(s)
            && incident.affected_services.len() < limits::SERVICES
            && !incident.affected_services.contains(&svc)
        {
            incident.affected_services.push(svc);
        }
        if incident.namespace.is_none() {
            incident.namespace = namespace_of(s);
        }
    }
    // Judged on the result, not the steps: a batch that names one alert
    // twice ends where it ended the first time.
    out.changed = *incident != before;
    out
}

/// Whether every alert of the incident is resolved (and it has any).
pub fn all_resolved(incident: &Incident) -> bool {
    !incident.signals.is_empty()
        && incident
            .signals
            .iter()
            .all(|s| s.status == SignalStatus::Resolved)
}

/// The alerts worth a new incident, given the group's last incident, which
/// is no longer active (or none): everything except occurrences that
/// incident already saw (same fingerprint and start). A replayed webhook
/// about a resolved incident therefore opens nothing.
pub fn fresh(last: Option<&Incident>, signals: &[Signal]) -> Vec<Signal> {
    signals
        .iter()
        .filter(|s| {
            !last.is_some_and(|i| {
                i.signals
                    .iter()
                    .any(|k| k.fingerprint == s.fingerprint && k.starts_at == s.starts_at)
            })
        })
        .cloned()
        .collect()
}

/// Opens an incident for a group's alerts (at least one should fire): titled
/// after the first firing alert, as severe as its most severe firing alert,
/// the first firing alert's service first among the affected services (it
/// is the default remediation target).
pub fn open(
    policy: &Policy,
    id: IncidentId,
    signals: &[Signal],
    now: DateTime<Utc>,
) -> (Incident, Applied) {
    let lead = signals
        .iter()
        .find(|s| s.status == SignalStatus::Firing)
        .or(signals.first());
    let title = lead.map(title_of).unwrap_or_else(|| "Alerts".to_string());
    let mut incident = Incident {
        affected_services: lead
            .and_then(|s| policy.service_of(s))
            .into_iter()
            .collect(),
        namespace: lead.and_then(namespace_of),
        // The least severe; `apply` raises it to the firing alerts'.
        ..Incident::opened(id, title, Severity::P4, now)
    };
    if !signals.iter().any(|s| s.status == SignalStatus::Firing) {
        incident.severity = policy.default_severity;
    }
    let applied = apply(policy, &mut incident, signals);
    (incident, applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(name: &str, fp: &str, status: SignalStatus, sev: &str, svc: &str) -> Signal {
        Signal {
            alert_name: name.into(),
            labels: [
                ("severity".to_string(), sev.to_string()),
                ("service".to_string(), svc.to_string()),
                ("namespace".to_string(), "shop".to_string()),
            ]
            .into(),
            annotations: Default::default(),
            starts_at: chrono::DateTime::from_timestamp(1_700_000_000, 0),
            ends_at: None,
            fingerprint: fp.into(),
            status,
            generator_url: String::new(),
        }
    }

    fn id() -> IncidentId {
        IncidentId::parse("INC-TEST").unwrap()
    }

    #[test]
    fn opening_takes_title_severity_services_from_firing_alerts() {
        let p = Policy::default();
        let sigs = [
            signal("Old", "f0", SignalStatus::Resolved, "critical", "legacy"),
            signal(
                "HighLatency",
                "f1",
                SignalStatus::Firing,
                "warning",
                "checkout",
            ),
            signal(
                "PodCrash",
                "f2",
                SignalStatus::Firing,
                "critical",
                "Bad_Name",
            ),
        ];
        let (i, a) = open(&p, id(), &sigs, Utc::now());
        assert_eq!(i.title, "HighLatency");
        assert_eq!(i.severity, Severity::P1);
        let svcs: Vec<&str> = i.affected_services.iter().map(|s| s.as_str()).collect();
        assert_eq!(svcs, ["checkout", "legacy"]);
        assert_eq!(i.namespace.as_ref().map(|n| n.as_str()), Some("shop"));
        assert_eq!(i.signals.len(), 3);
        assert_eq!(
            a,
            Applied {
                changed: true,
                dropped: 0
            }
        );
    }

    #[test]
    fn repeats_change_nothing_and_resolutions_resolve() {
        let p = Policy::default();
        let a = signal("A", "fa", SignalStatus::Firing, "warning", "checkout");
        let b = signal("B", "fb", SignalStatus::Firing, "warning", "checkout");
        let (mut i, _) = open(&p, id(), &[a.clone(), b.clone()], Utc::now());
        let before = i.clone();
        assert!(!apply(&p, &mut i, &[a.clone(), b.clone()]).changed);
        assert_eq!(i, before);

        let mut ra = a.clone();
        ra.status = SignalStatus::Resolved;
        assert!(apply(&p, &mut i, std::slice::from_ref(&ra)).changed);
        assert!(!all_resolved(&i));
        // The old firing notification of `a` arrives late: ignored.
        assert!(!apply(&p, &mut i, std::slice::from_ref(&a)).changed);
        let mut rb = b.clone();
        rb.status = SignalStatus::Resolved;
        apply(&p, &mut i, &[rb]);
        assert!(all_resolved(&i));
        // A new occurrence of `a` (a new start) fires again.
        let mut a2 = a.clone();
        a2.starts_at = chrono::DateTime::from_timestamp(1_700_000_600, 0);
        assert!(apply(&p, &mut i, &[a2]).changed);
        assert!(!all_resolved(&i));
    }

    #[test]
    fn severity_only_rises_and_signals_are_bounded() {
        let p = Policy::default();
        let (mut i, _) = open(
            &p,
            id(),
            &[signal("A", "f", SignalStatus::Firing, "critical", "x")],
            Utc::now(),
        );
        apply(
            &p,
            &mut i,
            &[signal("B", "g", SignalStatus::Firing, "info", "x")],
        );
        assert_eq!(i.severity, Severity::P1);
        let many: Vec<Signal> = (0..150)
            .map(|n| signal("M", &format!("m{n}"), SignalStatus::Firing, "warning", "x"))
            .collect();
        let a = apply(&p, &mut i, &many);
        assert_eq!(i.signals.len(), limits::SIGNALS);
        assert_eq!(a.dropped, 150 + 2 - limits::SIGNALS);
    }

    #[test]
    fn fresh_skips_occurrences_the_last_incident_saw() {
        let p = Policy::default();
        let a = signal("A", "fa", SignalStatus::Firing, "warning", "x");
        let (mut last, _) = open(&p, id(), std::slice::from_ref(&a), Utc::now());
        let mut ra = a.clone();
        ra.status = SignalStatus::Resolved;
        apply(&p, &mut last, std::slice::from_ref(&ra));
        assert!(fresh(Some(&last), &[a.clone(), ra.clone()]).is_empty());
        let mut a2 = a.clone();
        a2.starts_at = None;
        assert_eq!(fresh(Some(&last), std::slice::from_ref(&a2)).len(), 1);
        assert_eq!(fresh(None, &[a]).len(), 1);
    }
}

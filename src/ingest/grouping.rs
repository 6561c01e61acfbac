//! How alerts map onto incidents: which group an alert belongs to, how
//! severe it is, which service it affects, and what the incident is called.
//! Pure functions of the configured [`Policy`]; no I/O.

use super::settings::IngestConfig;
use crate::domain::incident::limits;
use crate::domain::text;
use crate::domain::{GroupKey, K8sName, Severity, Signal};
use std::collections::BTreeMap;

/// The label that names an alert's incident explicitly, overriding the
/// grouping labels.
pub const INCIDENT_KEY_LABEL: &str = "incident_key";
/// The label whose value maps to a severity.
pub const SEVERITY_LABEL: &str = "severity";
/// The label holding the Kubernetes namespace.
pub const NAMESPACE_LABEL: &str = "namespace";
/// The annotation that titles an incident.
pub const SUMMARY_ANNOTATION: &str = "summary";

/// The grouping and mapping rules in force (from `[ingest]` config).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Labels whose values form the grouping key.
    pub group_by: Vec<String>,
    /// Lower-cased `severity` label value → incident severity.
    pub severities: BTreeMap<String, Severity>,
    /// For a missing or unmapped `severity` label.
    pub default_severity: Severity,
    /// Labels naming the affected service, most preferred first.
    pub service_labels: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from(&IngestConfig::default())
    }
}

impl From<&IngestConfig> for Policy {
    fn from(c: &IngestConfig) -> Self {
        Policy {
            group_by: c.group_by.clone(),
            severities: c.severities(),
            default_severity: c.default_severity,
            service_labels: c.service_labels.clone(),
        }
    }
}

/// The group an alert belongs to: its key, and a readable form for logs
/// and responses (`namespace=shop, service=checkout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: GroupKey,
    pub label: String,
}

impl Policy {
    /// The alert's group: its `incident_key` label when present and
    /// non-empty, else the values of the grouping labels (a missing label
    /// counts as empty). An alert that has none of the grouping labels is
    /// grouped by its name, so unrelated unlabelled alerts do not all land
    /// in one incident.
    pub fn group_of(&self, s: &Signal) -> Group {
        let mut canonical = String::new();
        if let Some(k) = s.labels.get(INCIDENT_KEY_LABEL).filter(|k| !k.is_empty()) {
            canonical.push('k');
            push_framed(&mut canonical, k);
            return Group {
                key: GroupKey::of(&canonical),
                label: format!("{INCIDENT_KEY_LABEL}={}", clip(k, 128)),
            };
        }
        let values: Vec<(&str, &str)> = self
            .group_by
            .iter()
            .map(|l| {
                (
                    l.as_str(),
                    s.labels.get(l).map(String::as_str).unwrap_or(""),
                )
            })
            .collect();
        if values.iter().all(|(_, v)| v.is_empty()) {
            canonical.push('a');
            push_framed(&mut canonical, &s.alert_name);
            return Group {
                key: GroupKey::of(&canonical),
                label: format!("alertname={}", clip(&s.alert_name, 128)),
            };
        }
        canonical.push('l');
        let mut label = String::new();
        for (name, value) in &values {
            push_framed(&mut canonical, name);
            push_framed(&mut canonical, value);
            if !label.is_empty() {
                label.push_str(", ");
            }
            label.push_str(name);
            label.push('=');
            label.push_str(clip(value, 128));
        }
        Group {
            key: GroupKey::of(&canonical),
            label,
        }
    }

    /// Splits a batch into its groups, in order of first appearance, and
    /// gives alerts that came without a fingerprint a derived one (so a
    /// repeat deduplicates).
    pub fn split(&self, signals: Vec<Signal>) -> Vec<(Group, Vec<Signal>)> {
        let mut out: Vec<(Group, Vec<Signal>)> = Vec::new();
        let mut index: std::collections::HashMap<GroupKey, usize> = Default::default();
        for mut s in signals {
            if s.fingerprint.is_empty() {
                s.fingerprint = Self::fingerprint_of(&s);
            }
            let g = self.group_of(&s);
            match index.get(&g.key) {
                Some(&i) => out[i].1.push(s),
                None => {
                    index.insert(g.key.clone(), out.len());
                    out.push((g, vec![s]));
                }
            }
        }
        out
    }

    /// The alert's severity through the mapping (case-insensitive).
    pub fn severity_of(&self, s: &Signal) -> Severity {
        s.labels
            .get(SEVERITY_LABEL)
            .and_then(|v| self.severities.get(&v.trim().to_lowercase()))
            .copied()
            .unwrap_or(self.default_severity)
    }

    /// The service the alert affects: the first service label, in order of
    /// preference, whose value is an RFC 1123 label. Values that are not
    /// stay in the alert's labels but never become a remediation target.
    pub fn service_of(&self, s: &Signal) -> Option<K8sName> {
        self.service_labels
            .iter()
            .filter_map(|l| s.labels.get(l))
            .find_map(|v| K8sName::parse(v).ok())
    }

    /// A fingerprint for an alert that came without one (gRPC callers may
    /// omit it): a digest of its name and labels, the way Alertmanager
    /// derives its own, so repeats of the alert deduplicate.
    pub fn fingerprint_of(s: &Signal) -> String {
        let mut canonical = String::from("f");
        push_framed(&mut canonical, &s.alert_name);
        for (k, v) in &s.labels {
            push_framed(&mut canonical, k);
            push_framed(&mut canonical, v);
        }
        let hex = sha1_smol::Sha1::from(canonical.as_bytes())
            .digest()
            .to_string();
        hex[..16].to_string()
    }
}

/// The namespace the alert names, when it is an RFC 1123 label.
pub fn namespace_of(s: &Signal) -> Option<K8sName> {
    s.labels
        .get(NAMESPACE_LABEL)
        .and_then(|v| K8sName::parse(v).ok())
}

/// An incident title for the alert: its `summary` annotation, else its
/// name; bounded to the title limit. A title is one line
/// (`domain::text`), so the newlines and tabs an annotation may keep
/// become spaces.
pub fn title_of(s: &Signal) -> String {
    let summary = s
        .annotations
        .get(SUMMARY_ANNOTATION)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty());
    let line: String = summary
        .unwrap_or(&s.alert_name)
        .chars()
        .map(|c| if text::is_unsafe(c) { ' ' } else { c })
        .collect();
    clip(line.trim(), limits::TITLE).to_string()
}

/// Appends `s` with its length in front, so that no two different lists
/// of strings encode the same (`["a,b"]` vs `["a", "b"]`).
fn push_framed(out: &mut String, s: &str) {
    out.push_str(&s.len().to_string());
    out.push(':');
    out.push_str(s);
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(name: &str, labels: &[(&str, &str)]) -> Signal {
        Signal {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..crate::domain::incident::fixture::signal(name)
        }
    }

    #[test]
    fn groups_by_incident_key_then_labels_then_name() {
        let p = Policy::default();
        let a = signal("A", &[("namespace", "shop"), ("service", "checkout")]);
        let b = signal(
            "B",
            &[("namespace", "shop"), ("service", "checkout"), ("pod", "x")],
        );
        let c = signal("C", &[("namespace", "shop"), ("service", "cart")]);
        assert_eq!(p.group_of(&a), p.group_of(&b));
        assert_ne!(p.group_of(&a).key, p.group_of(&c).key);
        assert_eq!(p.group_of(&a).label, "namespace=shop, service=checkout");
        let k1 = signal("A", &[("incident_key", "db-outage"), ("service", "x")]);
        let k2 = signal("B", &[("incident_key", "db-outage"), ("service", "y")]);
        assert_eq!(p.group_of(&k1), p.group_of(&k2));
        assert_ne!(p.group_of(&k1).key, p.group_of(&a).key);
        let bare1 = signal("Disk", &[]);
        let bare2 = signal("Cpu", &[]);
        assert_ne!(p.group_of(&bare1).key, p.group_of(&bare2).key);
        // Framing keeps values from bleeding into each other.
        let x = signal("A", &[("namespace", "a"), ("service", "b")]);
        let y = signal("A", &[("namespace", "a1:b"), ("service", "")]);
        assert_ne!(p.group_of(&x).key, p.group_of(&y).key);
    }

    #[test]
    fn severity_and_services_follow_the_configuration() {
        let mut cfg = IngestConfig::default();
        cfg.severity_map.insert("Page".into(), Severity::P0);
        let p = Policy::from(&cfg);
        let sev = |v: &str| p.severity_of(&signal("A", &[("severity", v)]));
        assert_eq!(sev("critical"), Severity::P1);
        assert_eq!(sev("CRITICAL"), Severity::P1);
        assert_eq!(sev("warning"), Severity::P3);
        assert_eq!(sev("page"), Severity::P0);
        assert_eq!(sev("whatever"), Severity::P3);
        assert_eq!(p.severity_of(&signal("A", &[])), Severity::P3);

        let s = signal(
            "A",
            &[
                ("service", "Checkout_API"),
                ("app", "checkout"),
                ("job", "kube"),
            ],
        );
        assert_eq!(
            p.service_of(&s).map(|n| n.to_string()),
            Some("checkout".into())
        );
        assert_eq!(p.service_of(&signal("A", &[("service", "rm -rf /")])), None);
    }

    #[test]
    fn titles_and_fingerprints() {
        let mut s = signal("PodCrashLooping", &[("pod", "a")]);
        assert_eq!(title_of(&s), "PodCrashLooping");
        s.annotations.insert("summary".into(), "é".repeat(200));
        assert!(title_of(&s).len() <= limits::TITLE);
        s.annotations
            .insert("summary".into(), "two\nlines\tand\u{1b}".into());
        assert_eq!(title_of(&s), "two lines and");
        let f = Policy::fingerprint_of(&s);
        assert_eq!(f.len(), 16);
        assert_eq!(f, Policy::fingerprint_of(&s));
        s.labels.insert("pod".into(), "b".into());
        assert_ne!(f, Policy::fingerprint_of(&s));
    }
}

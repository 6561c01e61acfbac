//! The Prometheus Alertmanager webhook payload, version 4, exactly as
//! Alertmanager sends it (`webhook_configs`), and its parsing into domain
//! [`Signal`]s.
//!
//! Parsing is strict where verdict depends on a field (version, statuses,
//! `alertname`, timestamps, bounds) and reports every problem at once with
//! its JSON path; fields verdict only records are typed but free. Every
//! field is optional at the serde level so that a missing one becomes a
//! violation with a path, not serde's first error.

use super::grouping::clip;
use crate::domain::incident::limits;
use crate::domain::text;
use crate::domain::timestamp::{self, AlertTime};
use crate::domain::{Signal, SignalStatus, Violations};
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The only payload version verdict understands.
pub const VERSION: &str = "4";
/// Most alerts one webhook may carry (Alertmanager's `max_alerts` keeps
/// real payloads far below it).
pub const MAX_ALERTS: usize = 1000;

/// One webhook notification: one Alertmanager group's alerts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// Payload format version: "4".
    pub version: Option<String>,
    /// Alertmanager's key of the group (opaque).
    pub group_key: Option<String>,
    /// How many alerts Alertmanager left out (its `max_alerts`).
    pub truncated_alerts: Option<u64>,
    /// `firing` while any alert of the group fires, else `resolved`.
    pub status: Option<String>,
    /// The receiver's name in Alertmanager's configuration.
    pub receiver: Option<String>,
    /// The labels Alertmanager grouped by.
    pub group_labels: Option<BTreeMap<String, String>>,
    /// Labels every alert of the notification shares.
    pub common_labels: Option<BTreeMap<String, String>>,
    /// Annotations every alert of the notification shares.
    pub common_annotations: Option<BTreeMap<String, String>>,
    /// Alertmanager's own URL.
    #[serde(rename = "externalURL")]
    pub external_url: Option<String>,
    /// The alerts.
    pub alerts: Option<Vec<Alert>>,
}

/// One alert of a notification.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: Option<String>,
    /// Identifying labels; `alertname` is required.
    pub labels: Option<BTreeMap<String, String>>,
    /// Descriptive annotations (`summary`, `description`, `runbook_url`...).
    pub annotations: Option<BTreeMap<String, String>>,
    /// RFC 3339; when the alert started firing.
    pub starts_at: Option<String>,
    /// RFC 3339; when it stopped (`0001-01-01T00:00:00Z` while firing).
    pub ends_at: Option<String>,
    /// The link back to the alert's source (Prometheus graph).
    #[serde(rename = "generatorURL")]
    pub generator_url: Option<String>,
    /// Alertmanager's identity of the alert (a hash of its labels).
    pub fingerprint: Option<String>,
}

/// A validated notification: its alerts as signals, and what verdict
/// records about where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub signals: Vec<Signal>,
    pub receiver: String,
    pub group_key: String,
    pub truncated_alerts: u64,
}

/// Parses a webhook body. Malformed JSON and wrong types are reported on
/// the field where they occur (`body` for the document itself); every
/// other problem is collected so the sender learns them all at once.
/// Alert times are checked against the window around `now`.
pub fn parse(body: &[u8], now: DateTime<Utc>) -> Result<Notification, Violations> {
    let mut v = Violations::new();
    let doc: serde_json::Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) => {
            v.add("body", format!("malformed JSON: {e}"));
            return Err(v);
        }
    };
    // serde would also read a struct from a JSON array (fields by
    // position); the payload and its alerts are objects, nothing else.
    if !doc.is_object() {
        v.add("body", "must be a JSON object");
        return Err(v);
    }
    if let Some(alerts) = doc.get("alerts").and_then(|a| a.as_array()) {
        for (i, a) in alerts.iter().enumerate().take(MAX_ALERTS + 1) {
            if !a.is_object() {
                v.add(format!("alerts[{i}]"), "must be a JSON object");
            }
        }
        v.clone().into_result()?;
    }
    let payload: Payload = match serde_path_to_error::deserialize(doc) {
        Ok(p) => p,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                "body".to_string()
            } else {
                path
            };
            v.add(field, format!("wrong type: {}", e.into_inner()));
            return Err(v);
        }
    };
    validate(payload, v, now)
}

/// Checks a decoded payload and converts its alerts.
pub fn validate(
    p: Payload,
    mut v: Violations,
    now: DateTime<Utc>,
) -> Result<Notification, Violations> {
    match p.version.as_deref() {
        None => v.add("version", "is required (\"4\")"),
        Some(VERSION) => {}
        Some(other) => v.add(
            "version",
            format!("must be \"4\" (got {:?})", clip(other, 32)),
        ),
    }
    match p.status.as_deref() {
        None => v.add("status", "is required: firing or resolved"),
        Some(s) => {
            status(&mut v, "status", s);
        }
    }
    let receiver = p.receiver.unwrap_or_default();
    v.max_len("receiver", &receiver, 1024);
    let group_key = p.group_key.unwrap_or_default();
    v.max_len("groupKey", &group_key, 8192);
    if let Some(url) = &p.external_url {
        v.max_len("externalURL", url, limits::URL);
    }
    let alerts = match p.alerts {
        None => {
            v.add("alerts", "is required");
            Vec::new()
        }
        Some(a) if a.is_empty() => {
            v.add("alerts", "must hold at least one alert");
            a
        }
        Some(a) if a.len() > MAX_ALERTS => {
            v.add(
                "alerts",
                format!("at most {MAX_ALERTS} alerts (got {})", a.len()),
            );
            Vec::new()
        }
        Some(a) => a,
    };
    let signals: Vec<Signal> = alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| alert(&mut v, &format!("alerts[{i}]"), a, now))
        .collect();
    v.into_result()?;
    Ok(Notification {
        signals,
        receiver,
        group_key,
        truncated_alerts: p.truncated_alerts.unwrap_or(0),
    })
}

fn status(v: &mut Violations, field: &str, s: &str) -> SignalStatus {
    match s {
        "firing" => SignalStatus::Firing,
        "resolved" => SignalStatus::Resolved,
        other => {
            v.add(
                field,
                format!("must be firing or resolved (got {:?})", clip(other, 32)),
            );
            SignalStatus::Firing
        }
    }
}

/// One alert as a signal. Names are lines and label and annotation values
/// prose, as over gRPC ([`text`]).
fn alert(v: &mut Violations, field: &str, a: Alert, now: DateTime<Utc>) -> Signal {
    let status = match a.status.as_deref() {
        None => {
            v.add(format!("{field}.status"), "is required: firing or resolved");
            SignalStatus::Firing
        }
        Some(s) => status(v, &format!("{field}.status"), s),
    };
    let labels = match a.labels {
        None => {
            v.add(format!("{field}.labels"), "is required (with alertname)");
            BTreeMap::new()
        }
        Some(l) => l,
    };
    let alert_name = labels.get("alertname").cloned().unwrap_or_default();
    text::line(v, &format!("{field}.labels.alertname"), &alert_name);
    let mut labels = labels;
    text::map(v, &format!("{field}.labels"), &mut labels);
    if alert_name.trim().is_empty() && !v.has(&format!("{field}.labels")) {
        v.add(format!("{field}.labels.alertname"), "is required");
    }
    v.max_len(
        &format!("{field}.labels.alertname"),
        &alert_name,
        limits::ALERT_NAME,
    );
    bounded_map(v, &format!("{field}.labels"), &labels, true);
    let mut annotations = a.annotations.unwrap_or_default();
    text::map(v, &format!("{field}.annotations"), &mut annotations);
    bounded_map(v, &format!("{field}.annotations"), &annotations, false);
    // Long descriptions are common and harmless: they are cut, not refused.
    for value in annotations.values_mut() {
        if value.len() > limits::LABEL_VALUE {
            let cut = clip(value, limits::LABEL_VALUE - '…'.len_utf8()).len();
            value.truncate(cut);
            value.push('…');
        }
    }
    let starts_at = time(
        v,
        &format!("{field}.startsAt"),
        a.starts_at.as_deref(),
        AlertTime::StartsAt,
        now,
    );
    let ends_at = time(
        v,
        &format!("{field}.endsAt"),
        a.ends_at.as_deref(),
        AlertTime::EndsAt,
        now,
    );
    let generator_url = a.generator_url.unwrap_or_default();
    text::line(v, &format!("{field}.generatorURL"), &generator_url);
    v.max_len(
        &format!("{field}.generatorURL"),
        &generator_url,
        limits::URL,
    );
    let fingerprint = a.fingerprint.unwrap_or_default();
    text::line(v, &format!("{field}.fingerprint"), &fingerprint);
    v.max_len(
        &format!("{field}.fingerprint"),
        &fingerprint,
        limits::FINGERPRINT,
    );
    Signal {
        alert_name,
        labels,
        annotations,
        starts_at,
        ends_at,
        fingerprint,
        status,
        generator_url,
    }
}

/// Bounds a label or annotation map; label values must fit, annotation
/// values are cut by the caller.
fn bounded_map(v: &mut Violations, field: &str, m: &BTreeMap<String, String>, values: bool) {
    if m.len() > limits::LABELS {
        v.add(
            field,
            format!("at most {} entries (got {})", limits::LABELS, m.len()),
        );
    }
    for (k, val) in m {
        if k.is_empty() {
            v.add(field, "keys must not be empty");
        }
        if k.len() > limits::LABEL_KEY {
            v.add(
                format!("{field}.{}", clip(k, 32)),
                format!("key longer than {} bytes", limits::LABEL_KEY),
            );
        }
        if values && val.len() > limits::LABEL_VALUE {
            v.add(
                format!("{field}.{}", clip(k, 32)),
                format!("value longer than {} bytes", limits::LABEL_VALUE),
            );
        }
    }
}

/// An RFC 3339 time in the alert window around `now`
/// ([`timestamp::alert_time`]); Alertmanager's zero time (year 1) means
/// "unset".
fn time(
    v: &mut Violations,
    field: &str,
    raw: Option<&str>,
    which: AlertTime,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let raw = raw.filter(|r| !r.is_empty())?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) if t.year() == 1 => None,
        Ok(t) => v.check(
            field,
            timestamp::alert_time(t.with_timezone(&Utc), which, now),
        ),
        Err(e) => {
            v.add(
                field,
                format!("is not an RFC 3339 time ({e}): {:?}", clip(raw, 64)),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A notification as Alertmanager 0.27 sends it.
    pub(crate) const SAMPLE: &str = r#"{
      "receiver": "verdict",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "PodCrashLooping", "namespace": "shop", "service": "checkout", "severity": "critical", "pod": "checkout-7d9f-abcde"},
          "annotations": {"summary": "Checkout pods are crash-looping", "description": "Pod restarted 5 times in 10 minutes"},
          "startsAt": "2024-05-01T12:00:00.123456789Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
          "fingerprint": "c2a5a3b1d4e5f607"
        }
      ],
      "groupLabels": {"namespace": "shop", "service": "checkout"},
      "commonLabels": {"alertname": "PodCrashLooping", "namespace": "shop"},
      "commonAnnotations": {"summary": "Checkout pods are crash-looping"},
      "externalURL": "http://alertmanager:9093",
      "version": "4",
      "groupKey": "{}:{namespace=\"shop\", service=\"checkout\"}",
      "truncatedAlerts": 0
    }"#;

    /// Parses as the webhook does, now.
    fn parse(body: &[u8]) -> Result<Notification, Violations> {
        super::parse(body, Utc::now())
    }

    fn fields(r: Result<Notification, Violations>) -> Vec<String> {
        r.expect_err("refused")
            .into_iter()
            .map(|f| f.field)
            .collect()
    }

    #[test]
    fn parses_what_alertmanager_sends() {
        let n = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(n.receiver, "verdict");
        assert_eq!(n.signals.len(), 1);
        let s = &n.signals[0];
        assert_eq!(s.alert_name, "PodCrashLooping");
        assert_eq!(s.status, SignalStatus::Firing);
        assert_eq!(s.ends_at, None, "the zero time means unset");
        assert_eq!(
            s.starts_at.map(|t| t.timestamp_subsec_nanos()),
            Some(123_456_789)
        );
        assert_eq!(s.fingerprint, "c2a5a3b1d4e5f607");
        assert_eq!(
            s.labels.get("service").map(String::as_str),
            Some("checkout")
        );
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        assert_eq!(fields(parse(b"{not json")), ["body"]);
        assert_eq!(fields(parse(b"[]")), ["body"]);
        assert_eq!(fields(parse(br#"["4", "x"]"#)), ["body"]);
        assert_eq!(
            fields(parse(br#"{"version": "4", "status": "firing", "alerts": [{"status": "firing"}, ["firing"]]}"#)),
            ["alerts[1]"]
        );
        assert_eq!(fields(parse(b"")), ["body"]);
        assert_eq!(
            fields(parse(br#"{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": 5}]}"#)),
            ["alerts[0].labels"]
        );
        assert_eq!(fields(parse(b"{}")), ["version", "status", "alerts"]);
        let bad = SAMPLE
            .replace(r#""version": "4""#, r#""version": "3""#)
            .replace(
                r#""status": "firing",
          "labels""#,
                r#""status": "burning",
          "labels""#,
            )
            .replace(
                r#""alertname": "PodCrashLooping", "namespace""#,
                r#""namespace""#,
            )
            .replace("2024-05-01T12:00:00.123456789Z", "yesterday");
        assert_eq!(
            fields(parse(bad.as_bytes())),
            [
                "version",
                "alerts[0].status",
                "alerts[0].labels.alertname",
                "alerts[0].startsAt"
            ]
        );
    }

    #[test]
    fn bounds_are_enforced_and_long_annotations_cut() {
        let long = "x".repeat(5000);
        let body = SAMPLE.replace("Pod restarted 5 times in 10 minutes", &long);
        let n = parse(body.as_bytes()).unwrap();
        let d = &n.signals[0].annotations["description"];
        assert!(d.len() <= limits::LABEL_VALUE && d.ends_with('…'));
        let body = SAMPLE.replace("checkout-7d9f-abcde", &long);
        assert_eq!(fields(parse(body.as_bytes())), ["alerts[0].labels.pod"]);
        let mut p: Payload = serde_json::from_str(SAMPLE).unwrap();
        let one = p.alerts.as_ref().unwrap()[0].clone();
        p.alerts = Some(vec![one; MAX_ALERTS + 1]);
        assert_eq!(
            fields(validate(p, Violations::new(), Utc::now())),
            ["alerts"]
        );
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z0-9 :\\-\\.]{0,12}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::from("4")),
            Just(serde_json::Value::from("firing")),
            Just(serde_json::Value::from("resolved")),
            Just(serde_json::Value::from("0001-01-01T00:00:00Z")),
            Just(serde_json::Value::from("2024-05-01T12:00:00Z")),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let keys = prop_oneof![
                Just("version".to_string()),
                Just("status".to_string()),
                Just("alerts".to_string()),
                Just("labels".to_string()),
                Just("annotations".to_string()),
                Just("alertname".to_string()),
                Just("startsAt".to_string()),
                Just("endsAt".to_string()),
                Just("fingerprint".to_string()),
                Just("service".to_string()),
                Just("namespace".to_string()),
                Just("severity".to_string()),
                Just("incident_key".to_string()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(keys, inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Well-formed payloads with random contents: labels from small pools
    /// (so alerts collide on groups and fingerprints), invalid service
    /// names, odd severities, both statuses, repeated fingerprints.
    fn valid_payload() -> impl Strategy<Value = serde_json::Value> {
        let label = (
            prop::sample::select(vec![
                "namespace",
                "service",
                "app",
                "job",
                "severity",
                "incident_key",
                "pod",
                "app.kubernetes.io/name",
            ]),
            prop::sample::select(vec![
                "shop",
                "checkout",
                "Checkout_API",
                "rm -rf /",
                "critical",
                "warning",
                "page",
                "",
                "é",
                "a-b",
                "x",
            ]),
        );
        let alert = (
            prop::sample::select(vec!["firing", "resolved"]),
            "[A-Z][a-z]{0,8}",
            prop::collection::vec(label, 0..8),
            prop::option::of("[0-9a-f]{1,4}"),
            prop::sample::select(vec![
                "2024-05-01T12:00:00Z",
                "2024-05-01T12:05:00.5+02:00",
                "0001-01-01T00:00:00Z",
            ]),
            prop::option::of(".{0,40}"),
        )
            .prop_map(|(status, name, labels, fp, start, summary)| {
                let mut l: serde_json::Map<String, serde_json::Value> = labels
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
                    .collect();
                l.insert("alertname".into(), name.into());
                let mut a = serde_json::json!({
                    "status": status,
                    "labels": l,
                    "annotations": {},
                    "startsAt": start,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus/graph",
                });
                if let Some(fp) = fp {
                    a["fingerprint"] = fp.into();
                }
                if let Some(s) = summary {
                    a["annotations"]["summary"] = s.into();
                }
                a
            });
        prop::collection::vec(alert, 1..40).prop_map(|alerts| {
            serde_json::json!({
                "version": "4", "status": "firing", "receiver": "verdict",
                "groupKey": "{}:{}", "truncatedAlerts": 0, "groupLabels": {},
                "commonLabels": {}, "commonAnnotations": {},
                "externalURL": "http://alertmanager:9093", "alerts": alerts,
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Every well-formed payload is accepted, and grouping and folding
        /// keep their invariants: every alert lands in exactly one group,
        /// bounds hold, only RFC 1123 names become services, and folding
        /// the same alerts again changes nothing (a replayed webhook).
        #[test]
        fn well_formed_payloads_group_within_bounds(v in valid_payload()) {
            let body = serde_json::to_vec(&v).unwrap();
            let n = parse(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let policy = super::super::grouping::Policy::default();
            let total = n.signals.len();
            let groups = policy.split(n.signals);
            prop_assert_eq!(groups.iter().map(|(_, s)| s.len()).sum::<usize>(), total);
            for (g, signals) in groups {
                prop_assert!(signals.iter().all(|s| policy.group_of(s) == g));
                let (mut i, _) = super::super::merge::open(&policy, g.key.incident_id_after(None), &signals, Utc::now());
                let before = i.clone();
                prop_assert!(!super::super::merge::apply(&policy, &mut i, &signals).changed);
                prop_assert_eq!(&i, &before);
                for svc in &i.affected_services {
                    prop_assert!(crate::domain::K8sName::parse(svc.as_str()).is_ok());
                }
                prop_assert!(i.signals.len() <= limits::SIGNALS);
            }
        }

        /// Any bytes at all: a result, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        /// JSON shaped like payloads: a result, never a panic; and whatever
        /// is accepted groups and folds into incidents within bounds.
        #[test]
        fn payload_like_json_parses_and_groups_within_bounds(v in json_value()) {
            let body = serde_json::to_vec(&v).unwrap();
            if let Ok(n) = parse(&body) {
                let policy = super::super::grouping::Policy::default();
                let total = n.signals.len();
                let groups = policy.split(n.signals);
                prop_assert_eq!(groups.iter().map(|(_, s)| s.len()).sum::<usize>(), total);
                for (g, signals) in groups {
                    let id = g.key.incident_id_after(None);
                    let (mut i, _) = super::super::merge::open(&policy, id, &signals, Utc::now());
                    let before = i.clone();
                    let again = super::super::merge::apply(&policy, &mut i, &signals);
                    prop_assert!(!again.changed, "a replay changes nothing");
                    prop_assert_eq!(&i, &before);
                    prop_assert!(i.signals.len() <= limits::SIGNALS);
                    prop_assert!(i.affected_services.len() <= limits::SERVICES);
                    prop_assert!(i.title.len() <= limits::TITLE);
                    prop_assert!(signals.iter().all(|s| !s.fingerprint.is_empty()));
                }
            }
        }
    }
}

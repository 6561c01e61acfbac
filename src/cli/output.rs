//! How the CLI prints: canonical proto3 JSON (`--json`, for scripts) or
//! compact aligned text (for people). Everything is rendered into a `String`
//! first and written once, so a closed pipe (`verdict ... | head`) ends the
//! command quietly instead of panicking inside `println!`.

use crate::client::escape::{Style, escape};
use crate::proto as pb;
use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use prost_reflect::{DescriptorPool, DynamicMessage};
use std::io::Write;

/// A response message the CLI prints, with its fully qualified proto name
/// so `--json` can find its descriptor. Implemented only for the messages
/// the CLI prints, so a name cannot be mistyped at a call site.
pub(crate) trait ProtoMessage: prost::Message {
    /// The message's full name, e.g. `verdict.v1.GetDecisionResponse`.
    const FULL_NAME: &'static str;
}

macro_rules! proto_messages {
    ($($ty:ident),* $(,)?) => {$(
        impl ProtoMessage for pb::$ty {
            const FULL_NAME: &'static str = concat!("verdict.v1.", stringify!($ty));
        }
    )*};
}

proto_messages!(
    CreateIncidentResponse,
    GetIncidentResponse,
    ListIncidentsResponse,
    UpdateIncidentStatusResponse,
    GetOrCreateDecisionResponse,
    GetDecisionResponse,
    ListDecisionsResponse,
    ApproveDecisionResponse,
    RejectDecisionResponse,
    CompleteDecisionResponse,
    WatchDecisionResponse,
    WatchDecisionsResponse,
    GetIncidentSummaryResponse,
    GetResolutionStatsResponse,
    GetAiPerformanceResponse,
    GetAffectedServicesResponse,
);

/// `msg` as a reflective message, for canonical proto3 JSON.
fn dynamic<M: ProtoMessage>(msg: &M) -> anyhow::Result<DynamicMessage> {
    let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
        .context("the embedded descriptor set is invalid")?;
    let desc = pool
        .get_message_by_name(M::FULL_NAME)
        .with_context(|| format!("{} is not in the embedded descriptor set", M::FULL_NAME))?;
    DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .with_context(|| format!("cannot re-decode {}", M::FULL_NAME))
}

/// Renders `msg` as canonical proto3 JSON (lowerCamelCase names, enums by
/// name, 64-bit integers as strings, default values omitted), pretty-printed.
pub(crate) fn json<M: ProtoMessage>(msg: &M) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(&dynamic(msg)?)
        .with_context(|| format!("cannot render {} as JSON", M::FULL_NAME))?;
    text.push('\n');
    Ok(escape(&text, Style::Json).into_owned())
}

/// Renders `msg` as canonical proto3 JSON on one line (for streams: one
/// JSON document per line).
pub(crate) fn json_line<M: ProtoMessage>(msg: &M) -> anyhow::Result<String> {
    let mut text = serde_json::to_string(&dynamic(msg)?)
        .with_context(|| format!("cannot render {} as JSON", M::FULL_NAME))?;
    text.push('\n');
    Ok(escape(&text, Style::Json).into_owned())
}

/// Prints `msg` as JSON when `json` is set, else as `human(msg)`.
pub(crate) fn print<M: ProtoMessage>(
    msg: &M,
    json_output: bool,
    human: impl FnOnce(&M) -> String,
) -> anyhow::Result<()> {
    let text = if json_output { json(msg)? } else { human(msg) };
    write_stdout(&text)
}

/// Writes `text` to stdout, escaped ([`escape`]: nothing the server sent
/// reaches the terminal raw); a closed pipe is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let text = escape(text, Style::Terminal);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// `key  value` lines with the values aligned. Empty values are skipped,
/// so optional fields simply do not appear; continuation lines of a
/// multi-line value are indented to the value column.
#[derive(Default)]
pub(crate) struct Fields {
    rows: Vec<(String, String)>,
}

impl Fields {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a row unless `value` is empty.
    pub(crate) fn add(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if !value.trim().is_empty() {
            self.rows.push((key.to_owned(), value));
        }
        self
    }

    /// The rows, aligned, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.rows {
            let mut lines = value.lines();
            let first = lines.next().unwrap_or_default();
            out.push_str(&format!("{key:<width$}  {first}\n"));
            for line in lines {
                out.push_str(&format!("{:width$}  {line}\n", ""));
            }
        }
        out
    }
}

/// Shortens `s` to at most `max` characters, marking the cut with `…`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A protobuf timestamp as RFC 3339 in UTC to the second; empty when unset
/// or out of range.
pub(crate) fn time(ts: Option<&prost_types::Timestamp>) -> String {
    to_utc(ts)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Like [`time`], followed by how far away it is: `(in 59m 58s)` or
/// `(3m ago)`.
pub(crate) fn time_relative(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = to_utc(ts) else {
        return String::new();
    };
    let abs = t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let delta = t.signed_duration_since(Utc::now()).num_seconds();
    let span = humantime::format_duration(std::time::Duration::from_secs(delta.unsigned_abs()));
    if delta >= 0 {
        format!("{abs} (in {span})")
    } else {
        format!("{abs} ({span} ago)")
    }
}

fn to_utc(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

/// A protobuf duration for people: `1.234s`, `87ms`, `26µs`; empty when
/// unset or zero.
pub(crate) fn duration(d: Option<&prost_types::Duration>) -> String {
    match d.and_then(|d| std::time::Duration::try_from(*d).ok()) {
        Some(d) if d.as_secs() > 0 => format!("{:.3}s", d.as_secs_f64()),
        Some(d) if d.as_millis() > 0 => format!("{}ms", d.as_millis()),
        Some(d) if !d.is_zero() => format!("{}µs", d.as_micros()),
        _ => String::new(),
    }
}

/// A protobuf duration that may span seconds to days, for tables: `850ms`,
/// `12.3s`, `4m 05s`, `3h 12m`, `2d 07h`; `-` when unset or zero.
pub(crate) fn span(d: Option<&prost_types::Duration>) -> String {
    let Some(d) = d.and_then(|d| std::time::Duration::try_from(*d).ok()) else {
        return "-".to_owned();
    };
    let s = d.as_secs();
    match s {
        _ if d.is_zero() => "-".to_owned(),
        0 if d.as_millis() == 0 => format!("{}µs", d.as_micros()),
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3_600 => format!("{}m {:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// An enum value's proto name without its type prefix (`SEVERITY_P2` →
/// `P2`); the bare number for a value this CLI does not know (a newer
/// server).
fn label(name: Result<&'static str, prost::UnknownEnumValue>, prefix: &str, raw: i32) -> String {
    match name {
        Ok(n) => n.strip_prefix(prefix).unwrap_or(n).to_owned(),
        Err(_) => raw.to_string(),
    }
}

pub(crate) fn severity(v: i32) -> String {
    label(
        pb::Severity::try_from(v).map(|e| e.as_str_name()),
        "SEVERITY_",
        v,
    )
}

pub(crate) fn incident_status(v: i32) -> String {
    label(
        pb::IncidentStatus::try_from(v).map(|e| e.as_str_name()),
        "INCIDENT_STATUS_",
        v,
    )
}

pub(crate) fn signal_status(v: i32) -> String {
    label(
        pb::SignalStatus::try_from(v).map(|e| e.as_str_name()),
        "SIGNAL_STATUS_",
        v,
    )
}

pub(crate) fn decision_state(v: i32) -> String {
    label(
        pb::DecisionState::try_from(v).map(|e| e.as_str_name()),
        "DECISION_STATE_",
        v,
    )
}

pub(crate) fn decision_mode(v: i32) -> String {
    label(
        pb::DecisionMode::try_from(v).map(|e| e.as_str_name()),
        "DECISION_MODE_",
        v,
    )
}

pub(crate) fn proposal_source(v: i32) -> String {
    label(
        pb::ProposalSource::try_from(v).map(|e| e.as_str_name()),
        "PROPOSAL_SOURCE_",
        v,
    )
}

pub(crate) fn fallback_reason(v: i32) -> String {
    label(
        pb::FallbackReason::try_from(v).map(|e| e.as_str_name()),
        "FALLBACK_REASON_",
        v,
    )
}

pub(crate) fn risk(v: i32) -> String {
    label(
        pb::RiskLevel::try_from(v).map(|e| e.as_str_name()),
        "RISK_LEVEL_",
        v,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_canonical_proto3() {
        let msg = pb::GetDecisionResponse {
            decision: Some(pb::Decision {
                token: "DEC-0123456789AB".into(),
                incident_id: "INC-1".into(),
                state: pb::DecisionState::Ready as i32,
                version: 3,
                ..Default::default()
            }),
        };
        let text = json(&msg).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["decision"]["incidentId"], "INC-1");
        assert_eq!(v["decision"]["state"], "DECISION_STATE_READY");
        assert_eq!(v["decision"]["version"], "3", "uint64 is a string");
        assert!(v["decision"].get("error").is_none(), "defaults omitted");
    }

    #[test]
    fn every_printed_message_is_in_the_descriptor_set() {
        let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        for name in [
            <pb::CreateIncidentResponse as ProtoMessage>::FULL_NAME,
            <pb::GetIncidentResponse as ProtoMessage>::FULL_NAME,
            <pb::ListIncidentsResponse as ProtoMessage>::FULL_NAME,
            <pb::UpdateIncidentStatusResponse as ProtoMessage>::FULL_NAME,
            <pb::GetOrCreateDecisionResponse as ProtoMessage>::FULL_NAME,
            <pb::GetDecisionResponse as ProtoMessage>::FULL_NAME,
            <pb::ListDecisionsResponse as ProtoMessage>::FULL_NAME,
            <pb::ApproveDecisionResponse as ProtoMessage>::FULL_NAME,
            <pb::RejectDecisionResponse as ProtoMessage>::FULL_NAME,
            <pb::CompleteDecisionResponse as ProtoMessage>::FULL_NAME,
            <pb::GetIncidentSummaryResponse as ProtoMessage>::FULL_NAME,
            <pb::GetResolutionStatsResponse as ProtoMessage>::FULL_NAME,
            <pb::GetAiPerformanceResponse as ProtoMessage>::FULL_NAME,
            <pb::GetAffectedServicesResponse as ProtoMessage>::FULL_NAME,
        ] {
            assert!(pool.get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn json_output_escapes_hidden_characters_but_keeps_their_meaning() {
        let msg = pb::GetIncidentResponse {
            incident: Some(pb::Incident {
                title: "pay\u{202E}gnp.exe\u{85}".into(),
                ..Default::default()
            }),
        };
        for text in [json(&msg).unwrap(), json_line(&msg).unwrap()] {
            assert!(text.contains("pay\\u202egnp.exe\\u0085"), "{text}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back["incident"]["title"], "pay\u{202E}gnp.exe\u{85}");
        }
    }

    #[test]
    fn fields_align_and_skip_empty_values() {
        let mut f = Fields::new();
        f.add("id", "INC-1")
            .add("note", "")
            .add("reasoning", "a\nb");
        assert_eq!(f.render(), "id         INC-1\nreasoning  a\n           b\n");
    }

    #[test]
    fn enum_labels_strip_the_prefix() {
        assert_eq!(severity(pb::Severity::P2 as i32), "P2");
        assert_eq!(decision_state(pb::DecisionState::Ready as i32), "READY");
        assert_eq!(risk(99), "99");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        let d = |secs, nanos| {
            duration(Some(&prost_types::Duration {
                seconds: secs,
                nanos,
            }))
        };
        assert_eq!(d(1, 234_000_000), "1.234s");
        assert_eq!(d(0, 87_000_000), "87ms");
        assert_eq!(d(0, 26_480), "26µs");
        assert_eq!(d(0, 0), "");
    }

    #[test]
    fn spans_read_at_every_scale() {
        let d = |seconds, nanos| span(Some(&prost_types::Duration { seconds, nanos }));
        assert_eq!(d(0, 0), "-");
        assert_eq!(d(0, 850_000_000), "850ms");
        assert_eq!(d(12, 340_000_000), "12.3s");
        assert_eq!(d(245, 0), "4m 05s");
        assert_eq!(d(11_520, 0), "3h 12m");
        assert_eq!(d(198_000, 0), "2d 07h");
        assert_eq!(span(None), "-");
    }

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}

//! Protobuf ↔ domain conversions. Requests are parsed into domain values
//! here, collecting every field violation with its path; responses are
//! rendered from domain values.

use crate::domain::incident::limits;
use crate::domain::proposal::WorkloadKind;
use crate::domain::text;
use crate::domain::timestamp::{self, AlertTime};
use crate::domain::{
    CommandVerb, Decision, DecisionMode, DecisionState, FallbackReason, Incident, IncidentId,
    IncidentStatus, K8sName, Proposal, ProposalSource, RemediationCommand, RequestId, RiskLevel,
    Severity, Signal, SignalStatus, TextWarning, Token, VerificationState, Violations,
};
use crate::manager::{IncidentFilter, NewIncident};
use crate::proto as pb;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// A time as a protobuf `Timestamp`. A time outside protobuf's range
/// (stored before requests were checked) is clamped to it, so one bad
/// record never breaks the JSON rendering of a whole listing.
pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    let t = timestamp::clamp_to_proto(t);
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(ts)
}

/// A protobuf `Timestamp` as a time; `None` when it is not a valid one
/// (nanos outside `0..1e9`, seconds outside years 1 to 9999).
pub fn from_ts(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos)
        || !(timestamp::PROTO_MIN_SECONDS..=timestamp::PROTO_MAX_SECONDS).contains(&t.seconds)
    {
        return None;
    }
    Utc.timestamp_opt(t.seconds, t.nanos as u32).single()
}

pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A non-negative protobuf duration.
pub fn from_duration(d: &prost_types::Duration) -> Option<Duration> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return None;
    }
    Some(Duration::new(d.seconds as u64, d.nanos as u32))
}

// ---- ids -------------------------------------------------------------

pub fn incident_id(v: &mut Violations, field: &str, raw: &str) -> Option<IncidentId> {
    v.check(field, IncidentId::parse(raw))
}

pub fn token(v: &mut Violations, field: &str, raw: &str) -> Option<Token> {
    v.check(field, Token::parse(raw))
}

// ---- enums -----------------------------------------------------------

pub fn severity_from(raw: i32) -> Option<Severity> {
    Some(match pb::Severity::try_from(raw).ok()? {
        pb::Severity::Unspecified => return None,
        pb::Severity::P0 => Severity::P0,
        pb::Severity::P1 => Severity::P1,
        pb::Severity::P2 => Severity::P2,
        pb::Severity::P3 => Severity::P3,
        pb::Severity::P4 => Severity::P4,
    })
}

pub fn severity_to(s: Severity) -> pb::Severity {
    match s {
        Severity::P0 => pb::Severity::P0,
        Severity::P1 => pb::Severity::P1,
        Severity::P2 => pb::Severity::P2,
        Severity::P3 => pb::Severity::P3,
        Severity::P4 => pb::Severity::P4,
    }
}

pub fn status_from(raw: i32) -> Option<IncidentStatus> {
    Some(match pb::IncidentStatus::try_from(raw).ok()? {
        pb::IncidentStatus::Unspecified => return None,
        pb::IncidentStatus::Open => IncidentStatus::Open,
        pb::IncidentStatus::Investigating => IncidentStatus::Investigating,
        pb::IncidentStatus::Resolved => IncidentStatus::Resolved,
        pb::IncidentStatus::Closed => IncidentStatus::Closed,
    })
}

pub fn status_to(s: IncidentStatus) -> pb::IncidentStatus {
    match s {
        IncidentStatus::Open => pb::IncidentStatus::Open,
        IncidentStatus::Investigating => pb::IncidentStatus::Investigating,
        IncidentStatus::Resolved => pb::IncidentStatus::Resolved,
        IncidentStatus::Closed => pb::IncidentStatus::Closed,
    }
}

/// An optional enum field: UNSPECIFIED is `None`, an unknown number a violation.
fn optional_enum<T>(
    v: &mut Violations,
    field: &str,
    raw: i32,
    f: fn(i32) -> Option<T>,
) -> Option<T> {
    if raw == 0 {
        return None;
    }
    let out = f(raw);
    if out.is_none() {
        v.add(field, format!("unknown value {raw}"));
    }
    out
}

pub fn mode_from(v: &mut Violations, raw: i32) -> DecisionMode {
    match pb::DecisionMode::try_from(raw) {
        Ok(pb::DecisionMode::Unspecified | pb::DecisionMode::Auto) => DecisionMode::Auto,
        Ok(pb::DecisionMode::Dual) => DecisionMode::Dual,
        Ok(pb::DecisionMode::Consensus) => DecisionMode::Consensus,
        Err(_) => {
            v.add("mode", format!("unknown value {raw}"));
            DecisionMode::Auto
        }
    }
}

fn mode_to(m: DecisionMode) -> pb::DecisionMode {
    match m {
        DecisionMode::Auto => pb::DecisionMode::Auto,
        DecisionMode::Dual => pb::DecisionMode::Dual,
        DecisionMode::Consensus => pb::DecisionMode::Consensus,
    }
}

fn state_to(s: DecisionState) -> pb::DecisionState {
    match s {
        DecisionState::Init => pb::DecisionState::Init,
        DecisionState::Analyzing => pb::DecisionState::Analyzing,
        DecisionState::Ready => pb::DecisionState::Ready,
        DecisionState::Executing => pb::DecisionState::Executing,
        DecisionState::Completed => pb::DecisionState::Completed,
        DecisionState::Error => pb::DecisionState::Error,
        DecisionState::Rejected => pb::DecisionState::Rejected,
    }
}

// ---- incidents -------------------------------------------------------

fn string_map(
    v: &mut Violations,
    field: &str,
    m: &std::collections::HashMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    text::map(v, field, &mut out);
    if m.len() > limits::LABELS {
        v.add(field, format!("at most {} entries", limits::LABELS));
    }
    for (k, val) in m {
        if k.is_empty() {
            v.add(field, "keys must not be empty");
        }
        if k.len() > limits::LABEL_KEY {
            v.add(
                format!("{field}[{k:.32}]"),
                format!("key longer than {} bytes", limits::LABEL_KEY),
            );
        }
        if val.len() > limits::LABEL_VALUE {
            v.add(
                format!("{field}[{k:.32}]"),
                format!("value longer than {} bytes", limits::LABEL_VALUE),
            );
        }
    }
    out
}

/// Parses one signal. Its times must be valid and in the alert window
/// around `now` ([`timestamp::alert_time`]); its names are lines and its
/// label and annotation values prose ([`text`]).
pub fn signal_from(v: &mut Violations, field: &str, s: &pb::Signal, now: DateTime<Utc>) -> Signal {
    if s.alert_name.trim().is_empty() {
        v.add(format!("{field}.alert_name"), "is required");
    }
    text::line(v, &format!("{field}.alert_name"), &s.alert_name);
    text::line(v, &format!("{field}.fingerprint"), &s.fingerprint);
    text::line(v, &format!("{field}.generator_url"), &s.generator_url);
    v.max_len(
        &format!("{field}.alert_name"),
        &s.alert_name,
        limits::ALERT_NAME,
    );
    v.max_len(
        &format!("{field}.fingerprint"),
        &s.fingerprint,
        limits::FINGERPRINT,
    );
    v.max_len(
        &format!("{field}.generator_url"),
        &s.generator_url,
        limits::URL,
    );
    let labels = string_map(v, &format!("{field}.labels"), &s.labels);
    let annotations = string_map(v, &format!("{field}.annotations"), &s.annotations);
    let mut time = |name: &str, which: AlertTime, t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref()?;
        let Some(at) = from_ts(t) else {
            v.add(
                format!("{field}.{name}"),
                timestamp::TimeError::OutOfRange.to_string(),
            );
            return None;
        };
        v.check(
            format!("{field}.{name}"),
            timestamp::alert_time(at, which, now),
        )
    };
    let starts_at = time("starts_at", AlertTime::StartsAt, &s.starts_at);
    let ends_at = time("ends_at", AlertTime::EndsAt, &s.ends_at);
    let status = match pb::SignalStatus::try_from(s.status) {
        Ok(pb::SignalStatus::Resolved) => SignalStatus::Resolved,
        Ok(_) => SignalStatus::Firing,
        Err(_) => {
            v.add(
                format!("{field}.status"),
                format!("unknown value {}", s.status),
            );
            SignalStatus::Firing
        }
    };
    Signal {
        alert_name: s.alert_name.clone(),
        labels,
        annotations,
        starts_at,
        ends_at,
        fingerprint: s.fingerprint.clone(),
        status,
        generator_url: s.generator_url.clone(),
    }
}

fn signal_to(s: &Signal) -> pb::Signal {
    pb::Signal {
        alert_name: s.alert_name.clone(),
        labels: s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        annotations: s
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        starts_at: opt_ts(s.starts_at),
        ends_at: opt_ts(s.ends_at),
        fingerprint: s.fingerprint.clone(),
        status: match s.status {
            SignalStatus::Firing => pb::SignalStatus::Firing,
            SignalStatus::Resolved => pb::SignalStatus::Resolved,
        } as i32,
        generator_url: s.generator_url.clone(),
    }
}

/// The first `max` of `items`, with a violation on `field` when there are
/// more: a request over a limit is reported, never silently cut.
fn capped<'a, T>(
    v: &mut Violations,
    field: &str,
    items: &'a [T],
    max: usize,
    noun: &str,
) -> &'a [T] {
    if items.len() > max {
        v.add(field, format!("at most {max} {noun}"));
    }
    &items[..items.len().min(max)]
}

/// Parses a `CreateIncidentRequest` received at `now`, reporting every
/// invalid field.
pub fn create_incident(
    req: &pb::CreateIncidentRequest,
    now: DateTime<Utc>,
) -> Result<(NewIncident, Option<RequestId>), Violations> {
    let mut v = Violations::new();
    let request_id = request_id(&mut v, &req.request_id);
    let Some(inc) = &req.incident else {
        v.add("incident", "is required");
        return Err(v);
    };
    let id = if inc.id.is_empty() {
        None
    } else {
        incident_id(&mut v, "incident.id", &inc.id)
    };
    if inc.title.trim().is_empty() {
        v.add("incident.title", "is required");
    }
    v.max_len("incident.title", &inc.title, limits::TITLE);
    text::line(&mut v, "incident.title", &inc.title);
    let severity = match severity_from(inc.severity) {
        Some(s) => Some(s),
        None => {
            v.add(
                "incident.severity",
                "is required: one of SEVERITY_P0 to SEVERITY_P4",
            );
            None
        }
    };
    let status = optional_enum(&mut v, "incident.status", inc.status, status_from)
        .unwrap_or(IncidentStatus::Open);
    let signals: Vec<Signal> = capped(
        &mut v,
        "incident.signals",
        &inc.signals,
        limits::SIGNALS,
        "signals",
    )
    .iter()
    .enumerate()
    .map(|(i, s)| signal_from(&mut v, &format!("incident.signals[{i}]"), s, now))
    .collect();
    let affected_services: Vec<K8sName> = capped(
        &mut v,
        "incident.affected_services",
        &inc.affected_services,
        limits::SERVICES,
        "services",
    )
    .iter()
    .enumerate()
    .filter_map(|(i, s)| {
        v.check(
            format!("incident.affected_services[{i}]"),
            K8sName::parse(s),
        )
    })
    .collect();
    let namespace = if inc.namespace.is_empty() {
        None
    } else {
        v.check("incident.namespace", K8sName::parse(&inc.namespace))
    };
    v.clone().into_result()?;
    let severity = severity.ok_or(v)?;
    Ok((
        NewIncident {
            id,
            title: inc.title.clone(),
            severity,
            status,
            signals,
            affected_services,
            namespace,
        },
        request_id,
    ))
}

/// Parses an `IngestSignalsRequest` received at `now`: at most
/// [`crate::ingest::ingestor::MAX_SIGNALS`] signals, each valid.
pub fn ingest_signals(
    req: &pb::IngestSignalsRequest,
    now: DateTime<Utc>,
) -> Result<Vec<Signal>, Violations> {
    let mut v = Violations::new();
    let max = crate::ingest::ingestor::MAX_SIGNALS;
    if req.signals.len() > max {
        v.add(
            "signals",
            format!("at most {max} signals (got {})", req.signals.len()),
        );
        return Err(v);
    }
    let signals = req
        .signals
        .iter()
        .enumerate()
        .map(|(i, s)| signal_from(&mut v, &format!("signals[{i}]"), s, now))
        .collect();
    v.into_result()?;
    Ok(signals)
}

pub fn incident_to(i: &Incident) -> pb::Incident {
    pb::Incident {
        id: i.id.to_string(),
        title: i.title.clone(),
        severity: severity_to(i.severity) as i32,
        status: status_to(i.status) as i32,
        signals: i.signals.iter().map(signal_to).collect(),
        affected_services: i.affected_services.iter().map(|s| s.to_string()).collect(),
        created_at: Some(ts(i.created_at)),
        updated_at: Some(ts(i.updated_at)),
        resolved_at: opt_ts(i.resolved_at),
        namespace: i.target_namespace().to_string(),
        version: i.version,
        status_actor: i.status_actor.clone(),
        status_note: i.status_note.clone(),
    }
}

/// Parses a `ListIncidentsRequest` into (filter, page size, page token).
pub fn list_incidents(
    req: &pb::ListIncidentsRequest,
) -> Result<(IncidentFilter, usize, String), Violations> {
    let mut v = Violations::new();
    let status = optional_enum(&mut v, "status", req.status, status_from);
    let severity = optional_enum(&mut v, "severity", req.severity, severity_from);
    let service = if req.service.is_empty() {
        None
    } else {
        v.check("service", K8sName::parse(&req.service))
            .map(|s| s.to_string())
    };
    let page_size = match req.page_size {
        0 => 50,
        n if (1..=500).contains(&n) => n as usize,
        n => {
            v.add("page_size", format!("must be between 0 and 500 (got {n})"));
            0
        }
    };
    v.max_len("page_token", &req.page_token, 64);
    v.into_result()?;
    Ok((
        IncidentFilter {
            status,
            severity,
            service,
        },
        page_size,
        req.page_token.clone(),
    ))
}

// ---- decisions -------------------------------------------------------

fn command_to(c: &RemediationCommand) -> pb::RemediationCommand {
    pb::RemediationCommand {
        verb: match c.verb {
            CommandVerb::RolloutRestart => pb::CommandVerb::RolloutRestart,
            CommandVerb::RolloutUndo => pb::CommandVerb::RolloutUndo,
            CommandVerb::Scale => pb::CommandVerb::Scale,
        } as i32,
        kind: match c.kind {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
        .into(),
        name: c.name.to_string(),
        namespace: c.namespace.to_string(),
        replicas: c.replicas.unwrap_or(0),
    }
}

fn proposal_to(p: &Proposal) -> pb::Proposal {
    let consensus = p.consensus.as_ref();
    pb::Proposal {
        source: match p.source {
            ProposalSource::Expert => pb::ProposalSource::Expert,
            ProposalSource::Llm => pb::ProposalSource::Llm,
            ProposalSource::Consensus => pb::ProposalSource::Consensus,
        } as i32,
        provider: p.provider.clone(),
        model: p.model.clone(),
        command: Some(command_to(&p.command)),
        kubectl: p.command.render(),
        description: p.description.clone(),
        reasoning: p.reasoning.clone(),
        risk: match p.risk {
            RiskLevel::Low => pb::RiskLevel::Low,
            RiskLevel::Medium => pb::RiskLevel::Medium,
            RiskLevel::High => pb::RiskLevel::High,
            RiskLevel::Critical => pb::RiskLevel::Critical,
        } as i32,
        confidence: p.confidence,
        matched_rule: p.matched_rule.clone(),
        from_cache: p.from_cache,
        analysis_latency: Some(duration(p.analysis_latency)),
        fallback_reason: fallback_to(p.fallback_reason) as i32,
        consensus_id: consensus.map(|c| c.id.clone()).unwrap_or_default(),
        consensus_score: consensus.map(|c| c.score).unwrap_or_default(),
        agent_count: consensus.map(|c| c.agent_count).unwrap_or_default(),
        dissenting_opinions: consensus
            .map(|c| {
                c.dissenting
                    .iter()
                    .map(|d| pb::DissentingOpinion {
                        agent: d.agent.clone(),
                        kubectl: d.kubectl.clone(),
                        reasoning: d.reasoning.clone(),
                        text_warnings: warnings_to(&d.text_warnings),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        model_confidence: p.model_confidence,
        text_warnings: warnings_to(&p.text_warnings),
        refused_agents: consensus
            .map(|c| {
                c.refused
                    .iter()
                    .map(|r| pb::RefusedAgent {
                        agent: r.agent.clone(),
                        reason: fallback_to(Some(r.reason)) as i32,
                        detail: r.detail.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        policy_hash: p.policy_hash.clone(),
    }
}

fn fallback_to(r: Option<FallbackReason>) -> pb::FallbackReason {
    match r {
        None => pb::FallbackReason::Unspecified,
        Some(FallbackReason::Timeout) => pb::FallbackReason::Timeout,
        Some(FallbackReason::Error) => pb::FallbackReason::Error,
        Some(FallbackReason::Invalid) => pb::FallbackReason::Invalid,
        Some(FallbackReason::Unsafe) => pb::FallbackReason::Unsafe,
        Some(FallbackReason::CircuitOpen) => pb::FallbackReason::CircuitOpen,
        Some(FallbackReason::NotConfigured) => pb::FallbackReason::NotConfigured,
        Some(FallbackReason::Recovered) => pb::FallbackReason::Recovered,
    }
}

fn warnings_to(w: &[TextWarning]) -> Vec<i32> {
    w.iter()
        .map(|w| match w {
            TextWarning::MentionsCommand => pb::TextWarning::MentionsCommand,
            TextWarning::MentionsUrl => pb::TextWarning::MentionsUrl,
            TextWarning::HiddenCharacters => pb::TextWarning::HiddenCharacters,
            TextWarning::Truncated => pb::TextWarning::Truncated,
        } as i32)
        .collect()
}

/// Renders a decision as seen at `now`: a READY token past its TTL reads as
/// EXPIRED.
pub fn decision_to(d: &Decision, now: DateTime<Utc>) -> pb::Decision {
    let state = if d.is_expired(now) {
        pb::DecisionState::Expired
    } else {
        state_to(d.state)
    };
    pb::Decision {
        token: d.token.to_string(),
        incident_id: d.incident_id.to_string(),
        state: state as i32,
        proposal: d.proposal.as_ref().map(proposal_to),
        version: d.version,
        created_at: Some(ts(d.created_at)),
        updated_at: Some(ts(d.updated_at)),
        expires_at: Some(ts(d.expires_at)),
        analysis_deadline: Some(ts(d.analysis_deadline)),
        error: d.error.clone(),
        decided_by: d.decided_by.clone(),
        decided_at: opt_ts(d.decided_at),
        reason: d.reason.clone(),
        output: d.output.clone(),
        mode: mode_to(d.mode) as i32,
        completed_at: opt_ts(d.completed_at),
        decided_by_method: d
            .decided_by_method
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        approvals: d
            .approvals
            .iter()
            .map(|a| pb::Approval {
                subject: a.subject.clone(),
                method: a.method.as_str().to_owned(),
                approved_at: Some(ts(a.at)),
            })
            .collect(),
        approvals_required: d.approvals_required,
        dry_run: d.preflight.as_ref().map(|p| pb::DryRunResult {
            would_succeed: p.ok,
            summary: p.summary.clone(),
            checked_at: Some(ts(p.checked_at)),
        }),
        verification: d.verification.as_ref().map(|v| pb::Verification {
            state: match v.state {
                VerificationState::Pending => pb::VerificationState::Pending,
                VerificationState::Verified => pb::VerificationState::Verified,
                VerificationState::Failed => pb::VerificationState::Failed,
            } as i32,
            summary: v.summary.clone(),
            until: Some(ts(v.until)),
            decided_at: Some(ts(v.at)),
        }),
    }
}

/// Checks an actor field (required, bounded, one line).
pub fn actor(v: &mut Violations, raw: &str) {
    if raw.trim().is_empty() {
        v.add("actor", "is required");
    }
    optional_actor(v, raw);
}

/// Checks an actor field that may be empty (bounded, one line).
pub fn optional_actor(v: &mut Violations, raw: &str) {
    v.max_len("actor", raw, limits::ACTOR);
    text::line(v, "actor", raw);
}

/// A prose field (note, reason, output): bounded to `max` bytes, and
/// returned without control or invisible characters other than `\n` and
/// `\t` ([`text::prose`]).
pub fn prose(v: &mut Violations, field: &str, raw: &str, max: usize) -> String {
    v.max_len(field, raw, max);
    text::prose(raw).into_owned()
}

fn state_from(raw: i32) -> Option<DecisionState> {
    Some(match pb::DecisionState::try_from(raw).ok()? {
        pb::DecisionState::Init => DecisionState::Init,
        pb::DecisionState::Analyzing => DecisionState::Analyzing,
        pb::DecisionState::Ready => DecisionState::Ready,
        pb::DecisionState::Executing => DecisionState::Executing,
        pb::DecisionState::Completed => DecisionState::Completed,
        pb::DecisionState::Error => DecisionState::Error,
        pb::DecisionState::Rejected => DecisionState::Rejected,
        pb::DecisionState::Unspecified | pb::DecisionState::Expired => return None,
    })
}

/// Parses a `WatchDecisionsRequest` filter.
pub fn watch_filter(req: &pb::WatchDecisionsRequest) -> Result<crate::watch::Filter, Violations> {
    let mut v = Violations::new();
    let incident = if req.incident_id.is_empty() {
        None
    } else {
        incident_id(&mut v, "incident_id", &req.incident_id)
    };
    let state = optional_enum(&mut v, "state", req.state, state_from);
    let severity = optional_enum(&mut v, "severity", req.severity, severity_from);
    v.into_result()?;
    Ok(crate::watch::Filter {
        incident,
        state,
        severity,
        incidents: req.include_incidents,
    })
}

/// An optional idempotency key (`request_id`): None when empty, a
/// violation when malformed.
pub fn request_id(v: &mut Violations, raw: &str) -> Option<RequestId> {
    if raw.is_empty() {
        return None;
    }
    v.check("request_id", RequestId::parse(raw))
}

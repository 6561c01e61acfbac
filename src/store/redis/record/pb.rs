//! The [`super::PROST_V1`] messages and their conversions to and from the
//! domain records.
//!
//! Field numbers are the stored format: never reuse or renumber one (a new
//! field takes a new number; a removed one stays reserved in a comment).
//! Enums are stored as the numbers in [`Code`] implementations below, 0
//! meaning "not written": a record missing a required value is refused,
//! not defaulted. Times are seconds and nanoseconds since the epoch, as
//! chrono holds them, so a read gives back exactly what was written
//! without parsing text.

use super::{Record, RecordError};
use crate::domain::proposal::{ConsensusInfo, Dissent, Refusal, WorkloadKind};
use crate::domain::{
    AppliedRequests, Approval, AuthMethod, CommandVerb, Decision, DecisionMode, DecisionState,
    ExecutionClaim, ExecutionPlan, FallbackReason, Incident, IncidentId, IncidentStatus, K8sName,
    Observed, Preflight, Proposal, ProposalSource, RemediationCommand, RequestId, RiskLevel,
    RollbackTarget, Severity, Signal, SignalStatus, TextWarning, Token, Verification,
    VerificationState,
};
use chrono::{DateTime, Utc};
use prost::Message;
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, Message)]
pub(super) struct Time {
    #[prost(sint64, tag = "1")]
    s: i64,
    #[prost(uint32, tag = "2")]
    ns: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct DecisionV1 {
    #[prost(string, tag = "1")]
    token: String,
    #[prost(string, tag = "2")]
    incident_id: String,
    #[prost(int32, tag = "3")]
    state: i32,
    #[prost(int32, tag = "4")]
    mode: i32,
    #[prost(message, optional, tag = "5")]
    proposal: Option<ProposalV1>,
    #[prost(uint64, tag = "6")]
    version: u64,
    #[prost(message, optional, tag = "7")]
    created_at: Option<Time>,
    #[prost(message, optional, tag = "8")]
    updated_at: Option<Time>,
    #[prost(message, optional, tag = "9")]
    expires_at: Option<Time>,
    #[prost(message, optional, tag = "10")]
    analysis_deadline: Option<Time>,
    #[prost(string, tag = "11")]
    error: String,
    #[prost(string, tag = "12")]
    decided_by: String,
    #[prost(message, optional, tag = "13")]
    decided_at: Option<Time>,
    #[prost(string, tag = "14")]
    reason: String,
    #[prost(string, tag = "15")]
    output: String,
    #[prost(message, optional, tag = "16")]
    completed_at: Option<Time>,
    #[prost(int32, optional, tag = "17")]
    severity: Option<i32>,
    #[prost(int32, optional, tag = "18")]
    decided_by_method: Option<i32>,
    #[prost(message, repeated, tag = "19")]
    approvals: Vec<ApprovalV1>,
    #[prost(uint32, tag = "20")]
    approvals_required: u32,
    #[prost(message, optional, tag = "21")]
    preflight: Option<PreflightV1>,
    #[prost(message, optional, tag = "22")]
    verification: Option<VerificationV1>,
    #[prost(string, repeated, tag = "23")]
    applied_requests: Vec<String>,
    #[prost(message, optional, tag = "24")]
    plan: Option<PlanV1>,
    #[prost(message, optional, tag = "25")]
    claim: Option<ClaimV1>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ObservedV1 {
    #[prost(string, tag = "1")]
    resource_version: String,
    #[prost(int64, tag = "2")]
    generation: i64,
    #[prost(message, optional, tag = "3")]
    rollback_to: Option<RollbackTargetV1>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct RollbackTargetV1 {
    #[prost(string, tag = "1")]
    replica_set: String,
    #[prost(int64, tag = "2")]
    revision: i64,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct PlanV1 {
    #[prost(message, optional, tag = "1")]
    observed: Option<ObservedV1>,
    #[prost(string, optional, tag = "2")]
    recheck: Option<String>,
    #[prost(message, optional, tag = "3")]
    at: Option<Time>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ClaimV1 {
    #[prost(string, tag = "1")]
    runner: String,
    #[prost(string, tag = "2")]
    lease_id: String,
    #[prost(message, optional, tag = "3")]
    until: Option<Time>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ApprovalV1 {
    #[prost(string, tag = "1")]
    subject: String,
    #[prost(int32, tag = "2")]
    method: i32,
    #[prost(message, optional, tag = "3")]
    at: Option<Time>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct PreflightV1 {
    #[prost(bool, tag = "1")]
    ok: bool,
    #[prost(string, tag = "2")]
    summary: String,
    #[prost(message, optional, tag = "3")]
    checked_at: Option<Time>,
    #[prost(message, optional, tag = "4")]
    observed: Option<ObservedV1>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct VerificationV1 {
    #[prost(int32, tag = "1")]
    state: i32,
    #[prost(string, tag = "2")]
    summary: String,
    #[prost(message, optional, tag = "3")]
    until: Option<Time>,
    #[prost(message, optional, tag = "4")]
    at: Option<Time>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ProposalV1 {
    #[prost(int32, tag = "1")]
    source: i32,
    #[prost(string, tag = "2")]
    provider: String,
    #[prost(string, tag = "3")]
    model: String,
    #[prost(message, optional, tag = "4")]
    command: Option<CommandV1>,
    #[prost(string, tag = "5")]
    description: String,
    #[prost(string, tag = "6")]
    reasoning: String,
    #[prost(int32, tag = "7")]
    risk: i32,
    #[prost(double, tag = "8")]
    confidence: f64,
    #[prost(string, tag = "9")]
    matched_rule: String,
    #[prost(bool, tag = "10")]
    from_cache: bool,
    #[prost(uint64, tag = "11")]
    analysis_latency_ns: u64,
    #[prost(int32, optional, tag = "12")]
    fallback_reason: Option<i32>,
    #[prost(message, optional, tag = "13")]
    consensus: Option<ConsensusV1>,
    #[prost(double, optional, tag = "14")]
    model_confidence: Option<f64>,
    #[prost(int32, repeated, tag = "15")]
    text_warnings: Vec<i32>,
    #[prost(string, tag = "16")]
    policy_hash: String,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct CommandV1 {
    #[prost(int32, tag = "1")]
    verb: i32,
    #[prost(int32, tag = "2")]
    kind: i32,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    namespace: String,
    #[prost(uint32, optional, tag = "5")]
    replicas: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct ConsensusV1 {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(double, tag = "2")]
    score: f64,
    #[prost(uint32, tag = "3")]
    agent_count: u32,
    #[prost(message, repeated, tag = "4")]
    dissenting: Vec<DissentV1>,
    #[prost(message, repeated, tag = "5")]
    refused: Vec<RefusalV1>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct DissentV1 {
    #[prost(string, tag = "1")]
    agent: String,
    #[prost(string, tag = "2")]
    kubectl: String,
    #[prost(string, tag = "3")]
    reasoning: String,
    #[prost(int32, repeated, tag = "4")]
    text_warnings: Vec<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct RefusalV1 {
    #[prost(string, tag = "1")]
    agent: String,
    #[prost(int32, tag = "2")]
    reason: i32,
    #[prost(string, tag = "3")]
    detail: String,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct IncidentV1 {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    title: String,
    #[prost(int32, tag = "3")]
    severity: i32,
    #[prost(int32, tag = "4")]
    status: i32,
    #[prost(message, repeated, tag = "5")]
    signals: Vec<SignalV1>,
    #[prost(string, repeated, tag = "6")]
    affected_services: Vec<String>,
    #[prost(string, optional, tag = "7")]
    namespace: Option<String>,
    #[prost(message, optional, tag = "8")]
    created_at: Option<Time>,
    #[prost(message, optional, tag = "9")]
    updated_at: Option<Time>,
    #[prost(message, optional, tag = "10")]
    resolved_at: Option<Time>,
    #[prost(uint64, tag = "11")]
    version: u64,
    #[prost(string, tag = "12")]
    status_actor: String,
    #[prost(string, tag = "13")]
    status_note: String,
    #[prost(string, repeated, tag = "14")]
    applied_requests: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct SignalV1 {
    #[prost(string, tag = "1")]
    alert_name: String,
    #[prost(btree_map = "string, string", tag = "2")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "3")]
    annotations: BTreeMap<String, String>,
    #[prost(message, optional, tag = "4")]
    starts_at: Option<Time>,
    #[prost(message, optional, tag = "5")]
    ends_at: Option<Time>,
    #[prost(string, tag = "6")]
    fingerprint: String,
    #[prost(int32, tag = "7")]
    status: i32,
    #[prost(string, tag = "8")]
    generator_url: String,
}

/// A domain enum's stored number. Matching is exhaustive both ways, so a
/// new variant is a compile error here until it has its number.
trait Code: Sized + Copy {
    fn code(self) -> i32;
    fn from_code(n: i32) -> Option<Self>;
}

macro_rules! codes {
    ($($ty:ident { $($v:ident = $n:literal),+ $(,)? })+) => {$(
        impl Code for $ty {
            fn code(self) -> i32 {
                match self { $($ty::$v => $n),+ }
            }
            fn from_code(n: i32) -> Option<Self> {
                match n { $($n => Some($ty::$v),)+ _ => None }
            }
        }
    )+};
}

codes! {
    DecisionState { Init = 1, Analyzing = 2, Ready = 3, Executing = 4, Completed = 5, Error = 6, Rejected = 7 }
    DecisionMode { Auto = 1, Dual = 2, Consensus = 3 }
    VerificationState { Pending = 1, Verified = 2, Failed = 3 }
    Severity { P0 = 1, P1 = 2, P2 = 3, P3 = 4, P4 = 5 }
    IncidentStatus { Open = 1, Investigating = 2, Resolved = 3, Closed = 4 }
    SignalStatus { Firing = 1, Resolved = 2 }
    AuthMethod { Anonymous = 1, StaticToken = 2, Jwt = 3, Mtls = 4, Chat = 5, System = 6 }
    CommandVerb { RolloutRestart = 1, RolloutUndo = 2, Scale = 3 }
    WorkloadKind { Deployment = 1, StatefulSet = 2 }
    RiskLevel { Low = 1, Medium = 2, High = 3, Critical = 4 }
    ProposalSource { Expert = 1, Llm = 2, Consensus = 3 }
    FallbackReason {
        Timeout = 1, Error = 2, Invalid = 3, Unsafe = 4, CircuitOpen = 5, NotConfigured = 6,
        Recovered = 7,
    }
    TextWarning { MentionsCommand = 1, MentionsUrl = 2, HiddenCharacters = 3, Truncated = 4 }
}

fn code<T: Code>(field: &'static str, n: i32) -> Result<T, RecordError> {
    T::from_code(n).ok_or_else(|| RecordError::field(field, format!("unknown value {n}")))
}

fn codes<T: Code>(field: &'static str, ns: Vec<i32>) -> Result<Vec<T>, RecordError> {
    ns.into_iter().map(|n| code(field, n)).collect()
}

fn time(t: DateTime<Utc>) -> Option<Time> {
    Some(Time {
        s: t.timestamp(),
        ns: t.timestamp_subsec_nanos(),
    })
}

fn read_time(field: &'static str, t: Option<Time>) -> Result<DateTime<Utc>, RecordError> {
    let t = t.ok_or_else(|| RecordError::field(field, "missing"))?;
    DateTime::from_timestamp(t.s, t.ns)
        .ok_or_else(|| RecordError::field(field, format!("out of range: {}s {}ns", t.s, t.ns)))
}

fn read_opt_time(
    field: &'static str,
    t: Option<Time>,
) -> Result<Option<DateTime<Utc>>, RecordError> {
    t.map(|t| read_time(field, Some(t))).transpose()
}

fn name(field: &'static str, s: &str) -> Result<K8sName, RecordError> {
    K8sName::parse(s).map_err(|e| RecordError::field(field, e))
}

fn applied(ids: &AppliedRequests) -> Vec<String> {
    ids.iter().map(|r| r.as_str().to_owned()).collect()
}

fn read_applied(field: &'static str, ids: Vec<String>) -> Result<AppliedRequests, RecordError> {
    let mut out = AppliedRequests::default();
    for id in ids {
        out.record(RequestId::parse(&id).map_err(|e| RecordError::field(field, e))?);
    }
    Ok(out)
}

impl Record for Decision {
    fn encode_v1(&self, out: &mut Vec<u8>) {
        let Decision {
            token,
            incident_id,
            state,
            mode,
            proposal,
            version,
            created_at,
            updated_at,
            expires_at,
            analysis_deadline,
            error,
            decided_by,
            decided_at,
            reason,
            output,
            completed_at,
            severity,
            decided_by_method,
            approvals,
            approvals_required,
            preflight,
            verification,
            applied_requests,
            plan,
            claim,
        } = self;
        let m = DecisionV1 {
            token: token.as_str().to_owned(),
            incident_id: incident_id.as_str().to_owned(),
            state: state.code(),
            mode: mode.code(),
            proposal: proposal.as_ref().map(proposal_v1),
            version: *version,
            created_at: time(*created_at),
            updated_at: time(*updated_at),
            expires_at: time(*expires_at),
            analysis_deadline: time(*analysis_deadline),
            error: error.clone(),
            decided_by: decided_by.clone(),
            decided_at: decided_at.and_then(time),
            reason: reason.clone(),
            output: output.clone(),
            completed_at: completed_at.and_then(time),
            severity: severity.map(Code::code),
            decided_by_method: decided_by_method.map(Code::code),
            approvals: approvals
                .iter()
                .map(|a| ApprovalV1 {
                    subject: a.subject.clone(),
                    method: a.method.code(),
                    at: time(a.at),
                })
                .collect(),
            approvals_required: *approvals_required,
            preflight: preflight.as_ref().map(|p| PreflightV1 {
                ok: p.ok,
                summary: p.summary.clone(),
                checked_at: time(p.checked_at),
                observed: p.observed.as_ref().map(observed_v1),
            }),
            verification: verification.as_ref().map(|v| VerificationV1 {
                state: v.state.code(),
                summary: v.summary.clone(),
                until: time(v.until),
                at: time(v.at),
            }),
            applied_requests: applied(applied_requests),
            plan: plan.as_ref().map(|p| PlanV1 {
                observed: p.observed.as_ref().map(observed_v1),
                recheck: p.recheck.clone(),
                at: time(p.at),
            }),
            claim: claim.as_ref().map(|c| ClaimV1 {
                runner: c.runner.clone(),
                lease_id: c.lease_id.clone(),
                until: time(c.until),
            }),
        };
        m.encode_raw(out);
    }

    fn decode_v1(bytes: &[u8]) -> Result<Self, RecordError> {
        let m = DecisionV1::decode(bytes)?;
        Ok(Decision {
            token: Token::parse(&m.token).map_err(|e| RecordError::field("token", e))?,
            incident_id: IncidentId::parse(&m.incident_id)
                .map_err(|e| RecordError::field("incident_id", e))?,
            state: code("state", m.state)?,
            mode: code("mode", m.mode)?,
            proposal: m.proposal.map(read_proposal).transpose()?,
            version: m.version,
            created_at: read_time("created_at", m.created_at)?,
            updated_at: read_time("updated_at", m.updated_at)?,
            expires_at: read_time("expires_at", m.expires_at)?,
            analysis_deadline: read_time("analysis_deadline", m.analysis_deadline)?,
            error: m.error,
            decided_by: m.decided_by,
            decided_at: read_opt_time("decided_at", m.decided_at)?,
            reason: m.reason,
            output: m.output,
            completed_at: read_opt_time("completed_at", m.completed_at)?,
            severity: m.severity.map(|n| code("severity", n)).transpose()?,
            decided_by_method: m
                .decided_by_method
                .map(|n| code("decided_by_method", n))
                .transpose()?,
            approvals: m
                .approvals
                .into_iter()
                .map(|a| {
                    Ok(Approval {
                        subject: a.subject,
                        method: code("approvals.method", a.method)?,
                        at: read_time("approvals.at", a.at)?,
                    })
                })
                .collect::<Result<_, RecordError>>()?,
            approvals_required: m.approvals_required,
            preflight: m
                .preflight
                .map(|p| {
                    Ok::<_, RecordError>(Preflight {
                        ok: p.ok,
                        summary: p.summary,
                        checked_at: read_time("preflight.checked_at", p.checked_at)?,
                        observed: p.observed.map(read_observed),
                    })
                })
                .transpose()?,
            verification: m
                .verification
                .map(|v| {
                    Ok::<_, RecordError>(Verification {
                        state: code("verification.state", v.state)?,
                        summary: v.summary,
                        until: read_time("verification.until", v.until)?,
                        at: read_time("verification.at", v.at)?,
                    })
                })
                .transpose()?,
            applied_requests: read_applied("applied_requests", m.applied_requests)?,
            plan: m
                .plan
                .map(|p| {
                    Ok::<_, RecordError>(ExecutionPlan {
                        observed: p.observed.map(read_observed),
                        recheck: p.recheck,
                        at: read_time("plan.at", p.at)?,
                    })
                })
                .transpose()?,
            claim: m
                .claim
                .map(|c| {
                    Ok::<_, RecordError>(ExecutionClaim {
                        runner: c.runner,
                        lease_id: c.lease_id,
                        until: read_time("claim.until", c.until)?,
                    })
                })
                .transpose()?,
        })
    }
}

fn observed_v1(o: &Observed) -> ObservedV1 {
    ObservedV1 {
        resource_version: o.resource_version.clone(),
        generation: o.generation,
        rollback_to: o.rollback_to.as_ref().map(|r| RollbackTargetV1 {
            replica_set: r.replica_set.clone(),
            revision: r.revision,
        }),
    }
}

fn read_observed(o: ObservedV1) -> Observed {
    Observed {
        resource_version: o.resource_version,
        generation: o.generation,
        rollback_to: o.rollback_to.map(|r| RollbackTarget {
            replica_set: r.replica_set,
            revision: r.revision,
        }),
    }
}

fn proposal_v1(p: &Proposal) -> ProposalV1 {
    let Proposal {
        source,
        provider,
        model,
        command,
        description,
        reasoning,
        risk,
        confidence,
        matched_rule,
        from_cache,
        analysis_latency,
        fallback_reason,
        consensus,
        model_confidence,
        text_warnings,
        policy_hash,
    } = p;
    let RemediationCommand {
        verb,
        kind,
        name,
        namespace,
        replicas,
    } = command;
    ProposalV1 {
        source: source.code(),
        provider: provider.clone(),
        model: model.clone(),
        command: Some(CommandV1 {
            verb: verb.code(),
            kind: kind.code(),
            name: name.as_str().to_owned(),
            namespace: namespace.as_str().to_owned(),
            replicas: *replicas,
        }),
        description: description.clone(),
        reasoning: reasoning.clone(),
        risk: risk.code(),
        confidence: *confidence,
        matched_rule: matched_rule.clone(),
        from_cache: *from_cache,
        // 584 years of analysis do not happen; saturate rather than wrap.
        analysis_latency_ns: u64::try_from(analysis_latency.as_nanos()).unwrap_or(u64::MAX),
        fallback_reason: fallback_reason.map(Code::code),
        consensus: consensus.as_ref().map(|c| ConsensusV1 {
            id: c.id.clone(),
            score: c.score,
            agent_count: c.agent_count,
            dissenting: c
                .dissenting
                .iter()
                .map(|d| DissentV1 {
                    agent: d.agent.clone(),
                    kubectl: d.kubectl.clone(),
                    reasoning: d.reasoning.clone(),
                    text_warnings: d.text_warnings.iter().map(|w| w.code()).collect(),
                })
                .collect(),
            refused: c
                .refused
                .iter()
                .map(|r| RefusalV1 {
                    agent: r.agent.clone(),
                    reason: r.reason.code(),
                    detail: r.detail.clone(),
                })
                .collect(),
        }),
        model_confidence: *model_confidence,
        text_warnings: text_warnings.iter().map(|w| w.code()).collect(),
        policy_hash: policy_hash.clone(),
    }
}

fn read_proposal(p: ProposalV1) -> Result<Proposal, RecordError> {
    let c = p
        .command
        .ok_or_else(|| RecordError::field("proposal.command", "missing"))?;
    Ok(Proposal {
        source: code("proposal.source", p.source)?,
        provider: p.provider,
        model: p.model,
        command: RemediationCommand {
            verb: code("proposal.command.verb", c.verb)?,
            kind: code("proposal.command.kind", c.kind)?,
            name: name("proposal.command.name", &c.name)?,
            namespace: name("proposal.command.namespace", &c.namespace)?,
            replicas: c.replicas,
        },
        description: p.description,
        reasoning: p.reasoning,
        risk: code("proposal.risk", p.risk)?,
        confidence: p.confidence,
        matched_rule: p.matched_rule,
        from_cache: p.from_cache,
        analysis_latency: std::time::Duration::from_nanos(p.analysis_latency_ns),
        fallback_reason: p
            .fallback_reason
            .map(|n| code("proposal.fallback_reason", n))
            .transpose()?,
        consensus: p
            .consensus
            .map(|c| {
                Ok::<_, RecordError>(ConsensusInfo {
                    id: c.id,
                    score: c.score,
                    agent_count: c.agent_count,
                    dissenting: c
                        .dissenting
                        .into_iter()
                        .map(|d| {
                            Ok(Dissent {
                                agent: d.agent,
                                kubectl: d.kubectl,
                                reasoning: d.reasoning,
                                text_warnings: codes(
                                    "proposal.consensus.dissenting.text_warnings",
                                    d.text_warnings,
                                )?,
                            })
                        })
                        .collect::<Result<_, RecordError>>()?,
                    refused: c
                        .refused
                        .into_iter()
                        .map(|r| {
                            Ok(Refusal {
                                agent: r.agent,
                                reason: code("proposal.consensus.refused.reason", r.reason)?,
                                detail: r.detail,
                            })
                        })
                        .collect::<Result<_, RecordError>>()?,
                })
            })
            .transpose()?,
        model_confidence: p.model_confidence,
        text_warnings: codes("proposal.text_warnings", p.text_warnings)?,
        policy_hash: p.policy_hash,
    })
}

impl Record for Incident {
    fn encode_v1(&self, out: &mut Vec<u8>) {
        let Incident {
            id,
            title,
            severity,
            status,
            signals,
            affected_services,
            namespace,
            created_at,
            updated_at,
            resolved_at,
            version,
            status_actor,
            status_note,
            applied_requests,
        } = self;
        let m = IncidentV1 {
            id: id.as_str().to_owned(),
            title: title.clone(),
            severity: severity.code(),
            status: status.code(),
            signals: signals
                .iter()
                .map(|s| SignalV1 {
                    alert_name: s.alert_name.clone(),
                    labels: s.labels.clone(),
                    annotations: s.annotations.clone(),
                    starts_at: s.starts_at.and_then(time),
                    ends_at: s.ends_at.and_then(time),
                    fingerprint: s.fingerprint.clone(),
                    status: s.status.code(),
                    generator_url: s.generator_url.clone(),
                })
                .collect(),
            affected_services: affected_services
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect(),
            namespace: namespace.as_ref().map(|n| n.as_str().to_owned()),
            created_at: time(*created_at),
            updated_at: time(*updated_at),
            resolved_at: resolved_at.and_then(time),
            version: *version,
            status_actor: status_actor.clone(),
            status_note: status_note.clone(),
            applied_requests: applied(applied_requests),
        };
        m.encode_raw(out);
    }

    fn decode_v1(bytes: &[u8]) -> Result<Self, RecordError> {
        let m = IncidentV1::decode(bytes)?;
        Ok(Incident {
            id: IncidentId::parse(&m.id).map_err(|e| RecordError::field("id", e))?,
            title: m.title,
            severity: code("severity", m.severity)?,
            status: code("status", m.status)?,
            signals: m
                .signals
                .into_iter()
                .map(|s| {
                    Ok(Signal {
                        alert_name: s.alert_name,
                        labels: s.labels,
                        annotations: s.annotations,
                        starts_at: read_opt_time("signals.starts_at", s.starts_at)?,
                        ends_at: read_opt_time("signals.ends_at", s.ends_at)?,
                        fingerprint: s.fingerprint,
                        status: code("signals.status", s.status)?,
                        generator_url: s.generator_url,
                    })
                })
                .collect::<Result<_, RecordError>>()?,
            affected_services: m
                .affected_services
                .iter()
                .map(|s| name("affected_services", s))
                .collect::<Result<_, _>>()?,
            namespace: m.namespace.map(|n| name("namespace", &n)).transpose()?,
            created_at: read_time("created_at", m.created_at)?,
            updated_at: read_time("updated_at", m.updated_at)?,
            resolved_at: read_opt_time("resolved_at", m.resolved_at)?,
            version: m.version,
            status_actor: m.status_actor,
            status_note: m.status_note,
            applied_requests: read_applied("applied_requests", m.applied_requests)?,
        })
    }
}

import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import incident_pb2 as _incident_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_STATE_UNSPECIFIED: _ClassVar[DecisionState]
    DECISION_STATE_INIT: _ClassVar[DecisionState]
    DECISION_STATE_ANALYZING: _ClassVar[DecisionState]
    DECISION_STATE_READY: _ClassVar[DecisionState]
    DECISION_STATE_EXECUTING: _ClassVar[DecisionState]
    DECISION_STATE_COMPLETED: _ClassVar[DecisionState]
    DECISION_STATE_ERROR: _ClassVar[DecisionState]
    DECISION_STATE_REJECTED: _ClassVar[DecisionState]
    DECISION_STATE_EXPIRED: _ClassVar[DecisionState]

class DecisionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_MODE_UNSPECIFIED: _ClassVar[DecisionMode]
    DECISION_MODE_AUTO: _ClassVar[DecisionMode]
    DECISION_MODE_DUAL: _ClassVar[DecisionMode]
    DECISION_MODE_CONSENSUS: _ClassVar[DecisionMode]

class ProposalSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPOSAL_SOURCE_UNSPECIFIED: _ClassVar[ProposalSource]
    PROPOSAL_SOURCE_EXPERT: _ClassVar[ProposalSource]
    PROPOSAL_SOURCE_LLM: _ClassVar[ProposalSource]
    PROPOSAL_SOURCE_CONSENSUS: _ClassVar[ProposalSource]

class FallbackReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FALLBACK_REASON_UNSPECIFIED: _ClassVar[FallbackReason]
    FALLBACK_REASON_TIMEOUT: _ClassVar[FallbackReason]
    FALLBACK_REASON_ERROR: _ClassVar[FallbackReason]
    FALLBACK_REASON_INVALID: _ClassVar[FallbackReason]
    FALLBACK_REASON_UNSAFE: _ClassVar[FallbackReason]
    FALLBACK_REASON_CIRCUIT_OPEN: _ClassVar[FallbackReason]
    FALLBACK_REASON_NOT_CONFIGURED: _ClassVar[FallbackReason]
    FALLBACK_REASON_RECOVERED: _ClassVar[FallbackReason]

class RiskLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_LEVEL_UNSPECIFIED: _ClassVar[RiskLevel]
    RISK_LEVEL_LOW: _ClassVar[RiskLevel]
    RISK_LEVEL_MEDIUM: _ClassVar[RiskLevel]
    RISK_LEVEL_HIGH: _ClassVar[RiskLevel]
    RISK_LEVEL_CRITICAL: _ClassVar[RiskLevel]

class CommandVerb(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_VERB_UNSPECIFIED: _ClassVar[CommandVerb]
    COMMAND_VERB_ROLLOUT_RESTART: _ClassVar[CommandVerb]
    COMMAND_VERB_ROLLOUT_UNDO: _ClassVar[CommandVerb]
    COMMAND_VERB_SCALE: _ClassVar[CommandVerb]

class TextWarning(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_WARNING_UNSPECIFIED: _ClassVar[TextWarning]
    TEXT_WARNING_MENTIONS_COMMAND: _ClassVar[TextWarning]
    TEXT_WARNING_MENTIONS_URL: _ClassVar[TextWarning]
    TEXT_WARNING_HIDDEN_CHARACTERS: _ClassVar[TextWarning]
    TEXT_WARNING_TRUNCATED: _ClassVar[TextWarning]

class VerificationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_STATE_UNSPECIFIED: _ClassVar[VerificationState]
    VERIFICATION_STATE_PENDING: _ClassVar[VerificationState]
    VERIFICATION_STATE_VERIFIED: _ClassVar[VerificationState]
    VERIFICATION_STATE_FAILED: _ClassVar[VerificationState]
DECISION_STATE_UNSPECIFIED: DecisionState
DECISION_STATE_INIT: DecisionState
DECISION_STATE_ANALYZING: DecisionState
DECISION_STATE_READY: DecisionState
DECISION_STATE_EXECUTING: DecisionState
DECISION_STATE_COMPLETED: DecisionState
DECISION_STATE_ERROR: DecisionState
DECISION_STATE_REJECTED: DecisionState
DECISION_STATE_EXPIRED: DecisionState
DECISION_MODE_UNSPECIFIED: DecisionMode
DECISION_MODE_AUTO: DecisionMode
DECISION_MODE_DUAL: DecisionMode
DECISION_MODE_CONSENSUS: DecisionMode
PROPOSAL_SOURCE_UNSPECIFIED: ProposalSource
PROPOSAL_SOURCE_EXPERT: ProposalSource
PROPOSAL_SOURCE_LLM: ProposalSource
PROPOSAL_SOURCE_CONSENSUS: ProposalSource
FALLBACK_REASON_UNSPECIFIED: FallbackReason
FALLBACK_REASON_TIMEOUT: FallbackReason
FALLBACK_REASON_ERROR: FallbackReason
FALLBACK_REASON_INVALID: FallbackReason
FALLBACK_REASON_UNSAFE: FallbackReason
FALLBACK_REASON_CIRCUIT_OPEN: FallbackReason
FALLBACK_REASON_NOT_CONFIGURED: FallbackReason
FALLBACK_REASON_RECOVERED: FallbackReason
RISK_LEVEL_UNSPECIFIED: RiskLevel
RISK_LEVEL_LOW: RiskLevel
RISK_LEVEL_MEDIUM: RiskLevel
RISK_LEVEL_HIGH: RiskLevel
RISK_LEVEL_CRITICAL: RiskLevel
COMMAND_VERB_UNSPECIFIED: CommandVerb
COMMAND_VERB_ROLLOUT_RESTART: CommandVerb
COMMAND_VERB_ROLLOUT_UNDO: CommandVerb
COMMAND_VERB_SCALE: CommandVerb
TEXT_WARNING_UNSPECIFIED: TextWarning
TEXT_WARNING_MENTIONS_COMMAND: TextWarning
TEXT_WARNING_MENTIONS_URL: TextWarning
TEXT_WARNING_HIDDEN_CHARACTERS: TextWarning
TEXT_WARNING_TRUNCATED: TextWarning
VERIFICATION_STATE_UNSPECIFIED: VerificationState
VERIFICATION_STATE_PENDING: VerificationState
VERIFICATION_STATE_VERIFIED: VerificationState
VERIFICATION_STATE_FAILED: VerificationState

class RemediationCommand(_message.Message):
    __slots__ = ("verb", "kind", "name", "namespace", "replicas")
    VERB_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    verb: CommandVerb
    kind: str
    name: str
    namespace: str
    replicas: int
    def __init__(self, verb: _Optional[_Union[CommandVerb, str]] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class DissentingOpinion(_message.Message):
    __slots__ = ("agent", "kubectl", "reasoning", "text_warnings")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    KUBECTL_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    TEXT_WARNINGS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    kubectl: str
    reasoning: str
    text_warnings: _containers.RepeatedScalarFieldContainer[TextWarning]
    def __init__(self, agent: _Optional[str] = ..., kubectl: _Optional[str] = ..., reasoning: _Optional[str] = ..., text_warnings: _Optional[_Iterable[_Union[TextWarning, str]]] = ...) -> None: ...

class RefusedAgent(_message.Message):
    __slots__ = ("agent", "reason", "detail")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    agent: str
    reason: FallbackReason
    detail: str
    def __init__(self, agent: _Optional[str] = ..., reason: _Optional[_Union[FallbackReason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("source", "provider", "model", "command", "kubectl", "description", "reasoning", "risk", "confidence", "matched_rule", "from_cache", "analysis_latency", "fallback_reason", "consensus_id", "consensus_score", "agent_count", "dissenting_opinions", "model_confidence", "text_warnings", "refused_agents", "policy_hash")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    KUBECTL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULE_FIELD_NUMBER: _ClassVar[int]
    FROM_CACHE_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_LATENCY_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_SCORE_FIELD_NUMBER: _ClassVar[int]
    AGENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DISSENTING_OPINIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_WARNINGS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_AGENTS_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    source: ProposalSource
    provider: str
    model: str
    command: RemediationCommand
    kubectl: str
    description: str
    reasoning: str
    risk: RiskLevel
    confidence: float
    matched_rule: str
    from_cache: bool
    analysis_latency: _duration_pb2.Duration
    fallback_reason: FallbackReason
    consensus_id: str
    consensus_score: float
    agent_count: int
    dissenting_opinions: _containers.RepeatedCompositeFieldContainer[DissentingOpinion]
    model_confidence: float
    text_warnings: _containers.RepeatedScalarFieldContainer[TextWarning]
    refused_agents: _containers.RepeatedCompositeFieldContainer[RefusedAgent]
    policy_hash: str
    def __init__(self, source: _Optional[_Union[ProposalSource, str]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., command: _Optional[_Union[RemediationCommand, _Mapping]] = ..., kubectl: _Optional[str] = ..., description: _Optional[str] = ..., reasoning: _Optional[str] = ..., risk: _Optional[_Union[RiskLevel, str]] = ..., confidence: _Optional[float] = ..., matched_rule: _Optional[str] = ..., from_cache: _Optional[bool] = ..., analysis_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., fallback_reason: _Optional[_Union[FallbackReason, str]] = ..., consensus_id: _Optional[str] = ..., consensus_score: _Optional[float] = ..., agent_count: _Optional[int] = ..., dissenting_opinions: _Optional[_Iterable[_Union[DissentingOpinion, _Mapping]]] = ..., model_confidence: _Optional[float] = ..., text_warnings: _Optional[_Iterable[_Union[TextWarning, str]]] = ..., refused_agents: _Optional[_Iterable[_Union[RefusedAgent, _Mapping]]] = ..., policy_hash: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("token", "incident_id", "state", "proposal", "version", "created_at", "updated_at", "expires_at", "analysis_deadline", "error", "decided_by", "decided_at", "reason", "output", "mode", "completed_at", "decided_by_method", "approvals", "approvals_required", "dry_run", "verification")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_METHOD_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    token: str
    incident_id: str
    state: DecisionState
    proposal: Proposal
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    analysis_deadline: _timestamp_pb2.Timestamp
    error: str
    decided_by: str
    decided_at: _timestamp_pb2.Timestamp
    reason: str
    output: str
    mode: DecisionMode
    completed_at: _timestamp_pb2.Timestamp
    decided_by_method: str
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    approvals_required: int
    dry_run: DryRunResult
    verification: Verification
    def __init__(self, token: _Optional[str] = ..., incident_id: _Optional[str] = ..., state: _Optional[_Union[DecisionState, str]] = ..., proposal: _Optional[_Union[Proposal, _Mapping]] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., analysis_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., output: _Optional[str] = ..., mode: _Optional[_Union[DecisionMode, str]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_by_method: _Optional[str] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., approvals_required: _Optional[int] = ..., dry_run: _Optional[_Union[DryRunResult, _Mapping]] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("state", "summary", "until", "decided_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    state: VerificationState
    summary: str
    until: _timestamp_pb2.Timestamp
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[VerificationState, str]] = ..., summary: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("subject", "method", "approved_at")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    method: str
    approved_at: _timestamp_pb2.Timestamp
    def __init__(self, subject: _Optional[str] = ..., method: _Optional[str] = ..., approved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DryRunResult(_message.Message):
    __slots__ = ("would_succeed", "summary", "checked_at")
    WOULD_SUCCEED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    would_succeed: bool
    summary: str
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, would_succeed: _Optional[bool] = ..., summary: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetOrCreateDecisionRequest(_message.Message):
    __slots__ = ("incident_id", "mode", "wait", "timeout")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    mode: DecisionMode
    wait: bool
    timeout: _duration_pb2.Duration
    def __init__(self, incident_id: _Optional[str] = ..., mode: _Optional[_Union[DecisionMode, str]] = ..., wait: _Optional[bool] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetOrCreateDecisionResponse(_message.Message):
    __slots__ = ("decision", "created")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    created: bool
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class ListDecisionsRequest(_message.Message):
    __slots__ = ("incident_id",)
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    def __init__(self, incident_id: _Optional[str] = ...) -> None: ...

class ListDecisionsResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class ListCurrentDecisionsRequest(_message.Message):
    __slots__ = ("incident_ids",)
    INCIDENT_IDS_FIELD_NUMBER: _ClassVar[int]
    incident_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, incident_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListCurrentDecisionsResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class ApproveDecisionRequest(_message.Message):
    __slots__ = ("token", "actor", "expected_version", "request_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    actor: str
    expected_version: int
    request_id: str
    def __init__(self, token: _Optional[str] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ApproveDecisionResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class RejectDecisionRequest(_message.Message):
    __slots__ = ("token", "actor", "reason", "expected_version", "request_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    actor: str
    reason: str
    expected_version: int
    request_id: str
    def __init__(self, token: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class RejectDecisionResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class CompleteDecisionRequest(_message.Message):
    __slots__ = ("token", "success", "output", "request_id", "lease_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    success: bool
    output: str
    request_id: str
    lease_id: str
    def __init__(self, token: _Optional[str] = ..., success: _Optional[bool] = ..., output: _Optional[str] = ..., request_id: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class ClaimExecutionRequest(_message.Message):
    __slots__ = ("token", "runner_id", "lease_duration")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    token: str
    runner_id: str
    lease_duration: _duration_pb2.Duration
    def __init__(self, token: _Optional[str] = ..., runner_id: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ClaimExecutionResponse(_message.Message):
    __slots__ = ("lease_id", "expires_at", "decision")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    expires_at: _timestamp_pb2.Timestamp
    decision: Decision
    def __init__(self, lease_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class CompleteDecisionResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class WatchDecisionRequest(_message.Message):
    __slots__ = ("token", "after_version")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    token: str
    after_version: int
    def __init__(self, token: _Optional[str] = ..., after_version: _Optional[int] = ...) -> None: ...

class WatchDecisionResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class WatchDecisionsRequest(_message.Message):
    __slots__ = ("incident_id", "state", "severity", "include_incidents")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    state: DecisionState
    severity: _incident_pb2.Severity
    include_incidents: bool
    def __init__(self, incident_id: _Optional[str] = ..., state: _Optional[_Union[DecisionState, str]] = ..., severity: _Optional[_Union[_incident_pb2.Severity, str]] = ..., include_incidents: _Optional[bool] = ...) -> None: ...

class WatchDecisionsResponse(_message.Message):
    __slots__ = ("decision", "incident")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    incident: _incident_pb2.Incident
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., incident: _Optional[_Union[_incident_pb2.Incident, _Mapping]] = ...) -> None: ...

import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import incident_pb2 as _incident_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TimeRange(_message.Message):
    __slots__ = ("to", "all_time", "last")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    ALL_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    all_time: bool
    last: _duration_pb2.Duration
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., all_time: _Optional[bool] = ..., last: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., **kwargs) -> None: ...

class GetIncidentSummaryRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class SeverityCount(_message.Message):
    __slots__ = ("severity", "count")
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    severity: _incident_pb2.Severity
    count: int
    def __init__(self, severity: _Optional[_Union[_incident_pb2.Severity, str]] = ..., count: _Optional[int] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: _incident_pb2.IncidentStatus
    count: int
    def __init__(self, status: _Optional[_Union[_incident_pb2.IncidentStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class GetIncidentSummaryResponse(_message.Message):
    __slots__ = ("created", "open", "by_severity", "by_status", "covered", "current_by_status")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    BY_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    created: int
    open: int
    by_severity: _containers.RepeatedCompositeFieldContainer[SeverityCount]
    by_status: _containers.RepeatedCompositeFieldContainer[StatusCount]
    covered: TimeRange
    current_by_status: _containers.RepeatedCompositeFieldContainer[StatusCount]
    def __init__(self, created: _Optional[int] = ..., open: _Optional[int] = ..., by_severity: _Optional[_Iterable[_Union[SeverityCount, _Mapping]]] = ..., by_status: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ..., covered: _Optional[_Union[TimeRange, _Mapping]] = ..., current_by_status: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ...) -> None: ...

class GetResolutionStatsRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class ResolutionFigures(_message.Message):
    __slots__ = ("count", "p50", "p95", "p99", "mean")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    count: int
    p50: _duration_pb2.Duration
    p95: _duration_pb2.Duration
    p99: _duration_pb2.Duration
    mean: _duration_pb2.Duration
    def __init__(self, count: _Optional[int] = ..., p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., mean: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SeverityResolution(_message.Message):
    __slots__ = ("severity", "figures")
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    severity: _incident_pb2.Severity
    figures: ResolutionFigures
    def __init__(self, severity: _Optional[_Union[_incident_pb2.Severity, str]] = ..., figures: _Optional[_Union[ResolutionFigures, _Mapping]] = ...) -> None: ...

class GetResolutionStatsResponse(_message.Message):
    __slots__ = ("overall", "by_severity", "covered")
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    BY_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    overall: ResolutionFigures
    by_severity: _containers.RepeatedCompositeFieldContainer[SeverityResolution]
    covered: TimeRange
    def __init__(self, overall: _Optional[_Union[ResolutionFigures, _Mapping]] = ..., by_severity: _Optional[_Iterable[_Union[SeverityResolution, _Mapping]]] = ..., covered: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class GetAiPerformanceRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class SourcePerformance(_message.Message):
    __slots__ = ("source", "proposals", "approval_rate", "rejection_rate", "execution_success_rate", "latency_p50", "latency_p95", "approvals", "rejections", "executions_succeeded", "executions_failed", "fixes_verified", "fixes_not_verified")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_RATE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_RATE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FAILED_FIELD_NUMBER: _ClassVar[int]
    FIXES_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    FIXES_NOT_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    source: str
    proposals: int
    approval_rate: float
    rejection_rate: float
    execution_success_rate: float
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    approvals: int
    rejections: int
    executions_succeeded: int
    executions_failed: int
    fixes_verified: int
    fixes_not_verified: int
    def __init__(self, source: _Optional[str] = ..., proposals: _Optional[int] = ..., approval_rate: _Optional[float] = ..., rejection_rate: _Optional[float] = ..., execution_success_rate: _Optional[float] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., approvals: _Optional[int] = ..., rejections: _Optional[int] = ..., executions_succeeded: _Optional[int] = ..., executions_failed: _Optional[int] = ..., fixes_verified: _Optional[int] = ..., fixes_not_verified: _Optional[int] = ...) -> None: ...

class FallbackCount(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetAiPerformanceResponse(_message.Message):
    __slots__ = ("sources", "llm_win_rate", "fallbacks", "cache_hit_rate", "mean_consensus_score", "covered", "decisions", "proposals", "consensus_proposals")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    LLM_WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_CONSENSUS_SCORE_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[SourcePerformance]
    llm_win_rate: float
    fallbacks: _containers.RepeatedCompositeFieldContainer[FallbackCount]
    cache_hit_rate: float
    mean_consensus_score: float
    covered: TimeRange
    decisions: int
    proposals: int
    consensus_proposals: int
    def __init__(self, sources: _Optional[_Iterable[_Union[SourcePerformance, _Mapping]]] = ..., llm_win_rate: _Optional[float] = ..., fallbacks: _Optional[_Iterable[_Union[FallbackCount, _Mapping]]] = ..., cache_hit_rate: _Optional[float] = ..., mean_consensus_score: _Optional[float] = ..., covered: _Optional[_Union[TimeRange, _Mapping]] = ..., decisions: _Optional[int] = ..., proposals: _Optional[int] = ..., consensus_proposals: _Optional[int] = ...) -> None: ...

class GetAffectedServicesRequest(_message.Message):
    __slots__ = ("range", "limit")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    limit: int
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class ServiceCount(_message.Message):
    __slots__ = ("service", "incidents")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    service: str
    incidents: int
    def __init__(self, service: _Optional[str] = ..., incidents: _Optional[int] = ...) -> None: ...

class GetAffectedServicesResponse(_message.Message):
    __slots__ = ("services", "covered")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceCount]
    covered: TimeRange
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceCount, _Mapping]]] = ..., covered: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

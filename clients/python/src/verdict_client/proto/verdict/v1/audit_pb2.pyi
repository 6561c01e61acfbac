import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditEvent(_message.Message):
    __slots__ = ("position", "chain", "seq", "time", "action", "subject", "auth_method", "roles", "actor", "peer", "rpc", "request_id", "incident_id", "token", "version_before", "version_after", "outcome", "detail", "detail_cut", "alg", "key_id", "prev", "hash", "json")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    AUTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    RPC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_BEFORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_AFTER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_CUT_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    position: str
    chain: str
    seq: int
    time: _timestamp_pb2.Timestamp
    action: str
    subject: str
    auth_method: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    peer: str
    rpc: str
    request_id: str
    incident_id: str
    token: str
    version_before: int
    version_after: int
    outcome: str
    detail: str
    detail_cut: bool
    alg: str
    key_id: str
    prev: str
    hash: str
    json: str
    def __init__(self, position: _Optional[str] = ..., chain: _Optional[str] = ..., seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ..., subject: _Optional[str] = ..., auth_method: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ..., peer: _Optional[str] = ..., rpc: _Optional[str] = ..., request_id: _Optional[str] = ..., incident_id: _Optional[str] = ..., token: _Optional[str] = ..., version_before: _Optional[int] = ..., version_after: _Optional[int] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ..., detail_cut: _Optional[bool] = ..., alg: _Optional[str] = ..., key_id: _Optional[str] = ..., prev: _Optional[str] = ..., hash: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...

class AuditFilter(_message.Message):
    __slots__ = ("to", "subject", "incident_id", "token", "action", "outcome")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    subject: str
    incident_id: str
    token: str
    action: str
    outcome: str
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subject: _Optional[str] = ..., incident_id: _Optional[str] = ..., token: _Optional[str] = ..., action: _Optional[str] = ..., outcome: _Optional[str] = ..., **kwargs) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: AuditFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[AuditFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchAuditEventsRequest(_message.Message):
    __slots__ = ("filter", "after")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    filter: AuditFilter
    after: str
    def __init__(self, filter: _Optional[_Union[AuditFilter, _Mapping]] = ..., after: _Optional[str] = ...) -> None: ...

class WatchAuditEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: AuditEvent
    def __init__(self, event: _Optional[_Union[AuditEvent, _Mapping]] = ...) -> None: ...

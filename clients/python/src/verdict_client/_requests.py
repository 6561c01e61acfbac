"""Keyword arguments in, request messages out: shared by :class:`Client` and
:class:`AsyncClient` so both build exactly the same requests."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, Union

from google.protobuf import duration_pb2, timestamp_pb2

from .proto.verdict.v1 import audit_pb2 as apb
from .proto.verdict.v1 import decision_pb2 as dpb
from .proto.verdict.v1 import incident_pb2 as ipb
from .proto.verdict.v1 import stats_pb2 as spb

#: A severity as the enum value (``Severity.SEVERITY_P2``) or its name,
#: with or without the prefix and in any case (``"P2"``, ``"severity_p2"``).
SeverityLike = Union[ipb.Severity, int, str]
#: An incident status, e.g. ``IncidentStatus.INCIDENT_STATUS_RESOLVED`` or ``"resolved"``.
IncidentStatusLike = Union[ipb.IncidentStatus, int, str]
#: A decision state, e.g. ``DecisionState.DECISION_STATE_READY`` or ``"ready"``.
DecisionStateLike = Union[dpb.DecisionState, int, str]
#: A decision mode, e.g. ``DecisionMode.DECISION_MODE_CONSENSUS`` or ``"consensus"``.
DecisionModeLike = Union[dpb.DecisionMode, int, str]
#: A span of time: seconds, or a :class:`datetime.timedelta`.
DurationLike = Union[float, int, datetime.timedelta]

def enum_value(enum: Any, prefix: str, value: int | str | None) -> Any:
    """The numeric value of a proto enum given as a number or a name.

    Raises :class:`ValueError` for unknown names, so a typo fails here and
    not on the server.
    """
    if value is None:
        return 0
    if isinstance(value, str):
        name = value.strip().upper()
        if not name.startswith(prefix):
            name = prefix + name
        try:
            return enum.Value(name)
        except ValueError:
            known = ", ".join(n.removeprefix(prefix) for n in enum.keys())
            raise ValueError(f"unknown {prefix.rstrip('_').lower()} {value!r}; one of {known}") from None
    return int(value)


def duration(value: DurationLike | None) -> duration_pb2.Duration | None:
    """A ``google.protobuf.Duration`` from seconds or a timedelta."""
    if value is None:
        return None
    d = duration_pb2.Duration()
    if isinstance(value, datetime.timedelta):
        d.FromTimedelta(value)
    else:
        d.FromNanoseconds(int(round(float(value) * 1e9)))
    return d


def timestamp(value: datetime.datetime) -> timestamp_pb2.Timestamp:
    """A ``google.protobuf.Timestamp`` from an aware datetime (naive ones are UTC)."""
    ts = timestamp_pb2.Timestamp()
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    ts.FromDatetime(value)
    return ts


def time_range(
    since: datetime.datetime | None, until: datetime.datetime | None, all_time: bool
) -> spb.TimeRange:
    r = spb.TimeRange(all_time=all_time)
    if since is not None:
        getattr(r, "from").CopyFrom(timestamp(since))
    if until is not None:
        r.to.CopyFrom(timestamp(until))
    return r


def create_incident(
    *,
    title: str,
    severity: SeverityLike,
    affected_services: Iterable[str],
    namespace: str,
    signals: Iterable[ipb.Signal],
    id: str,
    status: IncidentStatusLike | None,
    request_id: str,
) -> ipb.CreateIncidentRequest:
    incident = ipb.Incident(
        id=id,
        title=title,
        severity=enum_value(ipb.Severity, "SEVERITY_", severity),
        status=enum_value(ipb.IncidentStatus, "INCIDENT_STATUS_", status),
        affected_services=list(affected_services),
        namespace=namespace,
        signals=list(signals),
    )
    return ipb.CreateIncidentRequest(incident=incident, request_id=request_id)


def list_incidents(
    *,
    status: IncidentStatusLike | None,
    severity: SeverityLike | None,
    service: str,
    page_size: int,
    page_token: str,
) -> ipb.ListIncidentsRequest:
    return ipb.ListIncidentsRequest(
        status=enum_value(ipb.IncidentStatus, "INCIDENT_STATUS_", status),
        severity=enum_value(ipb.Severity, "SEVERITY_", severity),
        service=service,
        page_size=page_size,
        page_token=page_token,
    )


def update_incident_status(
    *, id: str, status: IncidentStatusLike, actor: str, note: str
) -> ipb.UpdateIncidentStatusRequest:
    return ipb.UpdateIncidentStatusRequest(
        id=id,
        status=enum_value(ipb.IncidentStatus, "INCIDENT_STATUS_", status),
        actor=actor,
        note=note,
    )


def get_or_create_decision(
    *,
    incident_id: str,
    mode: DecisionModeLike | None,
    wait: bool,
    timeout: DurationLike | None,
) -> dpb.GetOrCreateDecisionRequest:
    return dpb.GetOrCreateDecisionRequest(
        incident_id=incident_id,
        mode=enum_value(dpb.DecisionMode, "DECISION_MODE_", mode),
        wait=wait,
        timeout=duration(timeout),
    )


def watch_decisions(
    *,
    incident_id: str,
    state: DecisionStateLike | None,
    severity: SeverityLike | None,
) -> dpb.WatchDecisionsRequest:
    return dpb.WatchDecisionsRequest(
        incident_id=incident_id,
        state=enum_value(dpb.DecisionState, "DECISION_STATE_", state),
        severity=enum_value(ipb.Severity, "SEVERITY_", severity),
    )


def audit_filter(
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    subject: str = "",
    incident_id: str = "",
    token: str = "",
    action: str = "",
    outcome: str = "",
) -> apb.AuditFilter:
    """An ``AuditFilter``; every argument set must match. ``until`` is for
    listings only (a watch has no end)."""
    f = apb.AuditFilter(
        subject=subject, incident_id=incident_id, token=token, action=action, outcome=outcome
    )
    if since is not None:
        # `from` is a Python keyword: the field is reached by name.
        getattr(f, "from").CopyFrom(timestamp(since))
    if until is not None:
        f.to.CopyFrom(timestamp(until))
    return f

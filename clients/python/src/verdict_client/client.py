"""The synchronous client: one method per RPC of verdict's services,
keyword arguments in, typed messages out, :mod:`verdict_client.errors` raised.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from . import _requests as req
from ._watch import TERMINAL_STATES, Reconnect, SeenVersions
from .errors import from_rpc_error
from .proto.verdict.v1 import audit_pb2 as apb
from .proto.verdict.v1 import audit_pb2_grpc as agrpc
from .proto.verdict.v1 import decision_pb2 as dpb
from .proto.verdict.v1 import decision_pb2_grpc as dgrpc
from .proto.verdict.v1 import identity_pb2 as idpb
from .proto.verdict.v1 import identity_pb2_grpc as idgrpc
from .proto.verdict.v1 import incident_pb2 as ipb
from .proto.verdict.v1 import incident_pb2_grpc as igrpc
from .proto.verdict.v1 import stats_pb2 as spb
from .proto.verdict.v1 import stats_pb2_grpc as sgrpc

__all__ = ["Client", "DEFAULT_ADDRESS", "channel_options", "normalize_target"]

#: Where ``verdict serve`` listens by default.
DEFAULT_ADDRESS = "127.0.0.1:50051"

Metadata = Sequence[tuple[str, str]]
Req = TypeVar("Req")
R = TypeVar("R")


def normalize_target(address: str) -> str:
    """``host:port`` for grpcio; ``http://`` and ``https://`` prefixes (as the
    CLI's ``--addr`` takes them) are accepted and dropped."""
    for scheme in ("http://", "https://"):
        if address.startswith(scheme):
            address = address[len(scheme) :]
    return address.rstrip("/")


def tls_credentials(
    credentials: grpc.ChannelCredentials | None,
    root_certificates: bytes | None,
    client_cert: bytes | None,
    client_key: bytes | None,
) -> grpc.ChannelCredentials | None:
    """The channel credentials for the TLS options: ``root_certificates``
    (PEM CA of the server's certificate; None: the system roots),
    ``client_cert`` and ``client_key`` (PEM, both or neither: mTLS). None
    when no TLS option is given (plain text)."""
    if client_cert is None and client_key is not None or client_cert is not None and client_key is None:
        raise ValueError("client_cert and client_key go together")
    if root_certificates is None and client_cert is None:
        return credentials
    if credentials is not None:
        raise ValueError("give either credentials or root_certificates/client_cert/client_key")
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates, private_key=client_key, certificate_chain=client_cert
    )


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Keepalive pings so a dead connection under a quiet watch is noticed
    (and the watch resumed) within ~40 s; reconnect backoff capped at 5 s
    (grpc's default grows to 2 minutes) so a restarted server is found
    again quickly; plus any ``extra`` options (later ones win)."""
    return [
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 5_000),
        *extra,
    ]


class Client:
    """A synchronous verdict client over one gRPC channel.

    >>> with Client("127.0.0.1:50051") as verdict:
    ...     incident = verdict.create_incident(title="Checkout down", severity="P2",
    ...                                        affected_services=["checkout"])

    ``deadline`` is the default per-call deadline in seconds (None: none);
    every method also takes its own ``deadline=``. ``metadata`` is sent
    with every call. ``token`` is the bearer token sent as
    ``authorization: Bearer …`` with every call: a string, or a callable
    asked before each call (a token provider that refreshes, e.g. an OIDC
    token). Over TLS, give ``root_certificates`` (PEM bytes of the CA that
    signs the server's certificate; omit it to trust the system roots) and,
    for mTLS, ``client_cert`` and ``client_key`` (PEM bytes); or pass your
    own ``credentials=grpc.ssl_channel_credentials(...)``.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.Channel | None = None,
        deadline: float | None = None,
        metadata: Metadata = (),
        token: str | Callable[[], str] | None = None,
        options: Sequence[tuple[str, Any]] = (),
        root_certificates: bytes | None = None,
        client_cert: bytes | None = None,
        client_key: bytes | None = None,
    ) -> None:
        credentials = tls_credentials(credentials, root_certificates, client_cert, client_key)
        if channel is None:
            target = normalize_target(address)
            if credentials is not None:
                channel = grpc.secure_channel(target, credentials, options=channel_options(options))
            else:
                channel = grpc.insecure_channel(target, options=channel_options(options))
        self._channel = channel
        self._deadline = deadline
        self._metadata = tuple(metadata)
        self._token = token
        self._incidents = igrpc.IncidentServiceStub(channel)
        self._decisions = dgrpc.DecisionServiceStub(channel)
        self._stats = sgrpc.StatsServiceStub(channel)
        self._audit = agrpc.AuditServiceStub(channel)
        self._identity = idgrpc.IdentityServiceStub(channel)

    def _call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata of one call: ``metadata`` plus the bearer token."""
        token = self._token() if callable(self._token) else self._token
        if not token:
            return self._metadata
        return (*self._metadata, ("authorization", f"Bearer {token}"))

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: grpc.UnaryUnaryMultiCallable[Req, R], request: Req, deadline: float | None
    ) -> R:
        try:
            return method(
                request,
                timeout=self._deadline if deadline is None else deadline,
                metadata=self._call_metadata(),
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # -- IncidentService -------------------------------------------------

    def create_incident(
        self,
        *,
        title: str,
        severity: req.SeverityLike,
        affected_services: Iterable[str] = (),
        namespace: str = "",
        signals: Iterable[ipb.Signal] = (),
        id: str = "",
        status: req.IncidentStatusLike | None = None,
        request_id: str = "",
        deadline: float | None = None,
    ) -> ipb.Incident:
        """Creates an incident (``id`` is generated when empty). With a
        ``request_id``, a retry returns the incident the first call created."""
        request = req.create_incident(
            title=title,
            severity=severity,
            affected_services=affected_services,
            namespace=namespace,
            signals=signals,
            id=id,
            status=status,
            request_id=request_id,
        )
        return self._call(self._incidents.CreateIncident, request, deadline).incident

    def ingest_signals(
        self, *, signals: Iterable[ipb.Signal], deadline: float | None = None
    ) -> list[ipb.Incident]:
        """Groups a batch of alerts into incidents; returns the incidents touched."""
        request = ipb.IngestSignalsRequest(signals=list(signals))
        return list(self._call(self._incidents.IngestSignals, request, deadline).incidents)

    def get_incident(self, id: str, *, deadline: float | None = None) -> ipb.Incident:
        """One incident by id."""
        request = ipb.GetIncidentRequest(id=id)
        return self._call(self._incidents.GetIncident, request, deadline).incident

    def list_incidents(
        self,
        *,
        status: req.IncidentStatusLike | None = None,
        severity: req.SeverityLike | None = None,
        service: str = "",
        page_size: int = 0,
        page_token: str = "",
        deadline: float | None = None,
    ) -> ipb.ListIncidentsResponse:
        """One page of incidents, newest first; keep paging with
        ``page_token=page.next_page_token`` while it is set (or use
        :meth:`iter_incidents`)."""
        request = req.list_incidents(
            status=status,
            severity=severity,
            service=service,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._incidents.ListIncidents, request, deadline)

    def iter_incidents(
        self,
        *,
        status: req.IncidentStatusLike | None = None,
        severity: req.SeverityLike | None = None,
        service: str = "",
        page_size: int = 0,
        deadline: float | None = None,
    ) -> Iterator[ipb.Incident]:
        """Every matching incident, newest first, fetched page by page."""
        token = ""
        while True:
            page = self.list_incidents(
                status=status,
                severity=severity,
                service=service,
                page_size=page_size,
                page_token=token,
                deadline=deadline,
            )
            yield from page.incidents
            token = page.next_page_token
            if not token:
                return

    def update_incident_status(
        self,
        id: str,
        *,
        status: req.IncidentStatusLike,
        actor: str = "",
        note: str = "",
        deadline: float | None = None,
    ) -> ipb.Incident:
        """Changes an incident's status; RESOLVED sets ``resolved_at``."""
        request = req.update_incident_status(id=id, status=status, actor=actor, note=note)
        return self._call(self._incidents.UpdateIncidentStatus, request, deadline).incident

    # -- DecisionService -------------------------------------------------

    def get_or_create_decision(
        self,
        incident_id: str,
        *,
        mode: req.DecisionModeLike | None = None,
        wait: bool = False,
        timeout: req.DurationLike | None = None,
        deadline: float | None = None,
    ) -> dpb.GetOrCreateDecisionResponse:
        """The incident's current decision, issuing a new token when there is
        none usable. With ``wait`` it returns once the token is READY, at the
        latest after ``timeout`` (the analysis deadline, seconds or
        timedelta), with the expert proposal. ``.created`` says whether this
        call issued the token."""
        request = req.get_or_create_decision(
            incident_id=incident_id, mode=mode, wait=wait, timeout=timeout
        )
        return self._call(self._decisions.GetOrCreateDecision, request, deadline)

    def get_decision(self, token: str, *, deadline: float | None = None) -> dpb.Decision:
        """One decision by token."""
        request = dpb.GetDecisionRequest(token=token)
        return self._call(self._decisions.GetDecision, request, deadline).decision

    def list_decisions(self, incident_id: str, *, deadline: float | None = None) -> list[dpb.Decision]:
        """An incident's decisions, newest first."""
        request = dpb.ListDecisionsRequest(incident_id=incident_id)
        return list(self._call(self._decisions.ListDecisions, request, deadline).decisions)

    def list_current_decisions(
        self, incident_ids: Iterable[str], *, deadline: float | None = None
    ) -> list[dpb.Decision]:
        """The current decision of each of up to 500 incidents in one call, in
        the order asked (incidents without one left out)."""
        request = dpb.ListCurrentDecisionsRequest(incident_ids=list(incident_ids))
        return list(self._call(self._decisions.ListCurrentDecisions, request, deadline).decisions)

    def approve_decision(
        self,
        token: str,
        *,
        actor: str,
        expected_version: int = 0,
        deadline: float | None = None,
    ) -> dpb.Decision:
        """READY → EXECUTING. With ``expected_version`` (the version you
        showed the person) it fails with FailedPrecondition if the decision
        changed since."""
        request = dpb.ApproveDecisionRequest(token=token, actor=actor, expected_version=expected_version)
        return self._call(self._decisions.ApproveDecision, request, deadline).decision

    def reject_decision(
        self,
        token: str,
        *,
        actor: str,
        reason: str = "",
        expected_version: int = 0,
        deadline: float | None = None,
    ) -> dpb.Decision:
        """READY → REJECTED."""
        request = dpb.RejectDecisionRequest(
            token=token, actor=actor, reason=reason, expected_version=expected_version
        )
        return self._call(self._decisions.RejectDecision, request, deadline).decision

    def claim_execution(
        self,
        token: str,
        *,
        runner_id: str,
        lease: req.DurationLike = 30,
        deadline: float | None = None,
    ) -> dpb.ClaimExecutionResponse:
        """Claims an EXECUTING decision for this runner for ``lease`` (seconds
        or timedelta, 1 s to 10 min), so no other runner runs it; claiming
        again before it runs out renews it. ``.lease_id`` goes to
        :meth:`complete_decision`. Raises FailedPrecondition while another
        runner holds it."""
        request = dpb.ClaimExecutionRequest(
            token=token, runner_id=runner_id, lease_duration=req.duration(lease)
        )
        return self._call(self._decisions.ClaimExecution, request, deadline)

    def complete_decision(
        self,
        token: str,
        *,
        success: bool,
        output: str = "",
        lease_id: str = "",
        deadline: float | None = None,
    ) -> dpb.Decision:
        """EXECUTING → COMPLETED (``success``) or ERROR, for an external executor.
        Once the decision was claimed, ``lease_id`` must be the claim's."""
        request = dpb.CompleteDecisionRequest(token=token, success=success, output=output)
        if lease_id:
            request.lease_id = lease_id
        return self._call(self._decisions.CompleteDecision, request, deadline).decision

    def watch_decision(
        self,
        token: str,
        *,
        after_version: int = 0,
        max_retries: int | None = 10,
    ) -> Iterator[dpb.Decision]:
        """The decision now (unless ``after_version`` is set), then each change,
        in order; ends after a terminal state (COMPLETED, ERROR, REJECTED,
        EXPIRED). When the stream drops (UNAVAILABLE: server restart, lost
        connection) it reconnects with ``after_version`` = the last version
        yielded, so nothing is lost or repeated; after ``max_retries``
        consecutive failed reconnects (None: never give up) it raises
        :class:`~verdict_client.errors.Unavailable`. Breaking out of the loop
        cancels the stream."""
        last: int | None = after_version or None
        reconnect = Reconnect(max_retries)
        while True:
            request = dpb.WatchDecisionRequest(token=token, after_version=last or 0)
            call = self._decisions.WatchDecision(request, metadata=self._call_metadata())
            try:
                for message in call:
                    decision = message.decision
                    if last is not None and decision.version <= last:
                        continue
                    last = decision.version
                    reconnect.progressed()
                    yield decision
                    if decision.state in TERMINAL_STATES:
                        return
                return
            except grpc.RpcError as e:
                error = from_rpc_error(e)
            finally:
                call.cancel()
            delay = reconnect.retry_after(error)
            if delay is None:
                raise error
            time.sleep(delay)

    def watch_decisions(
        self,
        *,
        incident_id: str = "",
        state: req.DecisionStateLike | None = None,
        severity: req.SeverityLike | None = None,
        max_retries: int | None = 10,
    ) -> Iterator[dpb.Decision]:
        """Every change of every decision matching the filter (for
        dashboards), until the caller stops. A dropped stream is reopened
        like :meth:`watch_decision`'s; a change already yielded is never
        yielded again (changes made while disconnected are not replayed:
        read the current state with :meth:`get_decision` if it matters)."""
        request = req.watch_decisions(incident_id=incident_id, state=state, severity=severity)
        seen = SeenVersions()
        reconnect = Reconnect(max_retries)
        while True:
            call = self._decisions.WatchDecisions(request, metadata=self._call_metadata())
            try:
                for message in call:
                    reconnect.progressed()
                    if seen.is_new(message.decision):
                        yield message.decision
                return
            except grpc.RpcError as e:
                error = from_rpc_error(e)
            finally:
                call.cancel()
            delay = reconnect.retry_after(error)
            if delay is None:
                raise error
            time.sleep(delay)

    # -- AuditService ----------------------------------------------------

    def list_audit_events(
        self,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        subject: str = "",
        incident_id: str = "",
        token: str = "",
        action: str = "",
        outcome: str = "",
        page_size: int = 0,
        page_token: str = "",
        deadline: float | None = None,
    ) -> apb.ListAuditEventsResponse:
        """One page of audit events, oldest first; every argument set must
        match (``action`` e.g. ``"approved"``, ``outcome`` ``"OK"`` or a gRPC
        code name). Keep paging with ``page_token=page.next_page_token``
        while it is set: a page may be short, even empty, with a token."""
        request = apb.ListAuditEventsRequest(
            filter=req.audit_filter(
                since=since,
                until=until,
                subject=subject,
                incident_id=incident_id,
                token=token,
                action=action,
                outcome=outcome,
            ),
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._audit.ListAuditEvents, request, deadline)

    def watch_audit_events(
        self,
        *,
        after: str = "",
        since: datetime.datetime | None = None,
        subject: str = "",
        incident_id: str = "",
        token: str = "",
        action: str = "",
        outcome: str = "",
        max_retries: int | None = 10,
    ) -> Iterator[apb.AuditEvent]:
        """Every audit event matching the filter as it is appended, until the
        caller stops: after the event at position ``after`` when set, else
        from ``since`` (replaying kept events) when set, else from the next
        event. When the stream drops (UNAVAILABLE: server restart, lost
        connection) it reconnects after the last event yielded, so nothing
        is lost or repeated; after ``max_retries`` consecutive failed
        reconnects (None: never give up) it raises
        :class:`~verdict_client.errors.Unavailable`."""
        last = after
        reconnect = Reconnect(max_retries)
        while True:
            request = apb.WatchAuditEventsRequest(
                filter=req.audit_filter(
                    # Once an event was seen, its position says where to resume.
                    since=None if last else since,
                    subject=subject,
                    incident_id=incident_id,
                    token=token,
                    action=action,
                    outcome=outcome,
                ),
                after=last,
            )
            call = self._audit.WatchAuditEvents(request, metadata=self._call_metadata())
            try:
                for message in call:
                    reconnect.progressed()
                    last = message.event.position
                    yield message.event
                return
            except grpc.RpcError as e:
                error = from_rpc_error(e)
            finally:
                call.cancel()
            delay = reconnect.retry_after(error)
            if delay is None:
                raise error
            time.sleep(delay)

    # -- IdentityService -------------------------------------------------

    def who_am_i(self, *, deadline: float | None = None) -> idpb.WhoAmIResponse:
        """Who this client is to the server (subject, authentication method,
        roles) and, for every verdict RPC, whether it may call it and the
        role it needs (``permissions``; :func:`verdict_client.may` reads
        one). Any authenticated caller may ask; with authentication off the
        answer is the anonymous principal, holding every role."""
        return self._call(self._identity.WhoAmI, idpb.WhoAmIRequest(), deadline)

    # -- StatsService ----------------------------------------------------

    def get_incident_summary(
        self,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        all_time: bool = False,
        deadline: float | None = None,
    ) -> spb.GetIncidentSummaryResponse:
        """Totals by status and severity, open count, created in range
        (default range: the last 24 hours)."""
        request = spb.GetIncidentSummaryRequest(range=req.time_range(since, until, all_time))
        return self._call(self._stats.GetIncidentSummary, request, deadline)

    def get_resolution_stats(
        self,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        all_time: bool = False,
        deadline: float | None = None,
    ) -> spb.GetResolutionStatsResponse:
        """Resolution time P50/P95/P99 and mean, overall and by severity."""
        request = spb.GetResolutionStatsRequest(range=req.time_range(since, until, all_time))
        return self._call(self._stats.GetResolutionStats, request, deadline)

    def get_ai_performance(
        self,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        all_time: bool = False,
        deadline: float | None = None,
    ) -> spb.GetAiPerformanceResponse:
        """How the engines perform: proposals by source, LLM win rate, fallbacks."""
        request = spb.GetAiPerformanceRequest(range=req.time_range(since, until, all_time))
        return self._call(self._stats.GetAiPerformance, request, deadline)

    def get_affected_services(
        self,
        *,
        limit: int = 0,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        all_time: bool = False,
        deadline: float | None = None,
    ) -> list[spb.ServiceCount]:
        """Services ranked by number of incidents, most affected first."""
        request = spb.GetAffectedServicesRequest(
            range=req.time_range(since, until, all_time), limit=limit
        )
        return list(self._call(self._stats.GetAffectedServices, request, deadline).services)

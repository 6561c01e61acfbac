"""The watch iterators' resume logic, against a stub DecisionService whose
streams drop with UNAVAILABLE mid-way: runs with or without a server that
implements watches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from verdict_client import AsyncClient, Client, DecisionState, NotFound, Unavailable
from verdict_client.proto.verdict.v1 import decision_pb2 as dpb
from verdict_client.proto.verdict.v1 import decision_pb2_grpc as dgrpc

READY = DecisionState.DECISION_STATE_READY
EXECUTING = DecisionState.DECISION_STATE_EXECUTING
COMPLETED = DecisionState.DECISION_STATE_COMPLETED
TOKEN = "DEC-00000000000A"


def decision(version: int, state: int, token: str = TOKEN) -> dpb.Decision:
    return dpb.Decision(token=token, incident_id="INC-1", version=version, state=state)


class DroppingDecisions(dgrpc.DecisionServiceServicer):
    """WatchDecision: the first stream sends versions 1 and 2 and drops with
    UNAVAILABLE; later ones send what follows ``after_version`` (plus one
    duplicate, which the client must skip) and end after COMPLETED.
    WatchDecisions: like it, for two tokens."""

    def __init__(self) -> None:
        self.after_versions: list[int] = []
        self.watch_all_calls = 0
        self.lock = threading.Lock()

    def WatchDecision(self, request: dpb.WatchDecisionRequest, context: grpc.ServicerContext) -> Iterator[dpb.WatchDecisionResponse]:
        if request.token != TOKEN:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such token")
        with self.lock:
            self.after_versions.append(request.after_version)
            attempt = len(self.after_versions)
        history = [decision(1, READY), decision(2, READY), decision(3, EXECUTING), decision(4, COMPLETED)]
        if attempt == 1:
            yield from (dpb.WatchDecisionResponse(decision=d) for d in history[:2])
            context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        elif attempt == 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection refused")
        else:
            start = max(request.after_version - 1, 0)  # one duplicate
            yield from (dpb.WatchDecisionResponse(decision=d) for d in history[start:])

    def WatchDecisions(self, request: dpb.WatchDecisionsRequest, context: grpc.ServicerContext) -> Iterator[dpb.WatchDecisionsResponse]:
        with self.lock:
            self.watch_all_calls += 1
            attempt = self.watch_all_calls
        if attempt == 1:
            yield dpb.WatchDecisionsResponse(decision=decision(1, READY, "DEC-00000000000A"))
            yield dpb.WatchDecisionsResponse(decision=decision(1, READY, "DEC-00000000000B"))
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        yield dpb.WatchDecisionsResponse(decision=decision(1, READY, "DEC-00000000000A"))
        yield dpb.WatchDecisionsResponse(decision=decision(2, EXECUTING, "DEC-00000000000A"))


class AlwaysUnavailable(dgrpc.DecisionServiceServicer):
    def WatchDecision(self, request: dpb.WatchDecisionRequest, context: grpc.ServicerContext) -> Iterator[dpb.WatchDecisionResponse]:
        context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        yield from ()


def serve(servicer: dgrpc.DecisionServiceServicer) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    dgrpc.add_DecisionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def dropping() -> Iterator[tuple[DroppingDecisions, str]]:
    servicer = DroppingDecisions()
    server, address = serve(servicer)
    yield servicer, address
    server.stop(None)


def test_watch_decision_resumes_after_unavailable(dropping: tuple[DroppingDecisions, str]) -> None:
    servicer, address = dropping
    with Client(address) as client:
        seen = [(d.version, d.state) for d in client.watch_decision(TOKEN)]
    assert seen == [(1, READY), (2, READY), (3, EXECUTING), (4, COMPLETED)]
    assert servicer.after_versions == [0, 2, 2]


async def test_async_watch_decision_resumes_after_unavailable(dropping: tuple[DroppingDecisions, str]) -> None:
    servicer, address = dropping
    async with AsyncClient(address) as client:
        seen = [(d.version, d.state) async for d in client.watch_decision(TOKEN, after_version=1)]
    assert seen == [(2, READY), (3, EXECUTING), (4, COMPLETED)]
    assert servicer.after_versions == [1, 2, 2]


def test_watch_decisions_skips_what_it_already_yielded(dropping: tuple[DroppingDecisions, str]) -> None:
    servicer, address = dropping
    with Client(address) as client:
        seen = [(d.token[-1], d.version) for d in client.watch_decisions()]
    assert seen == [("A", 1), ("B", 1), ("A", 2)]
    assert servicer.watch_all_calls == 2


async def test_async_watch_decisions_resumes(dropping: tuple[DroppingDecisions, str]) -> None:
    _, address = dropping
    async with AsyncClient(address) as client:
        seen = [(d.token[-1], d.version) async for d in client.watch_decisions(state="ready")]
    assert seen == [("A", 1), ("B", 1), ("A", 2)]


def test_other_errors_are_raised_at_once(dropping: tuple[DroppingDecisions, str]) -> None:
    servicer, address = dropping
    with Client(address) as client, pytest.raises(NotFound):
        list(client.watch_decision("DEC-FFFFFFFFFFFF"))
    assert servicer.after_versions == []


def test_gives_up_after_max_retries() -> None:
    server, address = serve(AlwaysUnavailable())
    try:
        with Client(address) as client, pytest.raises(Unavailable, match="down"):
            list(client.watch_decision(TOKEN, max_retries=2))
    finally:
        server.stop(None)


def test_breaking_out_cancels_the_stream(dropping: tuple[DroppingDecisions, str]) -> None:
    _, address = dropping
    with Client(address) as client:
        stream = client.watch_decision(TOKEN)
        assert next(stream).version == 1
        stream.close()

"""Watches against the real server: the walk seen through WatchDecision,
WatchDecisions for one incident, and a watch that survives a server restart.
Skipped, with the reason, while the server answers UNIMPLEMENTED."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable

import pytest
from conftest import Server, skip_unless_watch_implemented

from verdict_client import AsyncClient, Client, Decision, DecisionState, Signal

pytestmark = pytest.mark.watch

READY = DecisionState.DECISION_STATE_READY
EXECUTING = DecisionState.DECISION_STATE_EXECUTING
COMPLETED = DecisionState.DECISION_STATE_COMPLETED
WAIT = 20.0  # seconds an event may take before the test fails


class Collector:
    """Drains a (blocking) watch iterator on a thread into a queue."""

    def __init__(self, stream: Iterable[Decision]) -> None:
        self.queue: queue.Queue[Decision | BaseException | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: Iterable[Decision]) -> None:
        try:
            for d in stream:
                self.queue.put(d)
            self.queue.put(None)
        except BaseException as e:  # handed to the test thread
            self.queue.put(e)

    def next(self) -> Decision | None:
        item = self.queue.get(timeout=WAIT)
        if isinstance(item, BaseException):
            raise item
        return item

    def rest(self) -> list[Decision]:
        """Everything until the stream ends."""
        out = []
        while (d := self.next()) is not None:
            out.append(d)
        return out


def ready_decision(client: Client, service: str = "checkout") -> Decision:
    incident = client.create_incident(title="crash", severity="P2", affected_services=[service],
                                      signals=[Signal(alert_name="PodCrashLooping")])
    return client.get_or_create_decision(incident.id, wait=True, timeout=10).decision


def test_watch_decision_walk(server: Server, client: Client) -> None:
    skip_unless_watch_implemented(server.address)
    decision = ready_decision(client)
    watch = Collector(client.watch_decision(decision.token))
    snapshot = watch.next()
    assert snapshot is not None
    assert (snapshot.state, snapshot.version) == (READY, decision.version)

    client.approve_decision(decision.token, actor="alice", expected_version=decision.version)
    client.complete_decision(decision.token, success=True, output="ok")
    rest = watch.rest()
    assert [d.state for d in rest] == [EXECUTING, COMPLETED]
    versions = [snapshot.version] + [d.version for d in rest]
    assert versions == sorted(set(versions)), "in order, none repeated"
    assert rest[-1] == client.get_decision(decision.token)


async def test_async_watch_decision_walk(server: Server, client: Client) -> None:
    skip_unless_watch_implemented(server.address)
    decision = ready_decision(client)
    async with AsyncClient(server.address) as verdict:
        states = []
        async for d in verdict.watch_decision(decision.token):
            states.append(d.state)
            if d.state == READY:
                await verdict.approve_decision(decision.token, actor="alice")
            elif d.state == EXECUTING:
                await verdict.complete_decision(decision.token, success=True)
    assert states == [READY, EXECUTING, COMPLETED]


def test_watch_decision_after_version_skips_the_snapshot(server: Server, client: Client) -> None:
    skip_unless_watch_implemented(server.address)
    decision = ready_decision(client)
    client.approve_decision(decision.token, actor="alice")
    client.complete_decision(decision.token, success=True)
    seen = list(client.watch_decision(decision.token, after_version=decision.version))
    assert [d.state for d in seen] == [EXECUTING, COMPLETED]


def test_watch_decisions_for_one_incident(server: Server, client: Client) -> None:
    skip_unless_watch_implemented(server.address, "WatchDecisions")
    incident = client.create_incident(title="crash", severity="P2", affected_services=["cart"],
                                      signals=[Signal(alert_name="PodCrashLooping")])
    watch = Collector(client.watch_decisions(incident_id=incident.id))
    # The stream sends no "subscribed" signal: issue and reject tokens until
    # the watcher has seen one, so later changes are certainly observed.
    for _ in range(50):
        decision = client.get_or_create_decision(incident.id, wait=True).decision
        try:
            first = watch.queue.get(timeout=0.2)
            break
        except queue.Empty:
            client.reject_decision(decision.token, actor="test", reason="until subscribed")
    else:
        pytest.fail("WatchDecisions sent nothing")
    assert isinstance(first, Decision) and first.incident_id == incident.id

    client.approve_decision(decision.token, actor="alice")
    client.complete_decision(decision.token, success=True)
    states = []
    while COMPLETED not in states:
        d = watch.next()
        assert d is not None and d.incident_id == incident.id
        if d.token == decision.token:
            states.append(d.state)
    assert states[-2:] == [EXECUTING, COMPLETED]


def test_watch_resumes_across_a_server_restart(redis_server: Server) -> None:
    """SIGTERM ends the stream with UNAVAILABLE; the watcher reconnects to
    the restarted server (same port, same Redis) with after_version and
    sees the rest of the walk, nothing lost or repeated."""
    skip_unless_watch_implemented(redis_server.address)
    with Client(redis_server.address, deadline=30) as client:
        decision = ready_decision(client)
    with Client(redis_server.address) as watcher:
        watch = Collector(watcher.watch_decision(decision.token, max_retries=None))
        snapshot = watch.next()
        assert snapshot is not None and snapshot.state == READY

        redis_server.terminate()
        redis_server.start()
        with Client(redis_server.address, deadline=30) as client:
            client.approve_decision(decision.token, actor="alice", expected_version=decision.version)
            client.complete_decision(decision.token, success=True)
        assert [d.state for d in watch.rest()] == [EXECUTING, COMPLETED]

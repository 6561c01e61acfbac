"""The audit trail through the client against the real server (both
stores): a listing filtered by incident, and a watch that sees a new event
live and, resumed after the last position it yielded, misses nothing."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from conftest import Server, unique_id

from verdict_client import AuditEvent, Client

WAIT = 20.0  # seconds an event may take before the test fails


def create(client: Client) -> str:
    incident = client.create_incident(
        id=unique_id(), title="Checkout down", severity="P2", affected_services=["checkout"]
    )
    return incident.id


def test_list_audit_events_filters_by_incident(client: Client) -> None:
    id = create(client)
    create(client)  # another incident's event, filtered out
    page = client.list_audit_events(incident_id=id)
    assert [(e.action, e.incident_id, e.outcome) for e in page.events] == [
        ("incident_created", id, "OK")
    ]
    assert page.events[0].hash and page.events[0].position


def drain(stream: Iterator[AuditEvent], into: queue.Queue[AuditEvent | BaseException]) -> None:
    try:
        for e in stream:
            into.put(e)
    except BaseException as e:  # handed to the test thread
        into.put(e)


def next_event_within(q: queue.Queue[AuditEvent | BaseException], wait: float) -> AuditEvent:
    """The next event the watch thread saw; queue.Empty after ``wait``."""
    item = q.get(timeout=wait)
    if isinstance(item, BaseException):
        raise item
    return item


def test_watch_audit_events_live_then_resumed_misses_nothing(server: Server) -> None:
    # A client of the watch's own: closing it ends the watch thread.
    watcher = Client(server.address)
    events: queue.Queue[AuditEvent | BaseException] = queue.Queue()
    stream = watcher.watch_audit_events(action="incident_created")
    # The first next() opens the stream; make it from the thread, then
    # write an incident until the watch sees one (it starts "now").
    threading.Thread(target=drain, args=(stream, events), daemon=True).start()
    with Client(server.address, deadline=30.0) as client:
        # Made until the watch shows one: whichever it shows first, every
        # one made after it must come on resuming.
        made: list[str] = []
        seen = None
        for _ in range(int(WAIT / 0.5)):
            made.append(create(client))
            try:
                seen = next_event_within(events, 0.5)
                break
            except queue.Empty:
                continue
        assert seen is not None, "the watch showed no event"
        assert seen.incident_id in made
        watcher.close()

        missed = [create(client) for _ in range(5)]
        expected = made[made.index(seen.incident_id) + 1 :] + missed
        with Client(server.address) as again:
            resumed = again.watch_audit_events(after=seen.position, action="incident_created")
            got = [next(resumed).incident_id for _ in expected]
        assert got == expected

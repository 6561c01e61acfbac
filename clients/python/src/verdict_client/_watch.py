"""How watches survive a dropped stream, shared by the sync and asyncio
clients.

The server ends a ``WatchDecision`` stream normally after a terminal state,
and with UNAVAILABLE when it shuts down (or the connection drops). The
client then reconnects with ``after_version`` = the last version it
yielded, so the caller sees every change once, in order, across server
restarts. Reconnects back off exponentially; after ``max_retries``
consecutive failures without a message in between, the last error is
raised.
"""

from __future__ import annotations

import random

import grpc

from .errors import VerdictError
from .proto.verdict.v1 import decision_pb2 as dpb

#: States after which a decision never changes again; its stream ends.
TERMINAL_STATES = frozenset(
    {
        dpb.DECISION_STATE_COMPLETED,
        dpb.DECISION_STATE_ERROR,
        dpb.DECISION_STATE_REJECTED,
        dpb.DECISION_STATE_EXPIRED,
    }
)

#: Codes after which a watch reconnects: the server is draining or gone,
#: or the connection dropped.
RESUMABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


class Reconnect:
    """Counts consecutive failed attempts and says how long to wait next."""

    def __init__(self, max_retries: int | None, initial: float = 0.05, maximum: float = 5.0) -> None:
        self.max_retries = max_retries
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def progressed(self) -> None:
        """A message arrived: the next failure starts from the first delay."""
        self.failures = 0

    def retry_after(self, error: VerdictError) -> float | None:
        """The delay before reconnecting after ``error``, or None to give up."""
        if error.code not in RESUMABLE_CODES:
            return None
        self.failures += 1
        if self.max_retries is not None and self.failures > self.max_retries:
            return None
        delay = min(self.maximum, self.initial * float(2 ** (self.failures - 1)))
        return delay * random.uniform(0.8, 1.2)


class SeenVersions:
    """The last version yielded per token, so a resumed ``WatchDecisions``
    stream never yields a change twice. Beyond ``limit`` tokens the least
    recently changed is forgotten, so the map stays bounded."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._last: dict[str, int] = {}

    def is_new(self, decision: dpb.Decision) -> bool:
        last = self._last.get(decision.token, 0)
        if decision.version <= last:
            return False
        self._last.pop(decision.token, None)
        self._last[decision.token] = decision.version
        if len(self._last) > self.limit:
            self._last.pop(next(iter(self._last)))
        return True

"""Fixtures: the real ``verdict serve`` binary on a free port, once with the
in-memory store (``--dev``) and once with a private ``redis-server`` (own
port, own temp dir, persisting nothing), each killed at the end.

The binary is ``$VERDICT_BIN`` or ``target/debug/verdict`` (built with
``cargo build`` when missing).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from verdict_client import Client, VerdictError
from verdict_client.proto.verdict.v1 import decision_pb2 as dpb
from verdict_client.proto.verdict.v1 import decision_pb2_grpc as dgrpc

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def verdict_bin() -> Path:
    path = Path(os.environ.get("VERDICT_BIN", ROOT / "target" / "debug" / "verdict"))
    if not path.exists():
        subprocess.run(["cargo", "build", "--locked", "--bin", "verdict"], cwd=ROOT, check=True)
    return path


class Redis:
    """A private redis-server: free port, temp dir, no persistence."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.log = tmp / "redis.log"
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(tmp),
                "--protected-mode", "no",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass
class Server:
    """A running ``verdict serve``; ``address`` is ``127.0.0.1:PORT``."""

    binary: Path
    tmp: Path
    store: str
    redis: Redis | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [str(self.binary), "serve", "--listen", self.address, "--shutdown-grace", "2s"]
        args += ["--redis-url", self.redis.url] if self.redis else ["--dev"]
        log = self.tmp / f"verdict-{next(self.starts)}.log"
        self.proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        # Ready when an RPC that touches the store answers.
        deadline = time.monotonic() + START_TIMEOUT
        with Client(self.address, deadline=1.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"verdict serve exited: {log.read_text()}")
                try:
                    client.list_incidents(page_size=1)
                    return
                except VerdictError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise RuntimeError(f"verdict serve not ready: {log.read_text()}") from None
                    time.sleep(0.05)

    def terminate(self) -> None:
        """SIGTERM (graceful shutdown) and wait for the process to exit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _serve(binary: Path, tmp: Path, store: str) -> Iterator[Server]:
    redis = Redis(tmp) if store == "redis" else None
    server = Server(binary, tmp, store, redis)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        if redis:
            redis.stop()


@pytest.fixture(scope="session", params=["memory", "redis"])
def server(
    request: pytest.FixtureRequest, verdict_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per store for the whole session; tests use unique ids."""
    yield from _serve(verdict_bin, tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture
def redis_server(verdict_bin: Path, tmp_path: Path) -> Iterator[Server]:
    """A server of this test's own, on Redis, so it can be restarted with
    its state intact."""
    yield from _serve(verdict_bin, tmp_path, "redis")


@pytest.fixture
def dev_server(verdict_bin: Path, tmp_path: Path) -> Iterator[Server]:
    """A `--dev` server of this test's own: the one that checks a presented
    token (it prints a fresh admin token and accepts anonymous calls)."""
    yield from _serve(verdict_bin, tmp_path, "memory")


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.address, deadline=30.0) as c:
        yield c


def unique_id(prefix: str = "INC-PY") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


def skip_unless_watch_implemented(address: str, rpc: str = "WatchDecision") -> None:
    """Skips the calling test while the server answers UNIMPLEMENTED for
    ``rpc`` (the live-decisions work has not landed). Any other answer (NOT_FOUND
    for the probe's unknown token, or a stream still open at the probe's
    deadline) means it is served."""
    with grpc.insecure_channel(address) as channel:
        stub = dgrpc.DecisionServiceStub(channel)
        if rpc == "WatchDecision":
            probe = stub.WatchDecision(dpb.WatchDecisionRequest(token="DEC-000000000000"), timeout=1)
        else:
            probe = stub.WatchDecisions(dpb.WatchDecisionsRequest(incident_id="INC-PROBE"), timeout=1)
        try:
            next(probe, None)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                pytest.skip(f"the server answers UNIMPLEMENTED for {rpc} (live decisions not landed yet): {e.details()}")
        finally:
            probe.cancel()

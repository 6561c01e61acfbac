"""TLS and mTLS against the real ``verdict serve``: certificates made with
openssl for this test, the client's ``root_certificates``, ``client_cert``
and ``client_key`` options."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from verdict_client import Client, Unauthenticated, VerdictError

from conftest import START_TIMEOUT, free_port


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> None:
    """A CA; a server certificate for localhost; alice's client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("alice", "extendedKeyUsage=clientAuth"),
    ]:
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext",
                "-out", f"{name}.pem", cwd=d)


@dataclass
class TlsServer:
    address: str
    dir: Path

    def pem(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()

    def client(self, *, cert: bool) -> Client:
        return Client(
            self.address,
            deadline=5.0,
            root_certificates=self.pem("ca.pem"),
            client_cert=self.pem("alice.pem") if cert else None,
            client_key=self.pem("alice.key") if cert else None,
        )


@pytest.fixture
def tls_server(verdict_bin: Path, tmp_path: Path) -> Iterator[TlsServer]:
    make_certs(tmp_path)
    port = free_port()
    (tmp_path / "verdict.toml").write_text(
        f'listen = "127.0.0.1:{port}"\n'
        'tls_cert_file = "server.pem"\n'
        'tls_key_file = "server.key"\n'
        'tls_client_ca_file = "ca.pem"\n'
        "[[auth_mtls]]\n"
        'cert = "CN=alice"\n'
        'roles = ["approver"]\n'
    )
    log = tmp_path / "verdict.log"
    proc = subprocess.Popen(
        [str(verdict_bin), "serve", "--config", "verdict.toml"],
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = TlsServer(f"localhost:{port}", tmp_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        with server.client(cert=True) as c:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"verdict serve exited: {log.read_text()}")
                try:
                    c.list_incidents(page_size=1)
                    break
                except VerdictError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"verdict serve not ready: {log.read_text()}") from None
                    time.sleep(0.05)
        yield server
    finally:
        proc.kill()
        proc.wait()


def test_a_client_certificate_is_the_principal_over_tls(tls_server: TlsServer) -> None:
    with tls_server.client(cert=True) as c:
        incident = c.create_incident(title="TLS from Python", severity="P3",
                                     affected_services=["checkout"])
        assert incident.id
        assert c.get_incident(incident.id).title == "TLS from Python"


def test_without_a_client_certificate_the_call_is_unauthenticated(tls_server: TlsServer) -> None:
    with tls_server.client(cert=False) as c, pytest.raises(Unauthenticated) as err:
        c.list_incidents(page_size=1)
    assert "Bearer" in err.value.message


def test_plain_text_to_the_tls_port_fails(tls_server: TlsServer) -> None:
    with Client(tls_server.address, deadline=2.0) as c, pytest.raises(VerdictError) as err:
        c.list_incidents(page_size=1)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_tls_options_are_checked() -> None:
    with pytest.raises(ValueError, match="go together"):
        Client("localhost:1", client_cert=b"x")
    with pytest.raises(ValueError, match="either credentials"):
        Client("localhost:1", root_certificates=b"x",
               credentials=grpc.ssl_channel_credentials())

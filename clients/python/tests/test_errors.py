"""Failed calls raise the exception of their status code, with the
``google.rpc`` details decoded: against the real server for the codes it
answers today, and against a stub server for every mapped code."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from conftest import Server, free_port, unique_id
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from verdict_client import (
    AlreadyExists,
    AsyncClient,
    Client,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Signal,
    Unavailable,
    VerdictError,
    errors,
)
from verdict_client.proto.verdict.v1 import incident_pb2, incident_pb2_grpc


def test_invalid_argument_carries_field_violations(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.create_incident(title="", severity="unspecified", affected_services=["checkout; rm -rf /"])
    fields = [v.field for v in caught.value.field_violations]
    assert fields == ["incident.title", "incident.severity", "incident.affected_services[0]"]
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "RFC 1123" in caught.value.field_violations[2].description
    assert "incident.affected_services[0]: must be an RFC 1123 label" in str(caught.value)


def test_bad_token_is_invalid_not_missing(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.get_decision("not-a-token")
    assert [v.field for v in caught.value.field_violations] == ["token"]


def test_not_found(client: Client) -> None:
    with pytest.raises(NotFound):
        client.get_incident(unique_id("INC-MISSING"))
    with pytest.raises(NotFound):
        client.get_decision("DEC-000000000000")


def test_already_exists(client: Client) -> None:
    incident_id = unique_id()
    client.create_incident(id=incident_id, title="once", severity="P3")
    with pytest.raises(AlreadyExists):
        client.create_incident(id=incident_id, title="twice", severity="P3")


def test_failed_precondition_names_the_violation(client: Client) -> None:
    incident = client.create_incident(title="crash", severity="P2", affected_services=["api"],
                                      signals=[Signal(alert_name="PodCrashLooping")])
    decision = client.get_or_create_decision(incident.id, wait=True).decision
    with pytest.raises(FailedPrecondition) as stale:
        client.approve_decision(decision.token, actor="a", expected_version=decision.version + 7)
    assert [v.type for v in stale.value.violations] == ["VERSION"]
    client.approve_decision(decision.token, actor="a")
    with pytest.raises(FailedPrecondition) as twice:
        client.approve_decision(decision.token, actor="b")
    assert [(v.type, v.subject) for v in twice.value.violations] == [("STATE", decision.token)]


def test_unreachable_server_is_unavailable() -> None:
    with Client(f"127.0.0.1:{free_port()}", deadline=5) as client:
        with pytest.raises(Unavailable):
            client.get_incident("INC-1")


async def test_async_errors_are_mapped_too(server: Server) -> None:
    async with AsyncClient(server.address) as verdict:
        with pytest.raises(InvalidArgument) as caught:
            await verdict.create_incident(title="x", severity="P2", affected_services=["Bad_Name"])
        assert [v.field for v in caught.value.field_violations] == ["incident.affected_services[0]"]
        with pytest.raises(NotFound):
            await verdict.get_decision("DEC-000000000000")


# -- every mapped code, from a stub server ---------------------------------


class FailingIncidents(incident_pb2_grpc.IncidentServiceServicer):
    """GetIncident fails with the code named by the requested id, with a
    BadRequest detail attached."""

    def GetIncident(self, request: incident_pb2.GetIncidentRequest, context: grpc.ServicerContext) -> None:
        code = grpc.StatusCode[request.id]
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field="id", description="bad")]
        ))
        status = status_pb2.Status(code=code.value[0], message="stub", details=[detail])
        context.set_trailing_metadata([("grpc-status-details-bin", status.SerializeToString())])
        context.abort(code, "stub")


@pytest.fixture(scope="module")
def stub_address() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    incident_pb2_grpc.add_IncidentServiceServicer_to_server(FailingIncidents(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK], ids=lambda c: c.name)
def test_every_code_maps_to_its_class(stub_address: str, code: grpc.StatusCode) -> None:
    expected = errors._BY_CODE.get(code, VerdictError)
    with Client(stub_address, deadline=5) as client:
        with pytest.raises(VerdictError) as caught:
            client.get_incident(code.name)
    assert type(caught.value) is expected
    assert caught.value.code == code
    assert caught.value.status is not None and caught.value.status.message == "stub"
    if isinstance(caught.value, InvalidArgument):
        assert caught.value.field_violations == [FieldViolation("id", "bad")]


def test_a_token_is_sent_with_every_call(dev_server: Server) -> None:
    # A `--dev` server checks a presented token (and lets calls without one
    # through as anonymous); a server without authentication ignores it.
    server = dev_server
    asked: list[int] = []

    def provider() -> str:
        asked.append(1)
        return "vdt_not-a-token"

    for token in ("vdt_not-a-token", provider):
        with Client(server.address, deadline=10.0, token=token) as c:
            with pytest.raises(errors.Unauthenticated) as caught:
                c.list_incidents()
            assert "not valid" in str(caught.value)
    assert asked, "the provider was asked"
    with Client(server.address, deadline=10.0) as c:
        c.list_incidents()

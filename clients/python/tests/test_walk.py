"""The walk of the README against the real server (both stores): create an
incident, decide, approve, complete, resolve; sync and asyncio."""

from __future__ import annotations

import pytest
from conftest import Server, unique_id

from verdict_client import (
    AsyncClient,
    Client,
    CommandVerb,
    DecisionState,
    IncidentStatus,
    ProposalSource,
    Severity,
    Signal,
)


def test_walk_create_decide_approve_complete(client: Client) -> None:
    incident = client.create_incident(
        title="Checkout pods crashing",
        severity="P2",
        affected_services=["checkout"],
        namespace="shop",
        signals=[Signal(alert_name="PodCrashLooping", labels={"service": "checkout"})],
    )
    assert incident.id.startswith("INC-")
    assert incident.status == IncidentStatus.INCIDENT_STATUS_OPEN
    assert incident.severity == Severity.SEVERITY_P2

    decided = client.get_or_create_decision(incident.id, wait=True, timeout=10)
    assert decided.created
    decision = decided.decision
    assert decision.token.startswith("DEC-") and len(decision.token) == 16
    assert decision.state == DecisionState.DECISION_STATE_READY
    proposal = decision.proposal
    assert proposal.source == ProposalSource.PROPOSAL_SOURCE_EXPERT
    assert proposal.command.verb == CommandVerb.COMMAND_VERB_ROLLOUT_RESTART
    assert proposal.kubectl == "kubectl rollout restart deployment/checkout -n shop"

    # Asking again returns the same READY token.
    again = client.get_or_create_decision(incident.id)
    assert (again.created, again.decision.token) == (False, decision.token)

    approved = client.approve_decision(decision.token, actor="alice", expected_version=decision.version)
    assert approved.state == DecisionState.DECISION_STATE_EXECUTING
    assert approved.decided_by == "alice"
    assert approved.version > decision.version

    done = client.complete_decision(decision.token, success=True, output="deployment.apps/checkout restarted")
    assert done.state == DecisionState.DECISION_STATE_COMPLETED
    assert done.output == "deployment.apps/checkout restarted"
    assert client.get_decision(decision.token) == done
    assert [d.token for d in client.list_decisions(incident.id)] == [decision.token]

    resolved = client.update_incident_status(incident.id, status="resolved", actor="alice", note="restarted")
    assert resolved.status == IncidentStatus.INCIDENT_STATUS_RESOLVED
    assert resolved.HasField("resolved_at")
    assert client.get_incident(incident.id) == resolved
    # A resolved incident keeps its COMPLETED decision.
    final = client.get_or_create_decision(incident.id)
    assert (final.created, final.decision.token) == (False, decision.token)


def test_reject_then_a_new_token(client: Client) -> None:
    incident = client.create_incident(title="Latency", severity="P3", affected_services=["search"],
                                      signals=[Signal(alert_name="HighLatency")])
    first = client.get_or_create_decision(incident.id, wait=True).decision
    rejected = client.reject_decision(first.token, actor="bob", reason="not now")
    assert rejected.state == DecisionState.DECISION_STATE_REJECTED
    assert rejected.reason == "not now"
    second = client.get_or_create_decision(incident.id, wait=True)
    assert second.created and second.decision.token != first.token
    assert [d.token for d in client.list_decisions(incident.id)] == [second.decision.token, first.token]


def test_create_is_idempotent_with_a_request_id(client: Client) -> None:
    request_id = unique_id("REQ")
    first = client.create_incident(title="Disk full", severity="P1", affected_services=["db"],
                                   request_id=request_id)
    retry = client.create_incident(title="Disk full", severity="P1", affected_services=["db"],
                                   request_id=request_id)
    assert retry.id == first.id


def test_list_and_iterate_incidents(client: Client) -> None:
    service = f"svc-{unique_id('x').lower()[-8:]}"
    ids = {
        client.create_incident(title=f"n{i}", severity="P4", affected_services=[service]).id
        for i in range(3)
    }
    page = client.list_incidents(service=service, page_size=2)
    assert len(page.incidents) <= 2
    assert {i.id for i in client.iter_incidents(service=service, page_size=2)} == ids
    assert [i.id for i in client.iter_incidents(service=service, severity="P0")] == []


def test_enum_names_are_checked_on_the_client(client: Client) -> None:
    with pytest.raises(ValueError, match="unknown severity 'P9'"):
        client.create_incident(title="x", severity="P9")


async def test_async_walk(server: Server) -> None:
    async with AsyncClient(server.address, deadline=30.0) as verdict:
        incident = await verdict.create_incident(
            id=unique_id(),
            title="Error rate up",
            severity=Severity.SEVERITY_P3,
            affected_services=["payments"],
            signals=[Signal(alert_name="HighErrorRate")],
        )
        decision = (await verdict.get_or_create_decision(incident.id, wait=True, timeout=10)).decision
        assert decision.state == DecisionState.DECISION_STATE_READY
        assert decision.proposal.command.verb == CommandVerb.COMMAND_VERB_ROLLOUT_UNDO
        executing = await verdict.approve_decision(decision.token, actor="carol")
        assert executing.state == DecisionState.DECISION_STATE_EXECUTING
        failed = await verdict.complete_decision(decision.token, success=False, output="boom")
        assert failed.state == DecisionState.DECISION_STATE_ERROR
        assert [d.token for d in await verdict.list_decisions(incident.id)] == [decision.token]
        assert [i.id async for i in verdict.iter_incidents(service="payments")].count(incident.id) == 1

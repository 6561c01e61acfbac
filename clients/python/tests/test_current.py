"""ListCurrentDecisions through the client against the real server: one
call answers the current decision of several incidents, in the order asked,
leaving out those without one."""

from __future__ import annotations

from conftest import unique_id

from verdict_client import Client


def test_list_current_decisions_in_the_order_asked(client: Client) -> None:
    def make() -> str:
        return client.create_incident(
            id=unique_id(), title="Checkout down", severity="P2", affected_services=["checkout"]
        ).id

    a, undecided, c = make(), make(), make()
    da = client.get_or_create_decision(a, wait=True).decision
    dc = client.get_or_create_decision(c, wait=True).decision
    got = client.list_current_decisions([c, undecided, a])
    assert [d.token for d in got] == [dc.token, da.token]

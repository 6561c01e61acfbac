"""WhoAmI through the client against the real server: without
authentication the caller is the anonymous principal, holding every role,
and ``may`` / ``needed_role`` read the permissions the server sent."""

from __future__ import annotations

from verdict_client import AuthMethod, Client, Role, may, needed_role

APPROVE = "verdict.v1.DecisionService/ApproveDecision"


def test_who_am_i_without_authentication_is_the_anonymous_admin(client: Client) -> None:
    who = client.who_am_i()
    assert who.subject == "anonymous"
    assert who.auth_method == AuthMethod.AUTH_METHOD_ANONYMOUS
    assert Role.ROLE_ADMIN in who.roles
    assert may(who, APPROVE)
    assert may(who, "/" + APPROVE), "a leading slash is allowed"
    assert needed_role(who, APPROVE) == Role.ROLE_APPROVER
    assert not may(who, "verdict.v1.DecisionService/NoSuchRpc"), "unlisted: not allowed"

"""Reading a ``WhoAmI`` answer: whether the caller may call one RPC."""

from __future__ import annotations

from .proto.verdict.v1 import identity_pb2 as idpb

__all__ = ["may", "needed_role"]


def _find(who: idpb.WhoAmIResponse, method: str) -> idpb.Permission | None:
    name = method.lstrip("/")
    return next((p for p in who.permissions if p.method == name), None)


def may(who: idpb.WhoAmIResponse, method: str) -> bool:
    """Whether ``who`` may call ``method`` ("verdict.v1.DecisionService/ApproveDecision",
    a leading slash allowed). An RPC the server did not list (a client newer
    than the server) is not allowed."""
    p = _find(who, method)
    return p is not None and p.allowed


def needed_role(who: idpb.WhoAmIResponse, method: str) -> idpb.Role:
    """The least role ``method`` needs (``ROLE_UNSPECIFIED``: any authenticated
    caller, or an RPC the server did not list)."""
    p = _find(who, method)
    return p.needed_role if p is not None else idpb.Role.ROLE_UNSPECIFIED

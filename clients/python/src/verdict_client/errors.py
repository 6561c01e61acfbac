"""The exceptions the client raises: one class per gRPC status code that
verdict answers with, under one base class, with the ``google.rpc`` error
details the server attaches already decoded.

verdict sends a ``google.rpc.Status`` in the ``grpc-status-details-bin``
trailer: ``BadRequest`` field violations with INVALID_ARGUMENT (which field,
and what is wrong with it) and ``PreconditionFailure`` violations with
FAILED_PRECONDITION (wrong state, expired token, stale version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "AlreadyExists",
    "Aborted",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "PreconditionViolation",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "VerdictError",
    "from_rpc_error",
]

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request: a path such as ``incident.title`` or
    ``incident.affected_services[0]``, and what is wrong with it."""

    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """Why a request was refused in the current state: ``type`` is ``STATE``
    (transition not allowed), ``EXPIRED`` (token past its TTL) or
    ``VERSION`` (``expected_version`` is stale); ``subject`` is the token."""

    type: str
    subject: str
    description: str


class VerdictError(Exception):
    """Base of every error the client raises for a failed RPC.

    ``code`` is the gRPC status code, ``message`` the server's message, and
    ``status`` the decoded ``google.rpc.Status`` when the server sent one.
    """

    #: The status code this class stands for (the base class: any code
    #: without a class of its own).
    grpc_code: ClassVar[grpc.StatusCode | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        status: status_pb2.Status | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def _unpack(self, kind: type[Any]) -> list[Any]:
        found: list[Any] = []
        if self.status is None:
            return found
        for any_ in self.status.details:
            if any_.Is(kind.DESCRIPTOR):
                detail = kind()
                any_.Unpack(detail)
                found.append(detail)
        return found


class InvalidArgument(VerdictError):
    """The request is malformed; nothing was stored or changed.
    ``field_violations`` says which fields and why."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def field_violations(self) -> list[FieldViolation]:
        """The ``google.rpc.BadRequest`` field violations, in server order."""
        return [
            FieldViolation(v.field, v.description)
            for br in self._unpack(error_details_pb2.BadRequest)
            for v in br.field_violations
        ]

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines += (f"  {v.field}: {v.description}" for v in self.field_violations)
        return "\n".join(lines)


class NotFound(VerdictError):
    """No incident or decision with that id or token."""

    grpc_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(VerdictError):
    """An incident with that id exists already."""

    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(VerdictError):
    """The decision is not in a state that allows the request (for example
    approving one that is not READY, an expired token, or a stale
    ``expected_version``)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION

    @property
    def violations(self) -> list[PreconditionViolation]:
        """The ``google.rpc.PreconditionFailure`` violations."""
        return [
            PreconditionViolation(v.type, v.subject, v.description)
            for pf in self._unpack(error_details_pb2.PreconditionFailure)
            for v in pf.violations
        ]


class Aborted(VerdictError):
    """A concurrent change won; retrying the request is safe."""

    grpc_code = grpc.StatusCode.ABORTED


class Unavailable(VerdictError):
    """The server is unreachable, draining, or its Redis is down; retry later."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(VerdictError):
    """The call's deadline passed before the server answered."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(VerdictError):
    """The server does not implement this RPC (yet)."""

    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class OutOfRange(VerdictError):
    """A message exceeded the server's size limit."""

    grpc_code = grpc.StatusCode.OUT_OF_RANGE


class ResourceExhausted(VerdictError):
    """A limit was hit (message size on the client side, rate limits)."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(VerdictError):
    """No valid credentials were sent."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(VerdictError):
    """The caller's role does not allow this RPC."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class Cancelled(VerdictError):
    """The call was cancelled."""

    grpc_code = grpc.StatusCode.CANCELLED


class Internal(VerdictError):
    """The server failed; this is a bug or a store failure worth reporting."""

    grpc_code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[VerdictError]] = {
    cls.grpc_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        Unavailable,
        DeadlineExceeded,
        Unimplemented,
        OutOfRange,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        Cancelled,
        Internal,
    )
    if cls.grpc_code is not None
}


def _status_details(metadata: Any) -> status_pb2.Status | None:
    for key, value in metadata or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a malformed trailer must not hide the error itself
                return None
    return None


def from_rpc_error(error: grpc.RpcError) -> VerdictError:
    """Turns a failed call (sync or asyncio) into the matching
    :class:`VerdictError` subclass, with its error details decoded."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    status = _status_details(error.trailing_metadata())
    return _BY_CODE.get(code, VerdictError)(message, code=code, status=status)

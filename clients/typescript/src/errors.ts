/**
 * The errors the client throws: one class per gRPC status code verdict
 * answers with, under one base class, with the `google.rpc` error details
 * the server attaches (in the `grpc-status-details-bin` trailer) decoded:
 * `BadRequest` field violations with INVALID_ARGUMENT and
 * `PreconditionFailure` violations with FAILED_PRECONDITION.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, PreconditionFailureSchema } from "./gen/google/rpc/error_details_pb.js";

export { Code };

/** One invalid field: a path such as `incident.affected_services[0]`, and what is wrong. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * Why a request was refused in the current state: `type` is `STATE`
 * (transition not allowed), `EXPIRED` (token past its TTL) or `VERSION`
 * (stale `expectedVersion`); `subject` is the token.
 */
export interface PreconditionViolation {
  type: string;
  subject: string;
  description: string;
}

/** Base of every error thrown for a failed RPC. `cause` is the ConnectError. */
export class VerdictError extends Error {
  override name = "VerdictError";
  /** The gRPC status code (`Code.NotFound`, ...). */
  readonly code: Code;
  /** The server's message, without the `[code]` prefix. */
  readonly rawMessage: string;
  override readonly cause: ConnectError;

  constructor(cause: ConnectError, code: Code = cause.code) {
    super(code === cause.code ? cause.message : `[${Code[code].toLowerCase()}] ${cause.rawMessage}`);
    this.code = code;
    this.rawMessage = cause.rawMessage;
    this.cause = cause;
  }
}

/** The request is malformed; nothing was stored or changed. */
export class InvalidArgument extends VerdictError {
  override name = "InvalidArgument";
  /** The `google.rpc.BadRequest` field violations, in server order. */
  readonly fieldViolations: FieldViolation[];

  constructor(cause: ConnectError, code?: Code) {
    super(cause, code);
    this.fieldViolations = cause
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
    if (this.fieldViolations.length > 0) {
      this.message += this.fieldViolations.map((v) => `\n  ${v.field}: ${v.description}`).join("");
    }
  }
}

/** No incident or decision with that id or token. */
export class NotFound extends VerdictError {
  override name = "NotFound";
}

/** An incident with that id exists already. */
export class AlreadyExists extends VerdictError {
  override name = "AlreadyExists";
}

/** The decision's state does not allow the request (see `violations`). */
export class FailedPrecondition extends VerdictError {
  override name = "FailedPrecondition";
  /** The `google.rpc.PreconditionFailure` violations. */
  readonly violations: PreconditionViolation[];

  constructor(cause: ConnectError, code?: Code) {
    super(cause, code);
    this.violations = cause
      .findDetails(PreconditionFailureSchema)
      .flatMap((p) => p.violations.map((v) => ({ type: v.type, subject: v.subject, description: v.description })));
  }
}

/** A concurrent change won; retrying is safe. */
export class Aborted extends VerdictError {
  override name = "Aborted";
}

/** The server is unreachable, draining, or its Redis is down; retry later. */
export class Unavailable extends VerdictError {
  override name = "Unavailable";
}

/** The call's deadline passed before the server answered. */
export class DeadlineExceeded extends VerdictError {
  override name = "DeadlineExceeded";
}

/** The server does not implement this RPC (yet). */
export class Unimplemented extends VerdictError {
  override name = "Unimplemented";
}

/** A message exceeded the server's size limit. */
export class OutOfRange extends VerdictError {
  override name = "OutOfRange";
}

/** A limit was hit. */
export class ResourceExhausted extends VerdictError {
  override name = "ResourceExhausted";
}

/** No valid credentials were sent. */
export class Unauthenticated extends VerdictError {
  override name = "Unauthenticated";
}

/** The caller's role does not allow this RPC. */
export class PermissionDenied extends VerdictError {
  override name = "PermissionDenied";
}

/** The call was cancelled (for example through its AbortSignal). */
export class Cancelled extends VerdictError {
  override name = "Cancelled";
}

/** The server failed; worth reporting. */
export class Internal extends VerdictError {
  override name = "Internal";
}

/** The class thrown for each code; codes not listed throw a plain VerdictError. */
export const errorClasses: Partial<Record<Code, new (cause: ConnectError, code?: Code) => VerdictError>> = {
  [Code.InvalidArgument]: InvalidArgument,
  [Code.NotFound]: NotFound,
  [Code.AlreadyExists]: AlreadyExists,
  [Code.FailedPrecondition]: FailedPrecondition,
  [Code.Aborted]: Aborted,
  [Code.Unavailable]: Unavailable,
  [Code.DeadlineExceeded]: DeadlineExceeded,
  [Code.Unimplemented]: Unimplemented,
  [Code.OutOfRange]: OutOfRange,
  [Code.ResourceExhausted]: ResourceExhausted,
  [Code.Unauthenticated]: Unauthenticated,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.Canceled]: Cancelled,
  [Code.Internal]: Internal,
};

/**
 * Turns anything a call threw into the matching VerdictError subclass. A
 * failed fetch (gRPC-Web: server unreachable, connection cut), which
 * Connect reports as UNKNOWN, becomes `Unavailable`, as it is over gRPC.
 */
export function toVerdictError(reason: unknown): VerdictError {
  if (reason instanceof VerdictError) {
    return reason;
  }
  const cause = ConnectError.from(reason);
  const code = cause.code === Code.Unknown && cause.cause instanceof TypeError ? Code.Unavailable : cause.code;
  const Class = errorClasses[code] ?? VerdictError;
  return new Class(cause, code);
}

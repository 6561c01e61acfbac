/**
 * The client: one method per RPC of verdict's services, an options
 * object in, typed messages out, `VerdictError` subclasses thrown. It runs
 * over any Connect transport: gRPC in Node (`./node.js`), gRPC-Web in
 * browsers (`./web.js`).
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Client as ConnectClient, type Transport } from "@connectrpc/connect";
import { Code, toVerdictError, type VerdictError } from "./errors.js";
import {
  AuditService,
  type AuditEvent,
  AuditFilterSchema,
  type ListAuditEventsResponse,
} from "./gen/verdict/v1/audit_pb.js";
import {
  DecisionMode,
  DecisionService,
  DecisionState,
  type Decision,
  type GetOrCreateDecisionResponse,
} from "./gen/verdict/v1/decision_pb.js";
import { IdentityService, Role, type Permission, type WhoAmIResponse } from "./gen/verdict/v1/identity_pb.js";
import {
  IncidentService,
  IncidentStatus,
  Severity,
  type Incident,
  type ListIncidentsResponse,
  type Signal,
  SignalSchema,
} from "./gen/verdict/v1/incident_pb.js";
import {
  StatsService,
  TimeRangeSchema,
  type GetAiPerformanceResponse,
  type GetIncidentSummaryResponse,
  type GetResolutionStatsResponse,
  type ServiceCount,
  type TimeRange,
} from "./gen/verdict/v1/stats_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

/** Per-call options. */
export interface CallOptions {
  /** Deadline of this call in milliseconds (default: the client's). */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** Options of a client. */
export interface ClientOptions {
  /** Default deadline of every unary call in milliseconds (default: none). */
  timeoutMs?: number;
  /** Headers sent with every call. */
  headers?: Record<string, string>;
  /**
   * Bearer token sent as `authorization: Bearer …` with every call (also
   * over gRPC-Web from a browser): a string, or a provider asked before
   * each call (e.g. one that refreshes an OIDC token).
   */
  token?: string | (() => string | Promise<string>);
}

/** A severity as the enum (`Severity.P2`) or its name (`"P2"`, `"SEVERITY_P2"`, any case). */
export type SeverityLike = Severity | keyof typeof Severity | string;
/** An incident status: `IncidentStatus.RESOLVED` or `"resolved"`. */
export type IncidentStatusLike = IncidentStatus | string;
/** A decision state: `DecisionState.READY` or `"ready"`. */
export type DecisionStateLike = DecisionState | string;
/** A decision mode: `DecisionMode.CONSENSUS` or `"consensus"`. */
export type DecisionModeLike = DecisionMode | string;
/** A signal (alert) as a plain object: `{ alertName: "PodCrashLooping", labels: {...} }`. */
export type SignalInit = MessageInitShape<typeof SignalSchema>;

/** States after which a decision never changes again; its stream ends. */
export const TERMINAL_STATES: ReadonlySet<DecisionState> = new Set([
  DecisionState.COMPLETED,
  DecisionState.ERROR,
  DecisionState.REJECTED,
  DecisionState.EXPIRED,
]);

/** Options of the watches. */
export interface WatchOptions {
  /**
   * Consecutive failed reconnects (UNAVAILABLE) before the error is thrown;
   * `Infinity` never gives up. Default 10 (about 20 s of backoff).
   */
  maxRetries?: number;
  /** Stops the watch (the iterator then throws `Cancelled`). */
  signal?: AbortSignal;
}

/** The numeric value of a proto enum given as a number or a name, checked. */
export function enumValue(enumObject: Record<string, string | number>, what: string, prefix: string, value: unknown): number {
  if (value === undefined || value === null) {
    return 0;
  }
  if (typeof value === "number") {
    return value;
  }
  let name = String(value).trim().toUpperCase();
  if (name.startsWith(prefix)) {
    name = name.slice(prefix.length);
  }
  const found = enumObject[name];
  if (typeof found !== "number") {
    const known = Object.keys(enumObject).filter((k) => Number.isNaN(Number(k)));
    throw new RangeError(`unknown ${what} ${JSON.stringify(value)}; one of ${known.join(", ")}`);
  }
  return found;
}

const severity = (v: SeverityLike | undefined): Severity => enumValue(Severity, "severity", "SEVERITY_", v);
const incidentStatus = (v: IncidentStatusLike | undefined): IncidentStatus =>
  enumValue(IncidentStatus, "incident status", "INCIDENT_STATUS_", v);
const decisionState = (v: DecisionStateLike | undefined): DecisionState =>
  enumValue(DecisionState, "decision state", "DECISION_STATE_", v);
const decisionMode = (v: DecisionModeLike | undefined): DecisionMode =>
  enumValue(DecisionMode, "decision mode", "DECISION_MODE_", v);

function timeRange(r: { since?: Date; until?: Date; allTime?: boolean }): TimeRange {
  return create(TimeRangeSchema, {
    from: r.since ? timestampFromDate(r.since) : undefined,
    to: r.until ? timestampFromDate(r.until) : undefined,
    allTime: r.allTime ?? false,
  });
}

/** Options of the statistics RPCs: a time range (default: the last 24 hours). */
export interface RangeOptions extends CallOptions {
  since?: Date;
  until?: Date;
  allTime?: boolean;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * Whether a watch should reconnect after `error`: the server said
 * UNAVAILABLE (it is draining or its store is down), or the stream was cut
 * without any status — over gRPC the HTTP/2 stream closes with CANCEL when
 * the connection drops, over gRPC-Web fetch fails with a transport error
 * (which Connect reports as UNKNOWN or INTERNAL with the native error as
 * its cause). The caller's own abort is checked separately.
 */
function isDroppedStream(error: VerdictError): boolean {
  switch (error.code) {
    case Code.Unavailable:
    case Code.Canceled:
      return true;
    case Code.Unknown:
    case Code.Internal:
      return error.cause.cause !== undefined;
    default:
      return false;
  }
}

/** Counts consecutive failed attempts and says how long to wait next. */
class Reconnect {
  failures = 0;
  constructor(private readonly maxRetries: number) {}

  progressed(): void {
    this.failures = 0;
  }

  /** Milliseconds before reconnecting after `error`, or undefined to give up. */
  retryAfter(error: VerdictError, signal?: AbortSignal): number | undefined {
    if (signal?.aborted || !isDroppedStream(error)) {
      return undefined;
    }
    this.failures += 1;
    if (this.failures > this.maxRetries) {
      return undefined;
    }
    const delay = Math.min(5000, 50 * 2 ** (this.failures - 1));
    return delay * (0.8 + 0.4 * Math.random());
  }
}

/** Which audit events: every field set must match. */
export interface AuditFilterOptions {
  /** From this time (inclusive). */
  since?: Date;
  subject?: string;
  incidentId?: string;
  token?: string;
  /** e.g. "incident_created", "approved", "refused". */
  action?: string;
  /** "OK" or a gRPC code name. */
  outcome?: string;
}

function auditFilter(a: AuditFilterOptions, until?: Date): MessageInitShape<typeof AuditFilterSchema> {
  return {
    from: a.since ? timestampFromDate(a.since) : undefined,
    to: until ? timestampFromDate(until) : undefined,
    subject: a.subject ?? "",
    incidentId: a.incidentId ?? "",
    token: a.token ?? "",
    action: a.action ?? "",
    outcome: a.outcome ?? "",
  };
}

/**
 * A verdict client over one Connect transport.
 *
 * ```ts
 * const verdict = connectNode("http://127.0.0.1:50051");   // or connectWeb(...) in a browser
 * const incident = await verdict.createIncident({ title: "Checkout down", severity: "P2", affectedServices: ["checkout"] });
 * ```
 */
export class VerdictClient {
  readonly incidents: ConnectClient<typeof IncidentService>;
  readonly decisions: ConnectClient<typeof DecisionService>;
  readonly stats: ConnectClient<typeof StatsService>;
  readonly audit: ConnectClient<typeof AuditService>;
  readonly identity: ConnectClient<typeof IdentityService>;
  private readonly options: ClientOptions;

  constructor(transport: Transport, options: ClientOptions = {}) {
    this.incidents = createClient(IncidentService, transport);
    this.decisions = createClient(DecisionService, transport);
    this.stats = createClient(StatsService, transport);
    this.audit = createClient(AuditService, transport);
    this.identity = createClient(IdentityService, transport);
    this.options = options;
  }

  /** The headers of one call: `headers` plus the bearer token, if any. */
  private async headers(): Promise<Record<string, string> | undefined> {
    const t = this.options.token;
    const token = typeof t === "function" ? await t() : t;
    if (!token) return this.options.headers;
    return { ...this.options.headers, authorization: `Bearer ${token}` };
  }

  private async call<T>(run: (opts: { timeoutMs?: number; signal?: AbortSignal; headers?: Record<string, string> }) => Promise<T>, opts: CallOptions = {}): Promise<T> {
    try {
      return await run({
        timeoutMs: opts.timeoutMs ?? this.options.timeoutMs,
        signal: opts.signal,
        headers: await this.headers(),
      });
    } catch (e) {
      throw toVerdictError(e);
    }
  }

  // -- IncidentService ---------------------------------------------------

  /** Creates an incident (`id` generated when empty); with a `requestId`, a retry returns the first call's incident. */
  async createIncident(
    args: {
      title: string;
      severity: SeverityLike;
      affectedServices?: string[];
      namespace?: string;
      signals?: SignalInit[];
      id?: string;
      status?: IncidentStatusLike;
      requestId?: string;
    },
    opts?: CallOptions,
  ): Promise<Incident> {
    const request = {
      incident: {
        id: args.id ?? "",
        title: args.title,
        severity: severity(args.severity),
        status: incidentStatus(args.status),
        affectedServices: args.affectedServices ?? [],
        namespace: args.namespace ?? "",
        signals: (args.signals ?? []).map((s) => create(SignalSchema, s)),
      },
      requestId: args.requestId ?? "",
    };
    const res = await this.call((o) => this.incidents.createIncident(request, o), opts);
    return res.incident!;
  }

  /** Groups a batch of alerts into incidents; returns the incidents touched. */
  async ingestSignals(args: { signals: SignalInit[] }, opts?: CallOptions): Promise<Incident[]> {
    const signals: Signal[] = args.signals.map((s) => create(SignalSchema, s));
    const res = await this.call((o) => this.incidents.ingestSignals({ signals }, o), opts);
    return res.incidents;
  }

  /** One incident by id. */
  async getIncident(id: string, opts?: CallOptions): Promise<Incident> {
    const res = await this.call((o) => this.incidents.getIncident({ id }, o), opts);
    return res.incident!;
  }

  /** One page of incidents, newest first; page on with `pageToken: page.nextPageToken` (or use `iterIncidents`). */
  async listIncidents(
    args: { status?: IncidentStatusLike; severity?: SeverityLike; service?: string; pageSize?: number; pageToken?: string } = {},
    opts?: CallOptions,
  ): Promise<ListIncidentsResponse> {
    const request = {
      status: incidentStatus(args.status),
      severity: severity(args.severity),
      service: args.service ?? "",
      pageSize: args.pageSize ?? 0,
      pageToken: args.pageToken ?? "",
    };
    return this.call((o) => this.incidents.listIncidents(request, o), opts);
  }

  /** Every matching incident, newest first, fetched page by page. */
  async *iterIncidents(
    args: { status?: IncidentStatusLike; severity?: SeverityLike; service?: string; pageSize?: number } = {},
    opts?: CallOptions,
  ): AsyncGenerator<Incident> {
    let pageToken = "";
    do {
      const page = await this.listIncidents({ ...args, pageToken }, opts);
      yield* page.incidents;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Changes an incident's status; RESOLVED sets `resolvedAt`. */
  async updateIncidentStatus(
    id: string,
    args: { status: IncidentStatusLike; actor?: string; note?: string },
    opts?: CallOptions,
  ): Promise<Incident> {
    const request = { id, status: incidentStatus(args.status), actor: args.actor ?? "", note: args.note ?? "" };
    const res = await this.call((o) => this.incidents.updateIncidentStatus(request, o), opts);
    return res.incident!;
  }

  // -- DecisionService ---------------------------------------------------

  /**
   * The incident's current decision, issuing a new token when none is
   * usable. With `wait` it resolves once the token is READY, at the latest
   * after `analysisTimeoutMs` (the server's default: 30 s), with the expert
   * proposal. `created` says whether this call issued the token.
   */
  async getOrCreateDecision(
    incidentId: string,
    args: { mode?: DecisionModeLike; wait?: boolean; analysisTimeoutMs?: number } = {},
    opts?: CallOptions,
  ): Promise<GetOrCreateDecisionResponse> {
    const request = {
      incidentId,
      mode: decisionMode(args.mode),
      wait: args.wait ?? false,
      timeout: args.analysisTimeoutMs === undefined ? undefined : durationFromMs(args.analysisTimeoutMs),
    };
    return this.call((o) => this.decisions.getOrCreateDecision(request, o), opts);
  }

  /** One decision by token. */
  async getDecision(token: string, opts?: CallOptions): Promise<Decision> {
    const res = await this.call((o) => this.decisions.getDecision({ token }, o), opts);
    return res.decision!;
  }

  /** An incident's decisions, newest first. */
  async listDecisions(incidentId: string, opts?: CallOptions): Promise<Decision[]> {
    const res = await this.call((o) => this.decisions.listDecisions({ incidentId }, o), opts);
    return res.decisions;
  }

  /**
   * The current decision of each of up to 500 incidents in one call, in
   * the order asked (incidents without one left out): a board's initial
   * load in one call per page instead of one `listDecisions` per incident.
   */
  async listCurrentDecisions(incidentIds: string[], opts?: CallOptions): Promise<Decision[]> {
    const res = await this.call((o) => this.decisions.listCurrentDecisions({ incidentIds }, o), opts);
    return res.decisions;
  }

  /** READY → EXECUTING; with `expectedVersion`, only if the decision did not change since. */
  async approveDecision(
    token: string,
    args: { actor: string; expectedVersion?: bigint | number },
    opts?: CallOptions,
  ): Promise<Decision> {
    const request = { token, actor: args.actor, expectedVersion: BigInt(args.expectedVersion ?? 0) };
    const res = await this.call((o) => this.decisions.approveDecision(request, o), opts);
    return res.decision!;
  }

  /** READY → REJECTED. */
  async rejectDecision(
    token: string,
    args: { actor: string; reason?: string; expectedVersion?: bigint | number },
    opts?: CallOptions,
  ): Promise<Decision> {
    const request = { token, actor: args.actor, reason: args.reason ?? "", expectedVersion: BigInt(args.expectedVersion ?? 0) };
    const res = await this.call((o) => this.decisions.rejectDecision(request, o), opts);
    return res.decision!;
  }

  /** EXECUTING → COMPLETED (`success`) or ERROR, for an external executor. */
  /**
   * Claims an EXECUTING decision for this runner for `leaseMs` (1 s to
   * 10 min, default 30 s) so no other runner runs it; claiming again before
   * it runs out renews it. Pass the returned `leaseId` to
   * `completeDecision`. Throws FailedPrecondition while another runner holds it.
   */
  async claimExecution(
    token: string,
    args: { runnerId: string; leaseMs?: number },
    opts?: CallOptions,
  ): Promise<{ leaseId: string; expiresAt?: Date; decision: Decision }> {
    const request = { token, runnerId: args.runnerId, leaseDuration: durationFromMs(args.leaseMs ?? 30_000) };
    const res = await this.call((o) => this.decisions.claimExecution(request, o), opts);
    const expiresAt = res.expiresAt
      ? new Date(Number(res.expiresAt.seconds) * 1000 + Math.floor(res.expiresAt.nanos / 1e6))
      : undefined;
    return { leaseId: res.leaseId, expiresAt, decision: res.decision! };
  }

  /** EXECUTING → COMPLETED or ERROR; once claimed, `leaseId` must be the claim's. */
  async completeDecision(
    token: string,
    args: { success: boolean; output?: string; leaseId?: string },
    opts?: CallOptions,
  ): Promise<Decision> {
    const request = { token, success: args.success, output: args.output ?? "", leaseId: args.leaseId ?? "" };
    const res = await this.call((o) => this.decisions.completeDecision(request, o), opts);
    return res.decision!;
  }

  /**
   * The decision now (unless `afterVersion` is set), then each change, in
   * order; ends after a terminal state. When the stream drops (UNAVAILABLE
   * from a restarting server, or a lost connection) it reconnects with `afterVersion` = the
   * last version yielded, so nothing is lost or repeated. Leaving the loop
   * cancels the stream.
   */
  async *watchDecision(
    token: string,
    args: { afterVersion?: bigint | number } & WatchOptions = {},
  ): AsyncGenerator<Decision> {
    let last: bigint | undefined = args.afterVersion ? BigInt(args.afterVersion) : undefined;
    const reconnect = new Reconnect(args.maxRetries ?? 10);
    for (;;) {
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      args.signal?.addEventListener("abort", onAbort, { once: true });
      let error: VerdictError;
      try {
        const stream = this.decisions.watchDecision(
          { token, afterVersion: last ?? 0n },
          { signal: abort.signal, headers: await this.headers() },
        );
        for await (const message of stream) {
          const decision = message.decision!;
          if (last !== undefined && decision.version <= last) {
            continue;
          }
          last = decision.version;
          reconnect.progressed();
          yield decision;
          if (TERMINAL_STATES.has(decision.state)) {
            return;
          }
        }
        return;
      } catch (e) {
        error = toVerdictError(e);
      } finally {
        abort.abort();
        args.signal?.removeEventListener("abort", onAbort);
      }
      const delay = reconnect.retryAfter(error, args.signal);
      if (delay === undefined) {
        throw error;
      }
      await sleep(delay, args.signal);
    }
  }

  /**
   * Every change of every decision matching the filter (for dashboards),
   * until the caller stops. A dropped stream is reopened like
   * `watchDecision`'s; a change already yielded is never yielded again
   * (changes made while disconnected are not replayed).
   */
  async *watchDecisions(
    args: { incidentId?: string; state?: DecisionStateLike; severity?: SeverityLike } & WatchOptions = {},
  ): AsyncGenerator<Decision> {
    const request = {
      incidentId: args.incidentId ?? "",
      state: decisionState(args.state),
      severity: severity(args.severity),
    };
    const seen = new Map<string, bigint>();
    const reconnect = new Reconnect(args.maxRetries ?? 10);
    for (;;) {
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      args.signal?.addEventListener("abort", onAbort, { once: true });
      let error: VerdictError;
      try {
        const stream = this.decisions.watchDecisions(request, { signal: abort.signal, headers: await this.headers() });
        for await (const message of stream) {
          reconnect.progressed();
          const decision = message.decision!;
          const last = seen.get(decision.token);
          if (last !== undefined && decision.version <= last) {
            continue;
          }
          // Re-inserted so the map's order is least recently changed first.
          seen.delete(decision.token);
          seen.set(decision.token, decision.version);
          if (seen.size > 10_000) {
            seen.delete(seen.keys().next().value!);
          }
          yield decision;
        }
        return;
      } catch (e) {
        error = toVerdictError(e);
      } finally {
        abort.abort();
        args.signal?.removeEventListener("abort", onAbort);
      }
      const delay = reconnect.retryAfter(error, args.signal);
      if (delay === undefined) {
        throw error;
      }
      await sleep(delay, args.signal);
    }
  }

  // -- AuditService ------------------------------------------------------

  /**
   * One page of audit events, oldest first; every filter set must match
   * (`action` e.g. "approved", `outcome` "OK" or a gRPC code name). Keep
   * paging with `pageToken: page.nextPageToken` while it is set: a page
   * may be short, even empty, with a token.
   */
  async listAuditEvents(
    args: AuditFilterOptions & { until?: Date; pageSize?: number; pageToken?: string } & CallOptions = {},
  ): Promise<ListAuditEventsResponse> {
    return this.call(
      (o) =>
        this.audit.listAuditEvents(
          { filter: auditFilter(args, args.until), pageSize: args.pageSize ?? 0, pageToken: args.pageToken ?? "" },
          o,
        ),
      args,
    );
  }

  /**
   * Every audit event matching the filter as it is appended, until the
   * caller stops: after the event at position `after` when set, else from
   * `since` (replaying kept events) when set, else from the next event. A
   * dropped stream (server restart, lost connection) is reopened after the
   * last event yielded, so nothing is lost or repeated.
   */
  async *watchAuditEvents(
    args: AuditFilterOptions & { after?: string } & WatchOptions = {},
  ): AsyncGenerator<AuditEvent> {
    let last = args.after ?? "";
    const reconnect = new Reconnect(args.maxRetries ?? 10);
    for (;;) {
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      args.signal?.addEventListener("abort", onAbort, { once: true });
      let error: VerdictError;
      try {
        // Once an event was seen, its position says where to resume.
        const filter = auditFilter(last ? { ...args, since: undefined } : args);
        const stream = this.audit.watchAuditEvents(
          { filter, after: last },
          { signal: abort.signal, headers: await this.headers() },
        );
        for await (const message of stream) {
          reconnect.progressed();
          const event = message.event!;
          last = event.position;
          yield event;
        }
        return;
      } catch (e) {
        error = toVerdictError(e);
      } finally {
        abort.abort();
        args.signal?.removeEventListener("abort", onAbort);
      }
      const delay = reconnect.retryAfter(error, args.signal);
      if (delay === undefined) {
        throw error;
      }
      await sleep(delay, args.signal);
    }
  }

  // -- IdentityService ---------------------------------------------------

  /**
   * Who this client is to the server (subject, authentication method,
   * roles) and, for every verdict RPC, whether it may call it and the role
   * it needs (see `permission`). Any authenticated caller may ask; with
   * authentication off the answer is the anonymous principal, holding
   * every role.
   */
  async whoAmI(opts?: CallOptions): Promise<WhoAmIResponse> {
    return this.call((o) => this.identity.whoAmI({}, o), opts);
  }

  // -- StatsService ------------------------------------------------------

  /** Totals by status and severity, open count, created in range. */
  async getIncidentSummary(args: RangeOptions = {}): Promise<GetIncidentSummaryResponse> {
    return this.call((o) => this.stats.getIncidentSummary({ range: timeRange(args) }, o), args);
  }

  /** Resolution time P50/P95/P99 and mean, overall and by severity. */
  async getResolutionStats(args: RangeOptions = {}): Promise<GetResolutionStatsResponse> {
    return this.call((o) => this.stats.getResolutionStats({ range: timeRange(args) }, o), args);
  }

  /** How the engines perform: proposals by source, LLM win rate, fallbacks. */
  async getAiPerformance(args: RangeOptions = {}): Promise<GetAiPerformanceResponse> {
    return this.call((o) => this.stats.getAiPerformance({ range: timeRange(args) }, o), args);
  }

  /** Services ranked by number of incidents, most affected first. */
  async getAffectedServices(args: RangeOptions & { limit?: number } = {}): Promise<ServiceCount[]> {
    const res = await this.call(
      (o) => this.stats.getAffectedServices({ range: timeRange(args), limit: args.limit ?? 0 }, o),
      args,
    );
    return res.services;
  }
}

/** An RPC as generated (`DecisionService.method.approveDecision`). */
export interface RpcMethod {
  readonly name: string;
  readonly parent: { readonly typeName: string };
}

/**
 * What `whoAmI` said about one RPC: whether the caller may call it and
 * the role it needs. An RPC the server did not list (a newer client than
 * the server) is not allowed, needing an unknown role.
 */
export function permission(who: WhoAmIResponse, method: RpcMethod): { allowed: boolean; neededRole: Role } {
  const name = `${method.parent.typeName}/${method.name}`;
  const p: Permission | undefined = who.permissions.find((x) => x.method === name);
  return p ? { allowed: p.allowed, neededRole: p.neededRole } : { allowed: false, neededRole: Role.UNSPECIFIED };
}

/** A role's name as written in verdict's configuration ("approver"). */
export function roleName(r: Role): string {
  return r === Role.UNSPECIFIED ? "any role" : Role[r]!.toLowerCase();
}

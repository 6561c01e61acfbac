/**
 * The live model behind the board: every open incident and its current
 * decision, kept up to date from `WatchDecisions` without polling. The
 * stream is asked for incident changes too (`include_incidents`), so an
 * incident resolved or closed anywhere leaves the board at once.
 *
 * Resuming without losing or repeating a change. `WatchDecisions` does not
 * replay changes made while a client was away, so on every (re)connect the
 * model first opens the stream and waits for its response head (the server
 * answers it once the watcher is registered), and only then reads a fresh
 * snapshot (`ListIncidents`, `ListDecisions`). A change made before the
 * watcher existed is in the snapshot; one made after reaches the stream;
 * one made in between may arrive through both, and every decision is kept
 * by version (a version at or below the one held is dropped), which is
 * `after_version`'s rule applied per token. While the stream is down the
 * status says "disconnected" and reconnects back off up to 5 s.
 */
import type { Transport } from "@connectrpc/connect";
import {
  DecisionService,
  IncidentStatus,
  TERMINAL_STATES,
  VerdictClient,
  type Decision,
  type Incident,
} from "@verdict/client";
import { ms } from "./format.js";
import { boardOrder } from "./order.js";

export type Status = "connecting" | "live" | "disconnected";

/** What the board shows per incident. */
export interface Entry {
  incident: Incident;
  decision?: Decision;
}

/** Listeners of the model. */
export interface Listener {
  /** The whole model was (re)loaded. */
  reset(): void;
  /** One incident (or its decision) changed, appeared or went away. */
  changed(incidentId: string): void;
  status(s: Status): void;
}

/** Incidents per `ListCurrentDecisions` call while loading (the server's maximum). */
const LOAD_BATCH = 500;
/** Parallel `ListCurrentDecisions` calls while loading (a browser opens at most 6 HTTP/1.1 connections per origin; one carries the stream). */
const LOAD_CONCURRENCY = 2;

const isOpen = (i: Incident) => i.status === IncidentStatus.OPEN || i.status === IncidentStatus.INVESTIGATING;

/** Whether `next` should replace `held` as an incident's current decision. */
export function newer(held: Decision | undefined, next: Decision): boolean {
  if (!held) return true;
  if (held.token === next.token) return next.version > held.version;
  return ms(next.createdAt) >= ms(held.createdAt);
}

export class Live {
  readonly entries = new Map<string, Entry>();
  status: Status = "connecting";
  /** Milliseconds the last snapshot took to load (incidents, then decisions). */
  lastLoad = { incidentsMs: 0, decisionsMs: 0 };
  private listeners = new Set<Listener>();
  /**
   * Incidents asked for after a change named one not held, with the newest
   * change seen for each meanwhile (applied once the incident is read, so
   * a change arriving during the read is not lost).
   */
  private fetching = new Map<string, Decision>();
  /** Failed reads of an incident so far (retried with a growing delay, then left to the next resync). */
  private failedReads = new Map<string, number>();

  constructor(
    readonly client: VerdictClient,
    private readonly transport: Transport,
    private readonly headers: Record<string, string>,
  ) {}

  listen(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private emit(f: (l: Listener) => void): void {
    for (const l of this.listeners) f(l);
  }

  private setStatus(s: Status): void {
    this.status = s;
    this.emit((l) => l.status(s));
  }

  /** Runs until `signal` aborts: connect, resync, follow, reconnect. */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const abort = new AbortController();
      const stop = () => abort.abort();
      signal.addEventListener("abort", stop, { once: true });
      try {
        const response = await this.transport.stream(
          DecisionService.method.watchDecisions,
          abort.signal,
          undefined,
          this.headers,
          // Incident changes too: a resolved incident leaves the board at once.
          (async function* () {
            yield { includeIncidents: true };
          })(),
        );
        // Live once the incidents are in; their decisions keep arriving
        // while the stream is followed (each kept by version either way).
        const { decisions } = await this.resync(abort.signal);
        failures = 0;
        this.setStatus("live");
        void decisions;
        for await (const message of response.message) {
          if (message.decision) this.apply(message.decision);
          else if (message.incident) this.applyIncident(message.incident);
        }
      } catch (e) {
        if (signal.aborted) return;
        console.warn("verdict: the live stream dropped", e);
      } finally {
        signal.removeEventListener("abort", stop);
        abort.abort();
      }
      if (signal.aborted) return;
      this.setStatus("disconnected");
      failures += 1;
      await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(failures, 6))));
    }
  }

  /**
   * Reads every open incident, then (in the background: `decisions`, in
   * an object because an async function would otherwise wait for it) their
   * current decisions, 500 incidents per `ListCurrentDecisions` call (two
   * calls for a thousand incidents, where one `ListDecisions` per incident
   * took a thousand).
   */
  private async resync(signal: AbortSignal): Promise<{ decisions: Promise<void> }> {
    const started = performance.now();
    const open: Incident[] = [];
    for (const status of [IncidentStatus.OPEN, IncidentStatus.INVESTIGATING]) {
      for await (const i of this.client.iterIncidents({ status, pageSize: 500 }, { signal })) open.push(i);
    }
    const before = this.entries;
    const fresh = new Map<string, Entry>();
    for (const incident of open) fresh.set(incident.id, { incident, decision: before.get(incident.id)?.decision });
    this.entries.clear();
    for (const [k, v] of fresh) this.entries.set(k, v);
    const listed = performance.now();
    this.lastLoad.incidentsMs = listed - started;
    this.emit((l) => l.reset());
    // Decisions are read in board order, so the top of the board fills first.
    const order = boardOrder(this);
    const batches: string[][] = [];
    for (let i = 0; i < order.length; i += LOAD_BATCH) batches.push(order.slice(i, i + LOAD_BATCH));
    const worker = async () => {
      for (let ids = batches.shift(); ids && !signal.aborted; ids = batches.shift()) {
        try {
          for (const d of await this.client.listCurrentDecisions(ids, { signal })) this.apply(d);
        } catch (e) {
          // A batch unreadable (or the connection going, which the stream
          // notices too): its rows wait for their next change or resync.
          if (!signal.aborted) console.warn(`verdict: cannot read the decisions of ${ids.length} incidents`, e);
        }
      }
    };
    const decisions = Promise.all(Array.from({ length: LOAD_CONCURRENCY }, worker)).then(() => {
      this.lastLoad.decisionsMs = performance.now() - listed;
    });
    return { decisions };
  }

  /**
   * Takes one incident change from the stream: a resolved or closed
   * incident leaves the model, an open one is updated (or, reopened,
   * comes back; its decision follows from the next read or change).
   * Incident changes carry a version, so an older one never overwrites
   * a newer.
   */
  applyIncident(incident: Incident): void {
    const held = this.entries.get(incident.id);
    if (held && incident.version < held.incident.version) return;
    if (!isOpen(incident)) {
      if (!held) return;
      this.entries.delete(incident.id);
    } else if (held) {
      held.incident = incident;
    } else {
      this.entries.set(incident.id, { incident });
    }
    this.emit((l) => l.changed(incident.id));
  }

  /** Takes one decision change (from the stream or a snapshot). */
  apply(d: Decision): void {
    const entry = this.entries.get(d.incidentId);
    if (!entry) {
      // A decision of an incident not held: a new incident (or one resolved
      // meanwhile, which `getIncident` tells).
      const waiting = this.fetching.get(d.incidentId);
      if (waiting) {
        if (newer(waiting, d)) this.fetching.set(d.incidentId, d);
        return;
      }
      if (TERMINAL_STATES.has(d.state)) return;
      this.fetching.set(d.incidentId, d);
      const id = d.incidentId;
      void this.client
        .getIncident(id)
        .then((incident) => {
          this.failedReads.delete(id);
          if (!isOpen(incident)) return;
          const held = this.entries.get(incident.id);
          this.entries.set(incident.id, { incident, decision: held?.decision });
        })
        .catch((e) => {
          // A busy server (UNAVAILABLE): read it again shortly rather than
          // lose the incident until the next reconnect.
          const failures = (this.failedReads.get(id) ?? 0) + 1;
          this.failedReads.set(id, failures);
          console.warn("verdict: cannot read incident", id, e);
          return failures <= 5 ? failures : undefined;
        })
        .then((retry) => {
          const newest = this.fetching.get(id);
          this.fetching.delete(id);
          if (!newest) return;
          if (this.entries.has(id)) this.apply(newest);
          else if (typeof retry === "number") setTimeout(() => this.apply(newest), 250 * 2 ** retry);
        });
      return;
    }
    if (!newer(entry.decision, d)) return;
    entry.decision = d;
    this.emit((l) => l.changed(d.incidentId));
  }
}

/**
 * Watches against the real server over gRPC and gRPC-Web: the walk seen
 * through WatchDecision, WatchDecisions for one incident, and a watch that
 * survives a server restart. Each test skips, with the reason, while the
 * server answers UNIMPLEMENTED.
 */
import assert from "node:assert/strict";
import { after, before, describe, test, type TestContext } from "node:test";
import { DecisionState, type Decision, type VerdictClient } from "../src/index.js";
import { Server, watchUnimplemented, type Protocol } from "./server.js";

const { READY, EXECUTING, COMPLETED } = DecisionState;
const WAIT_MS = 20_000;

/** Reads an async iterator in the background; `next()` waits for its next value. */
class Collector {
  private items: (Decision | Error | null)[] = [];
  private wake?: () => void;
  readonly abort = new AbortController();

  /** `open` gets the signal that `stop()` aborts. */
  constructor(open: (signal: AbortSignal) => AsyncIterable<Decision>) {
    const stream = open(this.abort.signal);
    void (async () => {
      try {
        for await (const d of stream) {
          this.push(d);
        }
        this.push(null);
      } catch (e) {
        this.push(e as Error);
      }
    })();
  }

  /** Ends the watch (tests must, or the process would not exit). */
  stop(): void {
    this.abort.abort();
  }

  private push(item: Decision | Error | null): void {
    this.items.push(item);
    this.wake?.();
  }

  /** The next decision, or null when the stream ended. */
  async next(timeoutMs = WAIT_MS): Promise<Decision | null> {
    const until = Date.now() + timeoutMs;
    while (this.items.length === 0) {
      const left = until - Date.now();
      if (left <= 0) {
        throw new Error("no watch message in time");
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    }
    const item = this.items.shift()!;
    if (item instanceof Error) {
      throw item;
    }
    return item;
  }

  async rest(): Promise<Decision[]> {
    const out: Decision[] = [];
    for (let d = await this.next(); d !== null; d = await this.next()) {
      out.push(d);
    }
    return out;
  }
}

async function readyDecision(verdict: VerdictClient, service = "checkout"): Promise<Decision> {
  const incident = await verdict.createIncident({
    title: "crash", severity: "P2", affectedServices: [service], signals: [{ alertName: "PodCrashLooping" }],
  });
  return (await verdict.getOrCreateDecision(incident.id, { wait: true, analysisTimeoutMs: 10_000 })).decision!;
}

async function skipIfUnimplemented(
  t: TestContext,
  verdict: VerdictClient,
  rpc: "watchDecision" | "watchDecisions" = "watchDecision",
): Promise<boolean> {
  const reason = await watchUnimplemented(verdict, rpc);
  if (reason) {
    t.skip(reason);
    return true;
  }
  return false;
}

for (const protocol of ["grpc", "grpc-web"] as Protocol[]) {
  describe(`watch over ${protocol}`, () => {
    let server: Server;
    before(async () => {
      server = await Server.start("memory");
    });
    after(async () => {
      await server?.stop();
    });

    test("watchDecision sees the walk: READY, EXECUTING, COMPLETED", async (t) => {
      const verdict = server.client(protocol);
      if (await skipIfUnimplemented(t, verdict)) return;
      const decision = await readyDecision(verdict);
      const states: DecisionState[] = [];
      const versions: bigint[] = [];
      for await (const d of verdict.watchDecision(decision.token)) {
        states.push(d.state);
        versions.push(d.version);
        if (d.state === READY) {
          await verdict.approveDecision(decision.token, { actor: "alice", expectedVersion: d.version });
        } else if (d.state === EXECUTING) {
          await verdict.completeDecision(decision.token, { success: true });
        }
      }
      assert.deepEqual(states, [READY, EXECUTING, COMPLETED]);
      assert.deepEqual(versions, [...new Set(versions)].sort((a, b) => (a < b ? -1 : 1)), "in order, none repeated");
    });

    test("afterVersion skips the snapshot", async (t) => {
      const verdict = server.client(protocol);
      if (await skipIfUnimplemented(t, verdict)) return;
      const decision = await readyDecision(verdict);
      await verdict.approveDecision(decision.token, { actor: "alice" });
      await verdict.completeDecision(decision.token, { success: true });
      const states: DecisionState[] = [];
      for await (const d of verdict.watchDecision(decision.token, { afterVersion: decision.version })) {
        states.push(d.state);
      }
      assert.deepEqual(states, [EXECUTING, COMPLETED]);
    });

    test("watchDecisions for one incident", async (t) => {
      const verdict = server.client(protocol);
      if (await skipIfUnimplemented(t, verdict, "watchDecisions")) return;
      const incident = await verdict.createIncident({
        title: "crash", severity: "P2", affectedServices: ["cart"], signals: [{ alertName: "PodCrashLooping" }],
      });
      const watch = new Collector((signal) => verdict.watchDecisions({ incidentId: incident.id, signal }));
      t.after(() => watch.stop());
      // No "subscribed" signal exists: issue and reject tokens until the
      // watcher has seen one, so later changes are certainly observed.
      let decision: Decision | undefined;
      for (let i = 0; i < 50 && decision === undefined; i++) {
        const d = (await verdict.getOrCreateDecision(incident.id, { wait: true })).decision!;
        try {
          await watch.next(200);
          decision = d;
        } catch {
          await verdict.rejectDecision(d.token, { actor: "test", reason: "until subscribed" });
        }
      }
      assert.ok(decision, "WatchDecisions sent nothing");
      await verdict.approveDecision(decision.token, { actor: "alice" });
      await verdict.completeDecision(decision.token, { success: true });
      const states: DecisionState[] = [];
      while (!states.includes(COMPLETED)) {
        const d = await watch.next();
        assert.ok(d && d.incidentId === incident.id);
        if (d.token === decision.token) states.push(d.state);
      }
      assert.deepEqual(states.slice(-2), [EXECUTING, COMPLETED]);
    });

    test("a watch survives a server restart (Redis store)", async (t) => {
      const own = await Server.start("redis");
      try {
        const verdict = own.client(protocol);
        if (await skipIfUnimplemented(t, verdict)) return;
        const decision = await readyDecision(verdict);
        const watch = new Collector((signal) => verdict.watchDecision(decision.token, { maxRetries: Infinity, signal }));
        t.after(() => watch.stop());
        const snapshot = await watch.next();
        assert.equal(snapshot?.state, READY);

        await own.terminate(); // the stream ends with UNAVAILABLE
        await own.startVerdict(); // same port, same Redis
        const after = own.client(protocol);
        await after.approveDecision(decision.token, { actor: "alice", expectedVersion: decision.version });
        await after.completeDecision(decision.token, { success: true });
        assert.deepEqual((await watch.rest()).map((d) => d.state), [EXECUTING, COMPLETED]);
      } finally {
        await own.stop();
      }
    });
  });
}

/**
 * The audit trail through the client against the real server, for both
 * stores and both transports: a listing filtered by incident, and a watch
 * that sees new events and, resumed after the last position it yielded,
 * misses nothing and repeats nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { AuditEvent, VerdictClient } from "../src/index.js";
import { Server, uniqueId, type Protocol, type Store } from "./server.js";

for (const store of ["memory", "redis"] as Store[]) {
  describe(`audit (${store} store)`, () => {
    let server: Server;
    before(async () => {
      server = await Server.start(store);
    });
    after(async () => {
      await server?.stop();
    });

    for (const protocol of ["grpc", "grpc-web"] as Protocol[]) {
      describe(`over ${protocol}`, () => {
        let verdict: VerdictClient;
        before(() => {
          verdict = server.client(protocol);
        });

        const create = async () =>
          (await verdict.createIncident({ id: uniqueId(), title: "Checkout down", severity: "P2", affectedServices: ["checkout"] })).id;

        test("listAuditEvents filters by incident", async () => {
          const id = await create();
          await create();
          const page = await verdict.listAuditEvents({ incidentId: id });
          assert.deepEqual(
            page.events.map((e) => [e.action, e.incidentId, e.outcome]),
            [["incident_created", id, "OK"]],
          );
          assert.ok(page.events[0]!.hash && page.events[0]!.position);
        });

        test("watchAuditEvents follows, and resumes after its last position missing nothing", async () => {
          const since = new Date(Date.now() - 1000);
          const first = await create();
          const abort = new AbortController();
          const stream = verdict.watchAuditEvents({ since, action: "incident_created", signal: abort.signal });
          // Replayed from `since` (so the watch cannot miss it, whenever it
          // connects), then one made while the stream is open.
          const until = async (id: string): Promise<AuditEvent> => {
            for (;;) {
              const next = await stream.next();
              assert.ok(!next.done, "stream ended");
              if (next.value.incidentId === id) return next.value;
            }
          };
          await until(first);
          const live = await create();
          const seen = await until(live);
          abort.abort();
          await stream.return(undefined);

          const missed = [await create(), await create(), await create()];
          const resumedAbort = new AbortController();
          const resumed = verdict.watchAuditEvents({ after: seen.position, action: "incident_created", signal: resumedAbort.signal });
          const got: string[] = [];
          for await (const e of resumed) {
            got.push(e.incidentId);
            if (got.length === missed.length) break;
          }
          resumedAbort.abort();
          assert.deepEqual(got, missed);
        });
      });
    }
  });
}

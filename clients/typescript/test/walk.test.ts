/**
 * The README's walk against the real server, for both stores and both
 * transports: create an incident, decide, approve, complete, resolve.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  CommandVerb,
  DecisionState,
  IncidentStatus,
  ProposalSource,
  Severity,
  type VerdictClient,
} from "../src/index.js";
import { Server, uniqueId, type Protocol, type Store } from "./server.js";

for (const store of ["memory", "redis"] as Store[]) {
  describe(`walk (${store} store)`, () => {
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

        test("create → decide → approve → complete → resolve", async () => {
          const incident = await verdict.createIncident({
            title: "Checkout pods crashing",
            severity: "P2",
            affectedServices: ["checkout"],
            namespace: "shop",
            signals: [{ alertName: "PodCrashLooping", labels: { service: "checkout" } }],
          });
          assert.match(incident.id, /^INC-/);
          assert.equal(incident.severity, Severity.P2);
          assert.equal(incident.status, IncidentStatus.OPEN);

          const decided = await verdict.getOrCreateDecision(incident.id, { wait: true, analysisTimeoutMs: 10_000 });
          assert.equal(decided.created, true);
          const decision = decided.decision!;
          assert.match(decision.token, /^DEC-[0-9A-F]{12}$/);
          assert.equal(decision.state, DecisionState.READY);
          assert.equal(decision.proposal?.source, ProposalSource.EXPERT);
          assert.equal(decision.proposal?.command?.verb, CommandVerb.ROLLOUT_RESTART);
          assert.equal(decision.proposal?.kubectl, "kubectl rollout restart deployment/checkout -n shop");

          const again = await verdict.getOrCreateDecision(incident.id);
          assert.deepEqual([again.created, again.decision?.token], [false, decision.token]);

          const approved = await verdict.approveDecision(decision.token, { actor: "alice", expectedVersion: decision.version });
          assert.equal(approved.state, DecisionState.EXECUTING);
          assert.equal(approved.decidedBy, "alice");
          assert.ok(approved.version > decision.version);

          const done = await verdict.completeDecision(decision.token, { success: true, output: "restarted" });
          assert.equal(done.state, DecisionState.COMPLETED);
          assert.equal(done.output, "restarted");
          assert.equal((await verdict.getDecision(decision.token)).version, done.version);
          assert.deepEqual((await verdict.listDecisions(incident.id)).map((d) => d.token), [decision.token]);

          const resolved = await verdict.updateIncidentStatus(incident.id, { status: "resolved", actor: "alice", note: "restarted" });
          assert.equal(resolved.status, IncidentStatus.RESOLVED);
          assert.ok(resolved.resolvedAt);
          const final = await verdict.getOrCreateDecision(incident.id);
          assert.deepEqual([final.created, final.decision?.token], [false, decision.token]);
        });

        test("reject, then a new token", async () => {
          const incident = await verdict.createIncident({
            title: "Latency",
            severity: Severity.P3,
            affectedServices: ["search"],
            signals: [{ alertName: "HighLatency" }],
          });
          const first = (await verdict.getOrCreateDecision(incident.id, { wait: true })).decision!;
          const rejected = await verdict.rejectDecision(first.token, { actor: "bob", reason: "not now" });
          assert.equal(rejected.state, DecisionState.REJECTED);
          const second = await verdict.getOrCreateDecision(incident.id, { wait: true });
          assert.ok(second.created);
          assert.deepEqual((await verdict.listDecisions(incident.id)).map((d) => d.token), [second.decision!.token, first.token]);
        });

        test("idempotent create, listing and paging", async () => {
          const requestId = uniqueId("REQ");
          const service = `svc-${uniqueId("x").toLowerCase().replace(/[^a-z0-9]/g, "").slice(-10)}`;
          const first = await verdict.createIncident({ title: "a", severity: "p4", affectedServices: [service], requestId });
          const retry = await verdict.createIncident({ title: "a", severity: "p4", affectedServices: [service], requestId });
          assert.equal(retry.id, first.id);
          const second = await verdict.createIncident({ title: "b", severity: "P4", affectedServices: [service] });
          const third = await verdict.createIncident({ title: "c", severity: "P4", affectedServices: [service] });
          const page = await verdict.listIncidents({ service, pageSize: 2 });
          assert.ok(page.incidents.length <= 2);
          const all: string[] = [];
          for await (const incident of verdict.iterIncidents({ service, pageSize: 2 })) {
            all.push(incident.id);
          }
          assert.deepEqual(new Set(all), new Set([first.id, second.id, third.id]));
        });
      });
    }
  });
}

/**
 * Failed calls throw the class of their status code with the google.rpc
 * details decoded, over gRPC and gRPC-Web.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AlreadyExists,
  Code,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  Unauthenticated,
  Unavailable,
  VerdictError,
} from "../src/index.js";
import { connectNode } from "../src/node.js";
import { connectWeb } from "../src/web.js";
import { freePort, Server, uniqueId, type Protocol } from "./server.js";

describe("errors", () => {
  let server: Server;
  before(async () => {
    server = await Server.start("memory");
  });
  after(async () => {
    await server?.stop();
  });

  for (const protocol of ["grpc", "grpc-web"] as Protocol[]) {
    describe(`over ${protocol}`, () => {
      test("a token (or a token provider) is sent with every call", async () => {
        // A `--dev` server checks a presented token; calls without one are
        // anonymous.
        let asked = 0;
        const provider = () => {
          asked += 1;
          return "vdt_not-a-token";
        };
        for (const token of ["vdt_not-a-token", provider]) {
          const verdict = server.client(protocol, { timeoutMs: 10_000, token });
          const error = await verdict.listIncidents().then(() => assert.fail("accepted"), (e: unknown) => e);
          assert.ok(error instanceof Unauthenticated, String(error));
          assert.match(error.message, /not valid/);
        }
        assert.ok(asked > 0, "the provider was asked");
        await server.client(protocol).listIncidents();
      });

      test("INVALID_ARGUMENT carries the field violations", async () => {
        const verdict = server.client(protocol);
        const error = await verdict
          .createIncident({ title: "", severity: "unspecified", affectedServices: ["checkout; rm -rf /"] })
          .then(() => assert.fail("accepted"), (e: unknown) => e);
        assert.ok(error instanceof InvalidArgument, String(error));
        assert.equal(error.code, Code.InvalidArgument);
        assert.deepEqual(
          error.fieldViolations.map((v) => v.field),
          ["incident.title", "incident.severity", "incident.affected_services[0]"],
        );
        assert.match(error.fieldViolations[2]!.description, /RFC 1123/);
        assert.match(error.message, /incident\.affected_services\[0\]: must be an RFC 1123 label/);
      });

      test("NOT_FOUND and ALREADY_EXISTS", async () => {
        const verdict = server.client(protocol);
        await assert.rejects(verdict.getIncident(uniqueId("INC-MISSING")), NotFound);
        await assert.rejects(verdict.getDecision("DEC-000000000000"), NotFound);
        const id = uniqueId();
        await verdict.createIncident({ id, title: "once", severity: "P3" });
        await assert.rejects(verdict.createIncident({ id, title: "twice", severity: "P3" }), AlreadyExists);
      });

      test("FAILED_PRECONDITION names the violation", async () => {
        const verdict = server.client(protocol);
        const incident = await verdict.createIncident({
          title: "crash", severity: "P2", affectedServices: ["api"], signals: [{ alertName: "PodCrashLooping" }],
        });
        const decision = (await verdict.getOrCreateDecision(incident.id, { wait: true })).decision!;
        const stale = await verdict
          .approveDecision(decision.token, { actor: "a", expectedVersion: decision.version + 7n })
          .catch((e: unknown) => e);
        assert.ok(stale instanceof FailedPrecondition);
        assert.deepEqual(stale.violations.map((v) => v.type), ["VERSION"]);
        await verdict.approveDecision(decision.token, { actor: "a" });
        const twice = await verdict.approveDecision(decision.token, { actor: "b" }).catch((e: unknown) => e);
        assert.ok(twice instanceof FailedPrecondition);
        assert.deepEqual(twice.violations.map((v) => [v.type, v.subject]), [["STATE", decision.token]]);
      });
    });
  }

  for (const [protocol, connect] of [["grpc", connectNode], ["grpc-web", connectWeb]] as const) {
    test(`an unreachable server is UNAVAILABLE over ${protocol}`, async () => {
      const verdict = connect(`http://127.0.0.1:${await freePort()}`, { timeoutMs: 5000 });
      const error = await verdict.getIncident("INC-1").catch((e: unknown) => e);
      assert.ok(error instanceof Unavailable, String(error));
      assert.ok(error instanceof VerdictError);
      assert.equal(error.code, Code.Unavailable);
    });
  }

  test("enum names are checked before sending", async () => {
    const verdict = server.client("grpc");
    await assert.rejects(verdict.createIncident({ title: "x", severity: "P9" }), /unknown severity "P9"/);
  });
});

/**
 * The watch iterators' resume logic against a stub server whose streams
 * drop mid-way (an UNAVAILABLE status, or the connection cut), over gRPC
 * and gRPC-Web: runs with or without a server that implements watches.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DecisionState, NotFound, Unavailable, VerdictClient } from "../src/index.js";
import { connectNode } from "../src/node.js";
import { connectWeb } from "../src/web.js";
import { FakeServer, TOKEN, type Drop } from "./fake.js";

const { READY, EXECUTING, COMPLETED } = DecisionState;

function clientFor(protocol: "grpc" | "grpc-web", baseUrl: string): VerdictClient {
  return protocol === "grpc" ? connectNode(baseUrl) : connectWeb(baseUrl);
}

for (const protocol of ["grpc", "grpc-web"] as const) {
  for (const drop of ["unavailable", "socket"] as Drop[]) {
    describe(`resume over ${protocol} when the stream ends by ${drop}`, () => {
      test("watchDecision reconnects with afterVersion and skips duplicates", async () => {
        const fake = await FakeServer.start(protocol, drop);
        try {
          const seen: [number, DecisionState][] = [];
          for await (const d of clientFor(protocol, fake.baseUrl).watchDecision(TOKEN)) {
            seen.push([Number(d.version), d.state]);
          }
          assert.deepEqual(seen, [[1, READY], [2, READY], [3, EXECUTING], [4, COMPLETED]]);
          assert.deepEqual(fake.afterVersions, [0n, 2n, 2n]);
        } finally {
          await fake.stop();
        }
      });

      test("watchDecisions never yields a change twice", async () => {
        const fake = await FakeServer.start(protocol, drop);
        try {
          const seen: string[] = [];
          for await (const d of clientFor(protocol, fake.baseUrl).watchDecisions({ state: "ready" })) {
            seen.push(`${d.token.slice(-1)}${d.version}`);
          }
          assert.deepEqual(seen, ["A1", "B1", "A2"]);
          assert.equal(fake.watchAllCalls, 2);
        } finally {
          await fake.stop();
        }
      });
    });
  }
}

describe("watch errors", () => {
  test("other codes are thrown at once", async () => {
    const fake = await FakeServer.start("grpc", "unavailable");
    try {
      const stream = connectNode(fake.baseUrl).watchDecision("DEC-FFFFFFFFFFFF");
      await assert.rejects(stream.next(), NotFound);
      assert.deepEqual(fake.afterVersions, []);
    } finally {
      await fake.stop();
    }
  });

  test("gives up after maxRetries", async () => {
    const fake = await FakeServer.start("grpc", "unavailable");
    await fake.stop();
    const stream = connectNode(fake.baseUrl).watchDecision(TOKEN, { maxRetries: 2 });
    await assert.rejects(stream.next(), Unavailable);
  });

  test("leaving the loop ends the stream", async () => {
    const fake = await FakeServer.start("grpc", "unavailable");
    try {
      for await (const d of connectNode(fake.baseUrl).watchDecision(TOKEN)) {
        assert.equal(d.version, 1n);
        break;
      }
      assert.deepEqual(fake.afterVersions, [0n]);
    } finally {
      await fake.stop();
    }
  });
});

/**
 * ListCurrentDecisions through the client against the real server (Redis
 * store), over both transports: one call answers the current decision of
 * several incidents, in the order asked, leaving out those without one.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Server, uniqueId, type Protocol } from "./server.js";

describe("listCurrentDecisions", () => {
  let server: Server;
  before(async () => {
    server = await Server.start("redis");
  });
  after(async () => {
    await server?.stop();
  });

  for (const protocol of ["grpc", "grpc-web"] as Protocol[]) {
    test(`the current decisions of a page of incidents in one call (${protocol})`, async () => {
      const verdict = server.client(protocol);
      const make = async () =>
        (await verdict.createIncident({ id: uniqueId(), title: "Checkout down", severity: "P2", affectedServices: ["checkout"] })).id;
      const [a, undecided, c] = [await make(), await make(), await make()];
      const da = (await verdict.getOrCreateDecision(a, { wait: true })).decision;
      const dc = (await verdict.getOrCreateDecision(c, { wait: true })).decision;
      const got = await verdict.listCurrentDecisions([c, undecided, a]);
      assert.deepEqual(
        got.map((d) => d.token),
        [dc!.token, da!.token],
      );
    });
  }
});

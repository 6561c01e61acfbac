/**
 * WhoAmI through the client against the real server (no authentication
 * configured), over both transports: the anonymous principal holds every
 * role, and `permission` reads the server's answer per RPC.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthMethod, DecisionService, Role, permission, roleName } from "../src/index.js";
import { Server, type Protocol } from "./server.js";

describe("identity", () => {
  let server: Server;
  before(async () => {
    server = await Server.start("memory");
  });
  after(async () => {
    await server?.stop();
  });

  for (const protocol of ["grpc", "grpc-web"] as Protocol[]) {
    test(`whoAmI without authentication is the anonymous admin (${protocol})`, async () => {
      const who = await server.client(protocol).whoAmI();
      assert.equal(who.subject, "anonymous");
      assert.equal(who.authMethod, AuthMethod.ANONYMOUS);
      assert.ok(who.roles.includes(Role.ADMIN));
      assert.deepEqual(permission(who, DecisionService.method.approveDecision), { allowed: true, neededRole: Role.APPROVER });
      assert.equal(roleName(permission(who, DecisionService.method.completeDecision).neededRole), "executor");
      const unknown = { name: "NoSuchRpc", parent: { typeName: "verdict.v1.DecisionService" } };
      assert.deepEqual(permission(who, unknown), { allowed: false, neededRole: Role.UNSPECIFIED }, "unlisted: not allowed");
    });
  }
});

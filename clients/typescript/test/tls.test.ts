/**
 * TLS and mTLS against the real `verdict serve`: certificates made with
 * openssl for this suite; `connectNode(url, { tls: { ca, cert, key } })`.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { connectNode } from "../src/node.js";
import { Code } from "../src/index.js";
import { freePort } from "./server.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const BIN = process.env.VERDICT_BIN ?? join(ROOT, "target", "debug", "verdict");

/** A CA; a server certificate for localhost; alice's client certificate. */
function makeCerts(dir: string): void {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl("req", "-x509", ...ec, "-days", "1", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem");
  for (const [name, ext] of [
    ["server", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    ["alice", "extendedKeyUsage=clientAuth"],
  ]) {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    openssl("req", ...ec, "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.csr`);
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-days", "1", "-extfile", `${name}.ext`, "-out", `${name}.pem`);
  }
}

describe("TLS and mTLS (node)", () => {
  const dir = mkdtempSync(join(tmpdir(), "verdict-ts-tls-"));
  let proc: ChildProcess | undefined;
  let baseUrl = "";
  const pem = (name: string) => readFileSync(join(dir, name));
  const alice = () => connectNode(baseUrl, {
    timeoutMs: 5000,
    tls: { ca: pem("ca.pem"), cert: pem("alice.pem"), key: pem("alice.key") },
  });

  before(async () => {
    makeCerts(dir);
    const port = await freePort();
    baseUrl = `https://localhost:${port}`;
    writeFileSync(join(dir, "verdict.toml"), [
      `listen = "127.0.0.1:${port}"`,
      `tls_cert_file = "server.pem"`,
      `tls_key_file = "server.key"`,
      `tls_client_ca_file = "ca.pem"`,
      `[[auth_mtls]]`,
      `cert = "CN=alice"`,
      `roles = ["approver"]`,
      "",
    ].join("\n"));
    const logPath = join(dir, "verdict.log");
    proc = spawn(BIN, ["serve", "--config", "verdict.toml"], { cwd: dir, stdio: ["ignore", openSync(logPath, "w"), openSync(logPath, "a")] });
    const until = Date.now() + 30_000;
    const probe = alice();
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`verdict serve exited: ${readFileSync(logPath, "utf8")}`);
      try {
        await probe.listIncidents({ pageSize: 1 });
        return;
      } catch (e) {
        if (Date.now() > until) throw new Error(`verdict serve not ready (${String(e)}): ${readFileSync(logPath, "utf8")}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });

  after(() => {
    proc?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  test("a client certificate is the principal over TLS", async () => {
    const verdict = alice();
    const incident = await verdict.createIncident({ title: "TLS from node", severity: "P3", affectedServices: ["checkout"] });
    assert.equal((await verdict.getIncident(incident.id)).title, "TLS from node");
  });

  test("without a client certificate the call is unauthenticated", async () => {
    const verdict = connectNode(baseUrl, { timeoutMs: 5000, tls: { ca: pem("ca.pem") } });
    await assert.rejects(verdict.listIncidents({ pageSize: 1 }), (e: { code?: Code; message: string }) => {
      assert.equal(e.code, Code.Unauthenticated);
      assert.match(e.message, /Bearer/);
      return true;
    });
  });

  test("TLS options are checked", () => {
    assert.throws(() => connectNode("http://localhost:1", { tls: { ca: "x" } }), /https:\/\//);
    assert.throws(() => connectNode("https://localhost:1", { tls: { cert: "x" } }), /go together/);
  });
});

// Four-eyes on the dashboard, in a real browser: a `verdict serve` with
// static bearer tokens for two approvers (alice, bob), so the approval
// policy's default (`approval_four_eyes_severity = P0`) makes a P0 incident
// need two distinct approvers. Alice approves in the page; the decision
// stays READY and both her page and bob's board show "awaiting second
// approval" and who approved first, live; bob's approval (over gRPC) then
// moves both pages to EXECUTING.
//
// The fixture in clients/typescript/test/server.ts probes readiness without
// a token, which an authenticated server refuses, so this file starts its
// own `verdict serve --dev --config FILE` (the in-memory store; the Redis
// store is covered by dashboard.test.mjs).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { chromium } from "playwright-core";
import { freePort, uniqueId } from "../../clients/typescript/dist/test/server.js";
import { connectNode } from "../../clients/typescript/dist/src/node.js";
import { RiskLevel } from "../../clients/typescript/dist/src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.VERDICT_BIN ?? join(HERE, "..", "..", "target", "debug", "verdict");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
];
const START_TIMEOUT_MS = 60_000;

const token = () => `vdt_${randomBytes(24).toString("hex")}`;
const TOKENS = { alice: token(), bob: token() };

let dir;
let proc;
let baseUrl;
let browser;
const contexts = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "verdict-ui-4eyes-"));
  const config = join(dir, "verdict.toml");
  writeFileSync(
    config,
    Object.entries(TOKENS)
      .map(([subject, t]) => `[[auth_tokens]]\nsubject = "${subject}"\nroles = ["approver"]\nsha256 = "${createHash("sha256").update(t).digest("hex")}"\n`)
      .join("\n"),
  );
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const logPath = join(dir, "verdict.log");
  proc = spawn(BIN, ["serve", "--dev", "--config", config, "--listen", `127.0.0.1:${port}`, "--shutdown-grace", "2s"], {
    stdio: ["ignore", openSync(logPath, "w"), openSync(logPath, "a")],
  });
  const probe = connectNode(baseUrl, { timeoutMs: 1000, token: TOKENS.alice });
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`verdict serve exited: ${readFileSync(logPath, "utf8")}`);
    try {
      await probe.listIncidents({ pageSize: 1 });
      break;
    } catch (e) {
      if (Date.now() > until) throw new Error(`verdict serve not ready (${String(e)}): ${readFileSync(logPath, "utf8")}`);
      await delay(50);
    }
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const gone = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await gone;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A page signed in with `who`'s token, on the board, its live stream connected. */
async function signedIn(who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${baseUrl}/`);
  await page.fill("#actor", who);
  await page.fill("#token", TOKENS[who]);
  await page.click("button[type=submit]");
  await page.waitForSelector(".conn.live", { timeout: 30_000 });
  return page;
}

const row = (id) => `tr[data-id="${id}"]`;

test("the first of two approvals shows 'awaiting second approval' live, the second executes", async () => {
  const alice = await signedIn("alice");
  const bob = await signedIn("bob");
  const api = { alice: connectNode(baseUrl, { timeoutMs: 30_000, token: TOKENS.alice }), bob: connectNode(baseUrl, { timeoutMs: 30_000, token: TOKENS.bob }) };

  const incident = await api.alice.createIncident({
    id: uniqueId("INC-UI4"),
    title: "Checkout down in eu-west",
    severity: "P0",
    affectedServices: ["checkout"],
    namespace: "shop",
    signals: [{ alertName: "PodCrashLooping", labels: { pod: "checkout-7d9f", namespace: "shop" } }],
  });
  const { decision } = await api.alice.getOrCreateDecision(incident.id, { wait: true, analysisTimeoutMs: 10_000 });
  assert.equal(decision.state, 3, "READY");
  await bob.waitForSelector(`${row(incident.id)}[data-state="READY"]`);
  assert.equal(await bob.getAttribute(row(incident.id), "data-awaiting"), null, "no approval yet: plain READY");

  // Alice approves in her decision view.
  await alice.click(row(incident.id));
  await alice.waitForSelector("#approve:not([disabled])");
  await alice.click("#approve");
  if (decision.proposal && decision.proposal.risk >= RiskLevel.HIGH) {
    await alice.waitForSelector("dialog[open]");
    await alice.click("dialog[open] button[type=submit]");
  }

  // Still READY, one approval of two, on the server...
  const first = await api.bob.getDecision(decision.token);
  assert.equal(first.state, 3, "READY after the first approval");
  assert.equal(first.approvalsRequired, 2);
  assert.deepEqual(first.approvals.map((a) => [a.subject, a.method]), [["alice", "static_token"]]);

  // ...and in both pages, live: alice's decision view and bob's board.
  await alice.waitForSelector("#proposal .s-awaiting");
  assert.match(await alice.textContent("#proposal h2"), /awaiting second approval.*approved first by alice/);
  assert.match(await alice.textContent("#approvals-needed"), /1 of 2 approvals/);
  const cells = await alice.$$eval("#approvals tbody tr td", (tds) => tds.map((td) => td.textContent));
  assert.equal(cells[0], "alice");
  assert.equal(cells[1], "static_token");
  assert.notEqual(cells[2], "—", "the approval's time");
  await bob.waitForSelector(`${row(incident.id)}[data-awaiting="second-approval"]`);
  assert.match(await bob.textContent(`${row(incident.id)} .badge-group`), /^awaiting second approval approved first by alice$/);

  // Bob's approval (over gRPC) executes it; both pages follow.
  const second = await api.bob.approveDecision(decision.token, { actor: "bob", expectedVersion: first.version });
  assert.equal(second.state, 4, "EXECUTING");
  await bob.waitForSelector(`${row(incident.id)}[data-state="EXECUTING"]:not([data-awaiting])`);
  await alice.waitForSelector("#show-current");
  await alice.click("#show-current");
  await alice.waitForSelector("#proposal .s-executing");
  assert.match(await alice.textContent("#approvals-needed"), /2 of 2 approvals/);
});

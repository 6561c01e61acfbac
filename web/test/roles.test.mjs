// Who may do what, and what the cluster said, on the dashboard in a real
// browser: a `verdict serve --dev` (the in-memory store; the Redis store is
// covered by dashboard.test.mjs) with static bearer tokens for a viewer
// (vera), an operator (otto) and an approver (alice), and the `kubernetes`
// executor against a fake Kubernetes API (fake_kube.mjs) that forbids the
// namespace `locked` (support/fake_kube.mjs), with a short verification window.
//
// - The page asks `WhoAmI` after login: vera sees Approve and Reject
//   disabled with the role they need, and `y`/`n` only explain; alice sees
//   them enabled; a refused token sends the person back to the login.
// - A decision whose dry run failed says why and cannot be approved.
// - A verification that succeeded (the incident resolved within the
//   window) and one that failed (still open at its end) show on the
//   decision view.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { chromium } from "playwright-core";
import { freePort, uniqueId } from "../../clients/typescript/dist/test/server.js";
import { connectNode } from "../../clients/typescript/dist/src/node.js";
import { VerificationState } from "../../clients/typescript/dist/src/index.js";
import { FakeKube } from "../support/fake_kube.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, "..", "test-results");
const DOCS = join(HERE, "..", "..", "docs");
const BIN = process.env.VERDICT_BIN ?? join(HERE, "..", "..", "target", "debug", "verdict");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
];
const START_TIMEOUT_MS = 60_000;
/** Long enough to resolve an incident in, short enough to wait out. */
const VERIFY_WINDOW = "6s";

const token = () => `vdt_${randomBytes(24).toString("hex")}`;
const PEOPLE = { vera: "viewer", otto: "operator", alice: "approver" };
const TOKENS = Object.fromEntries(Object.keys(PEOPLE).map((p) => [p, token()]));

let dir;
let proc;
let baseUrl;
let browser;
let kube;
const api = {};
const contexts = [];

before(async () => {
  mkdirSync(RESULTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "verdict-ui-roles-"));
  kube = await FakeKube.start();
  kube.forbidden.add("locked");
  const config = join(dir, "verdict.toml");
  writeFileSync(
    config,
    Object.entries(PEOPLE)
      .map(([subject, role]) => `[[auth_tokens]]\nsubject = "${subject}"\nroles = ["${role}"]\nsha256 = "${createHash("sha256").update(TOKENS[subject]).digest("hex")}"\n`)
      .join("\n"),
  );
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const logPath = join(dir, "verdict.log");
  proc = spawn(
    BIN,
    [
      "serve", "--dev", "--config", config, "--listen", `127.0.0.1:${port}`, "--shutdown-grace", "2s",
      "--executor", "kubernetes", "--executor-kubeconfig", kube.kubeconfig(dir),
      "--executor-namespace", "shop", "--executor-namespace", "locked",
      "--executor-verify-window", VERIFY_WINDOW,
    ],
    { stdio: ["ignore", openSync(logPath, "w"), openSync(logPath, "a")] },
  );
  for (const who of Object.keys(PEOPLE)) api[who] = connectNode(baseUrl, { timeoutMs: 30_000, token: TOKENS[who] });
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`verdict serve exited: ${readFileSync(logPath, "utf8")}`);
    try {
      await api.vera.listIncidents({ pageSize: 1 }, { timeoutMs: 1000 });
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
  await kube?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A page signed in with `who`'s token (or `token`), before the board loads. */
async function signIn(who, { token = TOKENS[who] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${baseUrl}/`);
  await page.fill("#actor", who);
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  return page;
}

/** An incident in `namespace` with a READY decision (restart of `service`), made by the operator. */
async function readyIncident({ namespace = "shop", service = "checkout", title = "Checkout pods crash-looping", severity = "P2" } = {}) {
  const incident = await api.otto.createIncident({
    id: uniqueId("INC-UIR"),
    title,
    severity,
    affectedServices: [service],
    namespace,
    signals: [{ alertName: "PodCrashLooping", labels: { pod: `${service}-7d9f`, namespace } }],
  });
  const { decision } = await api.otto.getOrCreateDecision(incident.id, { wait: true, analysisTimeoutMs: 10_000 });
  assert.equal(decision.state, 3, "READY");
  return { incident, decision };
}

/** The decision once `done` holds for it, followed through WatchDecision. */
async function until(token, done) {
  for await (const d of api.vera.watchDecision(token)) if (done(d)) return d;
  throw new Error(`${token} ended without the awaited change`);
}

/** The decision after its dry run (the kubernetes executor checks every READY decision). */
const dryRun = (token) => until(token, (d) => d.dryRun !== undefined);

test("a viewer sees Approve and Reject disabled with the role they need; y and n only explain", async () => {
  const { incident, decision: ready } = await readyIncident();
  // The dry run writes the next version; the view shows the one after it.
  const decision = await dryRun(ready.token);
  const page = await signIn("vera");
  await page.waitForSelector(".conn.live");
  assert.equal(await page.textContent("#principal"), "vera · viewer");
  await page.goto(`${baseUrl}/#/incident/${incident.id}`);
  await page.waitForSelector(`#proposal[data-version="${decision.version}"]`);
  const approve = page.locator("#approve");
  assert.ok(await approve.isDisabled(), "Approve is disabled for a viewer");
  assert.equal(await approve.getAttribute("title"), "needs approver");
  assert.match(await page.textContent(`#${await approve.getAttribute("aria-describedby")}`), /needs approver/);
  const reject = page.locator("#reject");
  assert.ok(await reject.isDisabled());
  assert.equal(await reject.getAttribute("title"), "needs approver");
  assert.match(await page.textContent(`#${await reject.getAttribute("aria-describedby")}`), /needs approver/);

  await page.keyboard.press("y");
  assert.match(await page.textContent("#notice.error"), /cannot approve .*it needs approver.*vera · viewer/);
  assert.equal(await page.isVisible("dialog[open]"), false, "no confirmation asked");
  await page.keyboard.press("n");
  await page.waitForSelector("#notice.error >> text=/cannot reject/");
  assert.equal(await page.isVisible("dialog[open]"), false, "no reason asked");
  const now = await api.vera.getDecision(decision.token);
  assert.equal(now.state, 3, "still READY");
  assert.equal(now.version, decision.version, "nothing was sent");

  // The board's y on a focused row explains the same way.
  await page.goto(`${baseUrl}/#/`);
  await page.waitForSelector(`tr[data-id="${incident.id}"]`);
  await page.focus(`tr[data-id="${incident.id}"]`);
  await page.keyboard.press("y");
  await page.waitForSelector("#notice.error >> text=/cannot approve/");
});

test("an approver sees them enabled; a refused token returns to the login", async () => {
  const { incident } = await readyIncident({ title: "Cart pods OOMKilled", service: "cart" });
  const page = await signIn("alice");
  await page.waitForSelector(".conn.live");
  assert.equal(await page.textContent("#principal"), "alice · approver");
  await page.goto(`${baseUrl}/#/incident/${incident.id}`);
  await page.waitForSelector("#approve:not([disabled])");
  assert.equal(await page.getAttribute("#approve", "title"), null);
  assert.ok(await page.isEnabled("#reject"));

  const stranger = await signIn("mallory", { token: token() });
  const problem = await stranger.waitForSelector("#login-problem");
  assert.match(await problem.textContent(), /refused the token/);
  assert.ok(await stranger.isVisible("#token"), "back at the login");
});

test("a failed dry run says why and Approve stays disabled", async () => {
  const { incident, decision } = await readyIncident({ namespace: "locked", title: "Ledger pods crash-looping", service: "ledger" });
  const checked = await dryRun(decision.token);
  assert.equal(checked.dryRun.wouldSucceed, false);
  const page = await signIn("alice");
  await page.waitForSelector(".conn.live");
  await page.goto(`${baseUrl}/#/incident/${incident.id}`);
  await page.waitForSelector("#dry-run.bad");
  assert.match(await page.textContent("#dry-run"), /Would fail/);
  assert.match(await page.textContent("#dry-run .summary"), /forbidden/);
  assert.ok(await page.isDisabled("#approve"), "not approvable");
  const why = await page.getAttribute("#approve", "aria-describedby");
  assert.match(await page.textContent(`#${why}`), /dry run says the cluster would refuse/);
  assert.ok(await page.isEnabled("#reject"), "rejecting it is still possible");
  await page.keyboard.press("y");
  await page.waitForSelector("#notice.error >> text=/dry run failed/");
  assert.equal((await api.vera.getDecision(decision.token)).state, 3, "still READY");
  assert.equal(kube.writes, 0, "nothing was written to the cluster");
});

test("verification: verified when the incident resolves in the window, failed when it does not", async () => {
  const fixed = await readyIncident({ title: "Search pods crash-looping", service: "search" });
  const unfixed = await readyIncident({ title: "Mailer pods crash-looping", service: "mailer" });
  for (const { decision } of [fixed, unfixed]) {
    const checked = await dryRun(decision.token);
    assert.equal(checked.dryRun.wouldSucceed, true, checked.dryRun.summary);
    await api.alice.approveDecision(decision.token, { actor: "alice", expectedVersion: checked.version });
  }
  await until(fixed.decision.token, (d) => d.verification?.state === VerificationState.PENDING);
  await api.otto.updateIncidentStatus(fixed.incident.id, { status: "RESOLVED", actor: "otto", note: "error rate back to normal" });
  const verified = await until(fixed.decision.token, (d) => d.verification?.state === VerificationState.VERIFIED);
  const failed = await until(unfixed.decision.token, (d) => d.verification?.state === VerificationState.FAILED);

  const page = await signIn("alice");
  await page.waitForSelector(".conn.live");
  await page.goto(`${baseUrl}/#/incident/${fixed.incident.id}`);
  await page.waitForSelector("#verification.v-verified");
  assert.match(await page.textContent("#verification"), /Verified/);
  if (verified.verification.summary) assert.match(await page.textContent("#verification .summary"), /resolved/i);
  await page.goto(`${baseUrl}/#/incident/${unfixed.incident.id}`);
  await page.waitForSelector("#verification.v-failed");
  assert.match(await page.textContent("#verification"), /Failed/);
  assert.equal(await page.textContent("#verification .summary"), failed.verification.summary);
  assert.equal(kube.writes, 2, "each approved restart written once");
});

test("screenshot: a P0 decision awaiting its second approval, with its dry run", async () => {
  // P0 needs two approvers (approval_four_eyes_severity's default).
  const { incident, decision } = await readyIncident({ severity: "P0", title: "Checkout pods crash-looping in eu-west", service: "checkout" });
  const checked = await dryRun(decision.token);
  const first = await api.alice.approveDecision(decision.token, { actor: "alice", expectedVersion: checked.version });
  assert.equal(first.state, 3, "READY after the first of two approvals");
  const page = await signIn("alice");
  await page.waitForSelector(".conn.live");
  await page.goto(`${baseUrl}/#/incident/${incident.id}`);
  await page.waitForSelector("#proposal .s-awaiting");
  await page.waitForSelector("#dry-run.ok");
  // Her own second approval would be refused: the button says so.
  assert.ok(await page.isDisabled("#approve"));
  assert.equal(await page.getAttribute("#approve", "title"), "needs a second, different approver");
  await shot(page, "dashboard-decision");
});

async function shot(page, name) {
  const file = join(RESULTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  if (process.env.VERDICT_UPDATE_SCREENSHOTS === "1") {
    mkdirSync(DOCS, { recursive: true });
    copyFileSync(file, join(DOCS, `${name}.png`));
  }
}

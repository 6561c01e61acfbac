/**
 * The dashboard's entry point: the login, the page router (`#/`,
 * `#/incident/<id>`, `#/stats/<range>`), the connection indicator and the
 * keyboard. One `Live` model (one `WatchDecisions` stream) serves every
 * page for as long as the tab is open.
 */
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Unauthenticated, VerdictClient, type WhoAmIResponse } from "@verdict/client";
import { Actions } from "./actions.js";
import { Board, boardOrder, probe } from "./board.js";
import { DecisionView } from "./decision.js";
import { h } from "./dom.js";
import { Identity } from "./identity.js";
import { Live, type Status } from "./live.js";
import { StatsView } from "./stats.js";
import * as session from "./session.js";

interface Page {
  el: HTMLElement;
  dispose(): void;
  key?(e: KeyboardEvent): boolean;
}

const main = document.getElementById("main")!;
const conn = document.getElementById("conn")!;
const who = document.getElementById("who")!;
const dialog = document.getElementById("dialog") as HTMLDialogElement;

function login(problem?: string): void {
  const actor = h("input", { id: "actor", name: "actor", required: true, autocomplete: "username", maxlength: 200 });
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off" });
  const form = h(
    "form",
    { class: "login card" },
    h("h1", {}, "Sign in"),
    problem ? h("p", { class: "error", role: "alert", id: "login-problem" }, problem) : null,
    h("label", { for: "actor" }, "Your name (recorded on approvals and rejections)"),
    actor,
    h("label", { for: "token" }, "Bearer token (when the server requires one)"),
    token,
    h("p", { class: "help" }, "Kept for this browser tab only."),
    h("button", { type: "submit", class: "primary" }, "Open the board"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!actor.value.trim()) return;
    session.save({ actor: actor.value.trim(), token: token.value.trim() });
    void start();
  });
  conn.textContent = "";
  main.replaceChildren(form);
  actor.focus();
}

/**
 * Who the server says this session is. A refused token sends the person
 * back to the login with the reason; any other failure (an older server
 * without `WhoAmI`, a passing outage) leaves the permissions unknown, so
 * nothing is disabled in advance and the server still decides each call.
 */
async function identify(client: VerdictClient): Promise<Identity | undefined> {
  let who: WhoAmIResponse | undefined;
  try {
    who = await client.whoAmI({ timeoutMs: 10_000 });
  } catch (e) {
    if (e instanceof Unauthenticated) {
      session.clear();
      login(`The server refused the token: ${e.message}`);
      return undefined;
    }
    console.warn("verdict: WhoAmI failed; buttons are not checked in advance", e);
  }
  return new Identity(who);
}

async function start(): Promise<void> {
  const s = session.load();
  if (!s) return login();
  const headers = session.headers(s);
  const transport = createGrpcWebTransport({ baseUrl: location.origin });
  const client = new VerdictClient(transport, { headers, timeoutMs: 30_000 });
  main.replaceChildren(h("p", {}, "Signing in…"));
  const identity = await identify(client);
  if (!identity) return;
  const live = new Live(client, transport, headers);
  const notice = h("div", { id: "notice", role: "alert", class: "notice", hidden: true });
  const notify = (message: string, kind: "ok" | "error") => {
    notice.textContent = message;
    notice.className = `notice ${kind}`;
    notice.hidden = false;
  };
  const actions = new Actions(client, live, s.actor, identity, dialog, notify);
  const signOut = h("button", { type: "button", class: "link" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.clear();
    location.hash = "#/";
    location.reload();
  });
  who.replaceChildren(h("span", { id: "principal", title: "Who the server says you are, and your roles" }, identity.label() ?? s.actor), " · ", signOut);

  const showStatus = (st: Status) => {
    conn.textContent = st === "live" ? "live" : st === "disconnected" ? "disconnected — reconnecting…" : "connecting…";
    conn.className = `conn ${st}`;
    document.body.dataset.conn = st;
  };
  live.listen({ reset() {}, changed() {}, status: showStatus });
  showStatus(live.status);

  let page: Page | undefined;
  const openIncident = (id: string) => {
    location.hash = `#/incident/${encodeURIComponent(id)}`;
  };
  const route = () => {
    page?.dispose();
    notice.hidden = true;
    const hash = location.hash.replace(/^#/, "") || "/";
    const [, kind, arg] = hash.split("/");
    if (kind === "incident" && arg) {
      const id = decodeURIComponent(arg);
      const move = (step: 1 | -1) => {
        const ids = boardOrder(live);
        const next = ids[ids.indexOf(id) + step];
        if (next) openIncident(next);
      };
      page = new DecisionView(live, actions, id, move);
    } else if (kind === "stats") {
      page = new StatsView(client, arg || "24h", (r) => (location.hash = `#/stats/${r}`));
    } else {
      page = new Board(live, actions, openIncident);
    }
    for (const [id, on] of [["nav-board", !kind], ["nav-stats", kind === "stats"]] as const) {
      const a = document.getElementById(id);
      if (on) a?.setAttribute("aria-current", "page");
      else a?.removeAttribute("aria-current");
    }
    main.replaceChildren(notice, page.el);
  };
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", (e) => {
    if (page?.key?.(e)) e.preventDefault();
  });
  route();
  void live.run(new AbortController().signal);
}

/** For the browser test: render timings and when each change reached the DOM. */
(window as unknown as { __verdict: typeof probe }).__verdict = probe;
void start();

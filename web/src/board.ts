/**
 * The board: every open incident with its current decision, most severe
 * and newest first, updated in place as changes arrive. Each incident owns
 * one table row that is patched (never the whole table re-rendered), so a
 * change reaches the DOM in one animation frame even with 1 000 rows.
 * Keyboard: `j`/`k` move the focus, Enter opens, `y` approves, `n` rejects
 * the focused decision.
 */
import { DecisionState, Severity, type Decision } from "@verdict/client";
import { h, typing } from "./dom.js";
import { awaitingSecond, firstApprover, ms, severityName, span, stateName } from "./format.js";
import type { Entry, Live, Listener, Status } from "./live.js";
import { before, boardOrder } from "./order.js";
export { boardOrder };
import type { Actions } from "./actions.js";

/**
 * The row's badge text (and its class). A READY decision that has its first
 * of two approvals says "awaiting second approval" and who gave it, so a
 * second approver knows it is theirs to take (and the first that it is not).
 */
export function badge(d: Decision | undefined): HTMLElement {
  if (awaitingSecond(d)) {
    return h(
      "span",
      { class: "badge-group" },
      h("span", { class: "badge s-awaiting" }, "awaiting second approval"),
      " ",
      h("small", { class: "first-approver" }, firstApprover(d!)),
    );
  }
  const name = stateName(d?.state);
  const el = h("span", { class: `badge s-${name.toLowerCase().replace(/ /g, "-")}` }, name);
  if (d && (d.state === DecisionState.ANALYZING || d.state === DecisionState.INIT)) {
    el.prepend(h("span", { class: "spinner", "aria-hidden": "true" }));
  }
  return el;
}

/** Measurements the browser test reads (`window.__verdict`). */
export interface Probe {
  /** Milliseconds to build and insert every row of the last full render. */
  renderMs: number;
  /** Rows in that render. */
  rendered: number;
  /** `Date.now()` when each token's version reached the DOM: `token@version`. */
  applied: Map<string, number>;
}

export const probe: Probe = { renderMs: 0, rendered: 0, applied: new Map() };

export class Board implements Listener {
  readonly el: HTMLElement;
  private readonly tbody = h("tbody");
  private readonly rows = new Map<string, HTMLTableRowElement>();
  /** Incident ids in display order. */
  private order: string[] = [];
  private pending = new Set<string>();
  private frame = 0;
  private readonly search = h("input", { type: "search", id: "f-search", placeholder: "title, id, service, command…" });
  private readonly severity = h("select", { id: "f-severity" });
  private readonly namespace = h("select", { id: "f-namespace" });
  private readonly state = h("select", { id: "f-state" });
  private readonly count = h("p", { class: "count", "aria-live": "polite" });
  private readonly unlisten: () => void;
  private readonly timer: number;
  private focused = "";

  constructor(
    private readonly live: Live,
    private readonly actions: Actions,
    private readonly open: (incidentId: string) => void,
  ) {
    this.severity.append(h("option", { value: "" }, "any"), ...[1, 2, 3, 4, 5].map((s) => h("option", { value: String(s) }, Severity[s])));
    this.state.append(
      h("option", { value: "" }, "any"),
      ...["ANALYZING", "READY", "AWAITING", "EXECUTING", "COMPLETED", "FAILED", "REJECTED", "EXPIRED", "NO DECISION"].map((s) => h("option", { value: s }, s === "AWAITING" ? "awaiting second approval" : s)),
    );
    this.namespace.append(h("option", { value: "" }, "any"));
    for (const input of [this.search, this.severity, this.namespace, this.state]) {
      input.addEventListener("input", () => this.filterAll());
    }
    const field = (label: string, input: HTMLElement) => h("label", { class: "field" }, h("span", {}, label), input);
    this.el = h(
      "section",
      { class: "board", "aria-labelledby": "board-title" },
      h("h1", { id: "board-title" }, "Open incidents"),
      h(
        "form",
        { class: "filters", role: "search", "aria-label": "Filter incidents" },
        field("Search", this.search),
        field("Severity", this.severity),
        field("Namespace", this.namespace),
        field("State", this.state),
      ),
      this.count,
      h(
        "table",
        { class: "incidents", "aria-describedby": "keys-help" },
        h(
          "thead",
          {},
          h("tr", {}, ...["Severity", "Incident", "State", "Services", "Namespace", "Open for", "Proposal"].map((c) => h("th", { scope: "col" }, c))),
        ),
        this.tbody,
      ),
      h("p", { id: "keys-help", class: "help" }, "Keys: j / k move, Enter opens, y approves, n rejects the focused decision."),
    );
    this.tbody.addEventListener("click", (e) => {
      const row = (e.target as HTMLElement).closest("tr");
      if (row?.dataset.id) this.open(row.dataset.id);
    });
    this.tbody.addEventListener("focusin", (e) => {
      const row = (e.target as HTMLElement).closest("tr");
      if (row?.dataset.id) this.focus(row.dataset.id, false);
    });
    this.unlisten = live.listen(this);
    this.timer = window.setInterval(() => this.tick(), 30_000);
    this.reset();
  }

  dispose(): void {
    this.unlisten();
    window.clearInterval(this.timer);
    cancelAnimationFrame(this.frame);
  }

  status(_: Status): void {}

  /** Rebuilds every row (after a (re)load). */
  reset(): void {
    const started = performance.now();
    const entries = [...this.live.entries.values()].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    this.rows.clear();
    const frag = document.createDocumentFragment();
    for (const e of entries) {
      const row = this.row(e);
      this.rows.set(e.incident.id, row);
      frag.append(row);
    }
    this.order = entries.map((e) => e.incident.id);
    this.tbody.replaceChildren(frag);
    this.namespaces();
    this.filterAll();
    if (!this.rows.has(this.focused)) this.focused = this.order[0] ?? "";
    this.roving();
    probe.renderMs = performance.now() - started;
    probe.rendered = entries.length;
    for (const e of entries) if (e.decision) probe.applied.set(`${e.decision.token}@${e.decision.version}`, Date.now());
  }

  /** Schedules one incident's row for the next frame (changes in one frame are batched). */
  changed(id: string): void {
    this.pending.add(id);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  private flush(): void {
    this.frame = 0;
    const now = Date.now();
    let namespaces = false;
    for (const id of this.pending) {
      const entry = this.live.entries.get(id);
      const old = this.rows.get(id);
      if (!entry) {
        old?.remove();
        this.rows.delete(id);
        this.order = this.order.filter((o) => o !== id);
        continue;
      }
      const row = this.row(entry);
      if (old) {
        old.replaceWith(row);
      } else {
        this.insert(entry, row);
        namespaces = true;
      }
      this.rows.set(id, row);
      this.filter(row, entry);
      if (entry.decision) probe.applied.set(`${entry.decision.token}@${entry.decision.version}`, now);
    }
    this.pending.clear();
    if (namespaces) this.namespaces();
    if (!this.focused) this.focused = this.order[0] ?? "";
    this.roving();
    this.counts();
  }

  /** Puts a new incident's row in order (binary search over the display order). */
  private insert(entry: Entry, row: HTMLTableRowElement): void {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const other = this.live.entries.get(this.order[mid]!);
      if (other && before(other, entry)) lo = mid + 1;
      else hi = mid;
    }
    const next = this.order[lo];
    this.tbody.insertBefore(row, next ? (this.rows.get(next) ?? null) : null);
    this.order.splice(lo, 0, entry.incident.id);
  }

  private row(e: Entry): HTMLTableRowElement {
    const i = e.incident;
    const d = e.decision;
    const sev = severityName(i.severity);
    const row = h(
      "tr",
      {
        "data-id": i.id,
        "data-token": d?.token,
        "data-state": stateName(d?.state),
        "data-version": d ? String(d.version) : undefined,
        "data-awaiting": awaitingSecond(d) ? "second-approval" : undefined,
        tabindex: "-1",
        "aria-label": `${sev} ${i.title}, ${awaitingSecond(d) ? "awaiting second approval" : stateName(d?.state)}`,
      },
      h("td", {}, h("span", { class: `sev sev-${sev.toLowerCase()}` }, sev)),
      h("td", { class: "title" }, h("a", { href: `#/incident/${encodeURIComponent(i.id)}`, tabindex: "-1" }, i.title || i.id), h("small", {}, i.id)),
      h("td", {}, badge(d)),
      h("td", {}, i.affectedServices.join(", ")),
      h("td", {}, i.namespace),
      h("td", { class: "age", "data-since": String(ms(i.createdAt)) }, span(Date.now() - ms(i.createdAt))),
      h("td", { class: "cmd" }, d?.proposal ? h("code", {}, d.proposal.kubectl) : ""),
    );
    return row;
  }

  private text(e: Entry): string {
    const d = e.decision;
    return [e.incident.id, e.incident.title, e.incident.namespace, ...e.incident.affectedServices, d?.token ?? "", d?.proposal?.kubectl ?? ""]
      .join(" ")
      .toLowerCase();
  }

  private filter(row: HTMLTableRowElement, e: Entry): void {
    const q = this.search.value.trim().toLowerCase();
    const hide =
      (this.severity.value !== "" && String(e.incident.severity) !== this.severity.value) ||
      (this.namespace.value !== "" && e.incident.namespace !== this.namespace.value) ||
      (this.state.value !== "" &&
        (this.state.value === "AWAITING" ? !awaitingSecond(e.decision) : stateName(e.decision?.state) !== this.state.value)) ||
      (q !== "" && !q.split(/\s+/).every((w) => this.text(e).includes(w)));
    row.hidden = hide;
  }

  private filterAll(): void {
    for (const [id, row] of this.rows) {
      const e = this.live.entries.get(id);
      if (e) this.filter(row, e);
    }
    this.counts();
  }

  private counts(): void {
    let shown = 0;
    for (const row of this.rows.values()) if (!row.hidden) shown++;
    this.count.textContent = shown === this.rows.size ? `${shown} open incidents` : `${shown} of ${this.rows.size} open incidents shown`;
  }

  private namespaces(): void {
    const have = new Set([...this.live.entries.values()].map((e) => e.incident.namespace).filter(Boolean));
    const current = this.namespace.value;
    this.namespace.replaceChildren(h("option", { value: "" }, "any"), ...[...have].sort().map((n) => h("option", { value: n }, n)));
    this.namespace.value = have.has(current) ? current : "";
  }

  /** Updates the "open for" column. */
  private tick(): void {
    const now = Date.now();
    for (const cell of this.tbody.querySelectorAll<HTMLElement>("td.age")) {
      cell.textContent = span(now - Number(cell.dataset.since));
    }
  }

  /** One row is in the tab order: the focused one (roving tabindex). */
  private roving(): void {
    for (const [id, row] of this.rows) row.tabIndex = id === this.focused ? 0 : -1;
  }

  private focus(id: string, move = true): void {
    this.focused = id;
    this.roving();
    if (move) this.rows.get(id)?.focus();
  }

  /** The visible incident ids in order. */
  visible(): string[] {
    return this.order.filter((id) => !this.rows.get(id)?.hidden);
  }

  /** Whether the keyboard focus is on the focused incident's row. */
  private onRow(): boolean {
    const row = this.rows.get(this.focused);
    return !!row && document.activeElement === row;
  }

  /** Handles the board's keys; true when the key was used. */
  key(e: KeyboardEvent): boolean {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return false;
    const ids = this.visible();
    const at = ids.indexOf(this.focused);
    switch (e.key) {
      case "j":
      case "k": {
        if (ids.length === 0) return true;
        const next = e.key === "j" ? (at < 0 ? 0 : Math.min(ids.length - 1, at + 1)) : Math.max(0, at - 1);
        this.focus(ids[next]!);
        return true;
      }
      case "Enter":
        // Only on a row: Enter elsewhere (a link, a button) keeps its meaning.
        if (!this.onRow()) return false;
        this.open(this.focused);
        return true;
      case "y":
      case "n": {
        // Only the decision a person has visibly focused, never a default.
        if (!this.onRow()) return false;
        const d = this.live.entries.get(this.focused)?.decision;
        if (!d) return true;
        void (e.key === "y" ? this.actions.approve(d) : this.actions.reject(d));
        return true;
      }
      default:
        return false;
    }
  }
}

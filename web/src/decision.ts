/**
 * One incident and its decision: the incident (signals with labels and
 * annotations, timeline), the proposal (the exact command, risk, source,
 * model, reasoning, consensus score and dissent, text warnings), the
 * token's history (`ListDecisions`), and Approve / Reject bound to the
 * version shown. A newer version arriving while the view is open is
 * announced, not swapped in under the reader: they choose to show it.
 */
import { DecisionState, VerificationState, type Decision, type Incident } from "@verdict/client";
import { h, typing } from "./dom.js";
import { awaitingSecond, ms, riskName, severityName, sourceName, span, stateName, statusName, verificationName, warningText, when } from "./format.js";
import { badge } from "./board.js";
import type { Actions } from "./actions.js";
import type { Listener, Live, Status } from "./live.js";

export class DecisionView implements Listener {
  readonly el = h("section", { class: "decision", "aria-live": "off" });
  private incident?: Incident;
  private history: Decision[] = [];
  /** The decision shown (its version is what Approve / Reject send). */
  private shown?: Decision;
  private readonly banner = h("div", { class: "banner", role: "status", hidden: true });
  private readonly unlisten: () => void;

  constructor(
    private readonly live: Live,
    private readonly actions: Actions,
    private readonly incidentId: string,
    private readonly move: (step: 1 | -1) => void,
  ) {
    this.unlisten = live.listen(this);
    this.el.append(h("p", {}, "Loading…"));
    void this.load();
  }

  dispose(): void {
    this.unlisten();
  }

  reset(): void {
    this.changed(this.incidentId);
  }

  status(_: Status): void {}

  /** A newer version of the shown token (or a newer token) arrived. */
  changed(id: string): void {
    if (id !== this.incidentId || !this.shown) return;
    const d = this.live.entries.get(id)?.decision;
    if (!d || (d.token === this.shown.token && d.version <= this.shown.version)) return;
    this.banner.replaceChildren(
      `This decision changed since it was shown: ${d.token} is now version ${d.version}, ${stateName(d.state)}. `,
      h("button", { type: "button", class: "secondary", id: "show-current" }, "Show the current version"),
    );
    this.banner.querySelector("button")?.addEventListener("click", () => void this.load());
    this.banner.hidden = false;
  }

  private async load(): Promise<void> {
    try {
      const [incident, history] = await Promise.all([
        this.live.client.getIncident(this.incidentId),
        this.live.client.listDecisions(this.incidentId),
      ]);
      this.incident = incident;
      this.history = history;
      this.shown = history[0];
      if (this.shown) this.live.apply(this.shown);
      this.render();
    } catch (e) {
      this.el.replaceChildren(h("h1", {}, this.incidentId), h("p", { class: "error", role: "alert" }, `Cannot load: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  private render(): void {
    const i = this.incident!;
    const d = this.shown;
    this.banner.hidden = true;
    this.el.replaceChildren(
      h("p", {}, h("a", { href: "#/" }, "← Board")),
      h("h1", {}, h("span", { class: `sev sev-${severityName(i.severity).toLowerCase()}` }, severityName(i.severity)), " ", i.title || i.id),
      this.banner,
      h("div", { class: "columns" }, h("div", {}, this.proposal(d), this.historyTable()), h("div", {}, this.incidentPart(i))),
    );
    this.el.querySelector<HTMLButtonElement>("#approve")?.focus();
  }

  private proposal(d: Decision | undefined): HTMLElement {
    if (!d) return h("section", { "aria-labelledby": "p-title" }, h("h2", { id: "p-title" }, "Proposal"), h("p", {}, "No decision was asked for this incident yet."));
    const p = d.proposal;
    const ready = d.state === DecisionState.READY;
    // The server refuses to approve a decision whose dry run failed; the
    // button says so up front instead of letting the click fail.
    const dryRunFailed = !!d.dryRun && !d.dryRun.wouldSucceed;
    // A principal without the role sees the buttons disabled with the role
    // they need (title for the pointer, aria-describedby for the reader).
    const approveLacks = this.actions.identity.cannotApprove(d);
    const rejectLacks = this.actions.identity.cannotReject();
    const approveWhy = [approveLacks ? "approve-role" : "", dryRunFailed ? "approve-why" : ""].filter(Boolean).join(" ");
    const approve = h(
      "button",
      {
        type: "button",
        id: "approve",
        class: "primary",
        disabled: !ready || dryRunFailed || !!approveLacks,
        title: approveLacks,
        "aria-describedby": approveWhy || undefined,
      },
      "Approve (y)",
    );
    const reject = h(
      "button",
      { type: "button", id: "reject", class: "danger", disabled: !ready || !!rejectLacks, title: rejectLacks, "aria-describedby": rejectLacks ? "reject-role" : undefined },
      "Reject (n)",
    );
    approve.addEventListener("click", () => void this.act("approve"));
    reject.addEventListener("click", () => void this.act("reject"));
    const row = (k: string, v: Node | string) => [h("dt", {}, k), h("dd", {}, v)];
    const consensus = p && p.agentCount > 0;
    return h(
      "section",
      { "aria-labelledby": "p-title", "data-token": d.token, "data-version": String(d.version), id: "proposal" },
      h("h2", { id: "p-title" }, "Proposal ", badge(d)),
      p ? h("pre", { class: "command" }, h("code", { id: "command" }, p.kubectl)) : h("p", {}, d.state === DecisionState.ANALYZING ? "Analyzing…" : "No proposal."),
      h(
        "dl",
        { class: "facts" },
        ...row("Token", `${d.token} · version ${d.version}`),
        ...(p
          ? [
              ...row("Risk", h("span", { class: `risk risk-${riskName(p.risk).toLowerCase()}` }, riskName(p.risk))),
              ...row("Source", sourceName(p.source) + (p.matchedRule ? ` (rule ${p.matchedRule})` : "") + (p.fromCache ? ", from cache" : "")),
              ...row("Model", p.model ? `${p.provider ? p.provider + " / " : ""}${p.model}` : "—"),
              ...row("Confidence", p.confidence.toFixed(2) + (p.modelConfidence !== undefined ? ` (model claims ${p.modelConfidence.toFixed(2)})` : "")),
            ]
          : []),
        ...(d.decidedBy ? row(d.state === DecisionState.REJECTED ? "Rejected by" : "Approved by", `${d.decidedBy}, ${when(d.decidedAt)}`) : []),
        ...(d.reason ? row("Reason", d.reason) : []),
        ...(d.output ? row("Output", d.output) : []),
        ...(d.error ? row("Note", d.error) : []),
        ...row("Expires", when(d.expiresAt)),
      ),
      p?.description ? h("p", { class: "description" }, p.description) : null,
      p?.reasoning ? h("div", {}, h("h3", {}, "Reasoning"), h("p", { class: "reasoning" }, p.reasoning)) : null,
      p && p.textWarnings.length
        ? h("ul", { class: "warnings", "aria-label": "Text warnings" }, ...p.textWarnings.map((w) => h("li", {}, "⚠ " + warningText(w))))
        : null,
      consensus
        ? h(
            "div",
            { class: "consensus" },
            h("h3", {}, "Consensus"),
            h("p", {}, `${p!.agentCount} agents voted; agreement ${(p!.consensusScore * 100).toFixed(0)} %.`),
            p!.dissentingOpinions.length
              ? h(
                  "ul",
                  { "aria-label": "Dissenting opinions" },
                  ...p!.dissentingOpinions.map((o) =>
                    h(
                      "li",
                      {},
                      h("strong", {}, o.agent),
                      " would run ",
                      h("code", {}, o.kubectl || "nothing"),
                      h("p", {}, o.reasoning),
                      ...o.textWarnings.map((w) => h("p", { class: "warn" }, "⚠ " + warningText(w))),
                    ),
                  ),
                )
              : h("p", {}, "No dissent."),
            p!.refusedAgents.length ? h("p", {}, `Refused: ${p!.refusedAgents.map((r) => `${r.agent} (${r.detail})`).join("; ")}`) : null,
          )
        : null,
      this.approvals(d),
      this.dryRun(d),
      this.verification(d),
      h(
        "div",
        { class: "buttons", role: "group", "aria-label": `Decide version ${d.version}` },
        approve,
        reject,
        h("span", { class: "help" }, `Bound to version ${d.version}.`),
        approveLacks ? h("span", { id: "approve-role", class: "needs" }, `Approve: ${approveLacks}.`) : null,
        rejectLacks ? h("span", { id: "reject-role", class: "needs" }, `Reject: ${rejectLacks}.`) : null,
        dryRunFailed && ready ? h("p", { id: "approve-why", class: "error" }, "Cannot be approved: the dry run says the cluster would refuse this command.") : null,
      ),
    );
  }

  /** The approvals recorded so far (four-eyes: the first of two leaves it READY). */
  private approvals(d: Decision): HTMLElement | null {
    if (d.approvals.length === 0 && d.approvalsRequired < 2) return null;
    const needed = d.approvalsRequired
      ? `${d.approvals.length} of ${d.approvalsRequired} approvals${awaitingSecond(d) ? ": awaiting second approval by a different approver" : ""}.`
      : `${d.approvals.length} approval${d.approvals.length === 1 ? "" : "s"}.`;
    return h(
      "section",
      { class: "approvals", "aria-labelledby": "a-title" },
      h("h3", { id: "a-title" }, "Approvals"),
      h("p", { id: "approvals-needed" }, needed),
      d.approvals.length
        ? h(
            "table",
            { class: "history", id: "approvals" },
            h("thead", {}, h("tr", {}, ...["Approver", "Method", "Approved at"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, ...d.approvals.map((a) => h("tr", {}, h("td", {}, a.subject), h("td", {}, a.method || "—"), h("td", {}, when(a.approvedAt))))),
          )
        : null,
    );
  }

  /** The server-side dry run of the command (executors that run commands only). */
  private dryRun(d: Decision): HTMLElement | null {
    const r = d.dryRun;
    if (!r) return null;
    return h(
      "section",
      { class: `dry-run ${r.wouldSucceed ? "ok" : "bad"}`, id: "dry-run", "aria-labelledby": "dr-title" },
      h("h3", { id: "dr-title" }, "Dry run"),
      h("p", {}, h("strong", {}, r.wouldSucceed ? "Would succeed" : "Would fail"), ` (checked ${when(r.checkedAt)})`),
      r.summary ? h("pre", { class: "summary" }, r.summary) : null,
    );
  }

  /** Whether the executed command fixed the incident. */
  private verification(d: Decision): HTMLElement | null {
    const v = d.verification;
    if (!v) return null;
    const state = verificationName(v.state);
    const head =
      v.state === VerificationState.PENDING
        ? `Pending: watching the incident until ${when(v.until)}`
        : v.state === VerificationState.VERIFIED
          ? `Verified ${when(v.decidedAt)}`
          : v.state === VerificationState.FAILED
            ? `Failed ${when(v.decidedAt)}`
            : "Unknown";
    return h(
      "section",
      { class: `verification v-${state}`, id: "verification", "aria-labelledby": "v-title" },
      h("h3", { id: "v-title" }, "Verification"),
      h("p", {}, h("strong", {}, head)),
      v.summary ? h("p", { class: "summary" }, v.summary) : null,
    );
  }

  private historyTable(): HTMLElement {
    return h(
      "section",
      { "aria-labelledby": "h-title" },
      h("h2", { id: "h-title" }, "History"),
      h(
        "table",
        { class: "history" },
        h("thead", {}, h("tr", {}, ...["Token", "State", "Version", "Issued", "Decided"].map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          ...this.history.map((d) =>
            h("tr", {}, h("td", {}, h("code", {}, d.token)), h("td", {}, stateName(d.state)), h("td", {}, String(d.version)), h("td", {}, when(d.createdAt)), h("td", {}, d.decidedBy ? `${d.decidedBy}${d.reason ? `: ${d.reason}` : ""}` : "—")),
          ),
        ),
      ),
    );
  }

  private incidentPart(i: Incident): HTMLElement {
    const events: [number, string][] = [[ms(i.createdAt), "opened"]];
    if (i.statusActor || i.statusNote) events.push([ms(i.updatedAt), `${statusName(i.status)} by ${i.statusActor || "?"}${i.statusNote ? `: ${i.statusNote}` : ""}`]);
    if (i.resolvedAt) events.push([ms(i.resolvedAt), "resolved"]);
    for (const d of this.history) {
      events.push([ms(d.createdAt), `decision ${d.token} issued`]);
      if (d.decidedAt) events.push([ms(d.decidedAt), `${d.token} ${d.state === DecisionState.REJECTED ? "rejected" : "approved"} by ${d.decidedBy}`]);
      if (d.completedAt) events.push([ms(d.completedAt), `${d.token} ${stateName(d.state).toLowerCase()}`]);
    }
    events.sort((a, b) => a[0] - b[0]);
    const pairs = (m: Record<string, string>) => {
      const keys = Object.keys(m).sort();
      return keys.length ? h("dl", { class: "labels" }, ...keys.flatMap((k) => [h("dt", {}, k), h("dd", {}, m[k]!)])) : null;
    };
    return h(
      "section",
      { "aria-labelledby": "i-title" },
      h("h2", { id: "i-title" }, "Incident"),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Id"),
        h("dd", {}, i.id),
        h("dt", {}, "Status"),
        h("dd", {}, statusName(i.status)),
        h("dt", {}, "Services"),
        h("dd", {}, i.affectedServices.join(", ") || "—"),
        h("dt", {}, "Namespace"),
        h("dd", {}, i.namespace || "—"),
        h("dt", {}, "Open for"),
        h("dd", {}, span(Date.now() - ms(i.createdAt))),
      ),
      h("h3", {}, `Signals (${i.signals.length})`),
      h(
        "ul",
        { class: "signals" },
        ...i.signals.map((s) => h("li", {}, h("strong", {}, s.alertName), ` (${s.status === 2 ? "resolved" : "firing"}, since ${when(s.startsAt)})`, pairs(s.labels), pairs(s.annotations))),
      ),
      h("h3", {}, "Timeline"),
      h("ol", { class: "timeline" }, ...events.map(([t, what]) => h("li", {}, h("time", {}, new Date(t).toLocaleString()), " ", what))),
    );
  }

  private async act(which: "approve" | "reject"): Promise<void> {
    const d = this.shown;
    if (!d) return;
    const after = which === "approve" ? await this.actions.approve(d) : await this.actions.reject(d);
    if (after) {
      this.shown = after;
      this.history = [after, ...this.history.filter((x) => x.token !== after.token)];
      this.render();
    }
  }

  key(e: KeyboardEvent): boolean {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return false;
    switch (e.key) {
      case "y":
        void this.act("approve");
        return true;
      case "n":
        void this.act("reject");
        return true;
      case "j":
        this.move(1);
        return true;
      case "k":
        this.move(-1);
        return true;
      default:
        return false;
    }
  }
}

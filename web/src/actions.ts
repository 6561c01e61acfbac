/**
 * Approve and reject, shared by the board and the decision view. Both are
 * bound to the version the person saw (`expected_version`): if the
 * decision changed in between, the server refuses and this explains what
 * changed; nothing is retried behind the person's back. Rejecting asks for
 * a reason; approving a HIGH or CRITICAL risk command asks to confirm it.
 */
import { DecisionState, FailedPrecondition, RiskLevel, type Decision, type VerdictClient } from "@verdict/client";
import { h } from "./dom.js";
import { riskName, stateName } from "./format.js";
import type { Identity } from "./identity.js";
import type { Live } from "./live.js";

export type Notify = (message: string, kind: "ok" | "error") => void;

export class Actions {
  constructor(
    private readonly client: VerdictClient,
    private readonly live: Live,
    private readonly actor: string,
    readonly identity: Identity,
    private readonly dialog: HTMLDialogElement,
    private readonly notify: Notify,
  ) {}

  /** Approves `d` at its version; resolves with the new decision, or undefined. */
  async approve(d: Decision): Promise<Decision | undefined> {
    const lacks = this.identity.cannotApprove(d);
    if (lacks) {
      // `y` where the button is disabled: say why instead of a refused call.
      this.notify(`You cannot approve ${d.token}: it ${lacks} (you are ${this.identity.label()}).`, "error");
      return undefined;
    }
    if (d.state !== DecisionState.READY) {
      this.notify(`Only a READY decision can be approved; ${d.token} is ${stateName(d.state)}.`, "error");
      return undefined;
    }
    if (d.dryRun && !d.dryRun.wouldSucceed) {
      // The server would refuse it; say why without a round trip (`y` on the
      // board or in the decision view, where the button is already disabled).
      this.notify(`${d.token} cannot be approved: its dry run failed (${d.dryRun.summary || "the cluster would refuse it"}).`, "error");
      return undefined;
    }
    const risk = d.proposal?.risk ?? RiskLevel.UNSPECIFIED;
    if (risk === RiskLevel.HIGH || risk === RiskLevel.CRITICAL) {
      const ok = await this.ask({
        title: `Approve a ${riskName(risk)} risk command?`,
        body: [h("p", {}, "This will run:"), h("pre", {}, h("code", {}, d.proposal?.kubectl ?? "")), h("p", {}, d.proposal?.description ?? "")],
        confirm: "Approve and run",
      });
      if (ok === null) return undefined;
    }
    try {
      const after = await this.client.approveDecision(d.token, { actor: this.actor, expectedVersion: d.version });
      this.live.apply(after);
      this.notify(`Approved ${d.token}: ${stateName(after.state)}.`, "ok");
      return after;
    } catch (e) {
      await this.explain(e, d, "approved");
      return undefined;
    }
  }

  /** Rejects `d` at its version, after asking for a reason. */
  async reject(d: Decision): Promise<Decision | undefined> {
    const lacks = this.identity.cannotReject();
    if (lacks) {
      this.notify(`You cannot reject ${d.token}: rejecting ${lacks} (you are ${this.identity.label()}).`, "error");
      return undefined;
    }
    if (d.state !== DecisionState.READY) {
      this.notify(`Only a READY decision can be rejected; ${d.token} is ${stateName(d.state)}.`, "error");
      return undefined;
    }
    const reason = await this.ask({
      title: `Reject ${d.token}?`,
      body: [h("pre", {}, h("code", {}, d.proposal?.kubectl ?? ""))],
      confirm: "Reject",
      reason: true,
    });
    if (reason === null) return undefined;
    try {
      const after = await this.client.rejectDecision(d.token, { actor: this.actor, reason, expectedVersion: d.version });
      this.live.apply(after);
      this.notify(`Rejected ${d.token}.`, "ok");
      return after;
    } catch (e) {
      await this.explain(e, d, "rejected");
      return undefined;
    }
  }

  /** Says why an approval or rejection was refused, in terms of what changed. */
  private async explain(e: unknown, seen: Decision, verb: string): Promise<void> {
    if (e instanceof FailedPrecondition) {
      const kind = e.violations[0]?.type ?? "";
      if (kind === "EXPIRED") {
        this.notify(`Not ${verb}: ${seen.token} expired before anyone decided. Ask for a new decision.`, "error");
        return;
      }
      let now: Decision | undefined;
      try {
        now = await this.client.getDecision(seen.token);
        this.live.apply(now);
      } catch {
        now = undefined;
      }
      const what = now
        ? `it is now version ${now.version}, ${stateName(now.state)}${now.decidedBy ? ` (decided by ${now.decidedBy})` : ""}`
        : "it has changed";
      this.notify(
        `Not ${verb}: this decision changed since it was shown to you (you saw version ${seen.version}, ${stateName(seen.state)}; ${what}). Nothing was done; review the current decision and decide again.`,
        "error",
      );
      return;
    }
    this.notify(`Not ${verb}: ${e instanceof Error ? e.message : String(e)}`, "error");
  }

  /**
   * A modal question in the page's one `<dialog>`: resolves with the typed
   * reason (or "" without one) on confirm, null on cancel or Escape.
   */
  ask(q: { title: string; body: Node[]; confirm: string; reason?: boolean }): Promise<string | null> {
    const dialog = this.dialog;
    const reason = q.reason ? h("textarea", { id: "reason", required: true, rows: 3, maxlength: 1000 }) : undefined;
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", { id: "dialog-title" }, q.title),
      ...q.body,
      reason ? h("label", { for: "reason" }, "Reason (required)") : null,
      reason ?? null,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { type: "submit", value: "ok", class: "primary" }, q.confirm),
      ),
    );
    dialog.replaceChildren(form);
    return new Promise((resolve) => {
      let answer: string | null = null;
      form.querySelector("button[value=cancel]")?.addEventListener("click", () => dialog.close());
      form.addEventListener("submit", (e) => {
        if (reason && !reason.value.trim()) {
          e.preventDefault();
          reason.focus();
          return;
        }
        answer = reason ? reason.value.trim() : "";
      });
      dialog.addEventListener("close", () => resolve(answer), { once: true });
      dialog.showModal();
      (reason ?? form.querySelector<HTMLButtonElement>("button[type=submit]"))?.focus();
    });
  }
}

/**
 * What the signed-in principal may do, from `IdentityService.WhoAmI`
 * (asked once after login). The server's answer is read from the same
 * role table that admits or refuses each call, so a control disabled here
 * is exactly one the server would refuse; the server still decides.
 * Without an answer (an older server) nothing is disabled in advance.
 */
import { awaitingSecond } from "./format.js";
import { DecisionService, Role, permission, roleName, type Decision, type RpcMethod, type WhoAmIResponse } from "@verdict/client";

export class Identity {
  constructor(readonly who: WhoAmIResponse | undefined) {}

  /** The principal's name and roles, for the header ("vera · viewer"). */
  label(): string | undefined {
    const w = this.who;
    if (!w) return undefined;
    const roles = w.roles.filter((r) => r !== Role.UNSPECIFIED).map(roleName);
    return roles.length ? `${w.subject} · ${roles.join(", ")}` : w.subject;
  }

  /** Why `method` is not for this principal ("needs approver"), or undefined when it is (or nobody knows). */
  lacks(method: RpcMethod): string | undefined {
    if (!this.who) return undefined;
    const p = permission(this.who, method);
    return p.allowed ? undefined : `needs ${roleName(p.neededRole)}`;
  }

  /**
   * Why approving `d` is not for this principal, or undefined: the role,
   * or (four-eyes) having approved it already, which the server refuses.
   */
  cannotApprove(d?: Decision): string | undefined {
    const lacks = this.lacks(DecisionService.method.approveDecision);
    if (lacks || !d || !this.who || !awaitingSecond(d)) return lacks;
    const mine = d.approvals.some((a) => a.subject === this.who!.subject);
    return mine ? "needs a second, different approver" : undefined;
  }

  /** Why rejecting is not for this principal, or undefined. */
  cannotReject(): string | undefined {
    return this.lacks(DecisionService.method.rejectDecision);
  }
}

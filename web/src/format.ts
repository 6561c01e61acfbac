/** How values are shown: names of enums, times, durations. */
/** A protobuf Timestamp or Duration, structurally. */
type Timestamp = { seconds: bigint; nanos: number };
type Duration = Timestamp;

import { DecisionState, IncidentStatus, ProposalSource, RiskLevel, Severity, TextWarning, VerificationState, type Decision } from "@verdict/client";

/** The board's badge for a state (`null` when there is no decision yet). */
export function stateName(state: DecisionState | undefined): string {
  switch (state) {
    case DecisionState.INIT:
    case DecisionState.ANALYZING:
      return "ANALYZING";
    case DecisionState.READY:
      return "READY";
    case DecisionState.EXECUTING:
      return "EXECUTING";
    case DecisionState.COMPLETED:
      return "COMPLETED";
    case DecisionState.ERROR:
      return "FAILED";
    case DecisionState.REJECTED:
      return "REJECTED";
    case DecisionState.EXPIRED:
      return "EXPIRED";
    default:
      return "NO DECISION";
  }
}

/**
 * Four-eyes: a decision that needs two approvers stays READY after the first
 * approval (no state of its own), so "awaiting second approval" is READY with
 * 0 < approvals < approvals_required.
 */
export function awaitingSecond(d: Decision | undefined): boolean {
  return !!d && d.state === DecisionState.READY && d.approvals.length > 0 && d.approvals.length < d.approvalsRequired;
}

/** Who approved first, as shown next to "awaiting second approval". */
export function firstApprover(d: Decision): string {
  const a = d.approvals[0];
  return a ? `approved first by ${a.subject}` : "";
}

/** A verification's state as words. */
export function verificationName(s: VerificationState): string {
  switch (s) {
    case VerificationState.PENDING:
      return "pending";
    case VerificationState.VERIFIED:
      return "verified";
    case VerificationState.FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

export const severityName = (s: Severity): string => (s === Severity.UNSPECIFIED ? "—" : Severity[s]);
export const statusName = (s: IncidentStatus): string => (s === IncidentStatus.UNSPECIFIED ? "—" : IncidentStatus[s]);
export const riskName = (r: RiskLevel): string => (r === RiskLevel.UNSPECIFIED ? "UNKNOWN" : RiskLevel[r]);
export const sourceName = (s: ProposalSource): string => (s === ProposalSource.UNSPECIFIED ? "unknown" : ProposalSource[s].toLowerCase());

/** What a text warning means for the person reading model-written text. */
export function warningText(w: TextWarning): string {
  switch (w) {
    case TextWarning.MENTIONS_COMMAND:
      return "The text mentions a command: only the command shown above will run.";
    case TextWarning.MENTIONS_URL:
      return "The text mentions a URL: do not follow links from model-written text.";
    case TextWarning.HIDDEN_CHARACTERS:
      return "Hidden or control characters were removed from the text.";
    case TextWarning.TRUNCATED:
      return "The text was too long and was cut.";
    default:
      return "The text was flagged.";
  }
}

/** Milliseconds since the epoch of a timestamp (0 when unset). */
export const ms = (t: Timestamp | undefined): number => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0);

/** A timestamp as local date and time. */
export function when(t: Timestamp | undefined): string {
  return t ? new Date(ms(t)).toLocaleString() : "—";
}

/** A span of milliseconds in the largest two units (`3h 12m`). */
export function span(millis: number): string {
  if (!Number.isFinite(millis) || millis < 0) return "—";
  const s = Math.floor(millis / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${m % 60}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

/** A protobuf duration in milliseconds. */
export const durationMs = (d: Duration | undefined): number => (d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0);

/** A ratio from 0 to 1 as a percentage. */
export const percent = (r: number): string => `${(r * 100).toFixed(1)} %`;

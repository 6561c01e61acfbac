/** The board's order: most severe first, then newest (then by id, so it is total). */
import { Severity } from "@verdict/client";
import { ms } from "./format.js";
import type { Entry } from "./live.js";

/** Severity rank: P0 first, unknown last. */
const rank = (s: Severity) => (s === Severity.UNSPECIFIED ? 99 : s);

/** Sort key: most severe, then newest. */
export function before(a: Entry, b: Entry): boolean {
  const ra = rank(a.incident.severity);
  const rb = rank(b.incident.severity);
  if (ra !== rb) return ra < rb;
  const ta = ms(a.incident.createdAt);
  const tb = ms(b.incident.createdAt);
  if (ta !== tb) return ta > tb;
  return a.incident.id < b.incident.id;
}

/** Every held incident id in board order (for `j`/`k` in the decision view). */
export function boardOrder(live: { entries: Map<string, Entry> }): string[] {
  return [...live.entries.values()].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0)).map((e) => e.incident.id);
}


/**
 * The login: who acts (the `actor` recorded on approvals and rejections)
 * and an optional bearer token, kept in `sessionStorage` only, so they
 * last as long as the tab and never reach disk the way cookies or
 * `localStorage` would. The token travels as the `authorization` metadata
 * of every call (issue 13's authentication reads it; an unauthenticated
 * server ignores it).
 */
const ACTOR = "verdict.actor";
const TOKEN = "verdict.token";

export interface Session {
  actor: string;
  token: string;
}

export function load(): Session | undefined {
  const actor = sessionStorage.getItem(ACTOR);
  return actor ? { actor, token: sessionStorage.getItem(TOKEN) ?? "" } : undefined;
}

export function save(s: Session): void {
  sessionStorage.setItem(ACTOR, s.actor);
  if (s.token) sessionStorage.setItem(TOKEN, s.token);
  else sessionStorage.removeItem(TOKEN);
}

export function clear(): void {
  sessionStorage.removeItem(ACTOR);
  sessionStorage.removeItem(TOKEN);
}

/** The metadata every call carries. */
export function headers(s: Session): Record<string, string> {
  return s.token ? { authorization: `Bearer ${s.token}` } : {};
}

//! The audit trail: what an audit event is, how it is sealed into a
//! hash chain, and how a chain is verified. Pure: no I/O. The stores append
//! events in the same atomic step as the change they record
//! (`store/redis/lua/audit.lua`, `store/memory.rs`); `manager/audit.rs`
//! reads them and records refusals.
//!
//! **Chains.** Every incident has its own chain (its head lives under the
//! incident's hash tag, so appending stays inside the incident's atomic
//! step and needs no global lock); events with no incident (refusals before
//! an incident is known, configuration reloads) form one more chain,
//! [`GLOBAL_CHAIN`]. Within a chain events are numbered 1, 2, 3… with no
//! gaps.
//!
//! **Seal.** An event's `hash` is HMAC-SHA256, keyed by a secret held
//! outside Redis, over the event's canonical encoding ([`canonical`]: its
//! JSON without the `hash` field, fields in declaration order), which
//! includes `prev`, the previous event's hash. Editing an event breaks its
//! own hash; deleting one leaves a gap in `seq`; forging one needs the key.
//! The algorithm is recorded on each event (`alg`) and the key's id
//! (`key_id`, the first 8 bytes of the key's SHA-256 in hex) too, so a
//! verifier holding the wrong key says so instead of calling every event
//! forged.

mod context;
pub mod refusals;
mod verify;

pub use self::context::{Context, scope};
pub use self::verify::{Break, Verifier, VerifyReport};

use crate::domain::{Decision, DecisionState, Incident};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The only algorithm events are sealed with (recorded on each event).
pub const ALGORITHM: &str = "HMAC-SHA256";

/// The chain of events that belong to no incident.
pub const GLOBAL_CHAIN: &str = "-";

/// Longest `detail` kept, in bytes; a longer one is cut on a character
/// boundary and marked with `detail_cut`. Keeps every event small, so a
/// write script's arguments and a page of events stay bounded.
pub const MAX_DETAIL: usize = 1024;

/// Longest value kept in the other free-text fields (subject, actor, peer,
/// request id, reason), in bytes.
pub const MAX_FIELD: usize = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    IncidentCreated,
    SignalsIngested,
    StatusChanged,
    DecisionIssued,
    ProposalReady,
    /// The first approval of a decision that needs two.
    FirstApproval,
    Rejected,
    /// Approved: READY → EXECUTING, the execution starts with it.
    Approved,
    /// The executor reported: EXECUTING → COMPLETED or ERROR.
    ExecutionCompleted,
    /// An external runner claimed (or renewed) the execution's lease.
    ExecutionClaimed,
    /// A mutating call refused (the outcome says with which code).
    Refused,
    /// The configuration (credentials, approval and safety policy) was
    /// reloaded — or, with an outcome other than `OK`, a reload was
    /// refused and the previous configuration stays in force.
    ConfigReloaded,
    /// Refusals counted rather than recorded one by one (a flood from one
    /// peer, see [`refusals`]): the detail says how many, from where.
    RefusalsSummarized,
}

impl Action {
    /// Every action, in order.
    pub const ALL: [Action; 13] = [
        Action::IncidentCreated,
        Action::SignalsIngested,
        Action::StatusChanged,
        Action::DecisionIssued,
        Action::ProposalReady,
        Action::FirstApproval,
        Action::Rejected,
        Action::Approved,
        Action::ExecutionCompleted,
        Action::ExecutionClaimed,
        Action::Refused,
        Action::ConfigReloaded,
        Action::RefusalsSummarized,
    ];

    /// The action's recorded name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::IncidentCreated => "incident_created",
            Action::SignalsIngested => "signals_ingested",
            Action::StatusChanged => "status_changed",
            Action::DecisionIssued => "decision_issued",
            Action::ProposalReady => "proposal_ready",
            Action::Approved => "approved",
            Action::FirstApproval => "first_approval",
            Action::Rejected => "rejected",
            Action::ExecutionCompleted => "execution_completed",
            Action::ExecutionClaimed => "execution_claimed",
            Action::Refused => "refused",
            Action::ConfigReloaded => "config_reloaded",
            Action::RefusalsSummarized => "refusals_summarized",
        }
    }

    /// The action named `s`, if any.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as the code that makes a change describes it, before the store
/// gives it its place in a chain ([`Signer::seal`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// When, in ms since the epoch.
    pub time_ms: i64,
    pub action: Action,
    /// Who asked, where from, through which call.
    pub context: Context,
    pub incident: Option<String>,
    pub token: Option<String>,
    pub version_before: Option<u64>,
    pub version_after: Option<u64>,
    /// `OK`, or the gRPC code's canonical name of a refusal.
    pub outcome: String,
    /// A short description; for an approval, the command exactly as shown.
    pub detail: String,
}

impl Draft {
    /// A successful change's event, with the calling context of the task.
    pub fn ok(time_ms: i64, action: Action) -> Draft {
        Draft {
            time_ms,
            action,
            context: Context::current(),
            incident: None,
            token: None,
            version_before: None,
            version_after: None,
            outcome: "OK".into(),
            detail: String::new(),
        }
    }

    pub fn incident(mut self, id: impl ToString) -> Draft {
        self.incident = Some(id.to_string());
        self
    }

    pub fn token(mut self, token: impl ToString) -> Draft {
        self.token = Some(token.to_string());
        self
    }

    /// The record's version before and after the change (0 = none before).
    pub fn versions(mut self, before: u64, after: u64) -> Draft {
        self.version_before = (before > 0).then_some(before);
        self.version_after = Some(after);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Draft {
        self.detail = detail.into();
        self
    }

    /// The event of an incident written at `after.version` over
    /// `before_version` (0: created).
    pub fn incident_change(action: Action, before_version: u64, after: &Incident) -> Draft {
        Draft::ok(after.updated_at.timestamp_millis(), action)
            .incident(&after.id)
            .versions(before_version, after.version)
            .detail(format!("status {}", after.status.as_str()))
    }

    /// The event of a decision moving from `before` (None: issued) to
    /// `after`; the action follows from the transition. An approval's
    /// detail is the command approved, exactly as it was shown.
    pub fn decision_change(before: Option<&Decision>, after: &Decision) -> Draft {
        use DecisionState as S;
        let action = match (before.map(|b| b.state), after.state) {
            (None, _) => Action::DecisionIssued,
            (Some(S::Ready), S::Ready) => Action::FirstApproval,
            (_, S::Ready) => Action::ProposalReady,
            (_, S::Executing) => Action::Approved,
            (_, S::Rejected) => Action::Rejected,
            (_, S::Completed | S::Error) => Action::ExecutionCompleted,
            (_, S::Init | S::Analyzing) => Action::DecisionIssued,
        };
        let shown = || {
            after
                .proposal
                .as_ref()
                .map(|p| p.command.render())
                .unwrap_or_default()
        };
        let detail = match action {
            Action::Approved | Action::FirstApproval => shown(),
            Action::Rejected => format!("reason: {}", after.reason),
            Action::ProposalReady => match after.proposal.as_ref() {
                Some(p) => match p.fallback_reason {
                    Some(r) => format!("source {:?} (fallback: {r:?}): {}", p.source, shown()),
                    None => format!("source {:?}: {}", p.source, shown()),
                },
                None => String::new(),
            },
            Action::ExecutionCompleted => {
                format!("{}: {}", after.state.as_str(), after.output)
            }
            _ => format!("state {}", after.state.as_str()),
        };
        let draft = Draft::ok(after.updated_at.timestamp_millis(), action)
            .incident(&after.incident_id)
            .token(&after.token)
            .versions(before.map_or(0, |b| b.version), after.version)
            .detail(detail);
        match action {
            Action::Approved | Action::FirstApproval | Action::Rejected => {
                draft.actor(&after.decided_by)
            }
            _ => draft,
        }
    }

    /// The `actor` the request named (kept beside the principal).
    pub fn actor(mut self, actor: &str) -> Draft {
        if !actor.is_empty() {
            self.context.actor = actor.to_owned();
        }
        self
    }

    /// The chain this event belongs to: its incident's, or the global one.
    pub fn chain(&self) -> &str {
        self.incident.as_deref().unwrap_or(GLOBAL_CHAIN)
    }
}

/// A chain's last event: where the next one attaches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    /// The last event's sequence number (0: the chain is empty).
    pub seq: u64,
    /// The last event's hash ('' for an empty chain).
    pub hash: String,
}

/// Where an event sits in the store's one time-ordered log of all chains:
/// the Redis stream id (`<ms>-<n>`), which the memory store imitates.
/// Listing pages and watches resume after a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub ms: u64,
    pub n: u64,
}

impl Position {
    /// The first position at or after `ms`.
    pub fn at_ms(ms: u64) -> Position {
        Position { ms, n: 0 }
    }

    /// `<ms>-<n>`, or `<ms>` (= `<ms>-0`).
    pub fn parse(s: &str) -> Option<Position> {
        let (ms, n) = s.split_once('-').unwrap_or((s, "0"));
        Some(Position {
            ms: ms.parse().ok()?,
            n: n.parse().ok()?,
        })
    }

    /// The position after this one as it is appended now, at `now_ms`
    /// (never going back, as Redis stream ids never do).
    pub fn next(self, now_ms: u64) -> Position {
        if now_ms > self.ms {
            Position { ms: now_ms, n: 0 }
        } else {
            Position {
                ms: self.ms,
                n: self.n + 1,
            }
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.n)
    }
}

/// A sealed audit event, as stored and as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The chain: an incident id, or [`GLOBAL_CHAIN`].
    pub chain: String,
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    pub time_ms: i64,
    pub action: Action,
    pub subject: String,
    pub auth_method: String,
    pub roles: Vec<String>,
    /// The `actor` the request named (not authenticated; kept for context).
    pub actor: String,
    pub peer: String,
    pub rpc: String,
    pub request_id: String,
    pub incident: Option<String>,
    pub token: Option<String>,
    pub version_before: Option<u64>,
    pub version_after: Option<u64>,
    pub outcome: String,
    pub detail: String,
    /// Whether `detail` was cut to [`MAX_DETAIL`].
    pub detail_cut: bool,
    pub alg: String,
    pub key_id: String,
    /// The previous event's hash in the chain ('' for the first).
    pub prev: String,
    /// HMAC over [`canonical`] of this event; empty while sealing.
    pub hash: String,
}

/// The bytes an event's hash covers: its JSON with `hash` emptied. Serde
/// writes struct fields in declaration order, so the encoding is stable.
pub fn canonical(event: &Event) -> Vec<u8> {
    let mut e = event.clone();
    e.hash.clear();
    serde_json::to_vec(&e).unwrap_or_default()
}

/// `s` cut to at most `max` bytes on a character boundary, and whether it
/// was cut.
pub fn cut(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_owned(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_owned(), true)
}

/// Seals drafts into chained events with the secret key. Holds the key
/// only in memory; `Debug` never prints it.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
    key_id: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer {{ key_id: {} }}", self.key_id)
    }
}

/// The key used when none is configured: public, so events sealed with it
/// prove nothing. A server using it says so at start-up.
pub const DEVELOPMENT_KEY: &[u8] = b"verdict-development-audit-key-not-secret";

impl Signer {
    pub fn new(key: &[u8]) -> Signer {
        let digest = Sha256::digest(key);
        Signer {
            key: key.to_vec(),
            key_id: hex::encode(&digest[..8]),
        }
    }

    /// The id recorded on every event this signer seals.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether this is the public development key.
    pub fn is_development(&self) -> bool {
        self.key == DEVELOPMENT_KEY
    }

    /// The event `draft` becomes as the next one after `head`.
    pub fn seal(&self, draft: &Draft, head: &Head) -> Event {
        let p = &draft.context.principal;
        let (detail, detail_cut) = cut(&draft.detail, MAX_DETAIL);
        let short = |s: &str| cut(s, MAX_FIELD).0;
        let mut event = Event {
            chain: draft.chain().to_owned(),
            seq: head.seq + 1,
            time_ms: draft.time_ms,
            action: draft.action,
            subject: short(&p.subject),
            auth_method: p.method.as_str().to_owned(),
            roles: p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            actor: short(&draft.context.actor),
            peer: short(&draft.context.peer),
            rpc: short(&draft.context.rpc),
            request_id: short(&draft.context.request_id),
            incident: draft.incident.as_deref().map(short),
            token: draft.token.as_deref().map(short),
            version_before: draft.version_before,
            version_after: draft.version_after,
            outcome: short(&draft.outcome),
            detail,
            detail_cut,
            alg: ALGORITHM.to_owned(),
            key_id: self.key_id.clone(),
            prev: head.hash.clone(),
            hash: String::new(),
        };
        event.hash = self.mac(&event);
        event
    }

    /// The hash `event` should carry.
    pub fn mac(&self, event: &Event) -> String {
        // HMAC accepts keys of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(&canonical(event));
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft::ok(1_700_000_000_000, Action::Approved)
            .incident("INC-1")
            .token("DEC-1")
            .versions(2, 3)
            .detail("kubectl rollout restart deployment/api -n prod")
    }

    #[test]
    fn a_sealed_chain_verifies_and_an_edit_is_found_at_its_event() {
        let s = Signer::new(b"k");
        let a = s.seal(&draft(), &Head::default());
        let b = s.seal(
            &draft(),
            &Head {
                seq: a.seq,
                hash: a.hash.clone(),
            },
        );
        let mut v = Verifier::new(s.clone());
        v.push(&a);
        v.push(&b);
        assert!(v.finish().is_whole());

        let mut edited = a.clone();
        edited.detail = "kubectl delete namespace prod".into();
        let mut v = Verifier::new(s);
        v.push(&edited);
        v.push(&b);
        let r = v.finish();
        assert_eq!(r.breaks.len(), 1);
        assert_eq!(r.breaks[0].seq, 1);
    }

    #[test]
    fn long_details_are_cut_and_marked() {
        let s = Signer::new(b"k");
        let e = s.seal(&draft().detail("é".repeat(MAX_DETAIL)), &Head::default());
        assert!(e.detail_cut);
        assert!(e.detail.len() <= MAX_DETAIL);
    }

    #[test]
    fn actions_parse_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }
}

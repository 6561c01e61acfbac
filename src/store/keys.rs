//! The Redis key layout, in one place.
//!
//! Every key of one incident carries the incident id as a hash tag
//! (`{INC-…}`), so they share a cluster slot and one Lua script can touch
//! them atomically. The few global keys are indexes written beside those
//! scripts; none of them is ever scanned.
//!
//! | key                              | type   | holds                                  |
//! |----------------------------------|--------|----------------------------------------|
//! | `verdict:{INC}:incident`         | hash   | `v` version, `d` incident record (`redis/record.rs`) |
//! | `verdict:{INC}:current`          | string | the incident's current token            |
//! | `verdict:{INC}:dec:DEC-…`        | hash   | `v` version, `d` decision record, `h<N>` record of version N (retention TTL) |
//! | `verdict:{INC}:history`          | list   | tokens, newest first (capped)           |
//! | `verdict:token:DEC-…`            | string | the token's incident id (retention TTL) |
//! | `verdict:incidents`              | zset   | incident ids scored by creation ms      |
//! | `verdict:req:REQUEST-ID`         | string | incident id created by that request (24 h) |
//! | `verdict:changes`                | stream | every decision change (`d` = decision record) and incident update (`i` = incident record), capped |
//! | `verdict:analyzing`              | zset   | tokens of ANALYZING decisions scored by analysis deadline (ms) |
//! | `verdict:cache:SHA1`             | string | cached proposal JSON with its full signature (cache TTL) |
//! | `verdict:group:{GROUP}`          | string | the incident an alert group last opened (no TTL) |
//! | `verdict:stats:{B}:inc`          | hash   | incident counters of bucket B (see below) |
//! | `verdict:stats:{B}:dec`          | hash   | decision counters of bucket B           |
//! | `verdict:stats:{B}:svc`          | zset   | services by incidents created in B      |
//! | `verdict:stats:{B}:res:P2`       | string | resolution-time sketch of P2 incidents resolved in B (u32 bins) |
//! | `verdict:stats:{B}:lat:SOURCE`   | string | analysis-latency sketch of SOURCE's proposals (u32 bins) |
//! | `verdict:stats:status`           | hash   | incidents in each status now (gauge)    |
//! | `verdict:stats:tmp:svc`          | zset   | scratch of the ranking script, deleted before it returns |
//! | `verdict:executing`              | zset   | tokens of EXECUTING decisions scored by when (ms) another replica may take them over |
//! | `verdict:lease:{DEC-…}`          | string | the replica holding the decision's execution lease (`PX` = lease) |
//! | `verdict:{INC}:audit`            | hash   | the incident's audit chain head: `seq`, `hash` (no TTL) |
//! | `verdict:{-}:audit`              | hash   | the head of the chain of events with no incident |
//! | `verdict:{INC}:audit:ids`        | stream | the chain's index: its events' ids in `verdict:audit` (`s` = seq), trimmed alike |
//! | `verdict:audit`                  | stream | every audit event (`e` = JSON), trimmed by time (`MINID ~`) to the audit retention |
//!
//! Statistics buckets: `B` is a UTC hour (`2025-11-25T18`) or a UTC day
//! (`2025-11-25`); every event is counted in both, and a range query reads
//! day buckets for its whole days and hour buckets for the edges. Bucket
//! keys expire at the bucket's end plus the statistics retention (EXPIREAT,
//! set by the same write that increments them). The bucket label is the
//! hash tag, so one bucket's keys share a slot. Field names of the counter
//! hashes are in `stats::series::field`: `new:P2`, `to:RESOLVED`,
//! `res:n:P2`, `res:ms:P2` (incidents); `issued`, `prop:SOURCE`,
//! `appr:SOURCE`, `rej:SOURCE`, `ok:SOURCE`, `fail:SOURCE`, `fb:REASON`,
//! `cache:hit`, `llm:won`, `llm:lost`, `cons:n`, `cons:score` (decisions).
//! Sketch strings are arrays of big-endian u32 counters, one per bin of
//! `stats::sketch::Mapping` (Redis `BITFIELD … INCRBY u32 #i`).

use crate::domain::{GroupKey, IncidentId, RequestId, Signature, Token};
use crate::stats::{Bucket, Series};

pub fn incident(id: &IncidentId) -> String {
    format!("verdict:{{{id}}}:incident")
}

pub fn current(id: &IncidentId) -> String {
    format!("verdict:{{{id}}}:current")
}

/// Prefix of an incident's decision keys; the token follows.
pub fn decision_prefix(id: &IncidentId) -> String {
    format!("verdict:{{{id}}}:dec:")
}

pub fn decision(id: &IncidentId, token: &Token) -> String {
    format!("verdict:{{{id}}}:dec:{token}")
}

/// What [`decision`] starts with before the incident id: the one script
/// that builds a decision key itself (`decision_by_token.lua`) is given it,
/// and a unit test holds the two to the same layout.
pub const DECISION_KEY_START: &str = "verdict:{";

pub fn history(id: &IncidentId) -> String {
    format!("verdict:{{{id}}}:history")
}

pub fn token_index(token: &Token) -> String {
    format!("verdict:token:{token}")
}

pub const INCIDENT_INDEX: &str = "verdict:incidents";

pub fn request(id: &RequestId) -> String {
    format!("verdict:req:{}", id.as_str())
}

/// Every decision change, appended by the same script that makes it.
pub const CHANGES: &str = "verdict:changes";
/// Tokens of decisions in ANALYZING, scored by analysis deadline (ms):
/// added by `create_decision.lua`, removed by `update_decision.lua` when a decision
/// leaves ANALYZING, read by the recovery sweep with `ZRANGEBYSCORE`.
pub const ANALYZING_INDEX: &str = "verdict:analyzing";

/// A cached proposal, by the SHA-1 of its incident signature.
pub fn proposal_cache(signature: &Signature) -> String {
    format!("verdict:cache:{}", signature.digest())
}

/// An alert group's pointer to the incident it last opened. `GROUP` is the
/// SHA-1 of the grouping labels, as a hash tag of its own: the pointer is
/// only ever read or compare-and-set alone, never in a script with the
/// incident's keys (which live in the incident's slot).
pub fn group(g: &GroupKey) -> String {
    format!("verdict:group:{{{g}}}")
}

/// The head of an audit chain (an incident id, or `audit::GLOBAL_CHAIN`),
/// under the chain's own hash tag: an incident's head shares the slot of
/// the incident's records, so the write scripts touch it atomically.
pub fn audit_head(chain: &str) -> String {
    format!("verdict:{{{chain}}}:audit")
}

/// The index of an audit chain: a stream of the chain's event ids (the
/// same ids as in [`AUDIT_STREAM`], field `s` = the event's seq), written
/// with each event, so reading one incident's events reads only those.
pub fn audit_index(chain: &str) -> String {
    format!("{}:ids", audit_head(chain))
}

/// Every audit event, of every chain, in the order appended; the stream id
/// is the event's position (`audit::Position`).
pub const AUDIT_STREAM: &str = "verdict:audit";

/// A statistics series of one bucket.
pub fn stats(bucket: Bucket, series: &Series) -> String {
    let b = bucket.label();
    match series {
        Series::Incidents => format!("verdict:stats:{{{b}}}:inc"),
        Series::Decisions => format!("verdict:stats:{{{b}}}:dec"),
        Series::Services => format!("verdict:stats:{{{b}}}:svc"),
        Series::Resolution(s) => format!("verdict:stats:{{{b}}}:res:{}", s.as_str()),
        Series::Latency(source) => format!("verdict:stats:{{{b}}}:lat:{source}"),
    }
}

/// Incidents in each status now.
pub const STATS_STATUS: &str = "verdict:stats:status";

/// Scratch key of `lua/top_services.lua` (created and deleted inside one
/// script, so never seen by anyone else).
pub const STATS_SCRATCH: &str = "verdict:stats:tmp:svc";

// ---- the chat notifier (`store/notify.rs`) ----------------------------
//
// | key                                  | type   | holds                                  |
// |--------------------------------------|--------|----------------------------------------|
// | `verdict:notify:{outbox}:due`        | zset   | tokens whose card is due for sending or editing, scored by due ms (a claimed job: its lease end); pushed by `update_decision.lua` with the change |
// | `verdict:notify:{outbox}:claims`     | hash   | token → claim score of jobs being worked |
// | `verdict:notify:{outbox}:pending`    | hash   | token → due ms of a push made while its job was claimed |
// | `verdict:notify:{outbox}:attempts`   | hash   | failed attempts per token               |
// | `verdict:notify:{outbox}:counts`     | hash   | notifier counters (sent, edited, failed, dead, self_resolved, …) |
// | `verdict:notify:card:DEC-…`          | string | the card record (chats, message ids, version shown) JSON (token TTL + a day) |
// | `verdict:notify:btn:ID`              | string | what an opaque button id means (token, version, answer, chat, message), until the token expires; GETDEL on use |
// | `verdict:notify:{NAME}:lease`        | string | the owner of poller NAME's lease (PX)   |
// | `verdict:notify:{NAME}:offset`       | string | poller NAME's next update id            |

/// The notifier's outbox (see `store/notify.rs`).
pub const NOTIFY_OUTBOX: &str = "verdict:notify:{outbox}:due";
/// Claims of outbox jobs being worked: token → claim score.
pub const NOTIFY_CLAIMS: &str = "verdict:notify:{outbox}:claims";
/// Pushes made while a job was claimed: token → due ms.
pub const NOTIFY_PENDING: &str = "verdict:notify:{outbox}:pending";
/// Failed attempts per outbox job.
pub const NOTIFY_ATTEMPTS: &str = "verdict:notify:{outbox}:attempts";
/// The notifier's counters.
pub const NOTIFY_COUNTS: &str = "verdict:notify:{outbox}:counts";

/// A decision's chat card record.
pub fn notify_card(token: &Token) -> String {
    format!("verdict:notify:card:{token}")
}

/// What an opaque chat button id means.
pub fn notify_button(id: &str) -> String {
    format!("verdict:notify:btn:{id}")
}

/// The lease of poller `name` (one poller across replicas).
pub fn notify_lease(name: &str) -> String {
    format!("verdict:notify:{{{name}}}:lease")
}

/// The next update id of poller `name` (same slot as its lease).
pub fn notify_offset(name: &str) -> String {
    format!("verdict:notify:{{{name}}}:offset")
}

/// Tokens of EXECUTING decisions, scored by the time (ms) after which any
/// replica may take their execution over: the moment they entered
/// EXECUTING, then each lease's expiry. Added and removed by
/// `update_decision.lua` as a decision enters and leaves EXECUTING; the
/// score is moved forward by `take_lease.lua`.
pub const EXECUTING_INDEX: &str = "verdict:executing";

/// The execution lease of one decision: the owning replica's id, expiring
/// with the lease (`PX`). Its own hash tag: only ever written by the lease
/// scripts with the (global) executing index.
pub fn lease(token: &Token) -> String {
    format!("verdict:lease:{{{token}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_built_decision_key_is_the_same_key() {
        let id = IncidentId::parse("INC-42").unwrap();
        let token = Token::parse("DEC-00000000000B").unwrap();
        // decision_by_token.lua: ARGV[2] .. id .. '}:dec:' .. token
        assert_eq!(
            format!("{DECISION_KEY_START}{id}}}:dec:{token}"),
            decision(&id, &token)
        );
    }
}

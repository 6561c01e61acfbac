//! Persistence behind one trait, [`Store`], with a Redis implementation for
//! production and an in-memory one for `--dev` and fast tests. Both pass the
//! same conformance suite (`tests/it/store_conformance.rs`).
//!
//! Stores know nothing about which transitions are legal: the decision
//! manager computes the next version of a record and the store writes it
//! only if the stored version is still the one the manager read
//! (compare-and-set). Every lookup is by key: nothing scans.
//!
//! Every write takes the statistics it adds (a [`StatDelta`], computed by
//! `stats::record`) and applies them in the same atomic step, only when the
//! write happens: statistics are counted exactly once per change.
//!
//! Every write also takes its audit event (an [`audit::Draft`], or `None`
//! for writes nobody asked for, such as test seeding) and appends it to the
//! incident's audit chain in the same atomic step: no change without its
//! event, no event for a change that lost its race, and when the event
//! cannot be written the change is not made either (fail closed). A store
//! without a signer ([`MemoryStore::with_audit`], [`RedisStore::with_audit`])
//! records nothing: auditing off.

mod error;
pub mod keys;
pub mod memory;
mod memory_notify;
pub mod notify;
pub mod redis;
mod sink;

use crate::audit::{self, Position};
use crate::domain::{
    Decision, GroupKey, Incident, IncidentId, Proposal, RequestId, Signature, Token,
};
use crate::stats::{Bucket, StatDelta, StatsQuery, StatsRead};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// One entry of the change feed.
#[derive(Debug, Clone)]
pub enum Change {
    /// A decision after a change (both boxed: the variants differ in size).
    Decision(Box<Decision>),
    /// An existing incident after a change (its status, merged signals);
    /// written by [`Store::update_incident`] in the same step as the
    /// change. Creations are not in the feed.
    Incident(Box<Incident>),
}

/// Receives every change, each exactly once per replica, in the order the
/// changes were made. Must not block: it runs inside the feed.
pub type ChangeSink = Arc<dyn Fn(Change) + Send + Sync>;

pub use self::error::{BoxError, Outage, StoreError};
pub use self::memory::MemoryStore;
pub use self::notify::{Claim, NotifyStore};
pub use self::redis::RedisStore;
pub use self::sink::{AuditSink, SINK_QUEUE};

/// One audit watcher's means of waiting for new events, opened by
/// [`AuditTail::new`] and handed back on each
/// [`Store::wait_audit_events`]. Dropping it closes whatever it holds.
#[derive(Default)]
pub struct AuditTail {
    /// Redis: the watcher's dedicated connection, opened on first use and
    /// dropped after an error (the next wait reconnects).
    pub(crate) redis: Option<::redis::aio::MultiplexedConnection>,
    /// Memory: the append counter's receiver, subscribed on first use.
    pub(crate) memory: Option<tokio::sync::watch::Receiver<u64>>,
}

impl AuditTail {
    pub fn new() -> Self {
        AuditTail::default()
    }
}

/// The outcome of a compare-and-set.
#[derive(Debug, PartialEq)]
pub enum Cas<T> {
    /// The new version was written.
    Written,
    /// Someone else wrote first; here is what is stored now (if anything).
    Conflict(Option<T>),
}

/// The outcome of creating an incident.
#[derive(Debug, PartialEq)]
pub enum Created {
    /// Stored now.
    New(Incident),
    /// The request id was seen before: this is the incident it created.
    Replayed(Incident),
    /// Another incident already has this id.
    IdTaken,
}

/// A position in the newest-first incident listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    /// Creation time (ms) of the last incident returned.
    pub created_ms: i64,
    /// How many incidents with exactly that creation time were returned.
    pub skip_same: u32,
}

/// Storage for incidents and decisions.
#[async_trait]
pub trait Store: notify::NotifyStore + Send + Sync + 'static {
    /// Checks that the backend answers (for health).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new incident and applies `stats` with it. With a request
    /// id, a retry returns the incident the first call created (and counts
    /// nothing).
    async fn create_incident(
        &self,
        incident: &Incident,
        request_id: Option<&RequestId>,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Created, StoreError>;

    async fn get_incident(&self, id: &IncidentId) -> Result<Option<Incident>, StoreError>;

    /// Up to `limit` incidents, newest first, starting after `cursor`;
    /// returns the cursor after the last one (None at the end).
    async fn list_incidents(
        &self,
        cursor: Option<ListCursor>,
        limit: usize,
    ) -> Result<(Vec<Incident>, Option<ListCursor>), StoreError>;

    /// Writes `incident` if the stored version is still `expected_version`,
    /// applying `stats` and appending it to the change feed in the same
    /// step (and only then).
    async fn update_incident(
        &self,
        expected_version: u64,
        incident: &Incident,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Cas<Incident>, StoreError>;

    /// A decision by token (one key lookup).
    async fn get_decision(&self, token: &Token) -> Result<Option<Decision>, StoreError>;

    /// A decision by token for a reader (`GetDecision`): the replica may
    /// answer from its own copy, which follows every change with the change
    /// feed's delay (see the Redis store's `decision_cache.rs`). Never for
    /// a read a write depends on.
    async fn get_decision_cached(&self, token: &Token) -> Result<Option<Decision>, StoreError> {
        self.get_decision(token).await
    }

    /// [`Store::incident_and_current`] for `GetOrCreateDecision`, which
    /// may be answered from the replica's copy (as
    /// [`Store::get_decision_cached`]); the flag says it was. An answer from
    /// the copy is only good for returning the decision as it is: anything
    /// that writes reads again.
    async fn incident_and_current_cached(
        &self,
        id: &IncidentId,
    ) -> Result<(Option<Incident>, Option<Decision>, bool), StoreError> {
        let (incident, decision) = self.incident_and_current(id).await?;
        Ok((incident, decision, false))
    }

    /// An incident and its current decision, in one round trip.
    async fn incident_and_current(
        &self,
        id: &IncidentId,
    ) -> Result<(Option<Incident>, Option<Decision>), StoreError>;

    /// Makes `decision` its incident's current decision if the current one
    /// is still `expected_current` (applying `stats` in the same step);
    /// otherwise returns the current one.
    async fn create_decision(
        &self,
        expected_current: Option<&Token>,
        decision: &Decision,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Cas<Decision>, StoreError>;

    /// Writes `decision` if the stored version is still `expected_version`,
    /// applying `stats` in the same step (and only then).
    async fn update_decision(
        &self,
        expected_version: u64,
        decision: &Decision,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Cas<Decision>, StoreError>;

    /// An incident's decisions, newest first.
    async fn list_decisions(
        &self,
        id: &IncidentId,
        limit: usize,
    ) -> Result<Vec<Decision>, StoreError>;

    /// Every stored version of a decision newer than `after`, oldest first
    /// (a decision has at most a handful: the state machine is short). Lets
    /// a watcher that missed changes catch up exactly.
    async fn decision_versions(
        &self,
        token: &Token,
        after: u64,
    ) -> Result<Vec<Decision>, StoreError>;

    /// Starts following the change feed: every decision change (and
    /// incident update) made from now on, by any replica, reaches `sink`. Returns once following has
    /// begun (so no later change is missed) with the future that does the
    /// following; it ends when `shutdown` is cancelled.
    async fn follow_changes(
        &self,
        sink: ChangeSink,
        shutdown: CancellationToken,
    ) -> Result<BoxFuture<'static, ()>, StoreError>;
    // ---- audit -----------------------------------------------------------

    /// Appends an event on its own (a refused call, which changes nothing).
    /// A no-op when auditing is off.
    async fn append_audit(&self, draft: &audit::Draft) -> Result<(), StoreError>;

    /// Up to `limit` audit events after `after` (from the oldest kept when
    /// None), oldest first, with their positions.
    async fn audit_events(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError>;

    /// The head of one chain (0 when empty), to check that no event was
    /// deleted from its end.
    async fn audit_head(&self, chain: &str) -> Result<audit::Head, StoreError>;

    /// Up to `limit` events of one chain (an incident id, or
    /// `audit::GLOBAL_CHAIN`) after `after`, oldest first, read through
    /// the chain's index: the cost follows that chain's events, not the
    /// whole trail. Positions are the same as [`Self::audit_events`]'.
    async fn audit_chain_events(
        &self,
        chain: &str,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError>;

    /// The position of the newest kept audit event (`0-0` when there is
    /// none): a watch that starts "now" starts after it.
    async fn newest_audit_position(&self) -> Result<Position, StoreError>;

    /// Up to `limit` audit events after `after`, oldest first; when there
    /// are none yet, waits up to `wait` for one to be appended (then returns
    /// what arrived, or nothing). `tail` is the waiting watcher's own: in
    /// Redis a dedicated connection for the blocking read (never a pooled
    /// one), in memory a wake-up on each append.
    async fn wait_audit_events(
        &self,
        tail: &mut AuditTail,
        after: Position,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError>;

    // ---- analysis recovery ------------------------------------------------
    //
    // Every decision created ANALYZING is entered in an index scored by its
    // analysis deadline, in the same atomic write that creates it, and
    // leaves the index in the same write that moves it out of ANALYZING. A
    // replica that died mid-analysis thus leaves an index entry behind that
    // any other replica finds without scanning.

    /// Tokens of decisions still ANALYZING whose analysis deadline is at or
    /// before `before`, earliest deadline first, at most `limit`.
    async fn overdue_analyses(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError>;

    /// Removes a token from the ANALYZING index (for an entry whose
    /// decision record no longer exists).
    async fn forget_analysis(&self, token: &Token) -> Result<(), StoreError>;

    // ---- execution leases -------------------------------------------------
    //
    // Every decision written EXECUTING is entered in an index in the same
    // atomic write, scored by when it entered; the replica that runs it
    // takes a lease (which moves the score to the lease's expiry) and
    // renews it while it runs. Writing COMPLETED or ERROR removes the entry.
    // A replica that died mid-execution thus leaves an entry whose score is
    // in the past and no live lease: another replica finds it without
    // scanning and takes the lease over.

    /// Tokens of EXECUTING decisions whose score (entry time, or lease
    /// expiry once leased) is at or before `before`, earliest first, at
    /// most `limit`.
    async fn overdue_executions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError>;

    /// Removes a token from the EXECUTING index (for an entry whose
    /// decision is gone or no longer EXECUTING).
    async fn forget_execution(&self, token: &Token) -> Result<(), StoreError>;

    /// Takes the execution lease of `token` for `owner` for `ttl`, or
    /// renews it when `owner` holds it; false when another owner holds an
    /// unexpired lease. Moves the index score to the lease's expiry.
    async fn take_lease(
        &self,
        token: &Token,
        owner: &str,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up if `owner` holds it (else does nothing).
    async fn release_lease(&self, token: &Token, owner: &str) -> Result<(), StoreError>;

    // ---- proposal cache ---------------------------------------------------

    /// The proposal cached for `signature`, if one is stored and fresh.
    async fn cached_proposal(&self, signature: &Signature) -> Result<Option<Proposal>, StoreError>;

    /// Caches `proposal` for `signature` for `ttl`, replacing any other.
    async fn cache_proposal(
        &self,
        signature: &Signature,
        proposal: &Proposal,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError>;

    // ---- statistics ------------------------------------------------------

    /// The counter and sketch series of `query`, added up over its buckets
    /// (one round trip; cost proportional to the buckets, not to the
    /// incidents counted in them).
    async fn read_stats(&self, query: &StatsQuery) -> Result<StatsRead, StoreError>;

    /// The services with the most incidents created in `buckets`, at most
    /// `limit`, ordered by [`crate::stats::report::rank`] (most first, ties
    /// by name).
    async fn top_services(
        &self,
        buckets: &[Bucket],
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError>;

    /// The incident a group of alerts last opened (one key lookup), if any.
    /// The pointer only moves forward along the group's chain of incidents
    /// (see [`GroupKey::incident_id_after`]); it is kept as long as the
    /// incidents are.
    async fn group_incident(&self, group: &GroupKey) -> Result<Option<IncidentId>, StoreError>;

    /// Points `group` at `incident` if it still points at `expected` (none:
    /// at nothing), or already points at `incident` (so two replicas that
    /// opened the same incident both succeed). Otherwise returns where it
    /// points now.
    async fn set_group_incident(
        &self,
        group: &GroupKey,
        expected: Option<&IncidentId>,
        incident: &IncidentId,
    ) -> Result<Cas<IncidentId>, StoreError>;
}

/// A proposal as cached: with the full signature it was stored under, so a
/// digest collision reads as a miss.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CachedProposal {
    pub signature: String,
    pub proposal: Proposal,
}

/// How long records are kept, shared by both stores.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Decision records (and the token index) live this long after their
    /// last change: far longer than the token TTL, so history outlives it.
    pub decisions: std::time::Duration,
    /// Decisions kept in an incident's history list.
    pub history_len: usize,
    /// How long a `CreateIncident` request id is remembered.
    pub request_ids: std::time::Duration,
    /// Entries kept in the change stream (approximate, `MAXLEN ~`): enough
    /// for a replica that reconnects after a blip to catch up.
    pub change_stream_len: usize,
    /// How long statistics buckets are kept after they end.
    pub stats: std::time::Duration,
    /// How long audit events are kept (trimmed by time from the oldest, so
    /// every chain stays verifiable from its oldest kept event).
    pub audit: std::time::Duration,
}

/// Audit events are kept a year unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(365 * 24 * 3600);

impl Default for Retention {
    fn default() -> Self {
        Retention {
            decisions: std::time::Duration::from_secs(30 * 24 * 3600),
            history_len: 100,
            request_ids: std::time::Duration::from_secs(24 * 3600),
            change_stream_len: 100_000,
            stats: crate::stats::DEFAULT_RETENTION,
            audit: DEFAULT_AUDIT_RETENTION,
        }
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    key: &str,
    json: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(key, e))
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain types always serialize")
}

/// The cursor after a page of creation times (newest first), shared by both
/// stores' `list_incidents`. `exhausted` when the page was short: there is
/// nothing after it.
pub(crate) fn next_cursor(
    previous: Option<ListCursor>,
    scores: impl DoubleEndedIterator<Item = i64> + Clone,
    exhausted: bool,
) -> Option<ListCursor> {
    if exhausted {
        return None;
    }
    let last = scores.clone().next_back()?;
    let same = scores.rev().take_while(|s| *s == last).count() as u32;
    let carried = match previous {
        Some(p) if p.created_ms == last => p.skip_same,
        _ => 0,
    };
    Some(ListCursor {
        created_ms: last,
        skip_same: carried + same,
    })
}

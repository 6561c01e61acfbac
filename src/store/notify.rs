//! What the chat notifier (`notify/`) keeps in the store: the outbox of
//! decisions whose cards must be brought up to date, the cards and their
//! buttons, the Telegram poller's lease and offset, and a few counters.
//!
//! The outbox is a sorted set of tokens scored by when they are due. A
//! change to a decision pushes its token (`ZADD LT`: an earlier due time
//! wins) in the same script that writes the change, when the store was
//! built `with_chat_outbox` (a notifier runs): no replica can die between
//! the two. A worker on any replica claims the earliest due token by moving
//! its score to the end of a lease and recording the claim; the job stays
//! in the set, so a worker that dies mid-send loses nothing: the job is due
//! again when the lease ends. While a claim is live, a push does not touch
//! the score (a second worker would take the job and send a second card);
//! it is remembered as pending and applied when the claim settles, so no
//! change is lost. One token is one job however often it changes: the
//! worker reads the decision as it is now and brings the card up to date.
//!
//! Cards and buttons are the notifier's own records, kept as opaque JSON:
//! the store knows their keys and lifetimes, not their shape.

use super::StoreError;
use crate::domain::Token;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// A claimed outbox job: the token and the score it was claimed with (the
/// end of the claim's lease, in ms), which finishing compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub token: Token,
    pub score: i64,
}

/// Storage for the chat notifier. Every method is one round trip; the
/// read-modify-writes are one script each.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Makes the token's job due `now` (after the live claim, if one is
    /// being worked).
    async fn outbox_push(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Claims the earliest job due at `now`, for `lease`.
    async fn outbox_claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError>;

    /// When the earliest job (claimed or not) is due.
    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Removes a finished job, unless it was pushed again during the claim.
    async fn outbox_done(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Makes a claimed job due again at `at` without counting an attempt
    /// (the grace period, a card waiting for its token's expiry), or at
    /// once if it was pushed during the claim.
    async fn outbox_defer(&self, claim: &Claim, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Makes a claimed job due again at `at` exactly, without counting an
    /// attempt (a rate limit: even a newer change waits).
    async fn outbox_retry(&self, claim: &Claim, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Counts a failed attempt: the job is due again at `at`, or, after
    /// `max_attempts`, dropped and counted as dead (returns true).
    async fn outbox_failed(
        &self,
        claim: &Claim,
        at: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<bool, StoreError>;

    /// The card record of a decision (JSON), if one was sent.
    async fn card(&self, token: &Token) -> Result<Option<String>, StoreError>;

    /// Stores a decision's card record for `ttl`.
    async fn save_card(&self, token: &Token, json: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Stores what a button means under its opaque id, for `ttl`.
    async fn put_button(&self, id: &str, json: &str, ttl: Duration) -> Result<(), StoreError>;

    /// What a button means, without using it up.
    async fn button(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// Uses a button up: returns what it meant, once; None ever after.
    async fn take_button(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// Takes or renews the lease `name` for `owner`; false when another
    /// owner holds it.
    async fn lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives the lease up if `owner` holds it.
    async fn release_poller_lease(&self, name: &str, owner: &str) -> Result<(), StoreError>;

    /// The next update id the poller of `name` asks for (0 at first).
    async fn update_offset(&self, name: &str) -> Result<i64, StoreError>;

    /// Claims update `id` for handling: true only if `owner` still holds
    /// the lease `name` and the offset has not passed `id`; the offset
    /// then moves past it, so no other poller handles it again.
    async fn claim_update(&self, name: &str, owner: &str, id: i64) -> Result<bool, StoreError>;

    /// Adds `by` to the notifier counter `field` (sent, edited, failed,
    /// dead, self_resolved, …).
    async fn count(&self, field: &str, by: i64) -> Result<(), StoreError>;

    /// Every notifier counter.
    async fn counts(&self) -> Result<BTreeMap<String, i64>, StoreError>;
}

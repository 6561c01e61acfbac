//! The replica's copy of recently read and changed decisions, for
//! `GetDecision` without a Redis round trip.
//!
//! Why: a `GetDecision` served from Redis costs this server and Redis about
//! three times an empty RPC (BENCHMARKS.md, "Reads"); served from memory it
//! costs well under twice. The round trip is the difference.
//!
//! Why it stays right: every decision change reaches every replica through
//! the change feed (`feed.rs`), which carries the whole record, and a
//! replica's own writes are applied here the moment Redis confirms them.
//! An entry is only ever replaced by a newer version, so a slow read that
//! lands after a newer change arrived cannot put the older record back.
//! What the cache cannot see, it does not serve:
//! - while the feed is not following the stream (not started yet, or
//!   reconnecting after an error: changes may have been missed), every read
//!   goes to Redis, and the cache is emptied whenever the feed stops or
//!   resumes;
//! - a read that started before the cache was emptied, or before an entry
//!   was evicted (that entry may have held a newer version), is not stored;
//! - an entry is trusted for [`MAX_AGE`] at most, which bounds what a feed
//!   that stalls without an error (or a record removed behind verdict's
//!   back) could leave stale.
//!
//! So another replica's change is seen here after the feed's delay
//! (milliseconds), this replica's own at once. Writes never read from here
//! (a compare-and-set must check the stored version, not a copy of it), nor
//! does a watch's first read (a client resuming after a version it heard
//! from another replica must not be told that version does not exist).

use crate::domain::{Decision, Token};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Decisions kept (each a few hundred bytes to a few KiB).
pub const ENTRIES: usize = 20_000;
/// How long an entry is served without news from the feed.
pub const MAX_AGE: Duration = Duration::from_secs(2);

struct Entry {
    decision: Arc<Decision>,
    at: Instant,
}

struct Inner {
    /// Whether the feed is following the stream: only then is anything
    /// served or stored.
    live: bool,
    /// Bumped whenever the cache is emptied.
    epoch: u64,
    /// Entries pushed out by newer ones, ever.
    evictions: u64,
    entries: LruCache<Token, Entry>,
}

/// See the module docs.
pub struct DecisionCache {
    inner: Mutex<Inner>,
    max_age: Duration,
}

/// Taken before a read from Redis; the read's result is stored only if
/// nothing the cache relies on moved meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    evictions: u64,
}

impl DecisionCache {
    pub fn new(entries: usize, max_age: Duration) -> DecisionCache {
        DecisionCache {
            inner: Mutex::new(Inner {
                live: false,
                epoch: 0,
                evictions: 0,
                entries: LruCache::new(
                    NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN),
                ),
            }),
            max_age,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the map consistent: a panic elsewhere while
        // the lock was held cannot have left half an entry.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decision, if held, fresh, and the feed is following.
    pub fn get(&self, token: &Token) -> Option<Arc<Decision>> {
        let mut g = self.lock();
        if !g.live {
            return None;
        }
        let max_age = self.max_age;
        match g.entries.get(token) {
            Some(e) if e.at.elapsed() < max_age => Some(Arc::clone(&e.decision)),
            _ => None,
        }
    }

    /// Before reading `token` from Redis: `None` when the result must not
    /// be stored (the feed is not following).
    pub fn ticket(&self) -> Option<Ticket> {
        let g = self.lock();
        g.live.then_some(Ticket {
            epoch: g.epoch,
            evictions: g.evictions,
        })
    }

    /// Stores what a read found, unless the cache was emptied or lost an
    /// entry since its ticket, or holds a newer version.
    pub fn fill(&self, ticket: Ticket, decision: &Decision) {
        let mut g = self.lock();
        if g.live && g.epoch == ticket.epoch && g.evictions == ticket.evictions {
            Self::put(&mut g, decision);
        }
    }

    /// A change: from the feed, or a write of this replica's that Redis
    /// confirmed. Replaces an older version (or none); never a newer one.
    pub fn observe(&self, decision: &Decision) {
        let mut g = self.lock();
        if g.live {
            Self::put(&mut g, decision);
        }
    }

    fn put(g: &mut Inner, decision: &Decision) {
        let newer = g
            .entries
            .peek(&decision.token)
            .is_none_or(|e| e.decision.version < decision.version);
        if !newer {
            // The same version again (the feed echoing this replica's own
            // write) confirms the entry.
            if let Some(e) = g.entries.peek_mut(&decision.token)
                && e.decision.version == decision.version
            {
                e.at = Instant::now();
            }
            return;
        }
        let entry = Entry {
            decision: Arc::new(decision.clone()),
            at: Instant::now(),
        };
        if let Some((evicted, _)) = g.entries.push(decision.token.clone(), entry)
            && evicted != decision.token
        {
            g.evictions += 1;
        }
    }

    /// The feed started (or resumed) following the stream, or stopped:
    /// either way what is held may have missed changes, so it is dropped.
    pub fn set_live(&self, live: bool) {
        let mut g = self.lock();
        g.live = live;
        g.epoch += 1;
        g.entries.clear();
    }

    /// Entries held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DecisionMode, IncidentId};
    use chrono::Utc;

    fn decision(n: u64, version: u64) -> Decision {
        let now = Utc::now();
        let mut d = Decision::start(
            IncidentId::parse(&format!("INC-{n}")).unwrap(),
            DecisionMode::Auto,
            now,
            chrono::Duration::hours(1),
            now,
        );
        d.token = Token::parse(&format!("DEC-{n:012X}")).unwrap();
        d.version = version;
        d
    }

    fn live() -> DecisionCache {
        let c = DecisionCache::new(100, Duration::from_secs(60));
        c.set_live(true);
        c
    }

    #[test]
    fn nothing_is_served_or_stored_until_the_feed_follows() {
        let c = DecisionCache::new(100, Duration::from_secs(60));
        assert!(c.ticket().is_none());
        c.observe(&decision(1, 1));
        assert_eq!(c.len(), 0);
        c.set_live(true);
        c.observe(&decision(1, 1));
        assert_eq!(c.get(&decision(1, 1).token).unwrap().version, 1);
        c.set_live(false);
        assert!(
            c.get(&decision(1, 1).token).is_none(),
            "a stopped feed: nothing served"
        );
        c.set_live(true);
        assert!(c.get(&decision(1, 1).token).is_none(), "and nothing kept");
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let c = live();
        let ticket = c.ticket().unwrap();
        c.observe(&decision(1, 3));
        // A read that found version 2 lands after the feed brought 3.
        c.fill(ticket, &decision(1, 2));
        assert_eq!(c.get(&decision(1, 0).token).unwrap().version, 3);
        c.observe(&decision(1, 1));
        assert_eq!(c.get(&decision(1, 0).token).unwrap().version, 3);
        c.observe(&decision(1, 4));
        assert_eq!(c.get(&decision(1, 0).token).unwrap().version, 4);
    }

    #[test]
    fn a_read_is_not_stored_across_a_reset_or_an_eviction() {
        let c = DecisionCache::new(2, Duration::from_secs(60));
        c.set_live(true);
        let before_reset = c.ticket().unwrap();
        c.set_live(false);
        c.set_live(true);
        c.fill(before_reset, &decision(1, 1));
        assert_eq!(c.len(), 0, "the feed restarted since the read began");

        // The read of token 1 began; the feed then brought version 2 of
        // it, which was evicted by later changes before the read landed.
        let before_eviction = c.ticket().unwrap();
        c.observe(&decision(1, 2));
        c.observe(&decision(2, 1));
        c.observe(&decision(3, 1));
        c.fill(before_eviction, &decision(1, 1));
        assert!(
            c.get(&decision(1, 0).token).is_none(),
            "the stale version 1 must not come back"
        );
        let ticket = c.ticket().unwrap();
        c.fill(ticket, &decision(1, 2));
        assert_eq!(c.get(&decision(1, 0).token).unwrap().version, 2);
    }

    #[test]
    fn an_entry_is_served_for_its_max_age_only() {
        let c = DecisionCache::new(10, Duration::ZERO);
        c.set_live(true);
        c.observe(&decision(1, 1));
        assert!(c.get(&decision(1, 1).token).is_none());
    }

    #[test]
    fn the_cache_holds_at_most_its_entries() {
        let c = DecisionCache::new(10, Duration::from_secs(60));
        c.set_live(true);
        for n in 0..100 {
            c.observe(&decision(n, 1));
        }
        assert_eq!(c.len(), 10);
    }
}

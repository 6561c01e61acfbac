//! The replica's copy of recently read and changed decisions, for
//! `GetDecision` without a Redis round trip, and of incidents with their
//! current decision's token, for `GetOrCreateDecision` of an incident whose
//! decision can be returned as it is.
//!
//! Why: a `GetDecision` served from Redis costs this server and Redis about
//! three times an empty RPC (BENCHMARKS.md, "Reads"); served from memory it
//! costs well under twice. The round trip is the difference.
//!
//! Why it stays right: every decision change and incident update reaches
//! every replica through the change feed (`feed.rs`), which carries the
//! whole record, and a replica's own writes are applied here the moment
//! Redis confirms them. An entry is only ever replaced by a newer version,
//! so a slow read that lands after a newer change arrived cannot put the
//! older record back. An incident's current token changes only when a
//! decision is created for it (`create_decision.lua`, which publishes the
//! new decision at version 1 in the same step), so the last version-1
//! decision the feed brought for an incident names its current one; a
//! read replaces a current token only if that was set before the read
//! began.
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

use crate::domain::{Decision, Incident, IncidentId, Token};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Decisions kept (each a few hundred bytes to a few KiB); as many
/// incidents and current tokens: 10 000 open decisions is far more than a
/// replica's readers keep asking about, and the copy stays within tens of
/// MB even with large proposals.
pub const ENTRIES: usize = 10_000;
/// How long an entry is served without news from the feed.
pub const MAX_AGE: Duration = Duration::from_secs(2);

struct Entry<T> {
    value: T,
    at: Instant,
}

impl<T> Entry<T> {
    fn new(value: T) -> Self {
        Entry {
            value,
            at: Instant::now(),
        }
    }
}

struct Inner {
    /// Whether the feed is following the stream: only then is anything
    /// served or stored.
    live: bool,
    /// Bumped whenever the cache is emptied.
    epoch: u64,
    /// Entries pushed out by newer ones, ever (any of the three maps).
    evictions: u64,
    /// Current tokens set, ever: each is numbered.
    pointers: u64,
    entries: LruCache<Token, Entry<Arc<Decision>>>,
    incidents: LruCache<IncidentId, Entry<Arc<Incident>>>,
    /// An incident's current token, numbered when set.
    current: LruCache<IncidentId, Entry<(Token, u64)>>,
}

/// Puts `value` under `key`; counts an eviction of another key.
fn push<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut LruCache<K, V>,
    evictions: &mut u64,
    key: K,
    value: V,
) {
    if let Some((evicted, _)) = map.push(key.clone(), value)
        && evicted != key
    {
        *evictions += 1;
    }
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
    /// Current tokens set before the read began (numbered below this) are
    /// ones the read saw or saw replaced, so it may refresh them.
    pointers: u64,
}

impl DecisionCache {
    pub fn new(entries: usize, max_age: Duration) -> DecisionCache {
        DecisionCache {
            inner: Mutex::new(Inner {
                live: false,
                epoch: 0,
                evictions: 0,
                pointers: 0,
                entries: LruCache::new(cap(entries)),
                incidents: LruCache::new(cap(entries)),
                current: LruCache::new(cap(entries)),
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
            Some(e) if e.at.elapsed() < max_age => Some(Arc::clone(&e.value)),
            _ => None,
        }
    }

    /// The incident and its current decision, if all three (incident,
    /// current token, decision) are held and fresh and the feed follows.
    pub fn current(&self, id: &IncidentId) -> Option<(Arc<Incident>, Arc<Decision>)> {
        let mut g = self.lock();
        if !g.live {
            return None;
        }
        let max_age = self.max_age;
        let token = match g.current.get(id) {
            Some(e) if e.at.elapsed() < max_age => e.value.0.clone(),
            _ => return None,
        };
        let incident = match g.incidents.get(id) {
            Some(e) if e.at.elapsed() < max_age => Arc::clone(&e.value),
            _ => return None,
        };
        match g.entries.get(&token) {
            Some(e) if e.at.elapsed() < max_age => Some((incident, Arc::clone(&e.value))),
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
            pointers: g.pointers,
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

    /// Stores what a read of an incident and its current decision found
    /// (see [`Self::fill`]); the current token only where none is held or
    /// the one held was set before the read began (a creation the feed
    /// brought while the read was on its way is newer than what it found).
    pub fn fill_current(&self, ticket: Ticket, incident: &Incident, decision: &Decision) {
        let mut g = self.lock();
        if g.live && g.epoch == ticket.epoch && g.evictions == ticket.evictions {
            Self::put_incident(&mut g, incident);
            Self::put(&mut g, decision);
            if g.current
                .peek(&incident.id)
                .is_none_or(|e| e.value.1 < ticket.pointers)
            {
                Self::point(&mut g, &incident.id, &decision.token);
            }
        }
    }

    /// A change: from the feed, or a write of this replica's that Redis
    /// confirmed. Replaces an older version (or none); never a newer one.
    /// A decision at version 1 was just created: it is now its incident's
    /// current one.
    pub fn observe(&self, decision: &Decision) {
        let mut g = self.lock();
        if g.live {
            Self::put(&mut g, decision);
            if decision.version == 1 {
                Self::point(&mut g, &decision.incident_id, &decision.token);
            }
        }
    }

    /// An incident update (from the feed or this replica's confirmed
    /// write), by the same rule.
    pub fn observe_incident(&self, incident: &Incident) {
        let mut g = self.lock();
        if g.live {
            Self::put_incident(&mut g, incident);
        }
    }

    /// Sets an incident's current token, numbered.
    fn point(g: &mut Inner, id: &IncidentId, token: &Token) {
        let n = g.pointers;
        g.pointers += 1;
        let Inner {
            current, evictions, ..
        } = g;
        push(
            current,
            evictions,
            id.clone(),
            Entry::new((token.clone(), n)),
        );
    }

    fn put(g: &mut Inner, decision: &Decision) {
        let Inner {
            entries, evictions, ..
        } = g;
        newest(entries, evictions, &decision.token, decision, |d| d.version);
    }

    fn put_incident(g: &mut Inner, incident: &Incident) {
        let Inner {
            incidents,
            evictions,
            ..
        } = g;
        newest(incidents, evictions, &incident.id, incident, |i| i.version);
    }

    /// The feed started (or resumed) following the stream, or stopped:
    /// either way what is held may have missed changes, so it is dropped.
    pub fn set_live(&self, live: bool) {
        let mut g = self.lock();
        g.live = live;
        g.epoch += 1;
        g.entries.clear();
        g.incidents.clear();
        g.current.clear();
    }
}

/// Puts `value` under `key` unless a newer version is held; the same
/// version again (the feed echoing this replica's own write) only confirms
/// the entry.
fn newest<K: std::hash::Hash + Eq + Clone, T: Clone>(
    map: &mut LruCache<K, Entry<Arc<T>>>,
    evictions: &mut u64,
    key: &K,
    value: &T,
    version: fn(&T) -> u64,
) {
    let held = map.peek(key).map(|e| version(&e.value));
    match held {
        Some(v) if v > version(value) => {}
        Some(v) if v == version(value) => {
            if let Some(e) = map.peek_mut(key) {
                e.at = Instant::now();
            }
        }
        _ => push(
            map,
            evictions,
            key.clone(),
            Entry::new(Arc::new(value.clone())),
        ),
    }
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl DecisionCache {
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

    fn incident(n: u64, version: u64) -> Incident {
        let mut i = Incident::opened(
            IncidentId::parse(&format!("INC-{n}")).unwrap(),
            "disk full".into(),
            crate::domain::Severity::P2,
            Utc::now(),
        );
        i.version = version;
        i
    }

    /// Decision `n` of incident 1.
    fn of_incident_1(n: u64, version: u64) -> Decision {
        let mut d = decision(n, version);
        d.incident_id = IncidentId::parse("INC-1").unwrap();
        d
    }

    #[test]
    fn the_current_decision_is_the_last_one_created_in_feed_order() {
        let c = live();
        let id = IncidentId::parse("INC-1").unwrap();
        c.observe(&of_incident_1(10, 1));
        assert!(c.current(&id).is_none(), "no incident held yet");
        c.observe_incident(&incident(1, 1));
        assert_eq!(c.current(&id).unwrap().1.token, of_incident_1(10, 1).token);
        // A later change of it keeps it current, with its newest version.
        c.observe(&of_incident_1(10, 2));
        assert_eq!(c.current(&id).unwrap().1.version, 2);
        // A new decision for the incident replaces it; an older decision's
        // later change does not bring it back.
        c.observe(&of_incident_1(11, 1));
        c.observe(&of_incident_1(10, 3));
        let (inc, d) = c.current(&id).unwrap();
        assert_eq!(
            (d.token.clone(), d.version),
            (of_incident_1(11, 1).token, 1)
        );
        assert_eq!(inc.version, 1);
        c.observe_incident(&incident(1, 3));
        c.observe_incident(&incident(1, 2));
        assert_eq!(
            c.current(&id).unwrap().0.version,
            3,
            "never an older incident"
        );
    }

    #[test]
    fn a_read_never_replaces_the_current_decision_the_feed_named() {
        let c = live();
        let id = IncidentId::parse("INC-1").unwrap();
        let ticket = c.ticket().unwrap();
        // The feed names decision 11 current while a read that found 10
        // (before 11 was created) is on its way.
        c.observe(&of_incident_1(11, 1));
        c.fill_current(ticket, &incident(1, 1), &of_incident_1(10, 4));
        assert_eq!(c.current(&id).unwrap().1.token, of_incident_1(11, 1).token);
        // A read that began after the feed named 11 may refresh it.
        let ticket = c.ticket().unwrap();
        c.fill_current(ticket, &incident(1, 1), &of_incident_1(11, 3));
        assert_eq!(c.current(&id).unwrap().1.version, 3);
        // Emptied: a read fills all three again.
        c.set_live(false);
        c.set_live(true);
        assert!(c.current(&id).is_none());
        let ticket = c.ticket().unwrap();
        c.fill_current(ticket, &incident(1, 1), &of_incident_1(11, 2));
        assert_eq!(c.current(&id).unwrap().1.version, 2);
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

//! The per-replica fan-out of decision (and, to watchers that ask,
//! incident) changes to local watchers.

use crate::domain::{Decision, DecisionState, Incident, IncidentId, Severity, Token};
use bytes::Bytes;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use thiserror::Error;
use tokio::sync::{Notify, mpsc, watch};

/// Changes buffered per `WatchDecision` watcher. A decision changes only a
/// handful of times, so this is rarely full; when it is, the watcher
/// catches up from the store.
const TOKEN_BUFFER: usize = 8;
/// Changes buffered per `WatchDecisions` watcher before it is cut off.
const ALL_BUFFER: usize = 1024;

/// Why a watch could not start.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WatchError {
    #[error("too many watchers on this replica (limit {0}); retry later or on another replica")]
    TooMany(usize),
}

impl WatchError {
    /// What kind of failure this is (a full replica: retry later).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        match self {
            WatchError::TooMany(_) => crate::error_code::ErrorCode::ResourceExhausted,
        }
    }
}

/// Which changes a `WatchDecisions` watcher wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub incident: Option<IncidentId>,
    pub state: Option<DecisionState>,
    pub severity: Option<Severity>,
    /// Also incident changes (matched by `incident` and `severity`; a
    /// decision state says nothing about them).
    pub incidents: bool,
}

impl Filter {
    fn matches(&self, d: &Decision) -> bool {
        self.incident.as_ref().is_none_or(|i| *i == d.incident_id)
            && self.state.is_none_or(|s| s == d.state)
            && self.severity.is_none_or(|s| d.severity == Some(s))
    }

    fn matches_incident(&self, i: &Incident) -> bool {
        self.incidents
            && self.incident.as_ref().is_none_or(|id| *id == i.id)
            && self.severity.is_none_or(|s| s == i.severity)
    }
}

/// One change a `WatchDecisions` watcher receives.
#[derive(Debug, Clone)]
pub enum Change {
    Decision(Arc<Decision>),
    /// Only to watchers whose filter asks for incidents.
    Incident(Arc<Incident>),
}

/// Renders a change into the bytes its watchers are sent. The hub calls it
/// once per change (and only when some watcher wants the change), so the
/// cost of rendering and encoding does not grow with the number of
/// watchers. Implemented by the API layer, which owns the wire format.
pub trait Render: Send + Sync {
    /// A decision change: the one encoding serves both watch streams.
    fn decision(&self, d: &Decision) -> Bytes;
    /// An incident change, for `WatchDecisions` watchers that asked.
    fn incident(&self, i: &Incident) -> Bytes;
}

/// A change as every interested watcher receives it: the domain value (a
/// watcher tracks versions and expiry on it) and its message, already
/// encoded. Shared behind one `Arc`, so handing it to a watcher costs a
/// reference count, never a copy of the decision or a second encoding.
#[derive(Debug)]
pub struct Published<T> {
    pub value: T,
    pub wire: Bytes,
    /// When this replica received the change. When the last watcher lets
    /// go of it (it handed the bytes to HTTP/2, or left), the time since is
    /// the fan-out's (`verdict_watch_fanout_seconds`): the server's share
    /// of a change's delivery.
    pub at: Instant,
}

impl<T> Drop for Published<T> {
    fn drop(&mut self) {
        crate::metrics::watch_fanout(self.at.elapsed());
    }
}

/// What the token watchers receive.
pub type SharedDecision = Arc<Published<Arc<Decision>>>;
/// What `WatchDecisions` watchers receive.
pub type SharedChange = Arc<Published<Change>>;

struct Slot<T> {
    id: u64,
    tx: mpsc::Sender<T>,
    /// Set when a change could not be buffered; the watcher is woken.
    lagged: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl<T: Clone> Slot<T> {
    /// Offers one change without ever waiting: a full buffer marks the
    /// watcher lagged and wakes it instead.
    fn offer(&self, change: &T) {
        if self.tx.try_send(change.clone()).is_err() {
            self.lagged.store(true, Ordering::Release);
            self.wake.notify_one();
        }
    }
}

struct AllSlot {
    slot: Slot<SharedChange>,
    filter: Filter,
}

/// Watchers keyed by their id, so one leaving is removed in constant
/// time (with a list, 10 000 watchers of one token leaving cost 10 000
/// scans of 10 000 entries, each under the lock every publish needs), and
/// kept in arrival order, so a change reaches them in the order they came:
/// watchers that share a connection (which arrive together) are then woken
/// together. In a hash map's order the same fan-out cost this server twice
/// the CPU (BENCHMARKS.md, "Watch fan-out").
#[derive(Default)]
struct Inner {
    by_token: HashMap<Token, IndexMap<u64, Slot<SharedDecision>>>,
    all: IndexMap<u64, AllSlot>,
}

/// Fans changes out to this replica's watchers.
pub struct Hub {
    inner: Mutex<Inner>,
    /// Registered watchers; a watch channel so a caller (a test, a future
    /// metric) can await a count instead of polling it.
    live: watch::Sender<usize>,
    next: AtomicU64,
    max_watchers: usize,
    render: Arc<dyn Render>,
}

/// A registered watcher (of one token: `T` = [`SharedDecision`]; of
/// everything: [`SharedChange`]). Dropping it unregisters at once.
pub struct Subscription<T> {
    hub: Arc<Hub>,
    id: u64,
    token: Option<Token>,
    pub rx: mpsc::Receiver<T>,
    pub lagged: Arc<AtomicBool>,
    pub wake: Arc<Notify>,
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        let mut g = self.hub.lock();
        match &self.token {
            Some(t) => {
                if let Some(v) = g.by_token.get_mut(t) {
                    v.swap_remove(&self.id);
                    if v.is_empty() {
                        g.by_token.remove(t);
                    }
                }
            }
            None => {
                g.all.swap_remove(&self.id);
            }
        }
        self.hub.live.send_modify(|n| *n -= 1);
    }
}

impl Hub {
    pub fn new(max_watchers: usize, render: Arc<dyn Render>) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(Inner::default()),
            live: watch::Sender::new(0),
            next: AtomicU64::new(0),
            max_watchers,
            render,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation completes under the guard; a poisoned lock still
        // guards consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watchers currently registered on this replica.
    pub fn live(&self) -> usize {
        *self.live.borrow()
    }

    /// The number of registered watchers, as it changes.
    pub fn live_changes(&self) -> watch::Receiver<usize> {
        self.live.subscribe()
    }

    fn slot<T>(&self, cap: usize) -> Result<(Slot<T>, mpsc::Receiver<T>), WatchError> {
        // Checked and counted in one step, under the channel's lock.
        let admitted = self.live.send_if_modified(|n| {
            let room = *n < self.max_watchers;
            if room {
                *n += 1;
            }
            room
        });
        if !admitted {
            crate::metrics::watcher_dropped(crate::metrics::WatcherDropped::Refused);
            return Err(WatchError::TooMany(self.max_watchers));
        }
        let (tx, rx) = mpsc::channel(cap);
        Ok((
            Slot {
                id: self.next.fetch_add(1, Ordering::Relaxed),
                tx,
                lagged: Arc::new(AtomicBool::new(false)),
                wake: Arc::new(Notify::new()),
            },
            rx,
        ))
    }

    fn subscription<T>(
        self: &Arc<Self>,
        slot: &Slot<T>,
        token: Option<Token>,
        rx: mpsc::Receiver<T>,
    ) -> Subscription<T> {
        Subscription {
            hub: Arc::clone(self),
            id: slot.id,
            token,
            rx,
            lagged: slot.lagged.clone(),
            wake: slot.wake.clone(),
        }
    }

    /// Registers a watcher of one token.
    pub fn subscribe(
        self: &Arc<Self>,
        token: &Token,
    ) -> Result<Subscription<SharedDecision>, WatchError> {
        let (slot, rx) = self.slot(TOKEN_BUFFER)?;
        let sub = self.subscription(&slot, Some(token.clone()), rx);
        self.lock()
            .by_token
            .entry(token.clone())
            .or_default()
            .insert(slot.id, slot);
        Ok(sub)
    }

    /// Registers a watcher of every change matching `filter`.
    pub fn subscribe_all(
        self: &Arc<Self>,
        filter: Filter,
    ) -> Result<Subscription<SharedChange>, WatchError> {
        let (slot, rx) = self.slot(ALL_BUFFER)?;
        let sub = self.subscription(&slot, None, rx);
        self.lock().all.insert(slot.id, AllSlot { slot, filter });
        Ok(sub)
    }

    /// Hands one change to every interested watcher without ever waiting:
    /// a full buffer marks its watcher lagged and wakes it instead. The
    /// change is rendered once, when the first interested watcher is found
    /// (under the lock: a few microseconds, and a watcher registering
    /// meanwhile cannot miss it); every watcher then gets the same bytes.
    pub fn publish(&self, d: Decision) {
        let d = Arc::new(d);
        let g = self.lock();
        let token_slots = g.by_token.get(&d.token).filter(|v| !v.is_empty());
        let mut all = g.all.values().filter(|a| a.filter.matches(&d)).peekable();
        if token_slots.is_none() && all.peek().is_none() {
            return;
        }
        let at = Instant::now();
        let wire = self.render.decision(&d);
        if let Some(slots) = token_slots {
            let p = Arc::new(Published {
                value: Arc::clone(&d),
                wire: wire.clone(),
                at,
            });
            slots.values().for_each(|s| s.offer(&p));
        }
        let mut shared = None;
        for a in all {
            let p = shared.get_or_insert_with(|| {
                Arc::new(Published {
                    value: Change::Decision(Arc::clone(&d)),
                    wire: wire.clone(),
                    at,
                })
            });
            a.slot.offer(p);
        }
    }

    /// Hands one incident change to the watchers that asked for incidents,
    /// the same way (never waiting, rendered once).
    pub fn publish_incident(&self, i: Incident) {
        let g = self.lock();
        let mut shared = None;
        for a in g.all.values().filter(|a| a.filter.matches_incident(&i)) {
            let p = shared.get_or_insert_with(|| {
                Arc::new(Published {
                    at: Instant::now(),
                    wire: self.render.incident(&i),
                    value: Change::Incident(Arc::new(i.clone())),
                })
            });
            a.slot.offer(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DecisionMode, IncidentId};
    use chrono::Utc;
    use std::sync::atomic::AtomicUsize;

    /// Renders a decision as its version and counts the renderings.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Render for Counting {
        fn decision(&self, d: &Decision) -> Bytes {
            self.0.fetch_add(1, Ordering::Relaxed);
            Bytes::from(d.version.to_string())
        }
        fn incident(&self, i: &Incident) -> Bytes {
            self.0.fetch_add(1, Ordering::Relaxed);
            Bytes::from(i.id.to_string())
        }
    }

    fn hub(max: usize) -> Arc<Hub> {
        Hub::new(max, Arc::new(Counting::default()))
    }

    fn decision(version: u64) -> Decision {
        let now = Utc::now();
        let mut d = Decision::start(
            IncidentId::parse("INC-1").unwrap(),
            DecisionMode::Auto,
            now,
            chrono::Duration::hours(1),
            now,
        );
        d.token = Token::parse("DEC-00000000000A").unwrap();
        d.version = version;
        d
    }

    #[test]
    fn a_full_buffer_marks_the_watcher_lagged_instead_of_blocking() {
        let hub = hub(10);
        let mut slow = hub.subscribe(&decision(1).token).unwrap();
        let mut fast = hub.subscribe(&decision(1).token).unwrap();
        for v in 1..=(TOKEN_BUFFER as u64 + 5) {
            hub.publish(decision(v));
            // The fast watcher keeps up.
            assert_eq!(fast.rx.try_recv().unwrap().value.version, v);
        }
        assert!(slow.lagged.load(Ordering::Acquire));
        assert!(!fast.lagged.load(Ordering::Acquire));
        let mut got = 0;
        while slow.rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, TOKEN_BUFFER, "the buffer stays bounded");
    }

    #[test]
    fn incident_changes_reach_only_the_watchers_that_asked_matching_their_filter() {
        let hub = hub(10);
        let mut decisions_only = hub.subscribe_all(Filter::default()).unwrap();
        let mut all = hub
            .subscribe_all(Filter {
                incidents: true,
                ..Filter::default()
            })
            .unwrap();
        let mut other = hub
            .subscribe_all(Filter {
                incidents: true,
                incident: Some(IncidentId::parse("INC-2").unwrap()),
                ..Filter::default()
            })
            .unwrap();
        let mut p0 = hub
            .subscribe_all(Filter {
                incidents: true,
                severity: Some(Severity::P0),
                ..Filter::default()
            })
            .unwrap();
        let i = Incident::opened(
            IncidentId::parse("INC-1").unwrap(),
            "t".into(),
            Severity::P2,
            Utc::now(),
        );
        hub.publish_incident(i);
        assert!(
            matches!(all.rx.try_recv(), Ok(p) if matches!(&p.value, Change::Incident(i) if i.id.as_str() == "INC-1"))
        );
        assert!(decisions_only.rx.try_recv().is_err(), "not asked for");
        assert!(other.rx.try_recv().is_err(), "another incident's watcher");
        assert!(p0.rx.try_recv().is_err(), "another severity's watcher");
        hub.publish(decision(1));
        assert!(
            matches!(all.rx.try_recv(), Ok(p) if matches!(&p.value, Change::Decision(d) if d.version == 1))
        );
        assert!(matches!(
            decisions_only.rx.try_recv(),
            Ok(p) if matches!(p.value, Change::Decision(_))
        ));
    }

    #[test]
    fn watchers_are_counted_bounded_and_freed_on_drop() {
        let hub = hub(2);
        let a = hub.subscribe(&decision(1).token).unwrap();
        let b = hub.subscribe_all(Filter::default()).unwrap();
        assert_eq!(hub.live(), 2);
        assert_eq!(
            hub.subscribe_all(Filter::default()).err(),
            Some(WatchError::TooMany(2))
        );
        drop(a);
        drop(b);
        assert_eq!(hub.live(), 0);
        assert!(hub.lock().by_token.is_empty() && hub.lock().all.is_empty());
    }

    #[test]
    fn a_change_is_rendered_once_and_every_watcher_shares_the_same_bytes() {
        let render = Arc::new(Counting::default());
        let hub = Hub::new(100, render.clone());
        let token = decision(1).token;
        let mut one: Vec<_> = (0..40).map(|_| hub.subscribe(&token).unwrap()).collect();
        let mut all: Vec<_> = (0..40)
            .map(|_| hub.subscribe_all(Filter::default()).unwrap())
            .collect();
        hub.publish(decision(1));
        assert_eq!(
            render.0.load(Ordering::Relaxed),
            1,
            "one rendering for 80 watchers"
        );
        let first = one[0].rx.try_recv().unwrap();
        assert_eq!(&first.wire[..], b"1");
        for s in &mut one[1..] {
            let p = s.rx.try_recv().unwrap();
            assert!(
                Arc::ptr_eq(&p, &first),
                "the same shared change, not a copy"
            );
        }
        let first_all = all[0].rx.try_recv().unwrap();
        assert_eq!(
            first_all.wire.as_ptr(),
            first.wire.as_ptr(),
            "the same bytes"
        );
        for s in &mut all[1..] {
            assert!(Arc::ptr_eq(&s.rx.try_recv().unwrap(), &first_all));
        }
        // Nobody watches another token, nor incidents: nothing is rendered.
        let mut other = decision(2);
        other.token = Token::parse("DEC-00000000000B").unwrap();
        drop(all);
        hub.publish(other);
        hub.publish_incident(Incident::opened(
            IncidentId::parse("INC-1").unwrap(),
            "t".into(),
            Severity::P2,
            Utc::now(),
        ));
        assert_eq!(render.0.load(Ordering::Relaxed), 1);
    }
}

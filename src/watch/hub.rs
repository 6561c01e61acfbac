//! The per-replica fan-out of decision changes to local watchers.

use crate::domain::{Decision, DecisionState, IncidentId, Severity, Token};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
}

impl Filter {
    fn matches(&self, d: &Decision) -> bool {
        self.incident.as_ref().is_none_or(|i| *i == d.incident_id)
            && self.state.is_none_or(|s| s == d.state)
            && self.severity.is_none_or(|s| d.severity == Some(s))
    }
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<Arc<Decision>>,
    /// Set when a change could not be buffered; the watcher is woken.
    lagged: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

struct AllSlot {
    slot: Slot,
    filter: Filter,
}

#[derive(Default)]
struct Inner {
    by_token: HashMap<Token, Vec<Slot>>,
    all: Vec<AllSlot>,
}

/// Fans changes out to this replica's watchers.
pub struct Hub {
    inner: Mutex<Inner>,
    /// Registered watchers; a watch channel so a caller (a test, a future
    /// metric) can await a count instead of polling it.
    live: watch::Sender<usize>,
    next: AtomicU64,
    max_watchers: usize,
}

/// A registered watcher. Dropping it unregisters at once.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    token: Option<Token>,
    pub rx: mpsc::Receiver<Arc<Decision>>,
    pub lagged: Arc<AtomicBool>,
    pub wake: Arc<Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut g = self.hub.lock();
        match &self.token {
            Some(t) => {
                if let Some(v) = g.by_token.get_mut(t) {
                    v.retain(|s| s.id != self.id);
                    if v.is_empty() {
                        g.by_token.remove(t);
                    }
                }
            }
            None => g.all.retain(|s| s.slot.id != self.id),
        }
        self.hub.live.send_modify(|n| *n -= 1);
    }
}

impl Hub {
    pub fn new(max_watchers: usize) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(Inner::default()),
            live: watch::Sender::new(0),
            next: AtomicU64::new(0),
            max_watchers,
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

    fn slot(&self, cap: usize) -> Result<(Slot, mpsc::Receiver<Arc<Decision>>), WatchError> {
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

    fn subscription(
        self: &Arc<Self>,
        slot: &Slot,
        token: Option<Token>,
        rx: mpsc::Receiver<Arc<Decision>>,
    ) -> Subscription {
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
    pub fn subscribe(self: &Arc<Self>, token: &Token) -> Result<Subscription, WatchError> {
        let (slot, rx) = self.slot(TOKEN_BUFFER)?;
        let sub = self.subscription(&slot, Some(token.clone()), rx);
        self.lock()
            .by_token
            .entry(token.clone())
            .or_default()
            .push(slot);
        Ok(sub)
    }

    /// Registers a watcher of every change matching `filter`.
    pub fn subscribe_all(self: &Arc<Self>, filter: Filter) -> Result<Subscription, WatchError> {
        let (slot, rx) = self.slot(ALL_BUFFER)?;
        let sub = self.subscription(&slot, None, rx);
        self.lock().all.push(AllSlot { slot, filter });
        Ok(sub)
    }

    /// Hands one change to every interested watcher without ever waiting:
    /// a full buffer marks its watcher lagged and wakes it instead.
    pub fn publish(&self, d: Decision) {
        let d = Arc::new(d);
        let g = self.lock();
        let offer = |s: &Slot| {
            if s.tx.try_send(Arc::clone(&d)).is_err() {
                s.lagged.store(true, Ordering::Release);
                s.wake.notify_one();
            }
        };
        if let Some(slots) = g.by_token.get(&d.token) {
            slots.iter().for_each(offer);
        }
        for a in g.all.iter().filter(|a| a.filter.matches(&d)) {
            offer(&a.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DecisionMode, IncidentId};
    use chrono::Utc;

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
        let hub = Hub::new(10);
        let mut slow = hub.subscribe(&decision(1).token).unwrap();
        let mut fast = hub.subscribe(&decision(1).token).unwrap();
        for v in 1..=(TOKEN_BUFFER as u64 + 5) {
            hub.publish(decision(v));
            // The fast watcher keeps up.
            assert_eq!(fast.rx.try_recv().unwrap().version, v);
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
    fn watchers_are_counted_bounded_and_freed_on_drop() {
        let hub = Hub::new(2);
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
}

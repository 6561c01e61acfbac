//! Callers waiting for an analysis another call owns, by token, woken when
//! that decision changes.
//!
//! The owner may be on another replica, so the wake-up comes from the
//! change feed every replica already follows (`Store::follow_changes`;
//! the server hands each change to [`super::DecisionManager::observe`]
//! next to `watch::Hub::publish`), and from local finishes directly. A
//! waiter then re-reads the decision once instead of polling the store.
//! Only the waiters of the changed token wake, so a busy replica's
//! thousand joined analyses cost one read each per change of *their*
//! decision.

use crate::domain::Token;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The registry: one [`Notify`] per token somebody waits on.
#[derive(Default)]
pub(crate) struct Waiters {
    by_token: Mutex<HashMap<Token, Arc<Notify>>>,
}

/// One registered waiter; dropping the last waiter of a token forgets it.
pub(crate) struct Waiting<'a> {
    waiters: &'a Waiters,
    token: Token,
    notify: Arc<Notify>,
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Token, Arc<Notify>>> {
        // Every mutation completes under the guard; a poisoned lock still
        // guards consistent data.
        self.by_token.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers interest in `token`'s changes.
    pub(crate) fn register(&self, token: &Token) -> Waiting<'_> {
        let notify = Arc::clone(self.lock().entry(token.clone()).or_default());
        Waiting {
            waiters: self,
            token: token.clone(),
            notify,
        }
    }

    /// Wakes every waiter of `token` (none registered: nothing to do).
    pub(crate) fn wake(&self, token: &Token) {
        if let Some(n) = self.lock().get(token) {
            n.notify_waiters();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Waiting<'_> {
    /// What a change of the token notifies. Create the `Notified` future
    /// and `enable` it *before* reading the decision, so a change between
    /// the read and the wait is not missed.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut g = self.waiters.lock();
        // The map and this waiter hold it: this was the last waiter.
        if Arc::strong_count(&self.notify) == 2
            && g.get(&self.token)
                .is_some_and(|n| Arc::ptr_eq(n, &self.notify))
        {
            g.remove(&self.token);
        }
    }
}

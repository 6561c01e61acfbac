//! The chat notifier's records in memory ([`NotifyStore`] for
//! [`MemoryStore`]): the same semantics as `redis/notify.rs`, one mutex.

use super::MemoryStore;
use super::notify::{Claim, NotifyStore};
use super::{StoreError, keys};
use crate::domain::Token;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// The notifier's state in memory.
#[derive(Default)]
pub(super) struct NotifyState {
    /// (due ms, token) and each token's due ms.
    due: BTreeSet<(i64, Token)>,
    due_at: HashMap<Token, i64>,
    /// Live claims (token → claim score) and pushes made during them.
    claims: HashMap<Token, i64>,
    pending: HashMap<Token, i64>,
    attempts: HashMap<Token, u32>,
    counts: BTreeMap<String, i64>,
    /// Cards, buttons, leases and offsets by their Redis key, with expiry.
    values: HashMap<String, (String, Option<Instant>)>,
}

impl NotifyState {
    /// `notify_push.lua`: due at `ms` (or earlier), or pending while a live
    /// claim is being worked.
    pub(super) fn push(&mut self, token: &Token, ms: i64) {
        if self.claims.get(token).is_some_and(|&c| c > ms) {
            let p = self.pending.entry(token.clone()).or_insert(ms);
            *p = (*p).min(ms);
        } else if self.due_at.get(token).is_none_or(|&old| ms < old) {
            self.set_due(token, ms);
        }
    }

    fn set_due(&mut self, token: &Token, ms: i64) {
        if let Some(old) = self.due_at.insert(token.clone(), ms) {
            self.due.remove(&(old, token.clone()));
        }
        self.due.insert((ms, token.clone()));
    }

    fn remove(&mut self, token: &Token) {
        if let Some(old) = self.due_at.remove(token) {
            self.due.remove(&(old, token.clone()));
        }
        self.attempts.remove(token);
    }

    fn get(&mut self, key: &str) -> Option<String> {
        match self.values.get(key) {
            Some((_, Some(until))) if *until <= Instant::now() => {
                self.values.remove(key);
                None
            }
            Some((v, _)) => Some(v.clone()),
            None => None,
        }
    }

    fn set(&mut self, key: String, value: String, ttl: Option<Duration>) {
        self.values
            .insert(key, (value, ttl.map(|t| Instant::now() + t)));
    }

    /// Settles `claim` as `notify_settle.lua` does; true when it went dead.
    fn settle(&mut self, claim: &Claim, how: Settle, at: i64, max_attempts: u32) -> bool {
        let t = &claim.token;
        if self.claims.get(t) != Some(&claim.score) {
            return false;
        }
        self.claims.remove(t);
        let pending = self.pending.remove(t);
        let next = match how {
            Settle::Done => {
                self.attempts.remove(t);
                match pending {
                    Some(p) => p,
                    None => {
                        self.remove(t);
                        return false;
                    }
                }
            }
            Settle::Defer => {
                self.attempts.remove(t);
                pending.map_or(at, |p| p.min(at))
            }
            Settle::Retry => at,
            Settle::Failed => {
                let n = self.attempts.entry(t.clone()).or_default();
                *n += 1;
                if *n >= max_attempts.max(1) {
                    self.remove(t);
                    *self.counts.entry("dead".into()).or_default() += 1;
                    return true;
                }
                at
            }
        };
        self.set_due(t, next);
        false
    }
}

/// How a claim settles (see `redis/lua/notify_settle.lua`).
#[derive(Clone, Copy)]
enum Settle {
    Done,
    Defer,
    Retry,
    Failed,
}

impl MemoryStore {
    pub(super) fn notify_state(&self) -> std::sync::MutexGuard<'_, NotifyState> {
        // Every mutation completes under the guard.
        self.notify.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl NotifyStore for MemoryStore {
    async fn outbox_push(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.notify_state().push(token, now.timestamp_millis());
        Ok(())
    }

    async fn outbox_claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let mut g = self.notify_state();
        let Some((ms, token)) = g.due.first().cloned() else {
            return Ok(None);
        };
        if ms > now.timestamp_millis() {
            return Ok(None);
        }
        let score = now.timestamp_millis() + lease.as_millis().max(1) as i64;
        g.set_due(&token, score);
        g.claims.insert(token.clone(), score);
        g.pending.remove(&token);
        Ok(Some(Claim { token, score }))
    }

    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let g = self.notify_state();
        Ok(g.due
            .first()
            .and_then(|(ms, _)| Utc.timestamp_millis_opt(*ms).single()))
    }

    async fn outbox_done(&self, claim: &Claim) -> Result<(), StoreError> {
        self.notify_state().settle(claim, Settle::Done, 0, 0);
        Ok(())
    }

    async fn outbox_defer(&self, claim: &Claim, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.notify_state()
            .settle(claim, Settle::Defer, at.timestamp_millis(), 0);
        Ok(())
    }

    async fn outbox_retry(&self, claim: &Claim, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.notify_state()
            .settle(claim, Settle::Retry, at.timestamp_millis(), 0);
        Ok(())
    }

    async fn outbox_failed(
        &self,
        claim: &Claim,
        at: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        Ok(self
            .notify_state()
            .settle(claim, Settle::Failed, at.timestamp_millis(), max_attempts))
    }

    async fn card(&self, token: &Token) -> Result<Option<String>, StoreError> {
        Ok(self.notify_state().get(&keys::notify_card(token)))
    }

    async fn save_card(&self, token: &Token, json: &str, ttl: Duration) -> Result<(), StoreError> {
        self.notify_state()
            .set(keys::notify_card(token), json.to_owned(), Some(ttl));
        Ok(())
    }

    async fn put_button(&self, id: &str, json: &str, ttl: Duration) -> Result<(), StoreError> {
        self.notify_state()
            .set(keys::notify_button(id), json.to_owned(), Some(ttl));
        Ok(())
    }

    async fn button(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.notify_state().get(&keys::notify_button(id)))
    }

    async fn take_button(&self, id: &str) -> Result<Option<String>, StoreError> {
        let mut g = self.notify_state();
        let key = keys::notify_button(id);
        let v = g.get(&key);
        g.values.remove(&key);
        Ok(v)
    }

    async fn lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut g = self.notify_state();
        let key = keys::notify_lease(name);
        match g.get(&key) {
            Some(cur) if cur != owner => Ok(false),
            _ => {
                g.set(key, owner.to_owned(), Some(ttl));
                Ok(true)
            }
        }
    }

    async fn release_poller_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut g = self.notify_state();
        let key = keys::notify_lease(name);
        if g.get(&key).as_deref() == Some(owner) {
            g.values.remove(&key);
        }
        Ok(())
    }

    async fn update_offset(&self, name: &str) -> Result<i64, StoreError> {
        let mut g = self.notify_state();
        Ok(g.get(&keys::notify_offset(name))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    async fn claim_update(&self, name: &str, owner: &str, id: i64) -> Result<bool, StoreError> {
        let mut g = self.notify_state();
        if g.get(&keys::notify_lease(name)).as_deref() != Some(owner) {
            return Ok(false);
        }
        let key = keys::notify_offset(name);
        let off: i64 = g.get(&key).and_then(|s| s.parse().ok()).unwrap_or(0);
        if id < off {
            return Ok(false);
        }
        g.set(key, (id + 1).to_string(), None);
        Ok(true)
    }

    async fn count(&self, field: &str, by: i64) -> Result<(), StoreError> {
        *self
            .notify_state()
            .counts
            .entry(field.to_owned())
            .or_default() += by;
        Ok(())
    }

    async fn counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        Ok(self.notify_state().counts.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Retention;

    #[tokio::test]
    async fn a_push_during_a_claim_waits_for_it_and_is_not_lost() {
        let s = MemoryStore::new(Retention::default());
        let t = Token::parse("DEC-00000000000A").unwrap();
        let now = Utc::now();
        let lease = Duration::from_secs(30);
        s.outbox_push(&t, now).await.unwrap();
        let claim = s.outbox_claim(now, lease).await.unwrap().expect("due");
        // Pushed again while claimed: no second worker can take it.
        s.outbox_push(&t, now).await.unwrap();
        assert_eq!(s.outbox_claim(now, lease).await.unwrap(), None);
        // Settled as done, the push made meanwhile makes it due again.
        s.outbox_done(&claim).await.unwrap();
        let again = s
            .outbox_claim(now, lease)
            .await
            .unwrap()
            .expect("due again");
        s.outbox_done(&again).await.unwrap();
        assert_eq!(s.outbox_next_due().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_lapsed_claim_is_taken_over_and_settles_nothing() {
        let s = MemoryStore::new(Retention::default());
        let t = Token::parse("DEC-00000000000B").unwrap();
        let now = Utc::now();
        let lease = Duration::from_secs(30);
        s.outbox_push(&t, now).await.unwrap();
        let dead = s.outbox_claim(now, lease).await.unwrap().expect("due");
        let later = now + chrono::Duration::seconds(31);
        let live = s
            .outbox_claim(later, lease)
            .await
            .unwrap()
            .expect("lease lapsed");
        s.outbox_done(&dead).await.unwrap();
        assert!(
            s.outbox_next_due().await.unwrap().is_some(),
            "still owned by the live claim"
        );
        assert!(
            s.outbox_failed(&live, later, 1).await.unwrap(),
            "one attempt allowed"
        );
        assert_eq!(s.counts().await.unwrap().get("dead"), Some(&1));
    }
}

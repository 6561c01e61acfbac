//! Pacing of chat messages: at most one message per `spacing` to each
//! chat, and at most one per `global` across them, per replica.
//!
//! **Documented limits.** Telegram: about one message a second to one
//! chat, 20 a minute to a group, 30 a second per bot. Slack:
//! `chat.postMessage` about one a second per channel (`chat.update` is
//! paced the same). The adapters pass each chat's spacing (Telegram groups,
//! negative ids, 3 s; other chats 1 s; Slack channels 1 s).
//!
//! **Why in-process, not `governor` or Redis.** Cards are sent by the outbox
//! worker, and one job is worked by one replica at a time, so the messages
//! of one decision never race across replicas; with N replicas sending at
//! once the global budget is N × `global`. The global spacing (40 ms, 25 a
//! second) leaves room under Telegram's 30 for a second replica's bursts,
//! which are rare (cards follow decisions, not traffic), and a 429 that
//! slips through is honoured anyway: its `retry_after` pauses the chat (or
//! every chat, when the 429 names none). A Redis-shared budget would add a
//! round trip to every message to guard against a case the 429 already
//! covers. `governor`'s keyed limiter keeps its own clock, which paused
//! tokio time cannot drive in tests, and a key map that grows until pruned
//! by hand; this one is a few lines on `tokio::time::Instant`.
//!
//! **Wait, bounded, never drop.** A message whose slot is within
//! the limiter's `max_wait` waits for it; a later slot (a long 429 pause)
//! is refused with how long to wait, and the outbox makes the job due
//! again then: no message is dropped, and no worker sleeps for minutes.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Chats remembered before past slots are forgotten.
const KEYS_KEPT: usize = 1024;
/// Times [`Limiter::acquire`] waits for a busy chat before giving up.
const ROUNDS: usize = 3;

/// What a message may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Go at this instant (the slot is taken).
    Go(Instant),
    /// The chat is busy until this instant; ask again then.
    ChatBusy(Instant),
    /// Come back after this long.
    Later(Duration),
}

/// Paces messages per key (a chat) and globally.
pub struct Limiter<K> {
    /// Least time between two messages of this replica, to any chat.
    global: Duration,
    /// Longest a message waits for its slot before the caller is told to
    /// come back later.
    max_wait: Duration,
    state: Mutex<State<K>>,
}

struct State<K> {
    /// The earliest the next message may go, to any chat.
    global_next: Instant,
    /// The earliest the next message may go, per chat.
    next: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(global: Duration, max_wait: Duration) -> Self {
        Limiter {
            global,
            max_wait,
            state: Mutex::new(State {
                global_next: Instant::now(),
                next: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a message to `key` may do at `now`: go at a slot it now holds
    /// ([`Slot::Go`]: the chat's next slot is `spacing` after it, everyone's
    /// `global` after it), wait for its chat to be free and ask again
    /// ([`Slot::ChatBusy`]: nothing taken, so a paused chat holds up no
    /// other chat), or come back later ([`Slot::Later`], beyond
    /// `max_wait`).
    pub fn reserve(&self, key: &K, spacing: Duration, now: Instant) -> Slot {
        let mut s = self.state();
        let chat = s.next.get(key).copied().unwrap_or(now);
        if chat > now {
            return if chat - now > self.max_wait {
                Slot::Later(chat - now)
            } else {
                Slot::ChatBusy(chat)
            };
        }
        let at = s.global_next.max(now);
        if at - now > self.max_wait {
            return Slot::Later(at - now);
        }
        s.global_next = at + self.global;
        if s.next.len() >= KEYS_KEPT && !s.next.contains_key(key) {
            s.next.retain(|_, next| *next > now);
        }
        s.next.insert(key.clone(), at + spacing);
        Slot::Go(at)
    }

    /// Waits for the next slot to `key` (see [`Limiter::reserve`]); Err:
    /// come back after this long.
    pub async fn acquire(&self, key: &K, spacing: Duration) -> Result<(), Duration> {
        // Bounded: each round waits at most `max_wait`; a chat taken again
        // by someone else every time is told to come back later.
        for _ in 0..ROUNDS {
            match self.reserve(key, spacing, Instant::now()) {
                Slot::Go(at) => {
                    tokio::time::sleep_until(at).await;
                    return Ok(());
                }
                Slot::ChatBusy(at) => tokio::time::sleep_until(at).await,
                Slot::Later(wait) => return Err(wait),
            }
        }
        Err(spacing)
    }

    /// Nothing goes to `key` before `until` (a 429's retry-after).
    pub fn pause(&self, key: &K, until: Instant) {
        let mut s = self.state();
        let next = s.next.entry(key.clone()).or_insert(until);
        *next = (*next).max(until);
    }

    /// Nothing goes to any chat before `until` (a 429 that names no chat).
    pub fn pause_all(&self, until: Instant) {
        let mut s = self.state();
        s.global_next = s.global_next.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const GLOBAL: Duration = Duration::from_millis(40);

    fn limiter() -> Limiter<i64> {
        Limiter::new(GLOBAL, Duration::from_secs(10))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_to_one_chat_goes_one_a_second() {
        let l = limiter();
        let t0 = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..5 {
            l.acquire(&1, SECOND).await.expect("slot");
            sent.push(Instant::now() - t0);
        }
        let want: Vec<Duration> = (0..5).map(|i| SECOND * i).collect();
        assert_eq!(sent, want);
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_gets_twenty_a_minute() {
        let l = limiter();
        let t0 = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..3 {
            l.acquire(&-100, 3 * SECOND).await.expect("slot");
            sent.push(Instant::now() - t0);
        }
        assert_eq!(sent, [Duration::ZERO, 3 * SECOND, 6 * SECOND]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_decisions_for_one_chat() {
        let l = limiter();
        let t0 = Instant::now();
        assert_eq!(l.reserve(&1, SECOND, t0), Slot::Go(t0));
        assert_eq!(l.reserve(&1, SECOND, t0), Slot::ChatBusy(t0 + SECOND));
        assert_eq!(
            l.reserve(&1, SECOND, t0),
            Slot::ChatBusy(t0 + SECOND),
            "nothing taken"
        );
        assert_eq!(l.reserve(&1, SECOND, t0 + SECOND), Slot::Go(t0 + SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn different_chats_share_the_global_budget() {
        let l = limiter();
        let t0 = Instant::now();
        let slots: Vec<Slot> = (0..30).map(|chat| l.reserve(&chat, SECOND, t0)).collect();
        let want: Vec<Slot> = (0..30).map(|i| Slot::Go(t0 + GLOBAL * i)).collect();
        // 30 chats in 29 × 40 ms: 25 a second, under Telegram's 30.
        assert_eq!(slots, want);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_its_chat_only() {
        let l = limiter();
        let t0 = Instant::now();
        l.pause(&1, t0 + 5 * SECOND);
        assert_eq!(l.reserve(&1, SECOND, t0), Slot::ChatBusy(t0 + 5 * SECOND));
        assert_eq!(l.reserve(&2, SECOND, t0), Slot::Go(t0), "another chat goes");
        l.pause(&1, t0 + 60 * SECOND);
        assert_eq!(l.reserve(&1, SECOND, t0), Slot::Later(60 * SECOND));
        assert_eq!(
            l.acquire(&1, SECOND).await,
            Err(60 * SECOND),
            "told, not made to wait"
        );
        assert_eq!(Instant::now(), t0);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_all_holds_every_chat() {
        let l = limiter();
        let t0 = Instant::now();
        l.pause_all(t0 + 60 * SECOND);
        assert_eq!(l.reserve(&3, SECOND, t0), Slot::Later(60 * SECOND));
        assert_eq!(
            l.reserve(&3, SECOND, t0 + 55 * SECOND),
            Slot::Go(t0 + 60 * SECOND)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn past_slots_are_forgotten_when_many_chats_were_seen() {
        let l = Limiter::new(Duration::ZERO, Duration::from_secs(10));
        let t0 = Instant::now();
        for chat in 0..KEYS_KEPT as i64 {
            assert!(matches!(l.reserve(&chat, SECOND, t0), Slot::Go(_)));
        }
        assert!(matches!(
            l.reserve(&-1, SECOND, t0 + 2 * SECOND),
            Slot::Go(_)
        ));
        assert_eq!(l.state().next.len(), 1, "only the live slot is kept");
    }
}

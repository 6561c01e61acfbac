//! Keeping a flood of refused calls from flooding the trail: each refusal
//! costs a Redis write, and a caller hammering the service with a bad token
//! must not buy one per call, nor grow the trail without bound.
//!
//! Refusals are counted per (peer IP, code) in windows of
//! [`RefusalLimits::window`]: the first [`RefusalLimits::burst`] of a
//! window are recorded one by one, the rest only counted, and the count is
//! recorded as one summary event ("N more refusals from <peer>") once the
//! window has closed. Refusals by a principal the server knows
//! (PERMISSION_DENIED, a stale version: FAILED_PRECONDITION) are rarer and
//! say more — who tried what — so they are limited too, but with
//! [`KNOWN_FACTOR`] times the burst. The map of peers is bounded
//! ([`MAX_PEERS`]); the least recently refused is evicted, its count
//! summarised first, so no refusal goes uncounted.
//!
//! Pure: the caller passes the time and writes the events.

use lru::LruCache;
use std::num::NonZeroUsize;
use std::time::Duration;

/// How many times the burst a refusal by a known principal gets.
pub const KNOWN_FACTOR: u32 = 10;

/// Peers (IP, code) tracked at once.
pub const MAX_PEERS: NonZeroUsize = NonZeroUsize::new(4096).expect("non-zero");

/// How many refusals are recorded one by one, per peer and code, per
/// window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalLimits {
    /// Refusals of unknown callers recorded one by one per (peer IP,
    /// code) and window; 0 records every one (no limit).
    pub burst: u32,
    /// The window the burst is counted in, and over which a summary
    /// counts the rest.
    pub window: Duration,
}

impl Default for RefusalLimits {
    fn default() -> Self {
        RefusalLimits {
            burst: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// Whether a refusal is recorded on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Record,
    /// Counted, to be summarised when its window closes.
    Count,
}

/// Refusals counted but not recorded one by one: one summary event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The peer's IP (or the address as given when it has none).
    pub peer: String,
    /// The gRPC code's canonical name.
    pub code: String,
    /// How many refusals were only counted.
    pub count: u64,
    /// The window they fell in, ms since the epoch.
    pub from_ms: u64,
    pub to_ms: u64,
}

impl Summary {
    /// The summary event's detail.
    pub fn detail(&self) -> String {
        format!(
            "{} more refusals ({}) from {} in the {}s window from {} (counted, not recorded one by one)",
            self.count,
            self.code,
            self.peer,
            (self.to_ms.saturating_sub(self.from_ms)) / 1000,
            self.from_ms
        )
    }
}

#[derive(Debug)]
struct Window {
    start_ms: u64,
    recorded: u32,
    counted: u64,
}

/// The per-peer counts of one replica.
#[derive(Debug)]
pub struct RefusalLimiter {
    limits: RefusalLimits,
    peers: LruCache<(String, String), Window>,
}

/// The IP part of a peer address (`10.0.0.1:5123` → `10.0.0.1`): the port
/// changes with every connection, the caller does not.
pub fn peer_ip(peer: &str) -> String {
    match peer.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().to_string(),
        Err(_) => peer.to_owned(),
    }
}

impl RefusalLimiter {
    pub fn new(limits: RefusalLimits) -> Self {
        RefusalLimiter {
            limits,
            peers: LruCache::new(MAX_PEERS),
        }
    }

    fn window_ms(&self) -> u64 {
        (self.limits.window.as_millis() as u64).max(1)
    }

    /// Whether the refusal of `code` from `peer` at `now_ms` is recorded
    /// on its own (`known`: by a principal the server knows), and the
    /// summaries that are due because of it (a closed window of the same
    /// peer, or a peer evicted to make room).
    pub fn admit(
        &mut self,
        now_ms: u64,
        peer: &str,
        code: &str,
        known: bool,
    ) -> (Admit, Vec<Summary>) {
        if self.limits.burst == 0 {
            return (Admit::Record, Vec::new());
        }
        let burst = if known {
            self.limits.burst.saturating_mul(KNOWN_FACTOR)
        } else {
            self.limits.burst
        };
        let window = self.window_ms();
        let key = (peer_ip(peer), code.to_owned());
        let mut due = Vec::new();
        if let Some(w) = self.peers.get_mut(&key) {
            if now_ms >= w.start_ms + window {
                if w.counted > 0 {
                    due.push(summary(&key, w, window));
                }
                *w = Window {
                    start_ms: now_ms,
                    recorded: 0,
                    counted: 0,
                };
            }
            let admit = if w.recorded < burst {
                w.recorded += 1;
                Admit::Record
            } else {
                w.counted += 1;
                Admit::Count
            };
            return (admit, due);
        }
        let fresh = Window {
            start_ms: now_ms,
            recorded: 1,
            counted: 0,
        };
        if let Some((old_key, old)) = self.peers.push(key, fresh)
            && old.counted > 0
        {
            due.push(summary(&old_key, &old, window));
        }
        (Admit::Record, due)
    }

    /// The summaries of windows closed by `now_ms` (their peers forgotten:
    /// a quiet peer starts afresh).
    pub fn due(&mut self, now_ms: u64) -> Vec<Summary> {
        let window = self.window_ms();
        let closed: Vec<(String, String)> = self
            .peers
            .iter()
            .filter(|(_, w)| now_ms >= w.start_ms + window)
            .map(|(k, _)| k.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|k| {
                let w = self.peers.pop(&k)?;
                (w.counted > 0).then(|| summary(&k, &w, window))
            })
            .collect()
    }

    /// Every pending count, windows closed or not (at shutdown).
    pub fn drain(&mut self) -> Vec<Summary> {
        let window = self.window_ms();
        let mut out = Vec::new();
        while let Some((k, w)) = self.peers.pop_lru() {
            if w.counted > 0 {
                out.push(summary(&k, &w, window));
            }
        }
        out
    }
}

fn summary(key: &(String, String), w: &Window, window: u64) -> Summary {
    Summary {
        peer: key.0.clone(),
        code: key.1.clone(),
        count: w.counted,
        from_ms: w.start_ms,
        to_ms: w.start_ms + window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32) -> RefusalLimiter {
        RefusalLimiter::new(RefusalLimits {
            burst,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn the_burst_is_recorded_the_rest_summarised_when_the_window_closes() {
        let mut l = limiter(3);
        let mut recorded = 0;
        for i in 0..1000 {
            let (a, due) = l.admit(i, "10.0.0.1:4000", "UNAUTHENTICATED", false);
            assert!(due.is_empty());
            recorded += (a == Admit::Record) as u32;
        }
        assert_eq!(recorded, 3);
        assert!(l.due(59_999).is_empty(), "the window is still open");
        let due = l.due(60_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 997);
        assert_eq!(due[0].peer, "10.0.0.1");
        assert!(l.due(200_000).is_empty(), "summarised once");
    }

    #[test]
    fn peers_codes_and_known_principals_are_counted_apart() {
        let mut l = limiter(2);
        let rec = |l: &mut RefusalLimiter, peer, code, known| {
            (0..100)
                .filter(|_| l.admit(0, peer, code, known).0 == Admit::Record)
                .count()
        };
        assert_eq!(rec(&mut l, "10.0.0.1:1", "UNAUTHENTICATED", false), 2);
        assert_eq!(
            rec(&mut l, "10.0.0.1:2", "UNAUTHENTICATED", false),
            0,
            "same IP, another port"
        );
        assert_eq!(rec(&mut l, "10.0.0.2:1", "UNAUTHENTICATED", false), 2);
        assert_eq!(rec(&mut l, "10.0.0.1:1", "PERMISSION_DENIED", true), 20);
        let mut due = l.drain();
        due.sort_by(|a, b| (&a.peer, &a.code).cmp(&(&b.peer, &b.code)));
        let counts: Vec<u64> = due.iter().map(|s| s.count).collect();
        assert_eq!(counts, vec![80, 198, 98]);
    }

    #[test]
    fn an_evicted_peer_is_summarised_not_lost() {
        let mut l = limiter(1);
        l.admit(0, "10.9.9.9:1", "UNAUTHENTICATED", false);
        l.admit(0, "10.9.9.9:1", "UNAUTHENTICATED", false);
        let mut evicted = Vec::new();
        for i in 0..MAX_PEERS.get() as u32 {
            let peer = format!("10.{}.{}.{}:1", i >> 16, (i >> 8) & 255, i & 255);
            evicted.extend(l.admit(1, &peer, "UNAUTHENTICATED", false).1);
        }
        assert_eq!(evicted.len(), 1);
        assert_eq!(
            (evicted[0].peer.as_str(), evicted[0].count),
            ("10.9.9.9", 1)
        );
    }

    #[test]
    fn a_burst_of_zero_records_everything() {
        let mut l = limiter(0);
        assert!((0..100).all(|_| l.admit(0, "p", "UNAUTHENTICATED", false).0 == Admit::Record));
        assert!(l.drain().is_empty());
    }
}

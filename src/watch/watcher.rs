//! The two watch streams, built on the hub and the store.

use super::hub::{Filter, Hub, SharedChange, SharedDecision, Subscription};
use crate::clock::Clock;
use crate::domain::{Decision, DecisionState, Token, Violations};
use crate::error_code::ErrorCode;
use crate::manager::{DecisionManager, ManagerError};
use crate::store::{Store, StoreError};
use futures::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// How often a decision watcher re-reads its decision even when nothing
/// arrived: a safety net should a feed entry ever be lost (for example
/// trimmed from the stream while a replica was disconnected).
const RESYNC: Duration = Duration::from_secs(15);

/// Why a watch stream ended early.
#[derive(Debug, Error)]
pub enum StreamEnd {
    #[error("the server is shutting down; reconnect and resume with after_version={0}")]
    ShuttingDown(u64),
    #[error("this watcher fell more than {0} changes behind and was cut off; reconnect")]
    Overflow(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StreamEnd {
    /// What kind of failure this is; the stream's final status derives
    /// from it.
    pub fn code(&self) -> ErrorCode {
        match self {
            StreamEnd::ShuttingDown(_) => ErrorCode::Unavailable,
            StreamEnd::Overflow(_) => ErrorCode::ResourceExhausted,
            StreamEnd::Store(e) => e.code(),
        }
    }
}

/// One message of a `WatchDecision` stream.
#[derive(Debug, Clone)]
pub enum Sent {
    /// A change published to every watcher of the token: its message was
    /// encoded once, for all of them.
    Shared(SharedDecision),
    /// A message only this stream sends, so encoded by it: the snapshot, a
    /// version re-read from the store (resume, catch-up) or the final
    /// EXPIRED message.
    Own(Arc<Decision>),
}

/// What a watch needs from the rest of the server.
#[derive(Clone)]
pub struct WatchContext {
    pub hub: Arc<Hub>,
    pub decisions: Arc<DecisionManager>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: CancellationToken,
}

fn until(clock: &dyn Clock, at: chrono::DateTime<chrono::Utc>) -> Duration {
    (at - clock.now()).to_std().unwrap_or(Duration::ZERO)
}

/// `WatchDecision`: the snapshot (or every version after `after_version`),
/// then each change exactly once and in version order, until a terminal
/// state or expiry. The subscription is taken before the snapshot is read,
/// so no change can fall between them; duplicates are dropped by version
/// and gaps (a full buffer, a lost feed entry) are filled from the store.
pub async fn watch_decision(
    ctx: WatchContext,
    token: Token,
    after_version: u64,
) -> Result<BoxStream<'static, Result<Sent, StreamEnd>>, ManagerError> {
    let (mut sub, current, initial) = start(&ctx, &token, after_version).await?;
    Ok(Box::pin(async_stream::stream! {
        let mut pos = Position { last: after_version, latest: Arc::new(current) };
        for d in initial {
            let d = Arc::new(d);
            if pos.advance(&d) {
                yield Ok(Sent::Own(d));
            }
        }
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        while !pos.finished(&*ctx.clock) {
            let analyzing = pos.latest.state == DecisionState::Analyzing;
            let wake_in = pos.wake_in(&*ctx.clock);
            let catch_up = match next_wake(&ctx, &mut sub, &mut resync, wake_in).await {
                Wake::Shutdown => {
                    yield Err(StreamEnd::ShuttingDown(pos.last));
                    break;
                }
                Wake::Closed => break,
                Wake::Change(p) if p.value.version <= pos.last => false,
                Wake::Change(p) if p.value.version == pos.last + 1 => {
                    if pos.advance(&p.value) {
                        yield Ok(Sent::Shared(p));
                    }
                    false
                }
                // A gap, a full buffer or the periodic resync.
                Wake::Change(_) | Wake::CatchUp => true,
                Wake::Timer if analyzing => {
                    // Finishes an abandoned analysis (or reads the result);
                    // the change then arrives as usual. Boxed: the future
                    // that may finish an analysis is several KiB, and
                    // inline it would size every idle stream's state.
                    if let Err(e) = Box::pin(ctx.decisions.get(&token)).await {
                        tracing::warn!(%token, error = %e, "watch could not recover an analysis");
                    }
                    true
                }
                Wake::Timer => {
                    // Expired: one last message, rendered EXPIRED.
                    yield Ok(Sent::Own(Arc::clone(&pos.latest)));
                    break;
                }
            };
            if catch_up {
                sub.lagged.store(false, Ordering::Release);
                match ctx.store.decision_versions(&token, pos.last).await {
                    Ok(missed) => {
                        for d in missed {
                            let d = Arc::new(d);
                            if pos.advance(&d) {
                                yield Ok(Sent::Own(d));
                            }
                        }
                    }
                    Err(e) => {
                        yield Err(StreamEnd::Store(e));
                        break;
                    }
                }
            }
        }
        drop(sub);
    }))
}

/// Subscribes, then reads what the stream starts with: the decision now,
/// and the versions to send first (the snapshot, or every version after
/// `after_version`).
async fn start(
    ctx: &WatchContext,
    token: &Token,
    after_version: u64,
) -> Result<(Subscription<SharedDecision>, Decision, Vec<Decision>), ManagerError> {
    let sub = ctx
        .hub
        .subscribe(token)
        .map_err(|e| ManagerError::ResourceExhausted(e.to_string()))?;
    let current = ctx.decisions.get(token).await?;
    if after_version > current.version {
        let mut v = Violations::new();
        v.add(
            "after_version",
            format!(
                "is ahead of the decision, which is at version {}",
                current.version
            ),
        );
        return Err(v.into());
    }
    let initial = if after_version == 0 {
        vec![current.clone()]
    } else {
        ctx.store.decision_versions(token, after_version).await?
    };
    Ok((sub, current, initial))
}

/// Where a `WatchDecision` stream stands: the last version sent and the
/// decision as of it (shared with the hub's change, never copied).
struct Position {
    last: u64,
    latest: Arc<Decision>,
}

impl Position {
    /// Whether `d` is newer than anything sent (it is then the latest);
    /// false for a duplicate.
    fn advance(&mut self, d: &Arc<Decision>) -> bool {
        let newer = d.version > self.last;
        if newer {
            self.last = d.version;
            self.latest = Arc::clone(d);
        }
        newer
    }

    /// Nothing more will change: a terminal state, or expired.
    fn finished(&self, clock: &dyn Clock) -> bool {
        self.latest.state.is_terminal() || self.latest.is_expired(clock.now())
    }

    /// When to wake without a change: at expiry (READY and earlier), or at
    /// the analysis deadline to finish an abandoned analysis.
    fn wake_in(&self, clock: &dyn Clock) -> Duration {
        let expiry = until(clock, self.latest.expires_at);
        if self.latest.state == DecisionState::Analyzing {
            expiry.min(until(clock, self.latest.analysis_deadline) + Duration::from_millis(5))
        } else {
            expiry
        }
    }
}

/// What woke a `WatchDecision` stream.
enum Wake {
    Shutdown,
    Change(SharedDecision),
    /// The hub dropped the subscription.
    Closed,
    /// Re-read from the store: the buffer overflowed, or the resync tick.
    CatchUp,
    /// `wake_in` passed without a change.
    Timer,
}

/// Waits for the next thing a `WatchDecision` stream must act on;
/// shutdown first.
async fn next_wake(
    ctx: &WatchContext,
    sub: &mut Subscription<SharedDecision>,
    resync: &mut tokio::time::Interval,
    wake_in: Duration,
) -> Wake {
    tokio::select! {
        biased;
        _ = ctx.shutdown.cancelled() => Wake::Shutdown,
        ev = sub.rx.recv() => ev.map_or(Wake::Closed, Wake::Change),
        _ = sub.wake.notified() => Wake::CatchUp,
        _ = resync.tick() => Wake::CatchUp,
        _ = tokio::time::sleep(wake_in) => Wake::Timer,
    }
}

/// `WatchDecisions`: every change matching `filter` (decisions, and
/// incidents when it asks), as it happens, for as long as the client
/// listens. A watcher that falls too far behind is cut off (see the module
/// docs).
pub fn watch_all(
    ctx: WatchContext,
    filter: Filter,
) -> Result<BoxStream<'static, Result<SharedChange, StreamEnd>>, ManagerError> {
    let mut sub = ctx
        .hub
        .subscribe_all(filter)
        .map_err(|e| ManagerError::ResourceExhausted(e.to_string()))?;
    Ok(Box::pin(async_stream::stream! {
        loop {
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => {
                    yield Err(StreamEnd::ShuttingDown(0));
                    break;
                }
                _ = sub.wake.notified() => {
                    if sub.lagged.load(Ordering::Acquire) {
                        crate::metrics::watcher_dropped(crate::metrics::WatcherDropped::Overflow);
                        yield Err(StreamEnd::Overflow(sub.rx.max_capacity()));
                        break;
                    }
                }
                ev = sub.rx.recv() => match ev {
                    Some(change) => yield Ok(change),
                    None => break,
                },
            }
        }
        drop(sub);
    }))
}

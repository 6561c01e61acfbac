//! The two watch streams, built on the hub and the store.

use super::hub::{Filter, Hub, Subscription};
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
) -> Result<BoxStream<'static, Result<Decision, StreamEnd>>, ManagerError> {
    let mut sub: Subscription = ctx
        .hub
        .subscribe(&token)
        .map_err(|e| ManagerError::ResourceExhausted(e.to_string()))?;
    let current = ctx.decisions.get(&token).await?;
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
        ctx.store.decision_versions(&token, after_version).await?
    };
    Ok(Box::pin(async_stream::stream! {
        let mut last = after_version;
        let mut latest = current;
        for d in initial {
            if d.version > last {
                last = d.version;
                latest = d.clone();
                yield Ok(d);
            }
        }
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        loop {
            if latest.state.is_terminal() || latest.is_expired(ctx.clock.now()) {
                break;
            }
            // Wake at expiry (READY and earlier), or at the analysis
            // deadline to finish an abandoned analysis.
            let mut wake_in = until(&*ctx.clock, latest.expires_at);
            let analyzing = latest.state == DecisionState::Analyzing;
            if analyzing {
                wake_in = wake_in.min(until(&*ctx.clock, latest.analysis_deadline) + Duration::from_millis(5));
            }
            let mut catch_up = false;
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => {
                    yield Err(StreamEnd::ShuttingDown(last));
                    break;
                }
                ev = sub.rx.recv() => match ev {
                    Some(d) if d.version <= last => {}
                    Some(d) if d.version == last + 1 => {
                        last = d.version;
                        latest = (*d).clone();
                        yield Ok(latest.clone());
                    }
                    Some(_) => catch_up = true,
                    None => break,
                },
                _ = sub.wake.notified() => catch_up = true,
                _ = resync.tick() => catch_up = true,
                _ = tokio::time::sleep(wake_in) => {
                    if analyzing {
                        // Finishes an abandoned analysis (or reads the
                        // result); the change then arrives as usual.
                        if let Err(e) = ctx.decisions.get(&token).await {
                            tracing::warn!(%token, error = %e, "watch could not recover an analysis");
                        }
                        catch_up = true;
                    } else {
                        // Expired: one last message, rendered EXPIRED.
                        yield Ok(latest.clone());
                        break;
                    }
                }
            }
            if catch_up {
                sub.lagged.store(false, Ordering::Release);
                match ctx.store.decision_versions(&token, last).await {
                    Ok(missed) => {
                        for d in missed {
                            if d.version > last {
                                last = d.version;
                                latest = d.clone();
                                yield Ok(d);
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

/// `WatchDecisions`: every change matching `filter`, as it happens, for as
/// long as the client listens. A watcher that falls too far behind is cut
/// off (see the module docs).
pub fn watch_all(
    ctx: WatchContext,
    filter: Filter,
) -> Result<BoxStream<'static, Result<Decision, StreamEnd>>, ManagerError> {
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
                        yield Err(StreamEnd::Overflow(sub.rx.max_capacity()));
                        break;
                    }
                }
                ev = sub.rx.recv() => match ev {
                    Some(d) => yield Ok((*d).clone()),
                    None => break,
                },
            }
        }
        drop(sub);
    }))
}

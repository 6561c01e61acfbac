//! A concurrency limit whose waiting happens inside the response future.
//!
//! tower's `ConcurrencyLimit` waits for a slot in `poll_ready`, where no
//! timeout layer (tower's or ours) looks: a call queued behind a hung
//! backend would wait for a slot with no bound. Here the slot is acquired
//! inside the response future, so the timeout above it bounds queueing and
//! the work together, and dropping the call gives the slot back.

use super::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};

/// At most `max` calls of the inner service in flight across all clones.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    slots: Arc<Semaphore>,
}

impl<S> ConcurrencyLimit<S> {
    pub fn new(inner: S, max: usize) -> Self {
        ConcurrencyLimit {
            inner,
            slots: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }

    /// Free slots right now (for tests and metrics).
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

impl<S, Req> Service<Req> for ConcurrencyLimit<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    /// Always ready: readiness of the inner service is awaited after a slot
    /// is held, inside the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let slots = Arc::clone(&self.slots);
        // The clone is the one we drive; it is made ready below, after the
        // slot is ours (tower's advice for services that are cloned per call).
        let inner = self.inner.clone();
        Box::pin(async move {
            // The semaphore is never closed (we own the only handle that
            // could close it), so this is always `Ok`.
            let _slot = slots.acquire_owned().await.ok();
            inner.oneshot(req).await
        })
    }
}

/// Builds [`ConcurrencyLimit`]s sharing one set of slots.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    slots: Arc<Semaphore>,
}

impl ConcurrencyLimitLayer {
    pub fn new(max: usize) -> Self {
        ConcurrencyLimitLayer {
            slots: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit {
            inner,
            slots: Arc::clone(&self.slots),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_flight_and_a_dropped_call_frees_its_slot() {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let inner = tower::service_fn(move |_: ()| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(cur, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ()>(())
            }
        });
        let svc = ConcurrencyLimitLayer::new(3).layer(inner);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            set.spawn(svc.clone().oneshot(()));
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap(), Ok(()));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);

        // A call that is dropped while holding a slot gives it back.
        let hung = tower::service_fn(|_: ()| std::future::pending::<Result<(), ()>>());
        let svc = ConcurrencyLimit::new(hung, 1);
        let call = svc.clone().oneshot(());
        let r = tokio::time::timeout(Duration::from_millis(5), call).await;
        assert!(r.is_err());
        assert_eq!(svc.available(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_slot_is_bounded_by_an_outer_timeout() {
        let hung =
            tower::service_fn(|_: ()| std::future::pending::<Result<(), super::super::Elapsed>>());
        let limited = ConcurrencyLimit::new(hung, 1);
        let first = tokio::spawn(limited.clone().oneshot(()));
        tokio::task::yield_now().await;
        let svc = super::super::TimeoutLayer(Duration::from_millis(50)).layer(limited);
        let started = tokio::time::Instant::now();
        let r = svc.oneshot(()).await;
        assert_eq!(r, Err(super::super::Elapsed(Duration::from_millis(50))));
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        first.abort();
    }
}

//! A circuit breaker, which tower does not have.
//!
//! After `threshold` consecutive failed calls the circuit *opens*: calls
//! fail at once with [`CircuitOpen`] and cost the backend nothing. After
//! `cooldown` one call is let through as a *probe*; if it succeeds the
//! circuit closes, if it fails (or is dropped unfinished) the circuit opens
//! for another cool-down. While the probe is in flight every other call
//! fails fast. State is shared by every clone of the service.
//!
//! The decision to admit a call is taken in `poll_ready` and kept for the
//! `call` that follows, so a rejected call never reserves anything in the
//! layers below.

use super::BoxFuture;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service};

/// The circuit is open: the call was refused without reaching the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen;

impl std::fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("circuit breaker open")
    }
}

impl std::error::Error for CircuitOpen {}

/// What the breaker is doing, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` consecutive ones have failed.
    Closed { failures: u32 },
    /// Calls fail fast until the cool-down ends.
    Open,
    /// One probe is in flight; other calls fail fast.
    HalfOpen,
}

#[derive(Debug)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

#[derive(Debug)]
struct Shared {
    phase: Mutex<Phase>,
    threshold: u32,
    cooldown: Duration,
}

/// How one call was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
    Reject,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // Every update below is a single assignment, so a poisoned lock
        // still holds a consistent phase.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self) -> Admission {
        let mut phase = self.lock();
        match *phase {
            Phase::Closed { .. } => Admission::Normal,
            Phase::Open { until } if Instant::now() < until => Admission::Reject,
            Phase::Open { .. } => {
                *phase = Phase::Probing;
                Admission::Probe
            }
            Phase::Probing => Admission::Reject,
        }
    }

    fn record(&self, admission: Admission, ok: bool) {
        let mut phase = self.lock();
        let now = Instant::now();
        // A cool-down too long to add is a day: still "open", never a panic.
        let until = now
            .checked_add(self.cooldown)
            .unwrap_or_else(|| now + Duration::from_secs(86_400));
        let reopen = Phase::Open { until };
        match (admission, ok) {
            (Admission::Probe, true) => *phase = Phase::Closed { failures: 0 },
            (Admission::Probe, false) => *phase = reopen,
            (Admission::Normal, true) => {
                if let Phase::Closed { failures } = &mut *phase {
                    *failures = 0;
                }
            }
            (Admission::Normal, false) => {
                if let Phase::Closed { failures } = *phase {
                    let failures = failures.saturating_add(1);
                    *phase = if failures >= self.threshold {
                        reopen
                    } else {
                        Phase::Closed { failures }
                    };
                }
            }
            (Admission::Reject, _) => {}
        }
    }

    fn state(&self) -> BreakerState {
        match *self.lock() {
            Phase::Closed { failures } => BreakerState::Closed { failures },
            Phase::Open { .. } => BreakerState::Open,
            Phase::Probing => BreakerState::HalfOpen,
        }
    }
}

/// Records a call's outcome exactly once. A probe dropped before it
/// finished (its caller gave up) counts as a failed probe, so the circuit
/// can never stay half-open for ever; a normal call dropped unfinished
/// counts as nothing.
struct Outcome {
    shared: Arc<Shared>,
    admission: Admission,
    recorded: bool,
}

impl Outcome {
    fn record(mut self, ok: bool) {
        self.recorded = true;
        self.shared.record(self.admission, ok);
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.recorded && self.admission == Admission::Probe {
            self.shared.record(Admission::Probe, false);
        }
    }
}

/// The breaker service. See the module docs.
pub struct CircuitBreaker<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The admission taken in `poll_ready`, used by the next `call`.
    admitted: Option<Outcome>,
}

impl<S: Clone> Clone for CircuitBreaker<S> {
    /// A clone shares the state but not an admission in progress.
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            admitted: None,
        }
    }
}

impl<S> CircuitBreaker<S> {
    /// Opens after `threshold` consecutive failures (at least 1), probes
    /// after `cooldown`.
    pub fn new(inner: S, threshold: u32, cooldown: Duration) -> Self {
        BreakerLayer::new(threshold, cooldown).layer(inner)
    }

    pub fn state(&self) -> BreakerState {
        self.shared.state()
    }

    fn admit(&self) -> Outcome {
        Outcome {
            shared: Arc::clone(&self.shared),
            admission: self.shared.admit(),
            recorded: false,
        }
    }
}

impl<S, Req> Service<Req> for CircuitBreaker<S>
where
    S: Service<Req>,
    S::Error: From<CircuitOpen>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.admitted.is_none() {
            self.admitted = Some(self.admit());
        }
        match &self.admitted {
            Some(o) if o.admission == Admission::Reject => Poll::Ready(Ok(())),
            _ => self.inner.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let outcome = match self.admitted.take() {
            Some(o) => o,
            // `call` without `poll_ready` breaks the Service contract, but
            // deciding here keeps the breaker honest anyway.
            None => self.admit(),
        };
        if outcome.admission == Admission::Reject {
            return Box::pin(std::future::ready(Err(CircuitOpen.into())));
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            outcome.record(result.is_ok());
            result
        })
    }
}

/// Builds [`CircuitBreaker`]s sharing one circuit.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    shared: Arc<Shared>,
}

impl BreakerLayer {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        BreakerLayer {
            shared: Arc::new(Shared {
                phase: Mutex::new(Phase::Closed { failures: 0 }),
                threshold: threshold.max(1),
                cooldown,
            }),
        }
    }

    /// The state of the circuit every service from this layer shares.
    pub fn state(&self) -> BreakerState {
        self.shared.state()
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            shared: Arc::clone(&self.shared),
            admitted: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tower::ServiceExt;

    #[derive(Debug, PartialEq)]
    enum E {
        Open,
        Down,
    }

    impl From<CircuitOpen> for E {
        fn from(_: CircuitOpen) -> Self {
            E::Open
        }
    }

    /// A backend that fails while `down` is set, counting the calls that
    /// reach it.
    fn backend() -> (
        impl Service<(), Response = (), Error = E, Future: Send> + Clone,
        Arc<AtomicBool>,
        Arc<AtomicUsize>,
    ) {
        let down = Arc::new(AtomicBool::new(true));
        let calls = Arc::new(AtomicUsize::new(0));
        let (d, c) = (down.clone(), calls.clone());
        let svc = tower::service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            let fail = d.load(Ordering::SeqCst);
            async move { if fail { Err(E::Down) } else { Ok(()) } }
        });
        (svc, down, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_fails_fast() {
        let (svc, _down, calls) = backend();
        let layer = BreakerLayer::new(3, Duration::from_secs(10));
        let svc = layer.layer(svc);
        for i in 1..=3 {
            assert_eq!(svc.clone().oneshot(()).await, Err(E::Down));
            let want = if i < 3 {
                BreakerState::Closed { failures: i }
            } else {
                BreakerState::Open
            };
            assert_eq!(layer.state(), want);
        }
        for _ in 0..100 {
            assert_eq!(svc.clone().oneshot(()).await, Err(E::Open));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "open costs the backend nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let (svc, down, _) = backend();
        let svc = CircuitBreaker::new(svc, 2, Duration::from_secs(10));
        assert_eq!(svc.clone().oneshot(()).await, Err(E::Down));
        down.store(false, Ordering::SeqCst);
        assert_eq!(svc.clone().oneshot(()).await, Ok(()));
        down.store(true, Ordering::SeqCst);
        assert_eq!(svc.clone().oneshot(()).await, Err(E::Down));
        assert_eq!(svc.state(), BreakerState::Closed { failures: 1 });
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_cooldown_closes_or_reopens_it() {
        let (svc, down, calls) = backend();
        let svc = CircuitBreaker::new(svc, 1, Duration::from_secs(10));
        assert_eq!(svc.clone().oneshot(()).await, Err(E::Down));
        assert_eq!(svc.state(), BreakerState::Open);

        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(svc.clone().oneshot(()).await, Err(E::Open));
        tokio::time::advance(Duration::from_secs(1)).await;
        // The probe fails: open for another cool-down.
        assert_eq!(svc.clone().oneshot(()).await, Err(E::Down));
        assert_eq!(svc.state(), BreakerState::Open);
        assert_eq!(svc.clone().oneshot(()).await, Err(E::Open));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        tokio::time::advance(Duration::from_secs(10)).await;
        down.store(false, Ordering::SeqCst);
        assert_eq!(svc.clone().oneshot(()).await, Ok(()));
        assert_eq!(svc.state(), BreakerState::Closed { failures: 0 });
        assert_eq!(svc.clone().oneshot(()).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_probe_at_a_time_and_a_dropped_probe_reopens() {
        let hung = tower::service_fn(|_: ()| std::future::pending::<Result<(), E>>());
        let layer = BreakerLayer::new(1, Duration::from_secs(1));
        let svc = layer.layer(hung);
        // Open it with one failure recorded through a failing clone.
        let failing = layer.layer(tower::service_fn(|_: ()| async { Err::<(), E>(E::Down) }));
        assert_eq!(failing.oneshot(()).await, Err(E::Down));
        tokio::time::advance(Duration::from_secs(1)).await;

        let probe = tokio::spawn(svc.clone().oneshot(()));
        tokio::task::yield_now().await;
        assert_eq!(layer.state(), BreakerState::HalfOpen);
        assert_eq!(svc.clone().oneshot(()).await, Err(E::Open));
        probe.abort();
        let _ = probe.await;
        assert_eq!(
            layer.state(),
            BreakerState::Open,
            "a dropped probe counts as failed"
        );
    }
}

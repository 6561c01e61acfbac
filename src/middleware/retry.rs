//! Retries of transient failures, under a budget.
//!
//! tower's `Retry` does the looping; this file is the [`RetryPolicy`] it
//! needs: only errors that say they are transient are retried (the error
//! type decides through [`Retryable`]), a server's `Retry-After` is honoured
//! when it is short enough to matter, at most `max_retries` per call, and
//! every retry is withdrawn from a shared [`TpsBudget`] so a struggling
//! backend sees at most a fixed share of extra load, never a retry storm.

use std::sync::Arc;
use std::time::Duration;
use tower::retry::Policy;
use tower::retry::budget::{Budget, TpsBudget};

/// What an error says about retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// Permanent: retrying would fail the same way.
    Never,
    /// Transient: retry after the policy's backoff.
    Backoff,
    /// Transient, and the server said when (`Retry-After`).
    After(Duration),
}

/// Errors that know whether they are worth retrying.
pub trait Retryable {
    fn retry_hint(&self) -> RetryHint;
}

/// Settings of a [`RetryPolicy`].
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// Retries per call at most (0 turns retrying off).
    pub max_retries: u32,
    /// Extra load the budget allows, as a share of calls (0.2 = 20 %).
    pub budget_ratio: f32,
    /// Retries always allowed per second, however low the traffic.
    pub min_per_sec: u32,
    /// The first backoff; each further retry waits twice as long.
    pub backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is
    /// returned (the caller's deadline would pass first anyway).
    pub max_retry_after: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_retries: 2,
            budget_ratio: 0.2,
            min_per_sec: 1,
            backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// The policy tower's `Retry` consults. Cloned per call (tower does that),
/// so `retries_left` and `deposited` are per call while the budget is shared.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    budget: Arc<TpsBudget>,
    settings: RetrySettings,
    retries_left: u32,
    next_backoff: Duration,
    deposited: bool,
}

impl RetryPolicy {
    pub fn new(settings: RetrySettings) -> Self {
        // The budget remembers the last 10 s of calls. tower takes the ratio
        // as is (0.1: one retry per ten calls) and asserts it lies in
        // 0..=1000, so it is clamped here rather than trusted.
        let ratio = if settings.budget_ratio.is_finite() {
            settings.budget_ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        RetryPolicy {
            budget: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                settings.min_per_sec.min(1_000_000),
                ratio,
            )),
            settings,
            retries_left: settings.max_retries,
            next_backoff: settings.backoff,
            deposited: false,
        }
    }
}

impl<Req: Clone, Res, E: Retryable> Policy<Req, Res, E> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        // Every call deposits once, on its first outcome: the budget is a
        // share of calls, not of attempts.
        if !self.deposited {
            self.deposited = true;
            self.budget.deposit();
        }
        let err = result.as_ref().err()?;
        let wait = match err.retry_hint() {
            RetryHint::Never => return None,
            RetryHint::Backoff => self.next_backoff,
            RetryHint::After(d) if d <= self.settings.max_retry_after => d,
            RetryHint::After(_) => return None,
        };
        if self.retries_left == 0 || !self.budget.withdraw() {
            return None;
        }
        self.retries_left -= 1;
        self.next_backoff = self.next_backoff.saturating_mul(2);
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Builds tower `Retry` services with one shared budget.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
}

impl RetryLayer {
    pub fn new(settings: RetrySettings) -> Self {
        RetryLayer {
            policy: RetryPolicy::new(settings),
        }
    }
}

impl<S> tower::Layer<S> for RetryLayer {
    type Service = tower::retry::Retry<RetryPolicy, S>;

    fn layer(&self, inner: S) -> Self::Service {
        tower::retry::Retry::new(self.policy.clone(), inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tower::{Layer, ServiceExt};

    #[derive(Debug, Clone, PartialEq)]
    enum E {
        Down,
        Busy(Duration),
        Bad,
    }

    impl Retryable for E {
        fn retry_hint(&self) -> RetryHint {
            match self {
                E::Down => RetryHint::Backoff,
                E::Busy(d) => RetryHint::After(*d),
                E::Bad => RetryHint::Never,
            }
        }
    }

    /// A service answering from a script (then `Ok`), counting calls.
    fn scripted(
        script: Vec<Result<u32, E>>,
    ) -> (
        impl tower::Service<u32, Response = u32, Error = E, Future: Send> + Clone,
        Arc<Mutex<usize>>,
    ) {
        let script = Arc::new(Mutex::new(script.into_iter()));
        let calls = Arc::new(Mutex::new(0));
        let c = calls.clone();
        let svc = tower::service_fn(move |x: u32| {
            *c.lock().unwrap() += 1;
            let next = script.lock().unwrap().next().unwrap_or(Ok(x));
            async move { next }
        });
        (svc, calls)
    }

    fn layer(max_retries: u32) -> RetryLayer {
        RetryLayer::new(RetrySettings {
            max_retries,
            ..RetrySettings::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_backoff() {
        let (svc, calls) = scripted(vec![Err(E::Down), Err(E::Down)]);
        let started = tokio::time::Instant::now();
        assert_eq!(layer(2).layer(svc).oneshot(5).await, Ok(5));
        assert_eq!(*calls.lock().unwrap(), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(100 + 200));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_and_exhausted_retries_are_returned() {
        let (svc, calls) = scripted(vec![Err(E::Bad)]);
        assert_eq!(layer(2).layer(svc).oneshot(5).await, Err(E::Bad));
        assert_eq!(*calls.lock().unwrap(), 1);

        let (svc, calls) = scripted(vec![Err(E::Down); 5]);
        assert_eq!(layer(2).layer(svc).oneshot(5).await, Err(E::Down));
        assert_eq!(*calls.lock().unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_unless_too_long() {
        let (svc, calls) = scripted(vec![Err(E::Busy(Duration::from_secs(2)))]);
        let started = tokio::time::Instant::now();
        assert_eq!(layer(2).layer(svc).oneshot(5).await, Ok(5));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(*calls.lock().unwrap(), 2);

        let long = E::Busy(Duration::from_secs(60));
        let (svc, calls) = scripted(vec![Err(long.clone())]);
        assert_eq!(layer(2).layer(svc).oneshot(5).await, Err(long));
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_caps_retries_across_calls() {
        // No reserve and no share: the budget never allows a retry.
        let layer = RetryLayer::new(RetrySettings {
            max_retries: 5,
            budget_ratio: 0.0,
            min_per_sec: 0,
            ..RetrySettings::default()
        });
        let (svc, calls) = scripted(vec![Err(E::Down); 10]);
        assert_eq!(layer.layer(svc).oneshot(1).await, Err(E::Down));
        assert_eq!(*calls.lock().unwrap(), 1);

        // A reserve of 1 retry a second (10 over the 10 s window), shared by
        // every clone: 20 failing calls get 10 retries between them.
        let layer = RetryLayer::new(RetrySettings {
            max_retries: 5,
            budget_ratio: 0.0,
            min_per_sec: 1,
            // Short, so the whole test stays inside the budget's window.
            backoff: Duration::from_millis(1),
            ..RetrySettings::default()
        });
        let (svc, calls) = scripted(vec![Err(E::Bad); 0]);
        let failing = tower::service_fn(move |x: u32| {
            let svc = svc.clone();
            async move {
                svc.oneshot(x).await?;
                Err::<u32, E>(E::Down)
            }
        });
        let svc = layer.layer(failing);
        for _ in 0..20 {
            assert_eq!(svc.clone().oneshot(1).await, Err(E::Down));
        }
        assert_eq!(*calls.lock().unwrap(), 20 + 10);
    }
}

//! Retries of transient failures, under a budget.
//!
//! tower's `Retry` does the looping; this file is the [`RetryPolicy`] it
//! needs: only errors that say they are transient are retried (the error
//! type decides through [`Retryable`]), a server's `Retry-After` is honoured
//! when it is short enough to matter, at most `max_retries` per call, and
//! every retry is withdrawn from a shared [`TpsBudget`] so a struggling
//! backend sees at most a fixed share of extra load, never a retry storm.
//!
//! Without a `Retry-After`, the wait is tower's jittered exponential
//! backoff (`ExponentialBackoffMaker`): `backoff`, doubling per retry up to
//! `max_backoff`, plus a random share of up to `jitter` times that, drawn
//! from a fresh generator per call, so calls that failed together do not
//! come back together.

use std::sync::Arc;
use std::time::Duration;
use tower::retry::Policy;
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::rng::HasherRng;

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
    /// The longest backoff, jitter included.
    pub max_backoff: Duration,
    /// The random share added to each backoff: up to `jitter` times it
    /// (0 turns jitter off; 1 waits between one and two times the backoff).
    pub jitter: f64,
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
            max_backoff: Duration::from_secs(2),
            jitter: 1.0,
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
    /// This call's backoff, made at its first retry (a fresh generator for
    /// each call: tower clones the generator with the maker).
    backoff: Option<ExponentialBackoff>,
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
            backoff: None,
            deposited: false,
        }
    }

    /// The next jittered exponential backoff of this call.
    fn next_backoff(&mut self) -> tokio::time::Sleep {
        let s = &self.settings;
        let backoff = self.backoff.get_or_insert_with(|| {
            // tower refuses a zero maximum, a maximum below the minimum and
            // a jitter outside 0..=100: normalised here, not trusted.
            let max = s.max_backoff.max(s.backoff).max(Duration::from_millis(1));
            let jitter = if s.jitter.is_finite() {
                s.jitter.clamp(0.0, 100.0)
            } else {
                0.0
            };
            // Cannot fail on the values above; tower's default otherwise.
            ExponentialBackoffMaker::new(s.backoff, max, jitter, HasherRng::default())
                .unwrap_or_default()
                .make_backoff()
        });
        backoff.next_backoff()
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
        let retry_after = match err.retry_hint() {
            RetryHint::Never => return None,
            RetryHint::Backoff => None,
            RetryHint::After(d) if d <= self.settings.max_retry_after => Some(d),
            RetryHint::After(_) => return None,
        };
        if self.retries_left == 0 || !self.budget.withdraw() {
            return None;
        }
        self.retries_left -= 1;
        Some(match retry_after {
            Some(d) => tokio::time::sleep(d),
            None => self.next_backoff(),
        })
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
    async fn transient_errors_are_retried_with_exponential_backoff() {
        let (svc, calls) = scripted(vec![Err(E::Down), Err(E::Down)]);
        let started = tokio::time::Instant::now();
        let exact = RetryLayer::new(RetrySettings {
            max_retries: 2,
            jitter: 0.0,
            ..RetrySettings::default()
        });
        assert_eq!(exact.layer(svc).oneshot(5).await, Ok(5));
        assert_eq!(*calls.lock().unwrap(), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(100 + 200));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_adds_up_to_the_backoff_again_and_differs_between_calls() {
        let mut waits = std::collections::HashSet::new();
        for _ in 0..10 {
            let (svc, _) = scripted(vec![Err(E::Down), Err(E::Down)]);
            let started = tokio::time::Instant::now();
            assert_eq!(layer(2).layer(svc).oneshot(5).await, Ok(5));
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(300), "{waited:?}");
            assert!(waited <= Duration::from_millis(600), "{waited:?}");
            waits.insert(waited);
        }
        assert!(waits.len() > 1, "calls that failed together spread out");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped() {
        let (svc, _) = scripted(vec![Err(E::Down); 4]);
        let started = tokio::time::Instant::now();
        let capped = RetryLayer::new(RetrySettings {
            max_retries: 4,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            ..RetrySettings::default()
        });
        assert_eq!(capped.layer(svc).oneshot(5).await, Ok(5));
        // 100..200, 200..250, then 250 and 250.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(100 + 200 + 250 + 250),
            "{waited:?}"
        );
        assert!(
            waited <= Duration::from_millis(200 + 250 + 250 + 250),
            "{waited:?}"
        );
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

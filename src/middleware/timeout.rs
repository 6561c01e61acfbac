//! A per-call timeout that keeps the inner service's error type.
//!
//! tower's `Timeout` turns every error into a `BoxError`; callers then have
//! to downcast to learn what happened. This one asks the error type to
//! absorb an [`Elapsed`] instead, so the engine keeps one typed error.

use super::BoxFuture;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// The call did not finish within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(pub Duration);

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer within {:?}", self.0)
    }
}

impl std::error::Error for Elapsed {}

/// Fails a call with [`Elapsed`] when its response future has not resolved
/// after `after`. Readiness is not timed: the layers below are always ready
/// and do their waiting inside the response future.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    after: Duration,
}

impl<S> Timeout<S> {
    pub fn new(inner: S, after: Duration) -> Self {
        Timeout { inner, after }
    }
}

impl<S, Req> Service<Req> for Timeout<S>
where
    S: Service<Req>,
    S::Error: From<Elapsed>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let after = self.after;
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(after, fut).await {
                Ok(result) => result,
                Err(_) => Err(Elapsed(after).into()),
            }
        })
    }
}

/// Builds [`Timeout`]s.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer(pub Duration);

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::new(inner, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[derive(Debug, PartialEq)]
    enum E {
        Late(Duration),
        Inner,
    }

    impl From<Elapsed> for E {
        fn from(e: Elapsed) -> Self {
            E::Late(e.0)
        }
    }

    fn slow(delay: Duration) -> impl Service<u32, Response = u32, Error = E, Future: Send> + Clone {
        tower::service_fn(move |x: u32| async move {
            tokio::time::sleep(delay).await;
            if x == 0 { Err(E::Inner) } else { Ok(x) }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_fails_with_the_typed_error() {
        let svc = TimeoutLayer(Duration::from_millis(100)).layer(slow(Duration::from_secs(5)));
        let started = tokio::time::Instant::now();
        assert_eq!(
            svc.oneshot(1).await,
            Err(E::Late(Duration::from_millis(100)))
        );
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_call_passes_through_with_its_own_result() {
        let layer = TimeoutLayer(Duration::from_secs(1));
        let svc = layer.layer(slow(Duration::from_millis(10)));
        assert_eq!(svc.clone().oneshot(7).await, Ok(7));
        assert_eq!(svc.oneshot(0).await, Err(E::Inner));
    }
}

//! verdict's own tower layers, one per file, each generic over the inner
//! service and knowing nothing about the domain.
//!
//! They exist because tower's counterparts either change the error type to a
//! boxed error (timeout), wait in `poll_ready` where no timeout can see it
//! (concurrency limit), need a policy (retry) or do not exist at all
//! (circuit breaker). The LLM client stacks them with `ServiceBuilder`, outer
//! to inner: breaker → retry → timeout → concurrency limit → HTTP.

pub mod breaker;
pub mod concurrency;
pub mod retry;
pub mod timeout;

pub use breaker::{BreakerLayer, BreakerState, CircuitBreaker, CircuitOpen};
pub use concurrency::{ConcurrencyLimit, ConcurrencyLimitLayer};
pub use retry::{RetryHint, RetryLayer, RetryPolicy, Retryable};
pub use timeout::{Elapsed, Timeout, TimeoutLayer};

/// The boxed future every layer here returns: the calls they wrap are slow
/// network calls, so one allocation per call costs nothing measurable and
/// keeps each layer a few lines long.
pub type BoxFuture<T, E> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'static>>;

//! The engine layer's error: why an LLM did not produce a usable proposal.
//!
//! Nothing here is fatal: every variant ends with the expert proposal used
//! instead, and [`EngineError::fallback_reason`] is what the decision
//! records. Messages never carry the API key (it is never put into one).

use crate::domain::FallbackReason;
use crate::error_code::ErrorCode;
use crate::middleware::{CircuitOpen, Elapsed, RetryHint, Retryable};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum EngineError {
    /// The LLM could not be reached (connection refused, reset, DNS).
    #[error("LLM unreachable: {0}")]
    Connect(String),
    /// The LLM did not answer within the per-call timeout.
    #[error("LLM did not answer within {0:?}")]
    Timeout(Duration),
    /// The LLM answered with an HTTP error status.
    #[error("LLM answered HTTP {status}: {detail}")]
    Status {
        status: u16,
        /// From a `Retry-After` header (429 and 503).
        retry_after: Option<Duration>,
        /// The start of the error body, for logs.
        detail: String,
    },
    /// The response is not an OpenAI chat completion.
    #[error("LLM response is not a chat completion: {0}")]
    Protocol(String),
    /// The circuit breaker is open: the LLM was not called.
    #[error("LLM circuit breaker is open")]
    CircuitOpen,
    /// The answer does not parse into a proposal.
    #[error("LLM answer is not a valid proposal: {0}")]
    Invalid(String),
    /// The answer parses but the safety policy refuses it.
    #[error("LLM proposed an unsafe command: {0}")]
    Unsafe(String),
    /// The client cannot be built (a bad base URL): a configuration error,
    /// reported at startup.
    #[error("LLM client setup: {0}")]
    Setup(String),
}

impl EngineError {
    /// What kind of failure this is. An engine error never reaches a caller
    /// today (the expert answers instead); the code is what a future RPC
    /// that surfaces it (e.g. an LLM health check) would report.
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Connect(_) | EngineError::CircuitOpen => ErrorCode::Unavailable,
            EngineError::Timeout(_) => ErrorCode::Timeout,
            EngineError::Status { status, .. } if *status == 429 || *status >= 500 => {
                ErrorCode::Unavailable
            }
            EngineError::Status { .. }
            | EngineError::Protocol(_)
            | EngineError::Invalid(_)
            | EngineError::Unsafe(_)
            | EngineError::Setup(_) => ErrorCode::Internal,
        }
    }

    /// What the decision records when this error sends it to the expert.
    /// A short, bounded name of the failure's kind (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Connect(_) => "connect",
            EngineError::Timeout(_) => "timeout",
            EngineError::Status { .. } => "status",
            EngineError::Protocol(_) => "protocol",
            EngineError::CircuitOpen => "circuit_open",
            EngineError::Invalid(_) => "invalid",
            EngineError::Unsafe(_) => "unsafe",
            EngineError::Setup(_) => "setup",
        }
    }

    pub fn fallback_reason(&self) -> FallbackReason {
        match self {
            EngineError::Timeout(_) => FallbackReason::Timeout,
            EngineError::CircuitOpen => FallbackReason::CircuitOpen,
            EngineError::Invalid(_) => FallbackReason::Invalid,
            EngineError::Unsafe(_) => FallbackReason::Unsafe,
            EngineError::Connect(_)
            | EngineError::Status { .. }
            | EngineError::Protocol(_)
            | EngineError::Setup(_) => FallbackReason::Error,
        }
    }
}

impl From<Elapsed> for EngineError {
    fn from(e: Elapsed) -> Self {
        EngineError::Timeout(e.0)
    }
}

impl From<CircuitOpen> for EngineError {
    fn from(_: CircuitOpen) -> Self {
        EngineError::CircuitOpen
    }
}

impl Retryable for EngineError {
    /// Transient failures only: unreachable, 5xx, 429. A timeout is not
    /// retried (a hung LLM would cost the timeout again), nor is anything
    /// the LLM said clearly (4xx, bad JSON).
    fn retry_hint(&self) -> RetryHint {
        match self {
            EngineError::Connect(_) => RetryHint::Backoff,
            EngineError::Status {
                status,
                retry_after,
                ..
            } if *status == 429 || (500..=599).contains(status) => match retry_after {
                Some(d) => RetryHint::After(*d),
                None => RetryHint::Backoff,
            },
            _ => RetryHint::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retried() {
        let status = |status, retry_after| EngineError::Status {
            status,
            retry_after,
            detail: String::new(),
        };
        assert_eq!(
            EngineError::Connect("refused".into()).retry_hint(),
            RetryHint::Backoff
        );
        assert_eq!(status(500, None).retry_hint(), RetryHint::Backoff);
        assert_eq!(status(503, None).retry_hint(), RetryHint::Backoff);
        let d = Duration::from_secs(2);
        assert_eq!(status(429, Some(d)).retry_hint(), RetryHint::After(d));
        assert_eq!(status(400, None).retry_hint(), RetryHint::Never);
        assert_eq!(status(401, None).retry_hint(), RetryHint::Never);
        assert_eq!(
            EngineError::Timeout(d).retry_hint(),
            RetryHint::Never,
            "a hung LLM is not asked again"
        );
        assert_eq!(EngineError::CircuitOpen.retry_hint(), RetryHint::Never);
    }

    #[test]
    fn errors_map_to_fallback_reasons() {
        assert_eq!(
            EngineError::Timeout(Duration::ZERO).fallback_reason(),
            FallbackReason::Timeout
        );
        assert_eq!(
            EngineError::CircuitOpen.fallback_reason(),
            FallbackReason::CircuitOpen
        );
        assert_eq!(
            EngineError::Invalid(String::new()).fallback_reason(),
            FallbackReason::Invalid
        );
        assert_eq!(
            EngineError::Unsafe(String::new()).fallback_reason(),
            FallbackReason::Unsafe
        );
        assert_eq!(
            EngineError::Protocol(String::new()).fallback_reason(),
            FallbackReason::Error
        );
    }
}

//! The application layer's error type. Each variant says which gRPC code it
//! is; the mapping to `tonic::Status` happens once, in `api/status.rs`.

use crate::domain::{TransitionError, Violations};
use crate::store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ManagerError {
    /// Bad input: every invalid field with its path.
    #[error("invalid request: {}", .0.summary())]
    Invalid(Violations),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A refused state transition or a stale expected version.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Kept losing compare-and-set races; the caller may retry.
    #[error("{0} is changing concurrently; retry")]
    Contended(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A bounded resource (watchers, buffers) is full.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Violations> for ManagerError {
    fn from(v: Violations) -> Self {
        ManagerError::Invalid(v)
    }
}

//! The application layer's error type. Each variant says which
//! [`ErrorCode`] it is ([`ManagerError::code`]); `api/status.rs` turns that
//! into a `tonic::Status` and the webhook into an HTTP status.

use crate::domain::{TransitionError, Violations};
use crate::error_code::ErrorCode;
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
    /// The command's dry run failed: approving it would only fail later.
    #[error("cannot be approved: the dry run failed: {0}")]
    Unapprovable(String),
    /// An external runner's lease does not allow this: another runner
    /// holds the execution, or the lease given is not (or no longer) the
    /// one held.
    #[error("{0}")]
    Leased(String),
    /// Kept losing compare-and-set races; the caller may retry.
    #[error("{0} is changing concurrently; retry")]
    Contended(String),
    /// The approval policy does not let this principal decide this
    /// decision (namespace, risk, or not an approver at all).
    #[error("{0}")]
    NotAllowed(String),
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

impl ManagerError {
    /// What kind of failure this is; gRPC and HTTP codes derive from it.
    pub fn code(&self) -> ErrorCode {
        match self {
            ManagerError::Invalid(_) => ErrorCode::BadRequest,
            ManagerError::NotFound(_) => ErrorCode::NotFound,
            ManagerError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            ManagerError::Transition(_)
            | ManagerError::Unapprovable(_)
            | ManagerError::Leased(_) => ErrorCode::FailedPrecondition,
            ManagerError::Contended(_) => ErrorCode::Aborted,
            ManagerError::NotAllowed(_) => ErrorCode::PermissionDenied,
            ManagerError::ShuttingDown => ErrorCode::Unavailable,
            ManagerError::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            ManagerError::Store(e) => e.code(),
        }
    }
}

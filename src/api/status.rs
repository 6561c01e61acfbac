//! The one place where application errors become gRPC statuses, with
//! `google.rpc` error details attached (tonic-types).

use crate::domain::TransitionError;
use crate::manager::ManagerError;
use crate::store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

impl From<ManagerError> for Status {
    fn from(e: ManagerError) -> Status {
        let msg = e.to_string();
        match e {
            ManagerError::Invalid(v) => {
                let mut details = ErrorDetails::new();
                for f in v {
                    details.add_bad_request_violation(f.field, f.description);
                }
                Status::with_error_details(Code::InvalidArgument, msg, details)
            }
            ManagerError::NotFound(_) => Status::not_found(msg),
            ManagerError::AlreadyExists(_) => Status::already_exists(msg),
            ManagerError::Transition(t) => {
                let (kind, subject) = match &t {
                    TransitionError::NotAllowed { token, .. } => ("STATE", token.to_string()),
                    TransitionError::Expired { token, .. } => ("EXPIRED", token.to_string()),
                    TransitionError::StaleVersion { token, .. } => ("VERSION", token.to_string()),
                };
                let details =
                    ErrorDetails::with_precondition_failure_violation(kind, subject, msg.clone());
                Status::with_error_details(Code::FailedPrecondition, msg, details)
            }
            ManagerError::Contended(_) => Status::aborted(msg),
            ManagerError::ShuttingDown => Status::unavailable(msg),
            ManagerError::ResourceExhausted(_) => Status::resource_exhausted(msg),
            ManagerError::Store(StoreError::Unavailable(_)) => Status::unavailable(msg),
            ManagerError::Store(e) => {
                tracing::error!(error = %e, "store error");
                Status::internal(msg)
            }
        }
    }
}

/// The HTTP status of an error, for the plain HTTP routes (the Alertmanager
/// webhook), chosen to match the gRPC code above. Alertmanager retries 5xx
/// answers, so everything a retry can cure is a 5xx.
pub fn http_status(e: &ManagerError) -> u16 {
    match e {
        ManagerError::Invalid(_) => 400,
        ManagerError::NotFound(_) => 404,
        ManagerError::AlreadyExists(_) | ManagerError::Transition(_) => 409,
        ManagerError::ResourceExhausted(_) => 429,
        ManagerError::Contended(_)
        | ManagerError::ShuttingDown
        | ManagerError::Store(StoreError::Unavailable(_)) => 503,
        ManagerError::Store(_) => 500,
    }
}

/// The answer of RPCs whose issue has not landed yet.
pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is declared in the API but not implemented yet in this version of verdict"
    ))
}

impl From<crate::watch::StreamEnd> for Status {
    fn from(e: crate::watch::StreamEnd) -> Status {
        use crate::watch::StreamEnd;
        let msg = e.to_string();
        match e {
            StreamEnd::ShuttingDown(_) => Status::unavailable(msg),
            StreamEnd::Overflow(_) => Status::resource_exhausted(msg),
            StreamEnd::Store(e) => ManagerError::Store(e).into(),
        }
    }
}

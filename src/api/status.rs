//! The one place where application errors become gRPC statuses: the code
//! comes from the error's [`ErrorCode`] (`error_code.rs`, the table shared
//! with the HTTP routes); this file adds the `google.rpc` error details
//! (tonic-types) a client acts on.

use crate::domain::TransitionError;
use crate::error_code::ErrorCode;
use crate::manager::ManagerError;
use crate::watch::StreamEnd;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// A status of `code` with `message`, logging what only an operator can
/// fix (internal errors are a bug or corrupt data, never the caller's).
fn status(code: ErrorCode, message: String, details: Option<ErrorDetails>) -> Status {
    if code == ErrorCode::Internal {
        tracing::error!(error = %message, "internal error");
    }
    match details {
        Some(d) => Status::with_error_details(code.grpc(), message, d),
        None => Status::new(code.grpc(), message),
    }
}

impl From<ManagerError> for Status {
    fn from(e: ManagerError) -> Status {
        let (code, msg) = (e.code(), e.to_string());
        let details = match e {
            // Every invalid field as a `BadRequest` field violation.
            ManagerError::Invalid(v) => {
                let mut details = ErrorDetails::new();
                for f in v.0 {
                    details.add_bad_request_violation(f.field, f.description);
                }
                Some(details)
            }
            // Which precondition failed, so a client can tell a lost race
            // from a decision that moved on.
            ManagerError::Transition(t) => {
                let (kind, subject) = match &t {
                    TransitionError::NotAllowed { token, .. } => ("STATE", token.to_string()),
                    TransitionError::Expired { token, .. } => ("EXPIRED", token.to_string()),
                    TransitionError::StaleVersion { token, .. } => ("VERSION", token.to_string()),
                };
                Some(ErrorDetails::with_precondition_failure_violation(
                    kind,
                    subject,
                    msg.clone(),
                ))
            }
            _ => None,
        };
        status(code, msg, details)
    }
}

impl From<StreamEnd> for Status {
    fn from(e: StreamEnd) -> Status {
        status(e.code(), e.to_string(), None)
    }
}

/// The answer of RPCs whose issue has not landed yet.
pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is declared in the API but not implemented yet in this version of verdict"
    ))
}

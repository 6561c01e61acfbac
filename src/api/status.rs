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
                for f in v {
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
                    TransitionError::AlreadyApproved { token, .. } => {
                        ("APPROVER", token.to_string())
                    }
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

impl From<crate::manager::AuditWatchEnd> for Status {
    fn from(e: crate::manager::AuditWatchEnd) -> Status {
        status(e.code(), e.to_string(), None)
    }
}

/// The answer of RPCs whose issue has not landed yet.
pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is declared in the API but not implemented yet in this version of verdict"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Token, Violations};
    use crate::store::StoreError;
    use tonic::Code;

    /// Every `ManagerError`, with the gRPC code and the HTTP status it had
    /// before the table existed: the table changes no answer.
    fn cases() -> Vec<(ManagerError, Code, u16)> {
        let token = Token::parse("DEC-00000000000A").unwrap();
        let mut v = Violations::new();
        v.add("incident_id", "is required");
        vec![
            (ManagerError::Invalid(v), Code::InvalidArgument, 400),
            (ManagerError::NotFound("x".into()), Code::NotFound, 404),
            (
                ManagerError::AlreadyExists("x".into()),
                Code::AlreadyExists,
                409,
            ),
            (
                TransitionError::StaleVersion {
                    token,
                    expected: 1,
                    actual: 2,
                }
                .into(),
                Code::FailedPrecondition,
                409,
            ),
            (ManagerError::Contended("x".into()), Code::Aborted, 503),
            (ManagerError::ShuttingDown, Code::Unavailable, 503),
            (
                ManagerError::ResourceExhausted("x".into()),
                Code::ResourceExhausted,
                429,
            ),
            (
                StoreError::Unavailable(crate::store::Outage::PoolTimedOut).into(),
                Code::Unavailable,
                503,
            ),
            (
                StoreError::Backend(redis::RedisError::from((redis::ErrorKind::Client, "bug")))
                    .into(),
                Code::Internal,
                500,
            ),
            (
                StoreError::Corrupt {
                    key: "k".into(),
                    source: "d".into(),
                }
                .into(),
                Code::Internal,
                500,
            ),
        ]
    }

    #[test]
    fn grpc_and_http_codes_derive_from_one_table() {
        for (e, grpc, http) in cases() {
            let what = format!("{e:?}");
            assert_eq!(e.code().http().as_u16(), http, "{what}");
            assert_eq!(Status::from(e).code(), grpc, "{what}");
        }
    }

    #[test]
    fn field_violations_travel_as_bad_request_details() {
        let mut v = Violations::new();
        v.add("incident_id", "is required");
        let status = Status::from(ManagerError::Invalid(v));
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("BadRequest").field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "incident_id");
    }
}

//! The error-code table: what kind of failure an error is, independent of
//! any layer's domain and of the transport that reports it.
//!
//! Every error type of verdict says which [`ErrorCode`] it is, once, in a
//! `fn code(&self) -> ErrorCode` beside its definition. The gRPC code
//! ([`ErrorCode::grpc`]) and the HTTP status ([`ErrorCode::http`]) are then
//! both derived from this one table, so the gRPC services and the plain
//! HTTP routes (the Alertmanager webhook) can never disagree about what an
//! error means. Modelled on quickwit's `quickwit-proto/src/error.rs`.
//!
//! The HTTP column matters to Alertmanager, which retries 5xx answers and
//! gives up on 4xx ones: everything a retry can cure (`Unavailable`,
//! `Aborted`, `Timeout`) is a 5xx.

use http::StatusCode;
use tonic::Code;

/// The kind of a failure. Deliberately small: a new variant is added only
/// when no existing one tells a caller what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request itself is wrong; retrying it unchanged fails again.
    BadRequest,
    /// No (valid) credentials.
    Unauthenticated,
    /// Known credentials without the role (or approval right) a call needs.
    PermissionDenied,
    /// The body is not in a format the route accepts.
    UnsupportedMediaType,
    /// The request body is larger than the route accepts.
    PayloadTooLarge,
    /// What the request names does not exist.
    NotFound,
    /// What the request would create exists already.
    AlreadyExists,
    /// The target is not in a state that allows the request (a refused
    /// transition, an expired token, a stale version).
    FailedPrecondition,
    /// Lost to concurrent writers too often; the caller may retry.
    Aborted,
    /// A bounded resource (watchers, buffers) is full.
    ResourceExhausted,
    /// A dependency (the store) cannot be reached, or the server is
    /// shutting down; retry later or elsewhere.
    Unavailable,
    /// The work did not finish in time.
    Timeout,
    /// A bug or corrupt data: nothing the caller can do.
    Internal,
}

impl ErrorCode {
    /// The gRPC status code of this kind of failure.
    pub fn grpc(self) -> Code {
        match self {
            ErrorCode::BadRequest | ErrorCode::UnsupportedMediaType => Code::InvalidArgument,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::PayloadTooLarge | ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::Aborted => Code::Aborted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Timeout => Code::DeadlineExceeded,
            ErrorCode::Internal => Code::Internal,
        }
    }

    /// The HTTP status of this kind of failure.
    pub fn http(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition => StatusCode::CONFLICT,
            ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Aborted | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorCode; 13] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::FailedPrecondition,
        ErrorCode::Aborted,
        ErrorCode::ResourceExhausted,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ];

    #[test]
    fn what_a_retry_can_cure_is_a_5xx_and_the_callers_fault_a_4xx() {
        for code in ALL {
            let retryable = matches!(
                code,
                ErrorCode::Aborted | ErrorCode::Unavailable | ErrorCode::Timeout
            );
            let http = code.http();
            assert!(http.is_client_error() || http.is_server_error(), "{code:?}");
            if retryable {
                assert!(
                    http.is_server_error(),
                    "{code:?} must be retried by Alertmanager"
                );
            }
            assert_ne!(code.grpc(), Code::Ok, "{code:?}");
        }
        assert_eq!(
            ErrorCode::Internal.http(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(ErrorCode::BadRequest.grpc(), Code::InvalidArgument);
    }
}

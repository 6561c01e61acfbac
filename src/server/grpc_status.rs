//! Corrects the status codes tonic gives to requests it refuses before a
//! handler runs, so callers see what the gRPC specification says:
//!
//! - a message over the size limit: tonic answers `OUT_OF_RANGE`; the
//!   specification (`doc/statuscodes.md`, "Server … exceeded … message
//!   size") says `RESOURCE_EXHAUSTED`;
//! - a body that is not the request message (invalid UTF-8 in a string,
//!   truncated, nested too deep): tonic-prost answers `INTERNAL`, which
//!   blames the server for the caller's bytes and invites a retry that fails
//!   the same way; `INVALID_ARGUMENT` says the request itself is wrong.
//!
//! tonic produces both inside its codec, where no hook reaches, as a
//! trailers-only response (the status in the response *headers*). This layer
//! rewrites exactly those headers, recognised by tonic's own messages, and
//! leaves every other response untouched (a handler's `INTERNAL` stays
//! `INTERNAL`). A server layer (it knows gRPC, so it lives beside the edge, not in
//! the domain-free `middleware/`); knows nothing about verdict.

use crate::middleware::BoxFuture;
use std::task::{Context, Poll};
use tonic::{Code, Status};

/// How tonic's length check words its refusal (`codec/decode.rs`).
const TOO_LARGE: &str = "Error, decoded message length too large";
/// How prost words a body that does not decode (`DecodeError`'s Display).
const UNDECODABLE: &str = "failed to decode Protobuf message";
/// How tonic words a body that ends inside a message frame.
const TRUNCATED: &str = "Unexpected EOF decoding stream";

/// The code a trailers-only refusal should have had, if tonic chose wrongly.
pub fn corrected(code: Code, message: &str) -> Option<Code> {
    match code {
        Code::OutOfRange if message.starts_with(TOO_LARGE) => Some(Code::ResourceExhausted),
        Code::Internal if message.starts_with(UNDECODABLE) || message.starts_with(TRUNCATED) => {
            Some(Code::InvalidArgument)
        }
        _ => None,
    }
}

/// Rewrites `grpc-status` in `headers` when it carries one of tonic's
/// misclassified refusals; returns whether it did.
pub fn correct_headers(headers: &mut http::HeaderMap) -> bool {
    let Some(status) = Status::from_header_map(headers) else {
        return false;
    };
    let Some(code) = corrected(status.code(), status.message()) else {
        return false;
    };
    Status::new(code, status.message())
        .add_header(headers)
        .is_ok()
}

/// The layer: wrap the gRPC routes (inside gRPC-Web, so both see the fix).
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcStatusLayer;

impl<S> tower::Layer<S> for GrpcStatusLayer {
    type Service = GrpcStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcStatus { inner }
    }
}

/// The service [`GrpcStatusLayer`] builds.
#[derive(Clone, Debug)]
pub struct GrpcStatus<S> {
    inner: S,
}

impl<S, Req, B> tower::Service<Req> for GrpcStatus<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<B>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            correct_headers(response.headers_mut());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_of(status: Status) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        status.add_header(&mut h).expect("headers");
        h
    }

    #[test]
    fn the_size_limit_becomes_resource_exhausted_and_keeps_its_message() {
        let msg = "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes";
        let mut h = headers_of(Status::out_of_range(msg));
        assert!(correct_headers(&mut h));
        let s = Status::from_header_map(&h).expect("status");
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), msg);
    }

    #[test]
    fn undecodable_bodies_become_invalid_argument() {
        for msg in [
            "failed to decode Protobuf message: Signal.alert_name: invalid string value: data is not UTF-8 encoded",
            "failed to decode Protobuf message: recursion limit reached",
            "Unexpected EOF decoding stream.",
        ] {
            let mut h = headers_of(Status::internal(msg));
            assert!(correct_headers(&mut h), "{msg}");
            let s = Status::from_header_map(&h).expect("status");
            assert_eq!(s.code(), Code::InvalidArgument, "{msg}");
        }
    }

    #[test]
    fn every_other_status_is_left_alone() {
        for s in [
            Status::internal("store error"),
            Status::out_of_range("page 9 of 3"),
            Status::invalid_argument("failed to decode Protobuf message"),
            Status::ok(""),
        ] {
            let mut h = headers_of(s.clone());
            let before = h.clone();
            assert!(!correct_headers(&mut h), "{s:?}");
            assert_eq!(h, before);
        }
        assert!(!correct_headers(&mut http::HeaderMap::new()));
    }
}

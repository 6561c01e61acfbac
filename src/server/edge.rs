//! The edge stack: cross-cutting behaviour applied once, to every request
//! the server answers (gRPC, gRPC-Web and the plain HTTP routes), as
//! tower layers stacked with `ServiceBuilder` (the shape of tonic's
//! `examples/src/tower/server.rs`). Handlers stay free of it.
//!
//! Outside in:
//! 1. **Request id**: the caller's `x-request-id` (metadata, for gRPC) is
//!    kept; a request without one gets a fresh UUID. The response echoes it.
//! 2. **Tracing**: one span per request carrying that id, the method and
//!    the path, so every log line of an RPC can be found from the id.
//! 3. **Authentication and authorization** ([`authorize`]): the
//!    credentials (a bearer token, or the connection's verified client
//!    certificate, `server/tls.rs`) become a [`Principal`] (`auth::Authenticator`), the
//!    route's entry in the one role table (`auth::table`) is checked, and
//!    the principal is put in the request's extensions, where handlers read
//!    it with `Principal::of`. A refusal answers here — UNAUTHENTICATED /
//!    401 or PERMISSION_DENIED / 403 — so no handler runs and nothing is
//!    stored. It sits inside the span, so every refusal is logged with its
//!    request id. A refused *mutating* call (`auth::table::mutating`) is
//!    also recorded in the audit trail (`AuditLog::refused`) before the
//!    answer leaves; reads are not, so the trail is not a request log.
//! 4. **Timeout backstop** ([`BACKSTOP`]): bounds how long a request waits
//!    for its *response head*, above the longest legal RPC deadline, so it
//!    only ever catches a bug (a handler that hangs). A streaming RPC
//!    (`WatchDecision`, `WatchDecisions`) answers its head at once and
//!    streams its body afterwards, so the backstop never cuts a watch.
//!
//! The gRPC metrics layer (requests by service, method and code, latency)
//! sits inside gRPC-Web around the gRPC routes only (`server::routes`), so
//! browser calls report their real gRPC codes; `/metrics` itself is served
//! outside this stack (`server/observe.rs`), open to the scraper.

use super::tls::Peer;
use crate::auth::{AuthError, Authenticator, Presented};
use crate::domain::{AuthMethod, Principal};
use crate::manager::AuditLog;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The timeout backstop: the longest analysis a caller may ask for
/// (`manager::decisions::MAX_TIMEOUT`) plus a margin to write and answer.
pub const BACKSTOP: Duration =
    Duration::from_secs(crate::manager::decisions::MAX_TIMEOUT.as_secs() + 60);

/// The request-id header (and gRPC metadata key).
pub const REQUEST_ID: &str = "x-request-id";

/// What the authorization layer needs: who decides, and where refusals
/// are recorded (None: auditing off).
#[derive(Clone)]
pub struct Gate {
    pub auth: Arc<Authenticator>,
    pub audit: Option<AuditLog>,
}

/// Wraps every route of `app` in the edge stack.
pub fn apply(app: axum::Router, gate: Gate) -> axum::Router {
    with_backstop(app, gate, BACKSTOP)
}

/// The edge stack with a given backstop (tests use a short one).
fn with_backstop(app: axum::Router, gate: Gate, backstop: Duration) -> axum::Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    app.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(span))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(axum::middleware::from_fn_with_state(gate, authorize))
            .layer(HandleErrorLayer::new(backstop_expired))
            .timeout(backstop),
    )
}

/// Authentication, then authorization by the role table; the principal
/// goes into the request's extensions. Browsers' CORS preflights carry no
/// credentials and reach no handler, so they pass.
async fn authorize(
    State(gate): State<Gate>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // The connection's peer (`server/tls.rs`): its address goes where
    // tonic's `Request::remote_addr` looks for it, its client certificate
    // (mTLS) to authentication.
    let peer = req.extensions().get::<Peer>().cloned();
    if let Some(p) = &peer {
        req.extensions_mut().insert(p.tcp.clone());
    }
    if req.method() == http::Method::OPTIONS {
        return next.run(req).await;
    }
    let presented = Presented {
        authorization: req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        client_cert: peer.as_ref().and_then(|p| p.client_cert.as_deref()),
    };
    match gate.auth.check(req.uri().path(), presented) {
        Ok(Some(principal)) => {
            tracing::debug!(subject = %principal.subject, method = %principal.method, "authenticated");
            req.extensions_mut().insert::<Principal>(principal);
            next.run(req).await
        }
        Ok(None) => next.run(req).await,
        Err(e) => {
            let code = match e.code().grpc() {
                tonic::Code::PermissionDenied => "PERMISSION_DENIED",
                _ => "UNAUTHENTICATED",
            };
            crate::metrics::auth_refused(e.reason(), code);
            if let Some(audit) = &gate.audit
                && crate::auth::table::mutating(req.uri().path())
            {
                let context = refusal_context(&req, &e);
                record_refusal(audit, context, &e).await;
            }
            refuse(req.headers(), &e)
        }
    }
}

/// The audit context of a refused request: who (as far as known), from
/// where, which call.
fn refusal_context(req: &axum::extract::Request, e: &AuthError) -> crate::audit::Context {
    let path = req.uri().path();
    let grpc = is_grpc(req.headers());
    // The RPC's name as the API layer records it, or the HTTP route.
    let rpc = match path.rsplit_once('/') {
        Some((_, method)) if grpc => method.to_owned(),
        _ => format!("{} {path}", req.method()),
    };
    let principal = match e {
        AuthError::Forbidden { principal, .. } => principal.clone(),
        // Nobody proved who they are: no subject to believe.
        AuthError::Unauthenticated(_) | AuthError::AnyPrincipal => Principal {
            subject: "unauthenticated".into(),
            method: AuthMethod::Anonymous,
            roles: Default::default(),
        },
    };
    crate::audit::Context {
        principal,
        actor: String::new(),
        peer: req
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|i| i.remote_addr())
            .map(|a| a.to_string())
            .unwrap_or_default(),
        rpc,
        request_id: req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Records a refused mutating call. A failure to record is logged: the
/// call is refused either way and nothing changed that the trail misses.
async fn record_refusal(audit: &AuditLog, context: crate::audit::Context, e: &AuthError) {
    let (principal, rpc) = (context.principal.clone(), context.rpc.clone());
    let code = match e.code().grpc() {
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        _ => "UNAUTHENTICATED",
    };
    let recorded = crate::audit::scope(
        context,
        audit.refused(&principal, &rpc, code, &e.to_string()),
    )
    .await;
    if let Err(err) = recorded {
        tracing::error!(error = %err, rpc, "could not record a refused call");
    }
}

/// A refusal in the caller's protocol: a gRPC status (headers only, which
/// gRPC-Web reads too) or a plain HTTP 401/403.
fn refuse(headers: &http::HeaderMap, e: &AuthError) -> Response {
    tracing::warn!(reason = %e, "request refused by the edge");
    let code = e.code();
    if is_grpc(headers) {
        let status = tonic::Status::new(code.grpc(), e.to_string());
        return grpc_response(headers, status);
    }
    let mut r = (code.http(), e.to_string()).into_response();
    if code.http() == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"verdict\""),
        );
    }
    r
}

/// Whether the request is gRPC or gRPC-Web.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// `status` as a trailers-only gRPC answer with the request's content type
/// (gRPC-Web callers read the status from headers too).
fn grpc_response(headers: &http::HeaderMap, status: tonic::Status) -> Response {
    let mut r = status.into_http::<axum::body::Body>();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/grpc")),
    );
    r.into_response()
}

/// The span of one request.
fn span<B>(req: &Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    crate::telemetry::set_parent_from(&span, req.headers());
    span
}

/// The answer when the backstop fires (or the stack fails otherwise): a
/// gRPC DEADLINE_EXCEEDED status for gRPC callers, 504 for plain HTTP.
async fn backstop_expired(headers: http::HeaderMap, err: tower::BoxError) -> Response {
    tracing::error!(error = %err, "request hit the server's timeout backstop");
    if is_grpc(&headers) {
        let status = tonic::Status::deadline_exceeded("the server's timeout backstop fired");
        grpc_response(&headers, status)
    } else {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "the server's timeout backstop fired",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use futures::StreamExt;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const SHORT: Duration = Duration::from_millis(100);

    fn app() -> axum::Router {
        let hang = || async {
            std::future::pending::<()>().await;
            "never"
        };
        // Answers its head at once, then streams for longer than the
        // backstop, as a watch does.
        let stream = || async {
            let chunks = futures::stream::unfold(0u8, |n| async move {
                (n < 3)
                    .then_some(n)
                    .map(|n| (Ok::<_, std::io::Error>(vec![b'a' + n]), n + 1))
            })
            .then(|c| async move {
                tokio::time::sleep(SHORT).await;
                c
            });
            Body::from_stream(chunks)
        };
        with_backstop(
            axum::Router::new()
                .route("/hang", axum::routing::post(hang))
                .route("/stream", axum::routing::post(stream)),
            Gate {
                auth: Arc::new(Authenticator::new(&Default::default()).unwrap()),
                audit: None,
            },
            SHORT,
        )
    }

    fn post(path: &str, content_type: &str) -> Request<Body> {
        Request::post(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_backstop_answers_a_hung_request_in_its_protocol() {
        let r = app()
            .oneshot(post("/hang", "application/json"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(r.headers().contains_key(REQUEST_ID), "the id is echoed");

        let r = app()
            .oneshot(post("/hang", "application/grpc"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let code = tonic::Code::DeadlineExceeded as i32;
        assert_eq!(
            r.headers().get("grpc-status").and_then(|v| v.to_str().ok()),
            Some(code.to_string().as_str())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_backstop_never_cuts_a_stream_that_has_answered() {
        let r = app()
            .oneshot(post("/stream", "application/grpc"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // Three chunks, each after the backstop's whole duration.
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abc");
    }
}

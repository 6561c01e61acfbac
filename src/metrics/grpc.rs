//! The gRPC metrics layer: counts every gRPC request by service, method
//! and status code (`verdict_grpc_requests_total`) and records its latency
//! (`verdict_grpc_request_duration_seconds`), from the request's arrival to
//! its status — the trailers, or the head of a trailers-only answer. For a
//! watch stream that is the stream's whole life.
//!
//! It sits inside gRPC-Web, so a browser's call is seen as the native gRPC
//! call it becomes, with its trailers. It knows nothing of verdict's
//! services: the server hands it the methods that exist ([`KnownMethods`]);
//! any other path is counted as `unknown`, so a caller cannot mint series.
//! A response whose body is dropped before its trailers (the client went
//! away) counts as `CANCELLED`.

use super::record::{GRPC_DURATION, GRPC_REQUESTS};
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use metrics::{Counter, Histogram, SharedString, counter, histogram};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

/// The gRPC methods that exist, by path (`/pkg.Service/Method`), each
/// with its metric handles, registered on first use: a request costs one
/// map lookup and two atomic updates, not a registry lookup per label set.
#[derive(Debug, Default, Clone)]
pub struct KnownMethods {
    by_path: HashMap<String, Arc<MethodMetrics>>,
    unknown: Arc<MethodMetrics>,
}

/// The handles of one method.
#[derive(Debug, Default)]
struct MethodMetrics {
    service: SharedString,
    method: SharedString,
    latency: OnceLock<Histogram>,
    /// One counter per status code, by code number.
    codes: [OnceLock<Counter>; CODES.len()],
}

impl MethodMetrics {
    fn new(service: SharedString, method: SharedString) -> Self {
        MethodMetrics {
            service,
            method,
            ..Default::default()
        }
    }

    fn record(&self, code: usize, elapsed: f64) {
        let code = code.min(CODES.len() - 1);
        self.codes[code]
            .get_or_init(|| {
                counter!(
                    GRPC_REQUESTS,
                    "service" => self.service.clone(),
                    "method" => self.method.clone(),
                    "code" => CODES[code]
                )
            })
            .increment(1);
        self.latency
            .get_or_init(|| {
                histogram!(
                    GRPC_DURATION,
                    "service" => self.service.clone(),
                    "method" => self.method.clone()
                )
            })
            .record(elapsed);
    }
}

impl KnownMethods {
    /// The methods of every service in `services`, each given as its full
    /// name and its method names.
    pub fn new<'a>(services: impl IntoIterator<Item = (&'a str, Vec<String>)>) -> Self {
        let mut by_path = HashMap::new();
        for (service, methods) in services {
            let svc = SharedString::from_shared(Arc::<str>::from(service));
            for m in methods {
                let path = format!("/{service}/{m}");
                let name = SharedString::from_shared(Arc::<str>::from(m));
                by_path.insert(path, Arc::new(MethodMetrics::new(svc.clone(), name)));
            }
        }
        let unknown = SharedString::const_str("unknown");
        KnownMethods {
            by_path,
            unknown: Arc::new(MethodMetrics::new(unknown.clone(), unknown)),
        }
    }

    /// The handles of `path`; the shared `unknown` ones when no such
    /// method exists.
    fn of(&self, path: &str) -> Arc<MethodMetrics> {
        self.by_path.get(path).unwrap_or(&self.unknown).clone()
    }

    /// How many methods are known.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// No method is known.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

/// Adds [`GrpcMetrics`] around a service.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    known: Option<Arc<KnownMethods>>,
}

impl GrpcMetricsLayer {
    /// Counts the requests to `known` (anything else as `unknown`).
    pub fn new(known: KnownMethods) -> Self {
        GrpcMetricsLayer {
            known: Some(Arc::new(known)),
        }
    }

    /// Counts nothing: metrics are off. The service stays in the stack so
    /// the response type does not depend on a setting.
    pub fn disabled() -> Self {
        GrpcMetricsLayer { known: None }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            known: self.known.clone(),
        }
    }
}

/// Counts and times the gRPC requests passing through; anything else
/// passes untouched.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    known: Option<Arc<KnownMethods>>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        let known = self.known.as_ref().filter(|_| grpc);
        let pending = known.map(|known| Pending {
            metrics: known.of(req.uri().path()),
            started: Instant::now(),
        });
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let Some(pending) = pending else {
                return Ok(resp.map(|body| MeteredBody {
                    body,
                    pending: None,
                }));
            };
            // A trailers-only answer (an error before any message) carries
            // its status in the head.
            if let Some(code) = status_of(resp.headers()) {
                pending.finish(code);
                return Ok(resp.map(|body| MeteredBody {
                    body,
                    pending: None,
                }));
            }
            Ok(resp.map(|body| MeteredBody {
                body,
                pending: Some(pending),
            }))
        })
    }
}

/// A request counted when its status is known.
struct Pending {
    metrics: Arc<MethodMetrics>,
    started: Instant,
}

impl Pending {
    /// Counts the request with status `code` (a number of [`CODES`]).
    fn finish(self, code: usize) {
        self.metrics
            .record(code, self.started.elapsed().as_secs_f64());
    }
}

/// The response body, recording the request when its trailers pass (or
/// when it ends or is dropped without them).
pub struct MeteredBody<B> {
    body: B,
    pending: Option<Pending>,
}

impl<B> Body for MeteredBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of)
                    && let Some(p) = this.pending.take()
                {
                    p.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(p) = this.pending.take() {
                    p.finish(INTERNAL);
                }
            }
            Poll::Ready(None) => {
                if let Some(p) = this.pending.take() {
                    p.finish(UNKNOWN);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish(CANCELLED);
        }
    }
}

/// The gRPC code names, by number (the `grpc-status` values).
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const CANCELLED: usize = 1;
const UNKNOWN: usize = 2;
const INTERNAL: usize = 13;

/// The status code (a number of [`CODES`]) in `grpc-status`, if present;
/// a value outside the table counts as `UNKNOWN`.
fn status_of(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get("grpc-status")?;
    let code = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|n| *n < CODES.len())
        .unwrap_or(UNKNOWN);
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_status_values_map_to_bounded_names() {
        let mut h = HeaderMap::new();
        assert_eq!(status_of(&h), None);
        h.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(status_of(&h).map(|c| CODES[c]), Some("NOT_FOUND"));
        h.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(status_of(&h).map(|c| CODES[c]), Some("UNKNOWN"));
        h.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(status_of(&h).map(|c| CODES[c]), Some("UNKNOWN"));
        assert_eq!(
            (CODES[CANCELLED], CODES[UNKNOWN], CODES[INTERNAL]),
            ("CANCELLED", "UNKNOWN", "INTERNAL")
        );
    }

    #[test]
    fn unknown_paths_share_one_label() {
        let known = KnownMethods::new([("a.B", vec!["Get".to_string()])]);
        let m = known.of("/a.B/Get");
        assert_eq!((&*m.service, &*m.method), ("a.B", "Get"));
        let m = known.of("/a.B/Made-Up-By-A-Caller");
        assert_eq!((&*m.service, &*m.method), ("unknown", "unknown"));
    }
}

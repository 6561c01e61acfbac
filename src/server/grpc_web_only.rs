//! Routes each gRPC request by its protocol: gRPC-Web (and anything that is
//! not native gRPC over HTTP/2) through the gRPC-Web stack, native gRPC
//! straight to the gRPC stack.
//!
//! tonic-web passes native gRPC through, but not for free: it boxes the
//! request body and again the response body, and every response frame is
//! then polled through one more dynamic call. The profile in BENCHMARKS.md
//! put that at about 2.7 k instructions on every native request, health
//! included (issue 20 item 2). The decision is the one tonic-web makes
//! itself (its `RequestKind`): a request is gRPC-Web when its
//! `content-type` is `application/grpc-web*`, and any other HTTP/2 request
//! is passed through untouched; so routing on the same test first changes
//! nothing a caller sees. Everything else (gRPC-Web, CORS preflights,
//! stray HTTP/1.1 requests that tonic-web answers with 400) still takes
//! the gRPC-Web stack.
//!
//! Both stacks end in the same inner service (metrics, gRPC status
//! correction, request timeout, the gRPC routes), so both protocols are
//! measured and corrected alike.

use axum::body::Body;
use futures::future::{Either, MapOk, TryFutureExt};
use http::{Request, Response, Version, header};
use std::task::{Context, Poll};
use tonic::codegen::Bytes;

/// A service that calls `web` for gRPC-Web requests and `native` for native
/// gRPC ones (see the module docs for the test).
#[derive(Clone, Debug)]
pub struct GrpcWebOnly<W, N> {
    web: W,
    native: N,
}

impl<W, N> GrpcWebOnly<W, N> {
    pub fn new(web: W, native: N) -> Self {
        GrpcWebOnly { web, native }
    }
}

/// Whether `req` is native gRPC: HTTP/2 and not gRPC-Web. tonic-web passes
/// exactly these through unchanged.
pub fn is_native<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_2
        && !req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc-web"))
}

type ToBody<B> = fn(Response<B>) -> Response<Body>;

fn to_body<B>(res: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    res.map(Body::new)
}

impl<W, N, B, WB, NB, E> tower::Service<Request<B>> for GrpcWebOnly<W, N>
where
    W: tower::Service<Request<B>, Response = Response<WB>, Error = E>,
    N: tower::Service<Request<B>, Response = Response<NB>, Error = E>,
    WB: http_body::Body<Data = Bytes> + Send + 'static,
    WB::Error: Into<axum::BoxError>,
    NB: http_body::Body<Data = Bytes> + Send + 'static,
    NB::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = E;
    type Future = Either<MapOk<W::Future, ToBody<WB>>, MapOk<N::Future, ToBody<NB>>>;

    /// Ready when both are: which one a request needs is known only once
    /// it arrives. (Both are always ready in practice: the gRPC routes and
    /// the layers above them do not apply back-pressure here.)
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        match (self.web.poll_ready(cx)?, self.native.poll_ready(cx)?) {
            (Poll::Ready(()), Poll::Ready(())) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if is_native(&req) {
            Either::Right(self.native.call(req).map_ok(to_body::<NB> as ToBody<NB>))
        } else {
            Either::Left(self.web.call(req).map_ok(to_body::<WB> as ToBody<WB>))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{ServiceExt, service_fn};

    /// A service answering with its own name in a header.
    fn named(
        name: &'static str,
    ) -> impl tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        service_fn(move |_req: Request<Body>| async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("x-by", name)
                    .body(Body::empty())
                    .unwrap(),
            )
        })
    }

    async fn route(version: Version, content_type: Option<&str>) -> String {
        let mut req = Request::post("/verdict.v1.DecisionService/GetDecision").version(version);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let svc = GrpcWebOnly::new(named("web"), named("native"));
        let res = svc.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        res.headers()["x-by"].to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn native_grpc_skips_the_grpc_web_stack() {
        for ct in [
            Some("application/grpc"),
            Some("application/grpc+proto"),
            None,
        ] {
            assert_eq!(route(Version::HTTP_2, ct).await, "native", "{ct:?}");
        }
    }

    #[tokio::test]
    async fn grpc_web_and_http1_take_the_grpc_web_stack() {
        for ct in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ] {
            assert_eq!(route(Version::HTTP_2, Some(ct)).await, "web", "{ct}");
            assert_eq!(route(Version::HTTP_11, Some(ct)).await, "web", "{ct}");
        }
        // tonic-web answers stray HTTP/1.1 requests (400), as before.
        assert_eq!(
            route(Version::HTTP_11, Some("application/grpc")).await,
            "web"
        );
        assert_eq!(route(Version::HTTP_11, None).await, "web");
    }
}

//! A deadline for the *request message* of a gRPC call: a stream that opens
//! and then never sends its message (or sends half of it and stalls) is
//! answered `DEADLINE_EXCEEDED` after `timeout` and closed, instead of
//! holding a stream, a task and its buffers for as long as the connection
//! lives (issue 12.6: 5 000 idle streams cost 48 MB).
//!
//! Only the arrival of the first message is timed: once its gRPC frame
//! (5-byte prefix + length) is complete, or the body ends, the deadline is
//! disarmed. A watch sends its one small request at once and then streams
//! *responses* for as long as it likes, so it is never cut.
//!
//! The deadline is checked only while the server reads the body, so a
//! handler that stopped reading is unaffected. The body's error is a
//! `tonic::Status`, which tonic passes to the caller as it is. A server
//! layer beside the edge (it knows gRPC); knows nothing about verdict.

use crate::middleware::BoxFuture;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Sleep;
use tonic::codegen::{Body, Bytes};

/// The layer: wraps each request's body in a [`TimedBody`].
#[derive(Clone, Copy, Debug)]
pub struct RequestTimeoutLayer {
    timeout: Duration,
}

impl RequestTimeoutLayer {
    pub fn new(timeout: Duration) -> Self {
        RequestTimeoutLayer { timeout }
    }
}

impl<S> tower::Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service [`RequestTimeoutLayer`] builds.
#[derive(Clone, Debug)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for RequestTimeout<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timeout = self.timeout;
        let req = req.map(|body| tonic::body::Body::new(TimedBody::new(body, timeout)));
        Box::pin(self.inner.call(req))
    }
}

/// A request body that fails with `DEADLINE_EXCEEDED` when its first gRPC
/// message has not fully arrived within the timeout.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    /// Armed until the first message is complete or the body ends.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The first message's 5-byte prefix, as far as received.
    prefix: Vec<u8>,
    /// Bytes of the first message's payload still to come (known once the
    /// prefix is complete).
    remaining: Option<u64>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            prefix: Vec::with_capacity(5),
            remaining: None,
        }
    }

    /// Counts `data` towards the first message; disarms the deadline once
    /// it is complete.
    fn saw(&mut self, mut data: &[u8]) {
        if self.deadline.is_none() {
            return;
        }
        if self.remaining.is_none() {
            let take = (5 - self.prefix.len()).min(data.len());
            self.prefix.extend_from_slice(&data[..take]);
            data = &data[take..];
            if let [_, a, b, c, d] = self.prefix[..] {
                self.remaining = Some(u64::from(u32::from_be_bytes([a, b, c, d])));
            }
        }
        if let Some(left) = &mut self.remaining {
            *left = left.saturating_sub(data.len() as u64);
            if *left == 0 {
                self.deadline = None;
            }
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.saw(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(deadline) = &mut this.deadline else {
                    return Poll::Pending;
                };
                ready!(deadline.as_mut().poll(cx));
                this.deadline = None;
                let status = tonic::Status::deadline_exceeded(format!(
                    "the request message did not arrive within {:?}",
                    this.timeout
                ));
                Poll::Ready(Some(Err(Box::new(status))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_sends_fails_deadline_exceeded() {
        let body = StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >());
        let mut timed = TimedBody::new(body, Duration::from_secs(10));
        let err = timed
            .frame()
            .await
            .expect("a frame")
            .expect_err("timed out");
        let status = err.downcast::<tonic::Status>().expect("a Status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_first_message_disarms_the_deadline() {
        type Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>;
        let (tx, rx) = tokio::sync::mpsc::channel::<Item>(4);
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
        let mut timed = TimedBody::new(StreamBody::new(Box::pin(stream)), Duration::from_secs(10));
        // The prefix split across frames: flag 0, length 3, then 3 bytes.
        for chunk in [&[0u8, 0, 0][..], &[0, 3, b'a'][..], &[b'b', b'c'][..]] {
            tx.send(Ok(http_body::Frame::data(Bytes::copy_from_slice(chunk))))
                .await
                .expect("send");
            timed.frame().await.expect("frame").expect("data");
        }
        assert!(timed.deadline.is_none(), "disarmed after the message");
        // The stream stays open far past the timeout without failing.
        let next = tokio::time::timeout(Duration::from_secs(60), timed.frame()).await;
        assert!(next.is_err(), "still pending, not failed");
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_body_disarms_the_deadline() {
        let mut timed = TimedBody::new(Full::new(Bytes::from_static(b"")), Duration::from_secs(1));
        while let Some(f) = timed.frame().await {
            f.expect("no error");
        }
        assert!(timed.deadline.is_none());
    }
}

//! The two watch streams served with one encoding per change.
//!
//! The generated `DecisionServiceServer` encodes every message of every
//! stream itself (tonic's prost codec), so a change watched by 10 000
//! streams would be converted and encoded 10 000 times. Instead the hub
//! renders each change once ([`WireRender`]) and the two watch methods are
//! routed here ([`DecisionRoutes`]), to tonic's own server-streaming
//! handler with a codec ([`EncodedCodec`]) whose encoder writes those bytes
//! as they are. Requests are decoded by the normal prost decoder, and the
//! bytes on the wire are exactly what the generated server would send
//! (tested), so clients see no difference. Every other method goes to the
//! generated server unchanged.

use super::convert;
use super::decisions::DecisionApi;
use crate::clock::Clock;
use crate::domain::{Decision, Incident};
use crate::proto as pb;
use crate::proto::decision_service_server::DecisionServiceServer;
use crate::watch::{Render, Sent};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use prost::Message;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};

/// Renders changes for the hub: domain → `WatchDecisionResponse` (or
/// `WatchDecisionsResponse`) → protobuf bytes, once per change.
pub struct WireRender {
    clock: Arc<dyn Clock>,
}

impl WireRender {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        WireRender { clock }
    }
}

/// `WatchDecisionResponse { decision }`. Its encoding is byte for byte that
/// of `WatchDecisionsResponse { decision, incident: None }` (both carry the
/// decision as field 1; tested), so one encoding serves both streams.
pub fn decision_wire(d: &Decision, now: chrono::DateTime<chrono::Utc>) -> Bytes {
    pb::WatchDecisionResponse {
        decision: Some(convert::decision_to(d, now)),
    }
    .encode_to_vec()
    .into()
}

impl Render for WireRender {
    fn decision(&self, d: &Decision) -> Bytes {
        decision_wire(d, self.clock.now())
    }

    fn incident(&self, i: &Incident) -> Bytes {
        pb::WatchDecisionsResponse {
            decision: None,
            incident: Some(convert::incident_to(i)),
        }
        .encode_to_vec()
        .into()
    }
}

/// A server-streaming codec whose responses are already-encoded protobuf
/// messages (`Bytes`) and whose requests (`D`) are decoded by prost as
/// usual.
pub struct EncodedCodec<D>(PhantomData<fn() -> D>);

impl<D> Default for EncodedCodec<D> {
    fn default() -> Self {
        EncodedCodec(PhantomData)
    }
}

impl<D: Message + Default + Send + 'static> Codec for EncodedCodec<D> {
    type Encode = Bytes;
    type Decode = D;
    type Encoder = PassThrough;
    type Decoder = tonic_prost::ProstDecoder<D>;

    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Writes an encoded message into the frame as it is: the only per-stream
/// work left is this copy into the stream's send buffer.
pub struct PassThrough;

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }

    /// tonic allocates `buffer_size` per stream up front and the stream
    /// keeps that allocation for its whole life. Its default (8 KiB) was
    /// 80 MB of a replica's memory at 10 000 idle watch streams, for
    /// messages of a few hundred bytes; a larger message grows the buffer
    /// as it needs.
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(STREAM_BUFFER, YIELD_THRESHOLD)
    }
}

/// The send buffer a watch stream starts with: one decision message fits.
const STREAM_BUFFER: usize = 1024;
/// tonic's own default (not exported): a stream hands over what it encoded
/// once this much is waiting.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// `DecisionService` as served: the two watch methods on the shared
/// encoding, the rest by the generated server.
#[derive(Clone)]
pub struct DecisionRoutes {
    api: Arc<DecisionApi>,
    generated: DecisionServiceServer<DecisionApi>,
    max_decoding: usize,
}

const WATCH_DECISION: &str = "/verdict.v1.DecisionService/WatchDecision";
const WATCH_DECISIONS: &str = "/verdict.v1.DecisionService/WatchDecisions";

impl DecisionRoutes {
    /// `max_decoding`: the largest request accepted, as for every service.
    pub fn new(api: DecisionApi, max_decoding: usize) -> Self {
        let api = Arc::new(api);
        DecisionRoutes {
            generated: DecisionServiceServer::from_arc(api.clone())
                .max_decoding_message_size(max_decoding),
            api,
            max_decoding,
        }
    }
}

impl NamedService for DecisionRoutes {
    const NAME: &'static str = <DecisionServiceServer<DecisionApi> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for DecisionRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let api = self.api.clone();
        let max = self.max_decoding;
        match req.uri().path() {
            WATCH_DECISION => Box::pin(async move {
                Ok(
                    Grpc::new(EncodedCodec::<pb::WatchDecisionRequest>::default())
                        .apply_max_message_size_config(Some(max), None)
                        .server_streaming(WatchOne(api), req)
                        .await,
                )
            }),
            WATCH_DECISIONS => Box::pin(async move {
                Ok(
                    Grpc::new(EncodedCodec::<pb::WatchDecisionsRequest>::default())
                        .apply_max_message_size_config(Some(max), None)
                        .server_streaming(WatchAll(api), req)
                        .await,
                )
            }),
            _ => tower::Service::call(&mut self.generated, req),
        }
    }
}

type Encoded = BoxStream<'static, Result<Bytes, Status>>;

struct WatchOne(Arc<DecisionApi>);

impl ServerStreamingService<pb::WatchDecisionRequest> for WatchOne {
    type Response = Bytes;
    type ResponseStream = Encoded;
    type Future = BoxFuture<'static, Result<Response<Encoded>, Status>>;

    fn call(&mut self, req: Request<pb::WatchDecisionRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let clock = api.clock();
            let stream = api.watch_decision_stream(req.get_ref()).await?;
            Ok(Response::new(
                Box::pin(futures::StreamExt::map(stream, move |item| {
                    item.map(|sent| match sent {
                        Sent::Shared(p) => p.wire.clone(),
                        Sent::Own(d) => decision_wire(&d, clock.now()),
                    })
                    .map_err(Status::from)
                })) as Encoded,
            ))
        })
    }
}

struct WatchAll(Arc<DecisionApi>);

impl ServerStreamingService<pb::WatchDecisionsRequest> for WatchAll {
    type Response = Bytes;
    type ResponseStream = Encoded;
    type Future = BoxFuture<'static, Result<Response<Encoded>, Status>>;

    fn call(&mut self, req: Request<pb::WatchDecisionsRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let stream = api.watch_decisions_stream(req.get_ref())?;
            Ok(Response::new(
                Box::pin(futures::StreamExt::map(stream, |item| {
                    item.map(|p| p.wire.clone()).map_err(Status::from)
                })) as Encoded,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DecisionMode, IncidentId, Severity};
    use chrono::Utc;

    #[test]
    fn one_decision_encoding_is_both_watch_responses_byte_for_byte() {
        let now = Utc::now();
        let d = Decision::start(
            IncidentId::parse("INC-1").unwrap(),
            DecisionMode::Auto,
            now,
            chrono::Duration::hours(1),
            now,
        );
        let wire = decision_wire(&d, now);
        let all = pb::WatchDecisionsResponse {
            decision: Some(convert::decision_to(&d, now)),
            incident: None,
        };
        assert_eq!(&wire[..], &all.encode_to_vec()[..]);
        let one = pb::WatchDecisionResponse::decode(wire).unwrap();
        assert_eq!(one.decision, all.decision);
    }

    #[test]
    fn an_incident_change_decodes_as_a_watch_decisions_response() {
        let i = Incident::opened(
            IncidentId::parse("INC-7").unwrap(),
            "disk full".into(),
            Severity::P1,
            Utc::now(),
        );
        let wire = WireRender::new(Arc::new(crate::clock::SystemClock)).incident(&i);
        let got = pb::WatchDecisionsResponse::decode(wire).unwrap();
        assert_eq!(got.decision, None);
        assert_eq!(got.incident, Some(convert::incident_to(&i)));
    }
}

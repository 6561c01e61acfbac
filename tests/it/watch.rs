//! Live decisions: WatchDecision and WatchDecisions through the real server,
//! across replicas sharing a real Redis.

use crate::common;

use async_trait::async_trait;
use common::{RedisServer, TestServer, config, create_incident, decide, within};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tonic::Code;
use tonic::transport::Channel;
use verdict::domain::{DecisionMode, Incident, Proposal};
use verdict::engine::{Analyzer, ExpertEngine};
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::{
    ApproveDecisionRequest, CompleteDecisionRequest, Decision, DecisionState,
    GetOrCreateDecisionRequest, WatchDecisionRequest, WatchDecisionsRequest,
};
use verdict::server::Overrides;

/// An analyzer that answers only when the test opens its gate.
struct Gated(Arc<Semaphore>);

#[async_trait]
impl Analyzer for Gated {
    async fn analyze(
        &self,
        incident: &Incident,
        _: DecisionMode,
        _: tokio::time::Instant,
    ) -> Proposal {
        if let Ok(permit) = self.0.acquire().await {
            permit.forget();
        }
        ExpertEngine::builtin().propose(incident)
    }
}

async fn watch(
    s: &TestServer,
    token: &str,
    after_version: u64,
) -> tonic::Streaming<verdict::proto::WatchDecisionResponse> {
    s.decisions
        .clone()
        .watch_decision(WatchDecisionRequest {
            token: token.into(),
            after_version,
        })
        .await
        .expect("watch starts")
        .into_inner()
}

/// Every message until the stream ends.
async fn collect(
    mut stream: tonic::Streaming<verdict::proto::WatchDecisionResponse>,
) -> Vec<Decision> {
    let mut out = vec![];
    while let Some(m) = stream.message().await.expect("stream ok") {
        out.push(m.decision.expect("decision"));
    }
    out
}

fn versions_and_states(ds: &[Decision]) -> Vec<(u64, i32)> {
    ds.iter().map(|d| (d.version, d.state)).collect()
}

async fn approve_and_complete(s: &TestServer, token: &str) {
    let mut c = s.decisions.clone();
    c.approve_decision(ApproveDecisionRequest {
        request_id: String::new(),
        token: token.into(),
        actor: "alice".into(),
        expected_version: 0,
    })
    .await
    .expect("approve");
    c.complete_decision(CompleteDecisionRequest {
        lease_id: String::new(),
        request_id: String::new(),
        token: token.into(),
        success: true,
        output: "ok".into(),
    })
    .await
    .expect("complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_on_one_replica_sees_every_change_made_on_another_in_order() {
    let redis = RedisServer::start();
    let gate = Arc::new(Semaphore::new(0));
    let mut a = TestServer::start(config(Some(&redis))).await;
    let b = TestServer::start_overridden(
        config(Some(&redis)),
        Overrides {
            analyzer: Some(Arc::new(Gated(gate.clone()))),
            ..Overrides::default()
        },
    )
    .await;
    let id = create_incident(&mut a, "PodCrashLooping").await;
    let d = b
        .decisions
        .clone()
        .get_or_create_decision(GetOrCreateDecisionRequest {
            incident_id: id,
            wait: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(d.state, DecisionState::Analyzing as i32);

    let mut stream = watch(&a, &d.token, 0).await;
    let first = stream.message().await.unwrap().unwrap().decision.unwrap();
    assert_eq!(
        (first.version, first.state),
        (1, DecisionState::Analyzing as i32),
        "the snapshot while analyzing"
    );
    gate.add_permits(1);
    let ready = stream.message().await.unwrap().unwrap().decision.unwrap();
    assert_eq!(
        (ready.version, ready.state),
        (2, DecisionState::Ready as i32)
    );
    approve_and_complete(&b, &d.token).await;
    let rest = collect(stream).await;
    assert_eq!(
        versions_and_states(&rest),
        vec![
            (3, DecisionState::Executing as i32),
            (4, DecisionState::Completed as i32)
        ],
        "then each change once, in order, and the stream ends after the terminal state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_watchers_each_receive_every_change_exactly_once() {
    let redis = RedisServer::start();
    let mut a = TestServer::start(config(Some(&redis))).await;
    let b = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut a, "HighLatencyP99").await;
    let d = decide(&mut a, &id).await;

    // 1 000 streams over 10 connections, half on each replica.
    let mut channels = vec![];
    for i in 0..10 {
        let s = if i % 2 == 0 { &a } else { &b };
        let ch = tonic::transport::Channel::from_shared(format!(
            "http://{}",
            s.running.as_ref().unwrap().addr
        ))
        .unwrap()
        .connect()
        .await
        .unwrap();
        channels.push(ch);
    }
    let mut streams = vec![];
    for i in 0..1000 {
        let mut c = verdict::proto::decision_service_client::DecisionServiceClient::new(
            channels[i % 10].clone(),
        );
        let mut s = c
            .watch_decision(WatchDecisionRequest {
                token: d.token.clone(),
                after_version: 0,
            })
            .await
            .unwrap()
            .into_inner();
        // The snapshot proves the watcher is registered.
        let snap = s.message().await.unwrap().unwrap().decision.unwrap();
        assert_eq!(snap.version, d.version);
        streams.push(s);
    }
    assert_eq!(
        a.running.as_ref().unwrap().live_watchers() + b.running.as_ref().unwrap().live_watchers(),
        1000
    );
    approve_and_complete(&a, &d.token).await;
    let mut all = tokio::task::JoinSet::new();
    for s in streams {
        all.spawn(collect(s));
    }
    let mut n = 0;
    while let Some(got) = all.join_next().await {
        let got = got.unwrap();
        assert_eq!(
            versions_and_states(&got),
            vec![
                (3, DecisionState::Executing as i32),
                (4, DecisionState::Completed as i32)
            ]
        );
        n += 1;
    }
    assert_eq!(n, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_after_a_version_misses_nothing_and_terminal_tokens_end_at_once() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    approve_and_complete(&s, &d.token).await;

    let resumed = collect(watch(&s, &d.token, 1).await).await;
    assert_eq!(
        versions_and_states(&resumed),
        vec![
            (2, DecisionState::Ready as i32),
            (3, DecisionState::Executing as i32),
            (4, DecisionState::Completed as i32)
        ]
    );
    let snapshot_only = collect(watch(&s, &d.token, 0).await).await;
    assert_eq!(
        versions_and_states(&snapshot_only),
        vec![(4, DecisionState::Completed as i32)]
    );
    assert!(
        collect(watch(&s, &d.token, 4).await).await.is_empty(),
        "nothing after the last version"
    );

    let e = s
        .decisions
        .clone()
        .watch_decision(WatchDecisionRequest {
            token: d.token.clone(),
            after_version: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = s
        .decisions
        .clone()
        .watch_decision(WatchDecisionRequest {
            token: "DEC-000000000000".into(),
            after_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_are_freed_when_clients_disconnect() {
    let mut s = TestServer::start(config(None)).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let mut streams = vec![];
    for _ in 0..50 {
        let mut st = watch(&s, &d.token, 0).await;
        st.message().await.unwrap().unwrap();
        streams.push(st);
    }
    let running = s.running.as_ref().unwrap();
    assert_eq!(running.live_watchers(), 50);
    let mut live = running.live_watchers_changes();
    drop(streams);
    // The server learns of each disconnect from the connection (RST_STREAM):
    // wait for the count to reach zero.
    within(
        std::time::Duration::from_secs(10),
        "every watcher unregistered after its client left",
        live.wait_for(|n| *n == 0),
    )
    .await
    .expect("the server is running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_dashboard_delays_no_one_and_is_cut_off() {
    let mut s = TestServer::start(config(None)).await;
    // A dashboard that never reads, on its own connection (on a shared one,
    // HTTP/2 flow control would stall its neighbours client-side), with small
    // HTTP/2 windows so the server feels the stall early.
    let own = tonic::transport::Channel::from_shared(format!(
        "http://{}",
        s.running.as_ref().unwrap().addr
    ))
    .unwrap()
    .initial_stream_window_size(Some(16 * 1024))
    .initial_connection_window_size(Some(16 * 1024))
    .connect()
    .await
    .unwrap();
    let mut stalled = verdict::proto::decision_service_client::DecisionServiceClient::new(own)
        .watch_decisions(WatchDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let watched = decide(&mut s, &id).await;
    let watcher = watch(&s, &watched.token, 0).await;
    // Far more changes than the stalled stream's HTTP/2 window and buffer hold.
    for _ in 0..800 {
        let other = create_incident(&mut s, "PodCrashLooping").await;
        decide(&mut s, &other).await;
    }
    approve_and_complete(&s, &watched.token).await;
    let got = collect(watcher).await;
    assert_eq!(
        versions_and_states(&got),
        vec![
            (2, DecisionState::Ready as i32),
            (3, DecisionState::Executing as i32),
            (4, DecisionState::Completed as i32)
        ],
        "the live watcher got everything while the dashboard read nothing"
    );
    // The dashboard, reading at last, finds it was cut off.
    let mut received = 0;
    let read_all = async {
        loop {
            match stalled.message().await {
                Ok(Some(_)) => received += 1,
                Ok(None) => panic!("the stalled stream ended without an error"),
                Err(e) => break e,
            }
        }
    };
    // A guard against a hang, not a timing assertion.
    let end = tokio::time::timeout(std::time::Duration::from_secs(60), read_all)
        .await
        .expect("the stalled stream was never cut off");
    assert_eq!(end.code(), Code::ResourceExhausted, "{end:?}");
    assert!(received < 1600 + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_decisions_filters_by_incident_and_state() {
    let mut s = TestServer::start(config(None)).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let other = create_incident(&mut s, "PodCrashLooping").await;
    let mut only_ready = s
        .decisions
        .clone()
        .watch_decisions(WatchDecisionsRequest {
            incident_id: id.clone(),
            state: DecisionState::Ready as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    decide(&mut s, &other).await;
    let d = decide(&mut s, &id).await;
    let m = only_ready
        .message()
        .await
        .unwrap()
        .unwrap()
        .decision
        .unwrap();
    assert_eq!((m.token, m.state), (d.token, DecisionState::Ready as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_with_unavailable_and_a_resume_point() {
    let mut s = TestServer::start(config(None)).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let mut stream = watch(&s, &d.token, 0).await;
    stream.message().await.unwrap().unwrap();
    let stop = tokio::spawn(s.stop());
    let e = stream.message().await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message()
            .contains(&format!("after_version={}", d.version)),
        "{}",
        e.message()
    );
    stop.await.unwrap();
}

/// Resolves `id` through the API.
async fn resolve(s: &mut TestServer, id: &str) {
    s.incidents
        .update_incident_status(verdict::proto::UpdateIncidentStatusRequest {
            id: id.to_owned(),
            status: verdict::proto::IncidentStatus::Resolved as i32,
            actor: "alice".into(),
            note: "fixed".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

/// A `WatchDecisions` stream through `decisions`, with or without
/// incident changes.
async fn watch_all(
    mut decisions: DecisionServiceClient<Channel>,
    include_incidents: bool,
) -> tonic::Streaming<verdict::proto::WatchDecisionsResponse> {
    decisions
        .watch_decisions(WatchDecisionsRequest {
            include_incidents,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Both stores: an incident resolved through `a` reaches the watchers
/// opened through `b` (another replica, or the same one) that asked for
/// incident changes, and only those.
async fn incident_changes_reach_watchers_that_asked(
    a: &mut TestServer,
    b: DecisionServiceClient<Channel>,
) {
    let id = create_incident(a, "PodCrashLooping").await;
    let mut with = watch_all(b.clone(), true).await;
    let mut without = watch_all(b, false).await;
    resolve(a, &id).await;
    let m = within(INCIDENT_LIMIT, "the incident change", with.message())
        .await
        .unwrap()
        .unwrap();
    assert!(
        m.decision.is_none(),
        "an incident's message has no decision"
    );
    let i = m.incident.expect("the incident");
    assert_eq!(i.id, id);
    assert_eq!(i.status, verdict::proto::IncidentStatus::Resolved as i32);
    // The watcher that did not ask sees the next decision change first.
    let other = create_incident(a, "PodCrashLooping").await;
    let d = decide(a, &other).await;
    let first = within(INCIDENT_LIMIT, "a decision", without.message())
        .await
        .unwrap()
        .unwrap();
    assert!(first.incident.is_none(), "not asked for");
    assert_eq!(first.decision.unwrap().incident_id, d.incident_id);
}

const INCIDENT_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_changes_travel_the_feed_across_replicas() {
    let redis = RedisServer::start();
    let mut a = TestServer::start(config(Some(&redis))).await;
    let b = TestServer::start(config(Some(&redis))).await;
    incident_changes_reach_watchers_that_asked(&mut a, b.decisions.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_changes_reach_watchers_on_the_memory_store() {
    let mut s = TestServer::start(config(None)).await;
    let b = s.decisions.clone();
    incident_changes_reach_watchers_that_asked(&mut s, b).await;
}

/// A client codec that hands back each response message's bytes as they
/// arrived, undecoded, so a test can compare the wire itself.
struct RawResponses<Req>(std::marker::PhantomData<fn() -> Req>);

struct RawDecoder;

impl tonic::codec::Decoder for RawDecoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl<Req: prost::Message + Send + 'static> tonic::codec::Codec for RawResponses<Req> {
    type Encode = Req;
    type Decode = bytes::Bytes;
    type Encoder = tonic_prost::ProstEncoder<Req>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// A server stream of `path`, as raw message bytes.
async fn raw_stream<Req: prost::Message + Send + 'static>(
    s: &TestServer,
    path: &'static str,
    req: Req,
) -> tonic::Streaming<bytes::Bytes> {
    let mut grpc = tonic::client::Grpc::new(s.channel.clone());
    grpc.ready().await.expect("channel ready");
    grpc.server_streaming(
        tonic::Request::new(req),
        http::uri::PathAndQuery::from_static(path),
        RawResponses::<Req>(std::marker::PhantomData),
    )
    .await
    .expect("watch starts")
    .into_inner()
}

async fn get(s: &TestServer, token: &str) -> Decision {
    s.decisions
        .clone()
        .get_decision(verdict::proto::GetDecisionRequest {
            token: token.into(),
        })
        .await
        .expect("get")
        .into_inner()
        .decision
        .expect("decision")
}

/// Changes are encoded once per replica and the bytes passed through to
/// every stream: what a client receives must be exactly what the normal
/// proto types encode (and decode back) — for the per-stream snapshot, for
/// a shared change on `WatchDecision`, and the same shared bytes on
/// `WatchDecisions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_send_exactly_the_protobuf_encoding_of_each_change() {
    use prost::Message;
    use verdict::proto::{WatchDecisionResponse, WatchDecisionsResponse};
    let mut s = TestServer::start(config(None)).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let mut one = raw_stream(
        &s,
        "/verdict.v1.DecisionService/WatchDecision",
        WatchDecisionRequest {
            token: d.token.clone(),
            after_version: 0,
        },
    )
    .await;
    let mut all = raw_stream(
        &s,
        "/verdict.v1.DecisionService/WatchDecisions",
        WatchDecisionsRequest {
            incident_id: id.clone(),
            ..Default::default()
        },
    )
    .await;
    let snapshot = one.message().await.unwrap().expect("the snapshot");
    let expected = WatchDecisionResponse {
        decision: Some(get(&s, &d.token).await),
    };
    assert_eq!(snapshot, expected.encode_to_vec());
    assert_eq!(WatchDecisionResponse::decode(snapshot).unwrap(), expected);

    let mut c = s.decisions.clone();
    c.approve_decision(ApproveDecisionRequest {
        request_id: String::new(),
        token: d.token.clone(),
        actor: "alice".into(),
        expected_version: 0,
    })
    .await
    .expect("approve");
    let approved = get(&s, &d.token).await;
    assert_eq!(approved.state, DecisionState::Executing as i32);
    let change = one.message().await.unwrap().expect("the approval");
    let expected = WatchDecisionResponse {
        decision: Some(approved.clone()),
    };
    assert_eq!(change, expected.encode_to_vec(), "the shared encoding");
    assert_eq!(
        WatchDecisionResponse::decode(change.clone()).unwrap(),
        expected
    );

    let dashboard = all.message().await.unwrap().expect("the approval");
    assert_eq!(dashboard, change, "one encoding serves both streams");
    assert_eq!(
        WatchDecisionsResponse::decode(dashboard).unwrap(),
        WatchDecisionsResponse {
            decision: Some(approved),
            incident: None,
        }
    );
}

/// The dashboard's path: `WatchDecisions` over gRPC-Web (HTTP/1.1) carries
/// the same shared bytes in a gRPC-Web data frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_dashboard_receives_the_same_encoding() {
    use prost::Message;
    use verdict::proto::WatchDecisionsResponse;
    let mut s = TestServer::start(config(None)).await;
    let addr = s.running.as_ref().unwrap().addr;
    let req = WatchDecisionsRequest::default().encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(req.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&req);
    let mut resp = reqwest::Client::new()
        .post(format!(
            "http://{addr}/verdict.v1.DecisionService/WatchDecisions"
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .expect("gRPC-Web request");
    assert_eq!(resp.status(), 200);
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    // Read frames until the one carrying the decision as it is READY.
    let mut buf = Vec::new();
    let ready = loop {
        let chunk = within(INCIDENT_LIMIT, "a gRPC-Web frame", resp.chunk())
            .await
            .expect("body readable")
            .expect("the stream stays open");
        buf.extend_from_slice(&chunk);
        let mut found = None;
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < 5 + len {
                break;
            }
            assert_eq!(buf[0], 0, "a data frame, not trailers");
            let msg: Vec<u8> = buf.drain(..5 + len).skip(5).collect();
            let m = WatchDecisionsResponse::decode(&msg[..]).expect("decodes");
            if m.decision.as_ref().is_some_and(|x| x.version == d.version) {
                found = Some((msg, m));
            }
        }
        if let Some(f) = found {
            break f;
        }
    };
    let (wire, m) = ready;
    assert_eq!(m.decision.as_ref(), Some(&d));
    assert_eq!(wire, m.encode_to_vec(), "the normal protobuf encoding");
}

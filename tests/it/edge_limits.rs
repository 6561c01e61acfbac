//! Issue 12.6 and 12.7: the HTTP/2 limits the server advertises, streams
//! that never send their request, the connection cap below the open-file
//! limit, and back-off (not a spinning loop) when accepting fails.

use crate::common;

use common::{TestServer, VerdictProcess, config, create_incident, decide, within};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use verdict::proto::{ApproveDecisionRequest, WatchDecisionRequest};

/// The SETTINGS the server sends first on a new HTTP/2 connection, as
/// (identifier, value) pairs, read off the wire.
async fn server_settings(addr: std::net::SocketAddr) -> Vec<(u16, u32)> {
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    // An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    sock.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("settings");
    loop {
        let mut head = [0u8; 9];
        sock.read_exact(&mut head).await.expect("frame header");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        sock.read_exact(&mut payload).await.expect("frame payload");
        let (kind, ack) = (head[3], head[4] & 1 == 1);
        if kind == 4 && !ack {
            return payload
                .chunks_exact(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http2_limits_are_settings_the_server_advertises() {
    let defaults = TestServer::start(config(None)).await;
    let addr = defaults.running.as_ref().expect("running").addr;
    let got = within(Duration::from_secs(10), "SETTINGS", server_settings(addr)).await;
    // SETTINGS_MAX_CONCURRENT_STREAMS (3), SETTINGS_MAX_FRAME_SIZE (5),
    // SETTINGS_MAX_HEADER_LIST_SIZE (6): the documented defaults.
    assert!(got.contains(&(3, 256)), "{got:?}");
    assert!(got.contains(&(6, 16 * 1024)), "{got:?}");
    assert!(
        !got.iter().any(|(id, v)| *id == 5 && *v != 16 * 1024),
        "{got:?}"
    );

    let mut cfg = config(None);
    cfg.http2_max_concurrent_streams = 7;
    cfg.http2_max_header_list_size = 8192;
    cfg.http2_max_frame_size = 32 * 1024;
    let custom = TestServer::start(cfg).await;
    let addr = custom.running.as_ref().expect("running").addr;
    let got = within(Duration::from_secs(10), "SETTINGS", server_settings(addr)).await;
    for want in [(3, 7), (5, 32 * 1024), (6, 8192)] {
        assert!(got.contains(&want), "{want:?} in {got:?}");
    }
}

/// A unary call to `path` whose request body never sends a byte (the
/// stream stays open), answered with the status in the response headers.
async fn stalled_call(channel: &tonic::transport::Channel, path: &str) -> tonic::Status {
    use tower::ServiceExt;
    type Item = Result<http_body::Frame<tonic::codegen::Bytes>, std::convert::Infallible>;
    let body = http_body_util::StreamBody::new(futures::stream::pending::<Item>());
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://verdict{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(body))
        .expect("request");
    let resp = channel.clone().oneshot(req).await.expect("HTTP/2 exchange");
    tonic::Status::from_header_map(resp.headers()).expect("a trailers-only answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_sends_its_request_is_closed_and_watches_live_on() {
    let mut cfg = config(None);
    cfg.http2_request_timeout = Duration::from_millis(300);
    let mut s = TestServer::start(cfg).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let mut watch = s
        .decisions
        .clone()
        .watch_decision(WatchDecisionRequest {
            token: d.token.clone(),
            after_version: d.version,
        })
        .await
        .expect("watch starts")
        .into_inner();

    // Answered once the timeout passes; before, it waited forever.
    let status = within(
        Duration::from_secs(20),
        "the stalled stream answered",
        stalled_call(&s.channel, "/verdict.v1.IncidentService/GetIncident"),
    )
    .await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // The watch opened before the stalled call, so it has outlived the
    // request timeout: it still delivers the next change.
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            request_id: String::new(),
            token: d.token.clone(),
            actor: "alice".into(),
            expected_version: 0,
        })
        .await
        .expect("approve");
    let next = within(Duration::from_secs(20), "the watch update", watch.message())
        .await
        .expect("watch stream healthy")
        .expect("an update");
    assert!(next.decision.expect("decision").version > d.version);
}

/// Holds `n` plain TCP connections to `addr` open.
async fn hold(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    held
}

const ACCEPT_FAILED: &str = "accepting a connection failed";
const RECOVERED: &str = "accepting connections again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_connection_cap_stays_below_the_open_file_limit() {
    // 100 descriptors, a pool of 2: the cap is 100 - 2 - 32 = 66.
    let v = VerdictProcess::start_with_nofile(100, &["--dev", "--redis-pool-size", "2"], &[]).await;
    let held = hold(&v.addr, 120).await;
    v.wait_for_log("connection cap reached", Duration::from_secs(30))
        .await;
    drop(held);
    // Still serving, and the descriptors never ran out.
    v.serving_channel().await;
    let logs = v.logs();
    assert!(logs.contains("\"max_connections\":66"), "{logs}");
    assert!(!logs.contains(ACCEPT_FAILED), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_back_off_log_once_and_recover() {
    // A cap above what 100 descriptors allow: accepting hits EMFILE.
    let v = VerdictProcess::start_with_nofile(
        100,
        &[
            "--dev",
            "--redis-pool-size",
            "2",
            "--max-connections",
            "1000",
        ],
        &[],
    )
    .await;
    let held = hold(&v.addr, 150).await;
    v.wait_for_log(ACCEPT_FAILED, Duration::from_secs(30)).await;
    drop(held);
    v.wait_for_log(RECOVERED, Duration::from_secs(30)).await;
    v.serving_channel().await;
    let logs = v.logs();
    // Logged once per episode, not once per retry: a connection closing
    // mid-way may end an episode (and a new one may start), but a failure
    // is never logged twice without the recovery between.
    let marks: Vec<bool> = logs
        .lines()
        .filter_map(|l| {
            if l.contains(ACCEPT_FAILED) {
                Some(true)
            } else if l.contains(RECOVERED) {
                Some(false)
            } else {
                None
            }
        })
        .collect();
    assert!(marks.first() == Some(&true), "{logs}");
    assert!(
        marks.windows(2).all(|w| w[0] != w[1]),
        "failures and recoveries alternate: {logs}"
    );
    assert!(logs.contains("Too many open files"), "{logs}");
}

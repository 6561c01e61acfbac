//! Health follows the store, and an unreachable Redis fails calls with
//! UNAVAILABLE quickly instead of hanging.

use crate::common;

use common::{RedisServer, TestServer, config};
use std::time::Duration;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use verdict::proto::GetDecisionRequest;

async fn next_status(stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>) -> i32 {
    stream
        .message()
        .await
        .expect("health stream")
        .expect("a status")
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_goes_not_serving_when_redis_dies() {
    let redis = RedisServer::start();
    let s = TestServer::start(config(Some(&redis))).await;
    let mut health = HealthClient::new(s.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "verdict.v1.DecisionService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut status = next_status(&mut watch).await;
    while status != ServingStatus::Serving as i32 {
        status = next_status(&mut watch).await;
    }
    drop(redis);
    let status = next_status(&mut watch).await;
    assert_eq!(status, ServingStatus::NotServing as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_gives_unavailable_not_a_hang() {
    let mut cfg = config(None);
    cfg.dev = false;
    // A socket path in an empty private directory: nothing listens there.
    let dir = tempfile::tempdir().expect("temp dir");
    cfg.redis_url = Some(format!(
        "redis+unix://{}",
        dir.path().join("redis.sock").display()
    ));
    cfg.redis_pool_wait = Duration::from_millis(300);
    let mut s = TestServer::start(cfg).await;
    let mut health = HealthClient::new(s.channel.clone());
    let r = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, ServingStatus::NotServing as i32);
    // Bounded by the pool wait; the client deadline only guards against a hang.
    let mut req = tonic::Request::new(GetDecisionRequest {
        token: "DEC-0123456789AB".into(),
    });
    req.set_timeout(Duration::from_secs(20));
    let e = s.decisions.get_decision(req).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_stops_the_server() {
    let s = TestServer::start(config(None)).await;
    let addr = s.running.as_ref().unwrap().addr;
    s.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

/// The edge stack gives every request an id: the caller's `x-request-id`
/// is kept and echoed, a request without one gets a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_a_request_id() {
    let s = TestServer::start(config(None)).await;
    let mut health = HealthClient::new(s.channel.clone());
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    let mut req = tonic::Request::new(check());
    req.metadata_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    let r = health.check(req).await.unwrap();
    assert_eq!(
        r.metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-42")
    );
    let r = health.check(check()).await.unwrap();
    let generated = r
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an id is generated");
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
}

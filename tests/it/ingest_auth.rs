//! The webhook's bearer token, as deployed: the real `verdict serve`
//! binary, configured through `VERDICT_WEBHOOK_TOKEN_ENV`, reading the
//! token from the variable it names. (A separate process because the token
//! comes from the environment, which a test must not change under other
//! tests' feet.)

use crate::common;

use common::{RedisServer, VerdictProcess, within};
use std::process::Stdio;
use std::time::Duration;

const TOKEN: &str = "s3cret-t0ken-for-tests";

async fn post(addr: &str, auth: Option<&str>) -> (u16, Option<String>, String) {
    let body = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "verdict",
        "groupKey": "{}:{}", "truncatedAlerts": 0,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "PodCrashLooping", "namespace": "shop", "service": "checkout"},
            "annotations": {}, "startsAt": "2024-05-01T12:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0123456789abcdef"
        }]
    });
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/alertmanager"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_requires_the_configured_bearer_token() {
    let redis = RedisServer::start();
    let v = VerdictProcess::start(
        &["--redis-url", &redis.url()],
        &[
            ("VERDICT_WEBHOOK_TOKEN_ENV", "HOOK_TOKEN"),
            ("HOOK_TOKEN", TOKEN),
        ],
    )
    .await;
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for auth in [
        None,
        Some(wrong.as_str()),
        Some(basic.as_str()),
        Some("Bearer "),
    ] {
        let (status, challenge, body) = post(&v.addr, auth).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"verdict\""));
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(answer["error"].is_string(), "{answer}");
    }
    let mut conn = redis.conn().await;
    let stored: Vec<String> = redis::AsyncCommands::keys(&mut conn, "verdict:*incident*")
        .await
        .unwrap();
    assert!(
        stored.is_empty(),
        "nothing stored while unauthorized: {stored:?}"
    );

    let good = format!("Bearer {TOKEN}");
    let (status, _, body) = post(&v.addr, Some(&good)).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["incidents"][0]["opened"], true, "{answer}");

    let logs = v.logs();
    assert!(!logs.contains(TOKEN), "the token must never be logged");
    assert!(logs.contains("bearer token"), "refusals are logged: {logs}");
}

#[tokio::test]
async fn a_named_but_unset_token_variable_stops_the_start() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .env(
            "VERDICT_WEBHOOK_TOKEN_ENV",
            "VERDICT_TEST_SURELY_UNSET_TOKEN",
        )
        .env_remove("VERDICT_TEST_SURELY_UNSET_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn verdict");
    // Its exit is the event; stderr is read to the end meanwhile, so a full
    // pipe cannot stall it.
    let mut stderr = child.stderr.take().expect("stderr");
    let mut err = String::new();
    let (status, read) = within(
        Duration::from_secs(30),
        "verdict exiting without its webhook token",
        async {
            tokio::join!(
                child.wait(),
                tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
            )
        },
    )
    .await;
    read.expect("read stderr");
    assert!(!status.expect("wait for verdict").success());
    assert!(err.contains("VERDICT_TEST_SURELY_UNSET_TOKEN"), "{err}");
}

/// Issue 12.9: with the webhook's token configured, `IngestSignals` over
/// gRPC demands the same key as `authorization: Bearer` metadata — the
/// gRPC door no longer opens incidents without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_signals_over_grpc_requires_the_same_bearer_token() {
    use verdict::proto::incident_service_client::IncidentServiceClient;
    use verdict::proto::{IngestSignalsRequest, Signal};

    let redis = RedisServer::start();
    let v = VerdictProcess::start(
        &["--redis-url", &redis.url()],
        &[
            ("VERDICT_WEBHOOK_TOKEN_ENV", "HOOK_TOKEN"),
            ("HOOK_TOKEN", TOKEN),
        ],
    )
    .await;
    let mut client = IncidentServiceClient::new(v.serving_channel().await);
    let request = |auth: Option<&str>| {
        let mut req = tonic::Request::new(IngestSignalsRequest {
            signals: vec![Signal {
                alert_name: "PodCrashLooping".into(),
                labels: [("service".to_string(), "checkout".to_string())].into(),
                fingerprint: "fp-grpc-ingest".into(),
                ..Default::default()
            }],
        });
        if let Some(a) = auth {
            req.metadata_mut()
                .insert("authorization", a.parse().expect("ascii metadata"));
        }
        req
    };
    let wrong = format!("Bearer {TOKEN}x");
    for auth in [None, Some(wrong.as_str()), Some("Bearer ")] {
        let e = client
            .ingest_signals(request(auth))
            .await
            .expect_err("refused without the token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{auth:?}: {e:?}");
    }
    let mut conn = redis.conn().await;
    let stored: Vec<String> = redis::AsyncCommands::keys(&mut conn, "verdict:*incident*")
        .await
        .unwrap();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");

    let good = format!("Bearer {TOKEN}");
    let answer = client
        .ingest_signals(request(Some(&good)))
        .await
        .expect("admitted with the token")
        .into_inner();
    assert_eq!(answer.incidents.len(), 1, "{answer:?}");
    assert!(!v.logs().contains(TOKEN), "the token must never be logged");
}

//! OpenTelemetry export: a `verdict serve` child with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a fake OTLP/HTTP collector (a
//! real HTTP server started by the test) takes the caller's `traceparent`,
//! passes the same trace on to the LLM call, and exports its spans of that
//! trace to the collector.

use crate::common::fake_llm::{FakeLlm, Reply, proposal};
use crate::common::{IncidentBuilder, VerdictProcess, within};
use std::time::Duration;
use tokio::sync::mpsc;
use verdict::proto::GetOrCreateDecisionRequest;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::incident_service_client::IncidentServiceClient;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A collector accepting `POST /v1/traces`; every body is handed to the
/// returned receiver (bounded: the test reads as they come).
async fn collector() -> (String, mpsc::Receiver<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body.to_vec()).await;
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind collector");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), rx, task)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_reaches_the_llm_and_the_collector() {
    let (endpoint, mut exported, _collector) = collector().await;
    let llm = FakeLlm::always(Reply::Proposal(proposal(
        "scale",
        "checkout",
        Some(4),
        "low",
    )))
    .await;
    let verdict = VerdictProcess::start(
        &[
            "--dev",
            "--llm-base-url",
            &llm.base_url(),
            "--llm-cache-ttl",
            "0s",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            // Export within 100 ms instead of the default 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let channel = verdict.serving_channel().await;
    let id = IncidentServiceClient::new(channel.clone())
        .create_incident(
            IncidentBuilder::alerting("Checkout in trouble", "HighLatencyP99", "checkout")
                .request(),
        )
        .await
        .expect("create")
        .into_inner()
        .incident
        .expect("incident")
        .id;

    let mut req = tonic::Request::new(GetOrCreateDecisionRequest {
        incident_id: id,
        wait: true,
        ..Default::default()
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .expect("metadata"),
    );
    DecisionServiceClient::new(channel)
        .get_or_create_decision(req)
        .await
        .expect("decide");

    let seen = llm.requests();
    let sent = seen
        .first()
        .and_then(|s| s.traceparent.clone())
        .unwrap_or_else(|| panic!("the LLM call carried no traceparent: {seen:?}"));
    assert!(sent.contains(TRACE_ID), "{sent}");

    let raw = hex(TRACE_ID);
    within(
        Duration::from_secs(30),
        "a span of the caller's trace exported",
        async {
            loop {
                let body = exported.recv().await.expect("collector running");
                if body.windows(raw.len()).any(|w| w == raw.as_slice()) {
                    return;
                }
            }
        },
    )
    .await;
}

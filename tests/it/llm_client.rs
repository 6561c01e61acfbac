//! The LLM client and its layers against a scripted OpenAI-compatible
//! server: retries of transient failures (5xx, 429 with Retry-After), the
//! response_format fallback, the circuit breaker, the per-attempt timeout
//! and the API key.

use crate::common;

use common::fake_llm::{FakeLlm, Reply, proposal};
use serde_json::Value;
use std::time::{Duration, Instant};
use verdict::engine::EngineError;
use verdict::engine::llm::{ApiKey, ChatRequest, LlmClient, LlmSettings};
use verdict::middleware::BreakerState;
use verdict::middleware::retry::RetrySettings;

fn settings(fake: &FakeLlm) -> LlmSettings {
    LlmSettings {
        base_url: fake.base_url(),
        model: "fake-model".into(),
        provider: "fake".into(),
        api_key: None,
        temperature: 0.2,
        timeout: Duration::from_secs(5),
        max_concurrency: 4,
        retry: RetrySettings {
            backoff: Duration::from_millis(10),
            ..RetrySettings::default()
        },
        breaker_threshold: 5,
        breaker_cooldown: Duration::from_secs(30),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        system: "system".into(),
        user: "{}".into(),
        schema: std::sync::Arc::new(serde_json::json!({"type": "object"})),
    }
}

fn good() -> Reply {
    Reply::Proposal(proposal("rollout_restart", "checkout", None, "medium"))
}

fn format_of(body: &Value) -> String {
    body["response_format"]["type"]
        .as_str()
        .unwrap_or("text")
        .to_owned()
}

#[tokio::test]
async fn a_500_is_retried_and_the_next_answer_used() {
    let fake = FakeLlm::script(vec![Reply::Status(500, None, "boom")], good()).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    let reply = client.chat(request()).await.unwrap();
    assert!(reply.content.contains("rollout_restart"));
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let fake = FakeLlm::script(vec![Reply::Status(429, Some("1"), "slow down")], good()).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    client.chat(request()).await.unwrap();
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, before Retry-After"
    );

    // A Retry-After beyond what is worth waiting is not waited for.
    let fake = FakeLlm::script(vec![Reply::Status(429, Some("120"), "later")], good()).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    match client.chat(request()).await {
        Err(EngineError::Status {
            status: 429,
            retry_after: Some(d),
            ..
        }) => assert_eq!(d, Duration::from_secs(120)),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_retries_are_bounded() {
    let fake = FakeLlm::always(Reply::Status(401, None, "bad key")).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    assert!(matches!(
        client.chat(request()).await,
        Err(EngineError::Status { status: 401, .. })
    ));
    assert_eq!(fake.count(), 1);

    let fake = FakeLlm::always(Reply::Status(503, None, "down")).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    assert!(matches!(
        client.chat(request()).await,
        Err(EngineError::Status { status: 503, .. })
    ));
    assert_eq!(fake.count(), 3, "one call and max_retries = 2");
}

#[tokio::test]
async fn an_unreachable_llm_is_a_connect_error() {
    let port = common::free_port();
    let mut s = settings(&FakeLlm::always(good()).await);
    s.base_url = format!("http://127.0.0.1:{port}/v1");
    let client = LlmClient::new(&s).unwrap();
    assert!(matches!(
        client.chat(request()).await,
        Err(EngineError::Connect(_))
    ));
}

#[tokio::test]
async fn response_format_steps_down_and_is_remembered() {
    // A server that knows neither json_schema nor json_object.
    let fake = FakeLlm::start(|body, _| match body.get("response_format") {
        Some(_) => Reply::Status(400, None, "response_format is not supported"),
        None => Reply::Content(proposal("scale", "checkout", Some(3), "low").to_string()),
    })
    .await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    client.chat(request()).await.unwrap();
    client.chat(request()).await.unwrap();
    let formats: Vec<_> = fake.requests().iter().map(|s| format_of(&s.body)).collect();
    assert_eq!(formats, ["json_schema", "json_object", "text", "text"]);

    // One that takes json_object only.
    let fake = FakeLlm::start(|body, _| match format_of(body).as_str() {
        "json_schema" => Reply::Status(400, None, "unknown response_format type"),
        _ => good(),
    })
    .await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    client.chat(request()).await.unwrap();
    client.chat(request()).await.unwrap();
    let formats: Vec<_> = fake.requests().iter().map(|s| format_of(&s.body)).collect();
    assert_eq!(formats, ["json_schema", "json_object", "json_object"]);
    // The request carries the model and temperature.
    let body = &fake.requests()[0].body;
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["messages"][0]["role"], "system");
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_closes_after_a_good_probe() {
    let fake = FakeLlm::always(Reply::Status(500, None, "dead")).await;
    let mut s = settings(&fake);
    s.retry.max_retries = 0;
    s.breaker_threshold = 3;
    s.breaker_cooldown = Duration::from_millis(200);
    let client = LlmClient::new(&s).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            client.chat(request()).await,
            Err(EngineError::Status { status: 500, .. })
        ));
    }
    assert_eq!(client.breaker_state(), BreakerState::Open);
    // Taken after the circuit opened, so the cool-down ends by then.
    let cooled = tokio::time::Instant::now() + s.breaker_cooldown;
    for _ in 0..50 {
        assert_eq!(client.chat(request()).await, Err(EngineError::CircuitOpen));
    }
    assert_eq!(fake.count(), 3, "an open circuit costs the LLM nothing");

    // The LLM recovers; the first call after the cool-down is the probe.
    // The end of the cool-down is the event awaited: the breaker announces
    // nothing, and its timing is unit-tested with paused time
    // (src/middleware/breaker.rs); this test needs real sockets.
    fake.set(|_, _| good());
    tokio::time::sleep_until(cooled).await;
    let probe = client.chat(request()).await;
    assert!(probe.is_ok(), "{probe:?}");
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });
    assert_eq!(fake.count(), 4);
    assert!(client.chat(request()).await.is_ok());
}

#[tokio::test]
async fn a_hung_attempt_times_out() {
    let fake = FakeLlm::always(Reply::Hang).await;
    let mut s = settings(&fake);
    s.timeout = Duration::from_millis(200);
    let client = LlmClient::new(&s).unwrap();
    let started = Instant::now();
    assert_eq!(
        client.chat(request()).await,
        Err(EngineError::Timeout(Duration::from_millis(200)))
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(fake.count(), 1, "a timeout is not retried");
}

#[tokio::test]
async fn the_api_key_is_sent_as_a_bearer_token_and_scrubbed_from_errors() {
    let fake = FakeLlm::script(
        vec![Reply::Status(
            401,
            None,
            "Incorrect API key provided: sk-test-123",
        )],
        good(),
    )
    .await;
    let mut s = settings(&fake);
    s.api_key = Some(ApiKey::new("sk-test-123"));
    let client = LlmClient::new(&s).unwrap();
    let err = client.chat(request()).await.unwrap_err();
    assert!(!err.to_string().contains("sk-test-123"), "{err}");
    assert!(err.to_string().contains("[redacted]"), "{err}");
    client.chat(request()).await.unwrap();
    for seen in fake.requests() {
        assert_eq!(seen.authorization.as_deref(), Some("Bearer sk-test-123"));
    }

    let fake = FakeLlm::always(good()).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    client.chat(request()).await.unwrap();
    assert_eq!(fake.requests()[0].authorization, None, "no key, no header");
}

#[tokio::test]
async fn odd_responses_are_errors_not_panics() {
    let fake = FakeLlm::always(Reply::Content(String::new())).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    assert!(matches!(
        client.chat(request()).await,
        Err(EngineError::Invalid(_))
    ));
    let fake = FakeLlm::always(Reply::Status(200, None, "<html>proxy</html>")).await;
    let client = LlmClient::new(&settings(&fake)).unwrap();
    assert!(matches!(
        client.chat(request()).await,
        Err(EngineError::Protocol(_))
    ));
}

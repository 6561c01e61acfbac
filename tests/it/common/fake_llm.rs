//! A scripted OpenAI-compatible server (`POST /v1/chat/completions`) on
//! `127.0.0.1:0`, for tests of the LLM client and the engines. Each request
//! is recorded (body, headers, arrival time) and answered by a handler that
//! sees the body and the request's index.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON (serialized) as the message content.
    Proposal(Value),
    /// 200 with this exact message content.
    Content(String),
    /// An error status with an optional `Retry-After` and a body.
    Status(u16, Option<&'static str>, &'static str),
    /// Never answers (the request is held for ten minutes at most).
    Hang,
}

/// One received request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Value,
    pub authorization: Option<String>,
    /// The W3C trace context the caller sent, if any.
    pub traceparent: Option<String>,
    pub at: Instant,
}

type Handler = dyn Fn(&Value, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct Shared {
    handler: Arc<Mutex<Arc<Handler>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: watch::Sender<usize>,
}

/// The running fake; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Starts a fake answering with `handler(body, index)`.
    pub async fn start(
        handler: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static,
    ) -> FakeLlm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake llm");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            handler: Arc::new(Mutex::new(Arc::new(handler))),
            seen: Arc::default(),
            count: watch::Sender::new(0),
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(answer))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm { addr, shared, task }
    }

    /// Answers with `replies` in order, then with `then` for ever.
    pub async fn script(replies: Vec<Reply>, then: Reply) -> FakeLlm {
        Self::start(move |_, i| replies.get(i).cloned().unwrap_or_else(|| then.clone())).await
    }

    /// Always the same answer.
    pub async fn always(reply: Reply) -> FakeLlm {
        Self::script(vec![], reply).await
    }

    /// Replaces the handler (e.g. a dead LLM coming back).
    pub fn set(&self, handler: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) {
        *self.shared.handler.lock().unwrap() = Arc::new(handler);
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Waits until at least `n` requests have arrived (at most 10 s).
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.shared.count.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c >= n))
            .await
            .expect("the fake LLM got the expected requests in time")
            .expect("fake alive");
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let index = {
        let mut seen = s.seen.lock().unwrap();
        seen.push(Seen {
            body: body.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            traceparent: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            at: Instant::now(),
        });
        seen.len() - 1
    };
    let handler = s.handler.lock().unwrap().clone();
    let reply = handler(&body, index);
    s.count.send_modify(|c| *c += 1);
    match reply {
        Reply::Proposal(v) => completion(&v.to_string()),
        Reply::Content(c) => completion(&c),
        Reply::Status(code, retry_after, text) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), text.to_owned()).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            r
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

fn completion(content: &str) -> Response {
    axum::Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }]
    }))
    .into_response()
}

/// A proposal JSON as a schema-following model would write it.
pub fn proposal(verb: &str, name: &str, replicas: Option<u32>, risk: &str) -> Value {
    json!({
        "verb": verb,
        "kind": "deployment",
        "name": name,
        "namespace": "shop",
        "replicas": replicas,
        "risk": risk,
        "confidence": 0.9,
        "description": format!("{verb} {name}"),
        "reasoning": format!("the model thinks {verb} helps"),
    })
}

/// The persona a request was made for (its system prompt's perspective
/// line), or "" for a plain dual-engine request.
pub fn persona_of(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .and_then(|s| s.split("Your perspective: ").nth(1))
        .unwrap_or("")
        .to_owned()
}

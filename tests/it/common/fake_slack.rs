//! A fake Slack Web API (`POST /{method}`, e.g. `/chat.postMessage`) on
//! `127.0.0.1:0` that records every call with its bearer token:
//! `chat.postMessage` (answers a new `ts`), `chat.update`,
//! `chat.postEphemeral`. A test can make the next calls of a method fail
//! ([`FakeSlack::fail`], e.g. a 429 with `Retry-After`), and signs button
//! presses as Slack would ([`signed_press`]).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The `Authorization` header.
    pub auth: String,
    pub body: Value,
    pub at: Instant,
}

/// A failure answered instead of the real thing.
struct Failure {
    method: String,
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    failures: VecDeque<Failure>,
    next_ts: u64,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    count: watch::Sender<usize>,
}

/// The running fake; stops when dropped.
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake slack");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            inner: Arc::default(),
            count: watch::Sender::new(0),
        };
        let app = axum::Router::new()
            .route("/{method}", axum::routing::post(handle))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack { addr, shared, task }
    }

    /// The base URL to configure as `notify_slack_api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.inner.lock().unwrap().calls.clone()
    }

    /// Calls of one method so far.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Answers the next call of `method` with `status` (and a
    /// `Retry-After` header when given).
    pub fn fail(&self, method: &str, status: u16, retry_after: Option<u64>) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .failures
            .push_back(Failure {
                method: method.into(),
                status,
                retry_after,
                body: json!({ "ok": false, "error": "ratelimited" }),
            });
    }

    /// Waits until the recorded calls satisfy `done` (woken by each call).
    pub async fn until(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let mut rx = self.shared.count.subscribe();
        super::within(Duration::from_secs(30), what, async {
            loop {
                let calls = self.calls();
                if done(&calls) {
                    return calls;
                }
                rx.changed().await.expect("fake slack running");
            }
        })
        .await
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The approve and reject ids on a posted or updated card (None: no
/// buttons).
pub fn buttons(call: &Call) -> Option<(String, String)> {
    let actions = call.body["blocks"]
        .as_array()?
        .iter()
        .find(|b| b["type"] == "actions")?;
    Some((
        actions["elements"][0]["value"].as_str()?.to_string(),
        actions["elements"][1]["value"].as_str()?.to_string(),
    ))
}

/// A `block_actions` interactivity body for `user` pressing the button
/// `value` in `channel`, form-encoded as Slack sends it.
pub fn press_body(user: &str, channel: &str, value: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user, "username": "u" },
        "channel": { "id": channel, "name": "incidents" },
        "container": { "type": "message", "channel_id": channel, "message_ts": "1.000001" },
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [{ "type": "button", "action_id": "approve", "block_id": "verdict", "value": value }],
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// Slack's `v0` signature of `body` at `timestamp` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

async fn handle(
    State(s): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (failure, ts) = {
        let mut g = s.inner.lock().unwrap();
        g.calls.push(Call {
            method: method.clone(),
            auth,
            body: body.clone(),
            at: Instant::now(),
        });
        g.next_ts += 1;
        let ts = format!("1700000000.{:06}", g.next_ts);
        let pos = g.failures.iter().position(|f| f.method == method);
        (pos.and_then(|p| g.failures.remove(p)), ts)
    };
    s.count.send_modify(|n| *n += 1);
    if let Some(f) = failure {
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(f.body)).into_response();
        if let Some(after) = f.retry_after {
            response
                .headers_mut()
                .insert("retry-after", after.to_string().parse().expect("header"));
        }
        return response;
    }
    let reply = match method.as_str() {
        "chat.postMessage" => json!({ "ok": true, "channel": body["channel"], "ts": ts }),
        "chat.update" => json!({ "ok": true, "channel": body["channel"], "ts": body["ts"] }),
        _ => json!({ "ok": true }),
    };
    axum::Json(reply).into_response()
}

//! A fake Telegram Bot API (`POST /bot{TOKEN}/{method}`) on `127.0.0.1:0`
//! that records every call: `sendMessage` (answers a new message id),
//! `editMessageText`, `answerCallbackQuery`, and `getUpdates` (long-polls
//! the button presses a test queues with [`FakeTelegram::press`]). A test
//! can make the next calls of a method fail ([`FakeTelegram::fail`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub token: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// (method, status, body) answered instead of the real thing, in order.
    failures: VecDeque<(String, u16, Value)>,
    updates: Vec<Value>,
    next_update: i64,
    next_message: i64,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    count: watch::Sender<usize>,
    pressed: Arc<Notify>,
}

/// The running fake; stops when dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake telegram");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            inner: Arc::default(),
            count: watch::Sender::new(0),
            pressed: Arc::new(Notify::new()),
        };
        let app = axum::Router::new()
            .route("/{bot}/{method}", axum::routing::post(handle))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram { addr, shared, task }
    }

    /// The base URL to configure as `notify_telegram_api_url`.
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

    /// Answers the next call of `method` with `status` and `body`
    /// (queued: call repeatedly for several failures).
    pub fn fail(&self, method: &str, status: u16, body: Value) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .failures
            .push_back((method.into(), status, body));
    }

    /// Queues a button press by `user` on message `message` of `chat`;
    /// returns the callback query id.
    pub fn press(&self, user: i64, chat: i64, message: i64, data: &str) -> String {
        let id = {
            let mut g = self.shared.inner.lock().unwrap();
            g.next_update += 1;
            let id = g.next_update;
            g.updates.push(json!({
                "update_id": id,
                "callback_query": {
                    "id": format!("cb{id}"),
                    "from": { "id": user, "is_bot": false, "first_name": "u" },
                    "message": { "message_id": message, "chat": { "id": chat, "type": "group" } },
                    "data": data,
                }
            }));
            format!("cb{id}")
        };
        self.shared.pressed.notify_waiters();
        id
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
                rx.changed().await.expect("fake telegram running");
            }
        })
        .await
    }

    /// Waits for the answer to callback query `id` and returns its text.
    pub async fn answer_to(&self, id: &str) -> String {
        let calls = self
            .until(&format!("answerCallbackQuery({id})"), |c| {
                c.iter()
                    .any(|c| c.method == "answerCallbackQuery" && c.body["callback_query_id"] == id)
            })
            .await;
        calls
            .iter()
            .find(|c| c.method == "answerCallbackQuery" && c.body["callback_query_id"] == id)
            .and_then(|c| c.body["text"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The approve and reject ids of a sent or edited card's keyboard.
pub fn buttons(call: &Call) -> Option<(String, String)> {
    let row = call.body["reply_markup"]["inline_keyboard"].get(0)?;
    Some((
        row[0]["callback_data"].as_str()?.to_string(),
        row[1]["callback_data"].as_str()?.to_string(),
    ))
}

async fn handle(
    State(s): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let token = bot.strip_prefix("bot").unwrap_or(&bot).to_string();
    let failure = {
        let mut g = s.inner.lock().unwrap();
        g.calls.push(Call {
            method: method.clone(),
            token,
            body: body.clone(),
            at: Instant::now(),
        });
        let pos = g.failures.iter().position(|f| f.0 == method);
        pos.and_then(|p| g.failures.remove(p))
    };
    s.count.send_modify(|n| *n += 1);
    if let Some((_, status, body)) = failure {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response();
    }
    let result = match method.as_str() {
        "sendMessage" => {
            let mut g = s.inner.lock().unwrap();
            g.next_message += 1;
            json!({ "message_id": g.next_message, "chat": { "id": body["chat_id"] }, "text": body["text"] })
        }
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let wait = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
            let pending = |g: &Inner| -> Vec<Value> {
                g.updates
                    .iter()
                    .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                    .cloned()
                    .collect()
            };
            let notified = s.pressed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = pending(&s.inner.lock().unwrap());
            if now.is_empty() {
                let _ = tokio::time::timeout(wait, notified).await;
                Value::Array(pending(&s.inner.lock().unwrap()))
            } else {
                Value::Array(now)
            }
        }
        _ => Value::Bool(true),
    };
    axum::Json(json!({ "ok": true, "result": result })).into_response()
}

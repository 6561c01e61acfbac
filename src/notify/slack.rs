//! The Slack Web API client (`chat.postMessage` with Block Kit buttons,
//! `chat.update`, `chat.postEphemeral`) and the interactivity route that
//! receives button presses.
//!
//! **Signed requests only.** Slack signs every interactivity request with
//! the app's signing secret: `v0=` + hex HMAC-SHA256 over
//! `v0:{timestamp}:{body}`. A request without a valid signature, or whose
//! timestamp is more than five minutes from now (a replay), is refused with
//! 401 before its body is even parsed, and nothing changes.
//!
//! **200 at once, then act.** Slack shows an error unless the route answers
//! within 3 s, so the press is queued (bounded) and answered; the
//! notifier's Slack task applies it and tells the user the outcome with an
//! ephemeral message only they see.
//!
//! **Rates.** Slack allows about one message per second per channel; every
//! post and update to a channel waits for that channel's turn (`limiter.rs`),
//! and a 429's `Retry-After` (seconds) pauses that channel and is handed to
//! the outbox, which retries the job then.
//! The bot token travels only in the `Authorization` header, never logged.

use super::Notifier;
use super::answer::Presser;
use super::limiter::Limiter;
use super::settings::Secret;
use super::telegram::ChatError;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The interactivity route.
pub const INTERACTIONS_PATH: &str = "/api/v1/slack/interactions";
/// Oldest (or furthest in the future) request timestamp accepted.
const MAX_SKEW_SECS: i64 = 5 * 60;
/// Largest interactivity body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Timeout of one Web API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two messages to one channel (Slack: about one a
/// second per channel). No global spacing: Slack's per-app limits are per
/// method and far above what cards need; a 429 is honoured per channel.
const CHANNEL_SPACING: Duration = Duration::from_secs(1);
/// Longest a message waits for its channel's turn (see `limiter.rs`).
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Longest card text in one Block Kit section (Slack's limit is 3 000).
const SECTION_CHARS: usize = 2900;
/// Presses queued between the route and the Slack task.
pub(super) const PRESS_QUEUE: usize = 256;

/// One verified button press, queued for the Slack task.
#[derive(Debug, Clone)]
pub(super) struct Press {
    user: String,
    channel: Option<String>,
    button: String,
}

/// A Slack app's bot.
#[derive(Clone)]
pub struct Slack {
    http: reqwest::Client,
    api_url: String,
    token: Secret,
    /// Paces messages per channel (shared by clones).
    limits: Arc<Limiter<String>>,
}

/// The card's blocks: its text as plain text (model-written reasoning is
/// never interpreted as markup) and, while it takes answers, the two
/// buttons whose `value` is the opaque id.
pub fn blocks(text: &str, buttons: Option<(&str, &str)>) -> Value {
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "plain_text", "text": super::card::shorten_keep_lines(text, SECTION_CHARS) },
    })];
    if let Some((approve, reject)) = buttons {
        blocks.push(json!({
            "type": "actions",
            "block_id": "verdict",
            "elements": [
                { "type": "button", "action_id": "approve", "style": "primary",
                  "text": { "type": "plain_text", "text": "✅ Approve" }, "value": approve },
                { "type": "button", "action_id": "reject", "style": "danger",
                  "text": { "type": "plain_text", "text": "❌ Reject" }, "value": reject },
            ],
        }));
    }
    Value::Array(blocks)
}

impl Slack {
    pub fn new(api_url: &str, token: Secret) -> anyhow::Result<Slack> {
        Ok(Slack {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            api_url: api_url.trim_end_matches('/').to_owned(),
            token,
            limits: Arc::new(Limiter::new(Duration::ZERO, MAX_WAIT)),
        })
    }

    /// Waits for `channel`'s turn; a turn further off than [`MAX_WAIT`] is
    /// a [`ChatError::RetryAfter`].
    async fn pace(&self, channel: &str) -> Result<(), ChatError> {
        self.limits
            .acquire(&channel.to_owned(), CHANNEL_SPACING)
            .await
            .map_err(ChatError::RetryAfter)
    }

    /// Honours a 429: its `Retry-After` pauses the channel.
    fn honour<T>(&self, channel: &str, r: Result<T, ChatError>) -> Result<T, ChatError> {
        if let Err(ChatError::RetryAfter(after)) = &r {
            self.limits
                .pause(&channel.to_owned(), tokio::time::Instant::now() + *after);
        }
        r
    }

    /// Calls `method` with `body`; the whole reply on success.
    async fn call(&self, method: &str, body: Value) -> Result<Value, ChatError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.api_url))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token.expose()),
            )
            .header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body.to_string())
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| ChatError::Unavailable(format!("{method}: {}", e.without_url())))?;
        let status = response.status();
        if status.as_u16() == 429 {
            let after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(ChatError::RetryAfter(Duration::from_secs(after)));
        }
        let text = response
            .text()
            .await
            .map_err(|e| ChatError::Unavailable(format!("{method}: {}", e.without_url())))?;
        if status.is_server_error() || status.as_u16() == 408 {
            return Err(ChatError::Unavailable(format!("{method}: {status}")));
        }
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && reply["ok"] == Value::Bool(true) {
            return Ok(reply);
        }
        let error: String = reply["error"]
            .as_str()
            .unwrap_or("no error given")
            .chars()
            .take(200)
            .collect();
        match error.as_str() {
            "ratelimited" => Err(ChatError::RetryAfter(Duration::from_secs(1))),
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => Err(
                ChatError::Unavailable(format!("{method}: {status} {error}")),
            ),
            _ => Err(ChatError::Refused(format!("{method}: {status} {error}"))),
        }
    }

    /// Posts a card; the new message's `ts`.
    pub async fn post(
        &self,
        channel: &str,
        text: &str,
        buttons: Option<(&str, &str)>,
    ) -> Result<String, ChatError> {
        let body = json!({ "channel": channel, "text": text, "blocks": blocks(text, buttons) });
        self.pace(channel).await?;
        let reply = self.call("chat.postMessage", body).await;
        let reply = self.honour(channel, reply)?;
        reply["ts"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ChatError::Unavailable("chat.postMessage: no ts".into()))
    }

    /// Replaces a card's text and buttons (None: the buttons go).
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        buttons: Option<(&str, &str)>,
    ) -> Result<(), ChatError> {
        let body = json!({
            "channel": channel, "ts": ts, "text": text, "blocks": blocks(text, buttons),
        });
        self.pace(channel).await?;
        let reply = self.call("chat.update", body).await;
        self.honour(channel, reply).map(|_| ())
    }

    /// Tells `user` alone something in `channel`.
    pub async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), ChatError> {
        let body = json!({ "channel": channel, "user": user, "text": text });
        self.call("chat.postEphemeral", body).await.map(|_| ())
    }
}

/// Whether `signature` (`v0=<hex>`) is Slack's signature of `body` sent at
/// `timestamp`, compared in constant time.
pub fn verify(secret: &Secret, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("v0=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Whether a request timestamp (Unix seconds) is within five minutes of
/// `now`.
fn fresh(timestamp: &str, now: i64) -> bool {
    timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now - t).abs() <= MAX_SKEW_SECS)
}

/// The part of a `block_actions` payload verdict reads.
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: Id,
    #[serde(default)]
    channel: Option<Id>,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Debug, Deserialize)]
struct Id {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Action {
    #[serde(default)]
    value: Option<String>,
}

/// `POST /api/v1/slack/interactions`: signature and age checked, the press
/// queued, 200 at once.
pub(super) async fn receive(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let Some(secret) = n.settings.slack.as_ref().map(|s| &s.signing_secret) else {
        return StatusCode::NOT_FOUND;
    };
    if body.len() > MAX_BODY_BYTES {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let timestamp = header("x-slack-request-timestamp");
    // Real time, not the notifier's clock: freshness is about when Slack
    // signed the request.
    if !fresh(timestamp, chrono::Utc::now().timestamp())
        || !verify(secret, timestamp, &body, header("x-slack-signature"))
    {
        tracing::warn!("Slack interactivity request refused: bad or stale signature");
        return StatusCode::UNAUTHORIZED;
    }
    let Some(json) = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
    else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(p) = serde_json::from_str::<Payload>(&json) else {
        return StatusCode::BAD_REQUEST;
    };
    if p.kind != "block_actions" {
        return StatusCode::OK;
    }
    let Some(button) = p.actions.into_iter().find_map(|a| a.value) else {
        return StatusCode::OK;
    };
    let press = Press {
        user: p.user.id,
        channel: p.channel.map(|c| c.id),
        button,
    };
    match n.slack_presses.try_send(press) {
        Ok(()) => StatusCode::OK,
        Err(_) => {
            tracing::warn!("Slack press queue full; press refused");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl Notifier {
    /// Applies queued Slack presses and tells each user the outcome.
    pub async fn run_slack_answers(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut rx) = self.slack_queued.lock().await.take() else {
            return;
        };
        let Some(slack) = self.slack.clone() else {
            return;
        };
        loop {
            let p = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => return },
                _ = shutdown.cancelled() => return,
            };
            let reply = self
                .press(
                    Presser::Slack {
                        user: &p.user,
                        channel: p.channel.as_deref(),
                    },
                    &p.button,
                )
                .await;
            if let Some(channel) = &p.channel
                && let Err(e) = slack.ephemeral(channel, &p.user, &reply).await
            {
                tracing::warn!(error = %e, "chat.postEphemeral failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented example request.
    #[test]
    fn slacks_example_signature_verifies() {
        let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let ts = "1531420618";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(verify(&secret, ts, body, sig));
        assert!(!verify(&secret, "1531420619", body, sig));
        assert!(!verify(&secret, ts, body, "v0=00"));
        assert!(!verify(&secret, ts, body, ""));
    }

    #[test]
    fn only_fresh_timestamps_pass() {
        assert!(fresh("1000", 1000 + 300));
        assert!(!fresh("1000", 1000 + 301));
        assert!(!fresh("", 1000) && !fresh("x", 1000));
    }

    #[test]
    fn blocks_carry_ids_and_lose_buttons_when_closed() {
        let open = blocks("t", Some(("a", "r")));
        assert_eq!(open[1]["elements"][0]["value"], "a");
        assert_eq!(open[1]["elements"][1]["value"], "r");
        assert_eq!(blocks("t", None).as_array().map(Vec::len), Some(1));
    }
}

//! The Telegram Bot API client: `sendMessage` with an inline keyboard,
//! `editMessageText`, `answerCallbackQuery`, `getUpdates`.
//!
//! Every failure becomes a [`ChatError`] that says whether and when to try
//! again: a 429 carries Telegram's `parameters.retry_after`, which the
//! outbox honours. The token is part of the URL path, so neither URLs nor
//! reqwest errors (which may quote them) are ever logged.

use super::limiter::Limiter;
use super::settings::Secret;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Timeout of one ordinary call (the long poll adds its own wait).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two messages sent or edited by this replica:
/// Telegram allows about 30 a second per bot; 25 leaves room for answers.
const MESSAGE_SPACING: Duration = Duration::from_millis(40);
/// Least time between two messages to one chat: about one a second.
const CHAT_SPACING: Duration = Duration::from_secs(1);
/// Least time between two messages to one group (negative ids): 20 a
/// minute.
const GROUP_SPACING: Duration = Duration::from_secs(3);
/// Longest a message waits for its slot; a later one is retried from the
/// outbox (see `limiter.rs`).
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Why a chat API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Rate limited: try again after this long.
    #[error("rate limited; retry after {0:?}")]
    RetryAfter(Duration),
    /// Unreachable, timed out, or a 5xx: try again later.
    #[error("chat API unavailable: {0}")]
    Unavailable(String),
    /// Refused (4xx): retrying the same call will not help.
    #[error("chat API refused the call: {0}")]
    Refused(String),
}

/// A Telegram bot.
#[derive(Clone)]
pub struct Telegram {
    http: reqwest::Client,
    api_url: String,
    token: Secret,
    /// Paces messages per chat and per bot (shared by clones: one bot,
    /// one pace).
    limits: std::sync::Arc<Limiter<i64>>,
}

/// A button press, as `getUpdates` and the webhook deliver it.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
}

/// Approve and reject buttons carrying opaque ids.
pub fn keyboard(approve: &str, reject: &str) -> Value {
    json!({ "inline_keyboard": [[
        { "text": "✅ Approve", "callback_data": approve },
        { "text": "❌ Reject", "callback_data": reject },
    ]]})
}

impl Telegram {
    pub fn new(api_url: &str, token: Secret) -> anyhow::Result<Telegram> {
        Ok(Telegram {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            api_url: api_url.trim_end_matches('/').to_owned(),
            token,
            limits: std::sync::Arc::new(Limiter::new(MESSAGE_SPACING, MAX_WAIT)),
        })
    }

    /// Waits for this replica's turn to send or edit a message in `chat`;
    /// a turn further off than [`MAX_WAIT`] is a [`ChatError::RetryAfter`].
    async fn pace(&self, chat: i64) -> Result<(), ChatError> {
        let spacing = if chat < 0 {
            GROUP_SPACING
        } else {
            CHAT_SPACING
        };
        self.limits
            .acquire(&chat, spacing)
            .await
            .map_err(ChatError::RetryAfter)
    }

    /// Honours a 429: its `retry_after` pauses `chat`, or every chat when
    /// the call had none (answers, polling).
    fn honour<T>(&self, chat: Option<i64>, r: Result<T, ChatError>) -> Result<T, ChatError> {
        if let Err(ChatError::RetryAfter(after)) = &r {
            let until = tokio::time::Instant::now() + *after;
            match chat {
                Some(c) => self.limits.pause(&c, until),
                None => self.limits.pause_all(until),
            }
        }
        r
    }

    /// Calls `method` with `body`; the `result` on success.
    async fn call(&self, method: &str, body: Value, timeout: Duration) -> Result<Value, ChatError> {
        let url = format!("{}/bot{}/{method}", self.api_url, self.token.expose());
        let response = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .timeout(timeout)
            .send()
            .await
            // Without the URL: it holds the token.
            .map_err(|e| ChatError::Unavailable(format!("{method}: {}", e.without_url())))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ChatError::Unavailable(format!("{method}: {}", e.without_url())))?;
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && reply["ok"] == Value::Bool(true) {
            return Ok(reply["result"].clone());
        }
        let description = reply["description"]
            .as_str()
            .unwrap_or("no description")
            .chars()
            .take(200)
            .collect::<String>();
        if status.as_u16() == 429 {
            let after = reply["parameters"]["retry_after"].as_u64().unwrap_or(1);
            return Err(ChatError::RetryAfter(Duration::from_secs(after)));
        }
        if status.is_server_error() || status.as_u16() == 408 {
            return Err(ChatError::Unavailable(format!(
                "{method}: {status} {description}"
            )));
        }
        Err(ChatError::Refused(format!(
            "{method}: {status} {description}"
        )))
    }

    /// Sends a card; the new message's id.
    pub async fn send(
        &self,
        chat: i64,
        text: &str,
        keyboard: Option<Value>,
    ) -> Result<i64, ChatError> {
        let mut body = json!({ "chat_id": chat, "text": text });
        if let Some(k) = keyboard {
            body["reply_markup"] = k;
        }
        self.pace(chat).await?;
        let result = self.call("sendMessage", body, CALL_TIMEOUT).await;
        let result = self.honour(Some(chat), result)?;
        result["message_id"]
            .as_i64()
            .ok_or_else(|| ChatError::Unavailable("sendMessage: no message_id".into()))
    }

    /// Replaces a card's text and buttons (none: buttons removed). "Message
    /// is not modified" counts as done.
    pub async fn edit(
        &self,
        chat: i64,
        message: i64,
        text: &str,
        keyboard: Option<Value>,
    ) -> Result<(), ChatError> {
        let body = json!({
            "chat_id": chat,
            "message_id": message,
            "text": text,
            "reply_markup": keyboard.unwrap_or_else(|| json!({ "inline_keyboard": [] })),
        });
        self.pace(chat).await?;
        let result = self.call("editMessageText", body, CALL_TIMEOUT).await;
        match self.honour(Some(chat), result) {
            Err(ChatError::Refused(m)) if m.contains("message is not modified") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Answers a button press (the spinner stops; `text` shows as a toast).
    pub async fn answer_callback(&self, id: &str, text: &str) -> Result<(), ChatError> {
        let body = json!({ "callback_query_id": id, "text": text });
        let result = self.call("answerCallbackQuery", body, CALL_TIMEOUT).await;
        self.honour(None, result).map(|_| ())
    }

    /// Long-polls for button presses from `offset`, waiting up to `wait`.
    pub async fn updates(&self, offset: i64, wait: Duration) -> Result<Vec<Update>, ChatError> {
        let body = json!({
            "offset": offset,
            "timeout": wait.as_secs().max(1),
            "allowed_updates": ["callback_query"],
        });
        let result = self.call("getUpdates", body, wait + CALL_TIMEOUT).await;
        let result = self.honour(None, result)?;
        serde_json::from_value(result)
            .map_err(|e| ChatError::Unavailable(format!("getUpdates: unreadable reply: {e}")))
    }
}

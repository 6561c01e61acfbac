//! The innermost service: one `POST {base_url}/chat/completions` over
//! reqwest (rustls), turned into a [`ChatReply`] or a typed [`EngineError`].
//!
//! It also steps down the `response_format` a server refuses: JSON schema,
//! then `json_object`, then plain text, remembering (per client) the first
//! one that worked so later calls start there. The response body is read
//! with a size bound, and the API key is scrubbed from any error text.

use super::wire::{self, Completion, ResponseFormat};
use super::{ApiKey, ChatReply, ChatRequest, LlmSettings};
use crate::engine::EngineError;
use crate::engine::llm::prompt::clip;
use crate::middleware::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;

/// The largest response body read; a chat completion with one small JSON
/// object is a few KiB.
const MAX_BODY: usize = 1024 * 1024;
/// Characters of an error body kept for logs.
const MAX_DETAIL: usize = 300;
/// The longest connect attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP transport of the LLM client. Cheap to clone; clones share the
/// connection pool and the remembered response format.
#[derive(Clone)]
pub struct HttpChat {
    http: reqwest::Client,
    url: Arc<str>,
    model: Arc<str>,
    temperature: f32,
    key: Option<ApiKey>,
    format: Arc<AtomicU8>,
}

impl std::fmt::Debug for HttpChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpChat")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("key", &self.key)
            .field("format", &self.format())
            .finish()
    }
}

impl HttpChat {
    pub fn new(s: &LlmSettings) -> Result<Self, EngineError> {
        let url = chat_url(&s.base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(s.timeout))
            // Never follow a redirect with the API key attached.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("verdict/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Setup(e.to_string()))?;
        Ok(HttpChat {
            http,
            url: Arc::from(url),
            model: Arc::from(s.model.as_str()),
            temperature: s.temperature,
            key: s.api_key.clone(),
            format: Arc::new(AtomicU8::new(ResponseFormat::JsonSchema as u8)),
        })
    }

    /// The response format calls start with now.
    pub fn format(&self) -> ResponseFormat {
        ResponseFormat::from_u8(self.format.load(Ordering::Relaxed))
    }

    async fn complete(self, req: ChatRequest) -> Result<ChatReply, EngineError> {
        let start = self.format();
        let mut format = start;
        // At most three requests: one per format.
        loop {
            let body = wire::request_body(&self.model, self.temperature, &req, format);
            let err = match self.post(&body).await {
                Ok(reply) => {
                    if format > start {
                        self.format.fetch_max(format as u8, Ordering::Relaxed);
                        tracing::info!(
                            format = format.as_str(),
                            "the LLM server refused a stricter response_format; using this one from now on"
                        );
                    }
                    return Ok(reply);
                }
                Err(e) => e,
            };
            let refused = matches!(
                err,
                EngineError::Status {
                    status: 400 | 422,
                    ..
                }
            );
            match format.next() {
                Some(next) if refused => format = next,
                _ => return Err(err),
            }
        }
    }

    async fn post(&self, body: &serde_json::Value) -> Result<ChatReply, EngineError> {
        let bytes = serde_json::to_vec(body).map_err(|e| EngineError::Protocol(e.to_string()))?;
        let mut rb = self
            .http
            .post(&*self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .headers(trace_context())
            .body(bytes);
        if let Some(key) = &self.key {
            rb = rb.bearer_auth(key.expose());
        }
        let mut resp = rb.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(EngineError::Protocol(format!(
                    "response larger than {MAX_BODY} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&buf);
            return Err(EngineError::Status {
                status,
                retry_after,
                detail: self.scrub(&clip(text.trim(), MAX_DETAIL)),
            });
        }
        let completion: Completion = serde_json::from_slice(&buf)
            .map_err(|e| EngineError::Protocol(format!("undecodable body: {e}")))?;
        let message = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::Protocol("no choices in the response".into()))?
            .message;
        match (message.content, message.refusal) {
            (Some(content), _) if !content.trim().is_empty() => Ok(ChatReply { content }),
            (_, Some(refusal)) => Err(EngineError::Invalid(format!(
                "the model refused: {}",
                self.scrub(&clip(&refusal, MAX_DETAIL))
            ))),
            _ => Err(EngineError::Invalid("the model returned no content".into())),
        }
    }

    /// A reqwest failure as an engine error: everything on the way to or
    /// from the server is a (transient) connection problem.
    fn transport(&self, e: &reqwest::Error) -> EngineError {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        let text = self.scrub(&clip(&text, MAX_DETAIL));
        if e.is_builder() {
            EngineError::Protocol(text)
        } else {
            EngineError::Connect(text)
        }
    }

    /// Removes the API key from text that may be logged (some servers echo
    /// what they were sent).
    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(k) if !k.expose().is_empty() => text.replace(k.expose(), "[redacted]"),
            _ => text.to_owned(),
        }
    }
}

impl Service<ChatRequest> for HttpChat {
    type Response = ChatReply;
    type Error = EngineError;
    type Future = BoxFuture<ChatReply, EngineError>;

    /// Always ready: reqwest pools connections itself.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EngineError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        Box::pin(self.clone().complete(req))
    }
}

/// The current trace's context (`traceparent`), so the LLM call joins the
/// caller's trace; empty when tracing export is off.
fn trace_context() -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    crate::telemetry::inject(&mut h);
    h
}

/// `{base}/chat/completions`, where `base` is an http(s) URL such as
/// `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
pub fn chat_url(base: &str) -> Result<String, EngineError> {
    let url = reqwest::Url::parse(base.trim())
        .map_err(|e| EngineError::Setup(format!("LLM base URL {base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(EngineError::Setup(format!(
            "LLM base URL {base:?} must be an http:// or https:// URL with a host"
        )));
    }
    Ok(format!(
        "{}/chat/completions",
        url.as_str().trim_end_matches('/')
    ))
}

/// `Retry-After` as seconds (`120`, `1.5`) or an HTTP date; None when it
/// is neither. A date in the past means "now".
pub fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (when.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 0.5 ", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "soon", "-1", "NaN", "1e400"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn chat_urls_are_checked() {
        assert_eq!(
            chat_url("https://api.openai.com/v1/").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            chat_url("http://127.0.0.1:11434/v1").unwrap(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        for bad in ["", "ftp://x/v1", "not a url", "unix:/tmp/s"] {
            assert!(chat_url(bad).is_err(), "{bad}");
        }
    }
}

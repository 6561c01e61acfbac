//! `POST /api/v1/alertmanager`: the Alertmanager webhook receiver, served
//! as a plain HTTP route on the gRPC port.
//!
//! Checks run cheapest first and before anything is read or stored: the
//! bearer token (401), the content type (415), the declared and the actual
//! body size (413), then the payload (400, every problem listed with its
//! JSON path). Only a valid payload reaches the [`Ingestor`]. Alertmanager
//! retries 5xx answers and gives up on 4xx ones, which is why a store
//! outage answers 503 and a bad payload 400. Every refusal is a
//! [`WebhookError`]; its HTTP status derives from its [`ErrorCode`], the
//! table the gRPC statuses come from too.

use super::alertmanager;
use super::ingestor::{Ingestor, Report};
use crate::domain::{Principal, Role, Violations};
use crate::error_code::ErrorCode;
use crate::manager::ManagerError;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Where Alertmanager posts.
pub const PATH: &str = "/api/v1/alertmanager";

/// The bearer token the webhook requires. Never printed: `Debug` shows a
/// placeholder, so the token cannot leak through a logged config.
#[derive(Clone)]
pub struct WebhookToken(Arc<str>);

impl WebhookToken {
    /// A token of visible ASCII (what an HTTP header can carry); None when
    /// empty or unusable.
    pub fn new(raw: String) -> Option<Self> {
        let t = raw.trim();
        let ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| WebhookToken(Arc::from(t)))
    }

    /// Whether an `Authorization` header presents this token as a bearer
    /// token. Compared in constant time, so response timing does not reveal
    /// how much of a guess was right.
    fn admits(&self, header: Option<&HeaderValue>) -> bool {
        self.admits_value(header.and_then(|h| h.to_str().ok()))
    }

    /// [`Self::admits`] for an `authorization` value already read as text:
    /// gRPC metadata (`IngestSignals`) is checked by the same rule as the
    /// webhook's HTTP header, so the two doors into ingestion take the same
    /// key.
    pub fn admits_value(&self, value: Option<&str>) -> bool {
        let Some(presented) = value
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return false;
        };
        let (a, b) = (presented.as_bytes(), self.0.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in b.iter().enumerate() {
            diff |= usize::from(x ^ a.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

impl fmt::Debug for WebhookToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookToken(<redacted>)")
    }
}

/// The webhook's dependencies and limits.
#[derive(Clone)]
pub struct Webhook {
    pub ingestor: Arc<Ingestor>,
    pub token: Option<WebhookToken>,
    /// Largest accepted body.
    pub max_bytes: usize,
}

/// The webhook route, ready to merge with the gRPC routes.
pub fn router(webhook: Webhook) -> axum::Router {
    axum::Router::new()
        .route(PATH, axum::routing::post(receive))
        .with_state(Arc::new(webhook))
}

/// Why a notification was refused. Each variant says its [`ErrorCode`]
/// once; the HTTP status derives from it (`ErrorCode::http`).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("a valid bearer token is required (Authorization: Bearer ...)")]
    Unauthenticated,
    #[error("the body must be JSON: Content-Type: application/json")]
    NotJson,
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body could not be read")]
    Unreadable,
    /// The payload (or the ingestor) found invalid fields.
    #[error("invalid Alertmanager payload: {}", .0.summary())]
    Invalid(Violations),
    /// Ingestion failed (a store outage: Alertmanager retries).
    #[error(transparent)]
    Ingest(ManagerError),
}

impl WebhookError {
    /// What kind of failure this is.
    pub fn code(&self) -> ErrorCode {
        match self {
            WebhookError::Unauthenticated => ErrorCode::Unauthenticated,
            WebhookError::NotJson => ErrorCode::UnsupportedMediaType,
            WebhookError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            WebhookError::Unreadable | WebhookError::Invalid(_) => ErrorCode::BadRequest,
            WebhookError::Ingest(e) => e.code(),
        }
    }
}

impl From<ManagerError> for WebhookError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::Invalid(v) => WebhookError::Invalid(v),
            e => WebhookError::Ingest(e),
        }
    }
}

/// An error answer: `{"error": "...", "violations": [{"field", "description"}]}`.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
    violations: Vec<ViolationBody>,
}

#[derive(Debug, Serialize)]
struct ViolationBody {
    field: String,
    description: String,
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let code = self.code().http();
        if code.is_server_error() {
            tracing::warn!(error = %self, "webhook failed; Alertmanager will retry");
        }
        let message = self.to_string();
        let violations = match self {
            WebhookError::Invalid(v) => v.into_iter().collect(),
            _ => vec![],
        };
        let body = ErrorBody {
            error: message,
            violations: violations
                .into_iter()
                .map(|v| ViolationBody {
                    field: v.field,
                    description: v.description,
                })
                .collect(),
        };
        let mut r = json(code, &body);
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"verdict\""),
            );
        }
        r
    }
}

fn json<T: Serialize>(code: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            code,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Whether the body is declared as JSON (`application/json`, optionally
/// with `charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = ct.split(';').map(str::trim);
    let essence_ok = parts
        .next()
        .is_some_and(|e| e.eq_ignore_ascii_case("application/json"));
    essence_ok
        && parts.all(|p| match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                let v = v.trim().trim_matches('"');
                v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

async fn receive(State(hook): State<Arc<Webhook>>, req: Request) -> Response {
    let response = match accept(&hook, req).await {
        Ok(report) => json(StatusCode::OK, &ReportBody::from(&report)),
        Err(e) => e.into_response(),
    };
    crate::metrics::webhook_request(response.status().as_u16());
    response
}

/// The checks, cheapest first, then the ingestion.
async fn accept(hook: &Webhook, req: Request) -> Result<Report, WebhookError> {
    let (parts, body) = req.into_parts();
    // The edge attaches a principal here only when it holds `operator`:
    // it stands in for the webhook's own token.
    let operator = parts
        .extensions
        .get::<Principal>()
        .is_some_and(|p| p.may(Role::Operator));
    check_headers(hook, &parts.headers, operator)?;
    let bytes = read_body(body, hook.max_bytes).await?;
    let notification = alertmanager::parse(&bytes, hook.ingestor.now()).map_err(|v| {
        tracing::info!(violations = %v, "webhook refused: invalid payload");
        WebhookError::Invalid(v)
    })?;
    if notification.truncated_alerts > 0 {
        tracing::warn!(
            receiver = %notification.receiver,
            truncated = notification.truncated_alerts,
            "Alertmanager left alerts out of this notification (its max_alerts)"
        );
    }
    tracing::debug!(
        receiver = %notification.receiver,
        group_key = %notification.group_key,
        alerts = notification.signals.len(),
        "webhook received"
    );
    // The events of this notification's changes name the route, the
    // principal the edge attached and the request id.
    let context = crate::audit::Context {
        principal: crate::domain::Principal::of(&parts.extensions),
        rpc: "POST /api/v1/alertmanager".into(),
        request_id: parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        ..crate::audit::Context::system()
    };
    let ingested = crate::audit::scope(context, hook.ingestor.ingest(notification.signals));
    Ok(ingested.await?)
}

/// Token, content type and declared size: refused before a byte is read.
fn check_headers(hook: &Webhook, headers: &HeaderMap, operator: bool) -> Result<(), WebhookError> {
    if let Some(token) = &hook.token
        && !operator
        && !token.admits(headers.get(header::AUTHORIZATION))
    {
        tracing::warn!(
            path = PATH,
            "webhook refused: missing or wrong bearer token"
        );
        return Err(WebhookError::Unauthenticated);
    }
    if !is_json(headers) {
        return Err(WebhookError::NotJson);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > hook.max_bytes as u64) {
        return Err(WebhookError::TooLarge(hook.max_bytes));
    }
    Ok(())
}

/// The body, read only up to `max_bytes` (a lying `Content-Length` is
/// caught here).
async fn read_body(body: axum::body::Body, max_bytes: usize) -> Result<Bytes, WebhookError> {
    match http_body_util::Limited::new(body, max_bytes)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(WebhookError::TooLarge(max_bytes))
        }
        Err(e) => {
            tracing::debug!(error = %e, "webhook body could not be read");
            Err(WebhookError::Unreadable)
        }
    }
}

/// The answer to an accepted notification.
#[derive(Debug, Serialize)]
struct ReportBody {
    incidents: Vec<IncidentBody>,
    /// Alerts that matched no incident and opened none.
    ignored: usize,
}

#[derive(Debug, Serialize)]
struct IncidentBody {
    id: String,
    title: String,
    status: &'static str,
    severity: &'static str,
    affected_services: Vec<String>,
    group: String,
    signals: usize,
    version: u64,
    opened: bool,
    changed: bool,
    auto_resolved: bool,
    dropped: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<String>,
}

impl From<&Report> for ReportBody {
    fn from(r: &Report) -> Self {
        ReportBody {
            incidents: r
                .incidents
                .iter()
                .map(|t| IncidentBody {
                    id: t.incident.id.to_string(),
                    title: t.incident.title.clone(),
                    status: t.incident.status.as_str(),
                    severity: t.incident.severity.as_str(),
                    affected_services: t
                        .incident
                        .affected_services
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    group: t.group.clone(),
                    signals: t.incident.signals.len(),
                    version: t.incident.version,
                    opened: t.opened,
                    changed: t.changed,
                    auto_resolved: t.auto_resolved,
                    dropped: t.dropped,
                    resolved_at: t.incident.resolved_at.map(|t| t.to_rfc3339()),
                })
                .collect(),
            ignored: r.ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_compared_exactly() {
        let t = WebhookToken::new("s3cret".into()).unwrap();
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(t.admits(Some(&h("Bearer s3cret"))));
        assert!(t.admits(Some(&h("bearer s3cret"))));
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!t.admits(Some(&h(bad))), "{bad}");
        }
        assert!(!t.admits(None));
        assert!(WebhookToken::new("  ".into()).is_none());
        assert_eq!(format!("{t:?}"), "WebhookToken(<redacted>)");
    }

    #[test]
    fn only_json_is_accepted() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (ct, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/json; charset=\"UTF-8\"", true),
            ("application/json; charset=latin1", false),
            ("text/plain", false),
            ("application/jsonx", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&h), ok, "{ct}");
        }
    }
}

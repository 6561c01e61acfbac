//! `POST /api/v1/alertmanager`: the Alertmanager webhook receiver, served
//! as a plain HTTP route on the gRPC port.
//!
//! Checks run cheapest first and before anything is read or stored: the
//! bearer token (401), the content type (415), the declared and the actual
//! body size (413), then the payload (400, every problem listed with its
//! JSON path). Only a valid payload reaches the [`Ingestor`]. Alertmanager
//! retries 5xx answers and gives up on 4xx ones, which is why a store
//! outage answers 503 and a bad payload 400.

use super::alertmanager;
use super::ingestor::{Ingestor, Report};
use crate::domain::{FieldViolation, Violations};
use crate::manager::ManagerError;
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
        let Some(presented) = header
            .and_then(|h| h.to_str().ok())
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

fn error(
    code: StatusCode,
    message: impl Into<String>,
    violations: Vec<FieldViolation>,
) -> Response {
    let body = ErrorBody {
        error: message.into(),
        violations: violations
            .into_iter()
            .map(|v| ViolationBody {
                field: v.field,
                description: v.description,
            })
            .collect(),
    };
    json(code, &body)
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

fn invalid(v: Violations) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("invalid Alertmanager payload: {}", v.summary()),
        v.into_iter().collect(),
    )
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
    let (parts, body) = req.into_parts();
    if let Some(token) = &hook.token
        && !token.admits(parts.headers.get(header::AUTHORIZATION))
    {
        tracing::warn!(
            path = PATH,
            "webhook refused: missing or wrong bearer token"
        );
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer ...)",
            vec![],
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"verdict\""),
        );
        return r;
    }
    if !is_json(&parts.headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON: Content-Type: application/json",
            vec![],
        );
    }
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} bytes", hook.max_bytes),
            vec![],
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > hook.max_bytes as u64) {
        return too_large();
    }
    let bytes = match http_body_util::Limited::new(body, hook.max_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            tracing::debug!(error = %e, "webhook body could not be read");
            return error(
                StatusCode::BAD_REQUEST,
                "the body could not be read",
                vec![],
            );
        }
    };
    let notification = match alertmanager::parse(&bytes, hook.ingestor.now()) {
        Ok(n) => n,
        Err(v) => {
            tracing::info!(violations = %v, "webhook refused: invalid payload");
            return invalid(v);
        }
    };
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
    match hook.ingestor.ingest(notification.signals).await {
        Ok(report) => json(StatusCode::OK, &ReportBody::from(&report)),
        Err(ManagerError::Invalid(v)) => invalid(v),
        Err(e) => {
            let code = StatusCode::from_u16(crate::api::status::http_status(&e))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if code.is_server_error() {
                tracing::warn!(error = %e, "webhook failed; Alertmanager will retry");
            }
            error(code, e.to_string(), vec![])
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

//! Button presses: received by long polling (`getUpdates`, one poller
//! across replicas under a Redis lease, the offset in Redis) or by the
//! webhook, then authorised and applied.
//!
//! Slack presses arrive at their own signed route (`slack.rs`) and are
//! applied by the same [`Notifier::press`].
//!
//! **Fail closed.** A press counts only from a chat user mapped to a
//! principal whose roles grant `approver`; anyone else is told so and
//! nothing changes. A button is an opaque id looked up on the server,
//! bound to the decision version its card showed: a press on an outdated
//! card says the decision changed. It works once, for a *successful*
//! answer (which moves the version); a refused press leaves it usable by
//! someone allowed.

use super::Notifier;
use super::card::{Answer, Button, answerable};
use super::telegram::{ChatError, Update};
use crate::domain::{DecisionState, Role, Token, TransitionError};
use crate::manager::ManagerError;
use crate::metrics::{ChatChannel, PressOutcome, notify_press};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The lease (and offset) name of the Telegram poller.
const POLLER: &str = "telegram";
/// The webhook's path.
pub const WEBHOOK_PATH: &str = "/api/v1/telegram";
/// Telegram's secret-token header.
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// Largest webhook body accepted.
const MAX_UPDATE_BYTES: usize = 64 * 1024;

/// Who pressed a button, and where.
#[derive(Debug, Clone, Copy)]
pub(super) enum Presser<'a> {
    Telegram {
        user: i64,
        chat: Option<i64>,
    },
    Slack {
        user: &'a str,
        channel: Option<&'a str>,
    },
}

impl Presser<'_> {
    fn channel(&self) -> ChatChannel {
        match self {
            Presser::Telegram { .. } => ChatChannel::Telegram,
            Presser::Slack { .. } => ChatChannel::Slack,
        }
    }

    fn network(&self) -> &'static str {
        match self {
            Presser::Telegram { .. } => "Telegram",
            Presser::Slack { .. } => "Slack",
        }
    }
}

impl Notifier {
    /// Long-polls Telegram while this replica holds the poller lease; waits
    /// for it otherwise. Every update is claimed in Redis (the offset moves
    /// past it, under the lease) before it is handled, so a poller that
    /// lost its lease handles nothing more and none is handled twice.
    pub async fn run_poller(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(t) = self.settings.telegram.clone() else {
            return;
        };
        let Some(tg) = self.telegram.clone() else {
            return;
        };
        let lease = t.poll_timeout * 2 + Duration::from_secs(10);
        let pause = |d: Duration| {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(d) => true,
                    _ = shutdown.cancelled() => false,
                }
            }
        };
        while !shutdown.is_cancelled() {
            match self.store.lease(POLLER, &self.owner, lease).await {
                Ok(true) => {}
                Ok(false) => {
                    if !pause(t.poll_timeout).await {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the Telegram poller lease");
                    if !pause(t.poll_timeout).await {
                        break;
                    }
                    continue;
                }
            }
            let offset = match self.store.update_offset(POLLER).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Telegram offset");
                    if !pause(t.poll_timeout).await {
                        break;
                    }
                    continue;
                }
            };
            let updates = tokio::select! {
                u = tg.updates(offset, t.poll_timeout) => u,
                _ = shutdown.cancelled() => break,
            };
            match updates {
                Ok(updates) => {
                    for u in updates {
                        match self
                            .store
                            .claim_update(POLLER, &self.owner, u.update_id)
                            .await
                        {
                            Ok(true) => self.handle(u).await,
                            // Lease lost or already handled: stop this batch.
                            Ok(false) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot claim a Telegram update");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    let wait = match &e {
                        ChatError::RetryAfter(d) => *d,
                        _ => self.settings.retry_interval,
                    };
                    tracing::warn!(error = %e, ?wait, "getUpdates failed");
                    let _ = self.store.count("poll_failed", 1).await;
                    if !pause(wait).await {
                        break;
                    }
                }
            }
        }
        // Hand the lease on at once rather than when it runs out.
        let _ = self.store.release_poller_lease(POLLER, &self.owner).await;
    }

    /// Acts on one update (only button presses matter) and answers it.
    async fn handle(&self, update: Update) {
        let Some(q) = update.callback_query else {
            return;
        };
        let Some(tg) = &self.telegram else { return };
        let chat = q.message.as_ref().map(|m| m.chat.id);
        let from = Presser::Telegram {
            user: q.from.id,
            chat,
        };
        let reply = self
            .press(from, q.data.as_deref().unwrap_or_default())
            .await;
        if let Err(e) = tg.answer_callback(&q.id, &reply).await {
            tracing::warn!(error = %e, "answerCallbackQuery failed");
        }
    }

    /// Authorises and applies one press; the text shown to the user. The
    /// outcome is counted in the metrics.
    pub(super) async fn press(&self, from: Presser<'_>, id: &str) -> String {
        let (outcome, text) = self.apply_press(from, id).await;
        notify_press(from.channel(), outcome);
        text
    }

    async fn apply_press(&self, from: Presser<'_>, id: &str) -> (PressOutcome, String) {
        let principal = match from {
            Presser::Telegram { user, .. } => self.settings.telegram_principal(user),
            Presser::Slack { user, .. } => self.settings.slack_principal(user),
        };
        let Some(principal) = principal else {
            tracing::info!(?from, "button press from an unmapped chat user refused");
            return refused(format!(
                "⛔ Not allowed: your {} account is not mapped to a verdict user.",
                from.network()
            ));
        };
        if !principal.may(Role::Approver) {
            return refused(format!(
                "⛔ Not allowed: {} may not approve or reject.",
                principal.subject
            ));
        }
        let button = match self.store.button(id).await {
            Ok(Some(json)) => match serde_json::from_str::<Button>(&json) {
                Ok(b) => b,
                Err(_) => return stale("This button is no longer valid.".into()),
            },
            Ok(None) => {
                return stale("This button is no longer valid (already used or expired).".into());
            }
            Err(e) => {
                return (
                    PressOutcome::Error,
                    format!("verdict cannot read this button now ({e}); try again."),
                );
            }
        };
        let from_card_chat = match from {
            Presser::Telegram { chat, .. } => chat.is_some_and(|c| button.chats.contains(&c)),
            Presser::Slack { channel, .. } => {
                channel.is_some_and(|c| button.slack_channels.iter().any(|s| s == c))
            }
        };
        if !from_card_chat {
            return refused("This button does not belong to this chat.".into());
        }
        let Ok(token) = Token::parse(&button.token) else {
            return stale("This button is no longer valid.".into());
        };
        // The button is not used up here: a press that is refused (a user
        // the approval policy does not let decide, the same approver twice)
        // must leave it usable for someone who may. The decision's version
        // check is what makes it work once: a successful answer moves the
        // version, so every later press of it finds the card outdated.
        let d = match self.decisions.get(&token).await {
            Ok(d) => d,
            Err(e) => return could_not(e),
        };
        if d.version != button.version || !answerable(&d, self.clock.now()) {
            self.refresh(&token).await;
            return stale(format!(
                "⚠️ The decision changed: it is now {}. The card shows its current state.",
                shown_state(&d, self.clock.now())
            ));
        }
        let subject = principal.subject.as_str();
        let result = match button.answer {
            Answer::Approve => {
                self.decisions
                    .approve(&token, &principal, button.version, None)
                    .await
            }
            Answer::Reject => {
                self.decisions
                    .reject(
                        &token,
                        &principal,
                        "rejected from chat",
                        button.version,
                        None,
                    )
                    .await
            }
        };
        match result {
            Ok(d) => {
                tracing::info!(%token, subject, answer = ?button.answer, "decision answered from chat");
                // Tidy only: the version moved, so the button is dead anyway.
                let _ = self.store.take_button(id).await;
                let outcome = match button.answer {
                    Answer::Approve => PressOutcome::Approved,
                    Answer::Reject => PressOutcome::Rejected,
                };
                let text = if d.state == DecisionState::Ready && !d.approvals.is_empty() {
                    format!(
                        "Your approval is recorded ({} of {}); another approver is needed.",
                        d.approvals.len(),
                        d.approvals_required
                    )
                } else {
                    format!("Done: the decision is now {}.", d.state.as_str())
                };
                (outcome, text)
            }
            Err(ManagerError::NotAllowed(why)) => {
                tracing::info!(%token, subject, "chat answer refused by the approval policy");
                refused(format!("⛔ Not allowed: {why}"))
            }
            Err(ManagerError::Transition(e @ TransitionError::AlreadyApproved { .. })) => {
                refused(format!("⛔ Not allowed: {e}"))
            }
            Err(ManagerError::Transition(_)) => {
                self.refresh(&token).await;
                stale(
                    "⚠️ The decision changed before your answer; the card shows its current state."
                        .into(),
                )
            }
            Err(e) => could_not(e),
        }
    }

    /// Makes the card due for an edit now.
    async fn refresh(&self, token: &Token) {
        if self
            .store
            .outbox_push(token, self.clock.now())
            .await
            .is_ok()
        {
            self.wake.notify_one();
        }
    }
}

/// A failure that was not the user's (store unavailable): the button was
/// not used, so they can press again.
fn could_not(e: ManagerError) -> (PressOutcome, String) {
    tracing::warn!(error = %e, "a chat answer could not be applied");
    (
        PressOutcome::Error,
        format!("verdict could not record your answer ({e}); try again."),
    )
}

fn refused(text: String) -> (PressOutcome, String) {
    (PressOutcome::Refused, text)
}

fn stale(text: String) -> (PressOutcome, String) {
    (PressOutcome::Stale, text)
}

fn shown_state(d: &crate::domain::Decision, now: chrono::DateTime<chrono::Utc>) -> &'static str {
    if d.is_expired(now) {
        "EXPIRED"
    } else {
        d.state.as_str()
    }
}

/// The chat routes: the Telegram webhook (`POST /api/v1/telegram`: the
/// secret token header compared in constant time, then the update handled
/// like a polled one) and Slack interactivity (`POST
/// /api/v1/slack/interactions`, see `slack.rs`). Anything refused answers
/// 401 and changes nothing.
pub fn webhook_router(notifier: Arc<Notifier>) -> axum::Router {
    axum::Router::new()
        .route(WEBHOOK_PATH, axum::routing::post(receive))
        .route(
            super::slack::INTERACTIONS_PATH,
            axum::routing::post(super::slack::receive),
        )
        .with_state(notifier)
}

async fn receive(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let secret = n
        .settings
        .telegram
        .as_ref()
        .and_then(|t| t.webhook_secret.as_ref());
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !secret.is_some_and(|s| s.matches(given)) {
        return StatusCode::UNAUTHORIZED;
    }
    if body.len() > MAX_UPDATE_BYTES {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    match serde_json::from_slice::<Update>(&body) {
        Ok(u) => {
            n.handle(u).await;
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

//! What a card says, and the records behind it.
//!
//! Cards are plain text (no Markdown or HTML parse mode): the reasoning is
//! model-written and reaches people only as text, never as markup, so no
//! escaping can be got wrong. A button carries only an opaque id; what it
//! means ([`Button`]) is stored server-side.

use crate::domain::{Decision, DecisionState, Incident, ProposalSource, VerificationState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest reasoning shown on a card (characters).
const REASONING_CHARS: usize = 400;

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    Approve,
    Reject,
}

/// What a button means, stored under its opaque id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub token: String,
    /// The decision version the card showed: the answer is bound to it.
    pub version: u64,
    pub answer: Answer,
    /// The Telegram chats the card went to: a press from any other is
    /// refused.
    pub chats: Vec<i64>,
    /// The Slack channels the card went to, likewise.
    #[serde(default)]
    pub slack_channels: Vec<String>,
}

/// One message showing the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub chat: i64,
    pub message: i64,
}

/// One Slack message showing the card (Slack names a message by its
/// channel and timestamp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackSent {
    pub channel: String,
    pub ts: String,
}

/// A decision's card: where it was sent and what it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRecord {
    /// Telegram messages.
    pub sent: Vec<Sent>,
    /// Slack messages.
    #[serde(default)]
    pub slack: Vec<SlackSent>,
    /// The decision version the messages show.
    pub version: u64,
    /// Whether they show the token as expired.
    #[serde(default)]
    pub expired: bool,
    /// The ids of the buttons on the messages now (removed when replaced).
    #[serde(default)]
    pub buttons: Vec<String>,
}

/// A fresh, unguessable button id: two UUIDv4s (244 random bits) as 64
/// hex characters, exactly Telegram's `callback_data` limit (64 bytes).
pub fn new_button_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether a decision's card still takes answers.
pub fn answerable(d: &Decision, now: DateTime<Utc>) -> bool {
    d.state == DecisionState::Ready && !d.is_expired(now)
}

/// The card's text for `d` of `incident` at `now`.
pub fn render(incident: &Incident, d: &Decision, now: DateTime<Utc>) -> String {
    let mut out = Vec::new();
    out.push(format!(
        "🚨 {} — {}",
        incident.severity.as_str(),
        incident.title
    ));
    let services: Vec<&str> = incident
        .affected_services
        .iter()
        .map(|s| s.as_str())
        .collect();
    out.push(format!(
        "Services: {}   Namespace: {}",
        if services.is_empty() {
            "—".to_string()
        } else {
            services.join(", ")
        },
        incident.target_namespace().as_str()
    ));
    if let Some(p) = &d.proposal {
        out.push(format!("Command: {}", p.command.render()));
        out.push(format!("Risk: {:?}", p.risk).to_uppercase());
        let source = match (&p.source, &p.consensus) {
            (ProposalSource::Consensus, Some(c)) => format!(
                "consensus (score {:.2}, {} dissenting)",
                c.score,
                c.dissenting.len()
            ),
            (ProposalSource::Llm, _) => format!("LLM {}", p.model),
            (s, _) => format!("{s:?}").to_lowercase(),
        };
        out.push(format!("Source: {source}"));
        out.push(format!("Why: {}", shorten(&p.reasoning, REASONING_CHARS)));
    }
    out.push(format!("Token: {}", d.token.as_str()));
    out.push(status_line(d, now));
    if let Some(v) = verification_line(d) {
        out.push(v);
    }
    out.join("\n")
}

/// The last line: what can be done now, or what happened.
fn status_line(d: &Decision, now: DateTime<Utc>) -> String {
    let by = || {
        if d.decided_by.is_empty() {
            String::new()
        } else {
            format!(" by {}", shorten(&d.decided_by, 64))
        }
    };
    match d.state {
        DecisionState::Ready if d.is_expired(now) => {
            "⌛ EXPIRED: this token can no longer be approved".to_string()
        }
        DecisionState::Ready => format!(
            "Awaiting approval; expires {}",
            d.expires_at.format("%Y-%m-%d %H:%M UTC")
        ),
        DecisionState::Executing => format!("▶️ APPROVED{}: executing", by()),
        DecisionState::Completed => format!("✅ APPROVED{}: completed", by()),
        DecisionState::Error => format!("💥 APPROVED{}: execution failed", by()),
        DecisionState::Rejected => {
            let reason = if d.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", shorten(&d.reason, 200))
            };
            format!("❌ REJECTED{}{reason}", by())
        }
        other => format!("State: {}", other.as_str()),
    }
}

/// Whether the executed command fixed the incident, once the executor
/// records it: the card is edited on every change, so the person who
/// approved learns from the same card whether the fix held.
fn verification_line(d: &Decision) -> Option<String> {
    let v = d.verification.as_ref()?;
    let head = match v.state {
        VerificationState::Pending => "🔎 Verifying: the incident is being watched",
        VerificationState::Verified => "🟢 VERIFIED: the fix held",
        VerificationState::Failed => "🔴 Verification FAILED: the command did not fix the incident",
    };
    Some(format!("{head} ({})", shorten(&v.summary, 200)))
}

/// At most `max` characters of `s`, with `…` when cut; control characters
/// become spaces (model text is untrusted).
pub fn shorten(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= max {
        return clean;
    }
    let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// At most `max` characters of the card text `s` (line breaks kept),
/// with `…` when cut.
pub fn shorten_keep_lines(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_ids_fit_telegram_and_differ() {
        let (a, b) = (new_button_id(), new_button_id());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn the_verification_is_shown_with_its_summary_cleaned() {
        let now = Utc::now();
        let mut d = Decision::start(
            crate::domain::IncidentId::generate(),
            crate::domain::DecisionMode::Auto,
            now,
            chrono::Duration::hours(1),
            now,
        );
        assert_eq!(verification_line(&d), None, "nothing before it runs");
        let mut v = crate::domain::Verification {
            state: VerificationState::Pending,
            summary: "watching\u{1b}[31m".into(),
            until: now,
            at: now,
        };
        d.verification = Some(v.clone());
        let line = verification_line(&d).unwrap_or_default();
        assert!(line.starts_with("🔎 Verifying"), "{line}");
        assert!(
            !line.contains('\u{1b}'),
            "control characters never reach chat"
        );
        v.state = VerificationState::Failed;
        d.verification = Some(v.clone());
        let line = verification_line(&d).unwrap_or_default();
        assert!(line.contains("Verification FAILED"), "{line}");
        v.state = VerificationState::Verified;
        d.verification = Some(v);
        let line = verification_line(&d).unwrap_or_default();
        assert!(line.contains("VERIFIED"), "{line}");
    }

    #[test]
    fn text_is_shortened_and_cleaned() {
        assert_eq!(shorten("a\u{7}b", 10), "a b");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}

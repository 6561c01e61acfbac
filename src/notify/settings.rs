//! The notifier's settings: where cards go (routes, a default chat), who
//! may answer them (chat users mapped to principals), how long a card
//! waits (`notify_after` per severity), and the Telegram bot. `config`
//! maps its flat `notify_…` keys onto [`NotifySettings`].

use crate::domain::{AuthMethod, Incident, Principal, Role, Severity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// A secret read from the environment (bot token, webhook secret): never
/// printed, not even by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value of variable `var`, if set and not empty.
    pub fn from_env(var: &str) -> Option<Secret> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret)
    }

    /// A secret given directly (tests).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in time independent of where they differ, so
    /// a caller cannot guess the secret byte by byte.
    pub fn matches(&self, other: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        let mut diff = mine.len() ^ other.len();
        for (i, b) in mine.iter().enumerate() {
            diff |= usize::from(b ^ other.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How Telegram delivers button presses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Updates {
    /// `getUpdates` long polling by one replica at a time (a Redis lease).
    Poll,
    /// Telegram calls `POST /api/v1/telegram` with the secret token.
    Webhook,
}

/// The Telegram bot.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    /// `https://api.telegram.org` or a self-hosted Bot API server.
    pub api_url: String,
    pub token: Secret,
    /// Chat of every incident no route matches (None: such incidents get
    /// no card).
    pub default_chat: Option<i64>,
    pub updates: Updates,
    /// `getUpdates` long-poll timeout.
    pub poll_timeout: Duration,
    /// The webhook's `secret_token` (required with [`Updates::Webhook`]).
    pub webhook_secret: Option<Secret>,
}

/// The Slack app: a bot token (`xoxb-…`) for the Web API and the signing
/// secret that proves an interactivity request comes from Slack.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// `https://slack.com/api` or a fake in tests.
    pub api_url: String,
    pub token: Secret,
    /// Verifies the `v0` signature of every interactivity request.
    pub signing_secret: Secret,
    /// Channel id of every incident no route names a Slack channel for
    /// (None: such incidents get no Slack card).
    pub default_channel: Option<String>,
}

/// Routes incidents to a chat: every given field must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// The Telegram chat id (64-bit; groups are negative).
    #[serde(default)]
    pub telegram_chat: Option<i64>,
    /// The Slack channel id (`C…`), not its name: names change.
    #[serde(default)]
    pub slack_channel: Option<String>,
}

impl Route {
    fn matches(&self, incident: &Incident) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| incident.target_namespace().as_str() == n)
            && self
                .service
                .as_ref()
                .is_none_or(|s| incident.affected_services.iter().any(|a| a.as_str() == s))
            && self.severity.is_none_or(|s| incident.severity == s)
    }
}

/// A chat user allowed to act as a principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatUser {
    /// Telegram user id (64-bit).
    #[serde(default)]
    pub telegram_id: Option<i64>,
    /// Slack user id (`U…`), stable across renames, unlike the handle.
    #[serde(default)]
    pub slack_id: Option<String>,
    /// The principal's subject, as recorded on what they approve.
    pub subject: String,
    pub roles: BTreeSet<Role>,
}

/// Everything the notifier needs.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub telegram: Option<TelegramSettings>,
    pub slack: Option<SlackSettings>,
    /// First match wins; none: the default chat.
    pub routes: Vec<Route>,
    /// Fail closed: a user not listed cannot answer.
    pub users: Vec<ChatUser>,
    /// How long a card waits after READY, per severity (absent: none).
    pub notify_after: BTreeMap<Severity, Duration>,
    /// How long a worker holds an outbox job before another may take it.
    pub lease: Duration,
    /// Failed attempts before a job goes to the dead letters.
    pub max_attempts: u32,
    /// Wait before retrying a failed card (a 429's `retry_after` wins).
    pub retry_interval: Duration,
}

impl NotifySettings {
    /// Whether any adapter is configured.
    pub fn enabled(&self) -> bool {
        self.telegram.is_some() || self.slack.is_some()
    }

    /// The Telegram chats an incident's cards go to.
    pub fn telegram_chats(&self, incident: &Incident) -> Vec<i64> {
        match self.routes.iter().find(|r| r.matches(incident)) {
            Some(r) => r.telegram_chat.into_iter().collect(),
            None => self
                .telegram
                .as_ref()
                .and_then(|t| t.default_chat)
                .into_iter()
                .collect(),
        }
    }

    /// The Slack channels an incident's cards go to: the first matching
    /// route's, else the default channel.
    pub fn slack_channels(&self, incident: &Incident) -> Vec<String> {
        match self.routes.iter().find(|r| r.matches(incident)) {
            Some(r) => r.slack_channel.iter().cloned().collect(),
            None => self
                .slack
                .as_ref()
                .and_then(|s| s.default_channel.clone())
                .into_iter()
                .collect(),
        }
    }

    /// The principal a Telegram user acts as, if mapped.
    pub fn telegram_principal(&self, user_id: i64) -> Option<Principal> {
        self.principal(|u| u.telegram_id == Some(user_id))
    }

    /// The principal a Slack user acts as, if mapped.
    pub fn slack_principal(&self, user_id: &str) -> Option<Principal> {
        self.principal(|u| u.slack_id.as_deref() == Some(user_id))
    }

    fn principal(&self, found: impl Fn(&ChatUser) -> bool) -> Option<Principal> {
        self.users.iter().find(|u| found(u)).map(|u| Principal {
            subject: u.subject.clone(),
            method: AuthMethod::Chat,
            roles: u.roles.clone(),
        })
    }

    /// The grace period of a severity.
    pub fn grace(&self, severity: Option<Severity>) -> Duration {
        severity
            .and_then(|s| self.notify_after.get(&s).copied())
            .unwrap_or_default()
    }

    /// Refuses settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(t) = &self.telegram {
            anyhow::ensure!(
                t.api_url.starts_with("http://") || t.api_url.starts_with("https://"),
                "notify_telegram_api_url must be an http(s) URL"
            );
            anyhow::ensure!(
                t.updates != Updates::Webhook || t.webhook_secret.is_some(),
                "notify_telegram_updates = webhook needs the secret in the variable named by notify_telegram_webhook_secret_env"
            );
            anyhow::ensure!(
                !t.poll_timeout.is_zero() && t.poll_timeout <= Duration::from_secs(50),
                "notify_poll_timeout must be between 1s and 50s"
            );
        }
        if let Some(s) = &self.slack {
            anyhow::ensure!(
                s.api_url.starts_with("http://") || s.api_url.starts_with("https://"),
                "notify_slack_api_url must be an http(s) URL"
            );
        }
        anyhow::ensure!(!self.lease.is_zero(), "notify_lease must be positive");
        anyhow::ensure!(
            self.max_attempts >= 1,
            "notify_max_attempts must be at least 1"
        );
        let (mut ids, mut slack_ids) = (BTreeSet::new(), BTreeSet::new());
        for u in &self.users {
            anyhow::ensure!(
                !u.subject.is_empty(),
                "notify_users: an entry has no subject"
            );
            anyhow::ensure!(
                u.telegram_id.is_some() || u.slack_id.is_some(),
                "notify_users: {} has neither telegram_id nor slack_id",
                u.subject
            );
            if let Some(id) = u.telegram_id {
                anyhow::ensure!(
                    ids.insert(id),
                    "notify_users: telegram_id {id} is listed twice"
                );
            }
            if let Some(id) = &u.slack_id {
                anyhow::ensure!(
                    slack_ids.insert(id.clone()),
                    "notify_users: slack_id {id} is listed twice"
                );
            }
        }
        Ok(())
    }
}

/// Parses `P3=2m` (one `notify_after` entry).
pub fn parse_after(entry: &str) -> anyhow::Result<(Severity, Duration)> {
    let (sev, dur) = entry.split_once('=').ok_or_else(|| {
        anyhow::anyhow!("notify_after entry {entry:?} must be SEVERITY=DURATION, e.g. P3=2m")
    })?;
    let sev = Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == sev.trim())
        .ok_or_else(|| anyhow::anyhow!("notify_after: {sev:?} is not a severity (P0..P4)"))?;
    let dur = humantime::parse_duration(dur.trim())
        .map_err(|e| anyhow::anyhow!("notify_after: {dur:?}: {e}"))?;
    Ok((sev, dur))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole_and_never_print() {
        let s = Secret::new("abc");
        assert!(s.matches(b"abc"));
        assert!(!s.matches(b"abd") && !s.matches(b"ab") && !s.matches(b"abcd"));
        assert_eq!(format!("{s:?}"), "Secret(…)");
    }

    #[test]
    fn grace_entries_parse() {
        assert_eq!(
            parse_after("P3=2m").unwrap(),
            (Severity::P3, Duration::from_secs(120))
        );
        assert!(parse_after("P9=2m").is_err() && parse_after("P3").is_err());
    }
}

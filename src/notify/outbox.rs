//! The outbox worker: claims a decision's job, brings its cards up to date
//! (send when it becomes READY, edit on every change, mark expired), and
//! settles the job. See `store/notify.rs` for why one job per token, claimed
//! under a lease, gives one card per READY across replicas and survives a
//! replica dying mid-send.

use super::Notifier;
use super::card::{self, Button, CardRecord, Sent, SlackSent, answerable};
use super::telegram::{ChatError, keyboard};
use crate::domain::{Decision, DecisionState, Token};
use crate::metrics::{CardOutcome, ChatChannel, notify_card, notify_self_resolved};
use crate::store::{Claim, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long card records are kept: long enough for any execution to end.
const CARD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest wait between outbox checks (another replica's expired lease, a
/// manual clock).
const IDLE: Duration = Duration::from_secs(1);

/// What to do with a job after a pass.
enum Next {
    Done,
    /// Due again at this time (grace period, token expiry); not a failure.
    At(DateTime<Utc>),
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// A chat API call failed, in this network.
    #[error("{1}")]
    Chat(ChatChannel, ChatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Failure {
    /// The network to count the failure in (a store failure: the first
    /// network configured).
    fn channel(&self, fallback: ChatChannel) -> ChatChannel {
        match self {
            Failure::Chat(c, _) => *c,
            Failure::Store(_) => fallback,
        }
    }
}

fn telegram(e: ChatError) -> Failure {
    Failure::Chat(ChatChannel::Telegram, e)
}

fn slack(e: ChatError) -> Failure {
    Failure::Chat(ChatChannel::Slack, e)
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Notifier {
    /// Claims and works due jobs until shutdown.
    pub async fn run_outbox(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let now = self.clock.now();
            match self.store.outbox_claim(now, self.settings.lease).await {
                Ok(Some(claim)) => self.work(claim).await,
                Ok(None) => {
                    let wait = match self.store.outbox_next_due().await {
                        Ok(Some(due)) => (due - now).to_std().unwrap_or(Duration::ZERO).min(IDLE),
                        _ => IDLE,
                    };
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notifier outbox unreachable");
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }

    /// One pass over a claimed job, then its settlement. Counted twice:
    /// in the store (`counts`, shared by replicas, shown in stats) and in
    /// this replica's metrics.
    async fn work(&self, claim: Claim) {
        let token = claim.token.clone();
        let fallback = if self.telegram.is_some() {
            ChatChannel::Telegram
        } else {
            ChatChannel::Slack
        };
        let settled = match self.sync(&token).await {
            Ok(Next::Done) => self.store.outbox_done(&claim).await,
            Ok(Next::At(at)) => self.store.outbox_defer(&claim, at).await,
            Err(Failure::Chat(channel, ChatError::RetryAfter(after))) => {
                // Rate limited: honour Telegram's retry_after or Slack's
                // Retry-After (or this replica's pacing); not a failure of
                // the card.
                tracing::info!(%token, ?after, "chat API rate limit; waiting as told");
                notify_card(channel, CardOutcome::RateLimited);
                let _ = self.store.count("rate_limited", 1).await;
                let at = self.clock.now() + chrono(after);
                self.store.outbox_retry(&claim, at).await
            }
            Err(e) => {
                let channel = e.channel(fallback);
                tracing::warn!(%token, error = %e, "card not delivered; will retry");
                notify_card(channel, CardOutcome::Failed);
                let _ = self.store.count("failed", 1).await;
                let at = self.clock.now() + chrono(self.settings.retry_interval);
                match self
                    .store
                    .outbox_failed(&claim, at, self.settings.max_attempts)
                    .await
                {
                    Ok(true) => {
                        tracing::error!(%token, attempts = self.settings.max_attempts, "card given up (dead letter)");
                        notify_card(channel, CardOutcome::DeadLettered);
                        Ok(())
                    }
                    Ok(false) => {
                        notify_card(channel, CardOutcome::Retried);
                        let _ = self.store.count("retried", 1).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = settled {
            // The lease ends and the job is due again: nothing is lost.
            tracing::warn!(%token, error = %e, "cannot settle a card job");
        }
    }

    /// Brings `token`'s cards up to date with the decision as it is now,
    /// in every configured chat network.
    async fn sync(&self, token: &Token) -> Result<Next, Failure> {
        if self.telegram.is_none() && self.slack.is_none() {
            return Ok(Next::Done);
        }
        let Some(d) = self.store.get_decision(token).await? else {
            return Ok(Next::Done);
        };
        let now = self.clock.now();
        let record: Option<CardRecord> = self
            .store
            .card(token)
            .await?
            .and_then(|j| serde_json::from_str(&j).ok());
        let open = answerable(&d, now);
        if record.is_none() && !open {
            // Decided, failed or expired before anyone was paged.
            return Ok(Next::Done);
        }
        let Some(incident) = self.store.get_incident(&d.incident_id).await? else {
            return Ok(Next::Done);
        };
        if record.is_none() {
            let due = d.updated_at + chrono(self.settings.grace(d.severity));
            if now < due {
                return Ok(Next::At(due));
            }
            if !incident.status.is_active() {
                tracing::info!(%token, incident = %incident.id, "incident resolved itself before its card was due; nobody paged");
                self.store.count("self_resolved", 1).await?;
                notify_self_resolved();
                return Ok(Next::Done);
            }
        }
        let mut record = record.unwrap_or_default();
        let expired = d.state == DecisionState::Ready && d.is_expired(now);
        let chats = match &self.telegram {
            Some(_) => self.settings.telegram_chats(&incident),
            None => Vec::new(),
        };
        let channels = match &self.slack {
            Some(_) => self.settings.slack_channels(&incident),
            None => Vec::new(),
        };
        let missing: Vec<i64> = chats
            .iter()
            .copied()
            .filter(|c| !record.sent.iter().any(|s| s.chat == *c))
            .collect();
        let missing_channels: Vec<&String> = channels
            .iter()
            .filter(|c| !record.slack.iter().any(|s| &s.channel == *c))
            .collect();
        let current = record.version == d.version && record.expired == expired;
        let nothing_new = missing.is_empty() && missing_channels.is_empty();
        if current && (nothing_new || !open) {
            return Ok(self.after(&d, now));
        }
        let text = card::render(&incident, &d, now);
        // Buttons still right for this version are kept (only new chats
        // are being added); otherwise a fresh pair replaces them.
        let keep = current && record.buttons.len() == 2;
        let ids = match (open, keep) {
            (false, _) => None,
            (true, true) => Some((record.buttons[0].clone(), record.buttons[1].clone())),
            (true, false) => Some(self.new_buttons(&d, &chats, &channels, now).await?),
        };
        let kb = || ids.as_ref().map(|(a, r)| keyboard(a, r));
        let pair = ids.as_ref().map(|(a, r)| (a.as_str(), r.as_str()));
        if !current {
            if let Some(tg) = &self.telegram {
                for s in &record.sent {
                    tg.edit(s.chat, s.message, &text, kb())
                        .await
                        .map_err(telegram)?;
                    notify_card(ChatChannel::Telegram, CardOutcome::Edited);
                }
            }
            if let Some(sl) = &self.slack {
                for s in &record.slack {
                    sl.update(&s.channel, &s.ts, &text, pair)
                        .await
                        .map_err(slack)?;
                    notify_card(ChatChannel::Slack, CardOutcome::Edited);
                }
            }
            if !record.sent.is_empty() || !record.slack.is_empty() {
                self.store.count("edited", 1).await?;
            }
        }
        if open {
            if let Some(tg) = &self.telegram {
                for chat in missing {
                    let message = tg.send(chat, &text, kb()).await.map_err(telegram)?;
                    record.sent.push(Sent { chat, message });
                    // Saved at once: a retry after a later failure does not
                    // send this chat a second card.
                    self.save(token, &record).await?;
                    notify_card(ChatChannel::Telegram, CardOutcome::Sent);
                    self.store.count("sent", 1).await?;
                }
            }
            if let Some(sl) = &self.slack {
                for channel in missing_channels {
                    let ts = sl.post(channel, &text, pair).await.map_err(slack)?;
                    record.slack.push(SlackSent {
                        channel: channel.clone(),
                        ts,
                    });
                    self.save(token, &record).await?;
                    notify_card(ChatChannel::Slack, CardOutcome::Sent);
                    self.store.count("sent", 1).await?;
                }
            }
        }
        // Replaced buttons are left to expire: bound to an older version,
        // a press on one answers that the decision changed.
        record.buttons = ids.map(|(a, r)| vec![a, r]).unwrap_or_default();
        record.version = d.version;
        record.expired = expired;
        self.save(token, &record).await?;
        Ok(self.after(&d, now))
    }

    /// An open card is looked at again when its token expires.
    fn after(&self, d: &Decision, now: DateTime<Utc>) -> Next {
        if answerable(d, now) {
            Next::At(d.expires_at)
        } else {
            Next::Done
        }
    }

    async fn save(&self, token: &Token, record: &CardRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).unwrap_or_default();
        self.store.save_card(token, &json, CARD_TTL).await
    }

    /// A fresh approve/reject pair bound to `d`'s version, valid until the
    /// token expires.
    async fn new_buttons(
        &self,
        d: &Decision,
        chats: &[i64],
        channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<(String, String), StoreError> {
        let ttl = (d.expires_at - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1));
        let mut ids = Vec::with_capacity(2);
        for answer in [card::Answer::Approve, card::Answer::Reject] {
            let id = card::new_button_id();
            let b = Button {
                token: d.token.as_str().to_owned(),
                version: d.version,
                answer,
                chats: chats.to_vec(),
                slack_channels: channels.to_vec(),
            };
            let json = serde_json::to_string(&b).unwrap_or_default();
            self.store.put_button(&id, &json, ttl).await?;
            ids.push(id);
        }
        let reject = ids.pop().unwrap_or_default();
        let approve = ids.pop().unwrap_or_default();
        Ok((approve, reject))
    }
}

//! Decision cards in chat: when a decision becomes READY, a card goes to
//! the incident's chats with ✅ Approve / ❌ Reject buttons; every later
//! change edits it; a press is an ordinary version-bound approval or
//! rejection through the [`DecisionManager`], by the principal the chat
//! user is mapped to.
//!
//! - `settings.rs`: routes, user mapping (fail closed), grace periods.
//! - `card.rs`: what a card says; the card and button records.
//! - `telegram.rs`: the Bot API client.
//! - `slack.rs`: the Slack Web API client and the signed interactivity
//!   route.
//! - `limiter.rs`: message pacing per chat and per bot (documented rates).
//! - `outbox.rs`: the worker that sends and edits cards, exactly one job
//!   per decision at a time across replicas (the store's outbox).
//! - `answer.rs`: button presses (long polling under a lease, or the
//!   webhook), authorised and applied.
//!
//! **Enqueued with the change.** The store enqueues a decision's card
//! update in the same atomic write as the change itself
//! (`update_decision.lua`, or under the memory store's lock), so a replica
//! that dies right after writing READY cannot lose the card: any replica's
//! outbox worker sends it. The change feed only wakes the worker.
//!
//! **Never in the way.** Everything else runs in the notifier's own
//! background tasks. A chat API that is down, slow or failing delays
//! nothing but its own cards: failures are logged, counted, and retried
//! from the outbox.

mod answer;
pub mod card;
mod limiter;
mod outbox;
pub mod settings;
pub mod slack;
pub mod telegram;

pub use answer::webhook_router;
pub use settings::{
    ChatUser, NotifySettings, Route, Secret, SlackSettings, TelegramSettings, Updates,
};

use crate::clock::Clock;
use crate::domain::Decision;
use crate::manager::DecisionManager;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify, mpsc};

/// The chat notifier of one replica.
pub struct Notifier {
    store: Arc<dyn Store>,
    decisions: Arc<DecisionManager>,
    clock: Arc<dyn Clock>,
    settings: NotifySettings,
    telegram: Option<telegram::Telegram>,
    slack: Option<slack::Slack>,
    /// Verified Slack presses, between the route and the Slack task.
    slack_presses: mpsc::Sender<slack::Press>,
    /// Taken by the Slack task when it starts.
    slack_queued: Mutex<Option<mpsc::Receiver<slack::Press>>>,
    /// This replica, as the owner of leases.
    owner: String,
    /// Wakes the outbox worker (a job was pushed).
    wake: Notify,
}

impl Notifier {
    /// A notifier for `settings` (which must be enabled).
    pub fn new(
        store: Arc<dyn Store>,
        decisions: Arc<DecisionManager>,
        clock: Arc<dyn Clock>,
        settings: NotifySettings,
    ) -> anyhow::Result<Arc<Notifier>> {
        settings.validate()?;
        let telegram = settings
            .telegram
            .as_ref()
            .map(|t| telegram::Telegram::new(&t.api_url, t.token.clone()))
            .transpose()?;
        let slack = settings
            .slack
            .as_ref()
            .map(|s| slack::Slack::new(&s.api_url, s.token.clone()))
            .transpose()?;
        let (slack_presses, slack_queued) = mpsc::channel(slack::PRESS_QUEUE);
        Ok(Arc::new(Notifier {
            store,
            decisions,
            clock,
            settings,
            telegram,
            slack,
            slack_presses,
            slack_queued: Mutex::new(Some(slack_queued)),
            owner: uuid::Uuid::new_v4().to_string(),
            wake: Notify::new(),
        }))
    }

    /// Hands the notifier one change from the change feed: the store has
    /// already enqueued its card update with the change, so this only
    /// wakes the outbox worker. Never waits.
    pub fn observe(&self, _: &Decision) {
        self.wake.notify_one();
    }

    /// Whether Slack presses are taken on this replica (every replica
    /// serves the interactivity route).
    pub fn answers_slack(&self) -> bool {
        self.slack.is_some()
    }

    /// Whether the Telegram poller should run on this replica.
    pub fn polls_telegram(&self) -> bool {
        self.settings
            .telegram
            .as_ref()
            .is_some_and(|t| t.updates == Updates::Poll)
    }
}

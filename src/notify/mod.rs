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
//! - `outbox.rs`: the worker that sends and edits cards, exactly one job
//!   per decision at a time across replicas (the store's outbox).
//! - `answer.rs`: button presses (long polling under a lease, or the
//!   webhook), authorised and applied.
//!
//! **Never in the way.** The change feed only `try_send`s a token into a
//! bounded queue; everything else runs in the notifier's own background
//! tasks. A chat API that is down, slow or failing delays nothing but its
//! own cards: failures are logged, counted, and retried from the outbox.

mod answer;
pub mod card;
mod outbox;
pub mod settings;
pub mod slack;
pub mod telegram;

pub use answer::webhook_router;
pub use settings::{
    ChatUser, NotifySettings, Route, Secret, SlackSettings, TelegramSettings, Updates,
};

use crate::clock::Clock;
use crate::domain::{Decision, Token};
use crate::manager::DecisionManager;
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, Notify, mpsc};

/// Changes queued between the feed and the outbox pusher.
const QUEUE: usize = 4096;

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
    queue: mpsc::Sender<Token>,
    /// Taken by the pusher task when it starts.
    queued: Mutex<Option<mpsc::Receiver<Token>>>,
    /// Wakes the outbox worker (a job was pushed).
    wake: Notify,
    /// Changes dropped because the queue was full.
    dropped: AtomicU64,
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
        let (queue, queued) = mpsc::channel(QUEUE);
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
            queue,
            queued: Mutex::new(Some(queued)),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
        }))
    }

    /// Hands the notifier one change from the change feed. Never waits: a
    /// full queue drops the change (logged and counted; the next change of
    /// the decision, or another replica's notifier, pushes it again).
    pub fn observe(&self, d: &Decision) {
        if self.queue.try_send(d.token.clone()).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(token = %d.token, dropped = n, "notifier queue full; change not queued");
        }
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

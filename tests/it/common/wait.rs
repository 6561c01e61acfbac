//! Waiting on events, never on the clock: each wait is for the event itself
//! (a returned RPC, a stream message, a Redis keyspace notification, a
//! process exit) and is bounded by a deadline that fails with a message
//! saying what never happened.

use futures::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// `fut`'s output, or a panic naming `what` if it takes longer than
/// `limit`. The limit guards against a hang; it is no performance bound.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing happened within {limit:?}"),
    }
}

/// Keyspace notifications for some keys of a test Redis, from the moment
/// the subscription was confirmed (see `RedisServer::key_events`).
pub struct KeyEvents {
    messages: Pin<Box<dyn Stream<Item = redis::Msg> + Send>>,
}

impl KeyEvents {
    pub(super) fn new(messages: Pin<Box<dyn Stream<Item = redis::Msg> + Send>>) -> KeyEvents {
        KeyEvents { messages }
    }

    /// Waits for the next `event` (a command name such as `set` or `zrem`)
    /// on a subscribed key and returns the key; panics naming `what` after
    /// `limit`.
    pub async fn next(&mut self, event: &str, limit: Duration, what: &str) -> String {
        within(limit, what, async {
            loop {
                let msg = self
                    .messages
                    .next()
                    .await
                    .unwrap_or_else(|| panic!("{what}: the notification connection closed"));
                let channel = msg.get_channel_name().to_string();
                let payload: String = msg.get_payload().unwrap_or_default();
                if payload == event {
                    let key = channel
                        .split_once("__:")
                        .map(|(_, k)| k)
                        .unwrap_or(&channel);
                    return key.to_string();
                }
            }
        })
        .await
    }
}

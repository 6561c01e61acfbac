//! The change feed of the Redis store: every decision change (and incident
//! update) is appended to the `verdict:changes` stream by the script that
//! makes it, and each
//! replica follows the stream to hand every change to its sink once.
//!
//! Apart from the pool because it is the one long-lived reader: a blocking
//! `XREAD` must not occupy a pooled, multiplexed connection, so the feed has
//! a dedicated connection of its own and reconnects by itself.

use super::RedisStore;
use super::decision_cache::DecisionCache;
use super::record::decode;
use crate::domain::{Decision, Incident};
use crate::store::{Change, ChangeSink, StoreError, keys};
use futures::future::BoxFuture;
use redis::RedisError;
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one blocking read of the change stream waits for entries.
const FEED_BLOCK: Duration = Duration::from_secs(2);
/// Entries read from the change stream per round trip.
const FEED_BATCH: usize = 512;

impl RedisStore {
    /// Takes the stream's position now, then returns the future that
    /// follows it (see [`crate::store::Store::follow_changes`]).
    pub(super) async fn start_feed(
        &self,
        sink: ChangeSink,
        cache: Arc<DecisionCache>,
        shutdown: CancellationToken,
    ) -> Result<BoxFuture<'static, ()>, StoreError> {
        // With Redis down at start-up, the position is taken on the first
        // connection instead (no change can be made without Redis).
        let last = self.run(async |c| newest_id(c).await).await.ok();
        let feed = Feed { sink, cache };
        let client = self.client.clone();
        Ok(Box::pin(async move {
            follow(client, last, &feed, shutdown).await;
            // Stopped: the cache can no longer see changes.
            feed.cache.set_live(false);
        }))
    }
}

/// Where the feed's changes go: the decision cache first (so a read after
/// a watcher heard of a change finds it), then the replica's sink.
struct Feed {
    sink: ChangeSink,
    cache: Arc<DecisionCache>,
}

impl Feed {
    /// Whether the feed follows the stream without a gap; on every change
    /// of that, the cache is emptied.
    fn following(&self, now: bool, was: &mut bool) {
        if now != *was {
            *was = now;
            self.cache.set_live(now);
        }
    }
}

/// The id of the newest change-stream entry ("0-0" when empty): the feed
/// starts after it.
async fn newest_id(c: &mut MultiplexedConnection) -> Result<String, RedisError> {
    let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(keys::CHANGES)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(c)
        .await?;
    Ok(last
        .ids
        .first()
        .map(|e| e.id.clone())
        .unwrap_or_else(|| "0-0".to_string()))
}

/// Follows `verdict:changes` on a dedicated connection from `last_id` on,
/// reconnecting with backoff after errors (entries are kept in the stream,
/// so a reconnect loses nothing unless it outlasts the stream's cap).
async fn follow(
    client: redis::Client,
    mut last_id: Option<String>,
    feed: &Feed,
    shutdown: CancellationToken,
) {
    let mut live = false;
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(FEED_BLOCK + Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    let mut backoff = Duration::from_millis(100);
    let mut conn: Option<MultiplexedConnection> = None;
    let opts = redis::streams::StreamReadOptions::default()
        .block(FEED_BLOCK.as_millis() as usize)
        .count(FEED_BATCH);
    while !shutdown.is_cancelled() {
        let c = match &mut conn {
            Some(c) => c,
            None => {
                let connected = tokio::select! {
                    c = client.get_multiplexed_async_connection_with_config(&config) => c,
                    _ = shutdown.cancelled() => return,
                };
                match connected {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        feed.following(false, &mut live);
                        tracing::warn!(error = %e, ?backoff, "change feed cannot connect to Redis; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        let from = match &last_id {
            Some(id) => id.clone(),
            None => match newest_id(c).await {
                Ok(id) => last_id.insert(id).clone(),
                Err(e) => {
                    tracing::warn!(error = %e, "change feed cannot read the stream position; reconnecting");
                    feed.following(false, &mut live);
                    conn = None;
                    continue;
                }
            },
        };
        let ids = [from.as_str()];
        let read: Result<Option<redis::streams::StreamReadReply>, RedisError> = tokio::select! {
            r = redis::AsyncCommands::xread_options(c, &[keys::CHANGES], &ids, &opts) => r,
            _ = shutdown.cancelled() => return,
        };
        match read {
            Ok(reply) => {
                backoff = Duration::from_millis(100);
                // A read answered: the feed follows the stream (again) from
                // where it was, so these entries and every later change are
                // seen, in order.
                feed.following(true, &mut live);
                for key in reply.map(|r| r.keys).unwrap_or_default() {
                    for entry in key.ids {
                        deliver(feed, &entry);
                        last_id = Some(entry.id);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "change feed read failed; reconnecting");
                feed.following(false, &mut live);
                conn = None;
            }
        }
    }
}

/// Hands one stream entry's change to the sink: a decision (`d`) or an
/// incident (`i`). An entry that holds neither is logged and skipped (it
/// cannot be retried into shape).
fn deliver(feed: &Feed, entry: &redis::streams::StreamId) {
    let decision: Option<Vec<u8>> = entry.get("d");
    let change = match decision {
        Some(b) => decode::<Decision>(keys::CHANGES, &b).map(|d| Change::Decision(Box::new(d))),
        None => match entry.get::<Vec<u8>>("i") {
            Some(b) => decode::<Incident>(keys::CHANGES, &b).map(|i| Change::Incident(Box::new(i))),
            None => {
                tracing::error!(id = %entry.id, "change without a decision or an incident skipped");
                return;
            }
        },
    };
    match change {
        Ok(c) => {
            match &c {
                Change::Decision(d) => feed.cache.observe(d),
                Change::Incident(i) => feed.cache.observe_incident(i),
            }
            (feed.sink)(c)
        }
        Err(e) => tracing::error!(id = %entry.id, error = %e, "undecodable change skipped"),
    }
}

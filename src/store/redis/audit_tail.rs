//! Following the audit stream for `WatchAuditEvents`: each watcher waits
//! with a blocking `XREAD` on a dedicated connection of its own (as the
//! change feed does, `feed.rs`), never on a pooled, multiplexed one that
//! other requests share.

use super::RedisStore;
use crate::audit::{self, Position};
use crate::store::{AuditTail, StoreError, decode, keys};
use redis::aio::MultiplexedConnection;
use std::time::Duration;

/// Bound on connecting a watcher's dedicated connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Allowance beyond the blocking read's own wait before a reply is late.
const REPLY_SLACK: Duration = Duration::from_secs(5);

impl RedisStore {
    /// [`crate::store::Store::newest_audit_position`]: one XREVRANGE.
    pub(super) async fn newest_audit(&self) -> Result<Position, StoreError> {
        let last: redis::streams::StreamRangeReply = self
            .run(async |c| {
                redis::cmd("XREVRANGE")
                    .arg(keys::AUDIT_STREAM)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(c)
                    .await
            })
            .await?;
        match last.ids.first() {
            None => Ok(Position::default()),
            Some(e) => Position::parse(&e.id)
                .ok_or_else(|| StoreError::corrupt(keys::AUDIT_STREAM, format!("id {}", e.id))),
        }
    }

    /// [`crate::store::Store::wait_audit_events`]: one blocking XREAD on
    /// the tail's own connection (connected on first use; dropped after an
    /// error so that the next wait starts on a fresh one).
    pub(super) async fn tail_events(
        &self,
        tail: &mut AuditTail,
        after: Position,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError> {
        let conn = match &mut tail.redis {
            Some(c) => c,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(wait + REPLY_SLACK))
                    .set_connection_timeout(Some(CONNECT_TIMEOUT));
                let c = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                tail.redis.insert(c)
            }
        };
        match read(conn, after, limit, wait).await {
            Ok(events) => Ok(events),
            Err(e) => {
                tail.redis = None;
                Err(e)
            }
        }
    }
}

/// Up to `limit` events after `after`, blocking up to `wait` for the first.
async fn read(
    conn: &mut MultiplexedConnection,
    after: Position,
    limit: usize,
    wait: Duration,
) -> Result<Vec<(Position, audit::Event)>, StoreError> {
    // BLOCK 0 would wait forever: the wait is at least a millisecond.
    let opts = redis::streams::StreamReadOptions::default()
        .block(wait.as_millis().max(1) as usize)
        .count(limit);
    let from = after.to_string();
    let reply: Option<redis::streams::StreamReadReply> =
        redis::AsyncCommands::xread_options(conn, &[keys::AUDIT_STREAM], &[from.as_str()], &opts)
            .await?;
    let mut out = Vec::new();
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        for entry in key.ids {
            let pos = Position::parse(&entry.id).ok_or_else(|| {
                StoreError::corrupt(keys::AUDIT_STREAM, format!("id {}", entry.id))
            })?;
            // As in `read_events`: an entry without an event is left for
            // `verify` to notice as a gap in its chain.
            if let Some(json) = entry.get::<String>("e") {
                out.push((pos, decode(keys::AUDIT_STREAM, &json)?));
            }
        }
    }
    Ok(out)
}

//! Connections of the Redis store: a bb8 pool (through bb8-redis) of
//! multiplexed connections, and [`RedisStore::run`], the one way a store
//! call reaches Redis.
//!
//! Kept apart from the store's operations because it owns the one piece of
//! connection policy: a call checks a connection out only to clone its
//! multiplexed handle, so every call in flight shares a few sockets and
//! Redis receives their commands pipelined; a connection that failed at the
//! transport level is marked broken so the pool replaces it. Nothing holds a
//! connection across slow work.

use super::RedisStore;
use crate::store::error::{Outage, StoreError, is_transport};
use bb8_redis::RedisConnectionManager;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo, RedisError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Pool and connection settings. Every timeout is explicit: redis-rs's own
/// defaults (1 s to connect, **500 ms** for a reply) are never used, since a
/// hidden half-second reply timeout failed calls during ordinary fsync
/// stalls while their writes were applied (issue 12.2).
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub size: u32,
    /// How long a call waits for a connection before failing UNAVAILABLE.
    pub wait: Duration,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long one command waits for its reply before the call fails
    /// UNAVAILABLE. A caller's gRPC deadline, when shorter, ends the wait
    /// first (the handler is dropped with it), so this only bounds calls
    /// whose deadline is longer or absent.
    pub response_timeout: Duration,
}

impl Default for PoolConfig {
    /// The server's defaults (`config::Config::default` maps onto these).
    fn default() -> Self {
        PoolConfig {
            size: 32,
            wait: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(5),
        }
    }
}

/// A pooled connection that remembers whether it failed at the transport
/// level, so the pool drops it instead of handing it out again. (bb8-redis
/// never reports a connection broken, and pinging on every checkout would
/// double the round trips of every request.) The flag is shared with the
/// handles calls run on, because those outlive their checkout.
pub struct Conn {
    inner: MultiplexedConnection,
    broken: Arc<AtomicBool>,
}

/// bb8 manager: connects with the configured timeouts (bb8-redis's own
/// `connect` would take redis-rs's defaults), checks through bb8-redis,
/// tracks broken connections.
pub struct Manager {
    checks: RedisConnectionManager,
    client: redis::Client,
    timeouts: AsyncConnectionConfig,
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<Conn, RedisError> {
        let inner = self
            .client
            .get_multiplexed_async_connection_with_config(&self.timeouts)
            .await?;
        Ok(Conn {
            inner,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        self.checks.is_valid(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

/// The parsed URL with TCP_NODELAY set: redis-rs leaves Nagle's algorithm
/// on by default, which can hold a small command back until the previous
/// reply's ACK.
pub(super) fn connection_info(url: &str) -> Result<ConnectionInfo, StoreError> {
    let info = url.into_connection_info().map_err(StoreError::InvalidUrl)?;
    Ok(info.set_tcp_settings(TcpSettings::default().set_nodelay(true)))
}

/// Builds the pool without connecting: the server starts (NOT_SERVING)
/// even while Redis is down, and connects when it comes up.
pub(super) fn build(
    info: ConnectionInfo,
    config: &PoolConfig,
) -> Result<bb8::Pool<Manager>, StoreError> {
    let checks = RedisConnectionManager::new(info.clone()).map_err(StoreError::InvalidUrl)?;
    let client = redis::Client::open(info).map_err(StoreError::InvalidUrl)?;
    let timeouts = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    Ok(bb8::Pool::builder()
        .max_size(config.size.max(1))
        .connection_timeout(config.wait)
        .test_on_check_out(false)
        .build_unchecked(Manager {
            checks,
            client,
            timeouts,
        }))
}

impl RedisStore {
    /// A handle on a healthy pooled connection and its broken flag.
    ///
    /// The pooled connection goes back to the pool as soon as its handle is
    /// cloned (an `Arc` clone): a `MultiplexedConnection` pipelines any
    /// number of concurrent calls over one socket, so holding it for the
    /// length of a call, as bb8 would, only capped the calls in flight at
    /// the pool size and sent each command in a write of its own
    /// (BENCHMARKS.md, "pool checkout"). A connection some call found
    /// broken is dropped here, and the pool opens a fresh one.
    async fn conn(&self) -> Result<(MultiplexedConnection, Arc<AtomicBool>), StoreError> {
        // Each broken connection is discarded once, so this ends after at
        // most pool-size discards.
        for _ in 0..=self.pool.state().connections {
            let pooled = self.pool.get().await?;
            if !pooled.broken.load(Ordering::Relaxed) {
                return Ok((pooled.inner.clone(), pooled.broken.clone()));
            }
        }
        Err(StoreError::Unavailable(Outage::AllBroken))
    }

    /// Runs one query on a pooled connection, marking the connection broken
    /// on transport errors. Its errors are classified once, by
    /// `From<RedisError> for StoreError`.
    pub(super) async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let r = self.call(f).await;
        let state = self.pool.state();
        let kind = r.as_ref().err().map(StoreError::kind);
        crate::metrics::redis_call(
            started.elapsed(),
            kind,
            state.connections,
            state.idle_connections,
        );
        r
    }

    /// [`Self::run`] without the metrics.
    async fn call<T>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let (mut conn, broken) = self.conn().await?;
        f(&mut conn).await.map_err(|e| {
            if is_transport(&e) {
                broken.store(true, Ordering::Relaxed);
            }
            StoreError::from(e)
        })
    }
}

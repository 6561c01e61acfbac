//! The Redis store: a bb8 pool of multiplexed connections, Lua scripts for
//! every read-modify-write (invoked by SHA, loaded once per server), and the
//! key layout from [`super::keys`].
//!
//! Connections are multiplexed: a call checks one out of the pool only to
//! clone its handle, so every call in flight shares a few sockets and Redis
//! receives their commands pipelined. Nothing holds a connection across
//! slow work.

use super::keys;
use super::{
    CachedProposal, Cas, ChangeSink, Created, ListCursor, Retention, Store, StoreError, decode,
    encode,
};
use crate::domain::{
    Decision, DecisionState, GroupKey, Incident, IncidentId, Proposal, RequestId, Signature, Token,
};
use crate::stats::{Action, Bucket, Shape, StatDelta, StatsQuery, StatsRead, Target};
use async_trait::async_trait;
use bb8_redis::RedisConnectionManager;
use futures::future::BoxFuture;
use lru::LruCache;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{IntoConnectionInfo, RedisError, Script, Value};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one blocking read of the change stream waits for entries.
const FEED_BLOCK: Duration = Duration::from_secs(2);
/// Entries read from the change stream per round trip.
const FEED_BATCH: usize = 512;

/// A pooled connection that remembers whether it failed at the transport
/// level, so the pool drops it instead of handing it out again. (bb8-redis
/// never reports a connection broken, and pinging on every checkout would
/// double the round trips of every request.) The flag is shared with the
/// handles calls run on, because those outlive their checkout.
pub struct Conn {
    inner: MultiplexedConnection,
    broken: Arc<AtomicBool>,
}

/// bb8 manager: connects through bb8-redis, tracks broken connections.
pub struct Manager(RedisConnectionManager);

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<Conn, RedisError> {
        Ok(Conn {
            inner: self.0.connect().await?,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        self.0.is_valid(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

struct Scripts {
    cas: Script,
    update_decision: Script,
    create_decision: Script,
    incident_and_current: Script,
    list_decisions: Script,
    create_incident: Script,
    set_group: Script,
    top_services: Script,
}

/// A write script with the statistics prelude (`lua/stats.lua`, which
/// defines `apply_stats`) in front of it.
macro_rules! with_stats {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/stats.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// Redis-backed [`Store`].
pub struct RedisStore {
    /// For the change feed's own connection (a blocking read must not
    /// occupy a pooled, multiplexed connection).
    client: redis::Client,
    pool: bb8::Pool<Manager>,
    scripts: Scripts,
    retention: Retention,
    /// token → incident id. The mapping never changes once written, so a
    /// cached entry is never stale; it saves a round trip on `GetDecision`.
    token_cache: Mutex<LruCache<Token, IncidentId>>,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub size: u32,
    /// How long a call waits for a connection before failing UNAVAILABLE.
    pub wait: Duration,
}

impl RedisStore {
    /// Builds the pool without connecting: the server starts (NOT_SERVING)
    /// even while Redis is down, and connects when it comes up.
    pub fn new(url: &str, pool: PoolConfig, retention: Retention) -> Result<Self, StoreError> {
        // TCP_NODELAY: redis-rs leaves Nagle's algorithm on by default, which
        // can hold a small command back until the previous reply's ACK.
        let info = url
            .into_connection_info()
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
        let info = info.set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let manager = RedisConnectionManager::new(info)
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
        let pool = bb8::Pool::builder()
            .max_size(pool.size.max(1))
            .connection_timeout(pool.wait)
            .test_on_check_out(false)
            .build_unchecked(Manager(manager));
        Ok(RedisStore {
            client,
            pool,
            scripts: Scripts {
                cas: with_stats!("cas.lua"),
                update_decision: with_stats!("update_decision.lua"),
                create_decision: with_stats!("create_decision.lua"),
                incident_and_current: Script::new(include_str!("lua/incident_and_current.lua")),
                list_decisions: Script::new(include_str!("lua/list_decisions.lua")),
                set_group: Script::new(include_str!("lua/set_group.lua")),
                create_incident: with_stats!("create_incident.lua"),
                top_services: Script::new(include_str!("lua/top_services.lua")),
            },
            retention,
            token_cache: Mutex::new(LruCache::new(NonZeroUsize::new(100_000).expect("non-zero"))),
        })
    }

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
            let pooled = self.pool.get().await.map_err(|e| match e {
                bb8::RunError::User(e) => StoreError::Unavailable(e.to_string()),
                bb8::RunError::TimedOut => {
                    StoreError::Unavailable("no Redis connection became available in time".into())
                }
            })?;
            if !pooled.broken.load(Ordering::Relaxed) {
                return Ok((pooled.inner.clone(), pooled.broken.clone()));
            }
        }
        Err(StoreError::Unavailable(
            "every pooled Redis connection is broken".into(),
        ))
    }

    /// Runs one query on a pooled connection, marking the connection broken
    /// on transport errors.
    async fn run<T: redis::FromRedisValue>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let (mut conn, broken) = self.conn().await?;
        match f(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let transport = e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()
                    || e.is_timeout();
                if transport {
                    broken.store(true, Ordering::Relaxed);
                    Err(StoreError::Unavailable(e.to_string()))
                } else {
                    Err(StoreError::Backend(e.to_string()))
                }
            }
        }
    }

    fn retention_ms(&self) -> u64 {
        self.retention.decisions.as_millis() as u64
    }

    async fn cas(
        &self,
        key: String,
        expected: u64,
        new_version: u64,
        json: String,
        retention_ms: u64,
        stats: &StatDelta,
    ) -> Result<Cas<String>, StoreError> {
        let script = &self.scripts.cas;
        let stats = self.stats_args(stats);
        let (ok, current): (i64, Option<String>) = self
            .run(async |c| {
                let v: Vec<Value> = script
                    .key(&key)
                    .arg(expected)
                    .arg(new_version)
                    .arg(&json)
                    .arg(retention_ms)
                    .arg(&stats)
                    .invoke_async(c)
                    .await?;
                script_pair(v)
            })
            .await?;
        Ok(if ok == 1 {
            Cas::Written
        } else {
            Cas::Conflict(current)
        })
    }

    /// The token's incident, and whether it came from the cache.
    async fn incident_of(&self, token: &Token) -> Result<Option<(IncidentId, bool)>, StoreError> {
        if let Some(id) = self.cache().get(token) {
            return Ok(Some((id.clone(), true)));
        }
        let key = keys::token_index(token);
        let id: Option<String> = self
            .run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        id.map(|s| {
            IncidentId::parse(&s)
                .map_err(|e| corrupt(&key, e))
                .map(|id| (id, false))
        })
        .transpose()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<Token, IncidentId>> {
        // A poisoned cache only means a panic elsewhere mid-insert; the map
        // itself is still consistent.
        self.token_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many incidents the listing index holds (`ZCARD`, O(1)): for
    /// benchmarks, which report how much is stored when they measure.
    pub async fn incident_count(&self) -> Result<u64, StoreError> {
        self.run(async |c| {
            redis::cmd("ZCARD")
                .arg(keys::INCIDENT_INDEX)
                .query_async(c)
                .await
        })
        .await
    }

    /// How many times Redis has run `command` (lower-case, e.g. `evalsha`)
    /// and the microseconds it spent in it, from `INFO commandstats`; None
    /// before the first call. For benchmarks: the time Redis itself spends
    /// in a lookup is what would grow with the store if a lookup scanned,
    /// and unlike a client-side latency it does not move with the load of
    /// the machine.
    pub async fn command_stats(&self, command: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let info: String = self
            .run(async |c| redis::cmd("INFO").arg("commandstats").query_async(c).await)
            .await?;
        Ok(parse_command_stats(&info, command))
    }

    /// Writes incidents with one current decision each, pipelined 1 000 at a
    /// time, in the normal key layout: for benchmarks and the O(1) test.
    pub async fn seed_bulk(
        &self,
        decisions: &[Decision],
        incidents: &[Incident],
    ) -> Result<(), StoreError> {
        for (chunk_d, chunk_i) in decisions.chunks(1000).zip(incidents.chunks(1000)) {
            let mut pipe = redis::pipe();
            for (d, i) in chunk_d.iter().zip(chunk_i) {
                pipe.cmd("HSET")
                    .arg(keys::incident(&i.id))
                    .arg("v")
                    .arg(i.version)
                    .arg("d")
                    .arg(encode(i))
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(keys::INCIDENT_INDEX)
                    .arg(i.created_at.timestamp_millis())
                    .arg(i.id.as_str())
                    .ignore();
                pipe.cmd("HSET")
                    .arg(keys::decision(&d.incident_id, &d.token))
                    .arg("v")
                    .arg(d.version)
                    .arg("d")
                    .arg(encode(d))
                    .ignore();
                pipe.cmd("SET")
                    .arg(keys::current(&d.incident_id))
                    .arg(d.token.as_str())
                    .ignore();
                pipe.cmd("LPUSH")
                    .arg(keys::history(&d.incident_id))
                    .arg(d.token.as_str())
                    .ignore();
                pipe.cmd("SET")
                    .arg(keys::token_index(&d.token))
                    .arg(d.incident_id.as_str())
                    .ignore();
            }
            self.run(async |c| pipe.query_async::<()>(c).await).await?;
        }
        Ok(())
    }
}

/// `(calls, usec)` of `command` in an `INFO commandstats` reply, whose lines
/// read `cmdstat_get:calls=3,usec=12,usec_per_call=4.00,...`.
fn parse_command_stats(info: &str, command: &str) -> Option<(u64, u64)> {
    let line = info.lines().find_map(|l| {
        l.strip_prefix("cmdstat_")?
            .strip_prefix(command)?
            .strip_prefix(':')
    })?;
    let field = |name: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("calls")?, field("usec")?))
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        detail: e.to_string(),
    }
}

/// Decodes a script's `{flag}` or `{flag, json-or-false}` reply.
fn script_pair(v: Vec<Value>) -> Result<(i64, Option<String>), RedisError> {
    let mut it = v.into_iter();
    let flag: i64 = redis::from_redis_value(it.next().unwrap_or(Value::Int(0)))?;
    let json: Option<String> = match it.next() {
        None | Some(Value::Nil) | Some(Value::Boolean(false)) => None,
        Some(Value::Int(0)) => None,
        Some(v) => Some(redis::from_redis_value(v)?),
    };
    Ok((flag, json))
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(async |c| redis::cmd("PING").query_async::<String>(c).await)
            .await
            .map(|_| ())
    }

    async fn create_incident(
        &self,
        incident: &Incident,
        request_id: Option<&RequestId>,
        stats: &StatDelta,
    ) -> Result<Created, StoreError> {
        if let Some(rid) = request_id {
            let key = keys::request(rid);
            let ttl = self.retention.request_ids.as_millis() as u64;
            // SET NX GET: claims the request id, or returns the incident a
            // previous call with the same id created.
            let previous: Option<String> = self
                .run(async |c| {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(incident.id.as_str())
                        .arg("NX")
                        .arg("GET")
                        .arg("PX")
                        .arg(ttl)
                        .query_async(c)
                        .await
                })
                .await?;
            if let Some(prev) = previous {
                let prev = IncidentId::parse(&prev).map_err(|e| corrupt(&key, e))?;
                if let Some(found) = self.get_incident(&prev).await? {
                    return Ok(Created::Replayed(found));
                }
                // The first call claimed the id but died before storing the
                // incident (or has not stored it yet): store it now under
                // the id it claimed. If the first call stores it meanwhile,
                // that is the incident.
                let mut retry = incident.clone();
                retry.id = prev.clone();
                return match self.create_incident(&retry, None, stats).await? {
                    Created::IdTaken => match self.get_incident(&prev).await? {
                        Some(found) => Ok(Created::Replayed(found)),
                        None => Ok(Created::IdTaken),
                    },
                    other => Ok(other),
                };
            }
        }
        let key = keys::incident(&incident.id);
        let json = encode(incident);
        let script = &self.scripts.create_incident;
        let created_ms = incident.created_at.timestamp_millis();
        let stats = self.stats_args(stats);
        // Index first: a listing skips index entries whose incident is
        // missing, while an incident missing from the index would be lost
        // to listings.
        let created: i64 = self
            .run(async |c| {
                redis::cmd("ZADD")
                    .arg(keys::INCIDENT_INDEX)
                    .arg("NX")
                    .arg(created_ms)
                    .arg(incident.id.as_str())
                    .query_async::<i64>(c)
                    .await?;
                script
                    .key(&key)
                    .arg(incident.version)
                    .arg(&json)
                    .arg(&stats)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(if created == 1 {
            Created::New(incident.clone())
        } else {
            Created::IdTaken
        })
    }

    async fn get_incident(&self, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        let key = keys::incident(id);
        let json: Option<String> = self
            .run(async |c| redis::cmd("HGET").arg(&key).arg("d").query_async(c).await)
            .await?;
        json.map(|j| decode(&key, &j)).transpose()
    }

    async fn list_incidents(
        &self,
        cursor: Option<ListCursor>,
        limit: usize,
    ) -> Result<(Vec<Incident>, Option<ListCursor>), StoreError> {
        let (max, offset) = match cursor {
            Some(c) => (c.created_ms.to_string(), c.skip_same),
            None => ("+inf".to_string(), 0),
        };
        let page: Vec<(String, f64)> = self
            .run(async |c| {
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(keys::INCIDENT_INDEX)
                    .arg(&max)
                    .arg("-inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(offset)
                    .arg(limit)
                    .query_async(c)
                    .await
            })
            .await?;
        if page.is_empty() {
            return Ok((vec![], None));
        }
        let next = next_cursor(
            cursor,
            page.iter().map(|(_, s)| *s as i64),
            page.len() < limit,
        );
        let mut pipe = redis::pipe();
        for (id, _) in &page {
            pipe.cmd("HGET")
                .arg(format!("verdict:{{{id}}}:incident"))
                .arg("d");
        }
        let blobs: Vec<Option<String>> = self.run(async |c| pipe.query_async(c).await).await?;
        let mut out = Vec::with_capacity(blobs.len());
        for ((id, _), blob) in page.iter().zip(blobs) {
            if let Some(j) = blob {
                out.push(decode(id, &j)?);
            }
        }
        Ok((out, next))
    }

    async fn update_incident(
        &self,
        expected_version: u64,
        incident: &Incident,
        stats: &StatDelta,
    ) -> Result<Cas<Incident>, StoreError> {
        let key = keys::incident(&incident.id);
        match self
            .cas(
                key.clone(),
                expected_version,
                incident.version,
                encode(incident),
                0,
                stats,
            )
            .await?
        {
            Cas::Written => Ok(Cas::Written),
            Cas::Conflict(j) => Ok(Cas::Conflict(j.map(|j| decode(&key, &j)).transpose()?)),
        }
    }

    async fn get_decision(&self, token: &Token) -> Result<Option<Decision>, StoreError> {
        let Some((incident, cached)) = self.incident_of(token).await? else {
            return Ok(None);
        };
        let key = keys::decision(&incident, token);
        let json: Option<String> = self
            .run(async |c| redis::cmd("HGET").arg(&key).arg("d").query_async(c).await)
            .await?;
        let Some(json) = json else { return Ok(None) };
        // Cached only once the record is known to exist; a hit is not
        // re-inserted (that cost a lock and two clones per read).
        if !cached {
            self.cache().put(token.clone(), incident);
        }
        decode(&key, &json).map(Some)
    }

    async fn incident_and_current(
        &self,
        id: &IncidentId,
    ) -> Result<(Option<Incident>, Option<Decision>), StoreError> {
        let script = &self.scripts.incident_and_current;
        let (ik, ck, prefix) = (
            keys::incident(id),
            keys::current(id),
            keys::decision_prefix(id),
        );
        let v: Vec<Value> = self
            .run(async |c| script.key(&ik).key(&ck).arg(&prefix).invoke_async(c).await)
            .await?;
        let mut it = v.into_iter();
        let mut next_json = || -> Result<Option<String>, StoreError> {
            match it.next() {
                None | Some(Value::Nil) | Some(Value::Boolean(false)) | Some(Value::Int(0)) => {
                    Ok(None)
                }
                Some(v) => redis::from_redis_value(v)
                    .map(Some)
                    .map_err(|e| StoreError::Backend(e.to_string())),
            }
        };
        let inc = next_json()?.map(|j| decode(&ik, &j)).transpose()?;
        let dec = next_json()?.map(|j| decode(&ck, &j)).transpose()?;
        Ok((inc, dec))
    }

    async fn create_decision(
        &self,
        expected_current: Option<&Token>,
        decision: &Decision,
        stats: &StatDelta,
    ) -> Result<Cas<Decision>, StoreError> {
        let id = &decision.incident_id;
        let (ck, dk, hk, prefix) = (
            keys::current(id),
            keys::decision(id, &decision.token),
            keys::history(id),
            keys::decision_prefix(id),
        );
        let retention = self.retention_ms();
        let json = encode(decision);
        let script = &self.scripts.create_decision;
        let expected = expected_current.map(|t| t.as_str()).unwrap_or("");
        let history_len = self.retention.history_len;
        let stream_len = self.retention.change_stream_len;
        let deadline_ms = if decision.state == DecisionState::Analyzing {
            decision.analysis_deadline.timestamp_millis().to_string()
        } else {
            String::new()
        };
        let stats = self.stats_args(stats);
        let (ok, current) = self
            .run(async |c| {
                // The token index lives in its own slot; written first, an
                // orphan (the script then loses) only points at nothing.
                redis::cmd("SET")
                    .arg(keys::token_index(&decision.token))
                    .arg(id.as_str())
                    .arg("PX")
                    .arg(retention)
                    .query_async::<()>(c)
                    .await?;
                let v: Vec<Value> = script
                    .key(&ck)
                    .key(&dk)
                    .key(&hk)
                    .key(keys::CHANGES)
                    .key(keys::ANALYZING_INDEX)
                    .arg(expected)
                    .arg(decision.token.as_str())
                    .arg(decision.version)
                    .arg(&json)
                    .arg(retention)
                    .arg(history_len)
                    .arg(&prefix)
                    .arg(stream_len)
                    .arg(&deadline_ms)
                    .arg(&stats)
                    .invoke_async(c)
                    .await?;
                script_pair(v)
            })
            .await?;
        if ok == 1 {
            self.cache().put(decision.token.clone(), id.clone());
            return Ok(Cas::Written);
        }
        Ok(Cas::Conflict(current.map(|j| decode(&ck, &j)).transpose()?))
    }

    async fn update_decision(
        &self,
        expected_version: u64,
        decision: &Decision,
        stats: &StatDelta,
    ) -> Result<Cas<Decision>, StoreError> {
        let key = keys::decision(&decision.incident_id, &decision.token);
        let retention = self.retention_ms();
        let stream_len = self.retention.change_stream_len;
        let json = encode(decision);
        let script = &self.scripts.update_decision;
        // A decision written out of ANALYZING leaves the ANALYZING index in
        // the same script.
        let leaves_analyzing = if decision.state == DecisionState::Analyzing {
            ""
        } else {
            decision.token.as_str()
        };
        let stats = self.stats_args(stats);
        let (ok, current) = self
            .run(async |c| {
                let v: Vec<Value> = script
                    .key(&key)
                    .key(keys::CHANGES)
                    .key(keys::ANALYZING_INDEX)
                    .arg(expected_version)
                    .arg(decision.version)
                    .arg(&json)
                    .arg(retention)
                    .arg(stream_len)
                    .arg(leaves_analyzing)
                    .arg(&stats)
                    .invoke_async(c)
                    .await?;
                script_pair(v)
            })
            .await?;
        if ok == 1 {
            return Ok(Cas::Written);
        }
        Ok(Cas::Conflict(
            current.map(|j| decode(&key, &j)).transpose()?,
        ))
    }

    async fn list_decisions(
        &self,
        id: &IncidentId,
        limit: usize,
    ) -> Result<Vec<Decision>, StoreError> {
        let script = &self.scripts.list_decisions;
        let (hk, prefix) = (keys::history(id), keys::decision_prefix(id));
        let blobs: Vec<String> = self
            .run(async |c| {
                script
                    .key(&hk)
                    .arg(&prefix)
                    .arg(limit)
                    .invoke_async(c)
                    .await
            })
            .await?;
        blobs.iter().map(|j| decode(&hk, j)).collect()
    }

    async fn decision_versions(
        &self,
        token: &Token,
        after: u64,
    ) -> Result<Vec<Decision>, StoreError> {
        let Some((incident, _)) = self.incident_of(token).await? else {
            return Ok(vec![]);
        };
        let key = keys::decision(&incident, token);
        let fields: Vec<(String, String)> = self
            .run(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await)
            .await?;
        let mut out: Vec<(u64, Decision)> = Vec::new();
        for (field, json) in fields {
            let Some(n) = field.strip_prefix('h').and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if n > after {
                out.push((n, decode(&key, &json)?));
            }
        }
        out.sort_by_key(|(n, _)| *n);
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }

    async fn follow_changes(
        &self,
        sink: ChangeSink,
        shutdown: CancellationToken,
    ) -> Result<BoxFuture<'static, ()>, StoreError> {
        // With Redis down at start-up, the position is taken on the first
        // connection instead (no change can be made without Redis).
        let last = self.last_change_id().await.ok();
        Ok(Box::pin(follow(self.client.clone(), last, sink, shutdown)))
    }

    async fn overdue_analyses(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let members: Vec<String> = self
            .run(async |c| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(keys::ANALYZING_INDEX)
                    .arg("-inf")
                    .arg(before.timestamp_millis())
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(c)
                    .await
            })
            .await?;
        let mut out = Vec::with_capacity(members.len());
        let mut foreign = Vec::new();
        for m in members {
            match Token::parse(&m) {
                Ok(t) => out.push(t),
                Err(_) => foreign.push(m),
            }
        }
        // A member that is not a token was not written by verdict; left in
        // place it would take a slot of every sweep for ever.
        if !foreign.is_empty() {
            self.run(async |c| {
                redis::cmd("ZREM")
                    .arg(keys::ANALYZING_INDEX)
                    .arg(&foreign)
                    .query_async::<i64>(c)
                    .await
            })
            .await?;
        }
        Ok(out)
    }

    async fn read_stats(&self, query: &StatsQuery) -> Result<StatsRead, StoreError> {
        let mut out = StatsRead::default();
        let mut pipe = redis::pipe();
        let mut slots = Vec::new();
        for series in &query.series {
            for b in &query.buckets {
                let key = keys::stats(*b, series);
                match series.shape() {
                    Shape::Counters => pipe.cmd("HGETALL").arg(key),
                    Shape::Sketch => pipe.cmd("GET").arg(key),
                    Shape::Ranking => continue,
                };
                slots.push(Some(series));
            }
        }
        if query.gauge {
            pipe.cmd("HGETALL").arg(keys::STATS_STATUS);
            slots.push(None);
        }
        if slots.is_empty() {
            return Ok(out);
        }
        let replies: Vec<Value> = self.run(async |c| pipe.query_async(c).await).await?;
        for (slot, reply) in slots.into_iter().zip(replies) {
            match slot {
                Some(series) if series.shape() == Shape::Sketch => {
                    let bytes: Option<Vec<u8>> =
                        redis::from_redis_value(reply).map_err(|e| backend(&e))?;
                    if let Some(bytes) = bytes {
                        out.add_sketch(series, &bytes);
                    }
                }
                Some(series) => {
                    let fields: Vec<(String, i64)> =
                        redis::from_redis_value(reply).map_err(|e| backend(&e))?;
                    for (f, n) in fields {
                        out.add_counter(series, &f, n);
                    }
                }
                None => {
                    let fields: Vec<(String, i64)> =
                        redis::from_redis_value(reply).map_err(|e| backend(&e))?;
                    for (f, n) in fields {
                        out.gauge.add(&f, n);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn forget_analysis(&self, token: &Token) -> Result<(), StoreError> {
        self.run(async |c| {
            redis::cmd("ZREM")
                .arg(keys::ANALYZING_INDEX)
                .arg(token.as_str())
                .query_async::<i64>(c)
                .await
        })
        .await
        .map(|_| ())
    }

    async fn cached_proposal(&self, signature: &Signature) -> Result<Option<Proposal>, StoreError> {
        let key = keys::proposal_cache(signature);
        let json: Option<String> = self
            .run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        let Some(json) = json else { return Ok(None) };
        let entry: CachedProposal = decode(&key, &json)?;
        Ok((entry.signature == signature.as_str()).then_some(entry.proposal))
    }

    async fn cache_proposal(
        &self,
        signature: &Signature,
        proposal: &Proposal,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = keys::proposal_cache(signature);
        let json = encode(&CachedProposal {
            signature: signature.as_str().to_owned(),
            proposal: proposal.clone(),
        });
        let ttl_ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.run(async |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(&json)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(c)
                .await
        })
        .await
    }

    async fn group_incident(&self, group: &GroupKey) -> Result<Option<IncidentId>, StoreError> {
        let key = keys::group(group);
        let id: Option<String> = self
            .run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        id.map(|s| IncidentId::parse(&s).map_err(|e| corrupt(&key, e)))
            .transpose()
    }

    async fn set_group_incident(
        &self,
        group: &GroupKey,
        expected: Option<&IncidentId>,
        incident: &IncidentId,
    ) -> Result<Cas<IncidentId>, StoreError> {
        let key = keys::group(group);
        let script = &self.scripts.set_group;
        let expected = expected.map(|i| i.as_str()).unwrap_or("");
        let (ok, current) = self
            .run(async |c| {
                let v: Vec<Value> = script
                    .key(&key)
                    .arg(expected)
                    .arg(incident.as_str())
                    .invoke_async(c)
                    .await?;
                script_pair(v)
            })
            .await?;
        if ok == 1 {
            return Ok(Cas::Written);
        }
        Ok(Cas::Conflict(
            current
                .map(|s| IncidentId::parse(&s).map_err(|e| corrupt(&key, e)))
                .transpose()?,
        ))
    }

    async fn top_services(
        &self,
        buckets: &[Bucket],
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        if buckets.is_empty() || limit == 0 {
            return Ok(vec![]);
        }
        let script = &self.scripts.top_services;
        let keys: Vec<String> = buckets
            .iter()
            .map(|b| keys::stats(*b, &crate::stats::Series::Services))
            .collect();
        let (above, ties): (Vec<(String, f64)>, Vec<(String, f64)>) = self
            .run(async |c| {
                script
                    .key(&keys)
                    .arg(limit)
                    .arg(keys::STATS_SCRATCH)
                    .invoke_async(c)
                    .await
            })
            .await?;
        let mut ranked = crate::stats::report::rank(
            above.into_iter().map(|(s, n)| (s, score(n))).collect(),
            limit,
        );
        ranked.extend(ties.into_iter().map(|(s, n)| (s, score(n))));
        ranked.truncate(limit);
        Ok(ranked)
    }
}

/// A ranking score as a count (scores are sums of whole increments).
fn score(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        n.round() as u64
    } else {
        0
    }
}

fn backend(e: &impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedisStore {
    /// The ARGV tail that `lua/stats.lua` applies: the increments of
    /// `delta`, the expiry of every bucket key they touch, then the number
    /// of arguments before it. Always at least that count ("0").
    fn stats_args(&self, delta: &StatDelta) -> Vec<String> {
        let mut a = Vec::new();
        for op in delta.ops() {
            let key = match &op.target {
                Target::Bucket(b, s) => keys::stats(*b, s),
                Target::StatusGauge => keys::STATS_STATUS.to_owned(),
            };
            match &op.action {
                Action::Count { field, by } => {
                    a.extend(["H".to_owned(), key, field.clone(), by.to_string()])
                }
                Action::Rank { member, by } => {
                    a.extend(["Z".to_owned(), key, member.clone(), by.to_string()])
                }
                Action::Bin { index, by } => {
                    a.extend(["B".to_owned(), key, index.to_string(), by.to_string()])
                }
            }
        }
        for (b, s) in delta.touched() {
            a.extend([
                "E".to_owned(),
                keys::stats(b, s),
                b.expires_at(self.retention.stats).to_string(),
            ]);
        }
        a.push(a.len().to_string());
        a
    }

    /// Writes incidents (record and listing index, as `create_incident`
    /// would) and the statistics `delta` with plain pipelined commands,
    /// 2 000 commands per round trip (well inside the client's response
    /// timeout on a busy machine; increments are not retried, since a
    /// retry could count twice): for seeding benchmarks, where the
    /// deltas of many incidents are coalesced first. Not atomic, and not
    /// for live data. Returns the number of commands sent.
    pub async fn write_bulk(
        &self,
        incidents: &[Incident],
        delta: &StatDelta,
    ) -> Result<usize, StoreError> {
        const PER_TRIP: usize = 2_000;
        let mut pipe = redis::pipe();
        let mut queued = 0usize;
        let mut sent = 0usize;
        let mut cmds: Vec<redis::Cmd> = Vec::new();
        for i in incidents {
            let mut c = redis::cmd("HSET");
            c.arg(keys::incident(&i.id))
                .arg("v")
                .arg(i.version)
                .arg("d")
                .arg(encode(i));
            cmds.push(c);
            let mut c = redis::cmd("ZADD");
            c.arg(keys::INCIDENT_INDEX)
                .arg(i.created_at.timestamp_millis())
                .arg(i.id.as_str());
            cmds.push(c);
        }
        for op in delta.ops() {
            let key = match &op.target {
                Target::Bucket(b, s) => keys::stats(*b, s),
                Target::StatusGauge => keys::STATS_STATUS.to_owned(),
            };
            let mut c;
            match &op.action {
                Action::Count { field, by } => {
                    c = redis::cmd("HINCRBY");
                    c.arg(key).arg(field).arg(*by);
                }
                Action::Rank { member, by } => {
                    c = redis::cmd("ZINCRBY");
                    c.arg(key).arg(*by).arg(member);
                }
                Action::Bin { index, by } => {
                    c = redis::cmd("BITFIELD");
                    c.arg(key)
                        .arg("OVERFLOW")
                        .arg("SAT")
                        .arg("INCRBY")
                        .arg("u32")
                        .arg(format!("#{index}"))
                        .arg(*by);
                }
            }
            cmds.push(c);
        }
        for (b, s) in delta.touched() {
            let mut c = redis::cmd("EXPIREAT");
            c.arg(keys::stats(b, s))
                .arg(b.expires_at(self.retention.stats));
            cmds.push(c);
        }
        for c in cmds {
            pipe.add_command(c).ignore();
            queued += 1;
            if queued == PER_TRIP {
                self.run(async |c| pipe.query_async::<()>(c).await).await?;
                pipe = redis::pipe();
                sent += queued;
                queued = 0;
            }
        }
        if queued > 0 {
            self.run(async |c| pipe.query_async::<()>(c).await).await?;
            sent += queued;
        }
        Ok(sent)
    }
}

impl RedisStore {
    /// The id of the newest change-stream entry ("0-0" when empty): the
    /// feed starts after it.
    async fn last_change_id(&self) -> Result<String, StoreError> {
        let last: redis::streams::StreamRangeReply = self
            .run(async |c| {
                redis::cmd("XREVRANGE")
                    .arg(keys::CHANGES)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(last
            .ids
            .first()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| "0-0".to_string()))
    }
}

/// Follows `verdict:changes` on a dedicated connection from `last_id` on,
/// reconnecting with backoff after errors (entries are kept in the stream,
/// so a reconnect loses nothing unless it outlasts the stream's cap).
async fn follow(
    client: redis::Client,
    mut last_id: Option<String>,
    sink: ChangeSink,
    shutdown: CancellationToken,
) {
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
            None => {
                let newest: Result<redis::streams::StreamRangeReply, RedisError> =
                    redis::cmd("XREVRANGE")
                        .arg(keys::CHANGES)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(1)
                        .query_async(c)
                        .await;
                match newest {
                    Ok(r) => {
                        let id = r
                            .ids
                            .first()
                            .map(|e| e.id.clone())
                            .unwrap_or_else(|| "0-0".into());
                        last_id = Some(id.clone());
                        id
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed cannot read the stream position; reconnecting");
                        conn = None;
                        continue;
                    }
                }
            }
        };
        let ids = [from.as_str()];
        let read: Result<Option<redis::streams::StreamReadReply>, RedisError> = tokio::select! {
            r = redis::AsyncCommands::xread_options(c, &[keys::CHANGES], &ids, &opts) => r,
            _ = shutdown.cancelled() => return,
        };
        match read {
            Ok(reply) => {
                backoff = Duration::from_millis(100);
                for key in reply.map(|r| r.keys).unwrap_or_default() {
                    for entry in key.ids {
                        let json: Option<String> = entry.get("d");
                        match json
                            .as_deref()
                            .map(|j| decode::<Decision>(keys::CHANGES, j))
                        {
                            Some(Ok(d)) => sink(d),
                            Some(Err(e)) => {
                                tracing::error!(id = %entry.id, error = %e, "undecodable change skipped")
                            }
                            None => {
                                tracing::error!(id = %entry.id, "change without a decision skipped")
                            }
                        }
                        last_id = Some(entry.id);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "change feed read failed; reconnecting");
                conn = None;
            }
        }
    }
}

/// The cursor after a page of creation times (newest first). `exhausted`
/// when the page was short: there is nothing after it.
pub(crate) fn next_cursor(
    previous: Option<ListCursor>,
    scores: impl DoubleEndedIterator<Item = i64> + Clone,
    exhausted: bool,
) -> Option<ListCursor> {
    if exhausted {
        return None;
    }
    let last = scores.clone().next_back()?;
    let same = scores.rev().take_while(|s| *s == last).count() as u32;
    let carried = match previous {
        Some(p) if p.created_ms == last => p.skip_same,
        _ => 0,
    };
    Some(ListCursor {
        created_ms: last,
        skip_same: carried + same,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_command_stats;

    #[test]
    fn reads_command_stats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=10,usec=55,usec_per_call=5.50\r\n";
        assert_eq!(parse_command_stats(info, "evalsha"), Some((10, 55)));
        assert_eq!(parse_command_stats(info, "get"), Some((3, 12)));
        assert_eq!(
            parse_command_stats(info, "eval"),
            None,
            "not a prefix match"
        );
        assert_eq!(parse_command_stats(info, "hget"), None);
    }
}

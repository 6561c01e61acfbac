//! The Redis store: [`RedisStore`] and its [`Store`] implementation, the
//! glue between the store's operations and the pieces they are built from.
//!
//! - `pool.rs`: connections (the bb8 pool of multiplexed connections,
//!   [`PoolConfig`]) and `run`, the one way a call reaches Redis.
//! - `scripts.rs`: the Lua scripts in `lua/` and their reply mapping.
//! - `feed.rs`: the change feed (`verdict:changes`, a dedicated connection).
//! - `stats.rs`: a statistics delta as Redis writes, and the stats reads.
//! - `audit.rs`: sealing audit events against their chain head, and the
//!   audit reads.
//! - `audit_tail.rs`: audit watchers' blocking reads, each on a dedicated
//!   connection.
//! - `record.rs`: the stored form of incidents and decisions (prost with a
//!   format byte; JSON from earlier releases is still read).
//! - `seed.rs`: bulk seeding and introspection, for benchmarks.
//!
//! Every read-modify-write is one Lua script, invoked by SHA; every key
//! comes from [`super::keys`].

mod audit;
mod audit_tail;
mod decision_cache;
mod feed;
mod notify;
mod pool;
mod record;
mod scripts;
mod seed;
mod stats;

pub use self::pool::PoolConfig;

use self::pool::Manager;
use self::record::{decode as decode_record, encode as encode_record};
use self::scripts::{Scripts, cas_reply, optional_bytes};
use super::{
    CachedProposal, Cas, ChangeSink, Created, ListCursor, Retention, Store, StoreError, decode,
    encode, keys, next_cursor,
};
use crate::audit::{self as audit_trail, Position, Signer};
use crate::domain::{
    Decision, DecisionState, GroupKey, Incident, IncidentId, Proposal, RequestId, Signature, Token,
};
use crate::stats::{Bucket, StatDelta, StatsQuery, StatsRead};
use async_trait::async_trait;
use futures::future::BoxFuture;
use lru::LruCache;
use redis::Value;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Token → incident entries kept in the lookup cache.
const TOKEN_CACHE_ENTRIES: NonZeroUsize = NonZeroUsize::new(100_000).expect("non-zero");

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
    /// The signer and the chain heads last seen.
    audit: self::audit::AuditState,
    /// Whether every decision change also enqueues its chat card's update
    /// (see [`RedisStore::with_chat_outbox`]).
    chat_outbox: bool,
    /// Decisions for `get_decision_cached`, kept right by the change feed
    /// (`decision_cache.rs`); serves nothing until the feed follows.
    decisions: Arc<decision_cache::DecisionCache>,
}

impl RedisStore {
    /// Builds the pool without connecting: the server starts (NOT_SERVING)
    /// even while Redis is down, and connects when it comes up.
    pub fn new(url: &str, pool: PoolConfig, retention: Retention) -> Result<Self, StoreError> {
        let info = pool::connection_info(url)?;
        let client = redis::Client::open(info.clone()).map_err(StoreError::InvalidUrl)?;
        Ok(RedisStore {
            client,
            pool: pool::build(info, &pool)?,
            scripts: Scripts::load(),
            retention,
            token_cache: Mutex::new(LruCache::new(TOKEN_CACHE_ENTRIES)),
            audit: self::audit::AuditState::new(),
            chat_outbox: false,
            decisions: Arc::new(decision_cache::DecisionCache::new(
                decision_cache::ENTRIES,
                decision_cache::MAX_AGE,
            )),
        })
    }

    /// The same store, enqueueing every decision change into the chat
    /// notifier's outbox in the script that writes the change: a replica
    /// that dies right after a write cannot lose the card update (issue 16).
    /// Off without a notifier, so nothing fills an outbox nobody drains.
    pub fn with_chat_outbox(mut self) -> Self {
        self.chat_outbox = true;
        self
    }

    /// The same store, auditing every write with `signer`.
    pub fn with_audit(mut self, signer: Signer) -> Self {
        self::audit::set_signer(&mut self.audit, signer);
        self
    }

    /// The same store, also handing each event it appends to `sink`.
    pub fn with_audit_sink(mut self, sink: crate::store::AuditSink) -> Self {
        self.audit.sink = Some(sink);
        self
    }

    fn retention_ms(&self) -> u64 {
        self.retention.decisions.as_millis() as u64
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
                .map_err(|e| StoreError::corrupt(&key, e))
                .map(|id| (id, false))
        })
        .transpose()
    }

    /// Up to `limit` members of the sorted-set `index` whose score (a due
    /// time in milliseconds) is before `before`, soonest first: the sweeper's
    /// read of the analysing and executing indexes.
    async fn due(
        &self,
        index: &str,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.run(async |c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(index)
                .arg("-inf")
                .arg(before.timestamp_millis())
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(c)
                .await
        })
        .await
    }

    /// Removes `members` from the sorted-set `index`.
    async fn unindex<M: redis::ToRedisArgs + Send + Sync>(
        &self,
        index: &str,
        members: &[M],
    ) -> Result<(), StoreError> {
        self.run(async |c| {
            redis::cmd("ZREM")
                .arg(index)
                .arg(members)
                .query_async::<i64>(c)
                .await
        })
        .await
        .map(|_| ())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<Token, IncidentId>> {
        // A poisoned cache only means a panic elsewhere mid-insert; the map
        // itself is still consistent.
        self.token_cache.lock().unwrap_or_else(|p| p.into_inner())
    }
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
        audit: Option<&audit_trail::Draft>,
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
                let prev = IncidentId::parse(&prev).map_err(|e| StoreError::corrupt(&key, e))?;
                if let Some(found) = self.get_incident(&prev).await? {
                    return Ok(Created::Replayed(found));
                }
                // The first call claimed the id but died before storing the
                // incident (or has not stored it yet): store it now under
                // the id it claimed. If the first call stores it meanwhile,
                // that is the incident.
                let mut retry = incident.clone();
                retry.id = prev.clone();
                return match self.create_incident(&retry, None, stats, audit).await? {
                    Created::IdTaken => match self.get_incident(&prev).await? {
                        Some(found) => Ok(Created::Replayed(found)),
                        None => Ok(Created::IdTaken),
                    },
                    other => Ok(other),
                };
            }
        }
        let key = keys::incident(&incident.id);
        let json = encode_record(incident);
        let script = &self.scripts.create_incident;
        let created_ms = incident.created_at.timestamp_millis();
        let stats = self.stats_args(stats);
        // Index first: a listing skips index entries whose incident is
        // missing, while an incident missing from the index would be lost
        // to listings.
        // One round trip: the index entry and the script in one pipeline.
        let mut index = redis::cmd("ZADD");
        index
            .arg(keys::INCIDENT_INDEX)
            .arg("NX")
            .arg(created_ms)
            .arg(incident.id.as_str());
        let reply = self
            .audited_after(&index, audit, |sealed| {
                let mut call = script.key(&key);
                call.arg(incident.version)
                    .arg(&json)
                    .arg(sealed)
                    .arg(&stats);
                call
            })
            .await?;
        Ok(if matches!(reply.first(), Some(Value::Int(1))) {
            Created::New(incident.clone())
        } else {
            Created::IdTaken
        })
    }

    async fn get_incident(&self, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        let key = keys::incident(id);
        let bytes: Option<Vec<u8>> = self
            .run(async |c| redis::cmd("HGET").arg(&key).arg("d").query_async(c).await)
            .await?;
        bytes.map(|b| decode_record(&key, &b)).transpose()
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
        // A member that is not an incident id was not written by verdict:
        // like a member whose incident is gone, it is skipped.
        let records: Vec<String> = page
            .iter()
            .filter_map(|(id, _)| IncidentId::parse(id).ok())
            .map(|id| keys::incident(&id))
            .collect();
        let mut pipe = redis::pipe();
        for key in &records {
            pipe.cmd("HGET").arg(key).arg("d");
        }
        let blobs: Vec<Option<Vec<u8>>> = self.run(async |c| pipe.query_async(c).await).await?;
        let mut out = Vec::with_capacity(blobs.len());
        for (key, blob) in records.iter().zip(blobs) {
            if let Some(b) = blob {
                out.push(decode_record(key, &b)?);
            }
        }
        Ok((out, next))
    }

    async fn update_incident(
        &self,
        expected_version: u64,
        incident: &Incident,
        stats: &StatDelta,
        audit: Option<&audit_trail::Draft>,
    ) -> Result<Cas<Incident>, StoreError> {
        let key = keys::incident(&incident.id);
        let json = encode_record(incident);
        let script = &self.scripts.update_incident;
        let stats = self.stats_args(stats);
        let stream_len = self.retention.change_stream_len;
        // Incidents never expire.
        let reply = self
            .audited(audit, |sealed| {
                let mut call = script.key(&key);
                call.key(keys::CHANGES)
                    .arg(expected_version)
                    .arg(incident.version)
                    .arg(&json)
                    .arg(stream_len)
                    .arg(sealed)
                    .arg(&stats);
                call
            })
            .await?;
        let outcome = cas_reply(reply, |b| decode_record(&key, b))?;
        match &outcome {
            Cas::Written => self.decisions.observe_incident(incident),
            Cas::Conflict(Some(current)) => self.decisions.observe_incident(current),
            Cas::Conflict(None) => {}
        }
        Ok(outcome)
    }

    async fn get_decision(&self, token: &Token) -> Result<Option<Decision>, StoreError> {
        // A token this replica knows: its record, one HGET. Otherwise the
        // index and the record in one script (`decision_by_token.lua`).
        let cached = self.cache().get(token).cloned();
        if let Some(incident) = cached {
            let key = keys::decision(&incident, token);
            let bytes: Option<Vec<u8>> = self
                .run(async |c| redis::cmd("HGET").arg(&key).arg("d").query_async(c).await)
                .await?;
            return bytes.map(|b| decode_record(&key, &b)).transpose();
        }
        let index = keys::token_index(token);
        let script = &self.scripts.decision_by_token;
        let v: Vec<Value> = self
            .run(async |c| {
                script
                    .key(&index)
                    .arg(token.as_str())
                    .arg(keys::DECISION_KEY_START)
                    .invoke_async(c)
                    .await
            })
            .await?;
        let mut it = v.into_iter();
        let Some(id) = optional_bytes(it.next())? else {
            return Ok(None);
        };
        let incident = std::str::from_utf8(&id)
            .map_err(|e| StoreError::corrupt(&index, e))
            .and_then(|s| IncidentId::parse(s).map_err(|e| StoreError::corrupt(&index, e)))?;
        let key = keys::decision(&incident, token);
        let Some(bytes) = optional_bytes(it.next())? else {
            return Ok(None);
        };
        let decision = decode_record(&key, &bytes)?;
        // Cached only once the record is known to exist.
        self.cache().put(token.clone(), incident);
        Ok(Some(decision))
    }

    async fn get_decision_cached(&self, token: &Token) -> Result<Option<Decision>, StoreError> {
        if let Some(d) = self.decisions.get(token) {
            return Ok(Some(Decision::clone(&d)));
        }
        let ticket = self.decisions.ticket();
        let found = self.get_decision(token).await?;
        if let (Some(ticket), Some(d)) = (ticket, &found) {
            self.decisions.fill(ticket, d);
        }
        Ok(found)
    }

    async fn incident_and_current_cached(
        &self,
        id: &IncidentId,
    ) -> Result<(Option<Incident>, Option<Decision>, bool), StoreError> {
        if let Some((incident, decision)) = self.decisions.current(id) {
            return Ok((
                Some(Incident::clone(&incident)),
                Some(Decision::clone(&decision)),
                true,
            ));
        }
        let ticket = self.decisions.ticket();
        let (incident, decision) = self.incident_and_current(id).await?;
        if let (Some(ticket), Some(i), Some(d)) = (ticket, &incident, &decision) {
            self.decisions.fill_current(ticket, i, d);
        }
        Ok((incident, decision, false))
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
        let inc = optional_bytes(it.next())?
            .map(|b| decode_record(&ik, &b))
            .transpose()?;
        let dec = optional_bytes(it.next())?
            .map(|b| decode_record(&ck, &b))
            .transpose()?;
        Ok((inc, dec))
    }

    async fn create_decision(
        &self,
        expected_current: Option<&Token>,
        decision: &Decision,
        stats: &StatDelta,
        audit: Option<&audit_trail::Draft>,
    ) -> Result<Cas<Decision>, StoreError> {
        let id = &decision.incident_id;
        let (ck, dk, hk, prefix) = (
            keys::current(id),
            keys::decision(id, &decision.token),
            keys::history(id),
            keys::decision_prefix(id),
        );
        let retention = self.retention_ms();
        let json = encode_record(decision);
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
        // The token index lives in its own slot; written first, an orphan
        // (the script then loses) only points at nothing.
        // One round trip: the token index and the script in one pipeline.
        let mut index = redis::cmd("SET");
        index
            .arg(keys::token_index(&decision.token))
            .arg(id.as_str())
            .arg("PX")
            .arg(retention);
        let reply = self
            .audited_after(&index, audit, |sealed| {
                let mut call = script.key(&ck);
                call.key(&dk)
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
                    .arg(sealed)
                    .arg(&stats);
                call
            })
            .await?;
        let outcome = cas_reply(reply, |b| decode_record(&ck, b))?;
        if matches!(outcome, Cas::Written) {
            self.cache().put(decision.token.clone(), id.clone());
            self.decisions.observe(decision);
        }
        Ok(outcome)
    }

    async fn update_decision(
        &self,
        expected_version: u64,
        decision: &Decision,
        stats: &StatDelta,
        audit: Option<&audit_trail::Draft>,
    ) -> Result<Cas<Decision>, StoreError> {
        let key = keys::decision(&decision.incident_id, &decision.token);
        let retention = self.retention_ms();
        let stream_len = self.retention.change_stream_len;
        let json = encode_record(decision);
        let script = &self.scripts.update_decision;
        // A decision written out of ANALYZING leaves the ANALYZING index in
        // the same script.
        let leaves_analyzing = if decision.state == DecisionState::Analyzing {
            ""
        } else {
            decision.token.as_str()
        };
        // The EXECUTING index follows the state in the same script.
        let executing = match decision.state {
            DecisionState::Executing => "enter",
            DecisionState::Completed | DecisionState::Error => "leave",
            _ => "",
        };
        let entered_ms = decision.updated_at.timestamp_millis();
        // The chat card's update is enqueued by the same script.
        let card = if self.chat_outbox {
            decision.token.as_str()
        } else {
            ""
        };
        let stats = self.stats_args(stats);
        let reply = self
            .audited(audit, |sealed| {
                let mut call = script.key(&key);
                call.key(keys::CHANGES)
                    .key(keys::ANALYZING_INDEX)
                    .key(keys::EXECUTING_INDEX)
                    .key(keys::NOTIFY_OUTBOX)
                    .key(keys::NOTIFY_CLAIMS)
                    .key(keys::NOTIFY_PENDING)
                    .arg(expected_version)
                    .arg(decision.version)
                    .arg(&json)
                    .arg(retention)
                    .arg(stream_len)
                    .arg(leaves_analyzing)
                    .arg(executing)
                    .arg(entered_ms)
                    .arg(card)
                    .arg(entered_ms)
                    .arg(sealed)
                    .arg(&stats);
                call
            })
            .await?;
        let outcome = cas_reply(reply, |b| decode_record(&key, b))?;
        match &outcome {
            Cas::Written => self.decisions.observe(decision),
            Cas::Conflict(Some(current)) => self.decisions.observe(current),
            Cas::Conflict(None) => {}
        }
        Ok(outcome)
    }

    async fn append_audit(&self, draft: &audit_trail::Draft) -> Result<(), StoreError> {
        self.append_event(draft).await
    }

    async fn audit_events(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit_trail::Event)>, StoreError> {
        self.read_events(after, limit).await
    }

    async fn audit_chain_events(
        &self,
        chain: &str,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit_trail::Event)>, StoreError> {
        self.read_chain_events(chain, after, limit).await
    }

    async fn audit_head(&self, chain: &str) -> Result<audit_trail::Head, StoreError> {
        self.read_head(chain).await
    }

    async fn newest_audit_position(&self) -> Result<Position, StoreError> {
        self.newest_audit().await
    }

    async fn wait_audit_events(
        &self,
        tail: &mut super::AuditTail,
        after: Position,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<(Position, audit_trail::Event)>, StoreError> {
        self.tail_events(tail, after, limit, wait).await
    }

    async fn list_decisions(
        &self,
        id: &IncidentId,
        limit: usize,
    ) -> Result<Vec<Decision>, StoreError> {
        let script = &self.scripts.list_decisions;
        let (hk, prefix) = (keys::history(id), keys::decision_prefix(id));
        let blobs: Vec<Vec<u8>> = self
            .run(async |c| {
                script
                    .key(&hk)
                    .arg(&prefix)
                    .arg(limit)
                    .invoke_async(c)
                    .await
            })
            .await?;
        blobs.iter().map(|b| decode_record(&hk, b)).collect()
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
        let fields: Vec<(String, Vec<u8>)> = self
            .run(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await)
            .await?;
        let mut out: Vec<(u64, Decision)> = Vec::new();
        for (field, bytes) in fields {
            let Some(n) = field.strip_prefix('h').and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if n > after {
                out.push((n, decode_record(&key, &bytes)?));
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
        self.start_feed(sink, self.decisions.clone(), shutdown)
            .await
    }

    async fn overdue_analyses(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let members = self.due(keys::ANALYZING_INDEX, before, limit).await?;
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
            self.unindex(keys::ANALYZING_INDEX, &foreign).await?;
        }
        Ok(out)
    }

    async fn read_stats(&self, query: &StatsQuery) -> Result<StatsRead, StoreError> {
        self.read_buckets(query).await
    }

    async fn forget_analysis(&self, token: &Token) -> Result<(), StoreError> {
        self.unindex(keys::ANALYZING_INDEX, &[token.as_str()]).await
    }

    async fn overdue_executions(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let members = self.due(keys::EXECUTING_INDEX, before, limit).await?;
        // A member that is not a token was not written by verdict: skipped.
        Ok(members
            .iter()
            .filter_map(|m| Token::parse(m).ok())
            .collect())
    }

    async fn forget_execution(&self, token: &Token) -> Result<(), StoreError> {
        self.unindex(keys::EXECUTING_INDEX, &[token.as_str()]).await
    }

    async fn take_lease(
        &self,
        token: &Token,
        owner: &str,
        ttl: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
        let until = now.timestamp_millis().saturating_add(ttl_ms);
        let script = &self.scripts.take_lease;
        let taken: i64 = self
            .run(async |c| {
                script
                    .key(keys::lease(token))
                    .key(keys::EXECUTING_INDEX)
                    .arg(owner)
                    .arg(ttl_ms)
                    .arg(until)
                    .arg(token.as_str())
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(taken == 1)
    }

    async fn release_lease(&self, token: &Token, owner: &str) -> Result<(), StoreError> {
        let script = &self.scripts.release_lease;
        self.run(async |c| {
            script
                .key(keys::lease(token))
                .arg(owner)
                .invoke_async::<i64>(c)
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
        id.map(|s| IncidentId::parse(&s).map_err(|e| StoreError::corrupt(&key, e)))
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
        let reply: Vec<Value> = self
            .run(async |c| {
                script
                    .key(&key)
                    .arg(expected)
                    .arg(incident.as_str())
                    .invoke_async(c)
                    .await
            })
            .await?;
        cas_reply(reply, |b| {
            std::str::from_utf8(b)
                .map_err(|e| StoreError::corrupt(&key, e))
                .and_then(|s| IncidentId::parse(s).map_err(|e| StoreError::corrupt(&key, e)))
        })
    }

    async fn top_services(
        &self,
        buckets: &[Bucket],
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.rank_services(buckets, limit).await
    }
}

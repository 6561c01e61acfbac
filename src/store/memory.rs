//! The in-memory store for `verdict serve --dev` and fast tests: the same
//! semantics as Redis (single-flight creation, compare-and-set, capped
//! history, newest-first listing), nothing persisted.

use super::{
    AuditTail, Cas, Change, ChangeSink, Created, ListCursor, Retention, Store, StoreError,
};
use crate::audit::{self, Position, Signer};
use crate::domain::{
    Decision, DecisionState, GroupKey, Incident, IncidentId, Proposal, RequestId, Signature, Token,
};
use crate::stats::{Action, Bucket, Series, StatDelta, StatsQuery, StatsRead, Target};
use async_trait::async_trait;
use futures::future::BoxFuture;
use lru::LruCache;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Cached proposals kept at most (least recently used go first).
const CACHE_ENTRIES: usize = 10_000;

#[derive(Default)]
struct Inner {
    incidents: HashMap<IncidentId, Incident>,
    /// (creation ms, id): iterated in reverse for newest first, with the
    /// same tie order as Redis' ZREVRANGEBYSCORE.
    index: BTreeSet<(i64, String)>,
    requests: HashMap<RequestId, IncidentId>,
    decisions: HashMap<Token, Decision>,
    /// Every version of each decision, oldest first (a handful each).
    versions: HashMap<Token, Vec<Decision>>,
    current: HashMap<IncidentId, Token>,
    history: HashMap<IncidentId, VecDeque<Token>>,
    /// The ANALYZING index: (analysis deadline ms, token), and each
    /// token's deadline for removal.
    analyzing: BTreeSet<(i64, Token)>,
    analyzing_at: HashMap<Token, i64>,
    /// The EXECUTING index: token → score (ms), as in Redis.
    executing: HashMap<Token, i64>,
    /// Execution leases: token → (owner, expiry ms).
    leases: HashMap<Token, (String, i64)>,
    /// Alert group → the incident it last opened.
    groups: HashMap<GroupKey, IncidentId>,
    stats: Stats,
    audit: AuditLog,
}

/// Audit events at most in memory, besides the retention (the dev store
/// must stay bounded whatever the clock says).
const AUDIT_EVENTS: usize = 100_000;

/// The audit chains: each chain's head and one time-ordered log of all
/// events, as in Redis.
#[derive(Default)]
struct AuditLog {
    heads: HashMap<String, audit::Head>,
    events: VecDeque<(Position, audit::Event)>,
    /// Each chain's positions in `events`, oldest first: the index a
    /// listing by incident reads (as `verdict:{INC}:audit:ids` in Redis).
    chains: HashMap<String, VecDeque<Position>>,
    last: Position,
}

impl AuditLog {
    fn append(
        &mut self,
        signer: &Signer,
        draft: &audit::Draft,
        retention: std::time::Duration,
    ) -> audit::Event {
        let head = self.heads.entry(draft.chain().to_owned()).or_default();
        let event = signer.seal(draft, head);
        *head = audit::Head {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        self.last = self.last.next(now);
        self.chains
            .entry(event.chain.clone())
            .or_default()
            .push_back(self.last);
        self.events.push_back((self.last, event.clone()));
        let oldest = now.saturating_sub(retention.as_millis() as u64);
        while let Some((p, _)) = self.events.front() {
            if p.ms >= oldest && self.events.len() <= AUDIT_EVENTS {
                break;
            }
            if let Some((_, e)) = self.events.pop_front()
                && let Some(chain) = self.chains.get_mut(&e.chain)
            {
                // The oldest event of the trail is its chain's oldest.
                chain.pop_front();
                if chain.is_empty() {
                    self.chains.remove(&e.chain);
                }
            }
        }
        event
    }

    /// Up to `limit` events of `chain` after `after`, through its index.
    fn chain_events(
        &self,
        chain: &str,
        after: Option<Position>,
        limit: usize,
    ) -> Vec<(Position, audit::Event)> {
        let Some(index) = self.chains.get(chain) else {
            return Vec::new();
        };
        let start = after.map_or(0, |a| index.partition_point(|p| *p <= a));
        index
            .range(start..)
            .take(limit)
            .filter_map(|p| {
                let i = self.events.binary_search_by_key(p, |(q, _)| *q).ok()?;
                self.events.get(i).cloned()
            })
            .collect()
    }
}

impl Inner {
    fn index_analysis(&mut self, d: &Decision) {
        if d.state == DecisionState::Analyzing {
            let ms = d.analysis_deadline.timestamp_millis();
            self.analyzing.insert((ms, d.token.clone()));
            self.analyzing_at.insert(d.token.clone(), ms);
        }
    }

    fn unindex_analysis(&mut self, token: &Token) {
        if let Some(ms) = self.analyzing_at.remove(token) {
            self.analyzing.remove(&(ms, token.clone()));
        }
    }
}

/// A cached proposal and when it goes stale.
struct CacheEntry {
    signature: String,
    proposal: Proposal,
    until: Instant,
}

/// Statistics, with Redis' semantics: bucket series that expire at a fixed
/// wall-clock time (Redis' own clock there, the system clock here), and a
/// gauge that never does.
#[derive(Default)]
struct Stats {
    series: HashMap<(Bucket, Series), Entry>,
    gauge: HashMap<String, i64>,
    /// Writes since expired series were last dropped.
    since_purge: usize,
}

struct Entry {
    expires_at: i64,
    data: Data,
}

#[derive(Default)]
struct Data {
    counters: HashMap<String, i64>,
    bins: Vec<u32>,
}

/// How many writes pass between two sweeps of expired series, so memory
/// stays bounded by the retention without a background task.
const PURGE_EVERY: usize = 4_096;

impl Stats {
    fn apply(&mut self, delta: &StatDelta, retention: std::time::Duration) {
        let now = chrono::Utc::now().timestamp();
        for op in delta.ops() {
            let data = match &op.target {
                Target::StatusGauge => {
                    if let Action::Count { field, by } = &op.action {
                        let e = self.gauge.entry(field.clone()).or_insert(0);
                        *e = e.saturating_add(*by);
                    }
                    continue;
                }
                Target::Bucket(b, s) => {
                    let expires_at = b.expires_at(retention);
                    if expires_at <= now {
                        // Redis drops a key whose EXPIREAT is past at once.
                        continue;
                    }
                    &mut self
                        .series
                        .entry((*b, s.clone()))
                        .or_insert_with(|| Entry {
                            expires_at,
                            data: Data::default(),
                        })
                        .data
                }
            };
            match &op.action {
                Action::Count { field, by } | Action::Rank { member: field, by } => {
                    let e = data.counters.entry(field.clone()).or_insert(0);
                    *e = e.saturating_add(*by);
                }
                Action::Bin { index, by } => {
                    let i = *index as usize;
                    if i < crate::stats::sketch::MAX_BINS as usize {
                        if data.bins.len() <= i {
                            data.bins.resize(i + 1, 0);
                        }
                        data.bins[i] = data.bins[i].saturating_add(*by);
                    }
                }
            }
        }
        self.since_purge += 1;
        if self.since_purge >= PURGE_EVERY {
            self.since_purge = 0;
            self.series.retain(|_, e| e.expires_at > now);
        }
    }

    fn get(&self, b: Bucket, s: &Series, now: i64) -> Option<&Data> {
        self.series
            .get(&(b, s.clone()))
            .filter(|e| e.expires_at > now)
            .map(|e| &e.data)
    }
}

/// In-memory [`Store`]. Every operation holds one mutex for a few
/// microseconds and never across an await.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    retention: Retention,
    /// Where changes go while someone follows them. Called under the data
    /// lock, so changes arrive in the order they were made.
    sinks: Arc<Mutex<Vec<(u64, ChangeSink)>>>,
    next_sink: std::sync::atomic::AtomicU64,
    /// Separate from `inner`: the cache is independent of the records.
    cache: Mutex<LruCache<String, CacheEntry>>,
    /// The chat notifier's records (`memory_notify.rs`).
    pub(super) notify: Mutex<super::memory_notify::NotifyState>,
    /// Seals audit events; None = auditing off.
    signer: Option<Signer>,
    /// Whether decision changes enqueue their chat card's update (see
    /// [`MemoryStore::with_chat_outbox`]).
    chat_outbox: bool,
    /// Where appended events also go, if anywhere.
    sink: Option<crate::store::AuditSink>,
    /// Counts audit appends, to wake audit watchers.
    audit_appended: tokio::sync::watch::Sender<u64>,
}

impl MemoryStore {
    pub fn new(retention: Retention) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            retention,
            sinks: Arc::new(Mutex::new(Vec::new())),
            next_sink: std::sync::atomic::AtomicU64::new(0),
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            notify: Mutex::default(),
            signer: None,
            chat_outbox: false,
            sink: None,
            audit_appended: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The same store, auditing every write with `signer`.
    pub fn with_audit(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The same store, enqueueing every decision change into the chat
    /// notifier's outbox under the same lock as the write (as the Redis
    /// store does in the write's script).
    pub fn with_chat_outbox(mut self) -> Self {
        self.chat_outbox = true;
        self
    }

    /// The same store, also handing each event it appends to `sink`.
    pub fn with_audit_sink(mut self, sink: crate::store::AuditSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Appends `draft` (called with the data lock held, beside the write).
    fn audit(&self, g: &mut Inner, draft: Option<&audit::Draft>) {
        if let (Some(signer), Some(draft)) = (&self.signer, draft) {
            let event = g.audit.append(signer, draft, self.retention.audit);
            if let Some(sink) = &self.sink {
                sink.offer(crate::store::encode(&event));
            }
            self.audit_appended.send_modify(|n| *n = n.wrapping_add(1));
            crate::metrics::audit_event_written(&draft.outcome);
        }
    }

    /// Records a new version and hands it to the followers (called with the
    /// data lock held).
    fn changed(&self, g: &mut Inner, d: &Decision) {
        g.versions
            .entry(d.token.clone())
            .or_default()
            .push(d.clone());
        self.feed(Change::Decision(Box::new(d.clone())));
    }

    /// Hands one change to the followers (called with the data lock held,
    /// so changes arrive in the order they were made).
    fn feed(&self, change: Change) {
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        for (_, sink) in sinks.iter() {
            sink(change.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation below is completed before the guard drops, so a
        // poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, CacheEntry>> {
        // Each cache operation is one call on the map, so a poisoned lock
        // still guards a consistent map.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create_incident(
        &self,
        incident: &Incident,
        request_id: Option<&RequestId>,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Created, StoreError> {
        let mut g = self.lock();
        if let Some(rid) = request_id
            && let Some(prev) = g.requests.get(rid)
            && let Some(found) = g.incidents.get(prev)
        {
            return Ok(Created::Replayed(found.clone()));
        }
        if g.incidents.contains_key(&incident.id) {
            return Ok(Created::IdTaken);
        }
        if let Some(rid) = request_id {
            g.requests.insert(rid.clone(), incident.id.clone());
        }
        g.index.insert((
            incident.created_at.timestamp_millis(),
            incident.id.to_string(),
        ));
        g.incidents.insert(incident.id.clone(), incident.clone());
        g.stats.apply(stats, self.retention.stats);
        self.audit(&mut g, audit);
        Ok(Created::New(incident.clone()))
    }

    async fn get_incident(&self, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        Ok(self.lock().incidents.get(id).cloned())
    }

    async fn list_incidents(
        &self,
        cursor: Option<ListCursor>,
        limit: usize,
    ) -> Result<(Vec<Incident>, Option<ListCursor>), StoreError> {
        let g = self.lock();
        let (max, skip) = match cursor {
            Some(c) => (c.created_ms, c.skip_same as usize),
            None => (i64::MAX, 0),
        };
        let page: Vec<&(i64, String)> = g
            .index
            .iter()
            .rev()
            .filter(|(ms, _)| *ms <= max)
            .skip(skip)
            .take(limit)
            .collect();
        let next = super::next_cursor(cursor, page.iter().map(|(ms, _)| *ms), page.len() < limit);
        let out = page
            .iter()
            .filter_map(|(_, id)| {
                IncidentId::parse(id)
                    .ok()
                    .and_then(|id| g.incidents.get(&id).cloned())
            })
            .collect();
        Ok((out, next))
    }

    async fn update_incident(
        &self,
        expected_version: u64,
        incident: &Incident,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Cas<Incident>, StoreError> {
        let mut g = self.lock();
        match g.incidents.get(&incident.id) {
            Some(cur) if cur.version == expected_version => {
                g.incidents.insert(incident.id.clone(), incident.clone());
                g.stats.apply(stats, self.retention.stats);
                self.audit(&mut g, audit);
                self.feed(Change::Incident(Box::new(incident.clone())));
                Ok(Cas::Written)
            }
            other => Ok(Cas::Conflict(other.cloned())),
        }
    }

    async fn get_decision(&self, token: &Token) -> Result<Option<Decision>, StoreError> {
        Ok(self.lock().decisions.get(token).cloned())
    }

    async fn incident_and_current(
        &self,
        id: &IncidentId,
    ) -> Result<(Option<Incident>, Option<Decision>), StoreError> {
        let g = self.lock();
        let dec = g.current.get(id).and_then(|t| g.decisions.get(t)).cloned();
        Ok((g.incidents.get(id).cloned(), dec))
    }

    async fn create_decision(
        &self,
        expected_current: Option<&Token>,
        decision: &Decision,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Cas<Decision>, StoreError> {
        let mut g = self.lock();
        let id = &decision.incident_id;
        let cur = g.current.get(id).cloned();
        if cur.as_ref() != expected_current {
            return Ok(Cas::Conflict(
                cur.and_then(|t| g.decisions.get(&t).cloned()),
            ));
        }
        g.decisions.insert(decision.token.clone(), decision.clone());
        self.changed(&mut g, decision);
        g.stats.apply(stats, self.retention.stats);
        self.audit(&mut g, audit);
        g.current.insert(id.clone(), decision.token.clone());
        g.index_analysis(decision);
        let cap = self.retention.history_len;
        let h = g.history.entry(id.clone()).or_default();
        h.push_front(decision.token.clone());
        // Decisions that fall out of the capped history are forgotten, so
        // memory stays bounded per incident.
        let dropped: Vec<Token> = h.drain(cap.min(h.len())..).collect();
        for t in dropped {
            g.decisions.remove(&t);
            g.versions.remove(&t);
            g.unindex_analysis(&t);
        }
        Ok(Cas::Written)
    }

    async fn update_decision(
        &self,
        expected_version: u64,
        decision: &Decision,
        stats: &StatDelta,
        audit: Option<&audit::Draft>,
    ) -> Result<Cas<Decision>, StoreError> {
        let mut g = self.lock();
        match g.decisions.get(&decision.token) {
            Some(cur) if cur.version == expected_version => {
                g.decisions.insert(decision.token.clone(), decision.clone());
                self.changed(&mut g, decision);
                if decision.state != DecisionState::Analyzing {
                    g.unindex_analysis(&decision.token);
                }
                match decision.state {
                    DecisionState::Executing => {
                        let ms = decision.updated_at.timestamp_millis();
                        g.executing.entry(decision.token.clone()).or_insert(ms);
                    }
                    DecisionState::Completed | DecisionState::Error => {
                        g.executing.remove(&decision.token);
                    }
                    _ => {}
                }
                g.stats.apply(stats, self.retention.stats);
                self.audit(&mut g, audit);
                if self.chat_outbox {
                    // Lock order: data, then notifier records (never the
                    // other way round).
                    self.notify_state()
                        .push(&decision.token, decision.updated_at.timestamp_millis());
                }
                Ok(Cas::Written)
            }
            other => Ok(Cas::Conflict(other.cloned())),
        }
    }

    async fn append_audit(&self, draft: &audit::Draft) -> Result<(), StoreError> {
        let mut g = self.lock();
        self.audit(&mut g, Some(draft));
        Ok(())
    }

    async fn audit_events(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError> {
        let g = self.lock();
        let events = &g.audit.events;
        let start = match after {
            Some(a) => events.partition_point(|(p, _)| *p <= a),
            None => 0,
        };
        Ok(events.range(start..).take(limit).cloned().collect())
    }

    async fn audit_chain_events(
        &self,
        chain: &str,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError> {
        Ok(self.lock().audit.chain_events(chain, after, limit))
    }

    async fn newest_audit_position(&self) -> Result<Position, StoreError> {
        Ok(self.lock().audit.last)
    }

    async fn wait_audit_events(
        &self,
        tail: &mut AuditTail,
        after: Position,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError> {
        // Subscribed (and the counter marked seen) before reading: an
        // append after the read changes the counter, so it is not missed.
        let rx = tail
            .memory
            .get_or_insert_with(|| self.audit_appended.subscribe());
        rx.borrow_and_update();
        let events = self.audit_events(Some(after), limit).await?;
        if !events.is_empty() {
            return Ok(events);
        }
        // A closed sender cannot happen while `self` lives; either way the
        // read below returns what is there.
        let _ = tokio::time::timeout(wait, rx.changed()).await;
        self.audit_events(Some(after), limit).await
    }

    async fn audit_head(&self, chain: &str) -> Result<audit::Head, StoreError> {
        Ok(self
            .lock()
            .audit
            .heads
            .get(chain)
            .cloned()
            .unwrap_or_default())
    }

    async fn list_decisions(
        &self,
        id: &IncidentId,
        limit: usize,
    ) -> Result<Vec<Decision>, StoreError> {
        let g = self.lock();
        Ok(g.history
            .get(id)
            .map(|h| {
                h.iter()
                    .take(limit)
                    .filter_map(|t| g.decisions.get(t).cloned())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn decision_versions(
        &self,
        token: &Token,
        after: u64,
    ) -> Result<Vec<Decision>, StoreError> {
        let g = self.lock();
        Ok(g.versions
            .get(token)
            .map(|v| v.iter().filter(|d| d.version > after).cloned().collect())
            .unwrap_or_default())
    }

    async fn follow_changes(
        &self,
        sink: ChangeSink,
        shutdown: CancellationToken,
    ) -> Result<BoxFuture<'static, ()>, StoreError> {
        let id = self
            .next_sink
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Registered under the data lock: no change slips between.
        let _g = self.lock();
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, sink));
        drop(_g);
        let sinks = Arc::clone(&self.sinks);
        Ok(Box::pin(async move {
            shutdown.cancelled().await;
            sinks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(i, _)| *i != id);
        }))
    }

    async fn overdue_analyses(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let before = before.timestamp_millis();
        Ok(self
            .lock()
            .analyzing
            .iter()
            .take_while(|(ms, _)| *ms <= before)
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn forget_analysis(&self, token: &Token) -> Result<(), StoreError> {
        self.lock().unindex_analysis(token);
        Ok(())
    }

    async fn overdue_executions(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let before = before.timestamp_millis();
        let g = self.lock();
        let mut due: Vec<(i64, Token)> = g
            .executing
            .iter()
            .filter(|(_, ms)| **ms <= before)
            .map(|(t, ms)| (*ms, t.clone()))
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, t)| t).collect())
    }

    async fn forget_execution(&self, token: &Token) -> Result<(), StoreError> {
        self.lock().executing.remove(token);
        Ok(())
    }

    async fn take_lease(
        &self,
        token: &Token,
        owner: &str,
        ttl: std::time::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let now_ms = now.timestamp_millis();
        let ttl_ms = ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
        let until = now_ms.saturating_add(ttl_ms);
        let mut g = self.lock();
        if let Some((holder, expiry)) = g.leases.get(token)
            && holder != owner
            && *expiry > now_ms
        {
            return Ok(false);
        }
        g.leases.insert(token.clone(), (owner.to_owned(), until));
        if let Some(score) = g.executing.get_mut(token) {
            *score = until;
        }
        Ok(true)
    }

    async fn release_lease(&self, token: &Token, owner: &str) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.leases
            .get(token)
            .is_some_and(|(holder, _)| holder == owner)
        {
            g.leases.remove(token);
        }
        Ok(())
    }

    async fn cached_proposal(&self, signature: &Signature) -> Result<Option<Proposal>, StoreError> {
        let mut cache = self.cache();
        let fresh = match cache.get(signature.digest()) {
            None => return Ok(None),
            Some(e) => e.until > Instant::now(),
        };
        if !fresh {
            cache.pop(signature.digest());
            return Ok(None);
        }
        Ok(cache
            .get(signature.digest())
            .filter(|e| e.signature == signature.as_str())
            .map(|e| e.proposal.clone()))
    }

    async fn cache_proposal(
        &self,
        signature: &Signature,
        proposal: &Proposal,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.cache().put(
            signature.digest().to_owned(),
            CacheEntry {
                signature: signature.as_str().to_owned(),
                proposal: proposal.clone(),
                // A TTL too large to add is "for ever" (a year).
                until: Instant::now().checked_add(ttl).unwrap_or_else(|| {
                    Instant::now() + std::time::Duration::from_secs(365 * 86_400)
                }),
            },
        );
        Ok(())
    }

    async fn group_incident(&self, group: &GroupKey) -> Result<Option<IncidentId>, StoreError> {
        Ok(self.lock().groups.get(group).cloned())
    }

    async fn set_group_incident(
        &self,
        group: &GroupKey,
        expected: Option<&IncidentId>,
        incident: &IncidentId,
    ) -> Result<Cas<IncidentId>, StoreError> {
        let mut g = self.lock();
        let current = g.groups.get(group);
        if current == Some(incident) || current == expected {
            g.groups.insert(group.clone(), incident.clone());
            return Ok(Cas::Written);
        }
        Ok(Cas::Conflict(current.cloned()))
    }

    async fn read_stats(&self, query: &StatsQuery) -> Result<StatsRead, StoreError> {
        let g = self.lock();
        let now = chrono::Utc::now().timestamp();
        let mut out = StatsRead::default();
        for series in &query.series {
            for b in &query.buckets {
                let Some(data) = g.stats.get(*b, series, now) else {
                    continue;
                };
                for (f, n) in &data.counters {
                    out.add_counter(series, f, *n);
                }
                if !data.bins.is_empty() {
                    out.add_bins(series, &data.bins);
                }
            }
        }
        if query.gauge {
            for (f, n) in &g.stats.gauge {
                out.gauge.add(f, *n);
            }
        }
        Ok(out)
    }

    async fn top_services(
        &self,
        buckets: &[Bucket],
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let g = self.lock();
        let now = chrono::Utc::now().timestamp();
        let mut sums: HashMap<&str, i64> = HashMap::new();
        for b in buckets {
            if let Some(data) = g.stats.get(*b, &Series::Services, now) {
                for (name, n) in &data.counters {
                    *sums.entry(name).or_insert(0) += n;
                }
            }
        }
        let all = sums
            .into_iter()
            .map(|(s, n)| (s.to_owned(), u64::try_from(n).unwrap_or(0)))
            .collect();
        Ok(crate::stats::report::rank(all, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A proposal built by hand: the store stores any proposal, and its
    /// tests need nothing from the engines.
    fn proposal() -> Proposal {
        Proposal {
            description: "restart".into(),
            reasoning: "a restart clears the fault".into(),
            matched_rule: "restart".into(),
            ..crate::domain::proposal::fixture::proposal()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cached_proposals_expire_after_their_ttl() {
        let now = chrono::Utc::now();
        let incident = crate::domain::incident::fixture::incident().at(now).build();
        let sig = Signature::of(&incident, "dual");
        let p = proposal();
        let s = MemoryStore::new(Retention::default());
        s.cache_proposal(&sig, &p, Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(s.cached_proposal(&sig).await.unwrap(), Some(p));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.cached_proposal(&sig).await.unwrap(), None);
        s.cache_proposal(&sig, &proposal(), Duration::MAX)
            .await
            .unwrap();
        assert!(s.cached_proposal(&sig).await.unwrap().is_some());
    }
}

//! The in-memory store for `verdict serve --dev` and fast tests: the same
//! semantics as Redis (single-flight creation, compare-and-set, capped
//! history, newest-first listing), nothing persisted.

use super::{Cas, ChangeSink, Created, ListCursor, Retention, Store, StoreError};
use crate::domain::{Decision, GroupKey, Incident, IncidentId, RequestId, Token};
use async_trait::async_trait;
use futures::future::BoxFuture;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

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
    /// Alert group → the incident it last opened.
    groups: HashMap<GroupKey, IncidentId>,
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
}

impl MemoryStore {
    pub fn new(retention: Retention) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            retention,
            sinks: Arc::new(Mutex::new(Vec::new())),
            next_sink: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records a new version and hands it to the followers (called with the
    /// data lock held).
    fn changed(&self, g: &mut Inner, d: &Decision) {
        g.versions
            .entry(d.token.clone())
            .or_default()
            .push(d.clone());
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        for (_, sink) in sinks.iter() {
            sink(d.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation below is completed before the guard drops, so a
        // poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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
        let next =
            super::redis::next_cursor(cursor, page.iter().map(|(ms, _)| *ms), page.len() < limit);
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
    ) -> Result<Cas<Incident>, StoreError> {
        let mut g = self.lock();
        match g.incidents.get(&incident.id) {
            Some(cur) if cur.version == expected_version => {
                g.incidents.insert(incident.id.clone(), incident.clone());
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
        g.current.insert(id.clone(), decision.token.clone());
        let cap = self.retention.history_len;
        let h = g.history.entry(id.clone()).or_default();
        h.push_front(decision.token.clone());
        // Decisions that fall out of the capped history are forgotten, so
        // memory stays bounded per incident.
        let dropped: Vec<Token> = h.drain(cap.min(h.len())..).collect();
        for t in dropped {
            g.decisions.remove(&t);
            g.versions.remove(&t);
        }
        Ok(Cas::Written)
    }

    async fn update_decision(
        &self,
        expected_version: u64,
        decision: &Decision,
    ) -> Result<Cas<Decision>, StoreError> {
        let mut g = self.lock();
        match g.decisions.get(&decision.token) {
            Some(cur) if cur.version == expected_version => {
                g.decisions.insert(decision.token.clone(), decision.clone());
                self.changed(&mut g, decision);
                Ok(Cas::Written)
            }
            other => Ok(Cas::Conflict(other.cloned())),
        }
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
}

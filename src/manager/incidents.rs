//! Incident operations: create (idempotent by request id), read, list with
//! filters and cursor pagination, and status changes with compare-and-set.

use super::ManagerError;
use crate::audit;
use crate::clock::Clock;
use crate::domain::{
    Incident, IncidentId, IncidentStatus, K8sName, RequestId, Severity, Signal, Violations,
};
use crate::store::{Cas, Created, ListCursor, Store};
use std::sync::Arc;

/// How many index entries one `ListIncidents` call examines at most, so a
/// sparse filter costs a bounded amount of work per page.
const MAX_SCANNED_PER_PAGE: usize = 2_000;
const CAS_ATTEMPTS: usize = 8;

/// A validated incident to create.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub id: Option<IncidentId>,
    pub title: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub signals: Vec<Signal>,
    pub affected_services: Vec<K8sName>,
    pub namespace: Option<K8sName>,
}

/// A validated listing filter.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    pub severity: Option<Severity>,
    pub service: Option<String>,
}

impl IncidentFilter {
    fn matches(&self, i: &Incident) -> bool {
        self.status.is_none_or(|s| i.status == s)
            && self.severity.is_none_or(|s| i.severity == s)
            && self
                .service
                .as_deref()
                .is_none_or(|svc| i.affected_services.iter().any(|a| a.as_str() == svc))
    }
}

pub struct IncidentManager {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The replica's audit trail (shared refusal counts).
    audit: super::AuditLog,
}

impl IncidentManager {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        IncidentManager {
            audit: super::AuditLog::new(store.clone(), clock.clone()),
            store,
            clock,
        }
    }

    /// Records refusals through `audit` (the replica's one trail, whose
    /// refusal counts every caller shares).
    pub fn with_audit_log(mut self, audit: super::AuditLog) -> Self {
        self.audit = audit;
        self
    }

    /// The audit trail of this manager's store (to record refusals).
    pub fn audit_log(&self) -> super::AuditLog {
        self.audit.clone()
    }

    pub async fn create(
        &self,
        new: NewIncident,
        request_id: Option<RequestId>,
    ) -> Result<Incident, ManagerError> {
        let now = self.clock.now();
        let explicit_id = new.id.is_some();
        let mut incident = Incident {
            signals: new.signals,
            affected_services: new.affected_services,
            namespace: new.namespace,
            ..Incident::opened(
                new.id.unwrap_or_else(IncidentId::generate),
                new.title,
                new.severity,
                now,
            )
        };
        if new.status != IncidentStatus::Open {
            incident.set_status(new.status, now);
            incident.version = 1;
        }
        let stats = crate::stats::record::incident(None, &incident);
        let event = audit::Draft::incident_change(audit::Action::IncidentCreated, 0, &incident);
        match self
            .store
            .create_incident(&incident, request_id.as_ref(), &stats, Some(&event))
            .await?
        {
            Created::New(i) | Created::Replayed(i) => Ok(i),
            Created::IdTaken if explicit_id => Err(ManagerError::AlreadyExists(format!(
                "incident {}",
                incident.id
            ))),
            // This call claimed the request id for its generated id, and a
            // concurrent retry with the same request id (on any replica),
            // finding the claim but no incident yet, stored the incident
            // under that id first: it is this request's incident.
            Created::IdTaken if request_id.is_some() => self.get(&incident.id).await,
            // A generated id collided (48 random bits): astronomically rare.
            Created::IdTaken => Err(ManagerError::Contended("incident id".into())),
        }
    }

    pub async fn get(&self, id: &IncidentId) -> Result<Incident, ManagerError> {
        self.store
            .get_incident(id)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("incident {id}")))
    }

    /// One page of incidents, newest first. The page token is an opaque
    /// cursor; a filtered page may be short while more pages remain.
    pub async fn list(
        &self,
        filter: &IncidentFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<(Vec<Incident>, String), ManagerError> {
        let mut cursor = parse_page_token(page_token)?;
        let mut out = Vec::with_capacity(page_size);
        let mut scanned = 0;
        while out.len() < page_size && scanned < MAX_SCANNED_PER_PAGE {
            let batch = (page_size - out.len()).max(50);
            let (items, next) = self.store.list_incidents(cursor, batch).await?;
            scanned += items.len().max(1);
            let mut at = cursor;
            let mut cut = None;
            for i in items {
                let ms = i.created_at.timestamp_millis();
                at = Some(match at {
                    Some(c) if c.created_ms == ms => ListCursor {
                        created_ms: ms,
                        skip_same: c.skip_same + 1,
                    },
                    _ => ListCursor {
                        created_ms: ms,
                        skip_same: 1,
                    },
                });
                if filter.matches(&i) {
                    out.push(i);
                    if out.len() == page_size {
                        cut = at;
                        break;
                    }
                }
            }
            cursor = match cut {
                Some(c) => Some(c),
                None => next,
            };
            if cursor.is_none() || cut.is_some() {
                break;
            }
        }
        let token = cursor
            .map(|c| format!("{}.{}", c.created_ms, c.skip_same))
            .unwrap_or_default();
        Ok((out, token))
    }

    /// Changes the status; RESOLVED sets `resolved_at`. Setting the status
    /// the incident already has changes nothing. With a request id, the id
    /// is recorded in the incident by the same write, and a retry with it
    /// returns the incident as it is, even if its status moved since.
    pub async fn update_status(
        &self,
        id: &IncidentId,
        status: IncidentStatus,
        actor: &str,
        note: &str,
        request_id: Option<&RequestId>,
    ) -> Result<Incident, ManagerError> {
        for _ in 0..CAS_ATTEMPTS {
            let cur = self.get(id).await?;
            if cur.status == status || request_id.is_some_and(|r| cur.applied_requests.contains(r))
            {
                return Ok(cur);
            }
            let mut next = cur.clone();
            next.set_status(status, self.clock.now());
            next.status_actor = actor.to_owned();
            next.status_note = note.to_owned();
            if let Some(rid) = request_id {
                next.applied_requests.record(rid.clone());
            }
            let stats = crate::stats::record::incident(Some(&cur), &next);
            let event =
                audit::Draft::incident_change(audit::Action::StatusChanged, cur.version, &next)
                    .actor(actor);
            match self
                .store
                .update_incident(cur.version, &next, &stats, Some(&event))
                .await?
            {
                Cas::Written => {
                    tracing::info!(incident = %id, status = status.as_str(), actor, "incident status changed");
                    return Ok(next);
                }
                Cas::Conflict(_) => continue,
            }
        }
        Err(ManagerError::Contended(format!("incident {id}")))
    }
}

fn parse_page_token(token: &str) -> Result<Option<ListCursor>, ManagerError> {
    if token.is_empty() {
        return Ok(None);
    }
    let parsed = token.split_once('.').and_then(|(ms, skip)| {
        Some(ListCursor {
            created_ms: ms.parse().ok()?,
            skip_same: skip.parse().ok()?,
        })
    });
    match parsed {
        Some(c) => Ok(Some(c)),
        None => {
            let mut v = Violations::new();
            v.add("page_token", "is not a token returned by ListIncidents");
            Err(v.into())
        }
    }
}

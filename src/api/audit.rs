//! `verdict.v1.AuditService`: the audit trail, read-only.

use crate::audit::{Action, Event, Position};
use crate::domain::Violations;
use crate::manager::{AuditFilter, AuditLog, ManagerError};
use crate::proto as pb;
use crate::proto::audit_service_server::AuditService;
use futures::StreamExt;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Events per page when the caller does not say.
const DEFAULT_PAGE: usize = 100;

/// Audit watches open at once on this replica: each holds a Redis
/// connection of its own while it waits, so they are capped well below
/// the decision watchers (which share one feed).
pub const MAX_AUDIT_WATCHERS: usize = 64;

pub struct AuditApi {
    log: AuditLog,
    /// Ends watch streams (with UNAVAILABLE and the resume point) at
    /// shutdown.
    shutdown: CancellationToken,
    /// One permit per open watch ([`MAX_AUDIT_WATCHERS`]).
    watchers: Arc<Semaphore>,
}

impl AuditApi {
    pub fn new(log: AuditLog, shutdown: CancellationToken) -> Self {
        AuditApi {
            log,
            shutdown,
            watchers: Arc::new(Semaphore::new(MAX_AUDIT_WATCHERS)),
        }
    }
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A position the client sent back (`page_token`, `after`), or the
/// violation at `field`.
fn position(field: &str, s: &str) -> Result<Option<Position>, ManagerError> {
    match s {
        "" => Ok(None),
        t => Position::parse(t).map(Some).ok_or_else(|| {
            let mut v = Violations::new();
            v.add(field, "is not a position this service returned");
            ManagerError::from(v)
        }),
    }
}

/// A listing's filter from the request, each problem reported by field.
fn filter(f: Option<&pb::AuditFilter>) -> Result<AuditFilter, Violations> {
    let Some(f) = f else {
        return Ok(AuditFilter::default());
    };
    let mut v = Violations::new();
    let ms = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map(|t| (t.seconds.max(0) as u64) * 1000 + (t.nanos.max(0) as u64) / 1_000_000)
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let action = match f.action.as_str() {
        "" => None,
        a => match Action::parse(a) {
            Some(a) => Some(a),
            None => {
                v.add("filter.action", "unknown action");
                None
            }
        },
    };
    let out = AuditFilter {
        from_ms: ms(&f.from),
        to_ms: ms(&f.to),
        subject: nonempty(&f.subject),
        incident: nonempty(&f.incident_id),
        token: nonempty(&f.token),
        action,
        outcome: nonempty(&f.outcome),
    };
    v.into_result().map(|()| out)
}

/// An event as the API shows it.
pub fn event_to(pos: Position, e: &Event) -> pb::AuditEvent {
    pb::AuditEvent {
        position: pos.to_string(),
        chain: e.chain.clone(),
        seq: e.seq,
        time: Some(prost_types::Timestamp {
            seconds: e.time_ms.div_euclid(1000),
            nanos: (e.time_ms.rem_euclid(1000) * 1_000_000) as i32,
        }),
        action: e.action.as_str().to_owned(),
        subject: e.subject.clone(),
        auth_method: e.auth_method.clone(),
        roles: e.roles.clone(),
        actor: e.actor.clone(),
        peer: e.peer.clone(),
        rpc: e.rpc.clone(),
        request_id: e.request_id.clone(),
        incident_id: e.incident.clone().unwrap_or_default(),
        token: e.token.clone().unwrap_or_default(),
        version_before: e.version_before.unwrap_or(0),
        version_after: e.version_after.unwrap_or(0),
        outcome: e.outcome.clone(),
        detail: e.detail.clone(),
        detail_cut: e.detail_cut,
        alg: e.alg.clone(),
        key_id: e.key_id.clone(),
        prev: e.prev.clone(),
        hash: e.hash.clone(),
        json: serde_json::to_string(e).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let r = req.get_ref();
        let f = filter(r.filter.as_ref()).map_err(ManagerError::from)?;
        let after = position("page_token", &r.page_token)?;
        let size = match r.page_size {
            0 => DEFAULT_PAGE,
            n => (n as usize).min(crate::manager::audit::MAX_PAGE),
        };
        let page = self.log.list(&f, after, size).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.events.iter().map(|(p, e)| event_to(*p, e)).collect(),
            next_page_token: page.next.map(|p| p.to_string()).unwrap_or_default(),
        }))
    }

    type WatchAuditEventsStream = Stream<pb::WatchAuditEventsResponse>;

    async fn watch_audit_events(
        &self,
        req: Request<pb::WatchAuditEventsRequest>,
    ) -> Result<Response<Self::WatchAuditEventsStream>, Status> {
        let r = req.get_ref();
        let f = filter(r.filter.as_ref()).map_err(ManagerError::from)?;
        if f.to_ms.is_some() {
            let mut v = Violations::new();
            v.add("filter.to", "a watch has no end; leave it unset");
            return Err(ManagerError::from(v).into());
        }
        let after = position("after", &r.after)?;
        let permit = self.watchers.clone().try_acquire_owned().map_err(|_| {
            ManagerError::ResourceExhausted(format!(
                "too many audit watches on this replica (limit {MAX_AUDIT_WATCHERS}); retry later or on another replica"
            ))
        })?;
        let stream = self.log.watch(f, after, self.shutdown.clone()).await?;
        Ok(Response::new(Box::pin(stream.map(move |item| {
            // Held for as long as the stream lives.
            let _permit = &permit;
            item.map(|(p, e)| pb::WatchAuditEventsResponse {
                event: Some(event_to(p, &e)),
            })
            .map_err(Status::from)
        }))))
    }
}

//! `verdict.v1.IncidentService`.

use super::audited::Audited;
use super::convert;
use crate::domain::Violations;
use crate::domain::incident::limits;
use crate::ingest::{Ingestor, WebhookToken};
use crate::manager::IncidentManager;
use crate::proto as pb;
use crate::proto::incident_service_server::IncidentService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct IncidentApi {
    incidents: Arc<IncidentManager>,
    ingestor: Arc<Ingestor>,
    /// The webhook's token (`ingest_webhook_token_env`), when configured:
    /// `IngestSignals` opens incidents exactly like the webhook does, so it
    /// demands the same `authorization: Bearer` key — otherwise the gRPC
    /// door would bypass the webhook's lock. Checked here, in the handler,
    /// independently of the edge's general authentication.
    ingest_token: Option<WebhookToken>,
}

impl IncidentApi {
    pub fn new(
        incidents: Arc<IncidentManager>,
        ingestor: Arc<Ingestor>,
        ingest_token: Option<WebhookToken>,
    ) -> Self {
        IncidentApi {
            incidents,
            ingestor,
            ingest_token,
        }
    }

    /// Refuses an `IngestSignals` call without the configured bearer token
    /// (UNAUTHENTICATED); admits every call when none is configured.
    fn check_ingest_token<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.ingest_token else {
            return Ok(());
        };
        // With authentication on, the edge has already admitted an
        // operator principal: its bearer token was a principal's, not the
        // webhook's.
        if crate::domain::Principal::of(req.extensions()).method
            != crate::domain::AuthMethod::Anonymous
        {
            return Ok(());
        }
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if token.admits_value(presented) {
            return Ok(());
        }
        tracing::warn!("IngestSignals refused: missing or wrong bearer token");
        Err(Status::unauthenticated(
            "a valid bearer token is required (authorization: Bearer ...)",
        ))
    }
}

/// The mutating calls' bodies, run audited by the service methods.
impl IncidentApi {
    async fn create_incident_inner(
        &self,
        req: Request<pb::CreateIncidentRequest>,
    ) -> Result<Response<pb::CreateIncidentResponse>, Status> {
        let (new, request_id) = convert::create_incident(req.get_ref(), self.ingestor.now())
            .map_err(crate::manager::ManagerError::from)?;
        let incident = self.incidents.create(new, request_id).await?;
        Ok(Response::new(pb::CreateIncidentResponse {
            incident: Some(convert::incident_to(&incident)),
        }))
    }

    async fn ingest_signals_inner(
        &self,
        req: Request<pb::IngestSignalsRequest>,
    ) -> Result<Response<pb::IngestSignalsResponse>, Status> {
        self.check_ingest_token(&req)?;
        let signals = convert::ingest_signals(req.get_ref(), self.ingestor.now())
            .map_err(crate::manager::ManagerError::from)?;
        let report = self.ingestor.ingest(signals).await?;
        Ok(Response::new(pb::IngestSignalsResponse {
            incidents: report
                .incidents
                .iter()
                .map(|t| convert::incident_to(&t.incident))
                .collect(),
        }))
    }

    async fn update_incident_status_inner(
        &self,
        req: Request<pb::UpdateIncidentStatusRequest>,
    ) -> Result<Response<pb::UpdateIncidentStatusResponse>, Status> {
        let r = req.get_ref();
        let mut v = Violations::new();
        let id = convert::incident_id(&mut v, "id", &r.id);
        let status = convert::status_from(r.status);
        if status.is_none() {
            v.add(
                "status",
                "is required: OPEN, INVESTIGATING, RESOLVED or CLOSED",
            );
        }
        convert::optional_actor(&mut v, &r.actor);
        let note = convert::prose(&mut v, "note", &r.note, limits::NOTE);
        let request_id = convert::request_id(&mut v, &r.request_id);
        v.clone()
            .into_result()
            .map_err(crate::manager::ManagerError::from)?;
        let (Some(id), Some(status)) = (id, status) else {
            return Err(crate::manager::ManagerError::from(v).into());
        };
        let incident = self
            .incidents
            .update_status(&id, status, &r.actor, &note, request_id.as_ref())
            .await?;
        Ok(Response::new(pb::UpdateIncidentStatusResponse {
            incident: Some(convert::incident_to(&incident)),
        }))
    }
}

#[tonic::async_trait]
impl IncidentService for IncidentApi {
    async fn create_incident(
        &self,
        req: Request<pb::CreateIncidentRequest>,
    ) -> Result<Response<pb::CreateIncidentResponse>, Status> {
        let audited = Audited::new(self.incidents.audit_log(), &req, "CreateIncident");
        audited.run(self.create_incident_inner(req)).await
    }

    async fn ingest_signals(
        &self,
        req: Request<pb::IngestSignalsRequest>,
    ) -> Result<Response<pb::IngestSignalsResponse>, Status> {
        let audited = Audited::new(self.incidents.audit_log(), &req, "IngestSignals");
        audited.run(self.ingest_signals_inner(req)).await
    }

    async fn get_incident(
        &self,
        req: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::GetIncidentResponse>, Status> {
        let mut v = Violations::new();
        let id = convert::incident_id(&mut v, "id", &req.get_ref().id);
        let id = id.ok_or(v).map_err(crate::manager::ManagerError::from)?;
        let incident = self.incidents.get(&id).await?;
        Ok(Response::new(pb::GetIncidentResponse {
            incident: Some(convert::incident_to(&incident)),
        }))
    }

    async fn list_incidents(
        &self,
        req: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let (filter, size, token) =
            convert::list_incidents(req.get_ref()).map_err(crate::manager::ManagerError::from)?;
        let (items, next) = self.incidents.list(&filter, size, &token).await?;
        Ok(Response::new(pb::ListIncidentsResponse {
            incidents: items.iter().map(convert::incident_to).collect(),
            next_page_token: next,
        }))
    }

    async fn update_incident_status(
        &self,
        req: Request<pb::UpdateIncidentStatusRequest>,
    ) -> Result<Response<pb::UpdateIncidentStatusResponse>, Status> {
        let audited = Audited::new(self.incidents.audit_log(), &req, "UpdateIncidentStatus")
            .actor(&req.get_ref().actor);
        audited.run(self.update_incident_status_inner(req)).await
    }
}

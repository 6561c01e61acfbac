//! `verdict.v1.DecisionService`.

use super::audited::Audited;
use super::{convert, deadline};
use crate::clock::Clock;
use crate::domain::incident::limits;
use crate::domain::{AuthMethod, Principal, RequestId, Violations};
use crate::manager::decisions::MAX_CURRENT;
use crate::manager::{DecisionManager, DecisionRequest, ManagerError};
use crate::proto as pb;
use crate::proto::decision_service_server::DecisionService;
use crate::watch::{Change, Sent, SharedChange, StreamEnd, WatchContext};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct DecisionApi {
    decisions: Arc<DecisionManager>,
    clock: Arc<dyn Clock>,
    watch: WatchContext,
}

impl DecisionApi {
    pub fn new(watch: WatchContext) -> Self {
        DecisionApi {
            decisions: watch.decisions.clone(),
            clock: watch.clock.clone(),
            watch,
        }
    }

    pub(super) fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The `WatchDecision` stream before encoding (see `wire.rs`).
    pub(super) async fn watch_decision_stream(
        &self,
        r: &pb::WatchDecisionRequest,
    ) -> Result<BoxStream<'static, Result<Sent, StreamEnd>>, Status> {
        let mut v = Violations::new();
        let token = convert::token(&mut v, "token", &r.token).ok_or_else(|| invalid(v))?;
        Ok(crate::watch::watch_decision(self.watch.clone(), token, r.after_version).await?)
    }

    /// The `WatchDecisions` stream before encoding (see `wire.rs`).
    pub(super) fn watch_decisions_stream(
        &self,
        r: &pb::WatchDecisionsRequest,
    ) -> Result<BoxStream<'static, Result<SharedChange, StreamEnd>>, Status> {
        let filter = convert::watch_filter(r).map_err(invalid)?;
        Ok(crate::watch::watch_all(self.watch.clone(), filter)?)
    }

    fn render(&self, d: &crate::domain::Decision) -> Option<pb::Decision> {
        Some(convert::decision_to(d, self.clock.now()))
    }
}

fn invalid(v: Violations) -> Status {
    ManagerError::Invalid(v).into()
}

/// Who approves or rejects: the authenticated principal, whatever `actor`
/// says (it is ignored, and a differing one logged). Only with
/// authentication off is the request's `actor` recorded (required then),
/// as the subject of the anonymous principal.
fn decider(ext: &http::Extensions, v: &mut Violations, actor: &str) -> Principal {
    let principal = Principal::of(ext);
    if principal.method != AuthMethod::Anonymous {
        convert::optional_actor(v, actor);
        if !actor.is_empty() && actor != principal.subject {
            tracing::warn!(actor, subject = %principal.subject, "request's actor ignored: the authenticated principal is recorded");
        }
        return principal;
    }
    convert::actor(v, actor);
    Principal {
        subject: actor.to_owned(),
        ..principal
    }
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The mutating calls' bodies, run audited by the service methods.
impl DecisionApi {
    async fn get_or_create_decision_inner(
        &self,
        req: Request<pb::GetOrCreateDecisionRequest>,
    ) -> Result<Response<pb::GetOrCreateDecisionResponse>, Status> {
        let call_deadline = deadline::from_metadata(req.metadata());
        let r = req.get_ref();
        let mut v = Violations::new();
        let id = convert::incident_id(&mut v, "incident_id", &r.incident_id);
        let mode = convert::mode_from(&mut v, r.mode);
        let timeout = match &r.timeout {
            None => None,
            Some(t) => match convert::from_duration(t) {
                Some(d) if d.is_zero() => None,
                Some(d) if d <= crate::manager::decisions::MAX_TIMEOUT => Some(d),
                Some(_) => {
                    v.add("timeout", "must be at most 10 minutes");
                    None
                }
                None => {
                    v.add("timeout", "must be a non-negative duration");
                    None
                }
            },
        };
        let id = match (id, v.is_empty()) {
            (Some(id), true) => id,
            _ => return Err(invalid(v)),
        };
        let issued = self
            .decisions
            .get_or_create(DecisionRequest {
                incident_id: id,
                mode,
                wait: r.wait,
                timeout,
                call_deadline,
            })
            .await?;
        Ok(Response::new(pb::GetOrCreateDecisionResponse {
            decision: self.render(&issued.decision),
            created: issued.created,
        }))
    }

    async fn approve_decision_inner(
        &self,
        req: Request<pb::ApproveDecisionRequest>,
    ) -> Result<Response<pb::ApproveDecisionResponse>, Status> {
        let r = req.get_ref();
        let mut v = Violations::new();
        let token = convert::token(&mut v, "token", &r.token);
        let who = decider(req.extensions(), &mut v, &r.actor);
        let request_id = convert::request_id(&mut v, &r.request_id);
        let token = match (token, v.is_empty()) {
            (Some(t), true) => t,
            _ => return Err(invalid(v)),
        };
        let d = self
            .decisions
            .approve(&token, &who, r.expected_version, request_id.as_ref())
            .await?;
        Ok(Response::new(pb::ApproveDecisionResponse {
            decision: self.render(&d),
        }))
    }

    async fn reject_decision_inner(
        &self,
        req: Request<pb::RejectDecisionRequest>,
    ) -> Result<Response<pb::RejectDecisionResponse>, Status> {
        let r = req.get_ref();
        let mut v = Violations::new();
        let token = convert::token(&mut v, "token", &r.token);
        let who = decider(req.extensions(), &mut v, &r.actor);
        let reason = convert::prose(&mut v, "reason", &r.reason, limits::NOTE);
        let request_id = convert::request_id(&mut v, &r.request_id);
        let token = match (token, v.is_empty()) {
            (Some(t), true) => t,
            _ => return Err(invalid(v)),
        };
        let d = self
            .decisions
            .reject(
                &token,
                &who,
                &reason,
                r.expected_version,
                request_id.as_ref(),
            )
            .await?;
        Ok(Response::new(pb::RejectDecisionResponse {
            decision: self.render(&d),
        }))
    }

    async fn complete_decision_inner(
        &self,
        req: Request<pb::CompleteDecisionRequest>,
    ) -> Result<Response<pb::CompleteDecisionResponse>, Status> {
        let r = req.get_ref();
        let mut v = Violations::new();
        let token = convert::token(&mut v, "token", &r.token);
        let output = convert::prose(&mut v, "output", &r.output, limits::OUTPUT);
        let request_id = convert::request_id(&mut v, &r.request_id);
        let token = match (token, v.is_empty()) {
            (Some(t), true) => t,
            _ => return Err(invalid(v)),
        };
        let lease_id = if r.lease_id.is_empty() {
            None
        } else {
            // Lease ids are verdict's own (32 hex digits); anything of the
            // request-id alphabet is checked against the claim.
            v.check("lease_id", RequestId::parse(&r.lease_id))
        };
        if !v.is_empty() {
            return Err(invalid(v));
        }
        let d = self
            .decisions
            .complete_claimed(
                &token,
                r.success,
                &output,
                request_id.as_ref(),
                lease_id.as_ref().map(|l| l.as_str()),
            )
            .await?;
        Ok(Response::new(pb::CompleteDecisionResponse {
            decision: self.render(&d),
        }))
    }
    async fn claim_execution_inner(
        &self,
        req: Request<pb::ClaimExecutionRequest>,
    ) -> Result<Response<pb::ClaimExecutionResponse>, Status> {
        let r = req.get_ref();
        let mut v = Violations::new();
        let token = convert::token(&mut v, "token", &r.token);
        let runner = v.check("runner_id", RequestId::parse(&r.runner_id));
        let lease = match r.lease_duration.as_ref().and_then(convert::from_duration) {
            Some(d)
                if d >= std::time::Duration::from_secs(1)
                    && d <= crate::manager::claim::MAX_LEASE =>
            {
                Some(d)
            }
            _ => {
                v.add(
                    "lease_duration",
                    "must be set, from 1s to 10m (claim again to renew)",
                );
                None
            }
        };
        let (Some(token), Some(runner), Some(lease), true) = (token, runner, lease, v.is_empty())
        else {
            return Err(invalid(v));
        };
        let (d, claim) = self
            .decisions
            .claim_execution(&token, runner.as_str(), lease)
            .await?;
        Ok(Response::new(pb::ClaimExecutionResponse {
            lease_id: claim.lease_id,
            expires_at: Some(convert::ts(claim.until)),
            decision: self.render(&d),
        }))
    }
}

#[tonic::async_trait]
impl DecisionService for DecisionApi {
    async fn claim_execution(
        &self,
        req: Request<pb::ClaimExecutionRequest>,
    ) -> Result<Response<pb::ClaimExecutionResponse>, Status> {
        let audited = Audited::new(self.decisions.audit_log(), &req, "ClaimExecution")
            .token(&req.get_ref().token);
        audited.run(self.claim_execution_inner(req)).await
    }

    async fn get_or_create_decision(
        &self,
        req: Request<pb::GetOrCreateDecisionRequest>,
    ) -> Result<Response<pb::GetOrCreateDecisionResponse>, Status> {
        let audited = Audited::new(self.decisions.audit_log(), &req, "GetOrCreateDecision");
        audited.run(self.get_or_create_decision_inner(req)).await
    }

    async fn get_decision(
        &self,
        req: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::GetDecisionResponse>, Status> {
        let mut v = Violations::new();
        let token =
            convert::token(&mut v, "token", &req.get_ref().token).ok_or_else(|| invalid(v))?;
        let d = self.decisions.read(&token).await?;
        Ok(Response::new(pb::GetDecisionResponse {
            decision: self.render(&d),
        }))
    }

    async fn list_decisions(
        &self,
        req: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb::ListDecisionsResponse>, Status> {
        let mut v = Violations::new();
        let id = convert::incident_id(&mut v, "incident_id", &req.get_ref().incident_id)
            .ok_or_else(|| invalid(v))?;
        let list = self.decisions.list(&id).await?;
        let now = self.clock.now();
        Ok(Response::new(pb::ListDecisionsResponse {
            decisions: list.iter().map(|d| convert::decision_to(d, now)).collect(),
        }))
    }

    async fn list_current_decisions(
        &self,
        req: Request<pb::ListCurrentDecisionsRequest>,
    ) -> Result<Response<pb::ListCurrentDecisionsResponse>, Status> {
        let raw = &req.get_ref().incident_ids;
        let mut v = Violations::new();
        if raw.is_empty() || raw.len() > MAX_CURRENT {
            v.add(
                "incident_ids",
                format!("must hold 1 to {MAX_CURRENT} ids, not {}", raw.len()),
            );
            return Err(invalid(v));
        }
        let ids: Vec<_> = raw
            .iter()
            .enumerate()
            .filter_map(|(n, id)| convert::incident_id(&mut v, &format!("incident_ids[{n}]"), id))
            .collect();
        v.into_result().map_err(invalid)?;
        let list = self.decisions.current_of(&ids).await?;
        let now = self.clock.now();
        Ok(Response::new(pb::ListCurrentDecisionsResponse {
            decisions: list.iter().map(|d| convert::decision_to(d, now)).collect(),
        }))
    }

    async fn approve_decision(
        &self,
        req: Request<pb::ApproveDecisionRequest>,
    ) -> Result<Response<pb::ApproveDecisionResponse>, Status> {
        let audited = Audited::new(self.decisions.audit_log(), &req, "ApproveDecision")
            .actor(&req.get_ref().actor)
            .token(&req.get_ref().token);
        audited.run(self.approve_decision_inner(req)).await
    }

    async fn reject_decision(
        &self,
        req: Request<pb::RejectDecisionRequest>,
    ) -> Result<Response<pb::RejectDecisionResponse>, Status> {
        let audited = Audited::new(self.decisions.audit_log(), &req, "RejectDecision")
            .actor(&req.get_ref().actor)
            .token(&req.get_ref().token);
        audited.run(self.reject_decision_inner(req)).await
    }

    async fn complete_decision(
        &self,
        req: Request<pb::CompleteDecisionRequest>,
    ) -> Result<Response<pb::CompleteDecisionResponse>, Status> {
        let audited = Audited::new(self.decisions.audit_log(), &req, "CompleteDecision")
            .token(&req.get_ref().token);
        audited.run(self.complete_decision_inner(req)).await
    }

    // The server routes both watch methods to `wire.rs`, which sends each
    // change's shared encoding. These per-stream renderings are what the
    // generated server alone would serve; the wire-identity test compares
    // the two.
    type WatchDecisionStream = Stream<pb::WatchDecisionResponse>;

    async fn watch_decision(
        &self,
        req: Request<pb::WatchDecisionRequest>,
    ) -> Result<Response<Self::WatchDecisionStream>, Status> {
        let stream = self.watch_decision_stream(req.get_ref()).await?;
        let clock = self.clock.clone();
        Ok(Response::new(Box::pin(stream.map(move |item| {
            item.map(|sent| {
                let d = match &sent {
                    Sent::Shared(p) => &p.value,
                    Sent::Own(d) => d,
                };
                pb::WatchDecisionResponse {
                    decision: Some(convert::decision_to(d, clock.now())),
                }
            })
            .map_err(Status::from)
        }))))
    }

    type WatchDecisionsStream = Stream<pb::WatchDecisionsResponse>;

    async fn watch_decisions(
        &self,
        req: Request<pb::WatchDecisionsRequest>,
    ) -> Result<Response<Self::WatchDecisionsStream>, Status> {
        let stream = self.watch_decisions_stream(req.get_ref())?;
        let clock = self.clock.clone();
        Ok(Response::new(Box::pin(stream.map(move |item| {
            item.map(|p| match &p.value {
                Change::Decision(d) => pb::WatchDecisionsResponse {
                    decision: Some(convert::decision_to(d, clock.now())),
                    incident: None,
                },
                Change::Incident(i) => pb::WatchDecisionsResponse {
                    decision: None,
                    incident: Some(convert::incident_to(i)),
                },
            })
            .map_err(Status::from)
        }))))
    }
}

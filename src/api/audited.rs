//! Mutating calls run audited: the call's audit context (principal, the
//! request's actor, peer, RPC, `x-request-id`) set for the managers below,
//! and a refused call recorded where its error becomes a `Status`.
//!
//! Refusals recorded: UNAUTHENTICATED, PERMISSION_DENIED and
//! FAILED_PRECONDITION (a stale version, or a decision no longer in the
//! state the call needs). Other errors (bad input, not found, outages)
//! change nothing and are not refusals of an authorised change. Recording a
//! refusal can fail; the call still returns its own error (the refusal is
//! logged), since nothing was changed that the trail would miss.

use crate::audit::{self, Context};
use crate::domain::{Principal, Token};
use crate::manager::AuditLog;
use std::future::Future;
use tonic::{Code, Request, Status};

/// One mutating call about to run.
pub struct Audited {
    log: AuditLog,
    context: Context,
    token: Option<Token>,
}

impl Audited {
    /// The context of `req`, a call of `rpc`.
    pub fn new<T>(log: AuditLog, req: &Request<T>, rpc: &str) -> Audited {
        let request_id = req
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Audited {
            log,
            context: Context {
                principal: Principal::of(req.extensions()),
                actor: String::new(),
                peer: req.remote_addr().map(|a| a.to_string()).unwrap_or_default(),
                rpc: rpc.to_owned(),
                request_id: request_id.to_owned(),
            },
            token: None,
        }
    }

    /// The `actor` the request names.
    pub fn actor(mut self, actor: &str) -> Audited {
        self.context = self.context.with_actor(actor);
        self
    }

    /// The decision the call is about (its refusal joins that chain).
    pub fn token(mut self, token: &str) -> Audited {
        self.token = Token::parse(token).ok();
        self
    }

    /// Runs the call in its audit context; records it if refused.
    pub async fn run<R>(self, call: impl Future<Output = Result<R, Status>>) -> Result<R, Status> {
        let out = audit::scope(self.context.clone(), call).await;
        if let Err(status) = &out
            && let Some(code) = refusal(status.code())
        {
            let context = self.context;
            let recorded = audit::scope(
                context.clone(),
                self.log.refused_on(
                    &context.principal,
                    &context.rpc,
                    code,
                    status.message(),
                    self.token.as_ref(),
                ),
            )
            .await;
            if let Err(e) = recorded {
                tracing::error!(error = %e, rpc = %context.rpc, "could not record a refused call");
            }
        }
        out
    }
}

/// The canonical name of a refusal's code; None for other errors.
fn refusal(code: Code) -> Option<&'static str> {
    match code {
        Code::Unauthenticated => Some("UNAUTHENTICATED"),
        Code::PermissionDenied => Some("PERMISSION_DENIED"),
        Code::FailedPrecondition => Some("FAILED_PRECONDITION"),
        _ => None,
    }
}

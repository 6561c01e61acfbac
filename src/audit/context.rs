//! Who is making the current change: the calling context of an audit
//! event, carried with the request's task.
//!
//! The API layer knows the principal, the peer, the RPC and the request
//! id; the managers that build events are deeper down, shared by the gRPC
//! API, the webhook and background work. Rather than thread four values
//! through every manager method, the API runs each mutating call inside
//! [`scope`], and [`Context::current`] reads it where an event is drafted,
//! as a tracing span carries its fields. Work outside any scope (recovery,
//! execution, a detached analysis) is verdict's own: [`Context::system`].

use crate::domain::Principal;
use std::future::Future;

tokio::task_local! {
    static CONTEXT: Context;
}

/// The calling context recorded on an audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub principal: Principal,
    /// The `actor` the request named, if any (not authenticated).
    pub actor: String,
    /// The caller's address, if known.
    pub peer: String,
    /// The RPC (`ApproveDecision`) or route (`POST /api/v1/alertmanager`).
    pub rpc: String,
    /// The request's `x-request-id`.
    pub request_id: String,
}

impl Context {
    /// verdict itself, for work no caller is waiting on.
    pub fn system() -> Context {
        Context {
            principal: Principal::system(),
            actor: String::new(),
            peer: String::new(),
            rpc: String::new(),
            request_id: String::new(),
        }
    }

    /// The context of the running task's request, or [`Context::system`].
    pub fn current() -> Context {
        CONTEXT
            .try_with(Context::clone)
            .unwrap_or_else(|_| Context::system())
    }

    /// The same context naming `actor`.
    pub fn with_actor(mut self, actor: &str) -> Context {
        self.actor = actor.to_owned();
        self
    }
}

/// Runs `f` with `context` as the current context.
pub async fn scope<F: Future>(context: Context, f: F) -> F::Output {
    CONTEXT.scope(context, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scope_sets_the_context_and_outside_it_is_system() {
        assert_eq!(Context::current().principal, Principal::system());
        let c = Context {
            rpc: "ApproveDecision".into(),
            ..Context::system()
        };
        let seen = scope(c.clone(), async { Context::current() }).await;
        assert_eq!(seen, c);
    }
}

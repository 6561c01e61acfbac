//! The dual engine (SPEC "Engines"): the expert proposal first — instant,
//! and the guaranteed answer — and the LLM asked meanwhile. A valid LLM
//! proposal wins; anything else (timeout, error, invalid or unsafe answer,
//! open circuit) leaves the expert proposal standing, with the reason
//! recorded. Without an LLM configured the expert decides alone
//! (`NotConfigured`).

use super::before_llm;
use super::cache::ProposalCache;
use super::expert::ExpertEngine;
use super::llm::LlmProposer;
use crate::domain::{FallbackReason, Incident, Proposal};
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::time::Instant;

/// Cache scope of dual-engine answers.
pub const SCOPE: &str = "dual";

pub struct DualEngine {
    expert: Arc<ExpertEngine>,
    llm: Option<LlmProposer>,
    cache: Option<ProposalCache>,
}

impl DualEngine {
    /// The LLM proposer's safety policy, when there is an LLM.
    pub fn policy(&self) -> Option<&super::policy::Policy> {
        self.llm.as_ref().map(|l| l.policy())
    }

    pub fn new(
        expert: Arc<ExpertEngine>,
        llm: Option<LlmProposer>,
        cache: Option<ProposalCache>,
    ) -> Self {
        DualEngine { expert, llm, cache }
    }

    /// The proposal for `incident`, ready by `deadline`: at the deadline the
    /// LLM call is dropped and the expert proposal returned with `Timeout`.
    pub async fn analyze(&self, incident: &Incident, deadline: Instant) -> Proposal {
        let (mut expert, llm) = match before_llm(
            &self.expert,
            self.llm.as_ref(),
            self.cache.as_ref(),
            incident,
            SCOPE,
        )
        .await
        {
            ControlFlow::Break(answer) => return answer,
            ControlFlow::Continue(next) => next,
        };
        let reason = match tokio::time::timeout_at(deadline, llm.propose(incident, None)).await {
            Ok(Ok(p)) => {
                if let Some(cache) = &self.cache {
                    cache.put(incident, SCOPE, &p);
                }
                tracing::info!(incident = %incident.id, command = %p.command.render(), "LLM proposal accepted");
                return p;
            }
            Ok(Err(e)) => {
                tracing::warn!(incident = %incident.id, error = %e, "LLM proposal not used; expert proposal stands");
                e.fallback_reason()
            }
            Err(_) => {
                tracing::warn!(incident = %incident.id, "LLM did not answer by the deadline; expert proposal stands");
                FallbackReason::Timeout
            }
        };
        expert.fallback_reason = Some(reason);
        expert
    }
}

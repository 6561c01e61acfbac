//! The engines that turn an incident into a remediation proposal.
//!
//! The expert engine (`expert.rs`) always answers. With an LLM configured,
//! the dual engine (`dual.rs`) asks it too and the consensus engine
//! (`consensus.rs`) lets several LLM personas and the expert vote; model
//! output only becomes a proposal through the safety policy (`policy.rs`).
//! [`Engines`] picks the engine by the decision's mode; the decision
//! manager calls it through [`Analyzer`] under the decision's deadline.

pub mod answer;
pub mod cache;
pub mod consensus;
pub mod dual;
pub mod error;
pub mod expert;
pub mod llm;
pub mod policy;
pub mod policy_file;
pub mod settings;

use crate::domain::{DecisionMode, Incident, Proposal};
use crate::store::Store;
use async_trait::async_trait;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

pub use consensus::{ConsensusEngine, ConsensusSettings, Persona};
pub use dual::DualEngine;
pub use error::EngineError;
pub use expert::{ExpertEngine, RulesError};
pub use policy::Policy;
pub use settings::EngineSettings;

/// Produces a proposal for an incident. Implementations may be slow (an
/// LLM); the decision manager calls them under `deadline` and uses the
/// expert proposal if they have not answered by then, so an implementation
/// should answer by `deadline` itself when it can do better than that (the
/// consensus engine tallies the votes it has).
#[async_trait]
pub trait Analyzer: Send + Sync + 'static {
    /// `mode` is already resolved: `Dual` or `Consensus`, never `Auto`.
    async fn analyze(&self, incident: &Incident, mode: DecisionMode, deadline: Instant)
    -> Proposal;
}

#[async_trait]
impl Analyzer for ExpertEngine {
    async fn analyze(&self, incident: &Incident, _: DecisionMode, _: Instant) -> Proposal {
        self.propose(incident)
    }
}

/// The dual and consensus engines over one LLM client (one set of layers:
/// one concurrency limit, one retry budget, one circuit breaker).
pub struct Engines {
    dual: DualEngine,
    consensus: ConsensusEngine,
}

impl Engines {
    /// The safety policy the LLM's answers are vetted with (None without an
    /// LLM). Clones share it: [`Policy::reload_from`] on this one applies to
    /// the proposer and the proposal cache alike.
    pub fn policy(&self) -> Option<&policy::Policy> {
        self.dual.policy()
    }

    /// Builds the engines. Without `settings.llm` both answer with the
    /// expert proposal (`NotConfigured`).
    pub fn new(
        settings: &EngineSettings,
        expert: Arc<ExpertEngine>,
        store: Arc<dyn Store>,
        tasks: TaskTracker,
    ) -> Result<Self, EngineError> {
        let llm = match &settings.llm {
            Some(s) => {
                let policy = settings
                    .policy()
                    .map_err(|e| EngineError::Setup(e.to_string()))?;
                tracing::info!(hash = %policy.hash(), file = ?settings.policy_file, "safety policy loaded");
                Some(llm::LlmProposer::new(llm::LlmClient::new(s)?, policy))
            }
            None => None,
        };
        Ok(Self::with_llm(settings, expert, store, tasks, llm))
    }

    /// Builds the engines over a given LLM proposer (tests and benchmarks
    /// pass one with a scripted transport).
    pub fn with_llm(
        settings: &EngineSettings,
        expert: Arc<ExpertEngine>,
        store: Arc<dyn Store>,
        tasks: TaskTracker,
        llm: Option<llm::LlmProposer>,
    ) -> Self {
        let cache = llm.as_ref().and_then(|l| {
            cache::ProposalCache::new(store, settings.cache_ttl, l.policy().clone(), tasks)
        });
        Engines {
            dual: DualEngine::new(Arc::clone(&expert), llm.clone(), cache.clone()),
            consensus: ConsensusEngine::new(expert, llm, cache, settings.consensus.clone()),
        }
    }
}

#[async_trait]
impl Analyzer for Engines {
    async fn analyze(
        &self,
        incident: &Incident,
        mode: DecisionMode,
        deadline: Instant,
    ) -> Proposal {
        match mode.resolve(incident.severity) {
            DecisionMode::Consensus => self.consensus.analyze(incident, deadline).await,
            DecisionMode::Dual | DecisionMode::Auto => self.dual.analyze(incident, deadline).await,
        }
    }
}

/// The first step both LLM-backed engines share: the expert proposal, then
/// either an answer without asking any model (`Break`: no LLM configured, or
/// a cached answer for this incident's signature in `scope`) or the expert
/// proposal and the LLM to ask (`Continue`). One function so the dual and
/// consensus engines cannot drift on when the cache is consulted.
async fn before_llm<'a>(
    expert: &ExpertEngine,
    llm: Option<&'a llm::LlmProposer>,
    cache: Option<&cache::ProposalCache>,
    incident: &Incident,
    scope: &str,
) -> ControlFlow<Proposal, (Proposal, &'a llm::LlmProposer)> {
    let expert = expert.propose(incident);
    let Some(llm) = llm else {
        return ControlFlow::Break(expert);
    };
    if let Some(cache) = cache
        && let Some(hit) = cache.get(incident, scope).await
    {
        return ControlFlow::Break(hit);
    }
    ControlFlow::Continue((expert, llm))
}

//! The engines that turn an incident into a remediation proposal.
//!
//! In this version the expert engine decides alone; the LLM client, the dual
//! engine and the consensus engine plug in behind [`Analyzer`].

pub mod expert;

use crate::domain::{Incident, Proposal};
use async_trait::async_trait;

pub use expert::{ExpertEngine, RulesError};

/// Produces a proposal for an incident. Implementations may be slow (an LLM)
/// and are always called under a deadline by the decision manager, which
/// falls back to the expert engine when the deadline passes.
#[async_trait]
pub trait Analyzer: Send + Sync + 'static {
    async fn analyze(&self, incident: &Incident) -> Proposal;
}

#[async_trait]
impl Analyzer for ExpertEngine {
    async fn analyze(&self, incident: &Incident) -> Proposal {
        self.propose(incident)
    }
}

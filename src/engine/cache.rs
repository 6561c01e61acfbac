//! The proposal cache: an LLM answer (or a consensus) for an incident
//! signature, reused for the same problem within a TTL so a storm of
//! identical alerts costs one model call. Entries live in the store (Redis
//! or memory), so every replica shares them.
//!
//! A cache failure never fails an analysis: a read error is a miss, a write
//! error is logged. A hit is outside input like any model answer and is
//! checked by the safety policy again before use.

use super::policy::Policy;
use crate::domain::{Incident, Proposal, Signature};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// The cache as the engines use it.
#[derive(Clone)]
pub struct ProposalCache {
    store: Arc<dyn Store>,
    ttl: Duration,
    policy: Policy,
    /// Writes run in the background (the answer is not held back for
    /// them), on the server's tracker (`background.rs`), so they are never
    /// detached and shutdown waits for them.
    writes: TaskTracker,
}

impl ProposalCache {
    /// None when `ttl` is zero (caching off). Writes are spawned on
    /// `writes`.
    pub fn new(
        store: Arc<dyn Store>,
        ttl: Duration,
        policy: Policy,
        writes: TaskTracker,
    ) -> Option<Self> {
        (!ttl.is_zero()).then(|| ProposalCache {
            store,
            ttl,
            policy,
            writes,
        })
    }

    /// A fresh, still-safe cached proposal for `incident`, marked
    /// `from_cache`.
    pub async fn get(&self, incident: &Incident, scope: &str) -> Option<Proposal> {
        let hit = self.lookup(incident, scope).await;
        crate::metrics::cache_lookup(hit.is_some());
        hit
    }

    async fn lookup(&self, incident: &Incident, scope: &str) -> Option<Proposal> {
        let sig = Signature::of(incident, scope);
        let mut p = match self.store.cached_proposal(&sig).await {
            Ok(p) => p?,
            Err(e) => {
                tracing::warn!(error = %e, "proposal cache unavailable; asking the engines");
                return None;
            }
        };
        if let Err(e) = self.policy.recheck(incident, &mut p) {
            tracing::warn!(error = %e, "cached proposal no longer passes the policy; ignored");
            return None;
        }
        p.from_cache = true;
        Some(p)
    }

    /// Stores `proposal` for `incident` in the background.
    pub fn put(&self, incident: &Incident, scope: &str, proposal: &Proposal) {
        let sig = Signature::of(incident, scope);
        let (store, ttl) = (Arc::clone(&self.store), self.ttl);
        let mut p = proposal.clone();
        p.from_cache = false;
        p.analysis_latency = Duration::ZERO;
        self.writes.spawn(async move {
            if let Err(e) = store.cache_proposal(&sig, &p, ttl).await {
                tracing::warn!(error = %e, "cannot cache the proposal");
            }
        });
    }
}

//! Recovery of abandoned analyses. A decision is created ANALYZING by one
//! replica, which then owns its analysis; if that replica dies the decision
//! would stay ANALYZING for ever and the UI would lock (the seed's flaw).
//! Any replica finishes such a decision with the expert proposal
//! (`FallbackReason::Recovered`): on read (`DecisionManager::get` and
//! `get_or_create`) and, so that nobody has to read it first, in a periodic
//! sweep here.
//!
//! The sweep never scans: the store keeps an index of ANALYZING decisions
//! by analysis deadline (`Store::overdue_analyses`). Finishing is the usual
//! compare-and-set, so replicas sweeping at once, or a sweep racing a late
//! owner, still produce exactly one READY write.

use super::{DecisionManager, ManagerError};
use crate::clock::Clock;
use crate::domain::{Decision, DecisionState};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long after its analysis deadline a decision counts as abandoned.
/// The owner finishes its analysis *at* the deadline; this margin keeps
/// other replicas from racing a live owner (which would record the expert
/// proposal as "recovered" instead of "timeout", or beat a model answer
/// that arrived just in time).
pub const RECOVERY_GRACE: Duration = Duration::from_secs(1);
/// Overdue decisions finished per sweep at most.
const BATCH: usize = 256;

/// Whether `d` is ANALYZING and past its analysis deadline plus the grace:
/// its owner is gone and anyone may finish it.
pub fn abandoned(d: &Decision, now: DateTime<Utc>) -> bool {
    let grace = chrono::Duration::from_std(RECOVERY_GRACE).unwrap_or(chrono::Duration::zero());
    d.state == DecisionState::Analyzing && now >= d.analysis_deadline + grace
}

/// The periodic sweep.
pub struct Sweeper {
    decisions: Arc<DecisionManager>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval: Duration,
}

impl Sweeper {
    pub fn new(
        decisions: Arc<DecisionManager>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> Self {
        Sweeper {
            decisions,
            store,
            clock,
            interval,
        }
    }

    /// Finishes up to one batch of abandoned decisions; returns how many
    /// overdue entries were handled.
    pub async fn sweep_once(&self) -> Result<usize, ManagerError> {
        let grace = chrono::Duration::from_std(RECOVERY_GRACE).unwrap_or(chrono::Duration::zero());
        let before = self.clock.now() - grace;
        let tokens = self.store.overdue_analyses(before, BATCH).await?;
        for token in &tokens {
            match self.decisions.get(token).await {
                Ok(d) if d.state == DecisionState::Analyzing => {}
                // Finished now or earlier; the finishing write removed the
                // entry, and this clears one left by anything else.
                Ok(_) => self.store.forget_analysis(token).await?,
                Err(ManagerError::NotFound(_)) => self.store.forget_analysis(token).await?,
                Err(e) => tracing::warn!(%token, error = %e, "cannot finish an abandoned analysis"),
            }
        }
        if !tokens.is_empty() {
            tracing::info!(
                count = tokens.len(),
                "finished analyses abandoned by a replica"
            );
        }
        // Executions whose replica died (their lease ran out) are taken
        // over the same way (see `super::execution`).
        let executions = self.decisions.resume_executions().await?;
        Ok(tokens.len() + executions)
    }

    /// Sweeps every `interval` until `shutdown`. Each replica starts at a
    /// random offset so replicas spread their sweeps.
    pub async fn run(self, shutdown: CancellationToken) {
        let ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let offset =
            Duration::from_millis((uuid::Uuid::new_v4().as_u128() % u128::from(ms)) as u64);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + offset, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = self.sweep_once().await {
                tracing::warn!(error = %e, "recovery sweep failed; retrying next interval");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::{DecisionMode, FallbackReason};
    use crate::engine::ExpertEngine;
    use crate::manager::{DecisionSettings, ExecutorKind};
    use crate::store::{MemoryStore, Retention};

    #[tokio::test]
    async fn the_sweep_finishes_only_abandoned_analyses() {
        let start = Utc::now();
        let clock = Arc::new(ManualClock::new(start));
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(Retention::default()));
        let expert = Arc::new(ExpertEngine::builtin());
        let decisions = Arc::new(DecisionManager::new(
            store.clone(),
            expert.clone(),
            expert,
            clock.clone(),
            DecisionSettings {
                token_ttl: Duration::from_secs(3600),
                default_timeout: Duration::from_secs(30),
                executor: ExecutorKind::External,
                history_len: 10,
            },
            CancellationToken::new(),
        ));
        let sweeper = Sweeper::new(
            decisions,
            store.clone(),
            clock.clone(),
            Duration::from_secs(1),
        );
        // Two decisions left ANALYZING by a "dead" replica, due in 10 s and 60 s.
        let mut tokens = vec![];
        for secs in [10, 60] {
            let incident = crate::domain::incident::fixture::incident()
                .services(&["web"])
                .at(start)
                .build();
            store
                .create_incident(&incident, None, &crate::stats::StatDelta::default(), None)
                .await
                .unwrap();
            let d = Decision::start(
                incident.id.clone(),
                DecisionMode::Dual,
                start,
                chrono::Duration::hours(1),
                start + chrono::Duration::seconds(secs),
            );
            store
                .create_decision(None, &d, &crate::stats::StatDelta::default(), None)
                .await
                .unwrap();
            tokens.push(d.token);
        }
        assert_eq!(sweeper.sweep_once().await.unwrap(), 0, "nothing is due");
        // Past the first deadline but within the grace: still the owner's.
        clock.advance(chrono::Duration::milliseconds(10_500));
        assert_eq!(sweeper.sweep_once().await.unwrap(), 0);
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(sweeper.sweep_once().await.unwrap(), 1);
        let d = store.get_decision(&tokens[0]).await.unwrap().unwrap();
        assert_eq!(d.state, DecisionState::Ready);
        let p = d.proposal.unwrap();
        assert_eq!(p.fallback_reason, Some(FallbackReason::Recovered));
        assert_eq!(
            p.command.render(),
            "kubectl rollout restart deployment/web -n default"
        );
        let other = store.get_decision(&tokens[1]).await.unwrap().unwrap();
        assert_eq!(other.state, DecisionState::Analyzing);
        assert_eq!(sweeper.sweep_once().await.unwrap(), 0, "finished once");
    }
}

//! What the cluster looked like when a command was checked, and what the
//! first attempt to run it planned. Plain data: the executors fill it in,
//! the manager compares and records it on the decision.
//!
//! It exists for exactly-once: a command is approved as it was dry-run, so
//! a target object that changed since (another deploy, a scale) is checked
//! again before it runs; and a rollback's target revision is fixed when it
//! is checked, because `rollout undo` run twice goes back two revisions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The target object as a check saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// `metadata.resourceVersion`: moves on every write to the object.
    pub resource_version: String,
    /// `metadata.generation`: moves when its spec changes.
    pub generation: i64,
    /// For a rollback: the revision the check chose (kubectl's "previous
    /// revision"). Running the command rolls back to exactly this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<RollbackTarget>,
}

impl Observed {
    /// Whether the object changed between two observations (a write to
    /// it, or a new spec).
    pub fn changed_since(&self, earlier: &Observed) -> bool {
        self.resource_version != earlier.resource_version || self.generation != earlier.generation
    }
}

/// The ReplicaSet a rollback restores. Named by the ReplicaSet, not the
/// revision number: a rollback renumbers the restored revision (it becomes
/// the newest), while the ReplicaSet's name stays.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RollbackTarget {
    /// The ReplicaSet's name (`<deployment>-<pod-template-hash>`).
    pub replica_set: String,
    /// Its `deployment.kubernetes.io/revision` when it was chosen.
    pub revision: i64,
}

/// Recorded on the decision by the first attempt to run its command,
/// before it runs: an attempt that takes over finds it and knows the
/// command may already have landed, so it converges on this plan instead
/// of checking afresh (which, after a rollback, would pick another target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionPlan {
    /// The object as checked for this run: the dry run's observation, or
    /// the re-check's when the object had changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
    /// When the object had changed since the dry run (or none had been
    /// recorded): what the re-check before running said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<String>,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub at: DateTime<Utc>,
}

/// An external runner's claim on an EXECUTING decision
/// (`DecisionService/ClaimExecution`): while it lasts, no other runner can
/// claim the decision, and completing it needs `lease_id`. Kept on the
/// decision itself, so a claim is one compare-and-set with its audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionClaim {
    /// Who claimed it, as the runner named itself.
    pub runner: String,
    /// The lease's id: what `CompleteDecision` must carry.
    pub lease_id: String,
    /// The lease runs out at this time; afterwards another runner may
    /// claim the decision (and this lease no longer completes it).
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_move_of_resource_version_or_generation_is_a_change() {
        let a = Observed {
            resource_version: "10".into(),
            generation: 2,
            rollback_to: None,
        };
        let mut b = a.clone();
        assert!(!b.changed_since(&a));
        b.rollback_to = Some(RollbackTarget {
            replica_set: "api-1".into(),
            revision: 1,
        });
        assert!(!b.changed_since(&a), "the target is not the object");
        b.resource_version = "11".into();
        assert!(b.changed_since(&a));
        let mut c = a.clone();
        c.generation = 3;
        assert!(c.changed_since(&a));
    }
}

//! Decision tokens and their state machine.
//!
//! The transition table lives here and nowhere else: stores only
//! compare-and-set on `version`, they do not know which moves are legal.

use super::ids::{IncidentId, Token};
use super::incident::Severity;
use super::principal::{AuthMethod, Principal};
use super::proposal::Proposal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The states a decision moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionState {
    Init,
    Analyzing,
    Ready,
    Executing,
    Completed,
    Error,
    Rejected,
}

impl DecisionState {
    /// The transition table from SPEC: INIT → ANALYZING → READY → EXECUTING →
    /// COMPLETED | ERROR, and READY → REJECTED.
    pub fn can_move_to(self, next: DecisionState) -> bool {
        use DecisionState::*;
        matches!(
            (self, next),
            (Init, Analyzing)
                | (Analyzing, Ready)
                | (Ready, Executing)
                | (Ready, Rejected)
                | (Executing, Completed)
                | (Executing, Error)
        )
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Error | Self::Rejected)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "INIT",
            Self::Analyzing => "ANALYZING",
            Self::Ready => "READY",
            Self::Executing => "EXECUTING",
            Self::Completed => "COMPLETED",
            Self::Error => "ERROR",
            Self::Rejected => "REJECTED",
        }
    }
}

/// Which engine decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionMode {
    Auto,
    Dual,
    Consensus,
}

impl DecisionMode {
    /// The engine a mode means for an incident of `severity`: AUTO is
    /// consensus for P0/P1 and dual otherwise; DUAL and CONSENSUS are
    /// themselves. A decision records the resolved mode: the one used.
    pub fn resolve(self, severity: Severity) -> DecisionMode {
        match self {
            DecisionMode::Auto if severity.is_critical() => DecisionMode::Consensus,
            DecisionMode::Auto => DecisionMode::Dual,
            other => other,
        }
    }
}

/// A refused transition.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TransitionError {
    #[error("decision {token} is {from}; it cannot become {to}")]
    NotAllowed {
        token: Token,
        from: &'static str,
        to: &'static str,
    },
    #[error("decision {token} expired at {expires_at}")]
    Expired {
        token: Token,
        expires_at: DateTime<Utc>,
    },
    #[error("decision {token} is at version {actual}, not the expected {expected}")]
    StaleVersion {
        token: Token,
        expected: u64,
        actual: u64,
    },
    /// Four-eyes: the same principal cannot give two of the approvals.
    #[error(
        "{subject} has already approved decision {token}; a second, different approver is needed"
    )]
    AlreadyApproved { token: Token, subject: String },
}

/// One approval given to a decision: who, how they authenticated, when.
/// A decision that needs two approvers records the first one here and
/// stays READY (SPEC "Who decides": no extra state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub subject: String,
    pub method: AuthMethod,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub at: DateTime<Utc>,
}

/// The server-side dry run (`dryRun=All`) of a READY decision's command:
/// checked before a person sees the buttons. A failed one makes the
/// decision unapprovable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preflight {
    /// Whether the cluster would accept the command as it stands.
    pub ok: bool,
    /// What the cluster said: "would succeed: …", "… not found",
    /// "forbidden by RBAC: …", "refused: … is paused …".
    pub summary: String,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub checked_at: DateTime<Utc>,
    /// The object as the dry run saw it (and, for a rollback, the revision
    /// it chose); compared before the command runs. None for executors
    /// that cannot tell, and on records from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<super::Observed>,
}

/// Where the check that an executed command fixed its incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VerificationState {
    /// The command ran and rolled out; the decision stays EXECUTING while
    /// the incident is watched, until it resolves or `until` passes.
    Pending,
    /// The incident resolved within the window: the fix worked.
    Verified,
    /// The rollout failed, or the incident was still firing at the end of
    /// the window: the command ran but did not fix it.
    Failed,
}

impl VerificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Verified => "VERIFIED",
            Self::Failed => "FAILED",
        }
    }
}

/// The verification of an executed command (issue 18 item 5): recorded on
/// the decision so any replica can finish a pending one after the replica
/// that started it died, and so people see whether the fix held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub state: VerificationState,
    /// What was observed: "incident resolved after …", "still firing …".
    pub summary: String,
    /// The end of the window: still firing then = failed.
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub until: DateTime<Utc>,
    /// When the state was last decided (the start, for PENDING).
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub at: DateTime<Utc>,
}

/// A decision token as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub token: Token,
    pub incident_id: IncidentId,
    pub state: DecisionState,
    pub mode: DecisionMode,
    pub proposal: Option<Proposal>,
    pub version: u64,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub updated_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub expires_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::timestamp::deserialize")]
    pub analysis_deadline: DateTime<Utc>,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub decided_by: String,
    #[serde(default, deserialize_with = "super::timestamp::option")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub output: String,
    #[serde(default, deserialize_with = "super::timestamp::option")]
    pub completed_at: Option<DateTime<Utc>>,
    /// The incident's severity when the token was issued (for watch filters).
    #[serde(default)]
    pub severity: Option<super::Severity>,
    /// How `decided_by` authenticated (None on records from before
    /// authentication, and until someone decides).
    #[serde(default)]
    pub decided_by_method: Option<AuthMethod>,
    /// The approvals given so far, in order. "Awaiting a second approval"
    /// is READY with `0 < approvals.len() < approvals_required`.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// How many distinct approvers the approval policy asks for (0 until
    /// the first approval or rejection fixes it; then 1 or 2).
    #[serde(default)]
    pub approvals_required: u32,
    /// The dry run of the command, once it ran (executors that run
    /// commands here); None before, and with `external`/`dry-run`.
    #[serde(default)]
    pub preflight: Option<Preflight>,
    /// The verification after a successful execution (executors that run
    /// commands here, with a verify window); None before and otherwise.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// What the first attempt to run the command checked and chose,
    /// written before it ran (see [`super::ExecutionPlan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<super::ExecutionPlan>,
    /// The external runner's claim, with the `external` executor (see
    /// [`super::ExecutionClaim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<super::ExecutionClaim>,
    /// Request ids of the approvals, rejections and completions applied,
    /// written with them: a retry with one of them changes nothing.
    #[serde(default, skip_serializing_if = "super::AppliedRequests::is_empty")]
    pub applied_requests: super::AppliedRequests,
}

impl Decision {
    /// A new token, already ANALYZING (INIT is passed through in the same
    /// write: nobody can observe it, so it is recorded as version 1 =
    /// ANALYZING).
    pub fn start(
        incident_id: IncidentId,
        mode: DecisionMode,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        analysis_deadline: DateTime<Utc>,
    ) -> Self {
        Decision {
            applied_requests: Default::default(),
            token: Token::generate(),
            incident_id,
            state: DecisionState::Analyzing,
            mode,
            proposal: None,
            version: 1,
            created_at: now,
            updated_at: now,
            expires_at: now + ttl,
            analysis_deadline,
            error: String::new(),
            decided_by: String::new(),
            decided_at: None,
            reason: String::new(),
            output: String::new(),
            completed_at: None,
            severity: None,
            decided_by_method: None,
            approvals: Vec::new(),
            approvals_required: 0,
            preflight: None,
            verification: None,
            plan: None,
            claim: None,
        }
    }

    /// A READY token past its TTL can no longer be approved; it reads as
    /// EXPIRED. EXECUTING and terminal tokens never expire: their outcome
    /// must stay visible.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.state,
            DecisionState::Init | DecisionState::Analyzing | DecisionState::Ready
        ) && now >= self.expires_at
    }

    /// Returns the next version of this decision in state `next`, or why the
    /// move is refused. `expected_version` 0 means "whatever is current".
    pub fn transition(
        &self,
        next: DecisionState,
        expected_version: u64,
        now: DateTime<Utc>,
    ) -> Result<Decision, TransitionError> {
        if expected_version != 0 && expected_version != self.version {
            return Err(TransitionError::StaleVersion {
                token: self.token.clone(),
                expected: expected_version,
                actual: self.version,
            });
        }
        if !self.state.can_move_to(next) {
            return Err(TransitionError::NotAllowed {
                token: self.token.clone(),
                from: self.state.as_str(),
                to: next.as_str(),
            });
        }
        // An analysis may finish after the TTL (it is then immediately
        // expired), but a person cannot act on an expired proposal.
        if next != DecisionState::Ready && self.is_expired(now) {
            return Err(TransitionError::Expired {
                token: self.token.clone(),
                expires_at: self.expires_at,
            });
        }
        let mut d = self.clone();
        d.state = next;
        d.version += 1;
        d.updated_at = now;
        Ok(d)
    }

    /// Records `who`'s approval: the next version, READY with the approval
    /// recorded while fewer than `required` distinct principals have
    /// approved, EXECUTING (decided by `who`) with the last one. The same
    /// subject never counts twice. `required` is raised, never lowered, by
    /// what an earlier approval fixed.
    pub fn approve(
        &self,
        who: &Principal,
        required: u32,
        expected_version: u64,
        now: DateTime<Utc>,
    ) -> Result<Decision, TransitionError> {
        // Checks version, state and expiry exactly as the move would.
        let executing = self.transition(DecisionState::Executing, expected_version, now)?;
        if self.approvals.iter().any(|a| a.subject == who.subject) {
            return Err(TransitionError::AlreadyApproved {
                token: self.token.clone(),
                subject: who.subject.clone(),
            });
        }
        let required = required.max(self.approvals_required).max(1);
        let mut next = if self.approvals.len() + 1 >= required as usize {
            let mut d = executing;
            d.decided_by = who.subject.clone();
            d.decided_by_method = Some(who.method);
            d.decided_at = Some(now);
            d
        } else {
            let mut d = self.clone();
            d.version += 1;
            d.updated_at = now;
            d
        };
        next.approvals_required = required;
        next.approvals.push(Approval {
            subject: who.subject.clone(),
            method: who.method,
            at: now,
        });
        Ok(next)
    }

    /// Approvals still missing before the decision executes (0 once it
    /// left READY).
    pub fn approvals_missing(&self) -> u32 {
        if self.state != DecisionState::Ready {
            return 0;
        }
        let given = u32::try_from(self.approvals.len()).unwrap_or(u32::MAX);
        self.approvals_required.max(1).saturating_sub(given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecisionState::*;

    const ALL: [DecisionState; 7] = [
        Init, Analyzing, Ready, Executing, Completed, Error, Rejected,
    ];

    #[test]
    fn the_transition_table_is_exactly_the_spec() {
        let allowed = [
            (Init, Analyzing),
            (Analyzing, Ready),
            (Ready, Executing),
            (Ready, Rejected),
            (Executing, Completed),
            (Executing, Error),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
        for s in ALL {
            if s.is_terminal() {
                assert!(ALL.iter().all(|t| !s.can_move_to(*t)));
            }
        }
    }

    fn decision(now: DateTime<Utc>) -> Decision {
        Decision::start(
            IncidentId::generate(),
            DecisionMode::Auto,
            now,
            chrono::Duration::hours(1),
            now + chrono::Duration::seconds(30),
        )
    }

    #[test]
    fn transitions_bump_the_version_and_check_it() {
        let now = Utc::now();
        let d = decision(now);
        let r = d.transition(Ready, 1, now).unwrap();
        assert_eq!(r.version, 2);
        assert!(matches!(
            r.transition(Executing, 1, now),
            Err(TransitionError::StaleVersion { .. })
        ));
        assert!(r.transition(Executing, 0, now).is_ok());
        assert!(matches!(
            r.transition(Completed, 0, now),
            Err(TransitionError::NotAllowed { .. })
        ));
    }

    fn person(subject: &str) -> Principal {
        Principal {
            subject: subject.into(),
            method: AuthMethod::StaticToken,
            roles: Default::default(),
        }
    }

    #[test]
    fn two_distinct_approvers_move_a_four_eyes_decision() {
        let now = Utc::now();
        let d = decision(now).transition(Ready, 0, now).unwrap();
        let first = d.approve(&person("alice"), 2, 0, now).unwrap();
        assert_eq!((first.state, first.version), (Ready, 3));
        assert_eq!(first.approvals_missing(), 1);
        assert!(first.decided_by.is_empty());
        assert!(matches!(
            first.approve(&person("alice"), 2, 0, now),
            Err(TransitionError::AlreadyApproved { .. })
        ));
        assert!(matches!(
            first.approve(&person("bob"), 2, 2, now),
            Err(TransitionError::StaleVersion { .. })
        ));
        // A lowered requirement does not undo what the first one fixed.
        let second = first.approve(&person("bob"), 1, 3, now).unwrap();
        assert_eq!(second.state, Executing);
        assert_eq!(second.decided_by, "bob");
        assert_eq!(second.decided_by_method, Some(AuthMethod::StaticToken));
        let who: Vec<&str> = second
            .approvals
            .iter()
            .map(|a| a.subject.as_str())
            .collect();
        assert_eq!(who, ["alice", "bob"]);
        assert_eq!(second.approvals_missing(), 0);
        let single = d.approve(&person("carol"), 1, 0, now).unwrap();
        assert_eq!((single.state, single.approvals_required), (Executing, 1));
    }

    #[test]
    fn auto_resolves_by_severity() {
        use DecisionMode::*;
        assert_eq!(Auto.resolve(Severity::P0), Consensus);
        assert_eq!(Auto.resolve(Severity::P1), Consensus);
        assert_eq!(Auto.resolve(Severity::P2), Dual);
        assert_eq!(Dual.resolve(Severity::P0), Dual);
        assert_eq!(Consensus.resolve(Severity::P4), Consensus);
    }

    #[test]
    fn an_expired_ready_token_cannot_be_approved() {
        let now = Utc::now();
        let d = decision(now).transition(Ready, 0, now).unwrap();
        let later = now + chrono::Duration::hours(2);
        assert!(d.is_expired(later));
        assert!(matches!(
            d.transition(Executing, 0, later),
            Err(TransitionError::Expired { .. })
        ));
        let e = d.transition(Executing, 0, now).unwrap();
        assert!(!e.is_expired(later));
    }
}

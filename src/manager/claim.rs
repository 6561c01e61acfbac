//! External runners' execution leases (`DecisionService/ClaimExecution`).
//!
//! With the `external` executor an approved decision waits in EXECUTING
//! for a runner outside verdict. Several runners may watch for such
//! decisions; a claim makes sure two of them never run the same one. The
//! claim lives on the decision ([`ExecutionClaim`]) and is written with one
//! compare-and-set together with its audit event, so of two runners racing
//! exactly one wins and the other is told who holds it. A lease that ran
//! out may be claimed by another runner; the first runner's lease then no
//! longer completes the decision.
//!
//! Completion: once a decision has been claimed, `CompleteDecision` must
//! carry the current, unexpired lease id; the check and the completion are
//! one compare-and-set on the version checked, so a claim that moved in
//! between makes the completion fail rather than pass unchecked. A decision
//! nobody claimed completes as before (runners that predate claims keep
//! working), but then a lease id given is refused: it cannot be right.

use super::{DecisionManager, ExecutorKind, ManagerError};
use crate::audit::{self, Action};
use crate::domain::{Decision, DecisionState, ExecutionClaim, RequestId, Token};
use crate::stats::StatDelta;
use crate::store::Cas;
use std::time::Duration;

/// The longest lease a runner may ask for; it renews by claiming again.
pub const MAX_LEASE: Duration = Duration::from_secs(600);

impl DecisionManager {
    /// Claims (or, for the runner holding it, renews) the execution of
    /// `token` for `lease`. Refused when verdict runs commands itself,
    /// when the decision is not EXECUTING, and while another runner's
    /// lease lasts.
    pub async fn claim_execution(
        &self,
        token: &Token,
        runner: &str,
        lease: Duration,
    ) -> Result<(Decision, ExecutionClaim), ManagerError> {
        if self.settings.executor != ExecutorKind::External {
            return Err(ManagerError::Leased(format!(
                "the {} executor runs commands here; there is nothing to claim",
                self.settings.executor.as_str()
            )));
        }
        for _ in 0..8 {
            let d = self.load(token).await?;
            if d.state != DecisionState::Executing {
                return Err(ManagerError::Leased(format!(
                    "decision {token} is {}, not EXECUTING",
                    d.state.as_str()
                )));
            }
            let now = self.clock.now();
            let held = d.claim.as_ref().filter(|c| c.until > now);
            let lease_id = match held {
                Some(c) if c.runner != runner => {
                    return Err(ManagerError::Leased(format!(
                        "decision {token} is claimed by runner {:?} until {}",
                        c.runner,
                        c.until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    )));
                }
                // The holder renews: same lease id, a later end.
                Some(c) => c.lease_id.clone(),
                None => uuid::Uuid::new_v4().simple().to_string(),
            };
            let claim = ExecutionClaim {
                runner: runner.to_owned(),
                lease_id,
                until: now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX),
            };
            let mut next = d.clone();
            next.version += 1;
            next.updated_at = now;
            next.claim = Some(claim.clone());
            let event = audit::Draft::ok(now.timestamp_millis(), Action::ExecutionClaimed)
                .incident(&d.incident_id)
                .token(token)
                .versions(d.version, next.version)
                .detail(format!(
                    "runner {runner:?}, lease until {}",
                    claim
                        .until
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ));
            match self
                .store
                .update_decision(d.version, &next, &StatDelta::none(), Some(&event))
                .await?
            {
                Cas::Written => {
                    tracing::info!(%token, runner, "execution claimed");
                    return Ok((next, claim));
                }
                Cas::Conflict(_) => continue,
            }
        }
        Err(ManagerError::Contended(format!("decision {token}")))
    }

    /// `CompleteDecision` from outside: checks the lease (see the module
    /// doc), then completes on exactly the version checked.
    pub async fn complete_claimed(
        &self,
        token: &Token,
        success: bool,
        output: &str,
        request_id: Option<&RequestId>,
        lease_id: Option<&str>,
    ) -> Result<Decision, ManagerError> {
        let d = self.load(token).await?;
        if request_id.is_some_and(|r| d.applied_requests.contains(r)) {
            // A retry of a completion that was applied: as before.
            return self.complete(token, success, output, request_id).await;
        }
        let now = self.clock.now();
        match (&d.claim, lease_id) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(ManagerError::Leased(format!(
                    "decision {token} was never claimed; this lease_id is not its lease"
                )));
            }
            (Some(c), given) if given != Some(c.lease_id.as_str()) => {
                return Err(ManagerError::Leased(format!(
                    "decision {token} is claimed by runner {:?}; complete it with that claim's lease_id",
                    c.runner
                )));
            }
            (Some(c), _) if c.until <= now => {
                return Err(ManagerError::Leased(format!(
                    "the lease of runner {:?} on decision {token} ran out at {}; claim it again",
                    c.runner,
                    c.until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                )));
            }
            (Some(_), _) => {}
        }
        let expected = if d.claim.is_some() { d.version } else { 0 };
        self.complete_at(token, expected, success, output, request_id)
            .await
    }
}

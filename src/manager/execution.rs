//! Running an approved decision exactly once, whatever the number of
//! replicas.
//!
//! The replica whose approval won the READY → EXECUTING compare-and-set
//! starts the execution at once; the store entered the decision in its
//! EXECUTING index in that same write. Each attempt takes the decision's
//! execution lease under an owner id of its own (replica id + attempt), so
//! two attempts never run at once, even on one replica; it renews the lease
//! every third of its length while the command runs, and completes the
//! decision (COMPLETED or ERROR, through the usual compare-and-set) before
//! giving the lease up.
//!
//! A replica that dies mid-execution leaves its index entry with a lease
//! that runs out. Every replica's periodic sweep ([`super::sweeper`]) finds
//! such entries without scanning and takes the lease over. It does not
//! repeat the command blindly: executors derive every write from the
//! [`Run`] (the restart annotation is the approval time), so sending it
//! again converges on the state the first attempt may already have reached
//! and changes nothing if it had.
//!
//! **Verification** (with a verify window): once the rollout finished, the
//! attempt records a PENDING [`Verification`] on the decision, which stays
//! EXECUTING (so it stays in the EXECUTING index, under the same lease), and
//! watches the incident: resolved within the window → COMPLETED, verified;
//! still firing at the window's end, or a rollout that failed → COMPLETED
//! with the verification failed (the incident stays open, so the next
//! `GetOrCreateDecision` issues a new token). A replica that takes over a
//! decision whose verification is PENDING does not run the command again:
//! it only watches the incident until the recorded `until`.

use super::{DecisionManager, ManagerError};
use crate::domain::{
    Decision, DecisionState, ExecutionPlan, Observed, Preflight, RemediationCommand, Token,
    TransitionError, Verification, VerificationState,
};
use crate::executor::{ExecError, Executor, Outcome, Rollout, Run};
use crate::stats::StatDelta;
use crate::store::Cas;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Overdue executions taken over per sweep at most.
const BATCH: usize = 64;

/// READY decisions waiting for their dry run, per replica. When full, a
/// decision goes unchecked (its execution still fails the same way).
const PREFLIGHT_QUEUE: usize = 256;

/// The longest pause between two looks at the incident under verification:
/// one store read per pending verification every 2 s at most.
const VERIFY_POLL: Duration = Duration::from_secs(2);

/// How an attempt ends; written after the lease keeper is no longer raced,
/// so a completion is never cut half-way by a lost lease.
enum Finish {
    /// Ran (and rolled out); no verification asked for.
    Done(String),
    /// The command or its rollout failed: ERROR.
    Failed(ExecError),
    /// Verification over: COMPLETED with this verification.
    Verified(String, Verification),
    /// Someone else completed the decision while it was being verified.
    Gone,
    /// The replica is shutting down mid-verification: the lease is given
    /// up and another replica resumes the PENDING verification.
    Interrupted,
}

/// The executor of a manager and the lease it runs under.
pub struct Execution {
    executor: Arc<dyn Executor>,
    /// This replica's id; each attempt appends its own.
    replica: String,
    lease_ttl: Duration,
    /// How long a rollout may take after the command.
    rollout_timeout: Duration,
    /// How long the incident may take to resolve after the rollout; zero:
    /// no verification.
    verify_window: Duration,
    /// Decisions this replica wrote READY, for the dry-run worker.
    preflight_tx: mpsc::Sender<Token>,
    /// Taken once by [`DecisionManager::preflight_worker`].
    preflight_rx: Mutex<Option<mpsc::Receiver<Token>>>,
}

impl Execution {
    pub fn new(executor: Arc<dyn Executor>, settings: &crate::executor::ExecutorSettings) -> Self {
        let (preflight_tx, rx) = mpsc::channel(PREFLIGHT_QUEUE);
        Execution {
            executor,
            replica: format!("replica-{}", uuid::Uuid::new_v4().simple()),
            lease_ttl: settings.lease_ttl,
            rollout_timeout: settings.rollout_timeout,
            verify_window: settings.verify_window,
            preflight_tx,
            preflight_rx: Mutex::new(Some(rx)),
        }
    }
}

/// The run of a decision: everything an executor writes derives from it
/// (the approval time, the plan's rollback target), so a second attempt
/// sends identical requests.
pub fn run_of(d: &Decision) -> Run {
    Run {
        stamp: d.decided_at.unwrap_or(d.updated_at),
        rollback_to: d
            .plan
            .as_ref()
            .and_then(|p| p.observed.as_ref())
            .and_then(|o| o.rollback_to.clone()),
        resumed: false,
        approver: Some(d.decided_by.clone()).filter(|s| !s.is_empty()),
    }
}

/// What [`DecisionManager::plan`] decided.
enum Planned {
    /// Run the command; the re-check's note (when there was one) goes
    /// before its output. `resumed`: the plan was recorded by an earlier
    /// attempt, which may have run the command.
    Run { note: Option<String>, resumed: bool },
    /// Do not run it: the decision ends in ERROR with this.
    Refused(ExecError),
    /// The decision is no longer EXECUTING.
    Gone,
}

/// Runs the command, then waits for the rollout it started to finish as
/// `kubectl rollout status` decides (polled: after 250 ms, then doubling up
/// to every 5 s, and once more at the deadline), within the rollout timeout.
async fn run_and_roll_out(
    ex: &Execution,
    command: &crate::domain::RemediationCommand,
    run: &Run,
) -> Result<Outcome, ExecError> {
    let done = ex.executor.execute(command, run).await?;
    let deadline = tokio::time::Instant::now() + ex.rollout_timeout;
    let mut every = Duration::from_millis(250);
    loop {
        match ex.executor.rollout(command).await? {
            Rollout::Done(msg) => {
                return Ok(Outcome::said(format!("{}; {msg}", done.summary)));
            }
            Rollout::Failed(msg) => {
                return Err(ExecError::RolloutFailed(format!(
                    "{}, but {msg}",
                    done.summary
                )));
            }
            Rollout::Progressing(msg) => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(ExecError::RolloutFailed(format!(
                        "{}, but the rollout did not finish within {}: {msg}",
                        done.summary,
                        humantime::format_duration(ex.rollout_timeout)
                    )));
                }
                // The last wait ends at the deadline, for one last look.
                tokio::time::sleep(every.min(deadline - now)).await;
                every = (every * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl DecisionManager {
    /// Queues the dry run of a decision this replica just wrote READY (the
    /// replica that finished the analysis checks it, so it is checked once).
    pub(super) fn queue_preflight(&self, d: &Decision) {
        if let Some(ex) = &self.execution
            && d.state == DecisionState::Ready
            && ex.preflight_tx.try_send(d.token.clone()).is_err()
        {
            tracing::warn!(token = %d.token, "dry-run queue full; the decision is approvable unchecked");
        }
    }

    /// Refuses the approval of a decision whose dry run failed.
    pub(super) async fn ensure_approvable(&self, token: &Token) -> Result<(), ManagerError> {
        if self.execution.is_none() {
            return Ok(());
        }
        match self.load(token).await?.preflight {
            Some(p) if !p.ok => Err(ManagerError::Unapprovable(p.summary)),
            _ => Ok(()),
        }
    }

    /// The background work that dry-runs the commands of READY decisions
    /// and records each result on its decision, until `shutdown`. None
    /// without an executor, or when already taken.
    pub fn preflight_worker(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let ex = self.execution.as_ref()?;
        let mut rx = ex
            .preflight_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        let this = Arc::clone(self);
        Some(async move {
            loop {
                let token = tokio::select! {
                    t = rx.recv() => match t { Some(t) => t, None => return },
                    () = shutdown.cancelled() => return,
                };
                if let Err(e) = this.preflight(&token).await {
                    tracing::warn!(%token, error = %e, "cannot record the dry run");
                }
            }
        })
    }

    /// Dry-runs one READY decision's command and records the result with a
    /// compare-and-set (the decision stays READY; its version moves).
    async fn preflight(&self, token: &Token) -> Result<(), ManagerError> {
        let Some(ex) = self.execution.as_ref() else {
            return Ok(());
        };
        let d = self.load(token).await?;
        let Some(command) = d.proposal.as_ref().map(|p| p.command.clone()) else {
            return Ok(());
        };
        if d.state != DecisionState::Ready {
            return Ok(());
        }
        let run = Run::at(self.clock.now());
        let result = ex.executor.check(&command, &run).await;
        let preflight = Preflight {
            ok: result.is_ok(),
            checked_at: self.clock.now(),
            observed: result.as_ref().ok().and_then(|o| o.observed.clone()),
            summary: match result {
                Ok(o) => o.summary,
                Err(e) => e.to_string(),
            },
        };
        tracing::info!(%token, ok = preflight.ok, summary = %preflight.summary, "dry run");
        for _ in 0..8 {
            let cur = self.load(token).await?;
            if cur.state != DecisionState::Ready || cur.preflight.is_some() {
                return Ok(());
            }
            let mut next = cur.clone();
            next.version += 1;
            next.updated_at = self.clock.now();
            next.preflight = Some(preflight.clone());
            match self
                .store
                // The dry run is not a decision of anyone's: its result is
                // on the record, and the approval that follows is audited.
                .update_decision(cur.version, &next, &StatDelta::none(), None)
                .await?
            {
                Cas::Written => return Ok(()),
                Cas::Conflict(_) => continue,
            }
        }
        Err(ManagerError::Contended(format!("decision {token}")))
    }

    /// Starts `d` (just written EXECUTING by this replica) in the
    /// background, if this manager has an executor.
    pub(super) fn spawn_execution(self: &Arc<Self>, d: &Decision) {
        if self.execution.is_none() {
            return;
        }
        let this = Arc::clone(self);
        let token = d.token.clone();
        self.tasks.spawn(async move {
            if let Err(e) = this.execute(&token).await {
                tracing::warn!(%token, error = %e, "execution failed to finish; another replica takes it over after the lease");
            }
        });
    }

    /// Takes over executions whose owner's lease ran out (or that nobody
    /// started); returns how many were found. Each runs in the background.
    pub async fn resume_executions(self: &Arc<Self>) -> Result<usize, ManagerError> {
        if self.execution.is_none() {
            return Ok(0);
        }
        let tokens = self
            .store
            .overdue_executions(self.clock.now(), BATCH)
            .await?;
        for token in &tokens {
            let this = Arc::clone(self);
            let token = token.clone();
            self.tasks.spawn(async move {
                if let Err(e) = this.execute(&token).await {
                    tracing::warn!(%token, error = %e, "taking over an execution failed");
                }
            });
        }
        Ok(tokens.len())
    }

    /// One attempt: lease, run, complete, release. Does nothing when
    /// another attempt holds the lease.
    async fn execute(self: &Arc<Self>, token: &Token) -> Result<(), ManagerError> {
        let Some(ex) = self.execution.as_ref() else {
            return Ok(());
        };
        let owner = format!("{}/{}", ex.replica, uuid::Uuid::new_v4().simple());
        let leased = self
            .store
            .take_lease(token, &owner, ex.lease_ttl, self.clock.now())
            .await?;
        if !leased {
            return Ok(());
        }
        let result = self.execute_leased(ex, token, &owner).await;
        self.store.release_lease(token, &owner).await?;
        result
    }

    async fn execute_leased(
        &self,
        ex: &Execution,
        token: &Token,
        owner: &str,
    ) -> Result<(), ManagerError> {
        let d = match self.load(token).await {
            Ok(d) => d,
            Err(ManagerError::NotFound(_)) => {
                self.store.forget_execution(token).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if d.state != DecisionState::Executing {
            // Finished by an earlier attempt; the finishing write removed
            // the entry, and this clears one left by anything else.
            self.store.forget_execution(token).await?;
            return Ok(());
        }
        let Some(command) = d.proposal.as_ref().map(|p| p.command.clone()) else {
            self.complete(token, false, "no command to run", None)
                .await?;
            return Ok(());
        };
        let pending = d
            .verification
            .clone()
            .filter(|v| v.state == VerificationState::Pending);
        let work = async {
            match pending {
                Some(v) => {
                    tracing::info!(%token, "resuming the verification of an executed command");
                    self.verify(ex, &d, &d.output, v).await
                }
                None => {
                    let (note, resumed) = match self.plan(ex, &d, &command).await? {
                        Planned::Run { note, resumed } => (note, resumed),
                        Planned::Refused(e) => return Ok(Finish::Failed(e)),
                        Planned::Gone => return Ok(Finish::Gone),
                    };
                    // Read back: the plan is on the record now.
                    let d = self.load(token).await?;
                    let run = Run {
                        resumed,
                        ..run_of(&d)
                    };
                    tracing::info!(%token, command = %command.render(), resumed = run.resumed, "executing");
                    let finish = self.run_then_verify(ex, &d, &command, &run).await?;
                    Ok(match (note, finish) {
                        (Some(n), Finish::Done(s)) => Finish::Done(format!("{n}; {s}")),
                        (Some(n), Finish::Verified(s, v)) => {
                            Finish::Verified(format!("{n}; {s}"), v)
                        }
                        (_, f) => f,
                    })
                }
            }
        };
        let outcome = tokio::select! {
            r = work => Some(r?),
            () = self.keep_lease(ex, token, owner) => None,
        };
        match outcome {
            Some(Finish::Done(summary)) => {
                self.complete(token, true, &summary, None).await?;
            }
            Some(Finish::Failed(e)) => {
                tracing::warn!(%token, error = %e, "command failed");
                self.complete(token, false, &e.to_string(), None).await?;
            }
            Some(Finish::Verified(output, v)) => {
                tracing::info!(%token, verification = v.state.as_str(), summary = %v.summary, "verified");
                let now = self.clock.now();
                let written = self
                    .transition(token, 0, None, DecisionState::Completed, |d| {
                        d.output = output.clone();
                        d.completed_at = Some(now);
                        d.verification = Some(v.clone());
                    })
                    .await;
                match written {
                    Ok(_) => {}
                    // Completed meanwhile by `CompleteDecision` (someone
                    // outside settled it): their word stands.
                    Err(ManagerError::Transition(TransitionError::NotAllowed { .. })) => {
                        tracing::info!(%token, "completed by someone else during its verification");
                    }
                    Err(e) => return Err(e),
                }
            }
            Some(Finish::Gone) => {}
            Some(Finish::Interrupted) => {
                tracing::info!(%token, "shutting down mid-verification; another replica resumes it");
            }
            None => {
                // Lost the lease (a pause longer than the lease): another
                // attempt owns the execution now and finishes it.
                tracing::warn!(%token, "execution lease lost; leaving the decision to its new owner");
            }
        }
        Ok(())
    }

    /// Before the first attempt runs the command: compares the object with
    /// what the dry run saw; a changed one (or one no dry run observed) is
    /// checked again first, and a failed re-check, or a rollback whose
    /// target moved, stops it. Then records the plan on the decision, so a
    /// later attempt (this one crashed) converges on it instead of deciding
    /// afresh. An attempt that finds a plan recorded goes straight on.
    async fn plan(
        &self,
        ex: &Execution,
        d: &Decision,
        command: &RemediationCommand,
    ) -> Result<Planned, ManagerError> {
        if let Some(p) = &d.plan {
            return Ok(Planned::Run {
                note: p.recheck.clone(),
                resumed: true,
            });
        }
        let dry: Option<Observed> = d.preflight.as_ref().and_then(|p| p.observed.clone());
        let now = match ex.executor.observe(command).await {
            Ok(o) => o,
            Err(e) => return Ok(Planned::Refused(e)),
        };
        let (observed, recheck) = match (&dry, &now) {
            // The executor cannot tell: run as checked.
            (_, None) => (dry.clone(), None),
            (Some(was), Some(is)) if !is.changed_since(was) => (dry.clone(), None),
            (was, Some(is)) => {
                let why = match was {
                    Some(was) => format!(
                        "changed since its dry run (resourceVersion {} → {}, generation {} → {})",
                        was.resource_version, is.resource_version, was.generation, is.generation
                    ),
                    None => "no dry run was recorded".to_owned(),
                };
                let checked = ex.executor.check(command, &Run::at(self.clock.now())).await;
                tracing::info!(token = %d.token, %why, ok = checked.is_ok(), "re-checked before running");
                let checked = match checked {
                    Ok(o) => o,
                    Err(e) => {
                        return Ok(Planned::Refused(ExecError::Changed(format!(
                            "{why}; re-checked: {e}"
                        ))));
                    }
                };
                let approved = was.as_ref().and_then(|o| o.rollback_to.as_ref());
                let chosen = checked
                    .observed
                    .as_ref()
                    .and_then(|o| o.rollback_to.as_ref());
                if let (Some(a), Some(c)) = (approved, chosen)
                    && a != c
                {
                    return Ok(Planned::Refused(ExecError::Changed(format!(
                        "{why}; the previous revision is now {} ({}), not the approved {} ({}); not run",
                        c.revision, c.replica_set, a.revision, a.replica_set
                    ))));
                }
                (
                    checked.observed.clone(),
                    Some(format!("{why}; re-checked: {}", checked.summary)),
                )
            }
        };
        let plan = ExecutionPlan {
            observed,
            recheck: recheck.clone(),
            at: self.clock.now(),
        };
        for _ in 0..8 {
            let cur = self.load(&d.token).await?;
            if cur.state != DecisionState::Executing {
                return Ok(Planned::Gone);
            }
            if let Some(p) = &cur.plan {
                // Another attempt planned first (it cannot run meanwhile:
                // this one holds the lease); follow its plan.
                return Ok(Planned::Run {
                    note: p.recheck.clone(),
                    resumed: true,
                });
            }
            let mut next = cur.clone();
            next.version += 1;
            next.updated_at = self.clock.now();
            next.plan = Some(plan.clone());
            match self
                .store
                // Not a decision of anyone's: the completion that follows
                // carries the statistics and the audit event.
                .update_decision(cur.version, &next, &StatDelta::none(), None)
                .await?
            {
                Cas::Written => {
                    return Ok(Planned::Run {
                        note: recheck,
                        resumed: false,
                    });
                }
                Cas::Conflict(_) => continue,
            }
        }
        Err(ManagerError::Contended(format!("decision {}", d.token)))
    }

    /// Runs the command and waits for its rollout; then, with a verify
    /// window, records the verification PENDING and watches the incident.
    async fn run_then_verify(
        &self,
        ex: &Execution,
        d: &Decision,
        command: &crate::domain::RemediationCommand,
        run: &Run,
    ) -> Result<Finish, ManagerError> {
        let result = run_and_roll_out(ex, command, run).await;
        if ex.verify_window.is_zero() {
            return Ok(match result {
                Ok(o) => Finish::Done(o.summary),
                Err(e) => Finish::Failed(e),
            });
        }
        let now = self.clock.now();
        let until =
            now + chrono::Duration::from_std(ex.verify_window).unwrap_or(chrono::Duration::MAX);
        match result {
            Ok(o) => {
                let v = Verification {
                    state: VerificationState::Pending,
                    summary: format!(
                        "rolled out; waiting up to {} for the incident to resolve",
                        humantime::format_duration(ex.verify_window)
                    ),
                    until,
                    at: now,
                };
                if !self.record_pending(&d.token, &o.summary, &v).await? {
                    return Ok(Finish::Gone);
                }
                self.verify(ex, d, &o.summary, v).await
            }
            // The command ran but its rollout did not take: it did not fix
            // anything, and says so as a failed verification.
            Err(ExecError::RolloutFailed(msg)) => Ok(Finish::Verified(
                msg.clone(),
                Verification {
                    state: VerificationState::Failed,
                    summary: format!("the rollout failed: {msg}"),
                    until,
                    at: now,
                },
            )),
            Err(e) => Ok(Finish::Failed(e)),
        }
    }

    /// Writes the PENDING verification on the EXECUTING decision (it stays
    /// EXECUTING and in the index). False when it is no longer EXECUTING.
    async fn record_pending(
        &self,
        token: &Token,
        output: &str,
        v: &Verification,
    ) -> Result<bool, ManagerError> {
        for _ in 0..8 {
            let cur = self.load(token).await?;
            if cur.state != DecisionState::Executing {
                return Ok(false);
            }
            let mut next = cur.clone();
            next.version += 1;
            next.updated_at = self.clock.now();
            next.output = output.to_owned();
            next.verification = Some(v.clone());
            match self
                .store
                // Not a decision of anyone's: the completion that follows
                // carries the statistics and the audit event.
                .update_decision(cur.version, &next, &StatDelta::none(), None)
                .await?
            {
                Cas::Written => return Ok(true),
                Cas::Conflict(_) => continue,
            }
        }
        Err(ManagerError::Contended(format!("decision {token}")))
    }

    /// Watches the decision's incident until it is no longer active
    /// (verified) or `v.until` passes on the manager's clock (failed).
    /// Polled from the store: after 250 ms, then doubling up to
    /// [`VERIFY_POLL`]. Stops at shutdown (the window may be long; the
    /// PENDING record lets another replica resume it).
    async fn verify(
        &self,
        ex: &Execution,
        d: &Decision,
        output: &str,
        v: Verification,
    ) -> Result<Finish, ManagerError> {
        let mut every = Duration::from_millis(250);
        loop {
            let incident = self.store.get_incident(&d.incident_id).await?;
            let now = self.clock.now();
            let resolved = incident.as_ref().is_none_or(|i| !i.status.is_active());
            if resolved {
                let after = (now - v.at).to_std().unwrap_or_default();
                let summary = match incident {
                    Some(i) => format!(
                        "the incident is {} ({} after the rollout)",
                        i.status.as_str(),
                        humantime::format_duration(Duration::from_secs(after.as_secs()))
                    ),
                    None => "the incident no longer exists".to_owned(),
                };
                return Ok(Finish::Verified(
                    output.to_owned(),
                    Verification {
                        state: VerificationState::Verified,
                        summary,
                        at: now,
                        ..v
                    },
                ));
            }
            if now >= v.until {
                return Ok(Finish::Verified(
                    output.to_owned(),
                    Verification {
                        state: VerificationState::Failed,
                        summary: format!(
                            "the incident was still firing at the end of the {} window",
                            humantime::format_duration(
                                (v.until - v.at).to_std().unwrap_or(ex.verify_window)
                            )
                        ),
                        at: now,
                        ..v
                    },
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.shutdown.cancelled() => return Ok(Finish::Interrupted),
            }
            every = (every * 2).min(VERIFY_POLL);
        }
    }

    /// Renews the lease every third of its length; returns only when it
    /// could not (another attempt holds it, or the store failed twice in a
    /// row with the lease about to run out).
    async fn keep_lease(&self, ex: &Execution, token: &Token, owner: &str) {
        let every = ex.lease_ttl / 3;
        let mut failures = 0;
        loop {
            tokio::time::sleep(every).await;
            match self
                .store
                .take_lease(token, owner, ex.lease_ttl, self.clock.now())
                .await
            {
                Ok(true) => failures = 0,
                Ok(false) => return,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(%token, error = %e, "cannot renew the execution lease");
                    if failures >= 2 {
                        return;
                    }
                }
            }
        }
    }
}

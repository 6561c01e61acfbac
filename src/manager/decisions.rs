//! The decision manager: the seed's `get_or_create_decision` with its flaws
//! fixed. One token per incident at a time (single-flight across replicas
//! through the store's compare-and-set), transitions validated by the
//! domain's table and written with compare-and-set on `version`, and a
//! proposal always ready by the deadline: whatever the analyzer does, the
//! expert engine answers when time is up.

use super::ManagerError;
use super::approval::ApprovalPolicy;
use super::sweeper::{RECOVERY_GRACE, abandoned};
use super::waiters::Waiters;
use crate::audit;
use crate::clock::Clock;
use crate::domain::{
    AuthMethod, Decision, DecisionMode, DecisionState, FallbackReason, Incident, IncidentId,
    Principal, RequestId, Token, TransitionError,
};
use crate::engine::{Analyzer, ExpertEngine};
use crate::stats::record as stats;
use crate::store::{Cas, Store};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// How many compare-and-set races one call retries before giving up with
/// ABORTED-style `Contended` (each retry re-reads, so this only trips under
/// pathological contention).
const CAS_ATTEMPTS: usize = 8;
/// Time kept back from a call's deadline to write READY and answer: a tenth
/// of the timeout, at most 20 ms (measured: a burst of 100 simultaneous
/// deadlines on a loaded 2-core machine needs about that).
fn finish_reserve(timeout: Duration) -> Duration {
    (timeout / 10).min(Duration::from_millis(20))
}

/// How long until an ANALYZING decision counts as abandoned (see
/// [`abandoned`]); zero when it already does.
fn until_abandoned(d: &Decision, now: chrono::DateTime<chrono::Utc>) -> Duration {
    let grace = chrono::Duration::from_std(RECOVERY_GRACE).unwrap_or(chrono::Duration::zero());
    (d.analysis_deadline + grace - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// The longest analysis timeout a caller may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// Store reads in flight at once for [`DecisionManager::current_of`].
pub const CURRENT_READS: usize = 16;

/// Incidents one [`DecisionManager::current_of`] call may ask for.
pub const MAX_CURRENT: usize = 500;

/// What happens after approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// The decision stays EXECUTING until an external executor calls
    /// `CompleteDecision`.
    External,
    /// Nothing runs; the decision completes at once with the command that
    /// would have run.
    DryRun,
    /// The Kubernetes API runs the command (`executor::kubernetes`), under
    /// an execution lease so exactly one replica runs it.
    Kubernetes,
    /// The `kubectl` binary runs the command (`executor::kubectl`), under
    /// the same lease.
    Kubectl,
}

impl ExecutorKind {
    /// Every kind, for the settings' list of possible values.
    pub const ALL: [ExecutorKind; 4] = [
        ExecutorKind::External,
        ExecutorKind::DryRun,
        ExecutorKind::Kubernetes,
        ExecutorKind::Kubectl,
    ];

    /// The name used in settings (the same as its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::External => "external",
            ExecutorKind::DryRun => "dry-run",
            ExecutorKind::Kubernetes => "kubernetes",
            ExecutorKind::Kubectl => "kubectl",
        }
    }
}

impl std::str::FromStr for ExecutorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not an executor: external, dry-run, kubernetes or kubectl")
            })
    }
}

/// Settings of the decision manager.
#[derive(Debug, Clone)]
pub struct DecisionSettings {
    /// How long a token stays approvable.
    pub token_ttl: Duration,
    /// Analysis deadline when the caller gives none.
    pub default_timeout: Duration,
    pub executor: ExecutorKind,
    /// Decisions returned by `ListDecisions`.
    pub history_len: usize,
}

impl DecisionSettings {
    /// Refuses settings that cannot work, naming each setting as a person
    /// writes it (`decision_timeout` is `default_timeout` here).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.token_ttl.is_zero(), "token_ttl must be positive");
        anyhow::ensure!(
            !self.default_timeout.is_zero(),
            "decision_timeout must be positive"
        );
        anyhow::ensure!(
            self.default_timeout <= MAX_TIMEOUT,
            "decision_timeout must be at most 10m"
        );
        Ok(())
    }
}

/// Issues decision tokens and moves them through their states.
pub struct DecisionManager {
    pub(super) store: Arc<dyn Store>,
    expert: Arc<ExpertEngine>,
    analyzer: Arc<dyn Analyzer>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: DecisionSettings,
    /// Background analyses (calls without `wait`); drained on shutdown.
    pub(super) tasks: TaskTracker,
    pub(super) shutdown: CancellationToken,
    /// Callers joined to an analysis they do not own, woken by the change
    /// feed ([`Self::observe`]) and by local finishes.
    waiters: Waiters,
    /// Who may decide what, and when two approvers are needed; swapped
    /// whole on reload.
    approval: RwLock<Arc<ApprovalPolicy>>,
    /// What runs approved commands (kinds that run them here); None: the
    /// decision waits for an external executor or completes at once.
    pub(super) execution: Option<super::execution::Execution>,
    /// The replica's audit trail (shared refusal counts).
    audit: super::AuditLog,
}

/// A `get_or_create` call: which incident, which engine, and how long the
/// caller is prepared to wait.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    pub incident_id: IncidentId,
    /// The engine asked for (AUTO is resolved by severity).
    pub mode: DecisionMode,
    /// Return only once the decision is past ANALYZING (else at once,
    /// with the analysis running in the background).
    pub wait: bool,
    /// The analysis timeout asked for (the configured default if None;
    /// capped at [`MAX_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// The caller's own deadline (its `grpc-timeout`), if any.
    pub call_deadline: Option<Instant>,
}

impl DecisionRequest {
    /// Starts an AUTO decision in the background: the call returns at once.
    pub fn background(incident_id: IncidentId) -> Self {
        DecisionRequest {
            incident_id,
            mode: DecisionMode::Auto,
            wait: false,
            timeout: None,
            call_deadline: None,
        }
    }
}

/// What `get_or_create` answered.
#[derive(Debug, Clone)]
pub struct Issued {
    pub decision: Decision,
    /// Whether this call issued the token (false: an existing one).
    pub created: bool,
}

/// What to do with an incident's current decision.
enum Reuse {
    Return,
    Join,
    Replace,
}

impl DecisionManager {
    /// The audit trail of this manager's store (to record refusals).
    pub fn audit_log(&self) -> super::AuditLog {
        self.audit.clone()
    }

    /// Records refusals through `audit` (the replica's one trail, whose
    /// refusal counts every caller shares).
    pub fn with_audit_log(mut self, audit: super::AuditLog) -> Self {
        self.audit = audit;
        self
    }

    pub fn new(
        store: Arc<dyn Store>,
        expert: Arc<ExpertEngine>,
        analyzer: Arc<dyn Analyzer>,
        clock: Arc<dyn Clock>,
        settings: DecisionSettings,
        shutdown: CancellationToken,
    ) -> Self {
        DecisionManager {
            audit: super::AuditLog::new(store.clone(), clock.clone()),
            store,
            expert,
            analyzer,
            clock,
            settings,
            tasks: TaskTracker::new(),
            shutdown,
            waiters: Waiters::default(),
            approval: RwLock::new(Arc::new(ApprovalPolicy::default())),
            execution: None,
        }
    }

    /// Gives the manager an executor: approved decisions run through it,
    /// under an execution lease of `lease_ttl`, and complete once the
    /// rollout they started finished (within `rollout_timeout`) and, with
    /// a `verify_window`, once their incident resolved or the window passed.
    pub fn with_executor(
        mut self,
        executor: Arc<dyn crate::executor::Executor>,
        settings: &crate::executor::ExecutorSettings,
    ) -> Self {
        self.execution = Some(super::execution::Execution::new(executor, settings));
        self
    }

    /// Hands the manager one change from the change feed (any replica's):
    /// callers joined to that decision's analysis wake and re-read it. The
    /// server calls this from the feed's sink; without it, a caller joined
    /// to another replica's analysis waits until its deadline.
    pub fn observe(&self, d: &Decision) {
        if d.state != DecisionState::Analyzing {
            self.waiters.wake(&d.token);
        }
    }

    /// Waits (up to `grace`) for background analyses to finish. A decision
    /// left ANALYZING is finished by the next reader after its deadline.
    pub async fn drain(&self, grace: Duration) {
        self.tasks.close();
        let _ = tokio::time::timeout(grace, self.tasks.wait()).await;
    }

    /// The seed's rule for an incident's current token: READY and EXECUTING
    /// are returned; COMPLETED only while the incident is resolved or closed
    /// (the Y/n fix: an active incident gets a new token); an analysis in
    /// flight is joined; anything else (REJECTED, ERROR, expired) is replaced.
    fn reuse(
        &self,
        d: &Decision,
        incident: &Incident,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Reuse {
        if d.is_expired(now) {
            return Reuse::Replace;
        }
        match d.state {
            DecisionState::Ready | DecisionState::Executing => Reuse::Return,
            DecisionState::Completed if !incident.status.is_active() => Reuse::Return,
            DecisionState::Init | DecisionState::Analyzing => Reuse::Join,
            DecisionState::Completed | DecisionState::Error | DecisionState::Rejected => {
                Reuse::Replace
            }
        }
    }

    /// Returns the incident's current decision or issues a new one (see
    /// [`Self::reuse`]). With `wait`, returns only once the decision is past
    /// ANALYZING, and no later than the deadline: at the deadline the expert
    /// proposal is used.
    pub async fn get_or_create(
        self: &Arc<Self>,
        req: DecisionRequest,
    ) -> Result<Issued, ManagerError> {
        if self.shutdown.is_cancelled() {
            return Err(ManagerError::ShuttingDown);
        }
        let deadline = self.analysis_deadline(&req);
        let DecisionRequest {
            incident_id,
            mode,
            wait,
            ..
        } = req;
        let incident_id = &incident_id;
        let existing = |decision: Decision| Issued {
            decision,
            created: false,
        };
        // The first read may come from the replica's copy: good enough to
        // return a decision as it is, and only for that; any other outcome
        // reads the store again.
        let mut copy_allowed = true;
        for _ in 0..CAS_ATTEMPTS {
            let (incident, current) = if copy_allowed {
                copy_allowed = false;
                let (incident, current, from_copy) =
                    self.store.incident_and_current_cached(incident_id).await?;
                if from_copy {
                    if let (Some(incident), Some(d)) = (&incident, &current)
                        && matches!(self.reuse(d, incident, self.clock.now()), Reuse::Return)
                    {
                        return Ok(existing(d.clone()));
                    }
                    self.store.incident_and_current(incident_id).await?
                } else {
                    (incident, current)
                }
            } else {
                self.store.incident_and_current(incident_id).await?
            };
            let incident = incident
                .ok_or_else(|| ManagerError::NotFound(format!("incident {incident_id}")))?;
            let now = self.clock.now();
            if let Some(d) = &current {
                match self.reuse(d, &incident, now) {
                    Reuse::Return => return Ok(existing(d.clone())),
                    Reuse::Join => {
                        if abandoned(d, now) {
                            // Its replica died or stalled: finish it here.
                            let d = self
                                .finish_with_expert(d.clone(), &incident, FallbackReason::Recovered)
                                .await?;
                            return Ok(existing(d));
                        }
                        if !wait {
                            return Ok(existing(d.clone()));
                        }
                        let d = self.join(d.clone(), &incident, deadline).await?;
                        return Ok(existing(d));
                    }
                    Reuse::Replace => {}
                }
            }
            // Another caller (on any replica) may issue a token first:
            // then re-read and treat it as the current one.
            if let Some(issued) = self
                .issue(incident, current.as_ref(), mode, wait, deadline)
                .await?
            {
                return Ok(issued);
            }
        }
        Err(ManagerError::Contended(format!("incident {incident_id}")))
    }

    /// Writes a new ANALYZING token for `incident`, if `current` is still
    /// its current one, and runs the analysis: awaited with `wait`, else in
    /// the background. None when another caller issued a token first.
    async fn issue(
        self: &Arc<Self>,
        incident: Incident,
        current: Option<&Decision>,
        mode: DecisionMode,
        wait: bool,
        deadline: Instant,
    ) -> Result<Option<Issued>, ManagerError> {
        let now = self.clock.now();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let analysis_deadline =
            now + chrono::Duration::from_std(remaining).unwrap_or(chrono::Duration::zero());
        let ttl = chrono::Duration::from_std(self.settings.token_ttl)
            .unwrap_or(chrono::Duration::hours(1));
        // The decision records the engine actually used.
        let mode = mode.resolve(incident.severity);
        let mut fresh = Decision::start(incident.id.clone(), mode, now, ttl, analysis_deadline);
        fresh.severity = Some(incident.severity);
        let stats = stats::decision(None, &fresh);
        let created = self
            .store
            .create_decision(
                current.map(|d| &d.token),
                &fresh,
                &stats,
                Some(&audit::Draft::decision_change(None, &fresh)),
            )
            .await?;
        if created != Cas::Written {
            return Ok(None);
        }
        crate::metrics::decision_written(&fresh);
        tracing::info!(token = %fresh.token, incident = %incident.id, "decision analyzing");
        let decision = if wait {
            self.analyze(fresh, incident, deadline).await?
        } else {
            self.spawn_analysis(fresh.clone(), incident, deadline);
            fresh
        };
        Ok(Some(Issued {
            decision,
            created: true,
        }))
    }

    /// When the analysis must stop: the timeout asked for (or the default),
    /// bounded by the caller's deadline, less a reserve, because writing
    /// READY and answering must also fit before the caller's deadline, even
    /// when many deadlines fall at once.
    fn analysis_deadline(&self, req: &DecisionRequest) -> Instant {
        let timeout = req
            .timeout
            .unwrap_or(self.settings.default_timeout)
            .min(MAX_TIMEOUT);
        let mut deadline = Instant::now() + timeout;
        if let Some(cd) = req.call_deadline {
            deadline = deadline.min(cd);
        }
        deadline
            .checked_sub(finish_reserve(timeout))
            .unwrap_or(deadline)
    }

    fn spawn_analysis(self: &Arc<Self>, d: Decision, incident: Incident, deadline: Instant) {
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let token = d.token.clone();
            if let Err(e) = this.analyze(d, incident, deadline).await {
                tracing::warn!(%token, error = %e, "background analysis failed; the next reader finishes it");
            }
        }.in_current_span());
    }

    /// Runs the analyzer under the deadline; the expert proposal answers
    /// when it does not finish in time.
    async fn analyze(
        &self,
        d: Decision,
        incident: Incident,
        deadline: Instant,
    ) -> Result<Decision, ManagerError> {
        let started = Instant::now();
        let analysis = self.analyzer.analyze(&incident, d.mode, deadline);
        let mut proposal = match tokio::time::timeout_at(deadline, analysis).await {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(token = %d.token, "analysis deadline reached; using the expert proposal");
                let mut p = self.expert.propose(&incident);
                p.fallback_reason = Some(FallbackReason::Timeout);
                p
            }
        };
        proposal.analysis_latency = started.elapsed();
        self.finish(d, proposal).await
    }

    async fn finish_with_expert(
        &self,
        d: Decision,
        incident: &Incident,
        reason: FallbackReason,
    ) -> Result<Decision, ManagerError> {
        let mut p = self.expert.propose(incident);
        p.fallback_reason = Some(reason);
        self.finish(d, p).await
    }

    /// ANALYZING → READY with `proposal`. When someone else finished it
    /// first, their result stands and is returned.
    async fn finish(
        &self,
        d: Decision,
        proposal: crate::domain::Proposal,
    ) -> Result<Decision, ManagerError> {
        let mut next = d.transition(DecisionState::Ready, d.version, self.clock.now())?;
        next.proposal = Some(proposal);
        let stats = stats::decision(Some(&d), &next);
        let event = audit::Draft::decision_change(Some(&d), &next);
        let out = match self
            .store
            .update_decision(d.version, &next, &stats, Some(&event))
            .await?
        {
            Cas::Written => {
                tracing::info!(token = %next.token, "decision ready");
                self.queue_preflight(&next);
                crate::metrics::decision_written(&next);
                next
            }
            Cas::Conflict(Some(current)) => current,
            Cas::Conflict(None) => {
                return Err(ManagerError::NotFound(format!("decision {}", d.token)));
            }
        };
        // Local waiters need not wait for the feed to bring the change.
        self.waiters.wake(&out.token);
        Ok(out)
    }

    /// Waits for an analysis owned by another call (maybe on another
    /// replica) until it leaves ANALYZING, finishing it with the expert
    /// proposal at `deadline` (or once it is abandoned). Woken by the
    /// decision's changes ([`Self::observe`]), never by polling: between
    /// changes it sleeps until the earlier of the two.
    async fn join(
        &self,
        mut d: Decision,
        incident: &Incident,
        deadline: Instant,
    ) -> Result<Decision, ManagerError> {
        let waiting = self.waiters.register(&d.token);
        // `d` was read before registering: re-read once so a change made
        // in between is not missed.
        let mut read = true;
        loop {
            let changed = waiting.notify().notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if read {
                d = self.load(&d.token).await?;
            }
            read = true;
            if d.state != DecisionState::Analyzing {
                return Ok(d);
            }
            let now = self.clock.now();
            if abandoned(&d, now) {
                return self
                    .finish_with_expert(d, incident, FallbackReason::Recovered)
                    .await;
            }
            if Instant::now() >= deadline {
                return self
                    .finish_with_expert(d, incident, FallbackReason::Timeout)
                    .await;
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline.min(Instant::now() + until_abandoned(&d, now))) => {}
                _ = self.shutdown.cancelled() => return Err(ManagerError::ShuttingDown),
            }
        }
    }

    /// A decision by token; an ANALYZING one past its analysis deadline is
    /// finished on read with the expert proposal, so the UI never locks.
    pub async fn get(&self, token: &Token) -> Result<Decision, ManagerError> {
        let d = self.load(token).await?;
        if abandoned(&d, self.clock.now()) {
            let incident = self
                .store
                .get_incident(&d.incident_id)
                .await?
                .ok_or_else(|| ManagerError::NotFound(format!("incident {}", d.incident_id)))?;
            return self
                .finish_with_expert(d, &incident, FallbackReason::Recovered)
                .await;
        }
        Ok(d)
    }

    /// [`Self::get`] for a reader (`GetDecision`): the store may answer
    /// from the replica's copy of the decision
    /// ([`Store::get_decision_cached`]). An abandoned analysis is read
    /// again from the store before it is finished.
    pub async fn read(&self, token: &Token) -> Result<Decision, ManagerError> {
        let d = self
            .store
            .get_decision_cached(token)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("decision {token}")))?;
        if abandoned(&d, self.clock.now()) {
            return self.get(token).await;
        }
        Ok(d)
    }

    pub(super) async fn load(&self, token: &Token) -> Result<Decision, ManagerError> {
        self.store
            .get_decision(token)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("decision {token}")))
    }

    /// The current decision of each of `ids` that has one, in order. The
    /// reads run a few at a time ([`CURRENT_READS`]), so a page of 500
    /// costs the store a bounded burst rather than 500 sequential trips.
    pub async fn current_of(&self, ids: &[IncidentId]) -> Result<Vec<Decision>, ManagerError> {
        use futures::{StreamExt, TryStreamExt};
        // Owned ids and store handles: the futures must be `Send` for any
        // lifetime the gRPC handler's future is polled under.
        let found: Vec<Option<Decision>> = futures::stream::iter(ids.to_vec())
            .map(|id| {
                let store = self.store.clone();
                async move { store.incident_and_current(&id).await.map(|(_, d)| d) }
            })
            .buffered(CURRENT_READS)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The incident's decisions, newest first.
    pub async fn list(&self, incident_id: &IncidentId) -> Result<Vec<Decision>, ManagerError> {
        let out = self
            .store
            .list_decisions(incident_id, self.settings.history_len)
            .await?;
        if out.is_empty() && self.store.get_incident(incident_id).await?.is_none() {
            return Err(ManagerError::NotFound(format!("incident {incident_id}")));
        }
        Ok(out)
    }

    /// Applies one transition with compare-and-set. With an expected
    /// version, a lost race is reported as stale; without one, the call
    /// re-reads and re-validates (so of two approvers exactly one wins and
    /// the other learns the decision is no longer READY).
    ///
    /// With a request id, the id is recorded in the decision by the same
    /// write, and a call whose id the decision already holds is a retry of
    /// a change that was applied: it gets the decision as it is (success,
    /// nothing changed), before any state or version check could refuse it.
    pub(super) async fn transition(
        &self,
        token: &Token,
        expected_version: u64,
        request_id: Option<&RequestId>,
        next_state: DecisionState,
        edit: impl Fn(&mut Decision),
    ) -> Result<Decision, ManagerError> {
        for _ in 0..CAS_ATTEMPTS {
            let d = self.load(token).await?;
            if already_applied(&d, request_id, "change") {
                return Ok(d);
            }
            let mut next = d.transition(next_state, expected_version, self.clock.now())?;
            edit(&mut next);
            if let Some(rid) = request_id {
                next.applied_requests.record(rid.clone());
            }
            let stats = stats::decision(Some(&d), &next);
            let event = audit::Draft::decision_change(Some(&d), &next);
            match self
                .store
                .update_decision(d.version, &next, &stats, Some(&event))
                .await?
            {
                Cas::Written => {
                    tracing::info!(%token, state = next.state.as_str(), version = next.version, "decision changed");
                    crate::metrics::decision_written(&next);
                    return Ok(next);
                }
                Cas::Conflict(Some(cur)) if expected_version != 0 => {
                    if let Some(rid) = request_id
                        && cur.applied_requests.contains(rid)
                    {
                        return Ok(cur);
                    }
                    return Err(TransitionError::StaleVersion {
                        token: token.clone(),
                        expected: expected_version,
                        actual: cur.version,
                    }
                    .into());
                }
                Cas::Conflict(_) => continue,
            }
        }
        Err(ManagerError::Contended(format!("decision {token}")))
    }

    /// Replaces the approval policy (hot reload); applies from the next
    /// compare-and-set attempt on.
    pub fn set_approval_policy(&self, policy: ApprovalPolicy) {
        let policy = Arc::new(policy);
        match self.approval.write() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
    }

    fn approval_policy(&self) -> Arc<ApprovalPolicy> {
        match self.approval.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// `who` approves. The approval policy decides whether `who` may, and
    /// how many distinct approvers the decision needs: with one, READY →
    /// EXECUTING and the executor runs (dry-run completes at once); with
    /// two, the first approval is recorded on the decision, which stays
    /// READY (watchers see it), and the second moves it. Each step is one
    /// version compare-and-set, so concurrent approvers on any replicas
    /// each either land on the version they read or retry on the next: the
    /// decision executes exactly once and every approval is recorded.
    /// A retry with the request id of an applied approval returns the
    /// decision as it is and runs nothing again.
    pub async fn approve(
        self: &Arc<Self>,
        token: &Token,
        who: &Principal,
        expected_version: u64,
        request_id: Option<&RequestId>,
    ) -> Result<Decision, ManagerError> {
        // A failed dry run refuses the approval. (A dry run recorded
        // between this read and the compare-and-set does not: the
        // execution then fails the same way, recorded as ERROR.)
        self.ensure_approvable(token).await?;
        let mut d = None;
        for _ in 0..CAS_ATTEMPTS {
            let cur = self.load(token).await?;
            if already_applied(&cur, request_id, "approval") {
                return Ok(cur);
            }
            let policy = self.approval_policy();
            // Four-eyes needs principals that are who they say: without
            // authentication any caller could claim two names, so one
            // anonymous approval executes, as before authentication.
            let required = match who.method {
                AuthMethod::Anonymous => 1,
                _ => policy.required(&cur),
            };
            let mut next = cur.approve(who, required, expected_version, self.clock.now())?;
            if let Some(rid) = request_id {
                next.applied_requests.record(rid.clone());
            }
            // Eligibility after the state checks: a decided decision says
            // so, whoever asks.
            policy
                .may_decide(who, &cur)
                .map_err(ManagerError::NotAllowed)?;
            if self.write(&cur, &next, expected_version).await? {
                d = Some(next);
                break;
            }
        }
        let d = d.ok_or_else(|| ManagerError::Contended(format!("decision {token}")))?;
        if d.state != DecisionState::Executing {
            return Ok(d);
        }
        match self.settings.executor {
            ExecutorKind::External => Ok(d),
            ExecutorKind::Kubernetes | ExecutorKind::Kubectl => {
                self.spawn_execution(&d);
                Ok(d)
            }
            ExecutorKind::DryRun => {
                let line = d
                    .proposal
                    .as_ref()
                    .map(|p| p.command.render())
                    .unwrap_or_default();
                self.complete(token, true, &format!("dry-run: would run `{line}`"), None)
                    .await
            }
        }
    }

    /// One compare-and-set of `next` over `cur`: true when written, false
    /// when another writer won and the caller should re-read; a lost race
    /// against an `expected_version` is reported as stale.
    async fn write(
        &self,
        cur: &Decision,
        next: &Decision,
        expected_version: u64,
    ) -> Result<bool, ManagerError> {
        let stats = stats::decision(Some(cur), next);
        let event = audit::Draft::decision_change(Some(cur), next);
        match self
            .store
            .update_decision(cur.version, next, &stats, Some(&event))
            .await?
        {
            Cas::Written => {
                tracing::info!(token = %next.token, state = next.state.as_str(), version = next.version, approvals = next.approvals.len(), "decision changed");
                Ok(true)
            }
            Cas::Conflict(Some(now)) if expected_version != 0 => {
                Err(TransitionError::StaleVersion {
                    token: next.token.clone(),
                    expected: expected_version,
                    actual: now.version,
                }
                .into())
            }
            Cas::Conflict(_) => Ok(false),
        }
    }

    /// READY → REJECTED by `who`, if the approval policy lets `who` decide
    /// it: one eligible rejection ends a decision, also one awaiting its
    /// second approval.
    pub async fn reject(
        &self,
        token: &Token,
        who: &Principal,
        reason: &str,
        expected_version: u64,
        request_id: Option<&RequestId>,
    ) -> Result<Decision, ManagerError> {
        let now = self.clock.now();
        for _ in 0..CAS_ATTEMPTS {
            let cur = self.load(token).await?;
            if already_applied(&cur, request_id, "rejection") {
                return Ok(cur);
            }
            let mut next = cur.transition(DecisionState::Rejected, expected_version, now)?;
            if let Some(rid) = request_id {
                next.applied_requests.record(rid.clone());
            }
            self.approval_policy()
                .may_decide(who, &cur)
                .map_err(ManagerError::NotAllowed)?;
            next.decided_by = who.subject.clone();
            next.decided_by_method = Some(who.method);
            next.decided_at = Some(now);
            next.reason = reason.to_owned();
            if self.write(&cur, &next, expected_version).await? {
                return Ok(next);
            }
        }
        Err(ManagerError::Contended(format!("decision {token}")))
    }

    /// EXECUTING → COMPLETED (success) or ERROR.
    pub async fn complete(
        &self,
        token: &Token,
        success: bool,
        output: &str,
        request_id: Option<&RequestId>,
    ) -> Result<Decision, ManagerError> {
        self.complete_at(token, 0, success, output, request_id)
            .await
    }

    /// [`Self::complete`] on `expected_version` (0: whatever is current).
    pub(super) async fn complete_at(
        &self,
        token: &Token,
        expected_version: u64,
        success: bool,
        output: &str,
        request_id: Option<&RequestId>,
    ) -> Result<Decision, ManagerError> {
        let now = self.clock.now();
        let next = if success {
            DecisionState::Completed
        } else {
            DecisionState::Error
        };
        self.transition(token, expected_version, request_id, next, |d| {
            d.output = output.to_owned();
            d.completed_at = Some(now);
            if !success {
                d.error = "execution failed".to_owned();
            }
        })
        .await
    }
}

/// Whether `d` already carries `request_id`: the call is a retry of a
/// `what` (change, approval, rejection) that was applied, and gets the
/// decision as it is, before any state or version check could refuse it.
fn already_applied(d: &Decision, request_id: Option<&RequestId>, what: &str) -> bool {
    let Some(rid) = request_id.filter(|r| d.applied_requests.contains(r)) else {
        return false;
    };
    tracing::info!(token = %d.token, request_id = rid.as_str(), "retried {what}: already applied");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::domain::Proposal;
    use crate::store::{MemoryStore, Retention};
    use tokio::sync::Notify;

    /// An analyzer that answers (the expert's proposal, marked) only once
    /// released: an analysis in flight for as long as a test needs.
    struct Gated {
        expert: ExpertEngine,
        release: Arc<Notify>,
    }

    #[async_trait::async_trait]
    impl Analyzer for Gated {
        async fn analyze(&self, incident: &Incident, _: DecisionMode, _: Instant) -> Proposal {
            self.release.notified().await;
            let mut p = self.expert.propose(incident);
            p.matched_rule = "gated".into();
            p
        }
    }

    fn manager(store: &Arc<dyn Store>, analyzer: Arc<dyn Analyzer>) -> Arc<DecisionManager> {
        Arc::new(DecisionManager::new(
            store.clone(),
            Arc::new(ExpertEngine::builtin()),
            analyzer,
            Arc::new(SystemClock),
            DecisionSettings {
                token_ttl: Duration::from_secs(3600),
                default_timeout: Duration::from_secs(60),
                executor: ExecutorKind::External,
                history_len: 10,
            },
            CancellationToken::new(),
        ))
    }

    async fn incident(store: &Arc<dyn Store>) -> IncidentId {
        let now = chrono::Utc::now();
        let incident = crate::domain::incident::fixture::incident()
            .services(&["web"])
            .at(now)
            .build();
        store
            .create_incident(&incident, None, &crate::stats::StatDelta::default(), None)
            .await
            .unwrap();
        incident.id
    }

    /// Two replicas over one store: `owner` analyses (gated), `waiter`
    /// joins, fed by the change feed as the server wires it.
    async fn replicas() -> (
        Arc<dyn Store>,
        Arc<Notify>,
        Arc<DecisionManager>,
        Arc<DecisionManager>,
    ) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(Retention::default()));
        let release = Arc::new(Notify::new());
        let gated = Arc::new(Gated {
            expert: ExpertEngine::builtin(),
            release: release.clone(),
        });
        let owner = manager(&store, gated);
        let waiter = manager(&store, Arc::new(ExpertEngine::builtin()));
        let sink_waiter = waiter.clone();
        let feed = store
            .follow_changes(
                Arc::new(move |change| {
                    if let crate::store::Change::Decision(d) = change {
                        sink_waiter.observe(&d)
                    }
                }),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        tokio::spawn(feed);
        (store, release, owner, waiter)
    }

    #[tokio::test]
    async fn a_caller_joined_to_another_replicas_analysis_is_woken_by_the_change_feed() {
        let (store, release, owner, waiter) = replicas().await;
        let id = incident(&store).await;
        let started = owner
            .get_or_create(DecisionRequest::background(id.clone()))
            .await
            .unwrap();
        assert!(started.created);
        let join = tokio::spawn({
            let waiter = waiter.clone();
            async move {
                waiter
                    .get_or_create(DecisionRequest {
                        wait: true,
                        ..DecisionRequest::background(id)
                    })
                    .await
            }
        });
        // Synchronise on the event: the waiter has registered.
        while waiter.waiters.len() == 0 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        // Without the feed it would wait for its 60 s deadline.
        let issued = tokio::time::timeout(Duration::from_secs(30), join)
            .await
            .expect("woken by the change, not by the deadline")
            .unwrap()
            .unwrap();
        assert!(!issued.created);
        assert_eq!(issued.decision.token, started.decision.token);
        assert_eq!(issued.decision.state, DecisionState::Ready);
        let p = issued.decision.proposal.unwrap();
        assert_eq!(
            p.matched_rule, "gated",
            "the owner's answer, not a fallback"
        );
        assert_eq!(waiter.waiters.len(), 0, "the waiter unregistered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_joined_caller_still_answers_at_its_own_deadline() {
        let (store, _release, owner, waiter) = replicas().await;
        let id = incident(&store).await;
        owner
            .get_or_create(DecisionRequest::background(id.clone()))
            .await
            .unwrap();
        let begun = Instant::now();
        let timeout = Duration::from_secs(1);
        let issued = waiter
            .get_or_create(DecisionRequest {
                wait: true,
                timeout: Some(timeout),
                ..DecisionRequest::background(id)
            })
            .await
            .unwrap();
        assert!(begun.elapsed() <= timeout, "answered by the deadline");
        assert_eq!(issued.decision.state, DecisionState::Ready);
        let p = issued.decision.proposal.unwrap();
        assert_eq!(p.fallback_reason, Some(FallbackReason::Timeout));
        assert_eq!(waiter.waiters.len(), 0);
    }
}

//! The one ingestion path behind `IngestSignals` and the Alertmanager
//! webhook: validated signals in, incidents opened, updated or resolved.
//!
//! Each group of alerts is handled on its own, atomically: the incident's
//! new version is written with the store's compare-and-set (a lost race
//! re-reads and re-applies), and a new incident gets an id derived from
//! the group and its previous incident, so replicas racing to open the same
//! group's incident pick the same id and exactly one creates it. Nothing is
//! written when nothing changes, which makes a replayed webhook a no-op.

use super::grouping::{Group, Policy};
use super::merge;
use super::settings::IngestConfig;
use crate::audit;
use crate::clock::Clock;
use crate::domain::{Incident, IncidentId, IncidentStatus, Signal, SignalStatus};
use crate::manager::{DecisionManager, DecisionRequest, ManagerError};
use crate::store::{Cas, Created, Store};
use futures::StreamExt;
use std::sync::Arc;

/// Most signals one ingestion call takes (the webhook's alert limit and
/// `IngestSignalsRequest.signals`' documented bound).
pub const MAX_SIGNALS: usize = super::alertmanager::MAX_ALERTS;
/// Groups of one batch handled at once: enough to overlap round trips,
/// few enough that one large batch cannot take the whole pool.
const GROUP_CONCURRENCY: usize = 4;
/// Rounds one group may take: compare-and-set retries plus steps along the
/// group's chain of incidents. Each round makes progress (a write landed
/// elsewhere, or the chain advanced), so this is only reached under
/// pathological contention; the caller then gets a retryable error.
const MAX_ROUNDS: usize = 16;
/// Recorded as the actor of an automatic resolution.
pub const ACTOR: &str = "verdict-ingest";

/// Behaviour switches of the ingestion.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub policy: Policy,
    /// Resolve an incident when every one of its alerts is resolved.
    pub auto_resolve: bool,
    /// Start a decision (no wait) for every incident alerts open.
    pub auto_decide: bool,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings::from(&IngestConfig::default())
    }
}

impl From<&IngestConfig> for IngestSettings {
    fn from(c: &IngestConfig) -> Self {
        IngestSettings {
            policy: Policy::from(c),
            auto_resolve: c.auto_resolve,
            auto_decide: c.auto_decide,
        }
    }
}

/// What happened to one incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Touched {
    /// The incident as it is now.
    pub incident: Incident,
    /// The readable grouping key (`namespace=shop, service=checkout`).
    pub group: String,
    /// This call opened it.
    pub opened: bool,
    /// This call changed it (opening included).
    pub changed: bool,
    /// This call resolved it because every alert was resolved.
    pub auto_resolved: bool,
    /// Alerts this call could not add (the incident holds its maximum).
    pub dropped: usize,
}

/// The outcome of one ingestion call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Every incident the signals were grouped into, in order of first
    /// appearance in the batch.
    pub incidents: Vec<Touched>,
    /// Signals that matched no incident and opened none (resolutions of
    /// alerts verdict never saw firing, or replays of finished ones).
    pub ignored: usize,
}

/// Where one group's chain of incidents stands during an `ingest_group`
/// call.
struct Chain<'g> {
    group: &'g Group,
    /// The group pointer as read: moved forward from here, never back.
    pointer: Option<IncidentId>,
    /// Where the chain continues from, and its incident (None when
    /// missing).
    last_id: Option<IncidentId>,
    last: Option<Incident>,
    /// Set when this call found the group's next incident already
    /// created: by a racing call, or by one that died before starting its
    /// decision. Starting it again is single-flight, so harmless.
    joined_new: bool,
}

/// The outcome of one round of `ingest_group`.
// A return value that lives for one match: boxing `Touched` would only add
// an allocation.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Finished: what happened to the group's incident (None: nothing
    /// matched and nothing opened).
    Done(Option<Touched>),
    /// Progress was made (a lost race re-read, or the chain advanced);
    /// go round again.
    Again,
}

/// Turns alerts into incidents.
pub struct Ingestor {
    store: Arc<dyn Store>,
    decisions: Arc<DecisionManager>,
    clock: Arc<dyn Clock>,
    settings: IngestSettings,
}

impl Ingestor {
    pub fn new(
        store: Arc<dyn Store>,
        decisions: Arc<DecisionManager>,
        clock: Arc<dyn Clock>,
        settings: IngestSettings,
    ) -> Self {
        Ingestor {
            store,
            decisions,
            clock,
            settings,
        }
    }

    /// The server's time, by the clock ingestion runs on: requests check
    /// their alert times against it before anything is ingested.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Ingests validated signals (at most [`MAX_SIGNALS`]). Groups are
    /// independent: when one fails, those before it are stored and the
    /// error is returned; a retry of the whole batch is safe because
    /// ingestion is idempotent.
    pub async fn ingest(&self, signals: Vec<Signal>) -> Result<Report, ManagerError> {
        if signals.len() > MAX_SIGNALS {
            let mut v = crate::domain::Violations::new();
            v.add("signals", format!("at most {MAX_SIGNALS} signals"));
            return Err(v.into());
        }
        let groups = self.settings.policy.split(signals);
        let results: Vec<Result<(Option<Touched>, usize), ManagerError>> =
            futures::stream::iter(groups)
                .map(|(group, signals)| async move {
                    let n = signals.len();
                    self.ingest_group(&group, &signals).await.map(|t| (t, n))
                })
                .buffered(GROUP_CONCURRENCY)
                .collect()
                .await;
        let mut report = Report::default();
        for r in results {
            match r? {
                (Some(t), n) => {
                    crate::metrics::alerts_grouped(n, t.opened, t.changed);
                    report.incidents.push(t)
                }
                (None, n) => report.ignored += n,
            }
        }
        crate::metrics::alerts_ignored(report.ignored);
        Ok(report)
    }

    /// Folds one group's signals into its incident, opening one if the
    /// group has no active incident and something fires. Each round either
    /// finishes or makes progress (a lost compare-and-set re-read, or a step
    /// along the group's chain).
    async fn ingest_group(
        &self,
        group: &Group,
        signals: &[Signal],
    ) -> Result<Option<Touched>, ManagerError> {
        let mut chain = self.read_chain(group).await?;
        for _ in 0..MAX_ROUNDS {
            let active = chain.last.clone().filter(|i| i.status.is_active());
            let step = match active {
                Some(current) => self.merge_into(&mut chain, current, signals).await?,
                None => self.open_next(&mut chain, signals).await?,
            };
            if let Step::Done(touched) = step {
                return Ok(touched);
            }
        }
        Err(ManagerError::Contended(format!(
            "alert group {}",
            group.label
        )))
    }

    /// The group's pointer and the incident it points at.
    async fn read_chain<'g>(&self, group: &'g Group) -> Result<Chain<'g>, ManagerError> {
        let pointer = self.store.group_incident(&group.key).await?;
        let last = match &pointer {
            Some(id) => self.store.get_incident(id).await?,
            None => None,
        };
        Ok(Chain {
            group,
            last_id: pointer.clone(),
            pointer,
            last,
            joined_new: false,
        })
    }

    /// Merges the signals into `current`, the group's active incident, and
    /// writes it with compare-and-set (resolving it when every alert is
    /// resolved). Nothing is written when nothing changes.
    async fn merge_into(
        &self,
        chain: &mut Chain<'_>,
        current: Incident,
        signals: &[Signal],
    ) -> Result<Step, ManagerError> {
        let group = chain.group;
        let mut next = current.clone();
        let applied = merge::apply(&self.settings.policy, &mut next, signals);
        let touched = |incident: Incident, auto_resolved| Touched {
            incident,
            group: group.label.clone(),
            opened: false,
            changed: applied.changed,
            auto_resolved,
            dropped: applied.dropped,
        };
        if !applied.changed {
            self.advance_pointer(group, chain.pointer.as_ref(), &current.id)
                .await?;
            if chain.joined_new && self.settings.auto_decide {
                self.auto_decide(&current.id).await;
            }
            return Ok(Step::Done(Some(touched(current, false))));
        }
        let now = self.clock.now();
        let auto_resolved = self.settings.auto_resolve && merge::all_resolved(&next);
        if auto_resolved {
            // The normal status path: sets resolved_at, bumps the version.
            next.set_status(IncidentStatus::Resolved, now);
            next.status_actor = ACTOR.into();
            next.status_note = "every alert resolved".into();
        } else {
            next.updated_at = now;
            next.version = current.version + 1;
        }
        let stats = crate::stats::record::incident(Some(&current), &next);
        let event =
            audit::Draft::incident_change(audit::Action::SignalsIngested, current.version, &next)
                .detail(format!(
                    "{} alerts now, status {}",
                    next.signals.len(),
                    next.status.as_str()
                ));
        match self
            .store
            .update_incident(current.version, &next, &stats, Some(&event))
            .await?
        {
            Cas::Written => {
                self.advance_pointer(group, chain.pointer.as_ref(), &next.id)
                    .await?;
                tracing::info!(
                    incident = %next.id,
                    group = ?group.label,
                    signals = next.signals.len(),
                    auto_resolved,
                    "alerts merged into incident"
                );
                if applied.dropped > 0 {
                    tracing::warn!(incident = %next.id, dropped = applied.dropped, "incident holds its maximum of alerts; new alerts dropped");
                }
                if chain.joined_new && self.settings.auto_decide && next.status.is_active() {
                    self.auto_decide(&next.id).await;
                }
                Ok(Step::Done(Some(touched(next, auto_resolved))))
            }
            // Someone else changed it: apply again to what is stored.
            Cas::Conflict(stored) => {
                chain.last = stored;
                Ok(Step::Again)
            }
        }
    }

    /// The group has no active incident: opens the next one of its chain
    /// if anything new fires (under the id every replica derives), or joins
    /// it when another call created it first.
    async fn open_next(
        &self,
        chain: &mut Chain<'_>,
        signals: &[Signal],
    ) -> Result<Step, ManagerError> {
        let group = chain.group;
        let fresh = merge::fresh(chain.last.as_ref(), signals);
        if !fresh.iter().any(|s| s.status == SignalStatus::Firing) {
            if let Some(l) = &chain.last {
                self.advance_pointer(group, chain.pointer.as_ref(), &l.id)
                    .await?;
            }
            return Ok(Step::Done(chain.last.take().map(|incident| Touched {
                incident,
                group: group.label.clone(),
                opened: false,
                changed: false,
                auto_resolved: false,
                dropped: 0,
            })));
        }
        let id = group.key.incident_id_after(chain.last_id.as_ref());
        let (incident, applied) =
            merge::open(&self.settings.policy, id.clone(), &fresh, self.clock.now());
        let stats = crate::stats::record::incident(None, &incident);
        let event = audit::Draft::incident_change(audit::Action::IncidentCreated, 0, &incident)
            .detail(format!("opened by {} alerts", incident.signals.len()));
        match self
            .store
            .create_incident(&incident, None, &stats, Some(&event))
            .await?
        {
            Created::New(incident) | Created::Replayed(incident) => {
                self.advance_pointer(group, chain.pointer.as_ref(), &incident.id)
                    .await?;
                tracing::info!(
                    incident = %incident.id,
                    group = ?group.label,
                    severity = incident.severity.as_str(),
                    signals = incident.signals.len(),
                    "alerts opened an incident"
                );
                if self.settings.auto_decide {
                    self.auto_decide(&incident.id).await;
                }
                Ok(Step::Done(Some(Touched {
                    incident,
                    group: group.label.clone(),
                    opened: true,
                    changed: true,
                    auto_resolved: false,
                    dropped: applied.dropped,
                })))
            }
            // Another call (maybe on another replica) opened it first,
            // or a crashed one did before recording it: join it.
            Created::IdTaken => {
                chain.last = self.store.get_incident(&id).await?;
                chain.last_id = Some(id);
                chain.joined_new = true;
                Ok(Step::Again)
            }
        }
    }

    /// Moves the group's pointer forward to `to` when it was read behind
    /// it. Losing that race is fine: whoever won moved it at least as far.
    async fn advance_pointer(
        &self,
        group: &Group,
        read: Option<&IncidentId>,
        to: &IncidentId,
    ) -> Result<(), ManagerError> {
        if read == Some(to) {
            return Ok(());
        }
        self.store.set_group_incident(&group.key, read, to).await?;
        Ok(())
    }

    /// Starts a decision without waiting, so a proposal is ready before a
    /// person looks. A failure is logged, never fails the ingestion: the
    /// incident is stored and anyone can ask for its decision.
    async fn auto_decide(&self, id: &IncidentId) {
        match self
            .decisions
            .get_or_create(DecisionRequest::background(id.clone()))
            .await
        {
            Ok(issued) => {
                tracing::info!(incident = %id, token = %issued.decision.token, "decision started for new incident")
            }
            Err(ManagerError::ShuttingDown) => {}
            Err(e) => {
                tracing::warn!(incident = %id, error = %e, "could not start a decision for the new incident")
            }
        }
    }
}

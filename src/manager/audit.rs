//! The audit trail's application side: recording refused calls, listing
//! events with filters and pages, watching them as they are appended, and
//! verifying the chains. Successful
//! changes need nothing here: their events travel with the writes (see
//! `store/`), built by the managers that make them.

use crate::audit::refusals::{Admit, RefusalLimiter, RefusalLimits, Summary};
use crate::audit::{self, Action, Context, Event, Position, Signer, Verifier, VerifyReport};
use crate::clock::Clock;
use crate::domain::{Principal, Token};
use crate::error_code::ErrorCode;
use crate::manager::ManagerError;
use crate::store::{AuditTail, Store, StoreError};
use futures::stream::BoxStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events read from the store per page asked for, at most, while
/// filtering: a listing with a rare filter returns a short (even empty)
/// page with a cursor rather than scanning the whole trail in one call.
const SCAN_FACTOR: usize = 10;

/// Largest page of a listing.
pub const MAX_PAGE: usize = 1000;

/// Which events a listing returns (every set field must match).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// From this time (ms, inclusive) …
    pub from_ms: Option<u64>,
    /// … to this time (ms, exclusive).
    pub to_ms: Option<u64>,
    pub subject: Option<String>,
    pub incident: Option<String>,
    pub token: Option<String>,
    pub action: Option<Action>,
    /// `OK` or a gRPC code's canonical name.
    pub outcome: Option<String>,
}

impl AuditFilter {
    fn matches(&self, e: &Event) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        eq(&self.subject, Some(&e.subject))
            && eq(&self.incident, e.incident.as_deref())
            && eq(&self.token, e.token.as_deref())
            && eq(&self.outcome, Some(&e.outcome))
            && self.action.is_none_or(|a| a == e.action)
    }
}

/// Events a watch reads from the store per round trip: all a watcher
/// holds at once, since the stream is pulled by the client (a slow client
/// slows its own reads and buffers nothing more).
const WATCH_BATCH: usize = 256;

/// How long one wait of a watch blocks in the store before it waits again
/// (bounds a blocking read, so a lost connection is noticed).
const WATCH_WAIT: Duration = Duration::from_secs(2);

/// Why an audit watch ended.
#[derive(Debug, thiserror::Error)]
pub enum AuditWatchEnd {
    #[error("the server is shutting down; reconnect and resume with after={0}")]
    ShuttingDown(Position),
    #[error("reading the audit trail failed ({error}); reconnect and resume with after={after}")]
    Store {
        after: Position,
        #[source]
        error: StoreError,
    },
}

impl AuditWatchEnd {
    /// What kind of failure this is; the stream's final status derives
    /// from it.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuditWatchEnd::ShuttingDown(_) => ErrorCode::Unavailable,
            AuditWatchEnd::Store { error, .. } => error.code(),
        }
    }
}

/// A page of a listing.
#[derive(Debug, Default)]
pub struct AuditPage {
    pub events: Vec<(Position, Event)>,
    /// Where the next page starts; None at the end of the range.
    pub next: Option<Position>,
}

/// The audit trail over a store. Cheap to clone; clones share the
/// refusal counts, so a replica holds one (`server.rs` builds it once and
/// hands it to the managers).
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Refusals per peer: which are recorded one by one, which only
    /// counted (`audit::refusals`). Locked for a map update only.
    refusals: Arc<Mutex<RefusalLimiter>>,
    limits: RefusalLimits,
}

impl AuditLog {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(store, clock, RefusalLimits::default())
    }

    /// A trail that records refusals within `limits` (see
    /// `audit::refusals`).
    pub fn with_limits(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        limits: RefusalLimits,
    ) -> Self {
        AuditLog {
            store,
            clock,
            refusals: Arc::new(Mutex::new(RefusalLimiter::new(limits))),
            limits,
        }
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, RefusalLimiter> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.clock.now().timestamp_millis().max(0) as u64
    }

    /// Writes the summary events of refusals counted but not recorded.
    async fn summarise(&self, due: Vec<Summary>) -> Result<(), ManagerError> {
        for s in due {
            let draft = audit::Draft {
                context: Context {
                    peer: s.peer.clone(),
                    ..Context::system()
                },
                outcome: s.code.clone(),
                ..audit::Draft::ok(self.now_ms() as i64, Action::RefusalsSummarized)
            }
            .detail(s.detail());
            self.store.append_audit(&draft).await?;
        }
        Ok(())
    }

    /// Writes the summaries of refusal windows as they close, until
    /// `shutdown`; then every count still open (so a flood that ends with
    /// the process is still counted). The replica's one owner of the
    /// summaries; a failed write is logged and its count lost (the
    /// refusals changed nothing).
    pub async fn summarise_refusals(self, shutdown: CancellationToken) {
        if self.limits.burst == 0 {
            return;
        }
        // A summary is written within a quarter window of its close.
        let every =
            (self.limits.window / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => self.limiter().due(self.now_ms()),
            };
            if let Err(e) = self.summarise(due).await {
                tracing::error!(error = %e, "could not record a summary of refusals");
            }
        }
        let rest = self.limiter().drain();
        if let Err(e) = self.summarise(rest).await {
            tracing::error!(error = %e, "could not record a summary of refusals at shutdown");
        }
    }

    /// Records a refused mutating call: who (`principal`), which call
    /// (`rpc`), the gRPC code's canonical name (`code`: `UNAUTHENTICATED`,
    /// `PERMISSION_DENIED`, `FAILED_PRECONDITION`) and a short `detail`.
    /// The hook the API layer calls where it maps a mutating call's error,
    /// and the authentication layer when it turns a caller away. Peer and
    /// request id come from the task's audit context when there is one.
    /// Refusals with no incident go to the global chain.
    pub async fn refused(
        &self,
        principal: &Principal,
        rpc: &str,
        code: &str,
        detail: &str,
    ) -> Result<(), ManagerError> {
        self.refused_on(principal, rpc, code, detail, None).await
    }

    /// [`Self::refused`] for a call about a decision: the refusal joins the
    /// chain of the decision's incident (one read to find it).
    pub async fn refused_on(
        &self,
        principal: &Principal,
        rpc: &str,
        code: &str,
        detail: &str,
        token: Option<&Token>,
    ) -> Result<(), ManagerError> {
        let context = Context {
            principal: principal.clone(),
            rpc: rpc.to_owned(),
            ..Context::current()
        };
        // Unknown callers get the burst; known principals ten times it.
        let known = code != "UNAUTHENTICATED";
        let (admit, due) = self
            .limiter()
            .admit(self.now_ms(), &context.peer, code, known);
        self.summarise(due).await?;
        if admit == Admit::Count {
            crate::metrics::refusal_counted();
            return Ok(());
        }
        let mut draft = audit::Draft {
            context,
            outcome: code.to_owned(),
            ..audit::Draft::ok(self.clock.now().timestamp_millis(), Action::Refused)
        }
        .detail(detail);
        if let Some(t) = token {
            draft = draft.token(t);
            if let Some(d) = self.store.get_decision(t).await? {
                draft = draft.incident(&d.incident_id);
                draft.version_before = Some(d.version);
            }
        }
        self.store.append_audit(&draft).await?;
        tracing::info!(rpc, code, subject = %principal.subject, "refusal recorded");
        Ok(())
    }

    /// Records an act of verdict's own that belongs to no incident (a
    /// configuration reload): principal `system`, on the global chain,
    /// with `outcome` (`OK` or a gRPC code's canonical name).
    pub async fn system_event(
        &self,
        action: Action,
        rpc: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<(), ManagerError> {
        let draft = audit::Draft {
            context: Context {
                rpc: rpc.to_owned(),
                ..Context::system()
            },
            outcome: outcome.to_owned(),
            ..audit::Draft::ok(self.clock.now().timestamp_millis(), action)
        }
        .detail(detail);
        self.store.append_audit(&draft).await?;
        Ok(())
    }

    /// One page of events matching `filter`, oldest first, after `after`.
    pub async fn list(
        &self,
        filter: &AuditFilter,
        after: Option<Position>,
        page: usize,
    ) -> Result<AuditPage, ManagerError> {
        let page = page.clamp(1, MAX_PAGE);
        let mut cursor = match (after, filter.from_ms) {
            (Some(a), _) => Some(a),
            // Positions are append times: start just before `from`.
            (None, Some(ms)) if ms > 0 => Some(Position {
                ms: ms - 1,
                n: u64::MAX,
            }),
            _ => None,
        };
        // An incident's (or a token's) events are read through that
        // chain's index, never by scanning the whole trail.
        let chain = self.chain_of(filter).await?;
        let mut out = AuditPage::default();
        let mut budget = page * SCAN_FACTOR;
        while budget > 0 && out.events.len() < page {
            let batch = match &chain {
                Some(c) => {
                    self.store
                        .audit_chain_events(c, cursor, page.min(budget))
                        .await?
                }
                None => self.store.audit_events(cursor, page.min(budget)).await?,
            };
            let short = batch.len() < page.min(budget);
            budget = budget.saturating_sub(batch.len());
            for (pos, e) in batch {
                cursor = Some(pos);
                if filter.to_ms.is_some_and(|to| pos.ms >= to) {
                    return Ok(out);
                }
                if filter.matches(&e) {
                    out.events.push((pos, e));
                    if out.events.len() == page {
                        break;
                    }
                }
            }
            if short {
                return Ok(out);
            }
        }
        out.next = cursor;
        Ok(out)
    }

    /// The one chain a listing can read instead of the whole trail: the
    /// incident's, or for a token its decision's incident's (one read);
    /// a token no decision has (a refusal naming a made-up token) is in
    /// the chain of events with no incident. None: no such filter.
    async fn chain_of(&self, filter: &AuditFilter) -> Result<Option<String>, ManagerError> {
        if let Some(i) = &filter.incident {
            return Ok(Some(i.clone()));
        }
        let Some(t) = &filter.token else {
            return Ok(None);
        };
        let decision = match Token::parse(t) {
            Ok(token) => self.store.get_decision(&token).await?,
            Err(_) => None,
        };
        Ok(Some(match decision {
            Some(d) => d.incident_id.to_string(),
            None => audit::GLOBAL_CHAIN.to_owned(),
        }))
    }

    /// Every event matching `filter` appended after `after`, oldest first,
    /// for as long as the stream is polled; when `after` is None, from
    /// `filter.from_ms` if set (replaying kept events since), else from
    /// the newest event now. `filter.to_ms` is not used (the caller
    /// refuses it). Ends with [`AuditWatchEnd`] naming the position to
    /// resume after on shutdown or a store failure: resuming from it
    /// misses nothing retention kept.
    pub async fn watch(
        &self,
        filter: AuditFilter,
        after: Option<Position>,
        shutdown: CancellationToken,
    ) -> Result<BoxStream<'static, Result<(Position, Event), AuditWatchEnd>>, ManagerError> {
        let start = match (after, filter.from_ms) {
            (Some(a), _) => a,
            (None, Some(ms)) if ms > 0 => Position {
                ms: ms - 1,
                n: u64::MAX,
            },
            (None, Some(_)) => Position::default(),
            (None, None) => self.store.newest_audit_position().await?,
        };
        let store = self.store.clone();
        Ok(Box::pin(async_stream::stream! {
            let mut tail = AuditTail::new();
            let mut cursor = start;
            loop {
                let read = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => {
                        yield Err(AuditWatchEnd::ShuttingDown(cursor));
                        break;
                    }
                    r = store.wait_audit_events(&mut tail, cursor, WATCH_BATCH, WATCH_WAIT) => r,
                };
                match read {
                    Ok(batch) => {
                        for (pos, e) in batch {
                            cursor = pos;
                            if filter.matches(&e) {
                                yield Ok((pos, e));
                            }
                        }
                    }
                    Err(error) => {
                        yield Err(AuditWatchEnd::Store { after: cursor, error });
                        break;
                    }
                }
            }
        }))
    }

    /// Walks every kept event (or those of one incident's chain) with
    /// `signer`'s key and checks each chain against its stored head.
    pub async fn verify(
        &self,
        signer: Signer,
        incident: Option<&str>,
    ) -> Result<VerifyReport, ManagerError> {
        let mut v = Verifier::new(signer);
        let mut cursor = None;
        let mut chains = std::collections::BTreeSet::new();
        loop {
            let batch = self.store.audit_events(cursor, MAX_PAGE).await?;
            let done = batch.len() < MAX_PAGE;
            for (pos, e) in &batch {
                cursor = Some(*pos);
                if incident.is_none_or(|i| e.chain == i) {
                    chains.insert(e.chain.clone());
                    v.push(e);
                }
            }
            if done {
                break;
            }
        }
        for chain in chains {
            let head = self.store.audit_head(&chain).await?;
            v.expect_head(&chain, head.seq);
        }
        Ok(v.finish())
    }
}

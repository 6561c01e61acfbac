//! The named calls instrumentation points make, one per event, each a
//! line at its call site. Every label value is a `&'static str` (from an
//! enum of ours) or a number from a small known set, so the series are
//! bounded by construction.

use crate::domain::{Decision, DecisionMode, DecisionState, FallbackReason, ProposalSource};
use metrics::{counter, gauge, histogram};
use std::time::Duration;

// ---- names ----

/// gRPC requests finished, by service, method and status code.
pub const GRPC_REQUESTS: &str = "verdict_grpc_requests_total";
/// gRPC request latency, head to trailers (a watch: the stream's life).
pub const GRPC_DURATION: &str = "verdict_grpc_request_duration_seconds";
/// Decisions issued (a token written ANALYZING), by resolved mode.
pub const DECISIONS_ISSUED: &str = "verdict_decisions_issued_total";
/// Decision transitions written, by the state entered, mode and source.
pub const DECISION_TRANSITIONS: &str = "verdict_decision_transitions_total";
/// Analysis latency of proposals written READY, by mode and source.
pub const ANALYSIS_DURATION: &str = "verdict_analysis_duration_seconds";
/// Proposals that fell back to the expert engine, by reason.
pub const FALLBACKS: &str = "verdict_fallbacks_total";
/// LLM chat calls through every layer, by outcome.
pub const LLM_REQUESTS: &str = "verdict_llm_requests_total";
/// LLM chat call latency through every layer (retries included).
pub const LLM_DURATION: &str = "verdict_llm_request_duration_seconds";
/// LLM attempts that reached the transport; minus the calls, the retries.
pub const LLM_ATTEMPTS: &str = "verdict_llm_attempts_total";
/// LLM circuit breaker: 0 closed, 1 half-open, 2 open.
pub const LLM_CIRCUIT: &str = "verdict_llm_circuit_state";
/// Proposal-cache lookups, by result (`hit`, `miss`).
pub const CACHE_LOOKUPS: &str = "verdict_proposal_cache_lookups_total";
/// Watch streams open on this replica.
pub const WATCH_STREAMS: &str = "verdict_watch_streams";
/// From a change reaching this replica's hub to the last of its watchers
/// handing it to HTTP/2: the server's send side of a fan-out, once per
/// change.
pub const WATCH_FANOUT: &str = "verdict_watch_fanout_seconds";
/// Buckets of [`WATCH_FANOUT`]: a fan-out to 10 000 streams takes tens of
/// milliseconds, which the general latency buckets resolve too coarsely to
/// tell 40 ms from 90 ms.
pub const WATCH_FANOUT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.15, 0.2,
    0.3, 0.5, 1.0, 2.5, 5.0,
];
/// Watch streams ended by verdict, by reason (`overflow`, `refused`).
pub const WATCHERS_DROPPED: &str = "verdict_watchers_dropped_total";
/// Alertmanager webhook requests, by HTTP status answered.
pub const WEBHOOK_REQUESTS: &str = "verdict_webhook_requests_total";
/// Alerts ingested, by what they did (`opened`, `merged`, `deduplicated`,
/// `ignored`).
pub const ALERTS_INGESTED: &str = "verdict_alerts_ingested_total";
/// Redis calls (a command, pipeline or script), latency.
pub const REDIS_DURATION: &str = "verdict_redis_call_duration_seconds";
/// Redis calls that failed, by error kind.
pub const REDIS_ERRORS: &str = "verdict_redis_errors_total";
/// Redis pool connections, by state (`open`, `idle`).
pub const REDIS_POOL: &str = "verdict_redis_pool_connections";

/// Chat card messages, by channel (`telegram`, `slack`) and outcome.
pub const NOTIFY_CARDS: &str = "verdict_notify_cards_total";
/// Chat button presses, by channel and outcome.
pub const NOTIFY_PRESSES: &str = "verdict_notify_presses_total";
/// Cards never sent because the incident resolved itself in its grace
/// period.
pub const NOTIFY_SELF_RESOLVED: &str = "verdict_notify_self_resolved_total";

/// Calls refused by authentication or authorization, by reason and code.
pub const AUTH_REFUSALS: &str = "verdict_auth_refusals_total";
/// Failed refreshes of the JWKS URL's keys.
pub const JWKS_REFRESH_FAILURES: &str = "verdict_jwks_refresh_failures_total";
/// Audit events appended by this replica, by outcome.
pub const AUDIT_EVENTS: &str = "verdict_audit_events_total";
/// Audit events that could not be appended (the change they belong to
/// was not made; a refusal's event is lost).
pub const AUDIT_WRITE_FAILURES: &str = "verdict_audit_write_failures_total";
/// Refusals counted into a summary instead of recorded one by one.
pub const AUDIT_REFUSALS_COUNTED: &str = "verdict_audit_refusals_counted_total";
/// Audit events the JSON-lines sink dropped (its queue full or stopped).
pub const AUDIT_SINK_DROPPED: &str = "verdict_audit_sink_dropped_total";

pub(super) const COUNTERS: &[(&str, &str)] = &[
    (
        NOTIFY_CARDS,
        "Chat card messages, by channel and outcome (sent, edited, failed, retried, dead_lettered, rate_limited)",
    ),
    (
        NOTIFY_PRESSES,
        "Chat button presses, by channel and outcome (approved, rejected, refused, stale, error)",
    ),
    (
        NOTIFY_SELF_RESOLVED,
        "Chat cards not sent: the incident resolved itself within its grace period",
    ),
    (
        AUTH_REFUSALS,
        "Calls refused by authentication or authorization, by reason and code",
    ),
    (
        JWKS_REFRESH_FAILURES,
        "Failed refreshes of the JWKS URL's keys (the previous keys stay)",
    ),
    (
        AUDIT_EVENTS,
        "Audit events appended by this replica, by outcome",
    ),
    (
        AUDIT_WRITE_FAILURES,
        "Audit events that could not be appended",
    ),
    (
        AUDIT_REFUSALS_COUNTED,
        "Refusals counted into a summary event instead of recorded one by one",
    ),
    (
        AUDIT_SINK_DROPPED,
        "Audit events the JSON-lines sink dropped (queue full or writer stopped)",
    ),
    (
        GRPC_REQUESTS,
        "gRPC requests finished, by service, method and code",
    ),
    (DECISIONS_ISSUED, "Decisions issued, by mode"),
    (
        DECISION_TRANSITIONS,
        "Decision transitions written, by state entered, mode and proposal source",
    ),
    (
        FALLBACKS,
        "Proposals that fell back to the expert engine, by reason",
    ),
    (LLM_REQUESTS, "LLM chat calls, by outcome"),
    (
        LLM_ATTEMPTS,
        "LLM attempts sent to the transport (attempts minus requests = retries)",
    ),
    (CACHE_LOOKUPS, "Proposal-cache lookups, by result"),
    (
        WATCHERS_DROPPED,
        "Watch streams ended or refused by verdict, by reason",
    ),
    (
        WEBHOOK_REQUESTS,
        "Alertmanager webhook requests, by HTTP status",
    ),
    (ALERTS_INGESTED, "Alerts ingested, by outcome"),
    (REDIS_ERRORS, "Redis calls that failed, by kind"),
];

pub(super) const GAUGES: &[(&str, &str)] = &[
    (
        LLM_CIRCUIT,
        "LLM circuit breaker state: 0 closed, 1 half-open, 2 open",
    ),
    (WATCH_STREAMS, "Watch streams open on this replica"),
    (REDIS_POOL, "Redis pool connections, by state"),
];

pub(super) const HISTOGRAMS: &[(&str, &str)] = &[
    (GRPC_DURATION, "gRPC request latency in seconds"),
    (
        ANALYSIS_DURATION,
        "Analysis latency of proposals written READY, in seconds",
    ),
    (
        LLM_DURATION,
        "LLM chat call latency in seconds, retries included",
    ),
    (REDIS_DURATION, "Redis call latency in seconds"),
    (
        WATCH_FANOUT,
        "From a change reaching this replica to the last of its watchers handing it to HTTP/2, in seconds",
    ),
];

// ---- decisions ----

/// A decision was written: counts the transition, and for READY the
/// analysis latency, the fallback reason and nothing else per token.
/// Called by the manager only after its compare-and-set succeeded, so a
/// lost race or a second replica never counts twice.
pub fn decision_written(d: &Decision) {
    let mode = mode(d.mode);
    let source = d.proposal.as_ref().map_or("none", |p| source(p.source));
    if d.state == DecisionState::Analyzing {
        counter!(DECISIONS_ISSUED, "mode" => mode).increment(1);
    }
    counter!(DECISION_TRANSITIONS, "state" => d.state.as_str(), "mode" => mode, "source" => source)
        .increment(1);
    if let (DecisionState::Ready, Some(p)) = (d.state, &d.proposal) {
        histogram!(ANALYSIS_DURATION, "mode" => mode, "source" => source)
            .record(p.analysis_latency.as_secs_f64());
        if let Some(r) = p.fallback_reason {
            counter!(FALLBACKS, "reason" => reason(r)).increment(1);
        }
    }
}

fn mode(m: DecisionMode) -> &'static str {
    match m {
        DecisionMode::Auto => "AUTO",
        DecisionMode::Dual => "DUAL",
        DecisionMode::Consensus => "CONSENSUS",
    }
}

fn source(s: ProposalSource) -> &'static str {
    match s {
        ProposalSource::Expert => "EXPERT",
        ProposalSource::Llm => "LLM",
        ProposalSource::Consensus => "CONSENSUS",
    }
}

fn reason(r: FallbackReason) -> &'static str {
    match r {
        FallbackReason::Timeout => "TIMEOUT",
        FallbackReason::Error => "ERROR",
        FallbackReason::Invalid => "INVALID",
        FallbackReason::Unsafe => "UNSAFE",
        FallbackReason::CircuitOpen => "CIRCUIT_OPEN",
        FallbackReason::NotConfigured => "NOT_CONFIGURED",
        FallbackReason::Recovered => "RECOVERED",
    }
}

// ---- LLM ----

/// The circuit breaker's state, as the gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// One chat call through every layer finished: `outcome` is `ok` or the
/// error's kind (`timeout`, `connect`, `status`, `protocol`,
/// `circuit_open`, …); the breaker state after it.
pub fn llm_request(outcome: &'static str, elapsed: Duration, circuit: Circuit) {
    counter!(LLM_REQUESTS, "outcome" => outcome).increment(1);
    histogram!(LLM_DURATION, "outcome" => outcome).record(elapsed.as_secs_f64());
    gauge!(LLM_CIRCUIT).set(circuit as u8 as f64);
}

/// One attempt reached the transport (the first or a retry).
pub fn llm_attempt() {
    counter!(LLM_ATTEMPTS).increment(1);
}

// ---- proposal cache ----

/// A proposal-cache lookup: `hit` when a fresh, still-safe proposal came back.
pub fn cache_lookup(hit: bool) {
    counter!(CACHE_LOOKUPS, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

// ---- watch ----

/// The number of watch streams open on this replica now.
pub fn watch_streams(open: usize) {
    gauge!(WATCH_STREAMS).set(open as f64);
}

/// The last watcher of a change took it `took` after the hub received it.
/// Once per change, not per watcher: a histogram sample costs an
/// allocation now and then, which 10 000 watchers would multiply.
pub fn watch_fanout(took: Duration) {
    histogram!(WATCH_FANOUT).record(took.as_secs_f64());
}

/// Why verdict ended or refused a watch stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherDropped {
    /// A `WatchDecisions` watcher fell behind its buffer and was cut off.
    Overflow,
    /// The replica was at `max_watchers`.
    Refused,
}

/// A watch stream was ended or refused by verdict.
pub fn watcher_dropped(why: WatcherDropped) {
    let reason = match why {
        WatcherDropped::Overflow => "overflow",
        WatcherDropped::Refused => "refused",
    };
    counter!(WATCHERS_DROPPED, "reason" => reason).increment(1);
}

// ---- ingestion ----

/// A webhook request was answered with HTTP `status` (a status verdict
/// itself chose: a small set).
pub fn webhook_request(status: u16) {
    counter!(WEBHOOK_REQUESTS, "status" => status.to_string()).increment(1);
}

/// A group of `alerts` was folded into an incident: `opened` a new one,
/// `changed` an existing one (merged) or neither (a replay: deduplicated).
pub fn alerts_grouped(alerts: usize, opened: bool, changed: bool) {
    let outcome = match (opened, changed) {
        (true, _) => "opened",
        (false, true) => "merged",
        (false, false) => "deduplicated",
    };
    counter!(ALERTS_INGESTED, "outcome" => outcome).increment(alerts as u64);
}

/// Alerts that matched no incident and opened none.
pub fn alerts_ignored(alerts: usize) {
    if alerts > 0 {
        counter!(ALERTS_INGESTED, "outcome" => "ignored").increment(alerts as u64);
    }
}

// ---- chat notifier ----

/// The chat network of a card or press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatChannel {
    Telegram,
    Slack,
}

impl ChatChannel {
    fn label(self) -> &'static str {
        match self {
            ChatChannel::Telegram => "telegram",
            ChatChannel::Slack => "slack",
        }
    }
}

/// What happened to a card (one message, or for the job-level outcomes
/// one pass over a decision's cards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardOutcome {
    /// A card message was posted.
    Sent,
    /// A card message was edited to a new state.
    Edited,
    /// A pass failed (API down, refused, store error).
    Failed,
    /// A failed pass was scheduled again.
    Retried,
    /// A pass failed for the last allowed time: the job is dropped.
    DeadLettered,
    /// A pass was held by a rate limit (a 429, or this replica's pacing).
    RateLimited,
}

/// A card outcome in `channel`.
pub fn notify_card(channel: ChatChannel, outcome: CardOutcome) {
    let outcome = match outcome {
        CardOutcome::Sent => "sent",
        CardOutcome::Edited => "edited",
        CardOutcome::Failed => "failed",
        CardOutcome::Retried => "retried",
        CardOutcome::DeadLettered => "dead_lettered",
        CardOutcome::RateLimited => "rate_limited",
    };
    counter!(NOTIFY_CARDS, "channel" => channel.label(), "outcome" => outcome).increment(1);
}

/// How a button press ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressOutcome {
    Approved,
    Rejected,
    /// Not allowed: unmapped user, no approver role, the approval policy,
    /// the wrong chat.
    Refused,
    /// The card was outdated: the decision changed, expired, or the
    /// button is gone.
    Stale,
    /// verdict could not apply it (store unavailable); the user may retry.
    Error,
}

/// A button press in `channel` ended with `outcome`.
pub fn notify_press(channel: ChatChannel, outcome: PressOutcome) {
    let outcome = match outcome {
        PressOutcome::Approved => "approved",
        PressOutcome::Rejected => "rejected",
        PressOutcome::Refused => "refused",
        PressOutcome::Stale => "stale",
        PressOutcome::Error => "error",
    };
    counter!(NOTIFY_PRESSES, "channel" => channel.label(), "outcome" => outcome).increment(1);
}

/// A card was not sent: its incident resolved itself in the grace period.
pub fn notify_self_resolved() {
    counter!(NOTIFY_SELF_RESOLVED).increment(1);
}

// ---- authentication and audit ----

/// A call was refused before any handler: `reason` from the
/// authenticator's fixed set (`no_credentials`, `malformed`,
/// `bad_credentials`, `missing_role`), `code` `UNAUTHENTICATED` or
/// `PERMISSION_DENIED`.
pub fn auth_refused(reason: &'static str, code: &'static str) {
    counter!(AUTH_REFUSALS, "reason" => reason, "code" => code).increment(1);
}

/// A refresh of the JWKS URL's keys failed (network, status, size, not a
/// JWKS); the previous keys stay in force.
pub fn jwks_refresh_failed() {
    counter!(JWKS_REFRESH_FAILURES).increment(1);
}

/// An audit event was appended with `outcome` (`OK` or a gRPC code's
/// canonical name; anything else is counted as `other`).
pub fn audit_event_written(outcome: &str) {
    const KNOWN: [&str; 6] = [
        "OK",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "FAILED_PRECONDITION",
        "INVALID_ARGUMENT",
        "ABORTED",
    ];
    let label = KNOWN.into_iter().find(|k| *k == outcome).unwrap_or("other");
    counter!(AUDIT_EVENTS, "outcome" => label).increment(1);
}

/// An audit event could not be appended.
pub fn audit_write_failed() {
    counter!(AUDIT_WRITE_FAILURES).increment(1);
}

/// The JSON-lines sink dropped an event (the trail still holds it).
pub fn audit_sink_dropped() {
    counter!(AUDIT_SINK_DROPPED).increment(1);
}

/// A refusal was counted into a summary rather than recorded alone.
pub fn refusal_counted() {
    counter!(AUDIT_REFUSALS_COUNTED).increment(1);
}

// ---- Redis ----

/// The handles every Redis call updates, taken once (the recorder is
/// installed before the store is built).
struct RedisHandles {
    latency: metrics::Histogram,
    open: metrics::Gauge,
    idle: metrics::Gauge,
}

static REDIS: std::sync::LazyLock<RedisHandles> = std::sync::LazyLock::new(|| RedisHandles {
    latency: histogram!(REDIS_DURATION),
    open: gauge!(REDIS_POOL, "state" => "open"),
    idle: gauge!(REDIS_POOL, "state" => "idle"),
});

/// One Redis call (command, pipeline or script) finished; `error` is the
/// failure's kind when it failed. `open`/`idle`: the pool after it.
pub fn redis_call(elapsed: Duration, error: Option<&'static str>, open: u32, idle: u32) {
    let h = &*REDIS;
    h.latency.record(elapsed.as_secs_f64());
    if let Some(kind) = error {
        counter!(REDIS_ERRORS, "kind" => kind).increment(1);
    }
    h.open.set(open as f64);
    h.idle.set(idle as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for (name, _) in COUNTERS {
            assert!(
                name.starts_with("verdict_") && name.ends_with("_total"),
                "{name}"
            );
        }
        for (name, _) in HISTOGRAMS {
            assert!(
                name.starts_with("verdict_") && name.ends_with("_seconds"),
                "{name}"
            );
        }
        for (name, _) in GAUGES {
            assert!(
                name.starts_with("verdict_") && !name.ends_with("_total"),
                "{name}"
            );
        }
    }
}

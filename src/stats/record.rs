//! From a change (old record → new record) to the statistics it adds. Pure
//! functions of the two records: the managers call them right before the
//! compare-and-set that makes the change, and the store applies the result
//! only if that compare-and-set succeeds.
//!
//! When things are counted:
//! - an incident at its creation, in the hour it was created: by severity,
//!   the status it starts in, once per affected service; and in the status
//!   gauge;
//! - a status change at the time it is made (`updated_at`): the status
//!   entered, and the gauge moves;
//! - a resolution whenever `resolved_at` becomes set (RESOLVED, or CLOSED
//!   without being resolved first), in the hour of `resolved_at`: its
//!   resolution time `resolved_at − created_at` in the severity's sketch.
//!   `resolved_at` never moves while it is set (`Incident::set_status`),
//!   so a CLOSED incident marked RESOLVED again is no new resolution, and
//!   a reopened one (which clears it) resolved again is one;
//! - a decision's events in the hour the decision was **issued** (its
//!   `created_at`), so the rates of a range (approved / proposed, ...) are
//!   about one cohort of decisions and never exceed 1.

use super::bucket::Bucket;
use super::delta::StatDelta;
use super::series::{SCORE_SCALE, Series, Source, field, reason_name};
use super::sketch::Mapping;
use crate::domain::{
    Decision, DecisionMode, DecisionState, FallbackReason, Incident, ProposalSource,
    VerificationState,
};
use std::collections::BTreeSet;

/// The statistics of an incident write: its creation (`old` = `None`) or a
/// change from `old` to `new`.
pub fn incident(old: Option<&Incident>, new: &Incident) -> StatDelta {
    let mut d = StatDelta::none();
    match old {
        None => {
            let at = Bucket::both_of(new.created_at);
            d.count(at, &Series::Incidents, &field::created(new.severity), 1);
            d.count(at, &Series::Incidents, &field::entered(new.status), 1);
            // Once per service, however often the incident lists it.
            let services: BTreeSet<&str> =
                new.affected_services.iter().map(|s| s.as_str()).collect();
            for s in services {
                d.rank(at, &Series::Services, s, 1);
            }
            d.gauge(new.status.as_str(), 1);
        }
        Some(old) => {
            if old.status != new.status {
                let at = Bucket::both_of(new.updated_at);
                d.count(at, &Series::Incidents, &field::entered(new.status), 1);
                d.gauge(old.status.as_str(), -1);
                d.gauge(new.status.as_str(), 1);
            }
        }
    }
    let was_resolved = old.is_some_and(|o| o.resolved_at.is_some());
    if let (false, Some(resolved_at)) = (was_resolved, new.resolved_at) {
        let ms = (resolved_at - new.created_at).num_milliseconds().max(0);
        let at = Bucket::both_of(resolved_at);
        d.count(at, &Series::Incidents, &field::resolved(new.severity), 1);
        d.count(
            at,
            &Series::Incidents,
            &field::resolved_ms(new.severity),
            ms,
        );
        let index = Mapping::resolution().index(ms as u64);
        d.bin(at, &Series::Resolution(new.severity), index);
    }
    d
}

/// The statistics of a decision write: its creation (`old` = `None`) or a
/// transition from `old` to `new`.
pub fn decision(old: Option<&Decision>, new: &Decision) -> StatDelta {
    let mut d = StatDelta::none();
    let at = Bucket::both_of(new.created_at);
    let from = old.map(|o| o.state);
    if from.is_none() {
        d.count(at, &Series::Decisions, field::ISSUED, 1);
    }
    if from == Some(new.state) {
        return d;
    }
    let source = new.proposal.as_ref().map(Source::of);
    let by_source = |d: &mut StatDelta, prefix: &str| {
        if let Some(s) = &source {
            d.count(at, &Series::Decisions, &field::by_source(prefix, s), 1);
        }
    };
    match new.state {
        DecisionState::Ready => {
            let (Some(p), Some(source)) = (&new.proposal, &source) else {
                return d;
            };
            by_source(&mut d, field::PROPOSALS);
            let micros = u64::try_from(p.analysis_latency.as_micros()).unwrap_or(u64::MAX);
            let index = Mapping::latency().index(micros);
            d.bin(at, &Series::Latency(source.clone()), index);
            if let Some(r) = p.fallback_reason {
                let f = format!("{}{}", field::FALLBACK, reason_name(r));
                d.count(at, &Series::Decisions, &f, 1);
            }
            if p.from_cache {
                d.count(at, &Series::Decisions, field::CACHE_HITS, 1);
            }
            if new.mode != DecisionMode::Consensus {
                match (p.source, p.fallback_reason) {
                    (ProposalSource::Llm, _) => {
                        d.count(at, &Series::Decisions, field::LLM_WON, 1);
                    }
                    (ProposalSource::Expert, Some(r)) if llm_lost(r) => {
                        d.count(at, &Series::Decisions, field::LLM_LOST, 1);
                    }
                    _ => {}
                }
            }
            if let Some(c) = &p.consensus {
                let score = (c.score.clamp(0.0, 1.0) * SCORE_SCALE).round() as i64;
                d.count(at, &Series::Decisions, field::CONSENSUS, 1);
                d.count(at, &Series::Decisions, field::CONSENSUS_SCORE, score);
            }
        }
        DecisionState::Executing => by_source(&mut d, field::APPROVED),
        DecisionState::Rejected => by_source(&mut d, field::REJECTED),
        DecisionState::Completed => {
            by_source(&mut d, field::SUCCEEDED);
            match new.verification.as_ref().map(|v| v.state) {
                Some(VerificationState::Verified) => by_source(&mut d, field::VERIFIED),
                Some(VerificationState::Failed) => by_source(&mut d, field::NOT_VERIFIED),
                Some(VerificationState::Pending) | None => {}
            }
        }
        DecisionState::Error if from == Some(DecisionState::Executing) => {
            by_source(&mut d, field::FAILED)
        }
        DecisionState::Init | DecisionState::Analyzing | DecisionState::Error => {}
    }
    d
}

/// Whether an expert proposal used for this reason means an LLM was asked
/// and lost. Not when none is configured, nor when the replica running the
/// analysis died (nobody knows what the LLM would have said).
fn llm_lost(r: FallbackReason) -> bool {
    matches!(
        r,
        FallbackReason::Timeout
            | FallbackReason::Error
            | FallbackReason::Invalid
            | FallbackReason::Unsafe
            | FallbackReason::CircuitOpen
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IncidentId, IncidentStatus, Proposal, Severity};
    use crate::stats::delta::{Action, Target};
    use chrono::{DateTime, TimeZone, Utc};

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 11, 25, h, m, 0).unwrap()
    }

    fn open_incident() -> Incident {
        crate::domain::incident::fixture::incident()
            .severity(Severity::P1)
            .services(&["checkout", "cart", "checkout"])
            .at(t(10, 5))
            .build()
    }

    fn counts(d: &StatDelta) -> Vec<(String, String, i64)> {
        d.ops()
            .iter()
            .filter_map(|op| match (&op.target, &op.action) {
                (Target::Bucket(b, _), Action::Count { field, by }) => {
                    Some((b.label(), field.clone(), *by))
                }
                (Target::StatusGauge, Action::Count { field, by }) => {
                    Some(("gauge".into(), field.clone(), *by))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn creation_counts_severity_status_services_once_each() {
        let i = open_incident();
        let d = incident(None, &i);
        let c = counts(&d);
        assert!(c.contains(&("2025-11-25T10".into(), "new:P1".into(), 1)));
        assert!(c.contains(&("2025-11-25".into(), "new:P1".into(), 1)));
        assert!(c.contains(&("2025-11-25T10".into(), "to:OPEN".into(), 1)));
        assert!(c.contains(&("gauge".into(), "OPEN".into(), 1)));
        let ranks = d
            .ops()
            .iter()
            .filter(|op| matches!(op.action, Action::Rank { .. }))
            .count();
        assert_eq!(ranks, 4, "two distinct services, hour and day");
        assert_eq!(d.touched().len(), 4, "incidents and services, hour and day");
    }

    #[test]
    fn resolving_records_the_resolution_time_once() {
        let old = open_incident();
        let mut new = old.clone();
        new.set_status(IncidentStatus::Resolved, t(12, 5));
        let d = incident(Some(&old), &new);
        let c = counts(&d);
        assert!(c.contains(&("2025-11-25T12".into(), "to:RESOLVED".into(), 1)));
        assert!(c.contains(&("2025-11-25T12".into(), "res:ms:P1".into(), 7_200_000)));
        assert!(c.contains(&("gauge".into(), "OPEN".into(), -1)));
        assert!(c.contains(&("gauge".into(), "RESOLVED".into(), 1)));
        let bins: Vec<_> = d
            .ops()
            .iter()
            .filter_map(|op| match op.action {
                Action::Bin { index, .. } => Some(index),
                _ => None,
            })
            .collect();
        assert_eq!(bins.len(), 2);
        assert_eq!(bins[0], Mapping::resolution().index(7_200_000));
        // Closing a resolved incident is a status change, not a resolution.
        let mut closed = new.clone();
        closed.set_status(IncidentStatus::Closed, t(13, 0));
        let c = counts(&incident(Some(&new), &closed));
        assert!(!c.iter().any(|(_, f, _)| f.starts_with("res:")));
        assert!(c.contains(&("2025-11-25T13".into(), "to:CLOSED".into(), 1)));
        // An unchanged status counts nothing.
        assert!(incident(Some(&new), &new).is_empty());
        // Back from CLOSED to RESOLVED: a status change; the resolution
        // and its time stay those of the first.
        let mut again = closed.clone();
        again.set_status(IncidentStatus::Resolved, t(14, 0));
        assert_eq!(again.resolved_at, new.resolved_at);
        let c = counts(&incident(Some(&closed), &again));
        assert!(!c.iter().any(|(_, f, _)| f.starts_with("res:")), "{c:?}");
        // Reopened, then resolved again: a second resolution, timed anew.
        let mut reopened = again.clone();
        reopened.set_status(IncidentStatus::Open, t(15, 0));
        let mut twice = reopened.clone();
        twice.set_status(IncidentStatus::Resolved, t(16, 5));
        let c = counts(&incident(Some(&reopened), &twice));
        assert!(c.contains(&("2025-11-25T16".into(), "res:ms:P1".into(), 21_600_000)));
    }

    fn proposal(source: ProposalSource, reason: Option<FallbackReason>) -> Proposal {
        Proposal {
            source,
            provider: "OpenAI!".into(),
            confidence: 0.9,
            from_cache: true,
            analysis_latency: std::time::Duration::from_millis(1500),
            fallback_reason: reason,
            ..crate::domain::proposal::fixture::proposal()
        }
    }

    #[test]
    fn a_decision_counts_in_the_hour_it_was_issued() {
        let analyzing = Decision::start(
            IncidentId::generate(),
            DecisionMode::Auto,
            t(9, 59),
            chrono::Duration::hours(1),
            t(10, 0),
        );
        let c = counts(&decision(None, &analyzing));
        assert_eq!(c[0], ("2025-11-25T09".into(), "issued".into(), 1));
        let mut ready = analyzing
            .transition(DecisionState::Ready, 0, t(10, 1))
            .unwrap();
        ready.proposal = Some(proposal(ProposalSource::Llm, None));
        let c = counts(&decision(Some(&analyzing), &ready));
        for f in ["prop:llm:openai", "cache:hit", "llm:won"] {
            assert!(
                c.contains(&("2025-11-25T09".into(), f.into(), 1)),
                "{f}: {c:?}"
            );
        }
        let approved = ready
            .transition(DecisionState::Executing, 0, t(10, 2))
            .unwrap();
        let c = counts(&decision(Some(&ready), &approved));
        assert_eq!(
            c,
            vec![
                ("2025-11-25T09".into(), "appr:llm:openai".into(), 1),
                ("2025-11-25".into(), "appr:llm:openai".into(), 1)
            ]
        );
        let failed = approved
            .transition(DecisionState::Error, 0, t(10, 3))
            .unwrap();
        let c = counts(&decision(Some(&approved), &failed));
        assert_eq!(c[0].1, "fail:llm:openai");

        // A completion counts as a success, and by its verification.
        let verification = |state| crate::domain::Verification {
            state,
            summary: String::new(),
            until: t(10, 13),
            at: t(10, 3),
        };
        let mut pending = approved.clone();
        pending.version += 1;
        pending.verification = Some(verification(VerificationState::Pending));
        assert!(
            counts(&decision(Some(&approved), &pending)).is_empty(),
            "PENDING keeps the decision EXECUTING: nothing to count"
        );
        for (state, field) in [
            (VerificationState::Verified, "verified:llm:openai"),
            (VerificationState::Failed, "unverified:llm:openai"),
        ] {
            let mut done = pending
                .transition(DecisionState::Completed, 0, t(10, 4))
                .unwrap();
            done.verification = Some(verification(state));
            let c = counts(&decision(Some(&pending), &done));
            let fields: BTreeSet<_> = c.iter().map(|(_, f, _)| f.as_str()).collect();
            assert_eq!(fields, BTreeSet::from(["ok:llm:openai", field]), "{c:?}");
        }
    }

    #[test]
    fn expert_fallbacks_count_as_lost_contests_only_when_an_llm_was_asked() {
        let a = Decision::start(
            IncidentId::generate(),
            DecisionMode::Dual,
            t(9, 0),
            chrono::Duration::hours(1),
            t(9, 1),
        );
        for (reason, lost) in [
            (FallbackReason::Timeout, true),
            (FallbackReason::Unsafe, true),
            (FallbackReason::NotConfigured, false),
            (FallbackReason::Recovered, false),
        ] {
            let mut r = a.transition(DecisionState::Ready, 0, t(9, 0)).unwrap();
            r.proposal = Some(proposal(ProposalSource::Expert, Some(reason)));
            let c = counts(&decision(Some(&a), &r));
            assert_eq!(
                c.iter().any(|(_, f, _)| f == "llm:lost"),
                lost,
                "{reason:?}"
            );
            let fb = format!("fb:{}", reason_name(reason));
            assert!(c.iter().any(|(_, f, _)| *f == fb));
        }
    }
}

//! StatsService through the real server, against a real Redis and (where
//! cheap) the memory store: accuracy of the percentiles against exact
//! values, exact counts, range bucketing, exactly-once counting across
//! retries and replicas, deterministic rankings, retention, and the cost of
//! a query being independent of the number of incidents.
//!
//! Times are set with a manual clock, never by sleeping. They stay within
//! a few days of the real now, because Redis expires statistics buckets by
//! its own clock.

use crate::common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::{IncidentBuilder, RedisServer, TestServer, config, violations};
// Used only by the bench-seeded test below.
#[cfg(feature = "bench")]
use common::{command_counts, reset_command_counts};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;
use tonic::Code;
use tonic::transport::Channel;
use verdict::clock::ManualClock;
use verdict::config::Config;
use verdict::proto::stats_service_client::StatsServiceClient;
use verdict::proto::{
    ApproveDecisionRequest, CompleteDecisionRequest, CreateIncidentRequest,
    GetAffectedServicesRequest, GetAiPerformanceRequest, GetIncidentSummaryRequest,
    GetOrCreateDecisionRequest, GetResolutionStatsRequest, Incident, IncidentStatus, Severity,
    TimeRange, UpdateIncidentStatusRequest,
};

// ---- helpers --------------------------------------------------------------

fn stats(s: &TestServer) -> StatsServiceClient<Channel> {
    StatsServiceClient::new(s.channel.clone())
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).expect("truncate")
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<TimeRange> {
    Some(TimeRange {
        from: Some(ts(from)),
        to: Some(ts(to)),
        ..Default::default()
    })
}

fn all_time() -> Option<TimeRange> {
    Some(TimeRange {
        all_time: true,
        ..Default::default()
    })
}

fn incident(severity: Severity, services: &[&str]) -> CreateIncidentRequest {
    IncidentBuilder::new()
        .title("stats test")
        .severity(severity)
        .services(services)
        .request()
}

fn set_status(id: &str, status: IncidentStatus) -> UpdateIncidentStatusRequest {
    UpdateIncidentStatusRequest {
        request_id: String::new(),
        id: id.into(),
        status: status as i32,
        actor: "test".into(),
        note: String::new(),
    }
}

async fn create(s: &mut TestServer, req: CreateIncidentRequest) -> Incident {
    s.incidents
        .create_incident(req)
        .await
        .expect("create")
        .into_inner()
        .incident
        .expect("incident")
}

async fn summary(
    c: &mut StatsServiceClient<Channel>,
    range: Option<TimeRange>,
) -> verdict::proto::GetIncidentSummaryResponse {
    c.get_incident_summary(GetIncidentSummaryRequest { range })
        .await
        .expect("summary")
        .into_inner()
}

async fn created_in(c: &mut StatsServiceClient<Channel>, range: Option<TimeRange>) -> u64 {
    summary(c, range).await.created
}

fn to_dt(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("timestamp");
    DateTime::from_timestamp(t.seconds, t.nanos as u32).expect("valid")
}

fn ms(d: &Option<prost_types::Duration>) -> f64 {
    let d = d.as_ref().expect("duration");
    d.seconds as f64 * 1_000.0 + d.nanos as f64 / 1_000_000.0
}

/// Nearest-rank quantile of sorted values: the definition the sketch uses.
fn exact(sorted: &[i64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1] as f64
}

fn status_count(list: &[verdict::proto::StatusCount], s: IncidentStatus) -> u64 {
    list.iter()
        .find(|c| c.status == s as i32)
        .map(|c| c.count)
        .unwrap_or(0)
}

fn assert_within_1pct(what: &str, got_ms: f64, want_ms: f64) {
    let err = (got_ms - want_ms).abs();
    assert!(
        err <= want_ms * 0.01 + 1e-6,
        "{what}: got {got_ms} ms, exact {want_ms} ms ({:.4} %)",
        100.0 * err / want_ms
    );
}

// ---- 10 000 resolution times --------------------------------------------

const SEVERITIES: [Severity; 5] = [
    Severity::P0,
    Severity::P1,
    Severity::P2,
    Severity::P3,
    Severity::P4,
];

/// 100 creation times × 100 resolution times = 10 000 incidents with known,
/// distinct resolution times spread log-uniformly from a minute to two
/// days. All incidents created at one time are created concurrently, and
/// all resolved at one time are resolved concurrently, so the clock moves
/// only 200 times.
async fn resolution_percentiles_are_within_one_percent(config: Config) {
    const ROWS: usize = 100;
    const COLS: usize = 100;
    let start = hour_floor(Utc::now()) - Duration::days(5);
    let clock = Arc::new(ManualClock::new(start));
    let s = TestServer::start_with(config, Some(clock.clone())).await;

    let mut ids: Vec<Vec<String>> = vec![Vec::new(); ROWS];
    for (i, row) in ids.iter_mut().enumerate() {
        if i > 0 {
            clock.advance(Duration::milliseconds(97_123));
        }
        let severity = SEVERITIES[i % 5];
        let mut calls = JoinSet::new();
        for j in 0..COLS {
            let mut c = s.incidents.clone();
            calls.spawn(async move {
                let r = c.create_incident(incident(severity, &["checkout"])).await;
                (
                    j,
                    r.expect("create")
                        .into_inner()
                        .incident
                        .expect("incident")
                        .id,
                )
            });
        }
        let mut made: Vec<(usize, String)> = calls.join_all().await;
        made.sort();
        row.extend(made.into_iter().map(|(_, id)| id));
    }

    // Resolution offsets after the last creation, log-uniform (a
    // golden-ratio sequence: deterministic and well spread).
    let (lo, hi) = (60_000f64.ln(), 172_800_000f64.ln());
    let mut offsets: Vec<i64> = (0..COLS)
        .map(|j| {
            let u = (j as f64 * 0.618_033_988_75 + 0.1).fract();
            (lo + u * (hi - lo)).exp() as i64
        })
        .collect();
    offsets.sort_unstable();
    let mut exact_ms: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut at = 0;
    for (j, off) in offsets.iter().enumerate() {
        clock.advance(Duration::milliseconds(off - at));
        at = *off;
        let mut calls = JoinSet::new();
        for row in &ids {
            let mut c = s.incidents.clone();
            let id = row[j].clone();
            calls.spawn(async move {
                c.update_incident_status(set_status(&id, IncidentStatus::Resolved))
                    .await
                    .expect("resolve")
                    .into_inner()
                    .incident
                    .expect("incident")
            });
        }
        for i in calls.join_all().await {
            let took = to_dt(&i.resolved_at) - to_dt(&i.created_at);
            exact_ms
                .entry(i.severity)
                .or_default()
                .push(took.num_milliseconds());
        }
    }

    let mut c = stats(&s);
    let r = c
        .get_resolution_stats(GetResolutionStatsRequest { range: all_time() })
        .await
        .expect("resolution")
        .into_inner();
    let mut all: Vec<i64> = exact_ms.values().flatten().copied().collect();
    all.sort_unstable();
    let check = |what: &str, f: &verdict::proto::ResolutionFigures, sorted: &[i64]| {
        assert_eq!(f.count, sorted.len() as u64, "{what}: count is exact");
        assert_within_1pct(&format!("{what} p50"), ms(&f.p50), exact(sorted, 0.50));
        assert_within_1pct(&format!("{what} p95"), ms(&f.p95), exact(sorted, 0.95));
        assert_within_1pct(&format!("{what} p99"), ms(&f.p99), exact(sorted, 0.99));
        let mean = sorted.iter().sum::<i64>() / sorted.len() as i64;
        assert_eq!(ms(&f.mean) as i64, mean, "{what}: the mean is exact");
    };
    assert_eq!(all.len(), ROWS * COLS);
    check("overall", r.overall.as_ref().expect("overall"), &all);
    assert_eq!(r.by_severity.len(), 5);
    for s in &r.by_severity {
        let mut v = exact_ms.get(&s.severity).cloned().unwrap_or_default();
        v.sort_unstable();
        check(
            &format!("severity {}", s.severity),
            s.figures.as_ref().expect("figures"),
            &v,
        );
    }

    let sum = summary(&mut c, all_time()).await;
    assert_eq!(sum.created, 10_000);
    assert_eq!(sum.open, 0);
    assert_eq!(status_count(&sum.by_status, IncidentStatus::Open), 10_000);
    assert_eq!(
        status_count(&sum.by_status, IncidentStatus::Resolved),
        10_000
    );
    assert_eq!(
        status_count(&sum.current_by_status, IncidentStatus::Resolved),
        10_000
    );
    assert!(sum.by_severity.iter().all(|s| s.count == 2_000));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_resolution_percentiles_are_within_one_percent() {
    let redis = RedisServer::start();
    resolution_percentiles_are_within_one_percent(config(Some(&redis))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_resolution_percentiles_are_within_one_percent() {
    resolution_percentiles_are_within_one_percent(config(None)).await;
}

// ---- ranges -------------------------------------------------------------

/// Incidents at known times; ranges must count exactly the hours they
/// cover, rounded out to whole hours, through hour and day buckets alike.
async fn ranges_include_and_exclude_the_right_buckets(config: Config) {
    // 21:00 UTC three days ago: ranges cross midnights, so queries mix hour
    // buckets with day buckets.
    let day = Utc::now().duration_trunc(Duration::days(1)).expect("day");
    let start = day - Duration::days(3) + Duration::hours(21);
    let clock = Arc::new(ManualClock::new(start));
    let mut s = TestServer::start_with(config, Some(clock.clone())).await;
    let at = |h: i64, m: i64| start + Duration::hours(h) + Duration::minutes(m);
    let mut now = start;
    // (hours, minutes after start, how many, service)
    for (h, m, n, svc) in [
        (0, 10, 3, "alpha"), // 21:10 day 0
        (1, 59, 2, "beta"),  // 22:59 day 0
        (3, 30, 4, "gamma"), // 00:30 day 1
        (27, 5, 1, "delta"), // 00:05 day 2
        (50, 0, 5, "alpha"), // 23:00 day 2
    ] {
        clock.advance(at(h, m) - now);
        now = at(h, m);
        for _ in 0..n {
            create(&mut s, incident(Severity::P2, &[svc])).await;
        }
    }
    clock.advance(at(60, 0) - now); // 09:00 day 3
    let mut c = stats(&s);

    assert_eq!(created_in(&mut c, between(at(0, 0), at(1, 0))).await, 3);
    assert_eq!(created_in(&mut c, between(at(0, 30), at(1, 0))).await, 3);
    assert_eq!(created_in(&mut c, between(at(1, 0), at(2, 0))).await, 2);
    assert_eq!(
        created_in(&mut c, between(at(-1, 0), at(0, 0))).await,
        0,
        "`to` is exclusive"
    );
    assert_eq!(created_in(&mut c, between(at(0, 0), at(3, 0))).await, 5);
    assert_eq!(
        created_in(&mut c, between(at(3, 0), at(27, 0))).await,
        4,
        "exactly day 1 (a day bucket)"
    );
    assert_eq!(created_in(&mut c, between(at(3, 0), at(28, 0))).await, 5);
    assert_eq!(created_in(&mut c, between(at(0, 0), at(51, 0))).await, 15);
    assert_eq!(
        created_in(
            &mut c,
            between(at(50, 59), at(50, 59) + Duration::seconds(1))
        )
        .await,
        5,
        "a one-second range counts its whole hour"
    );
    let from_only = Some(TimeRange {
        from: Some(ts(at(27, 0))),
        ..Default::default()
    });
    assert_eq!(created_in(&mut c, from_only).await, 6);
    let to_only = Some(TimeRange {
        to: Some(ts(at(3, 0))),
        ..Default::default()
    });
    assert_eq!(
        created_in(&mut c, to_only).await,
        5,
        "the 24 hours before `to`"
    );
    let last = |h: u64| {
        Some(TimeRange {
            last: Some(prost_types::Duration {
                seconds: (h * 3600) as i64,
                nanos: 0,
            }),
            ..Default::default()
        })
    };
    assert_eq!(
        created_in(&mut c, last(11)).await,
        5,
        "now is 09:00: 23:00 is 11 hours in"
    );
    assert_eq!(created_in(&mut c, last(10)).await, 0);
    assert_eq!(created_in(&mut c, all_time()).await, 15);
    assert_eq!(
        created_in(&mut c, None).await,
        5,
        "default: the last 24 hours"
    );

    let r = summary(&mut c, between(at(0, 30), at(1, 0))).await;
    let covered = r.covered.expect("covered");
    assert_eq!(to_dt(&covered.from), at(0, 0));
    assert_eq!(to_dt(&covered.to), at(1, 0));

    let top = c
        .get_affected_services(GetAffectedServicesRequest {
            range: between(at(0, 0), at(28, 0)),
            limit: 0,
        })
        .await
        .expect("services")
        .into_inner()
        .services;
    let top: Vec<(String, u64)> = top.into_iter().map(|s| (s.service, s.incidents)).collect();
    assert_eq!(
        top,
        vec![
            ("gamma".into(), 4),
            ("alpha".into(), 3),
            ("beta".into(), 2),
            ("delta".into(), 1)
        ]
    );

    // Bad ranges: INVALID_ARGUMENT naming the field.
    let bad = |range: TimeRange| GetIncidentSummaryRequest { range: Some(range) };
    let e = c
        .get_incident_summary(bad(TimeRange {
            from: Some(ts(at(2, 0))),
            to: Some(ts(at(1, 0))),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violations(&e), vec!["range.to"]);
    let e = c
        .get_incident_summary(bad(TimeRange {
            from: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["range.from"]);
    let e = c
        .get_resolution_stats(GetResolutionStatsRequest {
            range: Some(TimeRange {
                from: Some(ts(at(0, 0))),
                last: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["range.last"]);
    let e = c
        .get_ai_performance(GetAiPerformanceRequest {
            range: Some(TimeRange {
                last: Some(prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["range.last"]);
    for limit in [-1, 101] {
        let e = c
            .get_affected_services(GetAffectedServicesRequest { range: None, limit })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(violations(&e), vec!["limit"]);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ranges_include_and_exclude_the_right_buckets() {
    let redis = RedisServer::start();
    ranges_include_and_exclude_the_right_buckets(config(Some(&redis))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_ranges_include_and_exclude_the_right_buckets() {
    ranges_include_and_exclude_the_right_buckets(config(None)).await;
}

// ---- exactly once -----------------------------------------------------------

/// Two replicas on one Redis do everything twice, at once: create with the
/// same request ids, decide, approve, complete and resolve the same
/// incidents. Every count is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_writing_at_once_give_exact_counts() {
    const N: usize = 100;
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(Utc::now() - Duration::hours(2)));
    let a = TestServer::start_with(config(Some(&redis)), Some(clock.clone())).await;
    let b = TestServer::start_with(config(Some(&redis)), Some(clock.clone())).await;
    let replicas = [&a, &b];

    // Each replica creates N incidents of its own, and both send the same
    // N request ids.
    let mut calls = JoinSet::new();
    for s in replicas {
        for k in 0..N {
            let mut c = s.incidents.clone();
            let svc = format!("svc-{}", k % 7);
            calls.spawn(async move {
                let mut req = incident(Severity::P3, &[&svc, "shared"]);
                c.create_incident(req.clone()).await.expect("create");
                req.request_id = format!("req-{k}");
                c.create_incident(req).await.expect("create").into_inner()
            });
        }
    }
    let mut ids: Vec<String> = calls
        .join_all()
        .await
        .into_iter()
        .filter_map(|r| r.incident.map(|i| i.id))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "one incident per request id");
    let mut c = stats(&a);
    let sum = summary(&mut c, all_time()).await;
    assert_eq!(sum.created, 3 * N as u64, "2N own + N by request id");
    let all: Vec<String> = {
        let mut v = Vec::new();
        let mut token = String::new();
        loop {
            let page = a
                .incidents
                .clone()
                .list_incidents(verdict::proto::ListIncidentsRequest {
                    page_size: 500,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner();
            v.extend(page.incidents.into_iter().map(|i| i.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        v
    };
    assert_eq!(all.len(), 3 * N);

    // Decide, approve, complete, resolve: each twice at once, one per
    // replica, 20 incidents at a time (the pools are small; contention per
    // incident is what matters).
    let mut outcomes = Vec::new();
    for batch in all.chunks(20) {
        let mut calls = JoinSet::new();
        for id in batch {
            // Both callers decide before either approves: a caller that
            // came after the other's completion would rightly be given a
            // new token (COMPLETED while the incident is still open), and
            // the race this test is about would not happen.
            let decided = Arc::new(tokio::sync::Barrier::new(replicas.len()));
            for s in replicas {
                let mut d = s.decisions.clone();
                let mut inc = s.incidents.clone();
                let id = id.clone();
                let decided = decided.clone();
                calls.spawn(async move {
                    let dec = d
                        .get_or_create_decision(GetOrCreateDecisionRequest {
                            incident_id: id.clone(),
                            wait: true,
                            ..Default::default()
                        })
                        .await
                        .expect("decide")
                        .into_inner()
                        .decision
                        .expect("decision");
                    decided.wait().await;
                    let approved = d
                        .approve_decision(ApproveDecisionRequest {
                            request_id: String::new(),
                            token: dec.token.clone(),
                            actor: "a".into(),
                            expected_version: 0,
                        })
                        .await
                        .is_ok();
                    let completed = d
                        .complete_decision(CompleteDecisionRequest {
                            lease_id: String::new(),
                            request_id: String::new(),
                            token: dec.token,
                            success: true,
                            output: String::new(),
                        })
                        .await
                        .is_ok();
                    inc.update_incident_status(set_status(&id, IncidentStatus::Resolved))
                        .await
                        .expect("resolve");
                    (approved as u64, completed as u64)
                });
            }
        }
        outcomes.extend(calls.join_all().await);
    }
    let approvals: u64 = outcomes.iter().map(|o| o.0).sum();
    let completions: u64 = outcomes.iter().map(|o| o.1).sum();
    assert_eq!(approvals, 3 * N as u64, "one approval wins per decision");
    assert_eq!(completions, 3 * N as u64);

    let total = 3 * N as u64;
    let sum = summary(&mut c, all_time()).await;
    assert_eq!(sum.created, total);
    assert_eq!(sum.open, 0);
    assert_eq!(
        status_count(&sum.by_status, IncidentStatus::Resolved),
        total
    );
    assert_eq!(
        status_count(&sum.current_by_status, IncidentStatus::Resolved),
        total
    );
    assert_eq!(
        status_count(&sum.current_by_status, IncidentStatus::Open),
        0
    );
    let res = c
        .get_resolution_stats(GetResolutionStatsRequest { range: all_time() })
        .await
        .expect("resolution")
        .into_inner();
    assert_eq!(res.overall.expect("overall").count, total);
    let ai = c
        .get_ai_performance(GetAiPerformanceRequest { range: all_time() })
        .await
        .expect("ai")
        .into_inner();
    assert_eq!((ai.decisions, ai.proposals), (total, total));
    let expert = &ai.sources[0];
    assert_eq!(expert.source, "expert");
    assert_eq!(expert.approvals, total);
    assert_eq!(expert.executions_succeeded, total);
    assert_eq!(expert.approval_rate, 1.0);
    let services = c
        .get_affected_services(GetAffectedServicesRequest {
            range: all_time(),
            limit: 100,
        })
        .await
        .expect("services")
        .into_inner()
        .services;
    assert_eq!(services[0].service, "shared");
    assert_eq!(services[0].incidents, total);
    let per_svc: u64 = services[1..].iter().map(|s| s.incidents).sum();
    assert_eq!(per_svc, total);
    a.stop().await;
    b.stop().await;
}

/// Retried and replayed transitions change nothing, so count nothing.
async fn a_retried_transition_does_not_double_count(config: Config) {
    let clock = Arc::new(ManualClock::new(Utc::now() - Duration::hours(3)));
    let mut s = TestServer::start_with(config, Some(clock.clone())).await;
    let mut req = incident(Severity::P1, &["checkout"]);
    req.request_id = "retry-1".into();
    let id = create(&mut s, req.clone()).await.id;
    assert_eq!(
        create(&mut s, req).await.id,
        id,
        "the retry is the same incident"
    );
    let d = common::decide(&mut s, &id).await;
    let approve = ApproveDecisionRequest {
        request_id: String::new(),
        token: d.token.clone(),
        actor: "alice".into(),
        expected_version: d.version,
    };
    s.decisions
        .approve_decision(approve.clone())
        .await
        .expect("approve");
    let e = s.decisions.approve_decision(approve).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let complete = CompleteDecisionRequest {
        lease_id: String::new(),
        request_id: String::new(),
        token: d.token.clone(),
        success: false,
        output: "boom".into(),
    };
    s.decisions
        .complete_decision(complete.clone())
        .await
        .expect("complete");
    let e = s.decisions.complete_decision(complete).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    clock.advance(Duration::minutes(42));
    for _ in 0..3 {
        s.incidents
            .update_incident_status(set_status(&id, IncidentStatus::Resolved))
            .await
            .expect("resolve");
    }

    let mut c = stats(&s);
    let sum = summary(&mut c, None).await;
    assert_eq!(sum.created, 1);
    assert_eq!(status_count(&sum.by_status, IncidentStatus::Resolved), 1);
    assert_eq!(
        status_count(&sum.current_by_status, IncidentStatus::Resolved),
        1
    );
    let res = c
        .get_resolution_stats(GetResolutionStatsRequest { range: None })
        .await
        .expect("resolution")
        .into_inner();
    let overall = res.overall.expect("overall");
    assert_eq!(overall.count, 1);
    assert_eq!(ms(&overall.mean), 42.0 * 60_000.0);
    let ai = c
        .get_ai_performance(GetAiPerformanceRequest { range: None })
        .await
        .expect("ai")
        .into_inner();
    assert_eq!((ai.decisions, ai.proposals), (1, 1));
    let src = &ai.sources[0];
    assert_eq!(
        (
            src.approvals,
            src.executions_failed,
            src.executions_succeeded
        ),
        (1, 1, 0)
    );
    assert_eq!(src.execution_success_rate, 0.0);
    assert!(ms(&src.latency_p50) > 0.0);
    assert_eq!(ai.fallbacks.len(), 1);
    assert_eq!(ai.fallbacks[0].reason, "not_configured");
    assert_eq!(ai.llm_win_rate, 0.0, "no LLM, no contest");

    // Reopened and resolved again: a second resolution, counted once more.
    s.incidents
        .update_incident_status(set_status(&id, IncidentStatus::Open))
        .await
        .expect("reopen");
    s.incidents
        .update_incident_status(set_status(&id, IncidentStatus::Resolved))
        .await
        .expect("resolve");
    let res = c
        .get_resolution_stats(GetResolutionStatsRequest { range: None })
        .await
        .expect("resolution")
        .into_inner();
    assert_eq!(res.overall.expect("overall").count, 2);
    let sum = summary(&mut c, None).await;
    assert_eq!(status_count(&sum.by_status, IncidentStatus::Open), 2);
    assert_eq!(
        status_count(&sum.current_by_status, IncidentStatus::Resolved),
        1
    );
    assert_eq!(
        status_count(&sum.current_by_status, IncidentStatus::Open),
        0
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_retried_transition_does_not_double_count() {
    let redis = RedisServer::start();
    a_retried_transition_does_not_double_count(config(Some(&redis))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_retried_transition_does_not_double_count() {
    a_retried_transition_does_not_double_count(config(None)).await;
}

/// The store itself: replaying a compare-and-set with its statistics (a
/// retry after a lost reply) writes nothing and counts nothing.
async fn a_replayed_write_counts_once(store: Arc<dyn verdict::store::Store>) {
    use verdict::domain::IncidentStatus as S;
    use verdict::stats::{Window, record, report};
    let now = Utc::now() - Duration::hours(1);
    let open = IncidentBuilder::new().created_at(now).domain();
    let delta = record::incident(None, &open);
    for _ in 0..2 {
        store
            .create_incident(&open, None, &delta, None)
            .await
            .expect("create");
    }
    let mut resolved = open.clone();
    resolved.set_status(S::Resolved, now + Duration::minutes(5));
    let delta = record::incident(Some(&open), &resolved);
    for _ in 0..2 {
        store
            .update_incident(1, &resolved, &delta, None)
            .await
            .expect("update");
    }
    let w = Window::resolve(
        &Default::default(),
        Utc::now(),
        verdict::stats::DEFAULT_RETENTION,
    )
    .expect("window");
    let read = store
        .read_stats(&report::resolution_query(w.buckets()))
        .await
        .expect("read");
    let r = report::resolution(&read);
    assert_eq!(r.overall.count, 1);
    assert_eq!(r.overall.mean, std::time::Duration::from_secs(300));
    let read = store
        .read_stats(&report::summary_query(w.buckets()))
        .await
        .expect("read");
    let s = report::summary(&read);
    assert_eq!((s.created, s.open), (1, 0));
}

#[tokio::test]
async fn redis_a_replayed_write_counts_once() {
    let redis = RedisServer::start();
    let store = verdict::store::RedisStore::new(
        &redis.url(),
        verdict::store::redis::PoolConfig {
            size: 2,
            wait: std::time::Duration::from_secs(2),
            ..Default::default()
        },
        Default::default(),
    )
    .expect("store");
    a_replayed_write_counts_once(Arc::new(store)).await;
}

#[tokio::test]
async fn memory_a_replayed_write_counts_once() {
    a_replayed_write_counts_once(Arc::new(verdict::store::MemoryStore::new(
        Default::default(),
    )))
    .await;
}

// ---- rankings -------------------------------------------------------------

async fn ranking_ties_are_ordered_by_name(config: Config) {
    let clock = Arc::new(ManualClock::new(Utc::now() - Duration::hours(1)));
    let mut s = TestServer::start_with(config, Some(clock)).await;
    let plan: [(&[&str], usize); 6] = [
        (&["mid"], 5),
        (&["zeta"], 3),
        (&["beta"], 3),
        (&["alpha"], 2),
        (&["alpha", "alpha"], 1), // listed twice, counted once
        (&["omega"], 1),
    ];
    for (services, n) in plan {
        for _ in 0..n {
            create(&mut s, incident(Severity::P4, services)).await;
        }
    }
    let mut c = stats(&s);
    let top = |limit: i32| {
        let mut c = c.clone();
        async move {
            c.get_affected_services(GetAffectedServicesRequest { range: None, limit })
                .await
                .expect("services")
                .into_inner()
                .services
                .into_iter()
                .map(|s| format!("{}={}", s.service, s.incidents))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        top(10).await,
        ["mid=5", "alpha=3", "beta=3", "zeta=3", "omega=1"]
    );
    assert_eq!(top(3).await, ["mid=5", "alpha=3", "beta=3"]);
    assert_eq!(
        top(2).await,
        ["mid=5", "alpha=3"],
        "the cut falls inside the tie"
    );
    assert_eq!(top(1).await, ["mid=5"]);
    assert_eq!(summary(&mut c, None).await.created, 15);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ranking_ties_are_ordered_by_name() {
    let redis = RedisServer::start();
    ranking_ties_are_ordered_by_name(config(Some(&redis))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_ranking_ties_are_ordered_by_name() {
    ranking_ties_are_ordered_by_name(config(None)).await;
}

// ---- retention --------------------------------------------------------------

/// Buckets expire `stats_retention` after they end: older events are not
/// kept at all, and "all time" means the retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_expire_after_the_retention() {
    let redis = RedisServer::start();
    let real_now = Utc::now();
    let clock = Arc::new(ManualClock::new(real_now - Duration::days(3)));
    let cfg = Config {
        stats_retention: std::time::Duration::from_secs(2 * 86_400),
        ..config(Some(&redis))
    };
    let mut s = TestServer::start_with(cfg, Some(clock.clone())).await;
    create(&mut s, incident(Severity::P2, &["old"])).await;
    clock.advance(Duration::days(2));
    let kept = create(&mut s, incident(Severity::P2, &["recent"])).await;
    clock.advance(Duration::days(1));
    let mut c = stats(&s);
    assert_eq!(created_in(&mut c, all_time()).await, 1);

    let mut conn = redis.conn().await;
    let hour = hour_floor(to_dt(&kept.created_at));
    let key = format!("verdict:stats:{{{}}}:inc", hour.format("%Y-%m-%dT%H"));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("ttl");
    let want = (hour + Duration::hours(1) + Duration::days(2) - real_now).num_seconds();
    assert!((ttl - want).abs() <= 5, "{key}: ttl {ttl}, want ~{want}");
    let old_hour = hour_floor(real_now - Duration::days(3));
    let old_key = format!("verdict:stats:{{{}}}:inc", old_hour.format("%Y-%m-%dT%H"));
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&old_key)
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert_eq!(exists, 0, "a bucket past its retention is never kept");
    let gauge: i64 = redis::cmd("HGET")
        .arg("verdict:stats:status")
        .arg("OPEN")
        .query_async(&mut conn)
        .await
        .expect("gauge");
    assert_eq!(gauge, 2, "the open gauge is current, not bucketed");
    assert_eq!(summary(&mut c, None).await.open, 2);
    s.stop().await;
}

// ---- cost -------------------------------------------------------------------

/// Seeded data (the bench's seeding function) reads back exactly, and a
/// 30-day query issues the same Redis commands with 2 000 incidents as
/// with 6 000: the cost is in buckets, not incidents.
#[cfg(feature = "bench")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_statistics_read_back_and_cost_the_same_at_any_volume() {
    let redis = RedisServer::start();
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    // No periodic sweep: its ZRANGEBYSCORE would land in the command counts.
    let mut cfg = config(Some(&redis));
    cfg.sweep_interval = std::time::Duration::ZERO;
    let s = TestServer::start_with(cfg, Some(clock)).await;
    let store = verdict::store::RedisStore::new(
        &redis.url(),
        verdict::store::redis::PoolConfig {
            size: 2,
            wait: std::time::Duration::from_secs(5),
            ..Default::default()
        },
        Default::default(),
    )
    .expect("store");
    let mut spec = verdict::bench::seed_stats::SeedSpec {
        incidents: 2_000,
        end: now,
        // Inside the 30 days queried, which end with the current hour.
        span: std::time::Duration::from_secs(29 * 86_400),
        ..Default::default()
    };
    let report = verdict::bench::seed_stats::seed_resolved(&store, &spec)
        .await
        .expect("seed");
    assert_eq!(report.incidents, 2_000);
    let mut c = stats(&s);
    let month = || {
        Some(TimeRange {
            last: Some(prost_types::Duration {
                seconds: 30 * 86_400,
                nanos: 0,
            }),
            ..Default::default()
        })
    };
    let mut conn = redis.conn().await;
    let mut measure = async |c: &mut StatsServiceClient<Channel>| {
        reset_command_counts(&mut conn).await;
        let res = c
            .get_resolution_stats(GetResolutionStatsRequest { range: month() })
            .await
            .expect("resolution")
            .into_inner();
        let ai = c
            .get_ai_performance(GetAiPerformanceRequest { range: month() })
            .await
            .expect("ai")
            .into_inner();
        let top = c
            .get_affected_services(GetAffectedServicesRequest {
                range: month(),
                limit: 10,
            })
            .await
            .expect("services")
            .into_inner();
        (command_counts(&mut conn).await, res, ai, top)
    };
    measure(&mut c).await; // loads the scripts (SCRIPT LOAD is not a query's cost)
    let (small, res, ai, top) = measure(&mut c).await;
    assert_eq!(res.overall.expect("overall").count, 2_000);
    assert_eq!(ai.proposals, 2_000);
    assert_eq!(ai.sources.len(), 3, "{:?}", ai.sources);
    assert_eq!(top.services.len(), 10);
    assert_eq!(summary(&mut c, all_time()).await.created, 2_000);

    spec.incidents = 4_000;
    spec.seed = 2;
    verdict::bench::seed_stats::seed_resolved(&store, &spec)
        .await
        .expect("seed");
    let (large, res, _, _) = measure(&mut c).await;
    assert_eq!(res.overall.expect("overall").count, 6_000);
    assert_eq!(small, large, "the same commands, however many incidents");
    assert!(
        !small.keys().any(|k| k.contains("scan") || k == "keys"),
        "{small:?}"
    );
    s.stop().await;
}

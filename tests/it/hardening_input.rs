//! Issue 12, the input side: what adversarial input found, each through the
//! generated client against the in-process server.
//! - 1 000 bad signals in one legal batch answer INVALID_ARGUMENT with
//!   bounded details (the first violations and a count of the rest);
//! - times outside protobuf's range, or outside the alert window, are
//!   refused on every path (CreateIncident, IngestSignals, the webhook),
//!   and a bad time already stored never breaks a listing;
//! - control and invisible characters are refused in one-line fields and
//!   removed from prose;
//! - `resolved_at` and the resolution statistics agree when a CLOSED
//!   incident is marked RESOLVED again (both stores).

use crate::common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{
    IncidentBuilder, RedisServer, TestServer, config, create_incident, decide, violations,
};
use serde_json::{Value, json};
use std::sync::Arc;
use tonic::Code;
use tonic_types::StatusExt;
use verdict::clock::ManualClock;
use verdict::config::Config;
use verdict::proto::stats_service_client::StatsServiceClient;
use verdict::proto::{
    ApproveDecisionRequest, CompleteDecisionRequest, CreateIncidentRequest,
    GetResolutionStatsRequest, IncidentStatus, IngestSignalsRequest, ListIncidentsRequest,
    RejectDecisionRequest, Signal, UpdateIncidentStatusRequest,
};

fn pb_ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn signal(name: &str) -> Signal {
    Signal {
        alert_name: name.into(),
        labels: [("service".to_string(), "checkout".to_string())].into(),
        fingerprint: format!("fp-{name}"),
        ..Default::default()
    }
}

fn expect_invalid<T: std::fmt::Debug>(r: Result<T, tonic::Status>, field: &str) -> tonic::Status {
    let e = r.expect_err("must be refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let got = violations(&e);
    assert!(got.iter().any(|g| g == field), "no {field} in {got:?}");
    e
}

// ---- 3. bounded validation errors ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_signals_get_bounded_details_and_a_count_of_the_rest() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    // Every signal wrong in three ways, each with a long field path.
    let bad = Signal {
        alert_name: String::new(),
        labels: [("k".repeat(200), "v".to_string())].into(),
        fingerprint: "f".repeat(500),
        ..Default::default()
    };
    let e = s
        .incidents
        .ingest_signals(IngestSignalsRequest {
            signals: vec![bad; 1_000],
        })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let details = e.get_details_bad_request().expect("BadRequest details");
    let v = &details.field_violations;
    assert!(v.len() <= 21, "{} violations listed", v.len());
    assert_eq!(v[0].field, "signals[0].alert_name");
    let last = v.last().expect("a violation");
    assert_eq!(last.field, "...");
    let rest = 3_000 - (v.len() - 1);
    assert!(
        last.description
            .starts_with(&format!("and {rest} more violations")),
        "{last:?}"
    );
    // What travels in the grpc-status-details-bin header, base64-encoded,
    // and the grpc-message header: far below grpc-core's 8 KiB.
    let header_bytes = e.details().len().div_ceil(3) * 4 + e.message().len();
    assert!(header_bytes < 6 * 1024, "{header_bytes} bytes of headers");
    assert!(
        e.message().contains("3000 invalid fields"),
        "{}",
        e.message()
    );
    s.stop().await;
}

// ---- 4. timestamps ---------------------------------------------------------

/// Times no request may carry, as (seconds, nanos).
fn impossible_times() -> Vec<prost_types::Timestamp> {
    let year = |y| pb_ts(Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap());
    vec![
        year(0),
        year(10_000),
        year(1969),
        pb_ts(Utc::now() + Duration::days(3)),
        prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        },
        prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 1_000_000_000,
        },
        prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: -1,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_alert_times_are_refused_on_every_path() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    for t in impossible_times() {
        let mut sig = signal("PodCrash");
        sig.starts_at = Some(t);
        let mut inc = IncidentBuilder::alerting("t", "PodCrash", "checkout").proto();
        inc.signals = vec![sig.clone()];
        let r = s
            .incidents
            .create_incident(CreateIncidentRequest {
                incident: Some(inc),
                request_id: String::new(),
            })
            .await;
        expect_invalid(r, "incident.signals[0].starts_at");
        let r = s
            .incidents
            .ingest_signals(IngestSignalsRequest {
                signals: vec![sig.clone()],
            })
            .await;
        expect_invalid(r, "signals[0].starts_at");
        if t.seconds > Utc::now().timestamp() && t.seconds < 1 << 40 {
            continue; // an end three days ahead is within its window
        }
        sig.starts_at = None;
        sig.ends_at = Some(t);
        let r = s
            .incidents
            .ingest_signals(IngestSignalsRequest { signals: vec![sig] })
            .await;
        expect_invalid(r, "signals[0].ends_at");
    }
    // The webhook: before 1970, year 0, more than a day ahead.
    let ahead = (Utc::now() + Duration::days(2)).to_rfc3339();
    for starts in ["1960-01-01T00:00:00Z", "0000-06-01T00:00:00Z", &ahead] {
        let body = json!({
            "version": "4", "status": "firing", "receiver": "verdict", "groupKey": "g",
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "PodCrash", "service": "checkout"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
            }],
        });
        let (status, answer) = post_webhook(&s, &body).await;
        assert_eq!(status, 400, "{starts}: {answer}");
        assert_eq!(answer["violations"][0]["field"], "alerts[0].startsAt");
    }
    let listed = s
        .incidents
        .list_incidents(ListIncidentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .incidents;
    assert!(listed.is_empty(), "nothing was stored: {listed:?}");
    s.stop().await;
}

async fn post_webhook(s: &TestServer, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/alertmanager", s.http_base()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("json"))
        .send()
        .await
        .expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A record stored before the checks, with times protobuf cannot carry,
/// is listed with those times clamped to protobuf's range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_out_of_range_time_is_clamped_not_an_error() {
    use verdict::domain::{Incident, IncidentId, IncidentStatus as S, Severity, SignalStatus};
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
    let now = Utc::now();
    let year10k = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    let year0 = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap();
    let bad = Incident {
        id: IncidentId::generate(),
        title: "stored before the checks".into(),
        severity: Severity::P2,
        status: S::Resolved,
        signals: vec![verdict::domain::Signal {
            alert_name: "Old".into(),
            labels: Default::default(),
            annotations: Default::default(),
            starts_at: Some(year0),
            ends_at: Some(year10k),
            fingerprint: "fp".into(),
            status: SignalStatus::Firing,
            generator_url: String::new(),
        }],
        affected_services: vec![],
        namespace: None,
        created_at: now,
        updated_at: now,
        resolved_at: Some(year10k),
        version: 1,
        status_actor: String::new(),
        status_note: String::new(),
        applied_requests: Default::default(),
    };
    verdict::store::Store::create_incident(
        &store,
        &bad,
        None,
        &verdict::stats::record::incident(None, &bad),
        None,
    )
    .await
    .expect("stored");
    let mut s = TestServer::start(config(Some(&redis))).await;
    let listed = s
        .incidents
        .list_incidents(ListIncidentsRequest::default())
        .await
        .expect("the listing still works")
        .into_inner()
        .incidents;
    assert_eq!(listed.len(), 1);
    let in_range = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().expect("set");
        (-62_135_596_800..=253_402_300_799).contains(&t.seconds)
            && (0..1_000_000_000).contains(&t.nanos)
    };
    let i = &listed[0];
    assert!(in_range(&i.resolved_at), "{:?}", i.resolved_at);
    assert!(
        in_range(&i.signals[0].starts_at),
        "{:?}",
        i.signals[0].starts_at
    );
    assert!(
        in_range(&i.signals[0].ends_at),
        "{:?}",
        i.signals[0].ends_at
    );
    // ... which is what MessageToJson and `verdict --json` need.
    s.stop().await;
}

// ---- 8. text that reaches a terminal ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_in_lines_and_removed_from_prose() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    // One-line fields: refused.
    for title in [
        "a\nforged line",
        "red\u{1b}[31m",
        "admin\u{202e}nimda",
        "zero\u{200b}width",
    ] {
        let mut inc = IncidentBuilder::alerting(title, "PodCrash", "checkout").proto();
        inc.title = title.into();
        let r = s
            .incidents
            .create_incident(CreateIncidentRequest {
                incident: Some(inc),
                request_id: String::new(),
            })
            .await;
        expect_invalid(r, "incident.title");
    }
    let mut sig = signal("Pod\rCrash");
    sig.labels.insert("ke\u{1b}y".into(), "v".into());
    let r = s
        .incidents
        .ingest_signals(IngestSignalsRequest { signals: vec![sig] })
        .await;
    let e = expect_invalid(r, "signals[0].alert_name");
    assert!(violations(&e).contains(&"signals[0].labels[ke\\u{1b}y]".to_string()));

    let id = create_incident(&mut s, "PodCrash").await;
    let d = decide(&mut s, &id).await;
    let approve = |actor: &str| ApproveDecisionRequest {
        request_id: String::new(),
        token: d.token.clone(),
        actor: actor.into(),
        expected_version: d.version,
    };
    for actor in ["alice\u{1b}[2K\rbob", "alice\n", "\u{2066}alice"] {
        let r = s.decisions.approve_decision(approve(actor)).await;
        expect_invalid(r, "actor");
    }
    s.decisions
        .approve_decision(approve("Zoë O'Brien"))
        .await
        .expect("a real name is fine");
    // Prose: kept, without what steers a terminal; \n and \t stay.
    let done = s
        .decisions
        .complete_decision(CompleteDecisionRequest {
            lease_id: String::new(),
            request_id: String::new(),
            token: d.token.clone(),
            success: true,
            output: "\u{1b}[2Jdeployment restarted\r\n\tok\u{202e}\u{0}".into(),
        })
        .await
        .expect("complete")
        .into_inner()
        .decision
        .expect("decision");
    assert_eq!(done.output, "[2Jdeployment restarted\n\tok");
    let r = s
        .incidents
        .update_incident_status(UpdateIncidentStatusRequest {
            request_id: String::new(),
            id: id.clone(),
            status: IncidentStatus::Resolved as i32,
            actor: "bob\u{7}".into(),
            note: String::new(),
        })
        .await;
    expect_invalid(r, "actor");
    let i = s
        .incidents
        .update_incident_status(UpdateIncidentStatusRequest {
            request_id: String::new(),
            id,
            status: IncidentStatus::Resolved as i32,
            actor: "bob".into(),
            note: "fixed\u{1b}]0;pwned\u{7}\nby restart".into(),
        })
        .await
        .expect("resolve")
        .into_inner()
        .incident
        .expect("incident");
    assert_eq!(i.status_note, "fixed]0;pwned\nby restart");

    let id = create_incident(&mut s, "HighLatency").await;
    let d = decide(&mut s, &id).await;
    let rejected = s
        .decisions
        .reject_decision(RejectDecisionRequest {
            request_id: String::new(),
            token: d.token,
            actor: "carol".into(),
            reason: "not\u{1b}[8m now".into(),
            expected_version: d.version,
        })
        .await
        .expect("reject")
        .into_inner()
        .decision
        .expect("decision");
    assert_eq!(rejected.reason, "not[8m now");

    // The webhook: the same rules.
    let body = json!({
        "version": "4", "status": "firing", "receiver": "verdict", "groupKey": "g",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "Pod\u{1b}[31mCrash", "service": "checkout"},
            "startsAt": "2024-05-01T12:00:00Z",
        }],
    });
    let (status, answer) = post_webhook(&s, &body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["violations"][0]["field"],
        "alerts[0].labels.alertname"
    );
    s.stop().await;
}

// ---- 10. a record and its statistics agree ---------------------------------

/// CLOSED back to RESOLVED keeps `resolved_at` and counts no resolution;
/// reopened and resolved again moves it and counts one.
async fn re_resolving_keeps_record_and_statistics_in_step(config: Config) {
    let clock = Arc::new(ManualClock::new(Utc::now() - Duration::hours(2)));
    let mut s = TestServer::start_with(config, Some(clock.clone())).await;
    let id = create_incident(&mut s, "PodCrash").await;
    let set = async |s: &mut TestServer, status: IncidentStatus| {
        s.incidents
            .update_incident_status(UpdateIncidentStatusRequest {
                request_id: String::new(),
                id: id.clone(),
                status: status as i32,
                actor: "test".into(),
                note: String::new(),
            })
            .await
            .expect("status")
            .into_inner()
            .incident
            .expect("incident")
    };
    let ms = |i: &verdict::proto::Incident| {
        let (c, r) = (
            i.created_at.expect("created"),
            i.resolved_at.expect("resolved"),
        );
        (r.seconds - c.seconds) * 1_000 + i64::from(r.nanos - c.nanos) / 1_000_000
    };
    let mut stats = StatsServiceClient::new(s.channel.clone());
    let mut resolution = async || {
        let o = stats
            .get_resolution_stats(GetResolutionStatsRequest { range: None })
            .await
            .expect("stats")
            .into_inner()
            .overall
            .expect("overall");
        let mean = o.mean.expect("mean");
        (
            o.count,
            mean.seconds * 1_000 + i64::from(mean.nanos) / 1_000_000,
        )
    };
    clock.advance(Duration::milliseconds(1_200));
    let first = set(&mut s, IncidentStatus::Resolved).await;
    assert_eq!(ms(&first), 1_200);
    clock.advance(Duration::seconds(1));
    set(&mut s, IncidentStatus::Closed).await;
    clock.advance(Duration::milliseconds(800));
    let again = set(&mut s, IncidentStatus::Resolved).await;
    assert_eq!(
        again.resolved_at, first.resolved_at,
        "resolved_at never moves"
    );
    assert_eq!(resolution().await, (1, 1_200), "and no second resolution");

    clock.advance(Duration::seconds(1));
    set(&mut s, IncidentStatus::Open).await;
    clock.advance(Duration::seconds(1));
    let twice = set(&mut s, IncidentStatus::Resolved).await;
    assert_eq!(ms(&twice), 5_000);
    assert_eq!(
        resolution().await,
        (2, 3_100),
        "reopened and resolved again is a second resolution"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_re_resolving_keeps_record_and_statistics_in_step() {
    let redis = RedisServer::start();
    re_resolving_keeps_record_and_statistics_in_step(config(Some(&redis))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_re_resolving_keeps_record_and_statistics_in_step() {
    re_resolving_keeps_record_and_statistics_in_step(config(None)).await;
}

//! The audit trail around a real `verdict serve`: configuration reloads
//! recorded (SIGHUP and a changed file), floods of refused calls kept to a
//! bounded number of events with a summary of the rest, and the JSON-lines
//! sink.

use crate::common::{RedisServer, VerdictProcess};
use std::sync::Arc;
use std::time::Duration;
use verdict::audit::{Action, DEVELOPMENT_KEY, Event, Signer};
use verdict::auth::{TokenEntry, token};
use verdict::clock::SystemClock;
use verdict::domain::Role;
use verdict::manager::{AuditFilter, AuditLog};
use verdict::store::redis::PoolConfig;
use verdict::store::{RedisStore, Retention, Store};

const LIMIT: Duration = Duration::from_secs(20);

/// A reader of the trail in `redis`, with the development key the
/// processes seal with (no key configured).
fn trail(redis: &RedisServer) -> AuditLog {
    let store = RedisStore::new(
        &redis.url(),
        PoolConfig {
            size: 2,
            wait: Duration::from_secs(2),
            ..Default::default()
        },
        Retention::default(),
    )
    .expect("store")
    .with_audit(Signer::new(DEVELOPMENT_KEY));
    AuditLog::new(Arc::new(store) as Arc<dyn Store>, Arc::new(SystemClock))
}

/// Every kept event with `action`, oldest first.
async fn events_of(log: &AuditLog, action: Action) -> Vec<Event> {
    let filter = AuditFilter {
        action: Some(action),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = log.list(&filter, after, 1000).await.expect("list");
        out.extend(page.events.into_iter().map(|(_, e)| e));
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// A principal's bearer token and its config entry.
fn principal(subject: &str) -> (String, TokenEntry) {
    token::generate(subject, [Role::Viewer].into_iter().collect()).expect("token")
}

/// A config file's `[[auth_tokens]]` for `entries`, plus `extra` lines.
fn config_file(entries: &[&TokenEntry], extra: &str) -> String {
    let mut s = String::from(extra);
    for e in entries {
        s += &format!(
            "\n[[auth_tokens]]\nsubject = {:?}\nroles = [\"viewer\"]\nsha256 = {:?}\n",
            e.subject, e.sha256
        );
    }
    s
}

/// Replaces the file at `path` in one step (write aside, rename), as
/// configuration management does: the server never reads half a file.
fn replace(path: &std::path::Path, content: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, content).expect("write config");
    std::fs::rename(&aside, path).expect("rename config");
}

fn sighup(v: &VerdictProcess) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &v.pid().to_string()])
        .status()
        .expect("kill -HUP")
        .success();
    assert!(ok, "kill -HUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_applied_and_refused_are_recorded_without_secrets() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("verdict.toml");
    let (_, vera) = principal("vera");
    let (_, neo) = principal("neo");
    std::fs::write(&path, config_file(&[&vera], "")).expect("write config");
    let path_arg = path.to_str().expect("utf-8 path");
    let v = VerdictProcess::start(&["--config", path_arg, "--redis-url", &redis.url()], &[]).await;
    v.serving_channel().await;
    let log = trail(&redis);

    // A changed file: neo added, vera removed.
    replace(&path, &config_file(&[&neo], ""));
    v.wait_for_log("\"configuration reloaded\"", LIMIT).await;
    let reloads = events_of(&log, Action::ConfigReloaded).await;
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    let e = &reloads[0];
    assert_eq!(e.outcome, "OK");
    assert_eq!(e.chain, verdict::audit::GLOBAL_CHAIN);
    assert_eq!(e.subject, "verdict");
    assert_eq!(e.auth_method, "system");
    assert!(
        e.detail.contains("config or TLS file changed"),
        "{}",
        e.detail
    );
    assert!(
        e.detail.contains("principals 1, added neo, removed vera"),
        "{}",
        e.detail
    );
    assert!(!e.detail.contains(&neo.sha256), "no digests in the trail");

    // A file that does not parse: refused when it changes and again on
    // SIGHUP, each recorded with why, the file's content never quoted.
    replace(&path, "auth_tokens = \"s3cret-not-toml");
    v.wait_for_log_count("configuration NOT reloaded", 1, LIMIT)
        .await;
    sighup(&v);
    v.wait_for_log_count("configuration NOT reloaded", 2, LIMIT)
        .await;
    let reloads = events_of(&log, Action::ConfigReloaded).await;
    assert_eq!(reloads.len(), 3, "{reloads:?}");
    for (refused, trigger) in reloads[1..]
        .iter()
        .zip(["config or TLS file changed", "SIGHUP"])
    {
        assert_eq!(refused.outcome, "INVALID_ARGUMENT");
        assert!(refused.detail.contains(trigger), "{}", refused.detail);
        assert!(
            refused.detail.contains("NOT reloaded"),
            "{}",
            refused.detail
        );
        assert!(!refused.detail.contains("s3cret"), "{}", refused.detail);
    }

    // And the trail still verifies.
    let report = log
        .verify(Signer::new(DEVELOPMENT_KEY), None)
        .await
        .expect("verify");
    assert!(report.is_whole(), "{report:?}");
}

/// `count` in a summary's detail ("990 more refusals …").
fn summarised(e: &Event) -> u64 {
    e.detail
        .split_once(" more refusals")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("not a summary: {}", e.detail))
}

/// A CreateIncident with `bearer` (a mutating call: its refusal is
/// recorded), answered with the gRPC code.
async fn create_as(channel: &tonic::transport::Channel, bearer: &str) -> tonic::Code {
    use verdict::proto::incident_service_client::IncidentServiceClient;
    let mut req = tonic::Request::new(crate::common::IncidentBuilder::new().request());
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {bearer}").parse().expect("ascii"),
    );
    match IncidentServiceClient::new(channel.clone())
        .create_incident(req)
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_leaves_a_bounded_trail_and_a_summary_with_the_count() {
    use futures::StreamExt;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("verdict.toml");
    let (ops_token, ops) =
        token::generate("ops", [Role::Admin].into_iter().collect()).expect("token");
    std::fs::write(
        &path,
        format!(
            "[[auth_tokens]]\nsubject = \"ops\"\nroles = [\"admin\"]\nsha256 = {:?}\n",
            ops.sha256
        ),
    )
    .expect("write config");
    let path_arg = path.to_str().expect("utf-8 path");
    // The default burst (10) and window (1 minute): the flood fits in one
    // window; its summary is written at the graceful shutdown.
    let v = VerdictProcess::start(&["--config", path_arg, "--redis-url", &redis.url()], &[]).await;
    let channel = v.serving_channel().await;

    const CALLS: usize = 1000;
    let codes: Vec<tonic::Code> = futures::stream::iter(0..CALLS)
        .map(|i| {
            let channel = channel.clone();
            async move { create_as(&channel, &format!("vdt_{i:064x}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(codes.iter().all(|c| *c == tonic::Code::Unauthenticated));
    // A known principal is unaffected by the flood from its address.
    assert_eq!(create_as(&channel, &ops_token).await, tonic::Code::Ok);

    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", v.addr))
        .bearer_auth(&ops_token)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    let sample = |name: &str, labels: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{labels} ")))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse().expect("a number"))
            .unwrap_or(0.0)
    };
    assert_eq!(
        sample(
            "verdict_auth_refusals_total",
            "{reason=\"bad_credentials\",code=\"UNAUTHENTICATED\"}"
        ),
        CALLS as f64,
        "{metrics}"
    );
    assert_eq!(
        sample("verdict_audit_refusals_counted_total", ""),
        (CALLS - 10) as f64
    );
    assert_eq!(
        sample(
            "verdict_audit_events_total",
            "{outcome=\"UNAUTHENTICATED\"}"
        ),
        10.0
    );
    assert!(sample("verdict_audit_events_total", "{outcome=\"OK\"}") >= 1.0);
    assert_eq!(sample("verdict_audit_write_failures_total", ""), 0.0);

    assert!(v.terminate(), "a graceful shutdown");
    let log = trail(&redis);
    let refused = events_of(&log, Action::Refused).await;
    assert_eq!(refused.len(), 10, "the burst, one by one");
    assert!(refused.iter().all(|e| e.outcome == "UNAUTHENTICATED"));
    let summaries = events_of(&log, Action::RefusalsSummarized).await;
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summarised(&summaries[0]), (CALLS - 10) as u64);
    assert_eq!(summaries[0].peer, "127.0.0.1");
    assert_eq!(summaries[0].outcome, "UNAUTHENTICATED");
    let report = log
        .verify(Signer::new(DEVELOPMENT_KEY), None)
        .await
        .expect("verify");
    assert!(report.is_whole(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_is_written_when_its_window_closes() {
    use futures::StreamExt;
    use verdict::audit::Position;
    let redis = RedisServer::start();
    let (_, ops) = token::generate("ops", [Role::Admin].into_iter().collect()).expect("token");
    let config = verdict::config::Config {
        auth_tokens: vec![ops],
        audit_refusal_burst: 2,
        audit_refusal_window: Duration::from_secs(1),
        ..crate::common::config(Some(&redis))
    };
    let s = crate::common::TestServer::start(config).await;
    let log = trail(&redis);
    let filter = AuditFilter {
        action: Some(Action::RefusalsSummarized),
        ..Default::default()
    };
    let mut summaries = log
        .watch(
            filter,
            Some(Position::default()),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("watch");
    let channel = tonic::transport::Channel::from_shared(s.http_base())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    const CALLS: u64 = 7;
    for i in 0..CALLS {
        let code = create_as(&channel, &format!("vdt_{i:064x}")).await;
        assert_eq!(code, tonic::Code::Unauthenticated);
    }
    // Written by the server's own task once each window has closed: no
    // shutdown, no further refusal needed. (On a slow machine the calls
    // may span two windows: then two summaries, two bursts.)
    let mut counted = 0;
    let mut windows = 0;
    loop {
        let recorded = events_of(&log, Action::Refused).await.len() as u64;
        if recorded + counted == CALLS {
            assert!(
                windows >= 1 && recorded <= 2 * windows.max(1) + 2,
                "{recorded} {windows}"
            );
            break;
        }
        let (_, e) = crate::common::within(LIMIT, "a summary", summaries.next())
            .await
            .expect("a summary")
            .expect("watch");
        counted += summarised(&e);
        windows += 1;
    }
    assert!(counted > 0);
}

/// A store on `redis` sealing with the development key.
fn store(redis: &RedisServer) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::new(
            &redis.url(),
            PoolConfig {
                size: 4,
                wait: Duration::from_secs(2),
                ..Default::default()
            },
            Retention::default(),
        )
        .expect("store")
        .with_audit(Signer::new(DEVELOPMENT_KEY)),
    )
}

fn status_event(incident: &str) -> verdict::audit::Draft {
    verdict::audit::Draft::ok(chrono::Utc::now().timestamp_millis(), Action::StatusChanged)
        .incident(incident)
        .detail("status RESOLVED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_an_incident_reads_its_chain_not_the_trail_and_pages_stay_exact() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let log = AuditLog::new(store.clone(), Arc::new(SystemClock));
    // INC-B's three events among 3000 of INC-A's.
    for i in 0..3000 {
        if i % 1000 == 0 {
            store
                .append_audit(&status_event("INC-B"))
                .await
                .expect("append");
        }
        store
            .append_audit(&status_event("INC-A"))
            .await
            .expect("append");
    }
    let by = |incident: &str| AuditFilter {
        incident: Some(incident.into()),
        ..Default::default()
    };
    // One page of ten holds all of B: a scan of the whole trail with its
    // per-page budget (ten times the page) would have come back short,
    // with a cursor, after reading 100 of A's events.
    let page = log.list(&by("INC-B"), None, 10).await.expect("list");
    let seqs: Vec<u64> = page.events.iter().map(|(_, e)| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(page.next.is_none(), "the end of B's chain");
    assert!(page.events.iter().all(|(_, e)| e.chain == "INC-B"));

    // Paging A while A keeps growing: every event once, in order.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..500 {
                store
                    .append_audit(&status_event("INC-A"))
                    .await
                    .expect("append");
            }
        })
    };
    let mut seen = Vec::new();
    let mut after = None;
    for round in 0.. {
        assert!(
            round < 100_000,
            "paging never reached the writer's last event"
        );
        let page = log.list(&by("INC-A"), after, 97).await.expect("list");
        seen.extend(page.events.iter().map(|(_, e)| e.seq));
        match page.next {
            Some(n) => after = Some(n),
            None if seen.len() >= 3500 => break,
            // Caught up with the writer: the cursor is the last event seen.
            None => after = page.events.last().map(|(p, _)| *p).or(after),
        }
    }
    writer.await.expect("writer");
    assert_eq!(seen, (1..=3500).collect::<Vec<u64>>());
}

#[tokio::test]
async fn listing_by_token_finds_the_decisions_events_through_its_incident() {
    use verdict::proto::ApproveDecisionRequest;
    let redis = RedisServer::start();
    let mut s = crate::common::TestServer::start(crate::common::config(Some(&redis))).await;
    let id = crate::common::create_incident(&mut s, "PodCrashLooping").await;
    let d = crate::common::decide(&mut s, &id).await;
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            token: d.token.clone(),
            actor: "bob".into(),
            ..Default::default()
        })
        .await
        .expect("approve");
    let log = trail(&redis);
    let filter = AuditFilter {
        token: Some(d.token.clone()),
        ..Default::default()
    };
    let page = log.list(&filter, None, 100).await.expect("list");
    let actions: Vec<Action> = page.events.iter().map(|(_, e)| e.action).collect();
    assert!(actions.contains(&Action::DecisionIssued), "{actions:?}");
    assert!(actions.contains(&Action::Approved), "{actions:?}");
    assert!(
        page.events
            .iter()
            .all(|(_, e)| e.token.as_deref() == Some(&*d.token))
    );
    // A made-up token: nothing, and no error.
    let none = AuditFilter {
        token: Some("DEC-00000000000000000000000000".into()),
        ..Default::default()
    };
    assert!(
        log.list(&none, None, 100)
            .await
            .expect("list")
            .events
            .is_empty()
    );
}

/// The events in a JSON-lines file, in order.
fn lines_of(path: &std::path::Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_sink_gets_exactly_the_events_and_reopens_on_reload() {
    use verdict::proto::ApproveDecisionRequest;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let config = verdict::config::Config {
        audit_sink: Some(path.to_str().expect("utf-8").to_owned()),
        ..crate::common::config(Some(&redis))
    };
    let mut s = crate::common::TestServer::start(config.clone()).await;
    let id = crate::common::create_incident(&mut s, "PodCrashLooping").await;
    let d = crate::common::decide(&mut s, &id).await;

    // logrotate: move the file away, then reload (SIGHUP in `serve`).
    let rotated = dir.path().join("audit.jsonl.1");
    let running = s.running.take().expect("running");
    s.decisions
        .approve_decision(ApproveDecisionRequest {
            token: d.token.clone(),
            actor: "bob".into(),
            ..Default::default()
        })
        .await
        .expect("approve");
    std::fs::rename(&path, &rotated).expect("rotate");
    running
        .reloader()
        .reload(Ok(config), "test")
        .await
        .expect("reload");
    let _ = s
        .decisions
        .approve_decision(ApproveDecisionRequest {
            token: d.token.clone(),
            actor: "eve".into(),
            ..Default::default()
        })
        .await
        .expect_err("approved already: refused");
    running.shutdown().await.expect("shutdown");

    let trail_events: Vec<Event> = {
        let page = trail(&redis)
            .list(&AuditFilter::default(), None, 1000)
            .await
            .expect("list");
        page.events.into_iter().map(|(_, e)| e).collect()
    };
    let (old, new) = (lines_of(&rotated), lines_of(&path));
    assert!(
        old.iter().any(|e| e.action == Action::Approved),
        "before the rotation: {old:?}"
    );
    assert!(
        new.iter()
            .any(|e| e.action == Action::ConfigReloaded && e.outcome == "OK"),
        "the reload's own event, after the reopen: {new:?}"
    );
    assert!(
        new.iter()
            .any(|e| e.action == Action::Refused && e.actor == "eve"),
        "after the reopen: {new:?}"
    );
    // Exactly the trail: nothing missing, nothing twice, same content.
    let mut sunk: Vec<Event> = old.into_iter().chain(new).collect();
    let mut stored = trail_events;
    let key = |e: &Event| (e.chain.clone(), e.seq);
    sunk.sort_by_key(key);
    stored.sort_by_key(key);
    assert_eq!(sunk, stored);
}

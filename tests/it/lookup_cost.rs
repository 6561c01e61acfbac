//! Lookups are O(1): with 50 000 stored decisions a lookup issues exactly
//! the Redis commands it issues with none. Counted with INFO commandstats,
//! not with a clock.

use crate::common;

use chrono::Utc;
use common::{
    IncidentBuilder, RedisServer, TestServer, command_counts, config, create_incident, decide,
    reset_command_counts,
};
use std::collections::BTreeMap;
use verdict::domain::{Decision, DecisionMode, DecisionState, Severity};
use verdict::proto::{GetDecisionRequest, GetOrCreateDecisionRequest};
use verdict::store::RedisStore;
use verdict::store::redis::PoolConfig;

async fn seed(redis: &RedisServer, n: usize) {
    let store = RedisStore::new(
        &redis.url(),
        PoolConfig {
            size: 2,
            wait: std::time::Duration::from_secs(5),
            ..Default::default()
        },
        Default::default(),
    )
    .unwrap();
    let now = Utc::now();
    let mut incidents = Vec::with_capacity(n);
    let mut decisions = Vec::with_capacity(n);
    for _ in 0..n {
        let i = IncidentBuilder::new()
            .title("seeded")
            .severity(Severity::P3)
            .created_at(now)
            .domain();
        let d = Decision::start(
            i.id.clone(),
            DecisionMode::Auto,
            now,
            chrono::Duration::hours(1),
            now,
        )
        .transition(DecisionState::Ready, 0, now)
        .unwrap();
        incidents.push(i);
        decisions.push(d);
    }
    store.seed_bulk(&decisions, &incidents).await.unwrap();
}

/// The commands one GetDecision and one GetOrCreateDecision (READY token)
/// issue on a replica that has not seen the incident or its decision (so
/// nothing is answered from its copy), with `stored` other decisions in
/// Redis.
async fn lookup_commands(stored: usize) -> (BTreeMap<String, u64>, u64) {
    let redis = RedisServer::start();
    seed(&redis, stored).await;
    let mut cfg = config(Some(&redis));
    // The recovery sweep runs on a timer; off here so it cannot add its
    // command to the counts.
    cfg.sweep_interval = std::time::Duration::ZERO;
    let mut s = TestServer::start(cfg.clone()).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    // Started after the decision was made: its change feed begins after
    // those changes, so this replica holds nothing of the decision.
    let mut other = TestServer::start(cfg).await;
    // Loads the lookup script into Redis (a first use is NOSCRIPT, then
    // SCRIPT LOAD), so the counts below are those of every later lookup.
    other
        .decisions
        .get_decision(GetDecisionRequest {
            token: "DEC-000000000000".into(),
        })
        .await
        .expect_err("no such decision");
    let mut conn = redis.conn().await;
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    reset_command_counts(&mut conn).await;
    other
        .decisions
        .get_decision(GetDecisionRequest {
            token: d.token.clone(),
        })
        .await
        .unwrap();
    let again = other
        .decisions
        .get_or_create_decision(GetOrCreateDecisionRequest {
            incident_id: id,
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    (command_counts(&mut conn).await, dbsize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_cost_the_same_with_50_000_stored_decisions() {
    let (empty, small) = lookup_commands(0).await;
    let (full, big) = lookup_commands(50_000).await;
    assert!(
        big > small + 100_000,
        "the second Redis really holds the seeded data ({big} keys)"
    );
    assert_eq!(full, empty, "the same commands, the same number of times");
    let total: u64 = full.values().sum();
    // GetDecision on a replica that has not seen the token: one EVALSHA
    // whose script runs one GET (the token index) and one HGET.
    // GetOrCreateDecision: one EVALSHA whose script runs one GET and two
    // HGETs.
    assert_eq!(full.get("evalsha"), Some(&2), "{full:?}");
    assert_eq!(
        total, 7,
        "a lookup is a constant handful of commands: {full:?}"
    );
    for scan in ["scan", "keys", "hscan", "zscan", "sscan"] {
        assert!(
            !full.contains_key(scan),
            "{scan} on a request path: {full:?}"
        );
    }
}

/// A decision read again on the replica that heard of its last change is
/// answered from the replica's copy: no Redis command at all, for
/// `GetDecision` and for `GetOrCreateDecision` of its incident. Another
/// replica's change reaches that copy through the change feed before the
/// replica's watchers hear of it, so a read after the watcher saw the
/// change returns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_after_the_change_arrived_are_served_by_the_replica_and_are_current() {
    use verdict::proto::{ApproveDecisionRequest, WatchDecisionRequest};
    let redis = RedisServer::start();
    let mut cfg = config(Some(&redis));
    cfg.sweep_interval = std::time::Duration::ZERO;
    let mut a = TestServer::start(cfg.clone()).await;
    let mut b = TestServer::start(cfg).await;
    let id = create_incident(&mut a, "PodCrashLooping").await;
    let d = decide(&mut a, &id).await;
    let mut watch = b
        .decisions
        .watch_decision(WatchDecisionRequest {
            token: d.token.clone(),
            after_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let snapshot = watch.message().await.unwrap().unwrap().decision.unwrap();
    assert_eq!(snapshot.version, d.version);
    a.decisions
        .approve_decision(ApproveDecisionRequest {
            token: d.token.clone(),
            actor: "vera".into(),
            expected_version: d.version,
            request_id: String::new(),
        })
        .await
        .unwrap();
    let heard = watch.message().await.unwrap().unwrap().decision.unwrap();
    assert_eq!(heard.version, d.version + 1);

    // B reads the incident and its current decision once (from Redis: it
    // holds neither the incident nor which decision is current); that read
    // is kept too.
    let goc = |s: &mut TestServer| {
        let mut c = s.decisions.clone();
        let id = id.clone();
        async move {
            c.get_or_create_decision(GetOrCreateDecisionRequest {
                incident_id: id,
                wait: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let first = goc(&mut b).await;
    assert!(!first.created);

    let mut conn = redis.conn().await;
    reset_command_counts(&mut conn).await;
    let again = goc(&mut b).await;
    assert!(!again.created);
    assert_eq!(again.decision.unwrap().version, heard.version);
    for _ in 0..3 {
        let read = b
            .decisions
            .get_decision(GetDecisionRequest {
                token: d.token.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        assert_eq!(read.version, heard.version, "the change B heard of");
        assert_eq!(read.state, heard.state);
    }
    let counts = command_counts(&mut conn).await;
    assert!(
        !counts.contains_key("hget") && !counts.contains_key("evalsha"),
        "answered without reading the decision from Redis: {counts:?}"
    );
}

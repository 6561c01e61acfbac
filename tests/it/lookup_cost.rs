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
/// issue, on a server holding `stored` other decisions.
async fn lookup_commands(stored: usize) -> (BTreeMap<String, u64>, u64) {
    let redis = RedisServer::start();
    seed(&redis, stored).await;
    let mut cfg = config(Some(&redis));
    // The recovery sweep runs on a timer; off here so it cannot add its
    // command to the counts.
    cfg.sweep_interval = std::time::Duration::ZERO;
    let mut s = TestServer::start(cfg).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let mut conn = redis.conn().await;
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    reset_command_counts(&mut conn).await;
    s.decisions
        .get_decision(GetDecisionRequest {
            token: d.token.clone(),
        })
        .await
        .unwrap();
    let again = s
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
    // GetDecision: one HGET (the token index is cached). GetOrCreateDecision:
    // one EVALSHA whose script runs one GET and two HGETs.
    assert_eq!(
        total, 5,
        "a lookup is a constant handful of commands: {full:?}"
    );
    for scan in ["scan", "keys", "hscan", "zscan", "sscan"] {
        assert!(
            !full.contains_key(scan),
            "{scan} on a request path: {full:?}"
        );
    }
}

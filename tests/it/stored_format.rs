//! The stored record format (issue 20 item 1): a Redis seeded with records
//! in the JSON of earlier releases is read as it is, a change rewrites the
//! record in the binary format, and a corrupt record is a clear error.

use crate::common;

use chrono::{Duration, Utc};
use common::{IncidentBuilder, RedisServer};
use redis::AsyncCommands;
use verdict::domain::{Decision, DecisionMode, DecisionState, Incident, IncidentStatus};
use verdict::stats::StatDelta;
use verdict::store::redis::PoolConfig;
use verdict::store::{Cas, RedisStore, Retention, Store, StoreError, keys};

/// The format byte of records written by this release.
const PROST_V1: u8 = 0x01;

fn store(r: &RedisServer) -> RedisStore {
    RedisStore::new(&r.url(), PoolConfig::default(), Retention::default()).expect("store")
}

/// An incident and its READY decision, written exactly as the previous
/// release wrote them: `serde_json::to_string` of the domain records (its
/// `store::encode`), in the real key layout.
async fn seed_json(c: &mut redis::aio::MultiplexedConnection) -> (Incident, Decision) {
    let incident = IncidentBuilder::new()
        .created_ms(1_780_000_000_123)
        .domain();
    let now = Utc::now();
    let mut decision = Decision::start(
        incident.id.clone(),
        DecisionMode::Dual,
        now,
        Duration::hours(1),
        now + Duration::seconds(30),
    );
    decision.state = DecisionState::Ready;
    decision.version = 2;
    let (ik, dk) = (
        keys::incident(&incident.id),
        keys::decision(&incident.id, &decision.token),
    );
    let ij = serde_json::to_string(&incident).unwrap();
    let dj = serde_json::to_string(&decision).unwrap();
    let _: () = redis::pipe()
        .hset_multiple(&ik, &[("v", incident.version.to_string()), ("d", ij)])
        .zadd(
            keys::INCIDENT_INDEX,
            incident.id.as_str(),
            incident.created_at.timestamp_millis(),
        )
        .hset_multiple(
            &dk,
            &[("v", "2".to_string()), ("d", dj.clone()), ("h2", dj)],
        )
        .set(keys::current(&incident.id), decision.token.as_str())
        .set(keys::token_index(&decision.token), incident.id.as_str())
        .lpush(keys::history(&incident.id), decision.token.as_str())
        .query_async(c)
        .await
        .unwrap();
    (incident, decision)
}

async fn stored(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<u8> {
    c.hget(key, "d").await.unwrap()
}

#[tokio::test]
async fn json_records_are_read_and_rewritten_binary_on_their_next_change() {
    let r = RedisServer::start();
    let mut c = r.conn().await;
    let (incident, decision) = seed_json(&mut c).await;
    let s = store(&r);
    let (ik, dk) = (
        keys::incident(&incident.id),
        keys::decision(&incident.id, &decision.token),
    );
    assert_eq!(stored(&mut c, &dk).await[0], b'{', "seeded as JSON");

    // Every read path takes the JSON record.
    assert_eq!(
        s.get_incident(&incident.id).await.unwrap(),
        Some(incident.clone())
    );
    assert_eq!(
        s.get_decision(&decision.token).await.unwrap(),
        Some(decision.clone())
    );
    assert_eq!(
        s.incident_and_current(&incident.id).await.unwrap(),
        (Some(incident.clone()), Some(decision.clone()))
    );
    assert_eq!(
        s.list_decisions(&incident.id, 10).await.unwrap(),
        vec![decision.clone()]
    );
    let (page, _) = s.list_incidents(None, 10).await.unwrap();
    assert_eq!(page, vec![incident.clone()]);

    // A change writes the binary format; the old version stays readable.
    let mut approved = decision.clone();
    approved.state = DecisionState::Rejected;
    approved.version = 3;
    approved.reason = "not now".into();
    assert_eq!(
        s.update_decision(2, &approved, &StatDelta::none(), None)
            .await
            .unwrap(),
        Cas::Written
    );
    assert_eq!(stored(&mut c, &dk).await[0], PROST_V1);
    assert_eq!(
        s.get_decision(&decision.token).await.unwrap(),
        Some(approved.clone())
    );
    assert_eq!(
        s.decision_versions(&decision.token, 0).await.unwrap(),
        vec![decision.clone(), approved.clone()],
        "a JSON version and a binary version side by side"
    );

    let mut resolved = incident.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.version += 1;
    resolved.resolved_at = Some(Utc::now());
    assert_eq!(
        s.update_incident(incident.version, &resolved, &StatDelta::none(), None)
            .await
            .unwrap(),
        Cas::Written
    );
    assert_eq!(stored(&mut c, &ik).await[0], PROST_V1);
    assert_eq!(s.get_incident(&incident.id).await.unwrap(), Some(resolved));

    // A conflict hands back the current (binary) record.
    assert_eq!(
        s.update_decision(2, &approved, &StatDelta::none(), None)
            .await
            .unwrap(),
        Cas::Conflict(Some(approved))
    );
}

#[tokio::test]
async fn corrupt_records_are_errors_that_name_the_key() {
    let r = RedisServer::start();
    let mut c = r.conn().await;
    let (incident, decision) = seed_json(&mut c).await;
    let s = store(&r);
    let dk = keys::decision(&incident.id, &decision.token);
    for garbage in [
        &b"\x07not a record"[..],
        &b"\x01\xff\xff\xff\xff"[..],
        &b"{\"token\":"[..],
        &b""[..],
        // A binary record cut short: valid prefix, missing fields.
        &[PROST_V1, 0x0a, 0x03, b'a', b'b', b'c'][..],
    ] {
        let _: () = c.hset(&dk, "d", garbage).await.unwrap();
        match s.get_decision(&decision.token).await {
            Err(e @ StoreError::Corrupt { .. }) => {
                assert!(e.to_string().contains(&dk), "{e}");
            }
            other => panic!("{garbage:?}: expected a corrupt record, got {other:?}"),
        }
    }
}

/// Creating writes its index entry and its script in one pipeline; when
/// Redis has forgotten the script (a restart, `SCRIPT FLUSH`) the two go
/// separately, and both still land.
#[tokio::test]
async fn creates_land_with_their_index_entries_after_a_script_flush() {
    let r = RedisServer::start();
    let mut c = r.conn().await;
    let s = store(&r);
    for round in 0..3 {
        if round > 0 {
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut c)
                .await
                .unwrap();
        }
        for _ in 0..2 {
            let incident = IncidentBuilder::new().domain();
            s.create_incident(&incident, None, &StatDelta::none(), None)
                .await
                .unwrap();
            let score: Option<f64> = c
                .zscore(keys::INCIDENT_INDEX, incident.id.as_str())
                .await
                .unwrap();
            assert!(score.is_some(), "round {round}: indexed");
            let now = Utc::now();
            let d = Decision::start(
                incident.id.clone(),
                DecisionMode::Auto,
                now,
                Duration::hours(1),
                now + Duration::seconds(30),
            );
            assert_eq!(
                s.create_decision(None, &d, &StatDelta::none(), None)
                    .await
                    .unwrap(),
                Cas::Written
            );
            let indexed: Option<String> = c.get(keys::token_index(&d.token)).await.unwrap();
            assert_eq!(indexed.as_deref(), Some(incident.id.as_str()));
            assert_eq!(s.get_decision(&d.token).await.unwrap(), Some(d));
        }
    }
}

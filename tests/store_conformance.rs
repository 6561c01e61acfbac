//! One conformance suite, run against both stores: the in-memory store must
//! behave exactly like Redis.

mod common;

use chrono::{Duration, Utc};
use common::RedisServer;
use std::sync::Arc;
use verdict::domain::{
    Decision, DecisionMode, DecisionState, Incident, IncidentId, IncidentStatus, RequestId,
    Severity,
};
use verdict::stats::StatDelta;
use verdict::store::redis::PoolConfig;
use verdict::store::{Cas, Created, MemoryStore, RedisStore, Retention, Store};

/// Conformance of records; statistics have their own suite (tests/stats.rs).
fn none() -> StatDelta {
    StatDelta::none()
}

fn retention() -> Retention {
    Retention {
        history_len: 3,
        ..Retention::default()
    }
}

/// A store under test; keeps its Redis alive.
struct Fixture {
    store: Arc<dyn Store>,
    _redis: Option<RedisServer>,
}

fn memory() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new(retention())),
        _redis: None,
    }
}

fn redis() -> Fixture {
    let r = RedisServer::start();
    let store = RedisStore::new(
        &r.url(),
        PoolConfig {
            size: 4,
            wait: std::time::Duration::from_secs(2),
        },
        retention(),
    )
    .expect("store");
    Fixture {
        store: Arc::new(store),
        _redis: Some(r),
    }
}

fn incident(created_ms: i64) -> Incident {
    let t = chrono::DateTime::from_timestamp_millis(created_ms).expect("time");
    Incident {
        id: IncidentId::generate(),
        title: "t".into(),
        severity: Severity::P2,
        status: IncidentStatus::Open,
        signals: vec![],
        affected_services: vec![],
        namespace: None,
        created_at: t,
        updated_at: t,
        resolved_at: None,
        version: 1,
        status_actor: String::new(),
        status_note: String::new(),
    }
}

fn decision(id: &IncidentId) -> Decision {
    let now = Utc::now();
    Decision::start(
        id.clone(),
        DecisionMode::Auto,
        now,
        Duration::hours(1),
        now + Duration::seconds(30),
    )
}

async fn create_is_idempotent_by_request_id(s: Arc<dyn Store>) {
    let a = incident(1_000);
    let rid = RequestId::parse("req-1").unwrap();
    assert_eq!(
        s.create_incident(&a, Some(&rid), &none()).await.unwrap(),
        Created::New(a.clone())
    );
    let mut b = incident(2_000);
    b.title = "retry".into();
    assert_eq!(
        s.create_incident(&b, Some(&rid), &none()).await.unwrap(),
        Created::Replayed(a.clone())
    );
    assert_eq!(
        s.get_incident(&b.id).await.unwrap(),
        None,
        "the retry stored nothing"
    );
    let mut c = incident(3_000);
    c.id = a.id.clone();
    assert_eq!(
        s.create_incident(&c, None, &none()).await.unwrap(),
        Created::IdTaken
    );
    assert_eq!(s.get_incident(&a.id).await.unwrap(), Some(a));
}

async fn incident_updates_compare_and_set(s: Arc<dyn Store>) {
    let a = incident(1_000);
    s.create_incident(&a, None, &none()).await.unwrap();
    let mut b = a.clone();
    b.set_status(IncidentStatus::Resolved, Utc::now());
    assert_eq!(
        s.update_incident(1, &b, &none()).await.unwrap(),
        Cas::Written
    );
    let mut stale = a.clone();
    stale.set_status(IncidentStatus::Closed, Utc::now());
    assert_eq!(
        s.update_incident(1, &stale, &none()).await.unwrap(),
        Cas::Conflict(Some(b.clone()))
    );
    assert_eq!(s.get_incident(&a.id).await.unwrap(), Some(b));
}

async fn decision_creation_is_single_flight(s: Arc<dyn Store>) {
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none()).await.unwrap();
    let first = decision(&inc.id);
    let second = decision(&inc.id);
    assert_eq!(
        s.create_decision(None, &first, &none()).await.unwrap(),
        Cas::Written
    );
    assert_eq!(
        s.create_decision(None, &second, &none()).await.unwrap(),
        Cas::Conflict(Some(first.clone())),
        "a second creator sees the first token"
    );
    assert_eq!(s.get_decision(&second.token).await.unwrap(), None);
    let (i, cur) = s.incident_and_current(&inc.id).await.unwrap();
    assert_eq!(i, Some(inc.clone()));
    assert_eq!(cur, Some(first.clone()));
    // Replacing requires naming the current token.
    assert_eq!(
        s.create_decision(Some(&first.token), &second, &none())
            .await
            .unwrap(),
        Cas::Written
    );
    assert_eq!(
        s.incident_and_current(&inc.id).await.unwrap().1,
        Some(second.clone())
    );
    assert_eq!(
        s.get_decision(&first.token).await.unwrap(),
        Some(first),
        "history keeps the old token"
    );
}

async fn decision_updates_compare_and_set(s: Arc<dyn Store>) {
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none()).await.unwrap();
    let d = decision(&inc.id);
    s.create_decision(None, &d, &none()).await.unwrap();
    let ready = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    assert_eq!(
        s.update_decision(d.version, &ready, &none()).await.unwrap(),
        Cas::Written
    );
    let other = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    assert_eq!(
        s.update_decision(d.version, &other, &none()).await.unwrap(),
        Cas::Conflict(Some(ready.clone()))
    );
    assert_eq!(s.get_decision(&d.token).await.unwrap(), Some(ready));
}

async fn history_is_newest_first_and_capped(s: Arc<dyn Store>) {
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none()).await.unwrap();
    let mut prev: Option<Decision> = None;
    let mut all = vec![];
    for _ in 0..5 {
        let d = decision(&inc.id);
        assert_eq!(
            s.create_decision(prev.as_ref().map(|p| &p.token), &d, &none())
                .await
                .unwrap(),
            Cas::Written
        );
        all.push(d.clone());
        prev = Some(d);
    }
    let listed = s.list_decisions(&inc.id, 100).await.unwrap();
    let want: Vec<_> = all.iter().rev().take(3).cloned().collect();
    assert_eq!(listed, want);
    assert_eq!(
        s.list_decisions(&inc.id, 2).await.unwrap(),
        want[..2].to_vec()
    );
    assert!(
        s.list_decisions(&IncidentId::generate(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn listing_pages_newest_first_with_ties(s: Arc<dyn Store>) {
    let mut all = vec![];
    for ms in [1_000, 2_000, 2_000, 2_000, 3_000, 4_000, 4_000] {
        let i = incident(ms);
        s.create_incident(&i, None, &none()).await.unwrap();
        all.push(i);
    }
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let (page, next) = s.list_incidents(cursor, 2).await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), all.len(), "every incident exactly once");
    let mut ids: Vec<_> = seen.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    assert!(
        seen.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(#[tokio::test] async fn $name() { super::$name(super::memory().store).await; })*
        }
        mod redis_store {
            $(#[tokio::test] async fn $name() { let f = super::redis(); super::$name(f.store.clone()).await; })*
        }
    };
}

conformance!(
    create_is_idempotent_by_request_id,
    incident_updates_compare_and_set,
    decision_creation_is_single_flight,
    decision_updates_compare_and_set,
    history_is_newest_first_and_capped,
    listing_pages_newest_first_with_ties,
);

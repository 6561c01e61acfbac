//! One conformance suite, run against both stores: the in-memory store must
//! behave exactly like Redis.

use crate::common;

use chrono::{Duration, Utc};
use common::{IncidentBuilder, RedisServer};
use std::sync::Arc;
use verdict::domain::{
    Decision, DecisionMode, DecisionState, GroupKey, Incident, IncidentId, IncidentStatus, K8sName,
    RequestId, Severity, Signature,
};
use verdict::engine::ExpertEngine;
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
            ..Default::default()
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
    IncidentBuilder::new().created_ms(created_ms).domain()
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
        s.create_incident(&a, Some(&rid), &none(), None)
            .await
            .unwrap(),
        Created::New(a.clone())
    );
    let mut b = incident(2_000);
    b.title = "retry".into();
    assert_eq!(
        s.create_incident(&b, Some(&rid), &none(), None)
            .await
            .unwrap(),
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
        s.create_incident(&c, None, &none(), None).await.unwrap(),
        Created::IdTaken
    );
    assert_eq!(s.get_incident(&a.id).await.unwrap(), Some(a));
}

async fn incident_updates_compare_and_set(s: Arc<dyn Store>) {
    let a = incident(1_000);
    s.create_incident(&a, None, &none(), None).await.unwrap();
    let mut b = a.clone();
    b.set_status(IncidentStatus::Resolved, Utc::now());
    assert_eq!(
        s.update_incident(1, &b, &none(), None).await.unwrap(),
        Cas::Written
    );
    let mut stale = a.clone();
    stale.set_status(IncidentStatus::Closed, Utc::now());
    assert_eq!(
        s.update_incident(1, &stale, &none(), None).await.unwrap(),
        Cas::Conflict(Some(b.clone()))
    );
    assert_eq!(s.get_incident(&a.id).await.unwrap(), Some(b));
}

async fn decision_creation_is_single_flight(s: Arc<dyn Store>) {
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let first = decision(&inc.id);
    let second = decision(&inc.id);
    assert_eq!(
        s.create_decision(None, &first, &none(), None)
            .await
            .unwrap(),
        Cas::Written
    );
    assert_eq!(
        s.create_decision(None, &second, &none(), None)
            .await
            .unwrap(),
        Cas::Conflict(Some(first.clone())),
        "a second creator sees the first token"
    );
    assert_eq!(s.get_decision(&second.token).await.unwrap(), None);
    let (i, cur) = s.incident_and_current(&inc.id).await.unwrap();
    assert_eq!(i, Some(inc.clone()));
    assert_eq!(cur, Some(first.clone()));
    // Replacing requires naming the current token.
    assert_eq!(
        s.create_decision(Some(&first.token), &second, &none(), None)
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
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let d = decision(&inc.id);
    s.create_decision(None, &d, &none(), None).await.unwrap();
    let ready = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    assert_eq!(
        s.update_decision(d.version, &ready, &none(), None)
            .await
            .unwrap(),
        Cas::Written
    );
    let other = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    assert_eq!(
        s.update_decision(d.version, &other, &none(), None)
            .await
            .unwrap(),
        Cas::Conflict(Some(ready.clone()))
    );
    assert_eq!(s.get_decision(&d.token).await.unwrap(), Some(ready));
}

/// A reader's read (`get_decision_cached`, which the Redis store may answer
/// from the replica's copy while it follows the change feed) sees every
/// write, and a lost compare-and-set changes nothing it returns.
async fn cached_reads_see_every_write(s: Arc<dyn Store>) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let following = s
        .follow_changes(Arc::new(|_| {}), shutdown.clone())
        .await
        .unwrap();
    let feed = tokio::spawn(following);
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let d = decision(&inc.id);
    s.create_decision(None, &d, &none(), None).await.unwrap();
    assert_eq!(
        s.get_decision_cached(&d.token).await.unwrap(),
        Some(d.clone())
    );
    let ready = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    s.update_decision(d.version, &ready, &none(), None)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            s.get_decision_cached(&d.token).await.unwrap(),
            Some(ready.clone())
        );
        let (i, cur, _) = s.incident_and_current_cached(&inc.id).await.unwrap();
        assert_eq!(
            (i.map(|i| i.id), cur),
            (Some(inc.id.clone()), Some(ready.clone()))
        );
    }
    // A newer decision for the incident becomes its current one.
    let next = decision(&inc.id);
    s.create_decision(Some(&d.token), &next, &none(), None)
        .await
        .unwrap();
    let (_, cur, _) = s.incident_and_current_cached(&inc.id).await.unwrap();
    assert_eq!(cur, Some(next));
    let stale = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    assert!(matches!(
        s.update_decision(d.version, &stale, &none(), None)
            .await
            .unwrap(),
        Cas::Conflict(_)
    ));
    assert_eq!(s.get_decision_cached(&d.token).await.unwrap(), Some(ready));
    let unknown = decision(&inc.id);
    assert_eq!(s.get_decision_cached(&unknown.token).await.unwrap(), None);
    shutdown.cancel();
    feed.await.unwrap();
}

async fn history_is_newest_first_and_capped(s: Arc<dyn Store>) {
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let mut prev: Option<Decision> = None;
    let mut all = vec![];
    for _ in 0..5 {
        let d = decision(&inc.id);
        assert_eq!(
            s.create_decision(prev.as_ref().map(|p| &p.token), &d, &none(), None)
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
        s.create_incident(&i, None, &none(), None).await.unwrap();
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

/// A decision whose analysis deadline is `secs` from now.
fn analyzing(id: &IncidentId, secs: i64) -> Decision {
    let now = Utc::now();
    Decision::start(
        id.clone(),
        DecisionMode::Dual,
        now,
        Duration::hours(1),
        now + Duration::seconds(secs),
    )
}

async fn overdue_analyses_come_from_an_index_kept_with_the_state(s: Arc<dyn Store>) {
    let mut ds = vec![];
    for secs in [-5, -60, 3600, -30] {
        let inc = incident(1_000);
        s.create_incident(&inc, None, &none(), None).await.unwrap();
        let d = analyzing(&inc.id, secs);
        assert_eq!(
            s.create_decision(None, &d, &none(), None).await.unwrap(),
            Cas::Written
        );
        ds.push(d);
    }
    let now = Utc::now();
    let tokens = |v: &[&Decision]| v.iter().map(|d| d.token.clone()).collect::<Vec<_>>();
    assert_eq!(
        s.overdue_analyses(now, 10).await.unwrap(),
        tokens(&[&ds[1], &ds[3], &ds[0]]),
        "earliest deadline first; the one not yet due is left out"
    );
    assert_eq!(
        s.overdue_analyses(now, 2).await.unwrap(),
        tokens(&[&ds[1], &ds[3]])
    );
    assert_eq!(
        s.overdue_analyses(now - Duration::seconds(40), 10)
            .await
            .unwrap(),
        tokens(&[&ds[1]])
    );

    // Leaving ANALYZING leaves the index, in the same write.
    let ready = ds[1].transition(DecisionState::Ready, 0, now).unwrap();
    assert_eq!(
        s.update_decision(1, &ready, &none(), None).await.unwrap(),
        Cas::Written
    );
    // A lost compare-and-set changes nothing.
    let late = ds[3].transition(DecisionState::Ready, 0, now).unwrap();
    assert!(matches!(
        s.update_decision(7, &late, &none(), None).await.unwrap(),
        Cas::Conflict(_)
    ));
    assert_eq!(
        s.overdue_analyses(now, 10).await.unwrap(),
        tokens(&[&ds[3], &ds[0]])
    );
    s.forget_analysis(&ds[3].token).await.unwrap();
    s.forget_analysis(&ds[3].token).await.unwrap();
    assert_eq!(
        s.overdue_analyses(now, 10).await.unwrap(),
        tokens(&[&ds[0]])
    );

    // A decision that loses the creation race is never indexed.
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let first = analyzing(&inc.id, -1);
    let loser = analyzing(&inc.id, -100);
    s.create_decision(None, &first, &none(), None)
        .await
        .unwrap();
    assert!(matches!(
        s.create_decision(None, &loser, &none(), None)
            .await
            .unwrap(),
        Cas::Conflict(_)
    ));
    assert!(
        !s.overdue_analyses(now, 10)
            .await
            .unwrap()
            .contains(&loser.token)
    );
}

async fn proposals_are_cached_by_signature(s: Arc<dyn Store>) {
    let mut a = incident(1_000);
    a.affected_services = vec![K8sName::parse("checkout").unwrap()];
    let mut b = a.clone();
    b.severity = Severity::P1;
    let (sa, sb) = (Signature::of(&a, "dual"), Signature::of(&b, "dual"));
    let expert = ExpertEngine::builtin();
    let p = expert.propose(&a);
    let ttl = std::time::Duration::from_secs(60);
    assert_eq!(s.cached_proposal(&sa).await.unwrap(), None);
    s.cache_proposal(&sa, &p, ttl).await.unwrap();
    assert_eq!(s.cached_proposal(&sa).await.unwrap(), Some(p.clone()));
    assert_eq!(s.cached_proposal(&sb).await.unwrap(), None);
    assert_eq!(
        s.cached_proposal(&Signature::of(&a, "consensus"))
            .await
            .unwrap(),
        None,
        "scoped by engine"
    );
    let mut p2 = p.clone();
    p2.reasoning = "newer".into();
    s.cache_proposal(&sa, &p2, ttl).await.unwrap();
    assert_eq!(s.cached_proposal(&sa).await.unwrap(), Some(p2));
}

async fn group_pointers_compare_and_set(s: Arc<dyn Store>) {
    let g = GroupKey::of("namespace=shop,service=checkout");
    let other = GroupKey::of("namespace=shop,service=cart");
    let (a, b, c) = (
        IncidentId::generate(),
        IncidentId::generate(),
        IncidentId::generate(),
    );
    assert_eq!(s.group_incident(&g).await.unwrap(), None);
    assert_eq!(
        s.set_group_incident(&g, None, &a).await.unwrap(),
        Cas::Written
    );
    assert_eq!(
        s.set_group_incident(&g, None, &b).await.unwrap(),
        Cas::Conflict(Some(a.clone())),
        "a second claimer sees the first"
    );
    assert_eq!(
        s.set_group_incident(&g, None, &a).await.unwrap(),
        Cas::Written,
        "pointing at what it already points at succeeds (a racer that opened the same incident)"
    );
    assert_eq!(
        s.set_group_incident(&g, Some(&a), &b).await.unwrap(),
        Cas::Written
    );
    assert_eq!(
        s.set_group_incident(&g, Some(&a), &c).await.unwrap(),
        Cas::Conflict(Some(b.clone())),
        "a stale expectation never moves the pointer back"
    );
    assert_eq!(s.group_incident(&g).await.unwrap(), Some(b));
    assert_eq!(s.group_incident(&other).await.unwrap(), None);
}

async fn executions_are_indexed_with_the_state_and_leased_exclusively(s: Arc<dyn Store>) {
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let d = analyzing(&inc.id, 30);
    s.create_decision(None, &d, &none(), None).await.unwrap();
    let now = Utc::now();
    let ready = d.transition(DecisionState::Ready, 0, now).unwrap();
    s.update_decision(1, &ready, &none(), None).await.unwrap();
    assert!(
        s.overdue_executions(now + Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Entering EXECUTING enters the index, due at once.
    let executing = ready.transition(DecisionState::Executing, 0, now).unwrap();
    s.update_decision(2, &executing, &none(), None)
        .await
        .unwrap();
    assert_eq!(
        s.overdue_executions(now, 10).await.unwrap(),
        vec![d.token.clone()]
    );

    // One owner at a time; the owner renews; a lease moves the entry to its expiry.
    let ttl = std::time::Duration::from_secs(60);
    assert!(s.take_lease(&d.token, "a", ttl, now).await.unwrap());
    assert!(!s.take_lease(&d.token, "b", ttl, now).await.unwrap());
    assert!(
        s.take_lease(&d.token, "a", ttl, now).await.unwrap(),
        "renewed"
    );
    assert!(
        s.overdue_executions(now, 10).await.unwrap().is_empty(),
        "leased: not due"
    );
    assert_eq!(
        s.overdue_executions(now + Duration::seconds(61), 10)
            .await
            .unwrap(),
        vec![d.token.clone()],
        "due again once the lease would have run out"
    );
    // Only the holder releases it.
    s.release_lease(&d.token, "b").await.unwrap();
    assert!(!s.take_lease(&d.token, "b", ttl, now).await.unwrap());
    s.release_lease(&d.token, "a").await.unwrap();
    assert!(s.take_lease(&d.token, "b", ttl, now).await.unwrap());

    // Completing leaves the index, in the same write; a lease taken later
    // does not put it back.
    let done = executing
        .transition(DecisionState::Completed, 0, now)
        .unwrap();
    s.update_decision(3, &done, &none(), None).await.unwrap();
    s.release_lease(&d.token, "b").await.unwrap();
    assert!(s.take_lease(&d.token, "c", ttl, now).await.unwrap());
    assert!(
        s.overdue_executions(now + Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    s.forget_execution(&d.token).await.unwrap();
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
    cached_reads_see_every_write,
    history_is_newest_first_and_capped,
    listing_pages_newest_first_with_ties,
    overdue_analyses_come_from_an_index_kept_with_the_state,
    proposals_are_cached_by_signature,
    group_pointers_compare_and_set,
    executions_are_indexed_with_the_state_and_leased_exclusively,
);

/// With the chat outbox on, a decision change enqueues its card's update in
/// the same write (and a lost compare-and-set enqueues nothing); while the
/// job is claimed, a change is kept pending, not handed to a second worker,
/// and is due again once the claim settles.
async fn decision_changes_enqueue_their_card_with_the_write(s: Arc<dyn Store>) {
    let lease = std::time::Duration::from_secs(30);
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let d = decision(&inc.id);
    s.create_decision(None, &d, &none(), None).await.unwrap();
    let later = || Utc::now() + Duration::seconds(1);
    assert_eq!(s.outbox_claim(later(), lease).await.unwrap(), None);

    let stale = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    let ready = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    s.update_decision(d.version, &ready, &none(), None)
        .await
        .unwrap();
    let claim = s
        .outbox_claim(later(), lease)
        .await
        .unwrap()
        .expect("READY enqueued its card");
    assert_eq!(claim.token, d.token);

    // A lost compare-and-set changes nothing, enqueues nothing.
    assert!(matches!(
        s.update_decision(d.version, &stale, &none(), None)
            .await
            .unwrap(),
        Cas::Conflict(_)
    ));
    let executing = ready
        .transition(DecisionState::Executing, 0, Utc::now())
        .unwrap();
    s.update_decision(ready.version, &executing, &none(), None)
        .await
        .unwrap();
    assert_eq!(
        s.outbox_claim(later(), lease).await.unwrap(),
        None,
        "claimed: the change waits for the claim"
    );
    s.outbox_done(&claim).await.unwrap();
    let again = s
        .outbox_claim(later(), lease)
        .await
        .unwrap()
        .expect("the change made during the claim is due");
    assert_eq!(again.token, d.token);
    s.outbox_done(&again).await.unwrap();
    assert_eq!(s.outbox_claim(later(), lease).await.unwrap(), None);
}

#[tokio::test]
async fn memory_store_decision_changes_enqueue_their_card_with_the_write() {
    decision_changes_enqueue_their_card_with_the_write(Arc::new(
        MemoryStore::new(retention()).with_chat_outbox(),
    ))
    .await;
}

#[tokio::test]
async fn redis_store_decision_changes_enqueue_their_card_with_the_write() {
    let r = RedisServer::start();
    let store = RedisStore::new(
        &r.url(),
        PoolConfig {
            size: 4,
            wait: std::time::Duration::from_secs(2),
            ..Default::default()
        },
        retention(),
    )
    .expect("store")
    .with_chat_outbox();
    decision_changes_enqueue_their_card_with_the_write(Arc::new(store)).await;
}

/// Without a notifier nothing is enqueued: no outbox grows that nobody
/// drains.
#[tokio::test]
async fn without_the_chat_outbox_nothing_is_enqueued() {
    let s: Arc<dyn Store> = Arc::new(MemoryStore::new(retention()));
    let inc = incident(1_000);
    s.create_incident(&inc, None, &none(), None).await.unwrap();
    let d = decision(&inc.id);
    s.create_decision(None, &d, &none(), None).await.unwrap();
    let ready = d.transition(DecisionState::Ready, 0, Utc::now()).unwrap();
    s.update_decision(d.version, &ready, &none(), None)
        .await
        .unwrap();
    let later = Utc::now() + Duration::seconds(1);
    assert_eq!(
        s.outbox_claim(later, std::time::Duration::from_secs(30))
            .await
            .unwrap(),
        None
    );
}

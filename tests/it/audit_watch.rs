//! `WatchAuditEvents` and `verdict audit tail` against a real Redis (and
//! the memory store): a watcher sees a new event live, a watcher resuming
//! from its last position misses nothing and repeats nothing, shutdown ends
//! the stream with UNAVAILABLE naming the resume point, and the CLI prints
//! one JSON object per line.

use crate::common::{self, RedisServer, TestServer, create_incident, within};
use std::sync::Arc;
use std::time::Duration;
use tonic::Streaming;
use verdict::audit::{Action, DEVELOPMENT_KEY, Event, Signer};
use verdict::clock::SystemClock;
use verdict::manager::{AuditFilter, AuditLog};
use verdict::proto::audit_service_client::AuditServiceClient;
use verdict::proto::{
    AuditEvent, AuditFilter as PbFilter, WatchAuditEventsRequest, WatchAuditEventsResponse,
};
use verdict::store::{MemoryStore, Retention, Store};

const LIMIT: Duration = Duration::from_secs(10);

async fn watch(
    s: &TestServer,
    after: &str,
    filter: PbFilter,
) -> Streaming<WatchAuditEventsResponse> {
    AuditServiceClient::new(s.channel.clone())
        .watch_audit_events(WatchAuditEventsRequest {
            filter: Some(filter),
            after: after.to_owned(),
        })
        .await
        .expect("watch starts")
        .into_inner()
}

async fn next(stream: &mut Streaming<WatchAuditEventsResponse>) -> AuditEvent {
    within(LIMIT, "next audit event", stream.message())
        .await
        .expect("stream ok")
        .expect("stream open")
        .event
        .expect("an event")
}

fn created() -> PbFilter {
    PbFilter {
        action: "incident_created".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_watcher_sees_a_new_event_live() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(common::config(Some(&redis))).await;
    // An event from before the watch is not replayed: it starts now.
    create_incident(&mut s, "Before").await;
    let mut stream = watch(&s, "", PbFilter::default()).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let e = next(&mut stream).await;
    assert_eq!(e.action, "incident_created");
    assert_eq!(e.incident_id, id);
    assert_eq!(e.outcome, "OK");
    assert!(!e.position.is_empty() && !e.hash.is_empty());
}

#[tokio::test]
async fn resuming_after_the_last_position_misses_nothing_and_repeats_nothing() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(common::config(Some(&redis))).await;
    let mut stream = watch(&s, "", created()).await;
    let first = create_incident(&mut s, "First").await;
    let seen = next(&mut stream).await;
    assert_eq!(seen.incident_id, first);
    drop(stream);

    // Made while nobody watched; more than one batch would be overkill here,
    // but several, so that order and completeness both show.
    let mut missed = Vec::new();
    for i in 0..7 {
        missed.push(create_incident(&mut s, &format!("Missed{i}")).await);
    }
    let mut stream = watch(&s, &seen.position, created()).await;
    for want in &missed {
        assert_eq!(&next(&mut stream).await.incident_id, want);
    }
    // And then it carries on live.
    let live = create_incident(&mut s, "Live").await;
    assert_eq!(next(&mut stream).await.incident_id, live);
}

#[tokio::test]
async fn shutdown_ends_the_stream_with_unavailable_naming_the_resume_point() {
    let mut s = TestServer::start(common::config(None)).await;
    let mut stream = watch(&s, "", PbFilter::default()).await;
    create_incident(&mut s, "PodCrashLooping").await;
    let seen = next(&mut stream).await;
    s.running
        .as_ref()
        .expect("running")
        .shutdown_token()
        .cancel();
    let end = within(LIMIT, "stream end", stream.message())
        .await
        .expect_err("ends with a status");
    assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
    assert!(
        end.message().contains(&format!("after={}", seen.position)),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_watch_refuses_an_end_time_and_a_foreign_position() {
    let s = TestServer::start(common::config(None)).await;
    let mut client = AuditServiceClient::new(s.channel.clone());
    for req in [
        WatchAuditEventsRequest {
            after: "not-a-position".into(),
            ..Default::default()
        },
        WatchAuditEventsRequest {
            filter: Some(PbFilter {
                to: Some(prost_types::Timestamp::default()),
                ..Default::default()
            }),
            ..Default::default()
        },
    ] {
        let err = client.watch_audit_events(req).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    }
}

#[tokio::test]
async fn the_memory_store_wakes_a_watcher_on_append() {
    use futures::StreamExt;
    use verdict::audit::Draft;
    let signer = Signer::new(DEVELOPMENT_KEY);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(Retention::default()).with_audit(signer));
    let log = AuditLog::new(store.clone(), Arc::new(SystemClock));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut stream = log
        .watch(AuditFilter::default(), None, shutdown.clone())
        .await
        .expect("watch");
    let incident = common::IncidentBuilder::new().domain();
    let draft = Draft::incident_change(Action::IncidentCreated, 0, &incident);
    store
        .create_incident(
            &incident,
            None,
            &verdict::stats::StatDelta::none(),
            Some(&draft),
        )
        .await
        .expect("create");
    let (_, e): (_, Event) = within(LIMIT, "memory event", stream.next())
        .await
        .expect("open")
        .expect("ok");
    assert_eq!(e.action, Action::IncidentCreated);
    shutdown.cancel();
    let end = within(LIMIT, "end", stream.next()).await.expect("an end");
    assert!(end.is_err());
}

#[tokio::test]
async fn the_cli_tails_one_json_object_per_line() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(common::config(Some(&redis))).await;
    let before = create_incident(&mut s, "Before").await;
    // --since replays the kept events first, so the tail cannot miss the
    // one made before it connected, whenever it connects.
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args([
            "audit",
            "tail",
            "--since",
            "1h",
            "--action",
            "incident_created",
            "--limit",
            "2",
            "--json",
            "--addr",
        ])
        .arg(s.http_base())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run verdict");
    let after = create_incident(&mut s, "After").await;
    let out = within(LIMIT, "verdict audit tail", child.wait_with_output())
        .await
        .expect("tail output");
    assert!(out.status.success(), "{out:?}");
    let events: Vec<Event> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let ids: Vec<_> = events.iter().filter_map(|e| e.incident.clone()).collect();
    assert_eq!(ids, [before, after]);
}

#[tokio::test]
async fn audit_watches_are_capped_per_replica_and_a_closed_one_frees_its_place() {
    let s = TestServer::start(common::config(None)).await;
    let max = verdict::api::MAX_AUDIT_WATCHERS;
    let mut open = Vec::with_capacity(max);
    for _ in 0..max {
        open.push(watch(&s, "", PbFilter::default()).await);
    }
    let mut client = AuditServiceClient::new(s.channel.clone());
    let err = client
        .watch_audit_events(WatchAuditEventsRequest::default())
        .await
        .expect_err("one too many");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    drop(open.pop());
    // The server notices the cancelled stream on its own time: retried
    // until the place is free, each attempt answered at once.
    within(LIMIT, "a freed place", async {
        loop {
            match client
                .watch_audit_events(WatchAuditEventsRequest::default())
                .await
            {
                Ok(_) => break,
                Err(e) => assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}"),
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

//! Alert ingestion end to end: Alertmanager notifications posted over real
//! HTTP to in-process servers (and `IngestSignals` over gRPC), against a
//! private Redis. Payloads follow Alertmanager's documented webhook format.

use crate::common;

use common::{RedisServer, TestServer, config, violations};
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tonic::Code;
use verdict::domain::Severity;
use verdict::proto::{
    GetIncidentRequest, GetOrCreateDecisionRequest, IncidentStatus, IngestSignalsRequest,
    ListDecisionsRequest, ListIncidentsRequest, Signal, SignalStatus,
};

const PATH: &str = "/api/v1/alertmanager";

/// One alert as Alertmanager sends it.
fn alert(name: &str, fingerprint: &str, status: &str, labels: &[(&str, &str)]) -> Value {
    let mut l: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    l.insert("alertname".into(), name.into());
    let ends = if status == "resolved" {
        "2024-05-01T12:30:00Z"
    } else {
        "0001-01-01T00:00:00Z"
    };
    json!({
        "status": status,
        "labels": l,
        "annotations": {"summary": format!("{name} on checkout"), "description": "see the runbook"},
        "startsAt": "2024-05-01T12:00:00Z",
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    })
}

/// A version 4 notification around `alerts`.
fn notification(status: &str, alerts: Vec<Value>) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{namespace=\"shop\", service=\"checkout\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "verdict",
        "groupLabels": {"namespace": "shop", "service": "checkout"},
        "commonLabels": {"namespace": "shop", "service": "checkout"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
}

const CHECKOUT: [(&str, &str); 2] = [("namespace", "shop"), ("service", "checkout")];

fn labels(sev: &str) -> Vec<(&'static str, &str)> {
    let mut l = CHECKOUT.to_vec();
    l.push(("severity", sev));
    l
}

/// The three alerts of one group (namespace shop, service checkout).
fn three(status: &str) -> Vec<Value> {
    vec![
        alert(
            "HighLatency",
            "aaaa000000000001",
            status,
            &labels("warning"),
        ),
        alert(
            "PodCrashLooping",
            "aaaa000000000002",
            status,
            &labels("critical"),
        ),
        alert(
            "HighErrorRate",
            "aaaa000000000003",
            status,
            &labels("warning"),
        ),
    ]
}

/// Posts a body; returns the status and the JSON answer.
async fn post_raw(base: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{PATH}"))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

async fn post(s: &TestServer, payload: &Value) -> Value {
    let (status, body) = post_raw(
        &s.http_base(),
        Some("application/json"),
        serde_json::to_vec(payload).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn get_incident(s: &mut TestServer, id: &str) -> verdict::proto::Incident {
    s.incidents
        .get_incident(GetIncidentRequest { id: id.into() })
        .await
        .expect("get incident")
        .into_inner()
        .incident
        .expect("incident")
}

async fn all_incidents(s: &mut TestServer) -> Vec<verdict::proto::Incident> {
    s.incidents
        .list_incidents(ListIncidentsRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .incidents
}

/// Every key and its serialized value (test-only use of KEYS).
async fn snapshot(redis: &RedisServer) -> BTreeMap<String, Vec<u8>> {
    let mut conn = redis.conn().await;
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let v: Vec<u8> = redis::cmd("DUMP")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        out.insert(k, v);
    }
    out
}

/// Waits (through the API, with the server's own deadline) until the
/// incident's decision is READY, so no background analysis is still
/// writing when the store is compared.
async fn settle_decision(s: &mut TestServer, incident: &str) {
    s.decisions
        .get_or_create_decision(GetOrCreateDecisionRequest {
            incident_id: incident.into(),
            wait: true,
            ..Default::default()
        })
        .await
        .expect("decision");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_firing_alert_opens_an_incident_and_starts_its_decision() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let a = alert(
        "PodCrashLooping",
        "c2a5a3b1d4e5f607",
        "firing",
        &[
            ("namespace", "shop"),
            ("service", "checkout"),
            ("severity", "critical"),
            ("pod", "checkout-7d9f-abcde"),
        ],
    );
    let body = post(&s, &notification("firing", vec![a])).await;
    let touched = &body["incidents"][0];
    assert_eq!(touched["opened"], true, "{body}");
    assert_eq!(touched["status"], "OPEN");
    assert_eq!(touched["severity"], "P1", "critical maps to P1");
    assert_eq!(touched["group"], "namespace=shop, service=checkout");
    let id = touched["id"].as_str().unwrap().to_string();

    let inc = get_incident(&mut s, &id).await;
    assert_eq!(inc.title, "PodCrashLooping on checkout", "from the summary");
    assert_eq!(inc.affected_services, ["checkout"]);
    assert_eq!(inc.namespace, "shop");
    assert_eq!(inc.status, IncidentStatus::Open as i32);
    assert_eq!(inc.signals.len(), 1);
    let sig = &inc.signals[0];
    assert_eq!(sig.alert_name, "PodCrashLooping");
    assert_eq!(sig.fingerprint, "c2a5a3b1d4e5f607");
    assert_eq!(sig.status, SignalStatus::Firing as i32);
    assert!(sig.ends_at.is_none(), "Alertmanager's zero time is unset");
    assert_eq!(sig.generator_url, "http://prometheus:9090/graph?g0.expr=up");

    // Auto-decide: the decision was started before the webhook answered.
    let decisions = s
        .decisions
        .list_decisions(ListDecisionsRequest {
            incident_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decisions;
    assert_eq!(decisions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_three_is_one_incident_that_resolves_with_its_alerts() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let body = post(&s, &notification("firing", three("firing"))).await;
    assert_eq!(body["incidents"].as_array().unwrap().len(), 1, "{body}");
    let id = body["incidents"][0]["id"].as_str().unwrap().to_string();
    let inc = get_incident(&mut s, &id).await;
    assert_eq!(inc.signals.len(), 3);
    assert_eq!(
        inc.severity,
        verdict::proto::Severity::P1 as i32,
        "the most severe alert"
    );
    assert_eq!(
        inc.title, "HighLatency on checkout",
        "the first alert's summary"
    );

    // Two of three resolve: the incident stays open.
    let mut alerts = three("firing");
    alerts[0] = three("resolved").remove(0);
    alerts[1] = three("resolved").remove(1);
    let body = post(&s, &notification("firing", alerts)).await;
    assert_eq!(body["incidents"][0]["id"], id.as_str());
    assert_eq!(body["incidents"][0]["status"], "OPEN");
    let inc = get_incident(&mut s, &id).await;
    let resolved = inc
        .signals
        .iter()
        .filter(|s| s.status == SignalStatus::Resolved as i32)
        .count();
    assert_eq!((inc.signals.len(), resolved), (3, 2), "updated, not added");

    // The whole group resolves: so does the incident, through the normal
    // status path (resolved_at set, so resolution time is recorded).
    let body = post(&s, &notification("resolved", three("resolved"))).await;
    assert_eq!(body["incidents"][0]["auto_resolved"], true, "{body}");
    let inc = get_incident(&mut s, &id).await;
    assert_eq!(inc.status, IncidentStatus::Resolved as i32);
    let (created, resolved_at) = (inc.created_at.unwrap(), inc.resolved_at.unwrap());
    assert!(resolved_at.seconds >= created.seconds);
    assert_eq!(inc.status_actor, "verdict-ingest");
    assert!(inc.signals.iter().all(|s| s.ends_at.is_some()));

    // The same alerts firing again later (a new startsAt) are a new
    // occurrence: a new incident; the resolved one stays resolved.
    let mut again = three("firing");
    for a in &mut again {
        a["startsAt"] = "2024-05-01T14:00:00Z".into();
    }
    let body = post(&s, &notification("firing", again)).await;
    let new_id = body["incidents"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(body["incidents"][0]["opened"], true);
    assert_eq!(
        get_incident(&mut s, &id).await.status,
        IncidentStatus::Resolved as i32
    );
    assert_eq!(all_incidents(&mut s).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_webhook_changes_nothing() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let firing = notification("firing", three("firing"));
    let body = post(&s, &firing).await;
    let id = body["incidents"][0]["id"].as_str().unwrap().to_string();
    settle_decision(&mut s, &id).await;

    let before = snapshot(&redis).await;
    for _ in 0..3 {
        let body = post(&s, &firing).await;
        assert_eq!(body["incidents"][0]["id"], id.as_str());
        assert_eq!(body["incidents"][0]["changed"], false, "{body}");
    }
    assert_eq!(snapshot(&redis).await, before, "a replay writes nothing");

    // Resolved, then the resolution replayed, then the old firing
    // notification arriving late: nothing reopens or changes.
    let resolved = notification("resolved", three("resolved"));
    post(&s, &resolved).await;
    let after_resolve = snapshot(&redis).await;
    let body = post(&s, &resolved).await;
    assert_eq!(body["incidents"][0]["changed"], false, "{body}");
    let body = post(&s, &firing).await;
    assert_eq!(body["incidents"][0]["id"], id.as_str(), "no new incident");
    assert_eq!(body["incidents"][0]["status"], "RESOLVED");
    assert_eq!(snapshot(&redis).await, after_resolve);
    assert_eq!(all_incidents(&mut s).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_receiving_the_same_group_at_once_open_one_incident() {
    let redis = RedisServer::start();
    let a = TestServer::start(config(Some(&redis))).await;
    let mut b = TestServer::start(config(Some(&redis))).await;
    let rounds = 12;
    for round in 0..rounds {
        let svc = format!("svc-{round}");
        let l = [("namespace", "shop"), ("service", svc.as_str())];
        let shared = alert("HighLatency", &format!("{round:016x}"), "firing", &l);
        // Each replica also carries an alert the other does not.
        let only_a = alert("PodCrashLooping", &format!("a{round:015x}"), "firing", &l);
        let only_b = alert("HighErrorRate", &format!("b{round:015x}"), "firing", &l);
        let pa = notification("firing", vec![shared.clone(), only_a]);
        let pb = notification("firing", vec![shared, only_b]);
        let (ra1, ra2, rb1, rb2) =
            tokio::join!(post(&a, &pa), post(&a, &pa), post(&b, &pb), post(&b, &pb));
        let ids: Vec<&str> = [&ra1, &ra2, &rb1, &rb2]
            .iter()
            .map(|r| r["incidents"][0]["id"].as_str().unwrap())
            .collect();
        assert!(ids.iter().all(|i| *i == ids[0]), "round {round}: {ids:?}");
        let opened = [&ra1, &ra2, &rb1, &rb2]
            .iter()
            .filter(|r| r["incidents"][0]["opened"] == true)
            .count();
        assert_eq!(opened, 1, "round {round}: exactly one call opened it");
        let inc = get_incident(&mut b, ids[0]).await;
        assert_eq!(inc.signals.len(), 3, "round {round}: every alert merged");
        let decisions = b
            .decisions
            .list_decisions(ListDecisionsRequest {
                incident_id: inc.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .decisions;
        assert_eq!(decisions.len(), 1, "round {round}: one decision started");
    }
    assert_eq!(all_incidents(&mut b).await.len(), rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_and_change_nothing() {
    let redis = RedisServer::start();
    let mut cfg = config(Some(&redis));
    cfg.ingest.max_webhook_bytes = 8192;
    let mut s = TestServer::start(cfg).await;
    let id = post(&s, &notification("firing", three("firing"))).await["incidents"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    settle_decision(&mut s, &id).await;
    let before = snapshot(&redis).await;
    let base = s.http_base();
    let json_ct = Some("application/json");

    let fields = |v: &Value| -> Vec<String> {
        v["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("no violations in {v}"))
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_string())
            .collect()
    };
    let bad_400 = |mutate: &dyn Fn(&mut Value)| {
        let mut p = notification("firing", three("firing"));
        p["alerts"][1]["labels"]["service"] = "cart".into();
        mutate(&mut p);
        serde_json::to_vec(&p).unwrap()
    };
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (b"{\"version\": \"4\", ".to_vec(), vec!["body"]),
        (b"not json".to_vec(), vec!["body"]),
        (b"[1, 2]".to_vec(), vec!["body"]),
        (b"{}".to_vec(), vec!["version", "status", "alerts"]),
        (bad_400(&|p| p["version"] = "3".into()), vec!["version"]),
        (bad_400(&|p| p["status"] = "unknown".into()), vec!["status"]),
        (bad_400(&|p| p["alerts"] = json!([])), vec!["alerts"]),
        (
            bad_400(&|p| p["alerts"][0]["labels"] = json!("x")),
            vec!["alerts[0].labels"],
        ),
        (
            bad_400(&|p| {
                p["alerts"][2]["labels"]
                    .as_object_mut()
                    .unwrap()
                    .remove("alertname");
            }),
            vec!["alerts[2].labels.alertname"],
        ),
        (
            bad_400(&|p| {
                p["alerts"][1].as_object_mut().unwrap().remove("status");
            }),
            vec!["alerts[1].status"],
        ),
        (
            bad_400(&|p| p["alerts"][0]["startsAt"] = "yesterday".into()),
            vec!["alerts[0].startsAt"],
        ),
        (
            bad_400(&|p| p["alerts"][0]["fingerprint"] = "f".repeat(200).into()),
            vec!["alerts[0].fingerprint"],
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = post_raw(&base, json_ct, body.clone()).await;
        assert_eq!(status, 400, "{}: {answer}", String::from_utf8_lossy(&body));
        assert!(answer["error"].is_string(), "{answer}");
        let got = fields(&answer);
        assert_eq!(got, want, "{answer}");
    }

    // 413: declared too large, and too large without a declared length.
    let big = serde_json::to_vec(&notification(
        "firing",
        (0..60)
            .map(|n| alert("HighLatency", &format!("{n:016x}"), "firing", &CHECKOUT))
            .collect(),
    ))
    .unwrap();
    assert!(big.len() > 8192);
    let (status, answer) = post_raw(&base, json_ct, big.clone()).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].is_string());
    assert_eq!(chunked_post(&s, &big).await, 413);

    // 415: not JSON.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, answer) = post_raw(
            &base,
            ct,
            serde_json::to_vec(&notification("firing", three("firing"))).unwrap(),
        )
        .await;
        assert_eq!(status, 415, "{ct:?}: {answer}");
        assert!(answer["error"].is_string());
    }

    assert_eq!(snapshot(&redis).await, before, "nothing stored or changed");
}

/// Posts `body` with chunked transfer encoding (no Content-Length), over a
/// raw HTTP/1.1 connection; returns the response status.
async fn chunked_post(s: &TestServer, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.running.as_ref().unwrap().addr;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(1000) {
        req.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend(chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = conn.write_all(&req).await;
    let mut resp = Vec::new();
    let _ = conn.read_to_end(&mut resp).await;
    let head = String::from_utf8_lossy(&resp);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_signals_over_grpc_shares_the_implementation() {
    let redis = RedisServer::start();
    let mut cfg = config(Some(&redis));
    cfg.ingest.severity_map.insert("page".into(), Severity::P0);
    cfg.ingest.auto_decide = false;
    cfg.ingest.auto_resolve = false;
    let mut s = TestServer::start(cfg).await;
    let sig = |name: &str, key: &str, status: SignalStatus| Signal {
        alert_name: name.into(),
        labels: [
            ("incident_key".to_string(), key.to_string()),
            ("severity".to_string(), "page".to_string()),
            ("app".to_string(), "Payments_API".to_string()),
            ("job".to_string(), "payments".to_string()),
        ]
        .into(),
        status: status as i32,
        ..Default::default()
    };
    let req = IngestSignalsRequest {
        signals: vec![
            sig("DbDown", "db-outage", SignalStatus::Firing),
            sig("DbSlow", "db-outage", SignalStatus::Firing),
            sig("DiskFull", "disk", SignalStatus::Firing),
        ],
    };
    let out = s
        .incidents
        .ingest_signals(req.clone())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(out.len(), 2, "grouped by incident_key");
    let db = &out[0];
    assert_eq!(db.signals.len(), 2);
    assert_eq!(
        db.severity,
        verdict::proto::Severity::P0 as i32,
        "page → P0 by config"
    );
    assert_eq!(
        db.affected_services,
        ["payments"],
        "the invalid app label is kept as a label, never a target"
    );
    assert_eq!(db.signals[0].labels["app"], "Payments_API");
    assert!(
        db.signals.iter().all(|s| s.fingerprint.len() == 16),
        "derived fingerprints"
    );

    // Without fingerprints, a repeat still deduplicates.
    let again = s
        .incidents
        .ingest_signals(req)
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(again[0].version, db.version, "unchanged");
    assert_eq!(again[0].signals.len(), 2);

    // auto_resolve off: everything resolved leaves the incident open.
    let resolved = IngestSignalsRequest {
        signals: vec![
            sig("DbDown", "db-outage", SignalStatus::Resolved),
            sig("DbSlow", "db-outage", SignalStatus::Resolved),
        ],
    };
    let r = s
        .incidents
        .ingest_signals(resolved)
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(r[0].status, IncidentStatus::Open as i32);
    assert!(
        r[0].signals
            .iter()
            .all(|s| s.status == SignalStatus::Resolved as i32)
    );
    // auto_decide off: no decision was started.
    let d = s
        .decisions
        .list_decisions(ListDecisionsRequest {
            incident_id: db.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decisions;
    assert!(d.is_empty());

    // Bad input: INVALID_ARGUMENT with field violations, nothing stored.
    let before = snapshot(&redis).await;
    let mut bad = sig("", "x", SignalStatus::Firing);
    bad.starts_at = Some(prost_types::Timestamp {
        seconds: 0,
        nanos: -1,
    });
    let e = s
        .incidents
        .ingest_signals(IngestSignalsRequest {
            signals: vec![sig("Fine", "y", SignalStatus::Firing), bad],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let v = violations(&e);
    assert!(v.contains(&"signals[1].alert_name".to_string()), "{v:?}");
    assert!(v.contains(&"signals[1].starts_at".to_string()), "{v:?}");
    let e = s
        .incidents
        .ingest_signals(IngestSignalsRequest {
            signals: vec![sig("Many", "z", SignalStatus::Firing); 1001],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["signals"]);
    assert_eq!(snapshot(&redis).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_ingests_the_same_way() {
    let mut s = TestServer::start(config(None)).await;
    let body = post(&s, &notification("firing", three("firing"))).await;
    let id = body["incidents"][0]["id"].as_str().unwrap().to_string();
    let body = post(&s, &notification("firing", three("firing"))).await;
    assert_eq!(body["incidents"][0]["changed"], false);
    post(&s, &notification("resolved", three("resolved"))).await;
    let inc = get_incident(&mut s, &id).await;
    assert_eq!(inc.status, IncidentStatus::Resolved as i32);
    assert!(inc.resolved_at.is_some());
}

/// A replica that created a group's incident and died before moving the
/// group pointer or starting the decision: the next call derives the same
/// id, joins that incident instead of opening another, moves the pointer
/// and starts the decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_creating_and_pointing_is_caught_up() {
    use std::sync::Arc;
    use verdict::domain::{Signal as DomainSignal, SignalStatus as S};
    use verdict::ingest::{IngestSettings, Ingestor, Policy, merge};
    use verdict::manager::{DecisionManager, DecisionSettings, ExecutorKind};
    use verdict::store::{RedisStore, Retention, Store};

    let redis = RedisServer::start();
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::new(
            &redis.url(),
            verdict::store::redis::PoolConfig {
                size: 4,
                wait: std::time::Duration::from_secs(2),
                ..Default::default()
            },
            Retention::default(),
        )
        .unwrap(),
    );
    let clock: Arc<dyn verdict::clock::Clock> = Arc::new(verdict::clock::SystemClock);
    let expert = Arc::new(verdict::engine::ExpertEngine::builtin());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let decisions = Arc::new(DecisionManager::new(
        store.clone(),
        expert.clone(),
        expert,
        clock.clone(),
        DecisionSettings {
            token_ttl: std::time::Duration::from_secs(3600),
            default_timeout: std::time::Duration::from_secs(5),
            executor: ExecutorKind::External,
            history_len: 100,
        },
        shutdown.clone(),
    ));
    let ingestor = Ingestor::new(
        store.clone(),
        decisions.clone(),
        clock,
        IngestSettings::default(),
    );
    let signal = DomainSignal {
        alert_name: "PodCrashLooping".into(),
        labels: [("namespace", "shop"), ("service", "checkout")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        annotations: Default::default(),
        starts_at: None,
        ends_at: None,
        fingerprint: "0123456789abcdef".into(),
        status: S::Firing,
        generator_url: String::new(),
    };
    // What the crashed replica left: the incident, nothing else.
    let policy = Policy::default();
    let group = policy.group_of(&signal);
    let id = group.key.incident_id_after(None);
    let (orphan, _) = merge::open(
        &policy,
        id.clone(),
        std::slice::from_ref(&signal),
        chrono::Utc::now(),
    );
    store
        .create_incident(
            &orphan,
            None,
            &verdict::stats::record::incident(None, &orphan),
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.group_incident(&group.key).await.unwrap(), None);

    let report = ingestor.ingest(vec![signal]).await.unwrap();
    assert_eq!(report.incidents.len(), 1);
    let t = &report.incidents[0];
    assert_eq!(t.incident.id, id, "joined, not opened anew");
    assert!(!t.opened && !t.changed);
    assert_eq!(
        store.group_incident(&group.key).await.unwrap(),
        Some(id.clone())
    );
    assert_eq!(
        store.list_decisions(&id, 10).await.unwrap().len(),
        1,
        "the decision the crashed replica never started"
    );
    let (all, _) = store.list_incidents(None, 10).await.unwrap();
    assert_eq!(all.len(), 1);
    shutdown.cancel();
    decisions.drain(std::time::Duration::from_secs(2)).await;
}

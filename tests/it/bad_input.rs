//! Bad input from every RPC: INVALID_ARGUMENT with field violations, and
//! nothing that is stored changes (every key's value compared byte for byte).

use crate::common;

use common::{
    IncidentBuilder, RedisServer, TestServer, config, create_incident, decide, violations,
};
use redis::AsyncCommands;
use std::collections::BTreeMap;
use tonic::Code;
use verdict::proto::{
    ApproveDecisionRequest, CompleteDecisionRequest, CreateIncidentRequest, GetDecisionRequest,
    GetIncidentRequest, GetOrCreateDecisionRequest, Incident, ListDecisionsRequest,
    ListIncidentsRequest, RejectDecisionRequest, UpdateIncidentStatusRequest,
};

/// Every key and its serialized value (test-only use of KEYS).
async fn snapshot(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let v: Vec<u8> = redis::cmd("DUMP").arg(&k).query_async(conn).await.unwrap();
        out.insert(k, v);
    }
    out
}

fn expect_invalid(r: Result<impl std::fmt::Debug, tonic::Status>, fields: &[&str]) {
    let e = r.expect_err("must be refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let got = violations(&e);
    for f in fields {
        assert!(
            got.iter().any(|g| g == f),
            "missing violation {f} in {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_field_violations_and_change_nothing() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = create_incident(&mut s, "PodCrashLooping").await;
    let d = decide(&mut s, &id).await;
    let mut conn = redis.conn().await;
    let before = snapshot(&mut conn).await;

    let create = |f: &dyn Fn(&mut Incident)| {
        let mut i = IncidentBuilder::alerting("t", "PodCrash", "checkout").proto();
        f(&mut i);
        CreateIncidentRequest {
            incident: Some(i),
            request_id: String::new(),
        }
    };
    let cases: Vec<(CreateIncidentRequest, Vec<&str>)> = vec![
        (CreateIncidentRequest::default(), vec!["incident"]),
        (create(&|i| i.title.clear()), vec!["incident.title"]),
        (
            create(&|i| i.title = "x".repeat(300)),
            vec!["incident.title"],
        ),
        (create(&|i| i.severity = 0), vec!["incident.severity"]),
        (create(&|i| i.severity = 99), vec!["incident.severity"]),
        (
            create(&|i| i.affected_services = vec!["checkout; rm -rf /".into()]),
            vec!["incident.affected_services[0]"],
        ),
        (
            create(&|i| i.affected_services = vec!["ok".into(), "$(id)".into()]),
            vec!["incident.affected_services[1]"],
        ),
        (
            create(&|i| i.namespace = "Prod`id`".into()),
            vec!["incident.namespace"],
        ),
        (create(&|i| i.id = "INC-{x}".into()), vec!["incident.id"]),
        (
            create(&|i| i.signals[0].alert_name.clear()),
            vec!["incident.signals[0].alert_name"],
        ),
        (
            create(&|i| i.signals = vec![i.signals[0].clone(); 101]),
            vec!["incident.signals"],
        ),
        (
            create(&|i| {
                i.signals[0].labels.insert("k".into(), "v".repeat(2000));
            }),
            vec!["incident.signals[0].labels[k]"],
        ),
        (
            create(&|i| {
                i.signals[0].starts_at = Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                })
            }),
            vec!["incident.signals[0].starts_at"],
        ),
        (
            CreateIncidentRequest {
                request_id: "bad id!".into(),
                ..create(&|_| {})
            },
            vec!["request_id"],
        ),
    ];
    for (req, fields) in cases {
        expect_invalid(s.incidents.create_incident(req).await, &fields);
    }
    expect_invalid(
        s.incidents
            .get_incident(GetIncidentRequest { id: String::new() })
            .await,
        &["id"],
    );
    expect_invalid(
        s.incidents
            .list_incidents(ListIncidentsRequest {
                page_size: -1,
                ..Default::default()
            })
            .await,
        &["page_size"],
    );
    expect_invalid(
        s.incidents
            .list_incidents(ListIncidentsRequest {
                status: 42,
                service: "A B".into(),
                ..Default::default()
            })
            .await,
        &["status", "service"],
    );
    expect_invalid(
        s.incidents
            .update_incident_status(UpdateIncidentStatusRequest {
                request_id: String::new(),
                id: id.clone(),
                status: 0,
                actor: "a".into(),
                note: String::new(),
            })
            .await,
        &["status"],
    );
    expect_invalid(
        s.incidents
            .update_incident_status(UpdateIncidentStatusRequest {
                request_id: String::new(),
                id: id.clone(),
                status: 3,
                actor: "a".repeat(200),
                note: String::new(),
            })
            .await,
        &["actor"],
    );
    expect_invalid(
        s.decisions
            .get_or_create_decision(GetOrCreateDecisionRequest {
                incident_id: id.clone(),
                mode: 9,
                ..Default::default()
            })
            .await,
        &["mode"],
    );
    expect_invalid(
        s.decisions
            .get_or_create_decision(GetOrCreateDecisionRequest {
                incident_id: id.clone(),
                timeout: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await,
        &["timeout"],
    );
    expect_invalid(
        s.decisions
            .get_or_create_decision(GetOrCreateDecisionRequest {
                incident_id: id.clone(),
                timeout: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await,
        &["timeout"],
    );
    expect_invalid(
        s.decisions
            .get_decision(GetDecisionRequest {
                token: "nope".into(),
            })
            .await,
        &["token"],
    );
    expect_invalid(
        s.decisions
            .list_decisions(ListDecisionsRequest {
                incident_id: "a b".into(),
            })
            .await,
        &["incident_id"],
    );
    expect_invalid(
        s.decisions
            .approve_decision(ApproveDecisionRequest {
                request_id: String::new(),
                token: d.token.clone(),
                actor: String::new(),
                expected_version: 0,
            })
            .await,
        &["actor"],
    );
    expect_invalid(
        s.decisions
            .reject_decision(RejectDecisionRequest {
                request_id: String::new(),
                token: d.token.clone(),
                actor: "a".into(),
                reason: "r".repeat(5000),
                expected_version: 0,
            })
            .await,
        &["reason"],
    );
    expect_invalid(
        s.decisions
            .complete_decision(CompleteDecisionRequest {
                lease_id: String::new(),
                request_id: String::new(),
                token: "DEC-x".into(),
                success: true,
                output: String::new(),
            })
            .await,
        &["token"],
    );

    assert_eq!(
        snapshot(&mut conn).await,
        before,
        "a refused request changed what is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused() {
    let mut cfg = config(None);
    cfg.max_message_bytes = 64 * 1024;
    let mut s = TestServer::start(cfg).await;
    let mut i = IncidentBuilder::alerting("t", "PodCrash", "checkout").proto();
    i.signals[0]
        .annotations
        .insert("blob".into(), "x".repeat(100 * 1024));
    let e = s
        .incidents
        .create_incident(CreateIncidentRequest {
            incident: Some(i),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    // Issue 12.5: the gRPC specification's code for a message over the
    // server's limit (tonic's own choice was OUT_OF_RANGE).
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
}

/// Sends `payload` as the one message of a unary call to `path` and returns
/// the status the server answers (from its headers or trailers).
async fn raw_call(
    channel: &tonic::transport::Channel,
    path: &str,
    payload: &[u8],
) -> tonic::Status {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://verdict{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            tonic::codegen::Bytes::from(frame),
        )))
        .unwrap();
    let resp = channel.clone().oneshot(req).await.expect("HTTP/2 exchange");
    if let Some(s) = tonic::Status::from_header_map(resp.headers()) {
        return s;
    }
    let trailers = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .trailers()
        .cloned()
        .unwrap_or_default();
    tonic::Status::from_header_map(&trailers).expect("a grpc-status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_protobuf_is_invalid_argument_not_internal() {
    let s = TestServer::start(config(None)).await;
    let path = "/verdict.v1.IncidentService/GetIncident";
    // Field 1 (`id`, a string) holding bytes that are not UTF-8.
    let not_utf8 = [0x0a, 0x02, 0xff, 0xfe];
    // Field 1 announcing 10 bytes and carrying 2.
    let truncated = [0x0a, 0x0a, b'I', b'N'];
    // A wire type that does not exist (7).
    let bad_wire_type = [0x0f];
    for (what, payload) in [
        ("invalid UTF-8", &not_utf8[..]),
        ("truncated", &truncated[..]),
        ("bad wire type", &bad_wire_type[..]),
    ] {
        let status = raw_call(&s.channel, path, payload).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    // A well-formed request still reaches the handler.
    let status = raw_call(&s.channel, path, &[0x0a, 0x02, b'I', b'N']).await;
    assert_ne!(status.code(), Code::Internal, "{status:?}");
}

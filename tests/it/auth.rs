//! Who decides (issue 13): every RPC with every role and with none, the
//! recorded approver, four-eyes across two replicas, the approval policy's
//! scoping, and the secure-by-default start.

use crate::common;

use common::{IncidentBuilder, RedisServer, TestServer, within};
use prost_reflect::DescriptorPool;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;
use tonic::Code;
use tonic::metadata::MetadataValue;
use verdict::auth::{TokenEntry, token};
use verdict::config::Config;
use verdict::domain::{Role, Severity};
use verdict::manager::ApprovalRule;
use verdict::proto as pb;

/// An empty message: a valid encoding of every proto3 request, and a
/// decoding of any response that ignores its fields.
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

const LIMIT: Duration = Duration::from_secs(20);

/// One principal's token per role, plus extra approvers.
struct Principals {
    tokens: BTreeMap<&'static str, String>,
    entries: Vec<TokenEntry>,
}

impl Principals {
    fn new(people: &[(&'static str, Role)]) -> Self {
        let mut tokens = BTreeMap::new();
        let mut entries = Vec::new();
        for (subject, role) in people {
            let (t, e) = token::generate(subject, [*role].into_iter().collect()).unwrap();
            tokens.insert(*subject, t);
            entries.push(e);
        }
        Principals { tokens, entries }
    }

    fn token(&self, subject: &str) -> &str {
        &self.tokens[subject]
    }
}

/// A request carrying `subject`'s bearer token (or none).
fn as_<T>(p: &Principals, subject: Option<&str>, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(s) = subject {
        let v = MetadataValue::from_str(&format!("Bearer {}", p.token(s))).unwrap();
        r.metadata_mut().insert("authorization", v);
    }
    r
}

fn config(p: &Principals, redis: Option<&RedisServer>) -> Config {
    Config {
        auth_tokens: p.entries.clone(),
        ..common::config(redis)
    }
}

/// What each RPC needs, written from the issue (not read from the
/// server's table, so a wrong entry there fails here).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Open,
    Anyone,
    Role(Role),
}

fn need(service: &str, method: &str) -> Option<Need> {
    use Role::*;
    Some(match (service, method) {
        ("grpc.health.v1.Health", _) => Need::Open,
        ("grpc.reflection.v1.ServerReflection", _)
        | ("grpc.reflection.v1alpha.ServerReflection", _) => Need::Anyone,
        (
            "verdict.v1.IncidentService",
            "CreateIncident" | "IngestSignals" | "UpdateIncidentStatus",
        ) => Need::Role(Operator),
        ("verdict.v1.IncidentService", "GetIncident" | "ListIncidents") => Need::Role(Viewer),
        ("verdict.v1.DecisionService", "GetOrCreateDecision") => Need::Role(Operator),
        ("verdict.v1.DecisionService", "ApproveDecision" | "RejectDecision") => {
            Need::Role(Approver)
        }
        ("verdict.v1.DecisionService", "CompleteDecision" | "ClaimExecution") => {
            Need::Role(Executor)
        }
        (
            "verdict.v1.DecisionService",
            "GetDecision"
            | "ListDecisions"
            | "ListCurrentDecisions"
            | "WatchDecision"
            | "WatchDecisions",
        ) => Need::Role(Viewer),
        ("verdict.v1.StatsService", _) => Need::Role(Viewer),
        ("verdict.v1.AuditService", "ListAuditEvents" | "WatchAuditEvents") => Need::Role(Viewer),
        ("verdict.v1.IdentityService", "WhoAmI") => Need::Anyone,
        _ => return None,
    })
}

/// Calls `path` with an empty message (a valid encoding of every proto3
/// request) and returns the status code of the answer's head.
async fn call(
    channel: &tonic::transport::Channel,
    path: &str,
    client_streaming: bool,
    server_streaming: bool,
    auth: Option<String>,
) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_str(path).unwrap();
    let codec = tonic_prost::ProstCodec::<Empty, Empty>::default();
    fn with_auth<T>(mut r: tonic::Request<T>, auth: &Option<String>) -> tonic::Request<T> {
        if let Some(a) = auth {
            r.metadata_mut()
                .insert("authorization", MetadataValue::from_str(a).unwrap());
        }
        r
    }
    let result = match (client_streaming, server_streaming) {
        (false, false) => grpc
            .unary(with_auth(tonic::Request::new(Empty {}), &auth), path, codec)
            .await
            .map(|_| ()),
        (false, true) => grpc
            .server_streaming(with_auth(tonic::Request::new(Empty {}), &auth), path, codec)
            .await
            .map(|_| ()),
        (true, _) => {
            let one = futures::stream::iter(vec![Empty {}]);
            grpc.streaming(with_auth(tonic::Request::new(one), &auth), path, codec)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn every_rpc_with_every_role_and_with_none() {
    let roles = [
        ("vera", Role::Viewer),
        ("otto", Role::Operator),
        ("alice", Role::Approver),
        ("root", Role::Admin),
        ("exec", Role::Executor),
    ];
    let p = Principals::new(&roles);
    let s = TestServer::start(config(&p, None)).await;

    let mut pool = DescriptorPool::new();
    for set in [
        verdict::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        pool.decode_file_descriptor_set(set).unwrap();
    }
    let mut checked = 0;
    for service in pool.services() {
        for method in service.methods() {
            let (svc, m) = (service.full_name(), method.name());
            let need =
                need(svc, m).unwrap_or_else(|| panic!("{svc}/{m} is not in the test's table"));
            let path = format!("/{svc}/{m}");
            let (cs, ss) = (method.is_client_streaming(), method.is_server_streaming());
            let none = within(LIMIT, &path, call(&s.channel, &path, cs, ss, None)).await;
            match need {
                Need::Open => assert!(
                    !matches!(none, Code::Unauthenticated | Code::PermissionDenied),
                    "{path} is open: {none:?}"
                ),
                _ => assert_eq!(none, Code::Unauthenticated, "{path} without credentials"),
            }
            let wrong = Some("Bearer vdt_not-a-token".to_string());
            let bad = within(LIMIT, &path, call(&s.channel, &path, cs, ss, wrong)).await;
            if need != Need::Open {
                assert_eq!(bad, Code::Unauthenticated, "{path} with an unknown token");
            }
            for (subject, role) in roles {
                let auth = Some(format!("Bearer {}", p.token(subject)));
                let got = within(LIMIT, &path, call(&s.channel, &path, cs, ss, auth)).await;
                let allowed = match need {
                    Need::Open | Need::Anyone => true,
                    Need::Role(needed) => role.grants(needed),
                };
                if allowed {
                    assert!(
                        !matches!(got, Code::Unauthenticated | Code::PermissionDenied),
                        "{path} as {role}: {got:?}"
                    );
                } else {
                    assert_eq!(got, Code::PermissionDenied, "{path} as {role}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 5 * 20, "every RPC was called ({checked})");
}

/// `WhoAmI` as `subject` (or without credentials).
async fn who_am_i(
    s: &TestServer,
    p: &Principals,
    subject: Option<&str>,
) -> Result<pb::WhoAmIResponse, tonic::Status> {
    let mut c = pb::identity_service_client::IdentityServiceClient::new(s.channel.clone());
    within(
        LIMIT,
        "WhoAmI",
        c.who_am_i(as_(p, subject, pb::WhoAmIRequest {})),
    )
    .await
    .map(|r| r.into_inner())
}

/// The permission `WhoAmI` reported for `method`: (allowed, needed role).
fn permission(w: &pb::WhoAmIResponse, method: &str) -> (bool, pb::Role) {
    let found = w.permissions.iter().find(|x| x.method == method);
    let x = found.unwrap_or_else(|| panic!("{method} missing from {:?}", w.permissions));
    (x.allowed, x.needed_role())
}

#[tokio::test]
async fn who_am_i_names_each_role_and_what_it_may_do() {
    let roles = [
        ("vera", Role::Viewer, pb::Role::Viewer),
        ("otto", Role::Operator, pb::Role::Operator),
        ("alice", Role::Approver, pb::Role::Approver),
        ("root", Role::Admin, pb::Role::Admin),
        ("exec", Role::Executor, pb::Role::Executor),
    ];
    let p = Principals::new(&roles.map(|(s, r, _)| (s, r)));
    // Reflection opened to anyone must not open WhoAmI with it.
    let s = TestServer::start(Config {
        auth_reflection_open: true,
        ..config(&p, None)
    })
    .await;
    let none = who_am_i(&s, &p, None).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");

    let approve = "verdict.v1.DecisionService/ApproveDecision";
    let complete = "verdict.v1.DecisionService/CompleteDecision";
    let create = "verdict.v1.IncidentService/CreateIncident";
    let read = "verdict.v1.DecisionService/GetDecision";
    for (subject, role, wire) in roles {
        let w = who_am_i(&s, &p, Some(subject)).await.unwrap();
        assert_eq!(w.subject, subject);
        assert_eq!(w.auth_method(), pb::AuthMethod::StaticToken);
        assert_eq!(
            w.roles,
            vec![wire as i32],
            "{subject}: the roles as configured"
        );
        for (method, needed, wire_needed) in [
            (approve, Role::Approver, pb::Role::Approver),
            (complete, Role::Executor, pb::Role::Executor),
            (create, Role::Operator, pb::Role::Operator),
            (read, Role::Viewer, pb::Role::Viewer),
        ] {
            assert_eq!(
                permission(&w, method),
                (role.grants(needed), wire_needed),
                "{subject} and {method}"
            );
        }
        // What it says is what the server does: ApproveDecision of a
        // token that does not exist is refused for the role, or reaches
        // the handler (NOT_FOUND) when WhoAmI said it was allowed.
        let mut d = pb::decision_service_client::DecisionServiceClient::new(s.channel.clone());
        let req = approve_missing();
        let got = within(
            LIMIT,
            "approve",
            d.approve_decision(as_(&p, Some(subject), req)),
        )
        .await
        .unwrap_err()
        .code();
        let expected = if permission(&w, approve).0 {
            Code::NotFound
        } else {
            Code::PermissionDenied
        };
        assert_eq!(got, expected, "{subject} approving");
    }
}

/// An approval of a well-formed token that does not exist.
fn approve_missing() -> pb::ApproveDecisionRequest {
    approve("DEC-0123456789AB", "someone", 1)
}

#[tokio::test]
async fn who_am_i_without_authentication_is_the_anonymous_admin() {
    let p = Principals::new(&[]);
    let s = TestServer::start(config(&p, None)).await;
    let w = who_am_i(&s, &p, None).await.unwrap();
    assert_eq!(w.subject, "anonymous");
    assert_eq!(w.auth_method(), pb::AuthMethod::Anonymous);
    assert!(w.roles.contains(&(pb::Role::Admin as i32)));
    assert!(w.permissions.len() >= 20);
    assert!(
        w.permissions.iter().all(|x| x.allowed),
        "{:?}",
        w.permissions
    );
}

#[tokio::test]
async fn a_refused_call_stores_nothing_and_names_the_role() {
    let p = Principals::new(&[("vera", Role::Viewer)]);
    let mut s = TestServer::start(config(&p, None)).await;
    let create = IncidentBuilder::alerting("t", "PodCrashLooping", "checkout").request();
    let e = s
        .incidents
        .create_incident(as_(&p, Some("vera"), create.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("operator"), "{}", e.message());
    let e = s.incidents.create_incident(create).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("Bearer"), "{}", e.message());
    let list = s
        .incidents
        .list_incidents(as_(&p, Some("vera"), pb::ListIncidentsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(list.incidents.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn the_webhook_takes_an_operator_principal() {
    let p = Principals::new(&[("am", Role::Operator), ("vera", Role::Viewer)]);
    let s = TestServer::start(config(&p, None)).await;
    let url = format!("{}/api/v1/alertmanager", s.http_base());
    let post = |auth: Option<String>| {
        let mut r = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body("{}");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some(format!("Bearer {}", p.token("vera")))).await, 403);
    // Past authentication: the payload itself is what is wrong now.
    assert_eq!(post(Some(format!("Bearer {}", p.token("am")))).await, 400);
}

/// An incident of `severity` in `namespace` with a READY decision, created
/// by `otto` (operator).
async fn ready(
    s: &mut TestServer,
    p: &Principals,
    severity: Severity,
    namespace: &str,
) -> pb::Decision {
    let create = IncidentBuilder::alerting("t", "PodCrashLooping", "checkout")
        .severity(severity)
        .namespace(namespace)
        .request();
    let id = s
        .incidents
        .create_incident(as_(p, Some("otto"), create))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .id;
    let d = s
        .decisions
        .get_or_create_decision(as_(
            p,
            Some("otto"),
            pb::GetOrCreateDecisionRequest {
                incident_id: id,
                wait: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(d.state(), pb::DecisionState::Ready);
    d
}

fn approve(token: &str, actor: &str, expected_version: u64) -> pb::ApproveDecisionRequest {
    pb::ApproveDecisionRequest {
        request_id: String::new(),
        token: token.into(),
        actor: actor.into(),
        expected_version,
    }
}

#[tokio::test]
async fn the_recorded_approver_is_the_principal_not_the_actor() {
    let p = Principals::new(&[("otto", Role::Operator), ("alice", Role::Approver)]);
    let mut s = TestServer::start(config(&p, None)).await;
    let d = ready(&mut s, &p, Severity::P3, "shop").await;
    let out = s
        .decisions
        .approve_decision(as_(&p, Some("alice"), approve(&d.token, "mallory", 0)))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(out.state(), pb::DecisionState::Executing);
    assert_eq!(out.decided_by, "alice");
    assert_eq!(out.decided_by_method, "static_token");
    assert_eq!(out.approvals_required, 1);
    assert_eq!(out.approvals.len(), 1);
    assert_eq!(out.approvals[0].subject, "alice");
}

#[tokio::test]
async fn four_eyes_two_approvers_racing_on_two_replicas_execute_once() {
    let redis = RedisServer::start();
    let p = Principals::new(&[
        ("otto", Role::Operator),
        ("alice", Role::Approver),
        ("bob", Role::Approver),
    ]);
    let dry_run = |r| Config {
        executor: verdict::manager::ExecutorKind::DryRun,
        ..config(&p, Some(r))
    };
    let mut a = TestServer::start(dry_run(&redis)).await;
    let b = TestServer::start(dry_run(&redis)).await;
    let d = ready(&mut a, &p, Severity::P0, "shop").await;

    let (mut ca, mut cb) = (a.decisions.clone(), b.decisions.clone());
    let (ra, rb) = tokio::join!(
        ca.approve_decision(as_(&p, Some("alice"), approve(&d.token, "", 0))),
        cb.approve_decision(as_(&p, Some("bob"), approve(&d.token, "", 0))),
    );
    let states: Vec<pb::DecisionState> = [ra, rb]
        .into_iter()
        .map(|r| {
            r.expect("both approvals land")
                .into_inner()
                .decision
                .unwrap()
                .state()
        })
        .collect();
    let executed = states
        .iter()
        .filter(|s| **s == pb::DecisionState::Completed)
        .count();
    assert_eq!(executed, 1, "exactly one execution: {states:?}");
    assert!(states.contains(&pb::DecisionState::Ready), "{states:?}");

    let last = b
        .decisions
        .clone()
        .get_decision(as_(
            &p,
            Some("alice"),
            pb::GetDecisionRequest {
                token: d.token.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(last.state(), pb::DecisionState::Completed);
    assert_eq!(last.approvals_required, 2);
    let mut who: Vec<&str> = last.approvals.iter().map(|a| a.subject.as_str()).collect();
    who.sort();
    assert_eq!(who, ["alice", "bob"], "both approvals recorded");
    assert!(["alice", "bob"].contains(&last.decided_by.as_str()));
}

#[tokio::test]
async fn four_eyes_refuses_the_same_approver_twice_and_a_rejection_ends_it() {
    let p = Principals::new(&[
        ("otto", Role::Operator),
        ("alice", Role::Approver),
        ("bob", Role::Approver),
    ]);
    let mut s = TestServer::start(config(&p, None)).await;
    let d = ready(&mut s, &p, Severity::P0, "shop").await;
    let first = s
        .decisions
        .approve_decision(as_(&p, Some("alice"), approve(&d.token, "", d.version)))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(
        first.state(),
        pb::DecisionState::Ready,
        "awaiting a second approval"
    );
    assert_eq!((first.approvals.len(), first.approvals_required), (1, 2));
    let again = s
        .decisions
        .approve_decision(as_(&p, Some("alice"), approve(&d.token, "bob", 0)))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(
        again.message().contains("second, different approver"),
        "{}",
        again.message()
    );
    let rejected = s
        .decisions
        .reject_decision(as_(
            &p,
            Some("bob"),
            pb::RejectDecisionRequest {
                token: d.token.clone(),
                reason: "not at peak".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(rejected.state(), pb::DecisionState::Rejected);
    assert_eq!(rejected.decided_by, "bob");
    assert_eq!(
        rejected.approvals.len(),
        1,
        "the first approval stays on record"
    );
}

#[tokio::test]
async fn the_approval_policy_scopes_approvers_by_namespace() {
    let p = Principals::new(&[
        ("otto", Role::Operator),
        ("alice", Role::Approver),
        ("bob", Role::Approver),
    ]);
    let rule = |subject: &str, ns: &str| ApprovalRule {
        subjects: vec![subject.into()],
        roles: vec![],
        namespaces: vec![ns.into()],
        max_risk: verdict::domain::RiskLevel::Critical,
    };
    let mut s = TestServer::start(Config {
        approval_rules: vec![rule("alice", "shop*"), rule("bob", "payments")],
        ..config(&p, None)
    })
    .await;
    let d = ready(&mut s, &p, Severity::P3, "payments").await;
    let e = s
        .decisions
        .approve_decision(as_(&p, Some("alice"), approve(&d.token, "", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("payments"), "{}", e.message());
    let unchanged = s
        .decisions
        .get_decision(as_(
            &p,
            Some("alice"),
            pb::GetDecisionRequest {
                token: d.token.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(
        unchanged.version, d.version,
        "a refused approval changes nothing"
    );
    let ok = s
        .decisions
        .approve_decision(as_(&p, Some("bob"), approve(&d.token, "", 0)))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(ok.decided_by, "bob");
}

#[tokio::test]
async fn without_authentication_only_loopback_starts_unless_allowed() {
    let open = |listen: &str, allow: bool| Config {
        listen: listen.parse().unwrap(),
        allow_unauthenticated: allow,
        ..Config::default()
    };
    let e = verdict::server::build_auth(&open("0.0.0.0:50051", false)).unwrap_err();
    assert!(e.to_string().contains("--allow-unauthenticated"), "{e}");
    assert!(verdict::server::build_auth(&open("0.0.0.0:50051", true)).is_ok());
    let auth = verdict::server::build_auth(&open("127.0.0.1:50051", false)).unwrap();
    assert!(!auth.enabled(), "loopback starts open, with a warning");
    // With a credential configured, any address starts.
    let p = Principals::new(&[("vera", Role::Viewer)]);
    let with = Config {
        auth_tokens: p.entries.clone(),
        ..open("0.0.0.0:50051", false)
    };
    assert!(verdict::server::build_auth(&with).unwrap().enabled());
}

#[tokio::test]
async fn a_reload_adds_and_revokes_tokens_without_a_restart() {
    let p = Principals::new(&[("vera", Role::Viewer), ("neo", Role::Viewer)]);
    let only = |subject: &str| Config {
        auth_tokens: p
            .entries
            .iter()
            .filter(|e| e.subject == subject)
            .cloned()
            .collect(),
        ..common::config(None)
    };
    let s = TestServer::start(only("vera")).await;
    let reloader = s.running.as_ref().unwrap().reloader();
    let code = async |who: &'static str| {
        let req = as_(&p, Some(who), pb::ListIncidentsRequest::default());
        match s.incidents.clone().list_incidents(req).await {
            Ok(_) => Code::Ok,
            Err(e) => e.code(),
        }
    };
    assert_eq!(code("vera").await, Code::Ok);
    assert_eq!(code("neo").await, Code::Unauthenticated);

    reloader.reload(Ok(only("neo")), "test").await.unwrap();
    assert_eq!(code("neo").await, Code::Ok, "added");
    assert_eq!(code("vera").await, Code::Unauthenticated, "revoked");

    // A configuration that does not check, or that would turn
    // authentication off, keeps the one in force.
    let mut broken = only("vera");
    broken.auth_tokens[0].sha256 = "not-a-digest".into();
    assert!(reloader.reload(Ok(broken), "test").await.is_err());
    assert!(
        reloader
            .reload(Ok(common::config(None)), "test")
            .await
            .is_err()
    );
    assert_eq!(code("neo").await, Code::Ok);
    assert_eq!(code("vera").await, Code::Unauthenticated);
}

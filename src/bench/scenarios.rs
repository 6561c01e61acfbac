//! The scenarios: what one request is, and the data each needs, created by
//! the tool itself before the clock starts.
//!
//! Each scenario measures one RPC path of the SPEC's targets: `health` is
//! the cost of an empty RPC on this server (the ceiling every other
//! throughput is compared with), `get-decision` and
//! `get-or-create-existing` the O(1) lookups, `create-and-decide` the full
//! expert path, `approve` one compare-and-set transition.

use super::seed::Seeder;
use crate::client::code_name;
use crate::proto as pb;
use crate::proto::decision_service_client::DecisionServiceClient;
use crate::proto::incident_service_client::IncidentServiceClient;
use anyhow::Context;
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A scenario as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `grpc.health.v1.Health/Check`: an empty RPC, the server's ceiling.
    Health,
    /// `GetDecision` on READY tokens (token index cached, one HGET).
    GetDecision,
    /// `get-decision` with a static bearer token checked on every call
    /// (`--spawn` only; the spawned server then also takes calls without
    /// credentials, as `serve --dev` does, so `get-decision` runs beside
    /// it in the same rounds): its ratio to `get-decision` is the cost of
    /// authentication. Not part of `all`.
    GetDecisionAuth,
    /// `GetOrCreateDecision` (no wait) on incidents whose token is READY.
    GetOrCreateExisting,
    /// `CreateIncident`, then `GetOrCreateDecision(wait)` on the expert path.
    CreateAndDecide,
    /// `ApproveDecision` on prepared READY tokens, one token per request.
    Approve,
    /// `get-or-create-existing` with 0 … 1 000 000 decisions stored.
    Scaling,
    /// Every scenario above, in that order.
    All,
    /// N concurrent WatchDecision streams, one transition, the delay until
    /// each stream has it, and the server's RSS (not part of `all`).
    WatchFanout,
}

impl Scenario {
    /// The single-RPC scenarios, in the order `all` runs them.
    pub const LOAD: [Scenario; 5] = [
        Scenario::Health,
        Scenario::GetDecision,
        Scenario::GetOrCreateExisting,
        Scenario::CreateAndDecide,
        Scenario::Approve,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::GetDecision => "get-decision",
            Scenario::GetDecisionAuth => "get-decision-auth",
            Scenario::GetOrCreateExisting => "get-or-create-existing",
            Scenario::CreateAndDecide => "create-and-decide",
            Scenario::Approve => "approve",
            Scenario::Scaling => "scaling",
            Scenario::All => "all",
            Scenario::WatchFanout => "watch-fanout",
        }
    }
}

/// Prepared READY tokens handed out once each, for `approve`.
pub struct TokenQueue {
    tokens: Vec<String>,
    next: AtomicUsize,
}

impl TokenQueue {
    pub fn new(tokens: Vec<String>) -> Self {
        TokenQueue {
            tokens,
            next: AtomicUsize::new(0),
        }
    }

    fn take(&self) -> Option<&str> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.tokens.get(i).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// What one request does, with the data it draws from.
pub enum Workload {
    Health,
    /// Tokens cycled through by request number.
    GetDecision(Vec<String>),
    /// The same, each call carrying this `authorization` value.
    GetDecisionAuth(Vec<String>, MetadataValue<Ascii>),
    /// Incident ids (each with a READY token) cycled through.
    GetOrCreateExisting(Vec<String>),
    /// The analysis timeout sent with each `GetOrCreateDecision(wait)`.
    CreateAndDecide(Duration),
    Approve(TokenQueue),
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A gRPC code name, or a harness label for a wrong answer.
    Failed(&'static str),
    /// Nothing left to send (prepared tokens used up); not a request.
    Exhausted,
}

/// Label of an answer that arrived but is not what the scenario measures
/// (a token created where one should exist, a missing decision, a server
/// not SERVING): counted as an error so a benchmark of the wrong path
/// cannot pass for a fast one.
pub const UNEXPECTED: &str = "UNEXPECTED_REPLY";

impl From<tonic::Status> for Outcome {
    fn from(s: tonic::Status) -> Self {
        Outcome::Failed(code_name(s.code()))
    }
}

/// One worker's clients, all on the same connection.
pub struct Clients {
    health: HealthClient<Channel>,
    decisions: DecisionServiceClient<Channel>,
    incidents: IncidentServiceClient<Channel>,
}

impl Clients {
    pub fn new(channel: Channel) -> Self {
        Clients {
            health: HealthClient::new(channel.clone()),
            decisions: DecisionServiceClient::new(channel.clone()),
            incidents: IncidentServiceClient::new(channel),
        }
    }
}

fn expect(ok: bool) -> Outcome {
    if ok {
        Outcome::Ok
    } else {
        Outcome::Failed(UNEXPECTED)
    }
}

impl Workload {
    /// Sends request number `seq`.
    pub async fn call(&self, c: &mut Clients, seq: u64) -> Outcome {
        match self {
            Workload::Health => {
                let req = HealthCheckRequest {
                    service: String::new(),
                };
                match c.health.check(req).await {
                    Ok(r) => expect(r.get_ref().status == ServingStatus::Serving as i32),
                    Err(s) => s.into(),
                }
            }
            Workload::GetDecision(tokens) => {
                let token = pick(tokens, seq).to_owned();
                match c
                    .decisions
                    .get_decision(pb::GetDecisionRequest { token })
                    .await
                {
                    Ok(r) => expect(r.get_ref().decision.is_some()),
                    Err(s) => s.into(),
                }
            }
            Workload::GetDecisionAuth(tokens, authorization) => {
                let token = pick(tokens, seq).to_owned();
                let mut req = tonic::Request::new(pb::GetDecisionRequest { token });
                req.metadata_mut()
                    .insert("authorization", authorization.clone());
                match c.decisions.get_decision(req).await {
                    Ok(r) => expect(r.get_ref().decision.is_some()),
                    Err(s) => s.into(),
                }
            }
            Workload::GetOrCreateExisting(incidents) => {
                let req = pb::GetOrCreateDecisionRequest {
                    incident_id: pick(incidents, seq).to_owned(),
                    ..Default::default()
                };
                match c.decisions.get_or_create_decision(req).await {
                    Ok(r) => {
                        let r = r.get_ref();
                        expect(!r.created && state(r.decision.as_ref()) == pb::DecisionState::Ready)
                    }
                    Err(s) => s.into(),
                }
            }
            Workload::CreateAndDecide(timeout) => match create_ready(c, *timeout).await {
                Ok(Some(_)) => Outcome::Ok,
                Ok(None) => Outcome::Failed(UNEXPECTED),
                Err(s) => s.into(),
            },
            Workload::Approve(queue) => {
                let Some(token) = queue.take() else {
                    return Outcome::Exhausted;
                };
                let req = pb::ApproveDecisionRequest {
                    request_id: String::new(),
                    token: token.to_owned(),
                    actor: "verdict-bench".into(),
                    expected_version: 0,
                };
                match c.decisions.approve_decision(req).await {
                    Ok(r) => expect(r.get_ref().decision.is_some()),
                    Err(s) => s.into(),
                }
            }
        }
    }
}

/// Items are picked round-robin by request number; the lists are never
/// empty (setup refuses to build an empty one).
fn pick(items: &[String], seq: u64) -> &str {
    items
        .get((seq % items.len().max(1) as u64) as usize)
        .map_or("", String::as_str)
}

fn state(d: Option<&pb::Decision>) -> pb::DecisionState {
    d.and_then(|d| pb::DecisionState::try_from(d.state).ok())
        .unwrap_or(pb::DecisionState::Unspecified)
}

/// A small incident that the expert engine's pod_crash rule matches.
fn bench_incident() -> pb::Incident {
    pb::Incident {
        title: "verdict bench: checkout pods crashing".into(),
        severity: pb::Severity::P2 as i32,
        affected_services: vec!["checkout".into()],
        namespace: "shop".into(),
        signals: vec![pb::Signal {
            alert_name: "PodCrashLooping".into(),
            labels: [("service".to_owned(), "checkout".to_owned())].into(),
            fingerprint: "verdict-bench".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Creates an incident and waits for its READY decision: returns
/// `(incident id, token)`, or None when the answer is not a READY token.
async fn create_ready(
    c: &mut Clients,
    timeout: Duration,
) -> Result<Option<(String, String)>, tonic::Status> {
    let incident = c
        .incidents
        .create_incident(pb::CreateIncidentRequest {
            incident: Some(bench_incident()),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .incident;
    let Some(incident) = incident else {
        return Ok(None);
    };
    let req = pb::GetOrCreateDecisionRequest {
        incident_id: incident.id.clone(),
        wait: true,
        timeout: prost_types::Duration::try_from(timeout).ok(),
        ..Default::default()
    };
    let d = c
        .decisions
        .get_or_create_decision(req)
        .await?
        .into_inner()
        .decision;
    Ok(match d {
        Some(d) if d.state == pb::DecisionState::Ready as i32 => Some((incident.id, d.token)),
        _ => None,
    })
}

/// Requests in flight while setup creates records through the RPCs.
const SETUP_CONCURRENCY: usize = 32;

/// Deadline of one setup step (an incident and its READY decision).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The analysis timeout `create-and-decide` asks for. The expert engine
/// answers in microseconds; this only bounds a server without it.
pub const DECIDE_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates `n` incidents with a READY decision each through the RPCs (the
/// path a real caller takes) and returns `(incident id, token)` pairs.
pub async fn create_records(channel: &Channel, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let steps = futures::stream::iter(0..n)
        .map(|_| {
            let mut c = Clients::new(channel.clone());
            async move {
                match tokio::time::timeout(SETUP_TIMEOUT, create_ready(&mut c, DECIDE_TIMEOUT))
                    .await
                {
                    Ok(Ok(Some(pair))) => Ok(pair),
                    Ok(Ok(None)) => Err(anyhow::anyhow!("the server returned no READY decision")),
                    Ok(Err(s)) => Err(anyhow::anyhow!("{}: {}", code_name(s.code()), s.message())),
                    Err(_) => Err(anyhow::anyhow!(
                        "no answer within {}",
                        humantime::format_duration(SETUP_TIMEOUT)
                    )),
                }
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY);
    tokio::pin!(steps);
    let mut out = Vec::with_capacity(n);
    while let Some(step) = steps.next().await {
        out.push(step.context("setup: creating an incident with a READY decision failed")?);
    }
    Ok(out)
}

/// READY tokens for `approve`: seeded straight into Redis when the tool
/// knows the server's Redis (thousands per second), else created through
/// the RPCs.
pub async fn approve_tokens(
    channel: &Channel,
    seeder: Option<&Seeder>,
    n: u64,
) -> anyhow::Result<TokenQueue> {
    let tokens = match seeder {
        Some(s) => {
            let (_, tokens) = s.seed(n, true).await?;
            tokens.into_iter().map(|t| t.as_str().to_owned()).collect()
        }
        None => {
            let n = usize::try_from(n).context("too many tokens to prepare")?;
            create_records(channel, n)
                .await?
                .into_iter()
                .map(|(_, t)| t)
                .collect()
        }
    };
    Ok(TokenQueue::new(tokens))
}

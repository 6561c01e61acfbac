//! The `watch-fanout` scenario: N concurrent `WatchDecision` streams on one
//! server, one transition, and how long each stream takes to receive it.
//! Measured against the SPEC target: 10 000 streams, p99 < 100 ms, server
//! RSS < 200 MB (RSS read from `/proc/PID/status` when `--server-pid` is
//! given, so the figure is the server's alone).

use crate::proto as pb;
use crate::proto::decision_service_client::DecisionServiceClient;
use crate::proto::incident_service_client::IncidentServiceClient;
use anyhow::Context;
use hdrhistogram::Histogram;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;

/// Streams per HTTP/2 connection (servers commonly cap concurrent streams
/// per connection at a few hundred).
const STREAMS_PER_CONNECTION: usize = 100;
/// The most streams one run opens.
pub const MAX_WATCHERS: usize = 50_000;

/// The figures for one fan-out size.
#[derive(Debug, serde::Serialize)]
pub struct FanoutResult {
    pub watchers: usize,
    /// Streams that received the change.
    pub delivered: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The server's resident memory with every stream open, if known.
    pub server_rss_mb: Option<f64>,
    /// Time to open (and receive the snapshot on) every stream.
    pub open_s: f64,
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Opens `watchers` streams on one READY token, approves it, and times the
/// delivery of that change to every stream.
pub async fn run(
    target: &str,
    watchers: usize,
    server_pid: Option<u32>,
    timeout: Duration,
) -> anyhow::Result<FanoutResult> {
    anyhow::ensure!(
        (1..=MAX_WATCHERS).contains(&watchers),
        "--watchers must be between 1 and {MAX_WATCHERS}"
    );
    let first = crate::client::connect(&crate::client::Target::plain(target)).await?;
    let mut incidents = IncidentServiceClient::new(first.clone());
    let mut decisions = DecisionServiceClient::new(first.clone());
    let incident = incidents
        .create_incident(pb::CreateIncidentRequest {
            incident: Some(pb::Incident {
                title: "watch-fanout".into(),
                severity: pb::Severity::P3 as i32,
                affected_services: vec!["fanout".into()],
                signals: vec![pb::Signal {
                    alert_name: "PodCrashLooping".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .incident
        .context("no incident in the answer")?;
    let token = decisions
        .get_or_create_decision(pb::GetOrCreateDecisionRequest {
            incident_id: incident.id,
            wait: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .decision
        .context("no decision in the answer")?
        .token;

    let opened = Instant::now();
    let connections = watchers.div_ceil(STREAMS_PER_CONNECTION);
    let mut channels: Vec<Channel> = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(crate::client::connect(&crate::client::Target::plain(target)).await?);
    }
    // Each watcher opens its stream, reports the snapshot, then waits for
    // the next message and reports when it arrived.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..watchers {
        let mut client = DecisionServiceClient::new(channels[i / STREAMS_PER_CONNECTION].clone());
        let token = token.clone();
        let ready = ready_tx.clone();
        tasks.spawn(async move {
            let mut stream = client
                .watch_decision(pb::WatchDecisionRequest {
                    token,
                    after_version: 0,
                })
                .await
                .ok()?
                .into_inner();
            stream.message().await.ok()??;
            ready.send(()).await.ok()?;
            stream.message().await.ok()??;
            Some(Instant::now())
        });
    }
    drop(ready_tx);
    let mut registered = 0;
    while registered < watchers {
        match tokio::time::timeout(timeout, ready_rx.recv()).await {
            Ok(Some(())) => registered += 1,
            _ => break,
        }
    }
    let open_s = opened.elapsed().as_secs_f64();
    let server_rss_mb = server_pid.and_then(rss_mb);

    let sent = Instant::now();
    decisions
        .approve_decision(pb::ApproveDecisionRequest {
            request_id: String::new(),
            token,
            actor: "bench".into(),
            expected_version: 0,
        })
        .await?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")?;
    let mut delivered = 0;
    let deadline = Instant::now() + timeout;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        if let Ok(Some(at)) = joined {
            delivered += 1;
            hist.saturating_record(at.saturating_duration_since(sent).as_micros() as u64);
        }
    }
    tasks.abort_all();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(FanoutResult {
        watchers,
        delivered,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: hist.max() as f64 / 1000.0,
        server_rss_mb,
        open_s,
    })
}

/// The results as a table.
pub fn table(results: &[FanoutResult]) -> String {
    let mut out =
        String::from("watch-fanout: one transition delivered to N WatchDecision streams\n");
    out.push_str("watchers  delivered  p50 ms   p99 ms   max ms   server RSS  open time\n");
    for r in results {
        let rss = r
            .server_rss_mb
            .map(|m| format!("{m:.0} MB"))
            .unwrap_or_else(|| "n/a".into());
        out.push_str(&format!(
            "{:>8}  {:>9}  {:>6.1}  {:>7.1}  {:>7.1}  {:>10}  {:>7.1}s\n",
            r.watchers, r.delivered, r.p50_ms, r.p99_ms, r.max_ms, rss, r.open_s
        ));
    }
    out
}

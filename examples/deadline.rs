//! The deadline scenario (SPEC target: "with the LLM hanging, 100 % of
//! `GetOrCreateDecision(wait)` calls return READY within `timeout` +
//! 50 ms"), measured end to end through gRPC.
//!
//! Starts a fake LLM that accepts connections and never answers
//! ([`verdict::engine::llm::fake::HangingLlm`]), a verdict server on
//! `127.0.0.1:0` pointed at it, creates `--calls` incidents, then issues one
//! `GetOrCreateDecision(wait, timeout)` per incident, `--concurrency` at a
//! time, and reports the share READY within timeout + 50 ms and the latency
//! distribution (measured from each call's start).
//!
//! ```sh
//! cargo run --release --example deadline -- --redis-url redis://127.0.0.1:6379/ \
//!     --calls 1000 --timeout-ms 200 --concurrency 100 --severity P2
//! ```
//!
//! `run` is the scenario itself, for `verdict bench` to reuse.

use anyhow::Context;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use verdict::config::Config;
use verdict::engine::llm::fake::HangingLlm;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::incident_service_client::IncidentServiceClient;
use verdict::proto::{
    CreateIncidentRequest, DecisionState, GetOrCreateDecisionRequest, Incident, Severity, Signal,
};

/// The SPEC's allowance past the timeout.
const MARGIN: Duration = Duration::from_millis(50);

/// What one run measured.
#[derive(Debug)]
pub struct Figures {
    pub calls: usize,
    pub ready_in_time: usize,
    pub late: usize,
    pub failed: usize,
    pub histogram_us: Histogram<u64>,
}

/// Runs the scenario against a server at `channel` whose LLM hangs.
pub async fn run(
    channel: Channel,
    calls: usize,
    timeout: Duration,
    concurrency: usize,
    severity: Severity,
) -> anyhow::Result<Figures> {
    let mut incidents = IncidentServiceClient::new(channel.clone());
    let mut ids = Vec::with_capacity(calls);
    for i in 0..calls {
        let incident = Incident {
            title: format!("deadline scenario {i}"),
            severity: severity as i32,
            affected_services: vec!["checkout".into()],
            namespace: "shop".into(),
            signals: vec![Signal {
                alert_name: "PodCrashLooping".into(),
                fingerprint: format!("fp-{i}"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let created = incidents
            .create_incident(CreateIncidentRequest {
                incident: Some(incident),
                request_id: String::new(),
            })
            .await?
            .into_inner()
            .incident
            .context("no incident")?;
        ids.push(created.id);
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let mut client = DecisionServiceClient::new(channel.clone());
        let gate = Arc::clone(&gate);
        tasks.spawn(async move {
            let _slot = gate.acquire_owned().await.ok();
            let started = Instant::now();
            let r = client
                .get_or_create_decision(GetOrCreateDecisionRequest {
                    incident_id: id,
                    wait: true,
                    timeout: Some(prost_types::Duration {
                        seconds: timeout.as_secs() as i64,
                        nanos: timeout.subsec_nanos() as i32,
                    }),
                    ..Default::default()
                })
                .await;
            let took = started.elapsed();
            let ready = matches!(&r, Ok(resp) if resp.get_ref().decision.as_ref()
                .is_some_and(|d| d.state == DecisionState::Ready as i32));
            (ready, r.is_ok(), took)
        });
    }
    let mut figures = Figures {
        calls,
        ready_in_time: 0,
        late: 0,
        failed: 0,
        histogram_us: Histogram::new(3)?,
    };
    while let Some(joined) = tasks.join_next().await {
        let (ready, ok, took) = joined?;
        figures
            .histogram_us
            .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX))?;
        if !ok || !ready {
            figures.failed += 1;
        } else if took <= timeout + MARGIN {
            figures.ready_in_time += 1;
        } else {
            figures.late += 1;
        }
    }
    Ok(figures)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut redis_url = None;
    let mut calls = 1000usize;
    let mut timeout_ms = 200u64;
    let mut concurrency = 100usize;
    let mut severity = Severity::P2;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--redis-url" => redis_url = Some(value),
            "--calls" => calls = value.parse()?,
            "--timeout-ms" => timeout_ms = value.parse()?,
            "--concurrency" => concurrency = value.parse()?,
            "--severity" => {
                severity = match value.as_str() {
                    "P0" => Severity::P0,
                    "P1" => Severity::P1,
                    "P2" => Severity::P2,
                    "P3" => Severity::P3,
                    "P4" => Severity::P4,
                    other => anyhow::bail!("unknown severity {other}"),
                }
            }
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let llm = HangingLlm::start().await?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        dev: redis_url.is_none(),
        redis_url: redis_url.clone(),
        llm_base_url: Some(llm.base_url()),
        llm_cache_ttl: Duration::ZERO,
        ..Config::default()
    };
    let server = verdict::server::start(config, Default::default()).await?;
    let channel = Channel::from_shared(format!("http://{}", server.addr))?
        .connect()
        .await?;
    let timeout = Duration::from_millis(timeout_ms);
    let f = run(channel, calls, timeout, concurrency, severity).await?;
    let h = &f.histogram_us;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "deadline scenario: {} calls, timeout {timeout_ms} ms, concurrency {concurrency}, severity {severity:?}, store {}",
        f.calls,
        if redis_url.is_some() {
            "redis"
        } else {
            "memory"
        }
    );
    println!(
        "READY within timeout + 50 ms: {}/{} ({:.1} %); late: {}; failed or not READY: {}",
        f.ready_in_time,
        f.calls,
        100.0 * f.ready_in_time as f64 / f.calls.max(1) as f64,
        f.late,
        f.failed
    );
    println!(
        "latency ms: min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        h.min() as f64 / 1000.0,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    server.shutdown().await?;
    Ok(())
}

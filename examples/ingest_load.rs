//! Load generator for the Alertmanager webhook: measures webhooks/s and
//! alerts/s that one `verdict serve` sustains.
//!
//! ```sh
//! target/release/verdict serve --redis-url redis://127.0.0.1:6390/ --listen 127.0.0.1:50061 &
//! cargo run --release --example ingest_load -- --url http://127.0.0.1:50061 --mode new
//! ```
//!
//! Modes:
//! - `new`: every webhook is a group never seen before, so each one opens
//!   an incident (and, with auto-decide, starts its decision): the
//!   heaviest path.
//! - `update`: webhooks go to a fixed set of open incidents, each adding
//!   alerts with new fingerprints (incidents are capped at 100 alerts, so
//!   groups rotate through fresh services).
//! - `replay`: the same notifications again and again (Alertmanager's
//!   repeat_interval and retries): the dedup path, which writes nothing.
//!
//! Bounded: runs `--duration` (default 10 s) with `--concurrency` requests
//! in flight (default 32), against the given URL only.

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    New,
    Update,
    Replay,
}

struct Args {
    url: String,
    mode: Mode,
    concurrency: usize,
    duration: Duration,
    alerts: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        url: "http://127.0.0.1:50051".into(),
        mode: Mode::New,
        concurrency: 32,
        duration: Duration::from_secs(10),
        alerts: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--mode" => {
                a.mode = match value()?.as_str() {
                    "new" => Mode::New,
                    "update" => Mode::Update,
                    "replay" => Mode::Replay,
                    m => return Err(format!("unknown mode {m}: new, update or replay")),
                }
            }
            "--concurrency" => a.concurrency = value()?.parse().map_err(|e| format!("{e}"))?,
            "--duration" => {
                a.duration = humantime::parse_duration(&value()?).map_err(|e| e.to_string())?
            }
            "--alerts" => a.alerts = value()?.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !(1..=1024).contains(&a.concurrency) || !(1..=100).contains(&a.alerts) {
        return Err("--concurrency must be 1..=1024 and --alerts 1..=100".into());
    }
    if a.duration > Duration::from_secs(600) {
        return Err("--duration must be at most 10m".into());
    }
    Ok(a)
}

/// One notification of `alerts` alerts for `service`, fingerprints from `fp`.
fn notification(run: &str, service: &str, fp: u64, alerts: usize) -> Vec<u8> {
    let names = ["HighLatency", "PodCrashLooping", "HighErrorRate"];
    let alerts: Vec<Value> = (0..alerts as u64)
        .map(|n| {
            let name = names[(n % 3) as usize];
            json!({
                "status": "firing",
                "labels": {
                    "alertname": name,
                    "namespace": "bench", "service": service, "severity": "warning",
                    "pod": format!("{service}-{n}"),
                },
                "annotations": {"summary": format!("{service} is slow"), "description": "load test"},
                "startsAt": "2024-05-01T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": format!("{run}{:012x}", fp + n),
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": "4", "status": "firing", "receiver": "verdict",
        "groupKey": format!("{{}}:{{service=\"{service}\"}}"), "truncatedAlerts": 0,
        "groupLabels": {"service": service}, "commonLabels": {"namespace": "bench"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }))
    .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ingest_load: {e}");
            std::process::exit(2);
        }
    };
    // A run id keeps groups and fingerprints of separate runs apart.
    let run = format!("{:04x}", std::process::id() & 0xffff);
    let url = format!("{}/api/v1/alertmanager", a.url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let groups_fixed = 64u64;
    if a.mode == Mode::Replay {
        // Open the groups once; the measured requests only replay.
        for g in 0..groups_fixed {
            let body = notification(&run, &format!("r{run}-{g}"), g * 1000, a.alerts);
            let _ = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
        }
    }
    let until = Instant::now() + a.duration;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency {
        let (client, url, seq, errors, run) = (
            client.clone(),
            url.clone(),
            seq.clone(),
            errors.clone(),
            run.clone(),
        );
        let (mode, alerts) = (a.mode, a.alerts);
        tasks.spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            while Instant::now() < until {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let body = match mode {
                    Mode::New => notification(&run, &format!("n{run}-{n}"), n * 1000, alerts),
                    // 64 open incidents; every request adds `alerts` new
                    // alerts; a group moves to a fresh service before it
                    // reaches the 100-alert cap.
                    Mode::Update => {
                        let per_group = (100 / alerts as u64).max(1);
                        let g = n % groups_fixed;
                        let generation = n / groups_fixed / per_group;
                        notification(&run, &format!("u{run}-{g}-{generation}"), n * 1000, alerts)
                    }
                    Mode::Replay => {
                        let g = n % groups_fixed;
                        notification(&run, &format!("r{run}-{g}"), g * 1000, alerts)
                    }
                };
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                let _ = h.record(t.elapsed().as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            h
        });
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    while let Some(h) = tasks.join_next().await {
        if let Ok(h) = h {
            let _ = all.add(&h);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let webhooks = all.len();
    println!(
        "mode={:?} concurrency={} alerts/webhook={} duration={:.1}s",
        a.mode, a.concurrency, a.alerts, secs
    );
    println!(
        "webhooks/s={:.0} alerts/s={:.0} errors={} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        webhooks as f64 / secs,
        (webhooks * a.alerts as u64) as f64 / secs,
        errors.load(Ordering::Relaxed),
        all.value_at_quantile(0.5) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.max() as f64 / 1000.0,
    );
}

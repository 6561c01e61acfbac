//! Prometheus metrics, checked with the real tools: `/metrics` after known
//! traffic (counts match what the test sent, `promtool check metrics`
//! passes), the real Prometheus scraping a `verdict serve` child on its
//! admin port and answering through its HTTP API, and the alert rules
//! under `promtool check rules`.
//!
//! Needs the Debian package `prometheus` (`prometheus` and `promtool`);
//! scripts/test.sh installs it when missing.

use crate::common::{
    IncidentBuilder, RedisServer, TestServer, VerdictProcess, config, create_incident, decide,
    free_port, within,
};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use verdict::proto::GetDecisionRequest;
use verdict::proto::incident_service_client::IncidentServiceClient;

const WAIT: Duration = Duration::from_secs(60);

/// `/metrics` of the server at `base`.
async fn scrape(base: &str) -> String {
    let resp = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics");
    assert!(resp.status().is_success(), "{}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.text().await.expect("metrics body")
}

/// The value of the sample of `name` whose labels include all of
/// `labels`; 0 when there is none.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().expect("a number"))
        .sum()
}

/// Runs a tool, feeding `stdin`, and returns its combined output; panics
/// with that output when it fails.
fn run_tool(cmd: &mut Command, stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install Debian's `prometheus`)"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("tool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn metrics_count_what_was_sent_and_pass_promtool() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let base = s.http_base();
    let before = scrape(&base).await;
    let ok_creates = [
        ("service", "verdict.v1.IncidentService"),
        ("method", "CreateIncident"),
        ("code", "OK"),
    ];
    let refused = [("method", "GetDecision"), ("code", "INVALID_ARGUMENT")];

    for i in 0..3 {
        let id = create_incident(&mut s, &format!("Alert{i}")).await;
        let d = decide(&mut s, &id).await;
        assert!(!d.token.is_empty());
    }
    let err = s
        .decisions
        .get_decision(GetDecisionRequest {
            token: "not a token".into(),
        })
        .await
        .expect_err("a malformed token is refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let after = scrape(&base).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(delta("verdict_grpc_requests_total", &ok_creates), 3.0);
    assert_eq!(delta("verdict_grpc_requests_total", &refused), 1.0);
    assert_eq!(
        delta(
            "verdict_grpc_request_duration_seconds_count",
            &[("method", "CreateIncident")]
        ),
        3.0
    );
    assert_eq!(delta("verdict_decisions_issued_total", &[]), 3.0);
    assert_eq!(
        delta(
            "verdict_decision_transitions_total",
            &[("state", "READY"), ("source", "EXPERT")]
        ),
        3.0
    );
    assert_eq!(delta("verdict_analysis_duration_seconds_count", &[]), 3.0);
    assert!(value(&after, "verdict_redis_call_duration_seconds_count", &[]) > 0.0);
    assert!(
        !after.contains("not a token") && !after.contains("INC-"),
        "no caller input or id becomes a label"
    );

    let lint = run_tool(
        Command::new("promtool").args(["check", "metrics"]),
        Some(&after),
    );
    assert!(!lint.contains("error"), "{lint}");
    s.stop().await;
}

#[tokio::test]
async fn unknown_grpc_paths_share_one_series() {
    let s = TestServer::start(config(None)).await;
    let base = s.http_base();
    let client = reqwest::Client::new();
    for i in 0..3 {
        let r = client
            .post(format!("{base}/verdict.v1.IncidentService/Made{i}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .send()
            .await;
        // HTTP/1.1 gRPC is refused or answered UNIMPLEMENTED; either way
        // nothing of the path may become a label.
        drop(r);
    }
    let text = scrape(&base).await;
    assert!(!text.contains("Made0"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn metrics_off_serves_no_endpoint() {
    let cfg = verdict::config::Config {
        metrics_enabled: false,
        ..config(None)
    };
    let s = TestServer::start(cfg).await;
    let r = reqwest::get(format!("{}/metrics", s.http_base()))
        .await
        .expect("GET");
    assert!(!r.status().is_success(), "{}", r.status());
    s.stop().await;
}

/// A real Prometheus server on a private port, its data in a temp dir;
/// killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [{rules:?}]\n\
                 scrape_configs:\n  - job_name: verdict\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules = rules_file().display().to_string()
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (install Debian's `prometheus`)");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The single value of an instant `query`, once it has one.
    async fn query(&self, query: &str) -> Option<f64> {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_str(&resp.text().await.ok()?).ok()?;
        let result = body["data"]["result"].as_array()?;
        let [one] = result.as_slice() else {
            return None;
        };
        one["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` answers `want`. Prometheus offers no event to
    /// wait on, so this asks again after each scrape interval, under a
    /// deadline that names what never happened.
    async fn until(&self, query: &str, want: f64) {
        within(
            WAIT,
            &format!("Prometheus answering {query} = {want}"),
            async {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    if self.query(query).await == Some(want) {
                        return;
                    }
                }
            },
        )
        .await
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rules_file() -> PathBuf {
    repo().join("deploy/prometheus/verdict-alerts.yml")
}

#[tokio::test]
async fn prometheus_scrapes_verdict_and_counts_match() {
    let admin = format!("127.0.0.1:{}", free_port());
    let verdict = VerdictProcess::start(&["--dev", "--metrics-listen", &admin], &[]).await;
    let channel = verdict.serving_channel().await;
    let mut incidents = IncidentServiceClient::new(channel);
    const SENT: usize = 5;
    for i in 0..SENT {
        incidents
            .create_incident(
                IncidentBuilder::alerting("Checkout in trouble", &format!("A{i}"), "checkout")
                    .request(),
            )
            .await
            .expect("create incident");
    }

    let prometheus = Prometheus::start(&admin);
    prometheus.until("up{job=\"verdict\"}", 1.0).await;
    prometheus
        .until(
            "sum(verdict_grpc_requests_total{method=\"CreateIncident\",code=\"OK\"})",
            SENT as f64,
        )
        .await;
    prometheus
        .until(
            "sum(verdict_grpc_request_duration_seconds_count{method=\"CreateIncident\"})",
            SENT as f64,
        )
        .await;
    // Prometheus loaded verdict's alert rules (it refuses to start on a
    // rules file it cannot read, and `up` above would never answer).
    let rules = reqwest::get(format!("{}/api/v1/rules", prometheus.base))
        .await
        .expect("GET rules")
        .text()
        .await
        .expect("rules");
    let rules: serde_json::Value = serde_json::from_str(&rules).expect("rules JSON");
    let groups = rules["data"]["groups"].as_array().map_or(0, Vec::len);
    assert!(groups >= 1, "{rules}");
}

#[test]
fn alert_rules_pass_promtool() {
    let out = run_tool(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(rules_file()),
        None,
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn alert_rules_name_only_metrics_verdict_exports() {
    let rules = std::fs::read_to_string(rules_file()).expect("rules");
    let exported: Vec<&str> = verdict_metric_names();
    for word in rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("verdict_"))
    {
        let base = word
            .trim_end_matches("_bucket")
            .trim_end_matches("_count")
            .trim_end_matches("_sum");
        assert!(
            exported.contains(&base),
            "the rules name {word}, which verdict does not export"
        );
    }
}

/// Every metric name verdict declares.
fn verdict_metric_names() -> Vec<&'static str> {
    use verdict::metrics::*;
    vec![
        GRPC_REQUESTS,
        GRPC_DURATION,
        DECISIONS_ISSUED,
        DECISION_TRANSITIONS,
        ANALYSIS_DURATION,
        FALLBACKS,
        LLM_REQUESTS,
        LLM_DURATION,
        LLM_ATTEMPTS,
        LLM_CIRCUIT,
        CACHE_LOOKUPS,
        WATCH_STREAMS,
        WATCH_FANOUT,
        WATCHERS_DROPPED,
        WEBHOOK_REQUESTS,
        ALERTS_INGESTED,
        REDIS_DURATION,
        REDIS_ERRORS,
        REDIS_POOL,
    ]
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/verdict-dashboard.json"))
        .expect("dashboard");
    serde_json::from_str(&text).expect("dashboard JSON")
}

/// Every query of the dashboard, with Grafana's variables given values.
fn dashboard_queries() -> Vec<String> {
    let d = dashboard();
    let panels = d["panels"].as_array().expect("panels");
    let mut out = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            out.push(expr.replace("$__rate_interval", "5m").replace("$job", ".*"));
        }
    }
    out
}

#[test]
fn dashboard_queries_parse_with_promtool_and_name_exported_metrics() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{}", queries.len());
    // promtool has no offline query check; as recording rules, every
    // expression goes through Prometheus's own parser.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard-as-rules.yml");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(q).expect("quote");
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {quoted}\n"
        ));
    }
    std::fs::write(&file, rules).expect("write");
    run_tool(
        Command::new("promtool").args(["check", "rules"]).arg(&file),
        None,
    );

    let exported = verdict_metric_names();
    for q in &queries {
        for word in q
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("verdict_"))
        {
            let base = word
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                exported.contains(&base),
                "the dashboard names {word}: not exported"
            );
        }
    }
}

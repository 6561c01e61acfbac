//! The benchmark harness runs end to end against an in-process server with
//! a private Redis and counts correctly. No timing is asserted: figures are
//! for BENCHMARKS.md, never for a test.

use crate::common;

use clap::Parser;
use common::RedisServer;
use verdict::app::{Cli, Command};
use verdict::bench::{self, BenchArgs};

fn bench_args(extra: &[&str]) -> BenchArgs {
    let mut argv = vec![
        "verdict",
        "bench",
        "--warmup",
        "0s",
        "-c",
        "8",
        "--records",
        "10",
    ];
    argv.extend(extra);
    match Cli::try_parse_from(argv).expect("valid flags").command {
        Command::Bench(args) => *args,
        other => panic!("parsed as {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_completes_and_counts_each_request_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = bench_args(&[
        "--spawn",
        "--redis-url",
        &url,
        "--scenario",
        "all",
        "-n",
        "300",
        "--scaling-levels",
        "0,500",
    ]);
    let report = bench::run("http://127.0.0.1:1", &args)
        .await
        .expect("bench runs");

    let names: Vec<&str> = report.scenarios.iter().map(|s| s.scenario).collect();
    assert_eq!(
        names,
        [
            "health",
            "get-decision",
            "get-or-create-existing",
            "create-and-decide",
            "approve"
        ]
    );
    for s in &report.scenarios {
        let f = &s.figures;
        let errors: u64 = f.errors.values().sum();
        assert_eq!(
            f.requests, 300,
            "{}: exactly the requests asked for",
            s.scenario
        );
        assert_eq!(
            f.requests,
            f.ok + errors,
            "{}: each request counted once",
            s.scenario
        );
        assert_eq!(errors, 0, "{}: {:?}", s.scenario, f.errors);
        assert!(!f.exhausted, "{}", s.scenario);
        if s.scenario == "health" {
            assert_eq!(f.ratio_to_health, None);
        } else {
            assert!(f.ratio_to_health.is_some(), "{}", s.scenario);
        }
    }

    let scaling = report
        .scaling
        .as_ref()
        .expect("scaling ran: a Redis URL was given");
    assert_eq!(scaling.rows.len(), 2);
    let (first, second) = (&scaling.rows[0], &scaling.rows[1]);
    assert!(first.seeded.is_none(), "nothing to seed for level 0");
    assert!(
        second.stored >= 500,
        "grown to the level: {}",
        second.stored
    );
    assert_eq!(
        second.stored,
        first.stored + second.seeded.expect("seeded").records,
        "the store grew by exactly what was seeded"
    );
    for row in &scaling.rows {
        assert_eq!(row.figures.requests, 300);
        assert_eq!(row.figures.ok, 300, "{:?}", row.figures.errors);
        assert!(row.health_rps > 0.0, "health measured in each step");
        assert!(row.figures.ratio_to_health.is_some());
        // Redis times the lookups that reach it; the replica answers the
        // rest from its copy (none may reach Redis in a short step).
        if let Some(us) = row.redis_us_per_call {
            assert!(us.is_finite() && us >= 0.0, "{us}");
        }
    }
    // Both renderings work on a real report.
    assert!(report.text().contains("get-or-create-existing"));
    assert!(report.json().expect("json").contains("\"ratio_to_health\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_fails_with_a_clear_error() {
    let port = common::free_port();
    let args = bench_args(&["--target", &format!("127.0.0.1:{port}"), "-n", "10"]);
    let err = bench::run("http://127.0.0.1:1", &args)
        .await
        .expect_err("nothing listens there");
    assert!(format!("{err:#}").contains("cannot connect"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_fanout_delivers_the_transition_to_every_stream() {
    let s = common::TestServer::start(common::config(None)).await;
    let addr = format!("http://{}", s.running.as_ref().unwrap().addr);
    let r = verdict::bench::fanout::run(&[addr], 150, &[], std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((r.watchers, r.delivered), (150, 150));
    assert!(r.server_rss_mb.is_none());
    // The server's own send side: the one change's fan-out, read from its
    // /metrics.
    let send = r.server_send.expect("the server's /metrics");
    assert_eq!(send.changes, 1);
    assert!(send.max_le_ms.is_finite(), "{send:?}");
}

/// A saved report holding these ratios to health (`--json` shape).
fn report_json(ratios: &[(&str, Option<f64>)]) -> String {
    let scenarios: Vec<serde_json::Value> = ratios
        .iter()
        .map(|(n, r)| serde_json::json!({"scenario": n, "rps": 1.0, "ratio_to_health": r}))
        .collect();
    serde_json::json!({ "target": "x", "scenarios": scenarios }).to_string()
}

#[tokio::test]
async fn compare_fails_when_a_ratio_falls_beyond_the_margin() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, ratios: &[(&str, Option<f64>)]| {
        let path = dir.path().join(name);
        std::fs::write(&path, report_json(ratios)).unwrap();
        path.display().to_string()
    };
    let base = file(
        "base.json",
        &[
            ("health", None),
            ("get-decision", Some(0.42)),
            ("approve", Some(0.18)),
        ],
    );
    // get-decision fell 14 %, approve rose.
    let slower = file(
        "slower.json",
        &[
            ("health", None),
            ("get-decision", Some(0.36)),
            ("approve", Some(0.30)),
        ],
    );
    let compare = |current: &str, margin: &str| {
        let args = bench_args(&["--compare", &base, "--current", current, "--margin", margin]);
        bench::main("http://127.0.0.1:1", false, args)
    };

    let err = compare(&slower, "10")
        .await
        .expect_err("a regression fails");
    let text = format!("{err:#}");
    assert!(
        text.contains("get-decision") && !text.contains("approve"),
        "{text}"
    );
    compare(&slower, "15").await.expect("within a 15 % margin");
    compare(&base, "0")
        .await
        .expect("the same run never regresses");

    let missing = dir.path().join("missing.json").display().to_string();
    let err = compare(&missing, "10").await.expect_err("no such file");
    assert!(format!("{err:#}").contains("missing.json"));
    let fanout = dir.path().join("fanout.json");
    std::fs::write(&fanout, "[]").unwrap();
    let err = compare(&fanout.display().to_string(), "10")
        .await
        .expect_err("not a load report");
    assert!(format!("{err:#}").contains("not a bench report"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_run_is_a_baseline_and_a_run_compares_against_one() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("run.json").display().to_string();
    // Ratios no run can reach, and none a run can fall below.
    let high = dir.path().join("high.json");
    std::fs::write(&high, report_json(&[("get-decision", Some(1000.0))])).unwrap();
    let low = dir.path().join("low.json");
    std::fs::write(&low, report_json(&[("get-decision", Some(1e-9))])).unwrap();
    let run = |baseline: &std::path::Path| {
        let args = bench_args(&[
            "--spawn",
            "--scenario",
            "get-decision",
            "-n",
            "200",
            "--rounds",
            "1",
            "--save",
            &saved,
            "--compare",
            baseline.to_str().unwrap(),
        ]);
        bench::main("http://127.0.0.1:1", false, args)
    };
    run(&low)
        .await
        .expect("no ratio fell below a tiny baseline");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(report["scenarios"][1]["scenario"], "get-decision");
    assert!(report["scenarios"][1]["ratio_to_health"].as_f64().is_some());
    let err = run(&high)
        .await
        .expect_err("every run is below 1000× health");
    assert!(format!("{err:#}").contains("get-decision"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_decision_auth_runs_beside_get_decision_and_every_call_passes_the_check() {
    let args = bench_args(&["--spawn", "--scenario", "get-decision-auth", "-n", "200"]);
    let report = bench::run("http://127.0.0.1:1", &args)
        .await
        .expect("bench runs");
    let names: Vec<&str> = report.scenarios.iter().map(|s| s.scenario).collect();
    assert_eq!(names, ["health", "get-decision", "get-decision-auth"]);
    for s in &report.scenarios {
        // A refused token would count as UNAUTHENTICATED errors here.
        assert_eq!(s.figures.ok, 200, "{}: {:?}", s.scenario, s.figures.errors);
    }
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("get-decision-auth / get-decision = ")),
        "{:?}",
        report.notes
    );
    // Without --spawn there is no server that knows the bench's token.
    let alone = bench_args(&["--scenario", "get-decision-auth"]);
    let err = bench::run("http://127.0.0.1:1", &alone).await.unwrap_err();
    assert!(err.to_string().contains("--spawn"), "{err}");
}

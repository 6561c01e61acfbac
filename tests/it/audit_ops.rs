//! The audit trail around a real `verdict serve`: configuration reloads
//! recorded (SIGHUP and a changed file), floods of refused calls kept to a
//! bounded number of events with a summary of the rest, and the JSON-lines
//! sink.

use crate::common::{RedisServer, VerdictProcess};
use std::sync::Arc;
use std::time::Duration;
use verdict::audit::{Action, DEVELOPMENT_KEY, Event, Signer};
use verdict::auth::{TokenEntry, token};
use verdict::clock::SystemClock;
use verdict::domain::Role;
use verdict::manager::{AuditFilter, AuditLog};
use verdict::store::redis::PoolConfig;
use verdict::store::{RedisStore, Retention, Store};

const LIMIT: Duration = Duration::from_secs(20);

/// A reader of the trail in `redis`, with the development key the
/// processes seal with (no key configured).
fn trail(redis: &RedisServer) -> AuditLog {
    let store = RedisStore::new(
        &redis.url(),
        PoolConfig {
            size: 2,
            wait: Duration::from_secs(2),
            ..Default::default()
        },
        Retention::default(),
    )
    .expect("store")
    .with_audit(Signer::new(DEVELOPMENT_KEY));
    AuditLog::new(Arc::new(store) as Arc<dyn Store>, Arc::new(SystemClock))
}

/// Every kept event with `action`, oldest first.
async fn events_of(log: &AuditLog, action: Action) -> Vec<Event> {
    let filter = AuditFilter {
        action: Some(action),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = log.list(&filter, after, 1000).await.expect("list");
        out.extend(page.events.into_iter().map(|(_, e)| e));
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// A principal's bearer token and its config entry.
fn principal(subject: &str) -> (String, TokenEntry) {
    token::generate(subject, [Role::Viewer].into_iter().collect()).expect("token")
}

/// A config file's `[[auth_tokens]]` for `entries`, plus `extra` lines.
fn config_file(entries: &[&TokenEntry], extra: &str) -> String {
    let mut s = String::from(extra);
    for e in entries {
        s += &format!(
            "\n[[auth_tokens]]\nsubject = {:?}\nroles = [\"viewer\"]\nsha256 = {:?}\n",
            e.subject, e.sha256
        );
    }
    s
}

/// Replaces the file at `path` in one step (write aside, rename), as
/// configuration management does: the server never reads half a file.
fn replace(path: &std::path::Path, content: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, content).expect("write config");
    std::fs::rename(&aside, path).expect("rename config");
}

fn sighup(v: &VerdictProcess) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &v.pid().to_string()])
        .status()
        .expect("kill -HUP")
        .success();
    assert!(ok, "kill -HUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_applied_and_refused_are_recorded_without_secrets() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("verdict.toml");
    let (_, vera) = principal("vera");
    let (_, neo) = principal("neo");
    std::fs::write(&path, config_file(&[&vera], "")).expect("write config");
    let path_arg = path.to_str().expect("utf-8 path");
    let v = VerdictProcess::start(&["--config", path_arg, "--redis-url", &redis.url()], &[]).await;
    v.serving_channel().await;
    let log = trail(&redis);

    // A changed file: neo added, vera removed.
    replace(&path, &config_file(&[&neo], ""));
    v.wait_for_log("\"configuration reloaded\"", LIMIT).await;
    let reloads = events_of(&log, Action::ConfigReloaded).await;
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    let e = &reloads[0];
    assert_eq!(e.outcome, "OK");
    assert_eq!(e.chain, verdict::audit::GLOBAL_CHAIN);
    assert_eq!(e.subject, "verdict");
    assert_eq!(e.auth_method, "system");
    assert!(e.detail.contains("config file changed"), "{}", e.detail);
    assert!(
        e.detail.contains("principals 1, added neo, removed vera"),
        "{}",
        e.detail
    );
    assert!(!e.detail.contains(&neo.sha256), "no digests in the trail");

    // A file that does not parse: refused when it changes and again on
    // SIGHUP, each recorded with why, the file's content never quoted.
    replace(&path, "auth_tokens = \"s3cret-not-toml");
    v.wait_for_log_count("configuration NOT reloaded", 1, LIMIT)
        .await;
    sighup(&v);
    v.wait_for_log_count("configuration NOT reloaded", 2, LIMIT)
        .await;
    let reloads = events_of(&log, Action::ConfigReloaded).await;
    assert_eq!(reloads.len(), 3, "{reloads:?}");
    for (refused, trigger) in reloads[1..].iter().zip(["config file changed", "SIGHUP"]) {
        assert_eq!(refused.outcome, "INVALID_ARGUMENT");
        assert!(refused.detail.contains(trigger), "{}", refused.detail);
        assert!(
            refused.detail.contains("NOT reloaded"),
            "{}",
            refused.detail
        );
        assert!(!refused.detail.contains("s3cret"), "{}", refused.detail);
    }

    // And the trail still verifies.
    let report = log
        .verify(Signer::new(DEVELOPMENT_KEY), None)
        .await
        .expect("verify");
    assert!(report.is_whole(), "{report:?}");
}

//! Redis restarted with a real dataset answers `LOADING` until the dataset
//! is in memory. That is transient: callers must get UNAVAILABLE (worth a
//! retry), never INTERNAL. The dataset is made slow to load on purpose
//! (Redis's own `key-load-delay`), so the server is seen loading for
//! seconds, not by luck.

use crate::common::{self, TestServer};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tonic::Code;
use verdict::proto::GetIncidentRequest;

/// A `redis-server` on a unix socket in `dir`, killed on drop.
struct Redis(Child);

impl Redis {
    /// Starts it and returns once its log has printed a line containing
    /// `ready_when` (its output is drained afterwards so the pipe never
    /// fills).
    fn spawn(dir: &Path, socket: &str, extra: &[&str], ready_when: &'static str) -> Redis {
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(dir.join(socket))
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .args(["--logfile", "", "--daemonize", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(ready_when)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        let redis = Redis(child);
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("redis-server never logged {ready_when:?}"));
        redis
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_still_loading_its_dataset_gives_unavailable_not_internal() {
    let dir = tempfile::tempdir().expect("tempdir");

    // A dataset of 20 000 keys, saved to dump.rdb.
    {
        let _seed = Redis::spawn(
            dir.path(),
            "seed.sock",
            &["--enable-debug-command", "yes"],
            "ready to accept connections",
        );
        let url = format!("redis+unix://{}", dir.path().join("seed.sock").display());
        let mut c = connect(&url).await;
        redis::cmd("DEBUG")
            .arg("POPULATE")
            .arg(20_000)
            .query_async::<()>(&mut c)
            .await
            .expect("populate");
        redis::cmd("SAVE")
            .query_async::<()>(&mut c)
            .await
            .expect("save");
    }

    // Restarted on that dataset, each key taking 500 µs to load: about
    // ten seconds of LOADING.
    // Its socket is bound before it starts loading.
    let _loading = Redis::spawn(
        dir.path(),
        "redis.sock",
        &[
            "--key-load-delay",
            "500",
            // Serve clients while loading (the default waits for 2 MiB).
            "--loading-process-events-interval-bytes",
            "1024",
        ],
        "Loading RDB",
    );
    let url = format!("redis+unix://{}", dir.path().join("redis.sock").display());
    let mut c = connect(&url).await;
    let probe = redis::cmd("GET")
        .arg("x")
        .query_async::<Option<String>>(&mut c)
        .await;
    let err = probe.expect_err("Redis is still loading");
    assert_eq!(err.code(), Some("LOADING"), "{err}");

    let mut config = common::config(None);
    config.redis_url = Some(url);
    config.dev = false;
    let mut s = TestServer::start(config).await;
    let answer = s
        .incidents
        .get_incident(GetIncidentRequest {
            id: "INC-LOADING-1".into(),
        })
        .await
        .expect_err("Redis is loading");
    assert_eq!(answer.code(), Code::Unavailable, "{answer:?}");

    // Still loading afterwards: the answer above was given while it was.
    let probe = redis::cmd("GET")
        .arg("x")
        .query_async::<Option<String>>(&mut c)
        .await;
    assert_eq!(
        probe.err().and_then(|e| e.code().map(str::to_owned)),
        Some("LOADING".to_owned()),
        "the dataset loaded too fast for this test to see LOADING"
    );
}

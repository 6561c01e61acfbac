//! Test fixtures: a private `redis-server` per test (on a unix socket in
//! its own temporary directory), in-process verdict servers reached through
//! the generated clients, `verdict serve` child processes, incident
//! fixtures (`IncidentBuilder`), Redis command counts, and bounded waits on
//! events (`within`, `KeyEvents`).
//!
//! Every item is used by some suite: the crate is one binary, so an unused
//! helper warns.

mod commandstats;
pub mod fake_kube;
pub mod fake_llm;
pub mod fake_slack;
pub mod fake_telegram;
mod incident;
mod process;
mod wait;

pub use commandstats::{command_counts, reset_command_counts};
pub use incident::IncidentBuilder;
pub use process::VerdictProcess;
pub use wait::{KeyEvents, within};

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tempfile::TempDir;
use tonic::transport::Channel;
use verdict::clock::Clock;
use verdict::config::Config;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::incident_service_client::IncidentServiceClient;
use verdict::server::{Overrides, Running};

/// A `redis-server` listening only on a unix socket in its own temporary
/// directory, persisting nothing, killed when dropped.
///
/// No TCP port: a port picked as "free" can be taken by another test before
/// the server binds it, while a socket path in a private directory cannot.
pub struct RedisServer {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::try_start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
    }

    fn try_start() -> Result<RedisServer, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let socket = dir.path().join("redis.sock");
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--unixsocketperm", "700"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--logfile", "", "--daemonize", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server not found or not runnable ({e}); run scripts/test.sh, which installs it"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Wait for the server's own "ready" line, then keep draining its
        // output so the pipe never fills.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // "Ready to accept connections unix" (7.2+) or "The server is now
                // ready to accept connections at PATH" (7.0).
                if line
                    .to_ascii_lowercase()
                    .contains("ready to accept connections")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(()) => Ok(RedisServer {
                child,
                socket,
                _dir: dir,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "redis-server on {} did not become ready within 20 s",
                    socket.display()
                ))
            }
        }
    }

    /// `redis+unix:///tmp/…/redis.sock`: accepted wherever verdict takes a
    /// Redis URL (the in-process server, `verdict serve`, the bench seeder).
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// A plain connection for inspecting what is stored.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// Subscribes to keyspace notifications for keys matching `pattern`
    /// (a glob, as in `KEYS`). Events from the moment this returns are
    /// seen, so check the state once after subscribing, then wait.
    pub async fn key_events(&self, pattern: &str) -> KeyEvents {
        let mut conn = self.conn().await;
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("KA")
            .query_async::<()>(&mut conn)
            .await
            .expect("enable keyspace notifications");
        let mut pubsub = redis::Client::open(self.url())
            .expect("valid url")
            .get_async_pubsub()
            .await
            .expect("pub/sub connection to test redis");
        pubsub
            .psubscribe(format!("__keyspace@0__:{pattern}"))
            .await
            .expect("subscribe to keyspace notifications");
        KeyEvents::new(Box::pin(pubsub.into_on_message()))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free at the moment of asking, for a listener that must be
/// told its port up front (a child `verdict serve`). Another process may
/// take it before it is bound, so prefer binding `127.0.0.1:0` directly.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A config for an in-process server on a free port.
pub fn config(redis: Option<&RedisServer>) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        redis_url: redis.map(|r| r.url()),
        dev: redis.is_none(),
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A running verdict server with connected clients.
pub struct TestServer {
    pub running: Option<Running>,
    pub incidents: IncidentServiceClient<Channel>,
    pub decisions: DecisionServiceClient<Channel>,
    pub channel: Channel,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        Self::start_with(config, None).await
    }

    pub async fn start_with(config: Config, clock: Option<Arc<dyn Clock>>) -> TestServer {
        Self::start_overridden(
            config,
            Overrides {
                clock,
                ..Overrides::default()
            },
        )
        .await
    }

    pub async fn start_overridden(config: Config, overrides: Overrides) -> TestServer {
        let running = verdict::server::start(config, overrides)
            .await
            .expect("server starts");
        let channel = Channel::from_shared(format!("http://{}", running.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        TestServer {
            running: Some(running),
            incidents: IncidentServiceClient::new(channel.clone()),
            decisions: DecisionServiceClient::new(channel.clone()),
            channel,
        }
    }

    /// The server's plain HTTP base URL (`http://127.0.0.1:PORT`).
    pub fn http_base(&self) -> String {
        let addr = self
            .running
            .as_ref()
            .map(|r| r.addr)
            .expect("server running");
        format!("http://{addr}")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown_token().cancel();
        }
    }
}

/// Creates an incident and returns its id.
pub async fn create_incident(s: &mut TestServer, alert: &str) -> String {
    s.incidents
        .create_incident(
            IncidentBuilder::alerting("Checkout in trouble", alert, "checkout").request(),
        )
        .await
        .expect("create incident")
        .into_inner()
        .incident
        .expect("incident")
        .id
}

/// Issues a READY decision for an incident and returns it.
pub async fn decide(s: &mut TestServer, incident_id: &str) -> verdict::proto::Decision {
    s.decisions
        .get_or_create_decision(verdict::proto::GetOrCreateDecisionRequest {
            incident_id: incident_id.into(),
            wait: true,
            ..Default::default()
        })
        .await
        .expect("decide")
        .into_inner()
        .decision
        .expect("decision")
}

/// The field paths of a status' BadRequest violations.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// An incident's decisions, newest first (`ListDecisions`).
pub async fn history(s: &TestServer, incident_id: &str) -> Vec<verdict::proto::Decision> {
    s.decisions
        .clone()
        .list_decisions(verdict::proto::ListDecisionsRequest {
            incident_id: incident_id.into(),
        })
        .await
        .expect("list decisions")
        .into_inner()
        .decisions
}

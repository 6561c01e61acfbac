//! `verdict serve` as a child process, for what only a real process shows:
//! a replica killed with SIGKILL, settings read from the environment.

use super::within;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a child may take to start, or to reach SERVING.
const START: Duration = Duration::from_secs(30);

/// A `verdict serve` child on a port it picked itself (`127.0.0.1:0`),
/// killed and reaped when dropped, whose JSON log lines are kept.
pub struct VerdictProcess {
    child: Child,
    /// `127.0.0.1:PORT`, from its "verdict listening" log line.
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// The number of lines logged so far, for waiting on a line.
    lines: tokio::sync::watch::Receiver<usize>,
}

impl VerdictProcess {
    /// Starts `verdict serve --listen 127.0.0.1:0 --log-format json ARGS`
    /// with `env` added (and `RUST_LOG` removed, so the listening line is
    /// logged), and returns once it has logged the address it listens on.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> VerdictProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
        Self::spawn(command, args, env).await
    }

    /// [`Self::start`] with the open-file limit (`ulimit -n`) lowered to
    /// `nofile` for the child only (through `sh`, so no unsafe `setrlimit`
    /// between fork and exec).
    pub async fn start_with_nofile(
        nofile: u32,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> VerdictProcess {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_verdict"),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ]);
        Self::spawn(command, args, env).await
    }

    async fn spawn(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> VerdictProcess {
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn verdict serve");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = oneshot::channel();
        let (count, lines) = tokio::sync::watch::channel(0usize);
        let kept = logs.clone();
        // Reads every line (so the pipe never fills) and reports the
        // listening address once.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["fields"]["message"] == "verdict listening"
                    && let (Some(addr), Some(tx)) = (v["fields"]["addr"].as_str(), tx.take())
                {
                    let _ = tx.send(addr.to_string());
                }
                let n = {
                    let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                    kept.push(line);
                    kept.len()
                };
                count.send_replace(n);
            }
        });
        let mut process = VerdictProcess {
            child,
            addr: String::new(),
            logs,
            lines,
        };
        let what = "verdict serve logging its address";
        match within(START, what, rx).await {
            Ok(addr) => process.addr = addr,
            // The reader ended without the line: the process exited.
            Err(_) => panic!("verdict serve exited before listening: {}", process.logs()),
        }
        process
    }

    /// Every line it has logged so far.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Waits (up to `limit`) until a logged line contains `needle`: woken
    /// by each new line, never polling.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let mut lines = self.lines.clone();
        let what = format!("verdict serve logging {needle:?}");
        within(limit, &what, async {
            loop {
                if self.logs().contains(needle) {
                    return;
                }
                if lines.changed().await.is_err() {
                    panic!(
                        "verdict serve exited before logging {needle:?}: {}",
                        self.logs()
                    );
                }
            }
        })
        .await;
    }

    /// Waits (up to `limit`) until `n` logged lines contain `needle`.
    pub async fn wait_for_log_count(&self, needle: &str, n: usize, limit: Duration) {
        let mut lines = self.lines.clone();
        let what = format!("verdict serve logging {needle:?} {n} times");
        let count = || {
            self.logs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|l| l.contains(needle))
                .count()
        };
        within(limit, &what, async {
            while count() < n {
                if lines.changed().await.is_err() {
                    panic!("verdict serve exited: {}", self.logs());
                }
            }
        })
        .await;
    }

    /// Its process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A channel to it, once its health service says SERVING (it has
    /// reached Redis): waits on the health `Watch` stream, not by polling.
    pub async fn serving_channel(&self) -> Channel {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect to verdict serve");
        let mut health = HealthClient::new(channel.clone())
            .watch(HealthCheckRequest::default())
            .await
            .expect("health watch")
            .into_inner();
        within(START, "verdict serve reaching SERVING", async {
            loop {
                let msg = health
                    .message()
                    .await
                    .expect("health watch stream")
                    .expect("health watch ended before SERVING");
                if msg.status == ServingStatus::Serving as i32 {
                    break;
                }
            }
        })
        .await;
        channel
    }

    /// SIGTERM (a graceful shutdown: drain, background work stopped),
    /// then reap; whether it exited successfully. Needs a multi-threaded
    /// runtime (the wait blocks this worker, bounded by the server's own
    /// shutdown grace).
    pub fn terminate(mut self) -> bool {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM");
        tokio::task::block_in_place(|| self.child.wait())
            .expect("reaped")
            .success()
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for VerdictProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

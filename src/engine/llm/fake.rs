//! A fake LLM that never answers, for the deadline benchmark and tests: it
//! accepts connections, reads whatever is sent and holds the connection
//! open without a byte of reply, like a wedged inference server.
//!
//! It lives in the library (not under `tests/`) so `verdict bench` can start
//! one in-process. It never leaves the loopback interface.

use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections held open at most; more are closed at once (still no reply).
const MAX_CONNECTIONS: usize = 4096;

/// The running fake; stops (and drops every held connection) when dropped.
pub struct HangingLlm {
    addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl HangingLlm {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<HangingLlm> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (s, t) = (stop.clone(), tasks.clone());
        tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = s.cancelled() => return,
                };
                let Ok((mut sock, _)) = accepted else {
                    continue;
                };
                if t.len() > MAX_CONNECTIONS {
                    continue;
                }
                let s = s.clone();
                t.spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        tokio::select! {
                            r = sock.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
                            _ = s.cancelled() => return,
                        }
                    }
                });
            }
        });
        Ok(HangingLlm { addr, stop, tasks })
    }

    /// The base URL to configure verdict with (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Connections it holds right now (including the accept loop).
    pub fn held(&self) -> usize {
        self.tasks.len().saturating_sub(1)
    }
}

impl Drop for HangingLlm {
    fn drop(&mut self) {
        self.stop.cancel();
        self.tasks.close();
    }
}

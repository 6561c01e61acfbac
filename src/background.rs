//! The server's background work, owned in one place.
//!
//! Every long-lived task a replica runs beside its RPCs (the change-feed
//! follower, the recovery sweep, the health check) and the short ones it
//! starts without waiting for them (proposal-cache writes) are spawned on
//! one [`TaskTracker`] and stop on one [`CancellationToken`]. Shutdown
//! therefore *awaits* them ([`Background::stop`]) instead of aborting them
//! mid-write, and nothing outlives the server.
//!
//! A task that panics is not swallowed: the panic is logged as an error,
//! recorded, and cancels the shutdown token. A replica whose feed follower
//! died would serve watchers that never hear a change again, so it stops
//! (and is restarted by whatever supervises it), and
//! [`Background::stop`] reports which task failed.

use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The owner of a replica's background tasks.
#[derive(Clone)]
pub struct Background {
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Names of the tasks that panicked.
    panicked: Arc<Mutex<Vec<&'static str>>>,
}

impl Background {
    /// Background work stopped by `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        Background {
            tasks: TaskTracker::new(),
            shutdown,
            panicked: Arc::default(),
        }
    }

    /// The token every background task stops on.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The tracker, for components that spawn short tasks of their own
    /// (the proposal cache's writes); those are awaited on stop too.
    pub fn tracker(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// Runs `task` in the background under `name`. It must end once the
    /// shutdown token is cancelled.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let (panicked, shutdown) = (Arc::clone(&self.panicked), self.shutdown.clone());
        self.tasks.spawn(async move {
            // AssertUnwindSafe: after a panic nothing of the task is used
            // again; only its name is recorded.
            if AssertUnwindSafe(task).catch_unwind().await.is_err() {
                tracing::error!(task = name, "background task panicked; stopping the server");
                panicked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(name);
                shutdown.cancel();
            }
        });
    }

    /// Cancels the shutdown token and waits up to `bound` for every task to
    /// end. An error names the tasks that panicked.
    pub async fn stop(&self, bound: Duration) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(bound, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?bound,
                left = self.tasks.len(),
                "background tasks did not stop in time"
            );
        }
        let panicked = self.panicked.lock().unwrap_or_else(|p| p.into_inner());
        if panicked.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("background task(s) panicked: {}", panicked.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_are_awaited_on_stop() {
        let bg = Background::new(CancellationToken::new());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let token = bg.shutdown().clone();
        bg.spawn("waits", async move {
            token.cancelled().await;
            // Work after cancellation still completes: not aborted.
            let _ = tx.send(());
        });
        bg.stop(Duration::from_secs(10)).await.unwrap();
        assert!(rx.await.is_ok(), "the task ran to its end");
    }

    #[tokio::test]
    async fn a_panic_is_surfaced_and_stops_the_server() {
        let bg = Background::new(CancellationToken::new());
        bg.spawn("doomed", async { panic!("boom") });
        // The panic cancels the token: the server begins to stop.
        bg.shutdown().cancelled().await;
        let err = bg.stop(Duration::from_secs(10)).await.unwrap_err();
        assert!(err.to_string().contains("doomed"), "{err}");
    }
}

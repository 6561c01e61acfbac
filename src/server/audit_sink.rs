//! The JSON-lines audit sink's writer (`audit_sink = "stdout" | "<path>"`):
//! every event this replica appends (see `store/sink.rs` for which, and
//! why each event reaches exactly one replica's sink), one JSON object per
//! line, for log shippers. A file is opened for appending and reopened on
//! each configuration reload (SIGHUP: logrotate's `postrotate`), so a
//! rotated file is let go. At shutdown the lines already queued are
//! written; an event appended after that (a refusal summary written as
//! the replica stops) is in the trail but may miss the sink.

use std::path::PathBuf;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};

/// A request to reopen the file, answered once it is reopened.
pub type Reopen = oneshot::Sender<()>;
use tokio_util::sync::CancellationToken;

/// Where the sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    /// `stdout`, or the path of a file.
    pub fn parse(s: &str) -> Target {
        match s {
            "stdout" | "-" => Target::Stdout,
            path => Target::File(PathBuf::from(path)),
        }
    }

    /// Opens the target for appending.
    pub async fn open(&self) -> std::io::Result<Box<dyn AsyncWrite + Send + Unpin>> {
        Ok(match self {
            Target::Stdout => Box::new(tokio::io::stdout()),
            Target::File(path) => Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?,
            ),
        })
    }
}

/// Writes the queued lines to `target` until `shutdown`, then the lines
/// still queued; on a `reopen` request, writes what is queued to the old
/// file, reopens, and answers (so an event appended after the answer is in
/// the new file). A write error is logged once per episode and the line
/// dropped (counted): the trail is the record.
pub(super) async fn run(
    target: Target,
    first: Box<dyn AsyncWrite + Send + Unpin>,
    mut lines: mpsc::Receiver<String>,
    mut reopen: mpsc::Receiver<Reopen>,
    shutdown: CancellationToken,
) {
    let mut out = BufWriter::new(first);
    let mut failing = false;
    loop {
        let line = tokio::select! {
            biased;
            Some(done) = reopen.recv() => {
                while let Ok(line) = lines.try_recv() {
                    write(&mut out, &line, &mut failing).await;
                }
                let _ = out.flush().await;
                match target.open().await {
                    Ok(f) => out = BufWriter::new(f),
                    Err(e) => tracing::error!(error = %e, "audit sink: cannot reopen; writing to the old file"),
                }
                let _ = done.send(());
                continue;
            }
            _ = shutdown.cancelled() => break,
            line = lines.recv() => match line {
                Some(l) => l,
                None => break,
            },
        };
        write(&mut out, &line, &mut failing).await;
        // Flushed whenever the queue is empty: a line is out as soon as
        // nothing more is waiting behind it.
        if lines.is_empty() && out.flush().await.is_err() {
            failing = true;
        }
    }
    while let Ok(line) = lines.try_recv() {
        write(&mut out, &line, &mut failing).await;
    }
    let _ = out.flush().await;
}

async fn write(
    out: &mut BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    line: &str,
    failing: &mut bool,
) {
    let wrote = async {
        out.write_all(line.as_bytes()).await?;
        out.write_all(b"\n").await
    }
    .await;
    match wrote {
        Ok(()) => *failing = false,
        Err(e) => {
            crate::metrics::audit_sink_dropped();
            if !*failing {
                tracing::error!(error = %e, "audit sink: write failed; lines are dropped until it recovers");
            }
            *failing = true;
        }
    }
}

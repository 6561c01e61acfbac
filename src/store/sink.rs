//! The store's side of the JSON-lines audit sink: each event this replica
//! appends, handed on as the JSON it was stored as (the shape of
//! `verdict audit list --json`) through a bounded queue the sink's writer
//! (`server/audit_sink.rs`) empties.
//!
//! Each replica hands on only the events *it* appended, right after the
//! write that appended them succeeded, so across replicas every event
//! reaches some sink exactly once (an event written by a write that lost
//! its race is never handed on; there is none). The Redis trail stays the
//! record of truth: a full queue (a slow disk, a stalled stdout) drops the
//! line and counts it (`verdict_audit_sink_dropped_total`) rather than
//! slowing a decision down.

use tokio::sync::mpsc;

/// Lines the queue holds before it drops.
pub const SINK_QUEUE: usize = 4096;

/// Where appended events go besides the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink(mpsc::Sender<String>);

impl AuditSink {
    /// A sink and the receiver its writer reads, holding [`SINK_QUEUE`]
    /// lines.
    pub fn channel() -> (AuditSink, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        (AuditSink(tx), rx)
    }

    /// Hands one event's JSON on, never waiting: dropped (and counted)
    /// when the queue is full or the writer has stopped.
    pub(crate) fn offer(&self, json: String) {
        if self.0.try_send(json).is_err() {
            crate::metrics::audit_sink_dropped();
        }
    }
}

//! Live decisions: one change feed per replica fanned out to local watchers.
//! `WatchDecisions` watchers may also ask for incident changes (a status
//! moved, signals merged), which travel the same feed, so a board drops a
//! resolved incident at once.
//!
//! Every decision change is appended to the store's change feed in the same
//! atomic step as the change itself (a Redis Stream, or in-process for the
//! memory store). Each replica follows the feed once ([`Hub::publish`] is
//! its sink) and hands each change to the watchers of that token, or to
//! dashboards watching everything, through bounded channels. A change is
//! rendered and encoded once per replica ([`Render`], implemented by the API
//! layer) and every watcher gets the same bytes behind one `Arc`: the
//! per-watcher work is a reference count and a write.
//!
//! Backpressure, by design:
//! - A `WatchDecision` watcher that falls behind never loses a change: when
//!   its buffer is full it is told so and re-reads the versions it missed
//!   from the store (every version of a decision is kept beside it), then
//!   goes on. It never slows down other watchers.
//! - A `WatchDecisions` (all decisions) watcher cannot be caught up from the
//!   store, so when its buffer overflows its stream ends with
//!   RESOURCE_EXHAUSTED; the dashboard reconnects and reloads.

pub mod hub;
pub mod watcher;

pub use hub::{Change, Filter, Hub, Published, Render, SharedChange, SharedDecision, WatchError};
pub use watcher::{Sent, StreamEnd, WatchContext, watch_all, watch_decision};

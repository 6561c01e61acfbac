//! verdict: an incident-remediation decision service.
//!
//! See `ARCHITECTURE.md` for the map. Layers, outside in: `api` (gRPC) →
//! `manager` (application rules) → `engine` (proposals) and `store`
//! (persistence) → `domain` (plain types, no I/O). Beside them, the
//! clients: `cli` and `bench` over `client`, tied together by `app`.
//! `tests/it/architecture.rs` holds every module to its allowed imports.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cli;
pub(crate) mod client;
pub mod clock;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error_code;
pub mod executor;
pub mod ingest;
pub mod manager;
pub mod metrics;
pub mod middleware;
pub mod notify;
pub mod proto;
pub mod server;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod watch;

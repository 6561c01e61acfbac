//! The integration tests, one crate with a module per suite.
//!
//! One binary instead of one per file: the test code is compiled and linked
//! against verdict and its dependencies once, not fifteen times. nextest
//! still runs every test in its own process, in parallel; the fixtures in
//! `common` give each test its own Redis and server, so no state is shared.

mod common;

mod architecture;
mod audit;
mod audit_ops;
mod audit_watch;
mod auth;
mod auth_jwks_url;
mod auth_jwt;
mod bad_input;
#[cfg(feature = "bench")]
mod bench_smoke;
mod chat;
mod claim;
mod cors;
mod decisions;
mod edge_limits;
mod executor;
mod hardening_input;
mod health;
mod hostile_answers;
mod idempotency;
mod incidents;
mod ingest;
mod ingest_auth;
mod kubectl;
mod llm_client;
mod llm_decisions;
mod lookup_cost;
mod metrics;
mod otlp;
mod recovery;
mod redis_loading;
mod slack;
mod stats;
mod store_conformance;
mod stored_format;
mod tls;
mod ui;
mod verify;
mod watch;

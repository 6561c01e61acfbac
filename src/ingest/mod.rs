//! Alert ingestion: alerts in, incidents opened, merged and resolved.
//!
//! One implementation behind two doors: `IncidentService.IngestSignals`
//! (gRPC, in `api/incidents.rs`) and `POST /api/v1/alertmanager` (the
//! Prometheus Alertmanager webhook, [`webhook`]). Both hand validated
//! domain [`crate::domain::Signal`]s to the [`Ingestor`].
//!
//! - `alertmanager.rs` — the webhook payload (version 4) and its parsing,
//!   every problem reported with its JSON path.
//! - `grouping.rs` — the configurable rules: grouping key, severity
//!   mapping, service labels, title.
//! - `merge.rs` — how alerts fold into an incident (dedup by fingerprint,
//!   stale replays, bounds), pure.
//! - `ingestor.rs` — the application logic over the store: per-group
//!   compare-and-set, deterministic ids for new incidents, auto-resolve,
//!   auto-decide.
//! - `webhook.rs` — the HTTP route: token, content type, size, JSON errors.
//! - `settings.rs` — [`IngestConfig`], the `[ingest]` settings, their
//!   defaults and their checks.
//!
//! Like the managers, this module knows neither protobuf nor Redis.

pub mod alertmanager;
pub mod grouping;
pub mod ingestor;
pub mod merge;
pub mod settings;
pub mod webhook;

pub use grouping::Policy;
pub use ingestor::{IngestSettings, Ingestor, Report, Touched};
pub use settings::IngestConfig;
pub use webhook::{Webhook, WebhookToken};

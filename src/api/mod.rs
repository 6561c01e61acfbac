//! The gRPC surface: tonic service implementations and the conversions
//! between protobuf and domain types. This is the only module that knows
//! protobuf, and `status.rs` is the only place errors become `Status` (the
//! code from each error's `code()`, see `error_code.rs`).

pub mod audit;
pub mod audited;
pub mod convert;
pub mod deadline;
pub mod decisions;
pub mod identity;
pub mod incidents;
pub mod stats;
pub mod status;
pub mod wire;

pub use audit::{AuditApi, MAX_AUDIT_WATCHERS};
pub use decisions::DecisionApi;
pub use identity::IdentityApi;
pub use incidents::IncidentApi;
pub use stats::StatsApi;
pub use wire::{DecisionRoutes, WireRender};

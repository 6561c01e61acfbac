//! The application layer: incident, decision and statistics operations on top of a
//! [`crate::store::Store`], independent of gRPC. `api/` translates protobuf
//! to calls here; errors come back as [`ManagerError`].

pub mod approval;
pub mod audit;
pub mod claim;
pub mod decisions;
pub mod error;
pub mod execution;
pub mod incidents;
pub mod stats;
pub mod sweeper;
mod waiters;

pub use crate::audit::refusals::RefusalLimits;
pub use approval::{ApprovalPolicy, ApprovalRule};
pub use audit::{AuditFilter, AuditLog, AuditPage, AuditWatchEnd};
pub use decisions::{DecisionManager, DecisionRequest, DecisionSettings, ExecutorKind, Issued};
pub use error::ManagerError;
pub use incidents::{IncidentFilter, IncidentManager, NewIncident};
pub use stats::StatsManager;
pub use sweeper::Sweeper;

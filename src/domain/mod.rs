//! Plain domain types and rules: no I/O, no protobuf, no Redis.
//!
//! Everything that comes from outside (proto, TOML, HTTP, LLM output) becomes
//! one of these types at the boundary or is rejected there with a field path.

pub mod decision;
pub mod display;
pub mod group;
pub mod ids;
pub mod incident;
pub mod observed;
pub mod principal;
pub mod proposal;
pub mod signature;
pub mod text;
pub mod timestamp;
pub mod validation;

pub use decision::{
    Approval, Decision, DecisionMode, DecisionState, Preflight, TransitionError, Verification,
    VerificationState,
};
pub use display::{DisplayText, TextWarning};
pub use group::GroupKey;
pub use ids::{AppliedRequests, IncidentId, K8sName, RequestId, Token};
pub use incident::{Incident, IncidentStatus, Severity, Signal, SignalStatus};
pub use observed::{ExecutionClaim, ExecutionPlan, Observed, RollbackTarget};
pub use principal::{AuthMethod, Principal, Role};
pub use proposal::{
    CommandVerb, FallbackReason, Proposal, ProposalSource, RemediationCommand, RiskLevel,
};
pub use signature::Signature;
pub use validation::{FieldViolation, Violations};

//! Remediation proposals and the structured command they carry.
//!
//! A command is only ever built from its structured form; the kubectl line
//! is rendered from it for people and is an argv, never a shell string.

use super::display::TextWarning;
use super::ids::K8sName;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The allowlisted verbs. Nothing else can be proposed or executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommandVerb {
    RolloutRestart,
    RolloutUndo,
    Scale,
}

/// The workload kinds a command may target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deployment" | "" => Some(Self::Deployment),
            "statefulset" => Some(Self::StatefulSet),
            _ => None,
        }
    }
}

/// A remediation in structured form. Every field is validated by its type:
/// names are RFC 1123 labels; `replicas` is set exactly for `Scale`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RemediationCommand {
    pub verb: CommandVerb,
    pub kind: WorkloadKind,
    pub name: K8sName,
    pub namespace: K8sName,
    /// Only for `Scale`.
    pub replicas: Option<u32>,
}

impl RemediationCommand {
    /// The kubectl argv (without the `kubectl` program name).
    pub fn argv(&self) -> Vec<String> {
        let target = format!("{}/{}", self.kind.as_str(), self.name);
        let mut v: Vec<String> = match self.verb {
            CommandVerb::RolloutRestart => vec!["rollout".into(), "restart".into(), target],
            CommandVerb::RolloutUndo => vec!["rollout".into(), "undo".into(), target],
            CommandVerb::Scale => vec![
                "scale".into(),
                target,
                format!("--replicas={}", self.replicas.unwrap_or(1)),
            ],
        };
        v.push("-n".into());
        v.push(self.namespace.to_string());
        v
    }

    /// The command as a person would type it. Safe to show: every part is a
    /// validated label or a fixed word.
    pub fn render(&self) -> String {
        format!("kubectl {}", self.argv().join(" "))
    }
}

/// How risky a remediation is; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    /// One step riskier (a low consensus score raises the risk).
    pub fn raised(self) -> Self {
        match self {
            Self::Low => Self::Medium,
            Self::Medium => Self::High,
            Self::High | Self::Critical => Self::Critical,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// Which engine produced a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProposalSource {
    Expert,
    Llm,
    Consensus,
}

/// Why the expert proposal was used instead of the LLM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FallbackReason {
    Timeout,
    Error,
    Invalid,
    Unsafe,
    CircuitOpen,
    NotConfigured,
    Recovered,
}

/// A remediation proposal as stored on a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub source: ProposalSource,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub model: String,
    pub command: RemediationCommand,
    pub description: String,
    pub reasoning: String,
    pub risk: RiskLevel,
    pub confidence: f64,
    #[serde(default)]
    pub matched_rule: String,
    #[serde(default)]
    pub from_cache: bool,
    #[serde(with = "humantime_serde", default)]
    pub analysis_latency: Duration,
    pub fallback_reason: Option<FallbackReason>,
    #[serde(default)]
    pub consensus: Option<ConsensusInfo>,
    /// The model's own confidence claim (LLM proposals). Recorded as the
    /// model's word; `confidence` is verdict's.
    #[serde(default)]
    pub model_confidence: Option<f64>,
    /// What was found in the model-written `description` and `reasoning`
    /// (both cleaned by [`super::display::DisplayText`]); empty for the
    /// expert's own text.
    #[serde(default)]
    pub text_warnings: Vec<TextWarning>,
    /// The hash of the safety policy that checked this proposal's shape
    /// (LLM and consensus proposals); empty for the expert's.
    #[serde(default)]
    pub policy_hash: String,
}

impl Proposal {
    /// A proposal with only what every source decides: its source, the
    /// command, the risk and verdict's confidence; everything else empty (no
    /// text, not from the cache, no fallback, no vote, no model claim, no
    /// policy hash). Each engine sets the rest with struct update syntax, so
    /// a new field has one default.
    pub fn new(
        source: ProposalSource,
        command: RemediationCommand,
        risk: RiskLevel,
        confidence: f64,
    ) -> Self {
        Proposal {
            source,
            provider: String::new(),
            model: String::new(),
            command,
            description: String::new(),
            reasoning: String::new(),
            risk,
            confidence,
            matched_rule: String::new(),
            from_cache: false,
            analysis_latency: Duration::ZERO,
            fallback_reason: None,
            consensus: None,
            model_confidence: None,
            text_warnings: Vec::new(),
            policy_hash: String::new(),
        }
    }
}

/// What a consensus vote adds to a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusInfo {
    pub id: String,
    pub score: f64,
    pub agent_count: u32,
    pub dissenting: Vec<Dissent>,
    /// Agents that did not vote: their answer was refused by the safety
    /// policy, or they failed or ran out of time. Shown so an approver sees
    /// that two of three agents wanted something unsafe.
    #[serde(default)]
    pub refused: Vec<Refusal>,
}

/// One agent whose answer did not count, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub agent: String,
    pub reason: FallbackReason,
    /// The policy's or the client's message, cleaned for display (it may
    /// quote the model).
    pub detail: String,
}

/// One agent that disagreed with the winner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dissent {
    pub agent: String,
    pub kubectl: String,
    pub reasoning: String,
    /// What was found in `reasoning` (model-written).
    #[serde(default)]
    pub text_warnings: Vec<TextWarning>,
}

/// The one hand-built proposal unit tests start from (struct update syntax
/// changes what a test is about): the expert's low-risk `kubectl rollout
/// restart deployment/checkout -n shop`, confidence 0.8, every text empty.
#[cfg(test)]
pub mod fixture {
    use super::*;

    pub fn proposal() -> Proposal {
        let n = |s: &str| K8sName::parse(s).expect("a valid RFC 1123 label");
        let command = RemediationCommand {
            verb: CommandVerb::RolloutRestart,
            kind: WorkloadKind::Deployment,
            name: n("checkout"),
            namespace: n("shop"),
            replicas: None,
        };
        Proposal::new(ProposalSource::Expert, command, RiskLevel::Low, 0.8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_kubectl_lines() {
        let n = |s: &str| K8sName::parse(s).unwrap();
        let mut c = RemediationCommand {
            verb: CommandVerb::RolloutRestart,
            kind: WorkloadKind::Deployment,
            name: n("checkout"),
            namespace: n("shop"),
            replicas: None,
        };
        assert_eq!(
            c.render(),
            "kubectl rollout restart deployment/checkout -n shop"
        );
        c.verb = CommandVerb::Scale;
        c.replicas = Some(3);
        assert_eq!(
            c.render(),
            "kubectl scale deployment/checkout --replicas=3 -n shop"
        );
    }

    #[test]
    fn risk_rises_one_step_and_saturates() {
        assert_eq!(RiskLevel::Low.raised(), RiskLevel::Medium);
        assert_eq!(RiskLevel::Critical.raised(), RiskLevel::Critical);
    }
}

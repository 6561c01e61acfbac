//! The approval policy: who may approve or reject which decisions, and
//! which decisions need two distinct approvers (four-eyes).
//!
//! The role table at the edge already requires `approver` for approving
//! and rejecting; this policy narrows it per decision. With no rules, every
//! approver may decide everything. With rules, a principal may decide a
//! decision when some rule names it (by subject or by one of its roles),
//! covers the decision's namespace, and allows its risk. Pure: the manager
//! asks it inside each compare-and-set attempt, so a reloaded policy
//! applies from the next attempt on.

use crate::domain::{Decision, Principal, RiskLevel, Role, Severity};
use serde::{Deserialize, Serialize};

/// One rule of who may decide what (`[[approval_rules]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// Principals by subject (`alice`, a JWT `sub`, a certificate name).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Principals by role (JWT groups map onto roles).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Namespaces covered: exact names, `prefix-*`, or `*` (the default).
    #[serde(default = "everywhere")]
    pub namespaces: Vec<String>,
    /// The riskiest proposal the rule allows (default: any).
    #[serde(default = "any_risk")]
    pub max_risk: RiskLevel,
}

fn everywhere() -> Vec<String> {
    vec!["*".into()]
}

fn any_risk() -> RiskLevel {
    RiskLevel::Critical
}

impl ApprovalRule {
    fn names(&self, who: &Principal) -> bool {
        self.subjects.contains(&who.subject) || self.roles.iter().any(|r| who.roles.contains(r))
    }

    fn covers(&self, namespace: &str, risk: RiskLevel) -> bool {
        risk <= self.max_risk
            && self.namespaces.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => namespace.starts_with(prefix),
                None => p == namespace,
            })
    }
}

/// The policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Who may decide what; empty: every approver, everything.
    pub rules: Vec<ApprovalRule>,
    /// Proposals at this risk or above need two distinct approvers.
    pub four_eyes_risk: RiskLevel,
    /// Incidents at this severity or worse need two distinct approvers.
    pub four_eyes_severity: Severity,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            rules: Vec::new(),
            four_eyes_risk: RiskLevel::High,
            four_eyes_severity: Severity::P0,
        }
    }
}

impl ApprovalPolicy {
    /// Refuses rules that can never match, naming the rule.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (i, r) in self.rules.iter().enumerate() {
            anyhow::ensure!(
                !r.subjects.is_empty() || !r.roles.is_empty(),
                "approval_rules[{i}]: name subjects or roles"
            );
            anyhow::ensure!(
                !r.namespaces.is_empty(),
                "approval_rules[{i}]: namespaces must not be empty (\"*\" is every namespace)"
            );
        }
        Ok(())
    }

    /// What a decision is, for the policy: its target namespace and risk.
    /// A decision without a proposal is treated as the riskiest.
    fn subject_of(d: &Decision) -> (&str, RiskLevel) {
        match &d.proposal {
            Some(p) => (p.command.namespace.as_str(), p.risk),
            None => ("", RiskLevel::Critical),
        }
    }

    /// Whether `who` may approve or reject `d`; the error says why not.
    pub fn may_decide(&self, who: &Principal, d: &Decision) -> Result<(), String> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let (namespace, risk) = Self::subject_of(d);
        let named: Vec<&ApprovalRule> = self.rules.iter().filter(|r| r.names(who)).collect();
        if named.is_empty() {
            return Err(format!(
                "{} is not an approver under the approval policy",
                who.subject
            ));
        }
        if named.iter().any(|r| r.covers(namespace, risk)) {
            return Ok(());
        }
        Err(format!(
            "{} may not decide a {risk:?}-risk proposal in namespace {namespace:?} under the approval policy",
            who.subject
        ))
    }

    /// Distinct approvers `d` needs: two for high risk or a severe
    /// incident, else one.
    pub fn required(&self, d: &Decision) -> u32 {
        let (_, risk) = Self::subject_of(d);
        let severe = d.severity.is_some_and(|s| s <= self.four_eyes_severity);
        if risk >= self.four_eyes_risk || severe {
            2
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AuthMethod, DecisionMode, DecisionState, IncidentId, K8sName, Proposal};
    use chrono::Utc;

    fn decision(namespace: &str, risk: RiskLevel, severity: Severity) -> Decision {
        let now = Utc::now();
        let mut d = Decision::start(
            IncidentId::generate(),
            DecisionMode::Dual,
            now,
            chrono::Duration::hours(1),
            now,
        );
        let mut proposal = crate::domain::proposal::fixture::proposal();
        proposal.command.namespace = K8sName::parse(namespace).unwrap();
        d.proposal = Some(Proposal {
            risk,
            confidence: 0.9,
            ..proposal
        });
        d.severity = Some(severity);
        d.state = DecisionState::Ready;
        d
    }

    fn who(subject: &str, roles: &[Role]) -> Principal {
        Principal {
            subject: subject.into(),
            method: AuthMethod::StaticToken,
            roles: roles.iter().copied().collect(),
        }
    }

    #[test]
    fn rules_scope_approvers_by_namespace_and_risk() {
        let policy = ApprovalPolicy {
            rules: vec![
                ApprovalRule {
                    subjects: vec!["alice".into()],
                    roles: vec![],
                    namespaces: vec!["shop-*".into()],
                    max_risk: RiskLevel::Medium,
                },
                ApprovalRule {
                    subjects: vec![],
                    roles: vec![Role::Admin],
                    namespaces: everywhere(),
                    max_risk: any_risk(),
                },
            ],
            ..ApprovalPolicy::default()
        };
        policy.validate().unwrap();
        let alice = who("alice", &[Role::Approver]);
        let low_shop = decision("shop-eu", RiskLevel::Low, Severity::P3);
        assert!(policy.may_decide(&alice, &low_shop).is_ok());
        let high_shop = decision("shop-eu", RiskLevel::High, Severity::P3);
        assert!(policy.may_decide(&alice, &high_shop).is_err());
        let payments = decision("payments", RiskLevel::Low, Severity::P3);
        let e = policy.may_decide(&alice, &payments).unwrap_err();
        assert!(e.contains("payments"), "{e}");
        assert!(
            policy
                .may_decide(&who("bob", &[Role::Approver]), &low_shop)
                .is_err()
        );
        assert!(
            policy
                .may_decide(&who("root", &[Role::Admin]), &payments)
                .is_ok()
        );
        assert!(
            ApprovalPolicy::default()
                .may_decide(&alice, &payments)
                .is_ok()
        );
    }

    #[test]
    fn high_risk_and_p0_need_two_approvers() {
        let p = ApprovalPolicy::default();
        assert_eq!(p.required(&decision("a", RiskLevel::Low, Severity::P2)), 1);
        assert_eq!(p.required(&decision("a", RiskLevel::High, Severity::P2)), 2);
        assert_eq!(p.required(&decision("a", RiskLevel::Low, Severity::P0)), 2);
        assert_eq!(
            p.required(&decision("a", RiskLevel::Medium, Severity::P1)),
            1
        );
    }
}

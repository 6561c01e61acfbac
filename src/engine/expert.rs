//! The rule-based expert engine: pure, synchronous, never fails. It is the
//! guaranteed fallback behind every other engine.

use crate::domain::proposal::WorkloadKind;
use crate::domain::{
    CommandVerb, FallbackReason, Incident, K8sName, Proposal, ProposalSource, RemediationCommand,
    RiskLevel,
};
use serde::Deserialize;
use std::path::Path;
use thiserror::Error;

const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// The expert engine's confidence, fixed as in the seed.
pub const EXPERT_CONFIDENCE: f64 = 0.75;

/// Why a rules file was refused.
#[derive(Debug, Error)]
pub enum RulesError {
    #[error("cannot read rules file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("rules file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("rule {rule:?}: {problem}")]
    Rule { rule: String, problem: String },
    #[error("rules: {0}")]
    Set(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    patterns: Vec<String>,
    verb: String,
    #[serde(default)]
    replicas: Option<u32>,
    #[serde(default = "default_kind")]
    kind: String,
    risk: String,
    description: String,
    reasoning: String,
}

fn default_kind() -> String {
    "deployment".into()
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// Lower-cased substrings of the alert names; empty for the catch-all.
    pub patterns: Vec<String>,
    pub verb: CommandVerb,
    pub kind: WorkloadKind,
    pub replicas: Option<u32>,
    pub risk: RiskLevel,
    pub description: String,
    pub reasoning: String,
}

/// Ordered rules; the last one is a catch-all with no patterns.
#[derive(Debug, Clone)]
pub struct ExpertEngine {
    rules: Vec<Rule>,
    fallback_target: K8sName,
}

impl ExpertEngine {
    /// The seed's five rules.
    pub fn builtin() -> Self {
        Self::from_toml(DEFAULT_RULES, 50).expect("the built-in rules are valid")
    }

    /// Loads rules from a TOML file (see `default_rules.toml` for the format).
    pub fn from_file(path: &Path, max_replicas: u32) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, max_replicas)
    }

    /// Parses and validates rules: verbs from the allowlist, replicas set
    /// exactly for `scale` and within `1..=max_replicas`, exactly one
    /// catch-all and it comes last.
    pub fn from_toml(text: &str, max_replicas: u32) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text)?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for raw in file.rule {
            let bad = |problem: String| RulesError::Rule {
                rule: raw.name.clone(),
                problem,
            };
            let verb = match raw.verb.as_str() {
                "rollout_restart" => CommandVerb::RolloutRestart,
                "rollout_undo" => CommandVerb::RolloutUndo,
                "scale" => CommandVerb::Scale,
                other => {
                    return Err(bad(format!(
                        "verb {other:?} is not one of rollout_restart, rollout_undo, scale"
                    )));
                }
            };
            let replicas = match (verb, raw.replicas) {
                (CommandVerb::Scale, Some(n)) if (1..=max_replicas).contains(&n) => Some(n),
                (CommandVerb::Scale, Some(n)) => {
                    return Err(bad(format!("replicas {n} is outside 1..={max_replicas}")));
                }
                (CommandVerb::Scale, None) => return Err(bad("scale needs replicas".into())),
                (_, Some(_)) => return Err(bad("replicas is only for scale".into())),
                (_, None) => None,
            };
            let kind = WorkloadKind::parse(&raw.kind).ok_or_else(|| {
                bad(format!(
                    "kind {:?} is not deployment or statefulset",
                    raw.kind
                ))
            })?;
            let risk = RiskLevel::parse(&raw.risk).ok_or_else(|| {
                bad(format!(
                    "risk {:?} is not low, medium, high or critical",
                    raw.risk
                ))
            })?;
            if raw.patterns.iter().any(|p| p.trim().is_empty()) {
                return Err(bad("patterns must not be empty strings".into()));
            }
            rules.push(Rule {
                patterns: raw.patterns.iter().map(|p| p.to_lowercase()).collect(),
                name: raw.name,
                verb,
                kind,
                replicas,
                risk,
                description: raw.description,
                reasoning: raw.reasoning,
            });
        }
        match rules.iter().position(|r| r.patterns.is_empty()) {
            Some(i) if i == rules.len() - 1 => {}
            Some(_) => {
                return Err(RulesError::Set(
                    "only the last rule may have no patterns".into(),
                ));
            }
            None => {
                return Err(RulesError::Set(
                    "the last rule must be a catch-all with no patterns".into(),
                ));
            }
        }
        Ok(ExpertEngine {
            rules,
            fallback_target: K8sName::parse("unknown-service").expect("valid label"),
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule one of whose patterns occurs in the incident's alert
    /// names (lower-cased, joined by spaces), else the catch-all.
    pub fn match_rule(&self, incident: &Incident) -> &Rule {
        let names = incident
            .signals
            .iter()
            .map(|s| s.alert_name.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        self.rules
            .iter()
            .find(|r| r.patterns.iter().any(|p| names.contains(p.as_str())))
            .or_else(|| self.rules.last())
            .expect("a validated rule set is never empty")
    }

    /// The expert proposal. Targets the first affected service (validated as
    /// an RFC 1123 label when the incident was accepted), or
    /// `unknown-service` as in the seed.
    pub fn propose(&self, incident: &Incident) -> Proposal {
        let rule = self.match_rule(incident);
        let name = incident
            .affected_services
            .first()
            .cloned()
            .unwrap_or_else(|| self.fallback_target.clone());
        let command = RemediationCommand {
            verb: rule.verb,
            kind: rule.kind,
            name,
            namespace: incident.target_namespace(),
            replicas: rule.replicas,
        };
        Proposal {
            description: rule.description.clone(),
            reasoning: rule.reasoning.clone(),
            matched_rule: rule.name.clone(),
            fallback_reason: Some(FallbackReason::NotConfigured),
            ..Proposal::new(
                ProposalSource::Expert,
                command,
                rule.risk,
                EXPERT_CONFIDENCE,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(alerts: &[&str], services: &[&str]) -> Incident {
        crate::domain::incident::fixture::incident()
            .alerts(alerts)
            .services(services)
            .build()
    }

    #[test]
    fn the_seed_rules_match_in_order() {
        let e = ExpertEngine::builtin();
        let cases = [
            (
                vec!["PodCrashLooping"],
                "pod_crash",
                "kubectl rollout restart deployment/checkout -n default",
            ),
            (
                vec!["HighLatencyP99"],
                "high_latency",
                "kubectl scale deployment/checkout --replicas=3 -n default",
            ),
            (
                vec!["HTTP5xxRate"],
                "high_error_rate",
                "kubectl rollout undo deployment/checkout -n default",
            ),
            (
                vec!["CPUThrottling"],
                "resource_exhaustion",
                "kubectl scale deployment/checkout --replicas=2 -n default",
            ),
            (
                vec!["DiskAlmostFull"],
                "default",
                "kubectl rollout restart deployment/checkout -n default",
            ),
            // "failed" belongs to pod_crash, which comes before high_error_rate's "fail".
            (
                vec!["JobFailed"],
                "pod_crash",
                "kubectl rollout restart deployment/checkout -n default",
            ),
            (
                vec!["Disk", "Slow"],
                "high_latency",
                "kubectl scale deployment/checkout --replicas=3 -n default",
            ),
        ];
        for (alerts, rule, line) in cases {
            let p = e.propose(&incident(&alerts, &["checkout"]));
            assert_eq!(p.matched_rule, rule, "{alerts:?}");
            assert_eq!(p.command.render(), line);
            assert_eq!(p.confidence, EXPERT_CONFIDENCE);
        }
        let p = e.propose(&incident(&["HTTP5xxRate"], &[]));
        assert_eq!(p.risk, RiskLevel::Critical);
        assert_eq!(p.command.name.as_str(), "unknown-service");
    }

    #[test]
    fn rules_files_are_validated() {
        let bad = [
            "[[rule]]\nname='x'\npatterns=['a']\nverb='delete'\nrisk='low'\ndescription=''\nreasoning=''",
            "[[rule]]\nname='x'\nverb='scale'\nrisk='low'\ndescription=''\nreasoning=''",
            "[[rule]]\nname='x'\nverb='scale'\nreplicas=500\nrisk='low'\ndescription=''\nreasoning=''",
            "[[rule]]\nname='x'\npatterns=['a']\nverb='rollout_undo'\nrisk='low'\ndescription=''\nreasoning=''",
            "[[rule]]\nname='x'\nverb='rollout_undo'\nrisk='dire'\ndescription=''\nreasoning=''",
            "[[rule]]\nname='x'\nverb='rollout_undo'\nrisk='low'\ndescription=''\nreasoning=''\nshell='rm -rf /'",
        ];
        for text in bad {
            assert!(ExpertEngine::from_toml(text, 50).is_err(), "{text}");
        }
        let good = "[[rule]]\nname='only'\nverb='rollout_undo'\nrisk='high'\ndescription='d'\nreasoning='r'";
        let e = ExpertEngine::from_toml(good, 50).unwrap();
        assert_eq!(
            e.propose(&incident(&["x"], &["web"])).command.render(),
            "kubectl rollout undo deployment/web -n default"
        );
    }
}

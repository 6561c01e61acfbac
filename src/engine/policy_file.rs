//! The safety policy file: its TOML format, its defaults (the built-in
//! policy), and its validation into the [`Rules`] that
//! [`super::policy::Policy`] enforces. Loaded once at startup; a bad file
//! stops the server rather than weakening the policy.

use super::llm::prompt::ReplicaBounds;
use crate::domain::proposal::WorkloadKind;
use crate::domain::{CommandVerb, K8sName, RiskLevel};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The wildcard key of `[verbs]`: every namespace without its own entry.
pub(super) const ANY_NAMESPACE: &str = "*";

/// The policy file (TOML), as written. Every field has a default, so an
/// empty file is the built-in policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyFile {
    /// The highest risk that may be proposed at all: `low`, `medium`,
    /// `high` or `critical`.
    pub max_risk: String,
    /// Workload kinds commands may target.
    pub kinds: Vec<String>,
    /// The kind when the incident's labels do not say.
    pub default_kind: String,
    /// Namespaces no proposal may touch.
    pub never_touch: Vec<String>,
    /// Namespaces where every proposal is one risk step higher
    /// (production, shared infrastructure).
    pub sensitive_namespaces: Vec<String>,
    /// Verbs allowed per namespace; `"*"` for every other namespace.
    pub verbs: BTreeMap<String, Vec<String>>,
    /// Replica bounds per deployment name, within the global bounds.
    pub replicas: BTreeMap<String, FileBounds>,
}

/// `{ min = 2, max = 8 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBounds {
    pub min: u32,
    pub max: u32,
}

impl Default for PolicyFile {
    fn default() -> Self {
        PolicyFile {
            max_risk: "critical".into(),
            kinds: vec!["deployment".into(), "statefulset".into()],
            default_kind: "deployment".into(),
            never_touch: vec![
                "kube-system".into(),
                "kube-public".into(),
                "kube-node-lease".into(),
            ],
            sensitive_namespaces: Vec::new(),
            verbs: BTreeMap::from([(
                ANY_NAMESPACE.to_owned(),
                vec![
                    "rollout_restart".into(),
                    "rollout_undo".into(),
                    "scale".into(),
                ],
            )]),
            replicas: BTreeMap::new(),
        }
    }
}

/// Why a policy file was refused at startup.
#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("policy file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("policy: {0}")]
    Invalid(String),
}

#[derive(Debug, PartialEq)]
/// A policy file compiled: what [`super::Policy`] enforces.
pub(super) struct Rules {
    pub(super) bounds: ReplicaBounds,
    pub(super) max_risk: RiskLevel,
    pub(super) kinds: Vec<WorkloadKind>,
    pub(super) default_kind: WorkloadKind,
    pub(super) never_touch: BTreeSet<K8sName>,
    pub(super) sensitive: BTreeSet<K8sName>,
    /// Namespace (or `*`) → allowed verbs.
    pub(super) verbs: BTreeMap<String, Vec<CommandVerb>>,
    pub(super) replicas: BTreeMap<K8sName, ReplicaBounds>,
    /// SHA-1 (hex) of the effective policy, bounds included.
    pub(super) hash: String,
}

impl PolicyFile {
    /// Validates the file: every name a label, every verb, kind and risk
    /// known, per-deployment bounds within the global ones; then hashes it.
    pub(super) fn compile(
        &self,
        min_replicas: u32,
        max_replicas: u32,
    ) -> Result<Rules, PolicyError> {
        let min = min_replicas.max(1);
        let bounds = ReplicaBounds {
            min,
            max: max_replicas.max(min),
        };
        let max_risk = RiskLevel::parse(&self.max_risk)
            .ok_or_else(|| bad(format!("max_risk {:?} is not a risk level", self.max_risk)))?;
        let kinds = self
            .kinds
            .iter()
            .map(|k| kind(k))
            .collect::<Result<Vec<_>, _>>()?;
        let default_kind = kind(&self.default_kind)?;
        if !kinds.contains(&default_kind) {
            return Err(bad(format!(
                "default_kind {:?} is not one of kinds",
                self.default_kind
            )));
        }
        Ok(Rules {
            bounds,
            max_risk,
            kinds,
            default_kind,
            never_touch: labels("never_touch", &self.never_touch)?,
            sensitive: labels("sensitive_namespaces", &self.sensitive_namespaces)?,
            verbs: self.verbs()?,
            replicas: self.replicas(bounds)?,
            hash: self.hash(bounds),
        })
    }

    /// `[verbs]`: namespace (or `*`) → allowed verbs.
    fn verbs(&self) -> Result<BTreeMap<String, Vec<CommandVerb>>, PolicyError> {
        let mut verbs = BTreeMap::new();
        for (ns, list) in &self.verbs {
            if ns != ANY_NAMESPACE {
                K8sName::parse(ns)
                    .map_err(|e| bad(format!("verbs: {ns:?} is not a label ({e})")))?;
            }
            let list = list
                .iter()
                .map(|v| {
                    strict_verb(v).ok_or_else(|| {
                        bad(format!(
                            "verbs.{ns}: {v:?} is not rollout_restart, rollout_undo or scale"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            verbs.insert(ns.clone(), list);
        }
        Ok(verbs)
    }

    /// `[replicas]`: per-deployment bounds, each within the global ones.
    fn replicas(
        &self,
        global: ReplicaBounds,
    ) -> Result<BTreeMap<K8sName, ReplicaBounds>, PolicyError> {
        let mut out = BTreeMap::new();
        for (name, b) in &self.replicas {
            let n = K8sName::parse(name)
                .map_err(|e| bad(format!("replicas: {name:?} is not a label ({e})")))?;
            if b.min > b.max || b.min < global.min || b.max > global.max {
                return Err(bad(format!(
                    "replicas.{name}: {}..={} is not within {}..={}",
                    b.min, b.max, global.min, global.max
                )));
            }
            out.insert(
                n,
                ReplicaBounds {
                    min: b.min,
                    max: b.max,
                },
            );
        }
        Ok(out)
    }

    /// SHA-1 (hex) of what is enforced: the file as parsed (so comments and
    /// key order do not change it) and the global bounds. Identifies a
    /// policy version; the file itself is the operator's, not an adversary's.
    fn hash(&self, bounds: ReplicaBounds) -> String {
        let canonical = serde_json::json!({"file": self, "min": bounds.min, "max": bounds.max});
        sha1_smol::Sha1::from(canonical.to_string().as_bytes())
            .digest()
            .to_string()
    }
}

fn bad(m: String) -> PolicyError {
    PolicyError::Invalid(m)
}

fn labels(field: &str, v: &[String]) -> Result<BTreeSet<K8sName>, PolicyError> {
    v.iter()
        .map(|s| K8sName::parse(s).map_err(|e| bad(format!("{field}: {s:?} is not a label ({e})"))))
        .collect()
}

fn kind(s: &str) -> Result<WorkloadKind, PolicyError> {
    WorkloadKind::parse(s)
        .filter(|_| !s.is_empty())
        .ok_or_else(|| bad(format!("kind {s:?} is not deployment or statefulset")))
}

/// A verb as the policy file spells it (no aliases there).
fn strict_verb(v: &str) -> Option<CommandVerb> {
    match v {
        "rollout_restart" => Some(CommandVerb::RolloutRestart),
        "rollout_undo" => Some(CommandVerb::RolloutUndo),
        "scale" => Some(CommandVerb::Scale),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Rules, PolicyError> {
        toml::from_str::<PolicyFile>(text)?.compile(1, 10)
    }

    #[test]
    fn the_built_in_policy_is_an_empty_file() {
        let empty = compile("").unwrap();
        assert_eq!(empty, PolicyFile::default().compile(1, 10).unwrap());
        assert!(
            empty
                .never_touch
                .contains(&K8sName::parse("kube-system").unwrap())
        );
        assert_eq!(empty.max_risk, RiskLevel::Critical);
        // Comments and key order do not change the hash; the bounds do.
        let a = compile("max_risk = 'high'\nkinds = ['deployment']").unwrap();
        let b = compile("# x\nkinds = ['deployment']\n\nmax_risk = 'high'").unwrap();
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, empty.hash);
        assert_ne!(
            PolicyFile::default().compile(1, 20).unwrap().hash,
            empty.hash
        );
    }

    #[test]
    fn bad_files_are_refused() {
        for text in [
            "max_risk = 'dire'",
            "kinds = ['namespace']",
            "kinds = ['statefulset']",
            "never_touch = ['Kube System']",
            "[verbs]\nshop = ['delete']",
            "[verbs]\n'a;b' = ['scale']",
            "[replicas]\ncheckout = { min = 0, max = 3 }",
            "[replicas]\ncheckout = { min = 2, max = 99 }",
            "[replicas]\ncheckout = { min = 5, max = 3 }",
            "unknown = 1",
        ] {
            assert!(compile(text).is_err(), "{text}");
        }
    }
}

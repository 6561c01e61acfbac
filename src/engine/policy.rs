//! The safety policy: the one gate between model output and a proposal.
//!
//! An answer becomes a structured [`RemediationCommand`] or is discarded.
//! The model may *suggest*; the policy *decides*:
//!
//! - **the command**: verbs from the allowlist (narrowed per namespace by
//!   the policy file), names and namespaces RFC 1123 labels ([`K8sName`]),
//!   the target one of the incident's affected services, the namespace the
//!   incident's and never one of the untouchable namespaces (`kube-system`
//!   …), `replicas` within the bounds (per deployment when the file says);
//! - **the workload kind**: from the incident's labels or the policy's
//!   default, never from the model: an answer naming another kind is refused;
//! - **the risk**: derived from the command and the incident
//!   ([`Policy::risk_floor`]); the model may raise it, never lower it, and a
//!   risk above the policy's `max_risk` is refused;
//! - **the confidence**: the model's claim is recorded as its claim
//!   (`model_confidence`), verdict's own is [`LLM_CONFIDENCE`];
//! - **the words**: description and reasoning are untrusted display text
//!   ([`DisplayText`]): bounded, hidden characters made visible, commands
//!   and URLs flagged.
//!
//! Nothing is ever parsed out of free text. The answer's shape is checked
//! by [`super::answer`].
//!
//! Refusals come in two kinds, recorded as the fallback reason:
//! [`EngineError::Invalid`] — the answer is not a JSON object of the
//! expected shape; [`EngineError::Unsafe`] — it is, but asks for something
//! the policy does not allow.
//!
//! The policy is loaded once at startup (built in, or `policy_file`); its
//! hash is recorded on every proposal it checked. Hot reload is not done
//! yet (it comes with the identity work, with the rest of the config).

use super::EngineError;
use super::answer;
use super::llm::prompt::{ReplicaBounds, clip};
use super::policy_file::{ANY_NAMESPACE, Rules};
pub use super::policy_file::{FileBounds, PolicyError, PolicyFile};
use crate::domain::proposal::WorkloadKind;
use crate::domain::{
    CommandVerb, DisplayText, Incident, K8sName, Proposal, ProposalSource, RemediationCommand,
    RiskLevel, Severity,
};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Characters kept of the free-text fields shown to people.
pub const MAX_DESCRIPTION: usize = 500;
pub const MAX_REASONING: usize = 2000;
/// verdict's confidence in a lone LLM proposal: it has checked the shape,
/// not the judgement (the expert's rules get 0.75).
pub const LLM_CONFIDENCE: f64 = 0.5;
/// The validated policy. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Shared by every clone and swapped whole on reload
    /// ([`Policy::reload_from`]), so the LLM proposer and the proposal
    /// cache always vet with the same, current rules.
    rules: Arc<RwLock<Arc<Rules>>>,
}

/// An answer that passed the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Vetted {
    pub command: RemediationCommand,
    /// The policy's floor, or the model's risk when higher.
    pub risk: RiskLevel,
    /// The model's own claim, clamped to 0..=1.
    pub model_confidence: f64,
    pub description: DisplayText,
    pub reasoning: DisplayText,
    pub policy_hash: String,
}

impl Vetted {
    pub fn into_proposal(self, source: ProposalSource, provider: &str, model: &str) -> Proposal {
        let mut text_warnings = self.description.warnings;
        text_warnings.extend(self.reasoning.warnings);
        text_warnings.sort();
        text_warnings.dedup();
        Proposal {
            provider: provider.to_owned(),
            model: model.to_owned(),
            description: self.description.text,
            reasoning: self.reasoning.text,
            model_confidence: Some(self.model_confidence),
            text_warnings,
            policy_hash: self.policy_hash,
            ..Proposal::new(source, self.command, self.risk, LLM_CONFIDENCE)
        }
    }
}

impl Policy {
    /// The built-in policy with the configured global replica bounds.
    /// `scale` may set between `min_replicas` (at least 1: scaling to zero
    /// is an outage, not a remediation) and `max_replicas`.
    pub fn new(min_replicas: u32, max_replicas: u32) -> Self {
        Self::from_file(&PolicyFile::default(), min_replicas, max_replicas)
            .expect("the built-in policy is valid")
    }

    /// Reads and validates a policy file (TOML).
    pub fn load(path: &Path, min_replicas: u32, max_replicas: u32) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, min_replicas, max_replicas)
    }

    pub fn from_toml(
        text: &str,
        min_replicas: u32,
        max_replicas: u32,
    ) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;
        Self::from_file(&file, min_replicas, max_replicas)
    }

    /// Validates `file` (see [`PolicyFile::compile`]).
    pub fn from_file(
        file: &PolicyFile,
        min_replicas: u32,
        max_replicas: u32,
    ) -> Result<Self, PolicyError> {
        Ok(Policy {
            rules: Arc::new(RwLock::new(Arc::new(
                file.compile(min_replicas, max_replicas)?,
            ))),
        })
    }

    /// The rules in force now (a cheap handle; a reload does not change
    /// the rules a check already started with).
    fn rules(&self) -> Arc<Rules> {
        match self.rules.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Swaps in `other`'s rules for this policy and every clone of it
    /// (hot reload of the policy file): proposals checked from now on
    /// carry the new hash.
    pub fn reload_from(&self, other: &Policy) {
        let new = other.rules();
        match self.rules.write() {
            Ok(mut r) => *r = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// The global replica bounds (told to the model up front).
    pub fn bounds(&self) -> ReplicaBounds {
        self.rules().bounds
    }

    /// The hash recorded on every proposal this policy checked.
    pub fn hash(&self) -> String {
        self.rules().hash.clone()
    }

    /// The replica bounds for the workload `name`.
    pub fn bounds_for(&self, name: &K8sName) -> ReplicaBounds {
        let rules = self.rules();
        rules.replicas.get(name).copied().unwrap_or(rules.bounds)
    }

    /// The kind of the incident's workload: a signal's `workload_kind`
    /// label, else a `statefulset` or `deployment` label (kube-state-metrics
    /// names the workload so), else the policy's default. Never the model's.
    pub fn kind_of(&self, incident: &Incident) -> WorkloadKind {
        for s in &incident.signals {
            if let Some(k) = s
                .labels
                .get("workload_kind")
                .and_then(|k| WorkloadKind::parse(&k.trim().to_ascii_lowercase()))
            {
                return k;
            }
            if s.labels.contains_key("statefulset") {
                return WorkloadKind::StatefulSet;
            }
            if s.labels.contains_key("deployment") {
                return WorkloadKind::Deployment;
            }
        }
        self.rules().default_kind
    }

    /// The lowest risk a command can have for `incident`: by verb (restart
    /// medium, rollback high, scale low), replica change (scaling to the
    /// minimum or into the upper half of the bounds: at least medium),
    /// scope (a StatefulSet holds state: one step up), severity (a P0: one
    /// step up) and namespace class (a sensitive namespace: one step up).
    pub fn risk_floor(&self, incident: &Incident, c: &RemediationCommand) -> RiskLevel {
        let mut risk = match c.verb {
            CommandVerb::Scale => RiskLevel::Low,
            CommandVerb::RolloutRestart => RiskLevel::Medium,
            CommandVerb::RolloutUndo => RiskLevel::High,
        };
        if let (CommandVerb::Scale, Some(n)) = (c.verb, c.replicas) {
            let b = self.bounds_for(&c.name);
            if n <= b.min || n > b.max / 2 {
                risk = risk.max(RiskLevel::Medium);
            }
        }
        if c.kind == WorkloadKind::StatefulSet {
            risk = risk.raised();
        }
        if incident.severity == Severity::P0 {
            risk = risk.raised();
        }
        if self.rules().sensitive.contains(&c.namespace) {
            risk = risk.raised();
        }
        risk
    }

    /// Parses and checks a model's answer for `incident`.
    pub fn vet(&self, incident: &Incident, answer: &str) -> Result<Vetted, EngineError> {
        let obj = answer::parse(answer)?;
        let command = self.command(incident, &obj)?;
        self.check(incident, &command)?;
        let floor = self.risk_floor(incident, &command);
        let risk = match text(&obj, "risk")? {
            None => floor,
            Some(r) => RiskLevel::parse(r.trim())
                .ok_or_else(|| invalid(format!("risk {:?} is not a risk level", clip(r, 40))))?
                .max(floor),
        };
        self.within_max_risk(risk)?;
        let model_confidence = match obj.get("confidence") {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.5).clamp(0.0, 1.0),
            _ => 0.5,
        };
        let mut description =
            DisplayText::untrusted(text(&obj, "description")?.unwrap_or(""), MAX_DESCRIPTION);
        if description.text.is_empty() {
            description = DisplayText {
                text: format!("LLM proposal: {}", command.render()),
                warnings: description.warnings,
            };
        }
        let reasoning =
            DisplayText::untrusted(text(&obj, "reasoning")?.unwrap_or(""), MAX_REASONING);
        Ok(Vetted {
            command,
            risk,
            model_confidence,
            description,
            reasoning,
            policy_hash: self.rules().hash.clone(),
        })
    }

    /// The structured command an answer asks for (not yet checked against
    /// the incident).
    fn command(
        &self,
        incident: &Incident,
        obj: &Map<String, Value>,
    ) -> Result<RemediationCommand, EngineError> {
        let verb = match text(obj, "verb")? {
            Some(v) => parse_verb(v)?,
            None => return Err(invalid("missing field verb")),
        };
        let kind = self.kind_of(incident);
        if let Some(k) = text(obj, "kind")? {
            match WorkloadKind::parse(&k.trim().to_ascii_lowercase()) {
                Some(asked) if asked == kind => {}
                _ => {
                    return Err(unsafe_(format!(
                        "kind {:?} is not the incident's workload kind {}",
                        clip(k, 60),
                        kind.as_str()
                    )));
                }
            }
        }
        let name = text(obj, "name")?.ok_or_else(|| invalid("missing field name"))?;
        let name = label("name", name)?;
        let namespace = match text(obj, "namespace")? {
            None => incident.target_namespace(),
            Some(ns) => label("namespace", ns)?,
        };
        let replicas = match verb {
            CommandVerb::Scale => Some(self.replicas(&name, obj.get("replicas"))?),
            // Ignored for the other verbs: they take none.
            CommandVerb::RolloutRestart | CommandVerb::RolloutUndo => None,
        };
        Ok(RemediationCommand {
            verb,
            kind,
            name,
            namespace,
            replicas,
        })
    }

    /// The checks a structured command must pass for `incident`: used on
    /// fresh answers and again on cached ones (the policy may have changed
    /// since, and a cache entry is outside input too).
    pub fn check(&self, incident: &Incident, c: &RemediationCommand) -> Result<(), EngineError> {
        let r = self.rules();
        if !incident.affected_services.contains(&c.name) {
            return Err(unsafe_(format!(
                "target {} is not one of the incident's affected services",
                c.name
            )));
        }
        let ns = incident.target_namespace();
        if c.namespace != ns {
            return Err(unsafe_(format!(
                "namespace {} is not the incident's namespace {ns}",
                c.namespace
            )));
        }
        if r.never_touch.contains(&c.namespace) {
            return Err(unsafe_(format!(
                "namespace {} is never touched by policy",
                c.namespace
            )));
        }
        if !r.kinds.contains(&c.kind) {
            return Err(unsafe_(format!(
                "kind {} is not allowed by policy",
                c.kind.as_str()
            )));
        }
        let allowed = r
            .verbs
            .get(c.namespace.as_str())
            .or_else(|| r.verbs.get(ANY_NAMESPACE))
            .is_some_and(|v| v.contains(&c.verb));
        if !allowed {
            return Err(unsafe_(format!(
                "verb {:?} is not allowed in namespace {} by policy",
                c.verb, c.namespace
            )));
        }
        let b = self.bounds_for(&c.name);
        match (c.verb, c.replicas) {
            (CommandVerb::Scale, Some(n)) if (b.min..=b.max).contains(&n) => Ok(()),
            (CommandVerb::Scale, Some(n)) => Err(unsafe_(format!(
                "replicas {n} is outside {}..={}",
                b.min, b.max
            ))),
            (CommandVerb::Scale, None) => Err(invalid("scale needs replicas")),
            (_, Some(_)) => Err(invalid("replicas is only for scale")),
            (_, None) => Ok(()),
        }
    }

    /// A cached proposal checked again under this policy: the command, the
    /// risk floor (raised if the policy now derives more), the maximum
    /// risk; it then carries this policy's hash.
    pub fn recheck(&self, incident: &Incident, p: &mut Proposal) -> Result<(), EngineError> {
        self.check(incident, &p.command)?;
        p.risk = p.risk.max(self.risk_floor(incident, &p.command));
        self.within_max_risk(p.risk)?;
        p.policy_hash = self.rules().hash.clone();
        Ok(())
    }

    fn within_max_risk(&self, risk: RiskLevel) -> Result<(), EngineError> {
        if risk > self.rules().max_risk {
            return Err(unsafe_(format!(
                "risk {risk:?} is above the policy's maximum {:?}",
                self.rules().max_risk
            )));
        }
        Ok(())
    }

    fn replicas(&self, name: &K8sName, v: Option<&Value>) -> Result<u32, EngineError> {
        let b = self.bounds_for(name);
        let out_of_bounds = |n: &dyn std::fmt::Display| {
            unsafe_(format!("replicas {n} is outside {}..={}", b.min, b.max))
        };
        match v {
            None | Some(Value::Null) => Err(invalid("scale needs replicas")),
            Some(Value::Number(n)) => {
                if let Some(u) = n.as_u64() {
                    return u32::try_from(u)
                        .ok()
                        .filter(|u| (b.min..=b.max).contains(u))
                        .ok_or_else(|| out_of_bounds(&u));
                }
                if let Some(i) = n.as_i64() {
                    return Err(out_of_bounds(&i));
                }
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    return Err(invalid("replicas must be a whole number"));
                }
                // A whole float such as 3.0.
                if f >= f64::from(b.min) && f <= f64::from(b.max) {
                    Ok(f as u32)
                } else {
                    Err(out_of_bounds(&f))
                }
            }
            Some(Value::String(s)) if has_shell_chars(s) => Err(unsafe_(format!(
                "replicas {:?} contains shell metacharacters",
                clip(s, 40)
            ))),
            Some(_) => Err(invalid("replicas must be a number")),
        }
    }
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

fn unsafe_(msg: impl Into<String>) -> EngineError {
    EngineError::Unsafe(msg.into())
}

/// A string field: None when absent or null, refused when of another type.
fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, EngineError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// Characters that mean something to a shell (or a terminal).
fn has_shell_chars(s: &str) -> bool {
    s.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                ';' | '|'
                    | '&'
                    | '$'
                    | '`'
                    | '<'
                    | '>'
                    | '('
                    | ')'
                    | '{'
                    | '}'
                    | '\\'
                    | '\''
                    | '"'
                    | '*'
                    | '?'
                    | '!'
                    | '#'
                    | '~'
            )
    })
}

fn parse_verb(v: &str) -> Result<CommandVerb, EngineError> {
    if has_shell_chars(v) {
        return Err(unsafe_(format!(
            "verb {:?} contains shell metacharacters",
            clip(v, 60)
        )));
    }
    let normal = v.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    match normal.as_str() {
        "rollout_restart" | "restart" => Ok(CommandVerb::RolloutRestart),
        "rollout_undo" | "undo" | "rollback" => Ok(CommandVerb::RolloutUndo),
        "scale" => Ok(CommandVerb::Scale),
        _ => Err(unsafe_(format!(
            "verb {:?} is not one of rollout_restart, rollout_undo, scale",
            clip(v, 60)
        ))),
    }
}

/// An RFC 1123 label or an unsafe-answer refusal naming the field.
fn label(field: &str, s: &str) -> Result<K8sName, EngineError> {
    K8sName::parse(s).map_err(|e| {
        let what = if has_shell_chars(s) {
            "contains shell metacharacters".to_owned()
        } else {
            format!("is not an RFC 1123 label ({e})")
        };
        unsafe_(format!("{field} {:?} {what}", clip(s, 80)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;
    use proptest::prelude::*;
    use serde_json::json;

    fn incident() -> Incident {
        crate::domain::incident::fixture::incident()
            .id("INC-1")
            .services(&["checkout", "cart"])
            .namespace("shop")
            .build()
    }

    fn policy() -> Policy {
        Policy::new(1, 10)
    }

    fn vet(v: Value) -> Result<Vetted, EngineError> {
        policy().vet(&incident(), &v.to_string())
    }

    fn good() -> Value {
        json!({
            "verb": "scale", "kind": "deployment", "name": "checkout", "namespace": "shop",
            "replicas": 4, "risk": "low", "confidence": 0.9,
            "description": "Scale out", "reasoning": "Load is high"
        })
    }

    #[test]
    fn a_good_answer_becomes_a_structured_command() {
        let v = vet(good()).unwrap();
        assert_eq!(
            v.command.render(),
            "kubectl scale deployment/checkout --replicas=4 -n shop"
        );
        assert_eq!(v.risk, RiskLevel::Low);
        assert_eq!(v.model_confidence, 0.9);
        assert_eq!(v.policy_hash, policy().hash());
        let p = v.into_proposal(ProposalSource::Llm, "p", "m");
        assert_eq!(p.confidence, LLM_CONFIDENCE, "verdict's, not the model's");
        assert_eq!(p.model_confidence, Some(0.9));
        // Code fences and prose around the object are fine; aliases map to
        // allowlisted verbs; the namespace defaults to the incident's.
        let fenced =
            "Here you go:\n```json\n{\"verb\": \"Rollout-Restart\", \"name\": \"cart\"}\n```";
        let v = policy().vet(&incident(), fenced).unwrap();
        assert_eq!(
            v.command.render(),
            "kubectl rollout restart deployment/cart -n shop"
        );
        assert_eq!(v.risk, RiskLevel::Medium);
        assert!(v.description.text.contains("rollout restart"));
    }

    fn unsafe_answer(v: Value) {
        match vet(v.clone()) {
            Err(EngineError::Unsafe(_)) => {}
            other => panic!("{v} gave {other:?}, not Unsafe"),
        }
    }

    fn invalid_answer(answer: &str) {
        match policy().vet(&incident(), answer) {
            Err(EngineError::Invalid(_)) => {}
            other => panic!("{answer:?} gave {other:?}, not Invalid"),
        }
    }

    #[test]
    fn unsafe_answers_are_refused() {
        let with = |k: &str, v: Value| {
            let mut g = good();
            g[k] = v;
            g
        };
        unsafe_answer(json!({"verb": "delete", "kind": "namespace", "name": "prod"}));
        unsafe_answer(json!({"command": "kubectl delete namespace prod"}));
        unsafe_answer(with("verb", json!("rollout_restart; rm -rf /")));
        unsafe_answer(with("verb", json!("exec")));
        unsafe_answer(with("kind", json!("namespace")));
        for name in [
            "checkout; rm -rf /",
            "checkout$(id)",
            "checkout`id`",
            "checkout\nrm",
            "../checkout",
            "Checkout",
            "payments",
        ] {
            unsafe_answer(with("name", json!(name)));
        }
        unsafe_answer(with("namespace", json!("kube-system")));
        unsafe_answer(with("namespace", json!("shop && curl x")));
        unsafe_answer(with("replicas", json!(0)));
        unsafe_answer(with("replicas", json!(11)));
        unsafe_answer(with("replicas", json!(-3)));
        unsafe_answer(with("replicas", json!(1e12)));
        unsafe_answer(with("replicas", json!("3; reboot")));
        match policy().vet(&incident(), "kubectl delete namespace prod") {
            Err(EngineError::Unsafe(_)) => {}
            other => panic!("bare command gave {other:?}"),
        }
    }

    #[test]
    fn malformed_answers_are_invalid() {
        invalid_answer("");
        invalid_answer("I would restart it.");
        invalid_answer("{\"verb\": \"scale\", \"name\": ");
        invalid_answer("{not json}");
        invalid_answer("[1, 2]");
        invalid_answer(&json!({"name": "checkout"}).to_string());
        invalid_answer(&json!({"verb": "scale", "name": "checkout"}).to_string());
        invalid_answer(&json!({"verb": 3, "name": "checkout"}).to_string());
        invalid_answer(&json!({"verb": "scale", "name": "checkout", "replicas": 2.5}).to_string());
        invalid_answer(&json!({"verb": "scale", "name": "checkout", "replicas": "3"}).to_string());
        invalid_answer(
            &json!({"verb": "rollout_undo", "name": "checkout", "risk": "dire"}).to_string(),
        );
        invalid_answer(&format!(
            "{{\"verb\": \"{}\"}}",
            "a".repeat(answer::MAX_ANSWER)
        ));
        let mut extra = good();
        extra["approved_by"] = json!("admin");
        invalid_answer(&extra.to_string());
        invalid_answer(&format!("{} {}", good(), good()));
    }

    #[test]
    fn free_text_is_cleaned_for_people() {
        let mut g = good();
        g["reasoning"] = json!("line one\n\u{1b}[31mred\u{7}");
        g["confidence"] = json!(7);
        let v = vet(g).unwrap();
        assert_eq!(v.reasoning.text, "line one\n[31mred");
        assert_eq!(v.model_confidence, 1.0);
    }

    #[test]
    fn the_model_may_raise_the_risk_never_lower_it() {
        let answer = |verb: &str, risk: &str| {
            let mut g = good();
            g["verb"] = json!(verb);
            g["risk"] = json!(risk);
            if verb != "scale" {
                g["replicas"] = Value::Null;
            }
            g
        };
        assert_eq!(
            vet(answer("rollout_undo", "low")).unwrap().risk,
            RiskLevel::High
        );
        assert_eq!(
            vet(answer("rollout_restart", "low")).unwrap().risk,
            RiskLevel::Medium
        );
        assert_eq!(
            vet(answer("rollout_restart", "critical")).unwrap().risk,
            RiskLevel::Critical,
            "raising is the model's right"
        );
        let mut big = answer("scale", "low");
        big["replicas"] = json!(9);
        assert_eq!(vet(big).unwrap().risk, RiskLevel::Medium, "upper half");
        let mut p0 = incident();
        p0.severity = Severity::P0;
        let v = policy()
            .vet(&p0, &answer("rollout_undo", "low").to_string())
            .unwrap();
        assert_eq!(v.risk, RiskLevel::Critical, "a P0 raises the floor");
    }

    #[test]
    fn the_kind_is_the_incidents_not_the_models() {
        let mut g = good();
        g["kind"] = json!("statefulset");
        unsafe_answer(g);
        let mut sts = incident();
        sts.signals.push(crate::domain::Signal {
            alert_name: "PodCrashLooping".into(),
            labels: [("statefulset".to_string(), "checkout".to_string())].into(),
            annotations: Default::default(),
            starts_at: None,
            ends_at: None,
            fingerprint: String::new(),
            status: crate::domain::SignalStatus::Firing,
            generator_url: String::new(),
        });
        let mut g = good();
        g.as_object_mut().unwrap().remove("kind");
        let v = policy().vet(&sts, &g.to_string()).unwrap();
        assert_eq!(v.command.kind, WorkloadKind::StatefulSet);
        assert_eq!(v.risk, RiskLevel::Medium, "a StatefulSet raises the floor");
        assert!(matches!(
            policy().vet(&sts, &good().to_string()),
            Err(EngineError::Unsafe(_))
        ));
    }

    /// A reload (SIGHUP, or the config file changing) swaps the rules for
    /// every clone: the LLM proposer and the proposal cache hold clones.
    #[test]
    fn a_reload_reaches_every_clone_and_changes_what_is_allowed() {
        let p = policy();
        let held_elsewhere = p.clone();
        let i = incident();
        assert!(held_elsewhere.vet(&i, &good().to_string()).is_ok());
        let stricter = Policy::from_toml("never_touch = [\"shop\"]", 1, 10).unwrap();
        p.reload_from(&stricter);
        assert_eq!(held_elsewhere.hash(), stricter.hash());
        assert!(matches!(
            held_elsewhere.vet(&i, &good().to_string()),
            Err(EngineError::Unsafe(_))
        ));
    }

    #[test]
    fn free_text_is_untrusted_display_text() {
        let mut g = good();
        g["description"] = json!("Restart, then run: kubectl delete namespace shop --force");
        g["reasoning"] = json!("see http://evil.example \u{202E}txt.exe");
        let p = vet(g).unwrap().into_proposal(ProposalSource::Llm, "p", "m");
        use crate::domain::TextWarning::*;
        assert_eq!(
            p.text_warnings,
            [MentionsCommand, MentionsUrl, HiddenCharacters]
        );
        assert!(p.reasoning.contains("<U+202E>"));
        assert_eq!(
            p.command.render(),
            "kubectl scale deployment/checkout --replicas=4 -n shop"
        );
    }

    #[test]
    fn a_policy_file_narrows_what_may_be_proposed() {
        let file = r#"
            max_risk = "high"
            never_touch = ["kube-system"]
            sensitive_namespaces = ["shop"]
            [verbs]
            shop = ["scale", "rollout_undo"]
            "*" = ["rollout_restart"]
            [replicas]
            checkout = { min = 2, max = 6 }
        "#;
        let p = Policy::from_toml(file, 1, 10).unwrap();
        assert_ne!(p.hash(), policy().hash());
        assert_eq!(p.hash(), Policy::from_toml(file, 1, 10).unwrap().hash());
        let i = incident();
        let vet = |v: Value| p.vet(&i, &v.to_string());
        let mut g = good();
        g["verb"] = json!("rollout_restart");
        g["replicas"] = Value::Null;
        assert!(matches!(vet(g), Err(EngineError::Unsafe(m)) if m.contains("not allowed")));
        let mut g = good();
        g["replicas"] = json!(8);
        assert!(matches!(vet(g), Err(EngineError::Unsafe(m)) if m.contains("2..=6")));
        // Scale 4 of 2..=6: upper half, medium; sensitive namespace: high.
        assert_eq!(vet(good()).unwrap().risk, RiskLevel::High);
        let mut g = good();
        g["verb"] = json!("rollout_undo");
        g["replicas"] = Value::Null;
        assert!(matches!(vet(g), Err(EngineError::Unsafe(m)) if m.contains("maximum")));

        let mut ks = incident();
        ks.namespace = Some(K8sName::parse("kube-system").unwrap());
        let mut g = good();
        g["namespace"] = json!("kube-system");
        assert!(matches!(
            policy().vet(&ks, &g.to_string()),
            Err(EngineError::Unsafe(m)) if m.contains("never touched")
        ));

        assert!(Policy::from_toml("max_risk = 'dire'", 1, 10).is_err());
    }

    #[test]
    fn a_cached_proposal_is_held_to_the_current_policy() {
        let mut g = good();
        g["verb"] = json!("rollout_undo");
        g["replicas"] = Value::Null;
        let mut p = vet(g).unwrap().into_proposal(ProposalSource::Llm, "p", "m");
        // As if cached under an older, laxer policy.
        p.risk = RiskLevel::Low;
        p.policy_hash = "old".into();
        policy().recheck(&incident(), &mut p).unwrap();
        assert_eq!(p.risk, RiskLevel::High);
        assert_eq!(p.policy_hash, policy().hash());
        let strict = Policy::from_toml("max_risk = 'medium'", 1, 10).unwrap();
        assert!(matches!(
            strict.recheck(&incident(), &mut p),
            Err(EngineError::Unsafe(_))
        ));
    }

    #[test]
    fn cached_commands_are_checked_again() {
        let v = vet(good()).unwrap();
        assert!(policy().check(&incident(), &v.command).is_ok());
        assert!(matches!(
            Policy::new(1, 3).check(&incident(), &v.command),
            Err(EngineError::Unsafe(_))
        ));
        let mut other = incident();
        other.affected_services = vec![K8sName::parse("search").unwrap()];
        assert!(matches!(
            policy().check(&other, &v.command),
            Err(EngineError::Unsafe(_))
        ));
    }

    /// What every accepted command must satisfy, whatever the input.
    fn assert_safe(v: &Vetted) {
        let i = incident();
        assert!(i.affected_services.contains(&v.command.name));
        assert_eq!(v.command.namespace, i.target_namespace());
        match v.command.verb {
            CommandVerb::Scale => {
                let n = v.command.replicas.expect("scale has replicas");
                assert!((1..=10).contains(&n));
            }
            _ => assert_eq!(v.command.replicas, None),
        }
        for arg in v.command.argv() {
            assert!(!has_shell_chars(&arg), "{arg:?}");
            assert!(!arg.contains(' '), "{arg:?}");
        }
    }

    fn field() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            ".{0,40}".prop_map(Value::String),
            prop::sample::select(vec![
                "scale",
                "rollout_restart",
                "rollout_undo",
                "delete",
                "checkout",
                "cart",
                "shop",
                "default",
                "deployment",
                "statefulset",
                "namespace",
                "checkout;id",
                "cart\n",
                "$(id)",
                "`id`",
                "low",
                "critical",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
            any::<i64>().prop_map(|n| json!(n)),
            (0u32..20).prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
        ]
    }

    proptest! {
        #[test]
        fn any_text_is_refused_or_safe(answer in ".{0,300}") {
            if let Ok(v) = policy().vet(&incident(), &answer) {
                assert_safe(&v);
            }
        }

        #[test]
        fn any_structured_answer_is_refused_or_safe(
            verb in field(), kind in field(), name in field(), namespace in field(),
            replicas in field(), risk in field(), confidence in field(),
        ) {
            let answer = json!({
                "verb": verb, "kind": kind, "name": name, "namespace": namespace,
                "replicas": replicas, "risk": risk, "confidence": confidence,
            });
            if let Ok(v) = vet(answer) {
                assert_safe(&v);
                prop_assert!((0.0..=1.0).contains(&v.model_confidence));
                prop_assert!(v.risk >= policy().risk_floor(&incident(), &v.command));
            }
        }

        #[test]
        fn a_metacharacter_anywhere_in_a_name_is_unsafe(
            prefix in "[a-z]{0,5}",
            meta in prop::sample::select(vec![";", "$(", ")", "`", "\n", "|", "&", "'", "\\"]),
            suffix in "[a-z]{0,5}",
            field in prop::sample::select(vec!["name", "namespace", "verb"]),
        ) {
            let mut g = good();
            g[field] = json!(format!("{prefix}{meta}{suffix}"));
            prop_assert!(matches!(vet(g), Err(EngineError::Unsafe(_))));
        }
    }
}

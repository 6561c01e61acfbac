//! The safety policy: the one gate between model output and a proposal.
//!
//! An answer becomes a structured [`RemediationCommand`] or is discarded.
//! Verbs come only from the allowlist, names and namespaces must be RFC 1123
//! labels ([`K8sName`]), `replicas` must lie within the configured bounds,
//! the target must be one of the incident's affected services and the
//! namespace the incident's target namespace. Nothing is ever parsed out of
//! free text: a model that answers `kubectl delete namespace prod`, or puts
//! `;`, `$( )`, backticks or a newline into a name, is refused.
//!
//! Refusals come in two kinds, recorded as the fallback reason:
//! [`EngineError::Invalid`] — the answer is not a JSON object of the
//! expected shape; [`EngineError::Unsafe`] — it is, but asks for something
//! the policy does not allow.

use super::EngineError;
use super::llm::prompt::{ReplicaBounds, clip};
use crate::domain::proposal::WorkloadKind;
use crate::domain::{
    CommandVerb, Incident, K8sName, Proposal, ProposalSource, RemediationCommand, RiskLevel,
};
use serde_json::{Map, Value};
use std::time::Duration;

/// The longest answer looked at; a proposal is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;
/// Characters kept of the free-text fields shown to people.
const MAX_DESCRIPTION: usize = 500;
const MAX_REASONING: usize = 2000;
/// Keys a model might use to smuggle a whole command line.
const FREE_TEXT_KEYS: [&str; 7] = [
    "command",
    "kubectl",
    "kubectl_command",
    "cmd",
    "shell",
    "script",
    "action",
];

/// The policy's settings: the replica bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    bounds: ReplicaBounds,
}

/// An answer that passed the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Vetted {
    pub command: RemediationCommand,
    pub risk: RiskLevel,
    pub confidence: f64,
    pub description: String,
    pub reasoning: String,
}

impl Vetted {
    pub fn into_proposal(self, source: ProposalSource, provider: &str, model: &str) -> Proposal {
        Proposal {
            source,
            provider: provider.to_owned(),
            model: model.to_owned(),
            command: self.command,
            description: self.description,
            reasoning: self.reasoning,
            risk: self.risk,
            confidence: self.confidence,
            matched_rule: String::new(),
            from_cache: false,
            analysis_latency: Duration::ZERO,
            fallback_reason: None,
            consensus: None,
        }
    }
}

impl Policy {
    /// `scale` may set between `min_replicas` (at least 1: scaling to zero
    /// is an outage, not a remediation) and `max_replicas`.
    pub fn new(min_replicas: u32, max_replicas: u32) -> Self {
        let min = min_replicas.max(1);
        Policy {
            bounds: ReplicaBounds {
                min,
                max: max_replicas.max(min),
            },
        }
    }

    pub fn bounds(&self) -> ReplicaBounds {
        self.bounds
    }

    /// Parses and checks a model's answer for `incident`.
    pub fn vet(&self, incident: &Incident, answer: &str) -> Result<Vetted, EngineError> {
        if answer.len() > MAX_ANSWER {
            return Err(invalid(format!("answer longer than {MAX_ANSWER} bytes")));
        }
        let Some(json) = json_object(answer) else {
            // Not JSON. A bare command line is an attempt to be run as is.
            if answer.contains("kubectl") || answer.contains("$(") || answer.contains('`') {
                return Err(unsafe_(format!(
                    "free-text command {:?} refused: only the structured form is accepted",
                    clip(answer.trim(), 80)
                )));
            }
            return Err(invalid("no JSON object in the answer"));
        };
        let value: Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(invalid("the answer is not a JSON object"));
        };

        let verb = match text(&obj, "verb")? {
            Some(v) => parse_verb(v)?,
            None if FREE_TEXT_KEYS.iter().any(|k| obj.contains_key(*k)) => {
                return Err(unsafe_(
                    "a free-text command without a structured verb is never run",
                ));
            }
            None => return Err(invalid("missing field verb")),
        };
        let kind = match text(&obj, "kind")? {
            None => WorkloadKind::Deployment,
            Some(k) => WorkloadKind::parse(&k.trim().to_ascii_lowercase()).ok_or_else(|| {
                unsafe_(format!(
                    "kind {:?} is not deployment or statefulset",
                    clip(k, 60)
                ))
            })?,
        };
        let name = text(&obj, "name")?.ok_or_else(|| invalid("missing field name"))?;
        let name = label("name", name)?;
        let target_ns = incident.target_namespace();
        let namespace = match text(&obj, "namespace")? {
            None => target_ns.clone(),
            Some(ns) => label("namespace", ns)?,
        };
        let replicas = match verb {
            CommandVerb::Scale => Some(self.replicas(obj.get("replicas"))?),
            // Ignored for the other verbs: they take none.
            CommandVerb::RolloutRestart | CommandVerb::RolloutUndo => None,
        };
        let command = RemediationCommand {
            verb,
            kind,
            name,
            namespace,
            replicas,
        };
        self.check(incident, &command)?;

        let risk = match text(&obj, "risk")? {
            None => RiskLevel::Medium,
            Some(r) => RiskLevel::parse(r.trim())
                .ok_or_else(|| invalid(format!("risk {:?} is not a risk level", clip(r, 40))))?,
        };
        let confidence = match obj.get("confidence") {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.5).clamp(0.0, 1.0),
            _ => 0.5,
        };
        let mut description = sanitize(text(&obj, "description")?.unwrap_or(""), MAX_DESCRIPTION);
        if description.is_empty() {
            description = format!("LLM proposal: {}", command.render());
        }
        let reasoning = sanitize(text(&obj, "reasoning")?.unwrap_or(""), MAX_REASONING);
        Ok(Vetted {
            command,
            risk,
            confidence,
            description,
            reasoning,
        })
    }

    /// The checks a structured command must pass for `incident`: used on
    /// fresh answers and again on cached ones (the bounds may have changed
    /// since, and a cache entry is outside input too).
    pub fn check(&self, incident: &Incident, c: &RemediationCommand) -> Result<(), EngineError> {
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
        match (c.verb, c.replicas) {
            (CommandVerb::Scale, Some(n)) if (self.bounds.min..=self.bounds.max).contains(&n) => {
                Ok(())
            }
            (CommandVerb::Scale, Some(n)) => Err(unsafe_(format!(
                "replicas {n} is outside {}..={}",
                self.bounds.min, self.bounds.max
            ))),
            (CommandVerb::Scale, None) => Err(invalid("scale needs replicas")),
            (_, Some(_)) => Err(invalid("replicas is only for scale")),
            (_, None) => Ok(()),
        }
    }

    fn replicas(&self, v: Option<&Value>) -> Result<u32, EngineError> {
        let out_of_bounds = |n: &dyn std::fmt::Display| {
            unsafe_(format!(
                "replicas {n} is outside {}..={}",
                self.bounds.min, self.bounds.max
            ))
        };
        match v {
            None | Some(Value::Null) => Err(invalid("scale needs replicas")),
            Some(Value::Number(n)) => {
                if let Some(u) = n.as_u64() {
                    return u32::try_from(u)
                        .ok()
                        .filter(|u| (self.bounds.min..=self.bounds.max).contains(u))
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
                if f >= f64::from(self.bounds.min) && f <= f64::from(self.bounds.max) {
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

/// The outermost `{ … }` of an answer, so code fences or a sentence around
/// the object do not matter.
fn json_object(answer: &str) -> Option<&str> {
    let start = answer.find('{')?;
    let end = answer.rfind('}')?;
    (end > start).then(|| &answer[start..=end])
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

/// Free text for people: control characters (terminal escapes) removed
/// except newlines, trimmed, bounded.
fn sanitize(s: &str, max: usize) -> String {
    let kept: String = s
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    clip(kept.trim(), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IncidentId, IncidentStatus, Severity};
    use proptest::prelude::*;
    use serde_json::json;

    fn incident() -> Incident {
        let now = chrono::Utc::now();
        Incident {
            id: IncidentId::parse("INC-1").unwrap(),
            title: "t".into(),
            severity: Severity::P2,
            status: IncidentStatus::Open,
            signals: vec![],
            affected_services: vec![
                K8sName::parse("checkout").unwrap(),
                K8sName::parse("cart").unwrap(),
            ],
            namespace: Some(K8sName::parse("shop").unwrap()),
            created_at: now,
            updated_at: now,
            resolved_at: None,
            version: 1,
            status_actor: String::new(),
            status_note: String::new(),
        }
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
        assert_eq!(v.confidence, 0.9);
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
        assert!(v.description.contains("rollout restart"));
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
        invalid_answer(&format!("{{\"verb\": \"{}\"}}", "a".repeat(MAX_ANSWER)));
    }

    #[test]
    fn free_text_is_cleaned_for_people() {
        let mut g = good();
        g["reasoning"] = json!("line one\n\u{1b}[31mred\u{7}");
        g["confidence"] = json!(7);
        let v = vet(g).unwrap();
        assert_eq!(v.reasoning, "line one\n[31mred");
        assert_eq!(v.confidence, 1.0);
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
                prop_assert!((0.0..=1.0).contains(&v.confidence));
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

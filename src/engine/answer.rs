//! The shape of a model's answer: exactly one JSON object with only the
//! fields the schema sent to the model names. No meaning is given to any
//! field here; [`super::policy`] does that.
//!
//! Models wrap answers in code fences or a sentence, so the object is found
//! as one complete JSON value, not "first `{` to last `}`": a valid
//! proposal followed by prose parses, prose containing braces does not
//! confuse it, and two objects in one answer are refused (which of two
//! proposals was meant is not ours to guess).

use super::EngineError;
use super::llm::prompt::clip;
use serde_json::{Map, Value};

/// The longest answer looked at; a proposal is a few hundred bytes.
pub const MAX_ANSWER: usize = 64 * 1024;
/// `{` positions tried as the start of a JSON value at most, so an answer of
/// many braces costs a bounded amount of parsing.
const MAX_STARTS: usize = 32;
/// The fields of the schema sent to the model; any other is refused.
pub const FIELDS: [&str; 9] = [
    "verb",
    "kind",
    "name",
    "namespace",
    "replicas",
    "risk",
    "confidence",
    "description",
    "reasoning",
];
/// Keys a model might use to smuggle a whole command line: refused as
/// unsafe, not merely invalid.
const FREE_TEXT_KEYS: [&str; 7] = [
    "command",
    "kubectl",
    "kubectl_command",
    "cmd",
    "shell",
    "script",
    "action",
];

/// The answer's one JSON object, with only known fields.
pub fn parse(answer: &str) -> Result<Map<String, Value>, EngineError> {
    if answer.len() > MAX_ANSWER {
        return Err(invalid(format!("answer longer than {MAX_ANSWER} bytes")));
    }
    let Some(obj) = the_object(answer)? else {
        // Not JSON. A bare command line is an attempt to be run as is.
        if answer.contains("kubectl") || answer.contains("$(") || answer.contains('`') {
            return Err(EngineError::Unsafe(format!(
                "free-text command {:?} refused: only the structured form is accepted",
                clip(answer.trim(), 80)
            )));
        }
        return Err(invalid("no JSON object in the answer"));
    };
    if let Some(k) = FREE_TEXT_KEYS.iter().find(|k| obj.contains_key(**k)) {
        return Err(EngineError::Unsafe(format!(
            "field {k:?}: a free-text command is never run"
        )));
    }
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown field {:?} (the schema allows only {})",
            clip(k, 40),
            FIELDS.join(", ")
        )));
    }
    Ok(obj)
}

/// The one JSON object in `answer`: None when there is none, refused when
/// there are two, or when it comes inside a list (a list of proposals is
/// not one proposal, whatever its length).
fn the_object(answer: &str) -> Result<Option<Map<String, Value>>, EngineError> {
    let mut found = None;
    let mut from = 0;
    let mut tries = 0;
    while let Some(i) = answer.get(from..).and_then(|rest| rest.find(['{', '['])) {
        let at = from + i;
        tries += 1;
        if tries > MAX_STARTS {
            break;
        }
        match value_at(&answer[at..]) {
            Some((Value::Object(obj), len)) => {
                if found.is_some() {
                    return Err(invalid("more than one JSON object in the answer"));
                }
                found = Some(obj);
                // Past the whole value: braces inside its strings are not
                // starts.
                from = at + len;
            }
            Some((Value::Array(items), len)) => {
                if items.iter().any(Value::is_object) {
                    return Err(invalid("a JSON list of objects, not one object"));
                }
                // `[1]` in prose.
                from = at + len;
            }
            // `{` and `[` are one byte, so `at + 1` is a character boundary.
            _ => from = at + 1,
        }
    }
    Ok(found)
}

/// One complete JSON value at the start of `s` and its length in bytes.
fn value_at(s: &str) -> Option<(Value, usize)> {
    let mut values = serde_json::Deserializer::from_str(s).into_iter::<Value>();
    match values.next() {
        Some(Ok(v)) => Some((v, values.byte_offset())),
        _ => None,
    }
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_object_is_found_among_prose_and_fences() {
        let obj =
            parse("Here you go:\n```json\n{\"verb\": \"scale\"}\n```\nHope it {helps}.").unwrap();
        assert_eq!(obj["verb"], "scale");
        // Braces inside the object's strings are not a second object.
        let obj = parse(r#"{"reasoning": "a {\"verb\": 1} b"} and that is all"#).unwrap();
        assert!(obj["reasoning"].as_str().unwrap().contains("verb"));
        // Prose with braces before the object.
        let obj = parse(r#"I think {maybe} this: {"name": "cart"}"#).unwrap();
        assert_eq!(obj["name"], "cart");
    }

    #[test]
    fn two_objects_unknown_fields_and_free_text_commands_are_refused() {
        let two = r#"{"verb": "scale"} or else {"verb": "rollout_undo"}"#;
        assert!(matches!(parse(two), Err(EngineError::Invalid(m)) if m.contains("more than one")));
        assert!(
            matches!(parse(r#"{"verb": "scale", "note": "x"}"#), Err(EngineError::Invalid(m)) if m.contains("unknown field"))
        );
        assert!(matches!(
            parse(r#"{"verb": "scale", "shell": "rm -rf /"}"#),
            Err(EngineError::Unsafe(_))
        ));
        assert!(matches!(parse("[1, 2]"), Err(EngineError::Invalid(_))));
        assert!(matches!(
            parse(r#"[{"verb": "scale"}]"#),
            Err(EngineError::Invalid(m)) if m.contains("list")
        ));
        assert_eq!(
            parse(r#"See [1]: {"verb": "scale"}"#).unwrap()["verb"],
            "scale"
        );
        assert!(matches!(
            parse("kubectl delete ns prod"),
            Err(EngineError::Unsafe(_))
        ));
    }

    proptest! {
        /// The parser never panics, whatever it is given.
        #[test]
        fn never_panics_on_text(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_json_like_text(
            s in r#"[{}\[\]":,a-z0-9 \\]{0,200}"#,
        ) {
            let _ = parse(&s);
        }
    }
}

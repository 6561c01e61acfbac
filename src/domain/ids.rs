//! Identifier newtypes. Each validates on construction, so a value of these
//! types is always well-formed: a `Token` is never confused with an incident
//! id, and a `K8sName` can never carry shell metacharacters.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("{0}")]
    Malformed(&'static str),
}

fn twelve_hex() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_ascii_uppercase()
}

/// A decision token: `DEC-` followed by 12 upper-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Token(String);

impl Token {
    /// A fresh random token (48 random bits from a v4 UUID, as in the seed).
    pub fn generate() -> Self {
        Token(format!("DEC-{}", twelve_hex()))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let ok = s.len() == 16
            && s.starts_with("DEC-")
            && s[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        if ok {
            Ok(Token(s.to_owned()))
        } else {
            Err(IdError::Malformed(
                "must be DEC- followed by 12 upper-case hex digits",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An incident id: `INC-` + 12 upper-case hex when generated, or a caller's
/// own id of 1 to 64 characters from `[A-Za-z0-9._:-]`. Braces are excluded
/// because the id becomes a Redis hash tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IncidentId(String);

/// Checks a caller-supplied key against `[A-Za-z0-9._:-]{1,max}`.
fn check_key(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > max {
        return Err(IdError::TooLong { max });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(IdError::Malformed(
            "may contain only letters, digits, '.', '_', ':' and '-'",
        ));
    }
    Ok(())
}

impl IncidentId {
    pub fn generate() -> Self {
        IncidentId(format!("INC-{}", twelve_hex()))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_key(s, 64)?;
        Ok(IncidentId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An idempotency key: `CreateIncident`'s, and the state changes'
/// (approve, reject, complete, status change), which keep theirs in the
/// record they changed ([`AppliedRequests`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_key(s, 128)?;
        Ok(RequestId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Kubernetes object name or namespace restricted to an RFC 1123 label:
/// 1 to 63 characters of `[a-z0-9-]`, starting and ending with an
/// alphanumeric. This is what keeps `checkout; rm -rf /` out of any command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct K8sName(String);

impl K8sName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > 63 {
            return Err(IdError::TooLong { max: 63 });
        }
        let b = s.as_bytes();
        let inner_ok = b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        let ends_ok = b[0] != b'-' && b[b.len() - 1] != b'-';
        if inner_ok && ends_ok {
            Ok(K8sName(s.to_owned()))
        } else {
            Err(IdError::Malformed(
                "must be an RFC 1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($($t:ident),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                $t::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    )*};
}
string_newtype_impls!(Token, IncidentId, K8sName, RequestId);

/// The request ids of the last changes applied to a record, kept *in* the
/// record: recording one is part of the same compare-and-set write as the
/// change, so "changed" and "remembered as changed" cannot disagree after a
/// crash or a lost reply. A retry whose id is here is answered with the
/// record as it is, without applying the change again.
///
/// Bounded to the last [`AppliedRequests::KEPT`] ids: a record sees a
/// handful of changes in its life (approvals, a completion, status moves),
/// and a retry comes within seconds of its first attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppliedRequests(std::collections::VecDeque<RequestId>);

impl AppliedRequests {
    /// How many ids a record keeps.
    pub const KEPT: usize = 16;

    /// Whether the change with this id was applied to the record.
    pub fn contains(&self, id: &RequestId) -> bool {
        self.0.contains(id)
    }

    /// Remembers `id` as applied, forgetting the oldest beyond [`Self::KEPT`].
    pub fn record(&mut self, id: RequestId) {
        if self.contains(&id) {
            return;
        }
        if self.0.len() >= Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back(id);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids, oldest first (the order [`Self::record`] keeps), so a
    /// store can write them out and record them back in the same order.
    pub fn iter(&self) -> impl Iterator<Item = &RequestId> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_requests_are_bounded_and_round_trip() {
        let id = |n: usize| RequestId::parse(&format!("req-{n}")).unwrap();
        let mut applied = AppliedRequests::default();
        for n in 0..AppliedRequests::KEPT + 3 {
            applied.record(id(n));
            applied.record(id(n));
        }
        assert!(!applied.contains(&id(2)), "the oldest are forgotten");
        assert!(applied.contains(&id(3)) && applied.contains(&id(AppliedRequests::KEPT + 2)));
        let json = serde_json::to_string(&applied).unwrap();
        assert_eq!(
            serde_json::from_str::<AppliedRequests>(&json).unwrap(),
            applied
        );
        assert!(serde_json::from_str::<AppliedRequests>(r#"["bad id!"]"#).is_err());
    }

    #[test]
    fn generated_tokens_have_the_seed_format() {
        for _ in 0..100 {
            let t = Token::generate();
            assert!(Token::parse(t.as_str()).is_ok(), "{t}");
        }
    }

    #[test]
    fn tokens_are_strict() {
        for bad in [
            "",
            "DEC-",
            "DEC-abcdefabcdef",
            "DEC-ABCDEFABCDE",
            "XYZ-ABCDEFABCDEF",
            "DEC-ABCDEFABCDEFA",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn k8s_names_refuse_shell_metacharacters() {
        for bad in [
            "checkout; rm -rf /",
            "a$(id)",
            "a`id`",
            "a\nb",
            "-a",
            "a-",
            "Checkout",
            "a b",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(K8sName::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["checkout", "a", "web-1", "0abc"] {
            assert!(K8sName::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn incident_ids_exclude_hash_tag_braces() {
        assert!(IncidentId::parse("INC-{x}").is_err());
        assert!(IncidentId::parse("shop:checkout.1_a-b").is_ok());
        assert!(IncidentId::parse(&"a".repeat(65)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn a_parsed_k8s_name_is_always_safe(s in ".{0,80}") {
            if let Ok(n) = K8sName::parse(&s) {
                proptest::prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
        }
    }
}

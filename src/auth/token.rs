//! Static bearer tokens: the configuration holds, per principal, a subject,
//! its roles and the **SHA-256 of the token** — never the token itself, so a
//! leaked config file grants nothing.
//!
//! A presented token is hashed once and compared with every configured
//! digest in constant time (`subtle`), always all of them, so neither the
//! answer's timing nor its position in the list reveals how close a guess
//! was or which entry it matched.

use crate::domain::{AuthMethod, Principal, Role};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use subtle::ConstantTimeEq;

/// The prefix of tokens `verdict token create` makes: recognisable in a
/// secret scanner and in a log line that should not contain it.
pub const PREFIX: &str = "vdt_";

/// One configured static token (`[[auth_tokens]]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who presents the token (recorded as the approver, in logs, audit).
    pub subject: String,
    /// What the principal may do.
    pub roles: BTreeSet<Role>,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
}

/// The configured tokens, ready to check: each digest decoded once.
#[derive(Debug, Clone, Default)]
pub struct StaticTokens {
    entries: Vec<([u8; 32], Principal)>,
}

impl StaticTokens {
    /// Checks and decodes the entries; an error names the entry.
    pub fn new(entries: &[TokenEntry]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let at = format!("auth_tokens[{i}] ({:?})", e.subject);
            if e.subject.trim().is_empty() || e.subject.chars().any(char::is_control) {
                return Err(format!("{at}: subject must be a non-empty line"));
            }
            if e.roles.is_empty() {
                return Err(format!("{at}: give at least one role"));
            }
            let digest = decode_hex32(&e.sha256).ok_or_else(|| {
                format!(
                    "{at}: sha256 must be 64 hex digits (the SHA-256 of the token, not the token)"
                )
            })?;
            if out.iter().any(|(d, _)| d == &digest) {
                return Err(format!("{at}: the same token is configured twice"));
            }
            out.push((
                digest,
                Principal {
                    subject: e.subject.clone(),
                    method: AuthMethod::StaticToken,
                    roles: e.roles.clone(),
                },
            ));
        }
        Ok(StaticTokens { entries: out })
    }

    /// Whether any token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal whose token this is, if any. Compares against every
    /// entry in constant time.
    pub fn lookup(&self, presented: &str) -> Option<&Principal> {
        let digest = sha256(presented.as_bytes());
        let mut found = None;
        for (d, p) in &self.entries {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(p);
            }
        }
        found
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Roles by name (`verdict token create --role …`); the error names the
/// unknown one.
pub fn parse_roles(names: &[String]) -> Result<BTreeSet<Role>, String> {
    names.iter().map(|r| r.parse::<Role>()).collect()
}

/// A new random token (256 bits from the system's CSPRNG) and the config
/// entry that admits it. The token is shown once; only its digest is kept.
pub fn generate(subject: &str, roles: BTreeSet<Role>) -> Result<(String, TokenEntry), String> {
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| "the system's random source failed".to_string())?;
    let token = format!("{PREFIX}{}", hex(&raw));
    let entry = TokenEntry {
        subject: subject.to_owned(),
        roles,
        sha256: hex(&sha256(token.as_bytes())),
    };
    // Refuse what the server would refuse, before printing it.
    StaticTokens::new(std::slice::from_ref(&entry))?;
    Ok((token, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(r: &[Role]) -> BTreeSet<Role> {
        r.iter().copied().collect()
    }

    #[test]
    fn a_generated_token_is_admitted_by_its_entry_only() {
        let (a, ea) = generate("alice", roles(&[Role::Approver])).unwrap();
        let (b, eb) = generate("bob", roles(&[Role::Viewer])).unwrap();
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        assert!(!ea.sha256.contains(&a[PREFIX.len()..]), "never the token");
        let t = StaticTokens::new(&[ea, eb]).unwrap();
        assert_eq!(t.lookup(&a).map(|p| p.subject.as_str()), Some("alice"));
        assert_eq!(t.lookup(&b).map(|p| p.subject.as_str()), Some("bob"));
        assert_eq!(
            t.lookup(&b).map(|p| p.method),
            Some(AuthMethod::StaticToken)
        );
        assert!(t.lookup("vdt_guess").is_none());
        assert!(t.lookup("").is_none());
        assert!(t.lookup(&a[..a.len() - 1]).is_none());
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        let ok = generate("x", roles(&[Role::Viewer])).unwrap().1;
        let bad_hash = TokenEntry {
            sha256: "vdt_plaintext".into(),
            ..ok.clone()
        };
        let e = StaticTokens::new(&[bad_hash]).unwrap_err();
        assert!(e.contains("auth_tokens[0]") && e.contains("64 hex"), "{e}");
        let no_roles = TokenEntry {
            roles: BTreeSet::new(),
            ..ok.clone()
        };
        assert!(StaticTokens::new(&[no_roles]).is_err());
        assert!(StaticTokens::new(&[ok.clone(), ok]).is_err());
    }
}

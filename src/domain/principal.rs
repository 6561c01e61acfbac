//! Who makes a call: the authenticated [`Principal`] and its [`Role`]s.
//!
//! Every call is made by a principal. The edge (authentication, in
//! `server/`) decides who it is and puts it in the request's extensions;
//! handlers read it with [`Principal::of`] and never take an identity from
//! a request field, so the approver recorded on a decision is the
//! authenticated one. Chat adapters and the dashboard map their own users
//! onto principals the same way. Until authentication is configured the
//! principal is [`Principal::anonymous`].
//!
//! Roles are ordered for the human ladder — viewer < operator < approver <
//! admin — and a higher one includes the lower ones; `executor` (machines
//! reporting results) stands apart and includes nothing else.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// What a principal may do. See the module doc for how roles include each
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads incidents, decisions, statistics; watches.
    Viewer,
    /// Creates incidents, ingests signals, asks for decisions, changes status.
    Operator,
    /// Approves and rejects decisions.
    Approver,
    /// Everything, including administration.
    Admin,
    /// A machine that reports execution results (`CompleteDecision`).
    Executor,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Operator,
        Role::Approver,
        Role::Admin,
        Role::Executor,
    ];

    /// The role's name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
            Role::Executor => "executor",
        }
    }

    /// Whether holding `self` grants `needed`: the human ladder includes
    /// every lower rung; `executor` grants only itself (and `admin` grants
    /// it too, so an administrator can finish a stuck execution by hand).
    pub fn grants(self, needed: Role) -> bool {
        match (self, needed) {
            (a, b) if a == b => true,
            (Role::Executor, _) | (_, Role::Executor) => self == Role::Admin,
            (a, b) => a > b,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: one of viewer, operator, approver, admin, executor")
            })
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// No authentication configured (loopback-only development).
    Anonymous,
    /// A static bearer token from the configuration.
    StaticToken,
    /// An OIDC / JWT bearer token checked against a JWKS.
    Jwt,
    /// A TLS client certificate.
    Mtls,
    /// A chat user mapped to a principal (Telegram, Slack).
    Chat,
    /// verdict itself (background work: the sweeper, the executor).
    System,
}

impl AuthMethod {
    /// The method's name as recorded (audit, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::StaticToken => "static_token",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Mtls => "mtls",
            AuthMethod::Chat => "chat",
            AuthMethod::System => "system",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: who (`subject`), how it was established, and
/// what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable identifier: a configured subject, a JWT `sub`, a certificate
    /// name, `telegram:<user id>`…
    pub subject: String,
    pub method: AuthMethod,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// The caller when no authentication is configured: every role, so a
    /// development server (which then listens on loopback only) works as
    /// before.
    pub fn anonymous() -> Self {
        Principal {
            subject: "anonymous".into(),
            method: AuthMethod::Anonymous,
            roles: Role::ALL.into_iter().collect(),
        }
    }

    /// verdict itself, for work no person started (recovery, execution).
    pub fn system() -> Self {
        Principal {
            subject: "verdict".into(),
            method: AuthMethod::System,
            roles: Role::ALL.into_iter().collect(),
        }
    }

    /// Whether any held role grants `needed`.
    pub fn may(&self, needed: Role) -> bool {
        self.roles.iter().any(|r| r.grants(needed))
    }

    /// The principal the edge attached to a request, or
    /// [`Principal::anonymous`] when none was (authentication off).
    pub fn of(extensions: &http::Extensions) -> Principal {
        extensions
            .get::<Principal>()
            .cloned()
            .unwrap_or_else(Principal::anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_includes_lower_rungs_and_executor_stands_apart() {
        assert!(Role::Admin.grants(Role::Approver));
        assert!(Role::Approver.grants(Role::Viewer));
        assert!(!Role::Operator.grants(Role::Approver));
        assert!(!Role::Approver.grants(Role::Executor));
        assert!(!Role::Executor.grants(Role::Viewer));
        assert!(Role::Admin.grants(Role::Executor));
        assert!(Role::Executor.grants(Role::Executor));
    }

    #[test]
    fn roles_parse_by_name() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn a_request_without_a_principal_is_anonymous() {
        let mut ext = http::Extensions::new();
        assert_eq!(Principal::of(&ext).method, AuthMethod::Anonymous);
        let p = Principal {
            subject: "alice".into(),
            method: AuthMethod::StaticToken,
            roles: [Role::Viewer].into_iter().collect(),
        };
        ext.insert(p.clone());
        assert_eq!(Principal::of(&ext), p);
        assert!(!p.may(Role::Approver));
    }
}

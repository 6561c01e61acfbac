//! Authentication and authorization: from the credentials a request
//! presents to a [`Principal`], and from the route it calls to the role it
//! needs ([`table`]). Transport-free: the edge (`server/edge.rs`) reads the
//! headers, calls [`Authenticator::check`] and turns an [`AuthError`] into
//! a gRPC status or an HTTP answer; handlers only ever see the principal.
//!
//! Credentials: static bearer tokens ([`token`]), OIDC / JWT bearer
//! tokens checked against a JWKS ([`jwt`]), and verified TLS client
//! certificates mapped to principals ([`mtls`]). A request that presents
//! both a bearer token and a client certificate is judged by the token (the
//! per-request credential is the more specific one). The configuration
//! is swapped as a whole on reload ([`Authenticator::reload`]): a new file
//! that does not check keeps the old configuration.
//!
//! **Authentication is off** when no credential is configured: then every
//! caller is [`Principal::anonymous`] (every role), which the server only
//! allows on loopback unless told otherwise (`--allow-unauthenticated`).

pub mod jwks;
pub mod jwt;
pub mod mtls;
pub mod table;
pub mod token;

use crate::domain::{Principal, Role};
use crate::error_code::ErrorCode;
pub use jwt::{GroupRoles, JwtSettings, JwtVerifier};
pub use mtls::{CertName, ClientCert, MtlsEntry, MtlsPrincipals};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use table::Access;
use thiserror::Error;
pub use token::{StaticTokens, TokenEntry};

/// The authentication settings, as the config file gives them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthSettings {
    /// Static bearer tokens (`[[auth_tokens]]`).
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Client-certificate principals (`[[auth_mtls]]`); certificates are
    /// only presented when the listener has a client CA (`tls_client_ca_file`).
    #[serde(default)]
    pub mtls: Vec<MtlsEntry>,
    /// OIDC / JWT bearer tokens (`auth_jwt_*`), when configured.
    #[serde(default)]
    pub jwt: Option<JwtSettings>,
    /// Reflection open to anyone (default: any authenticated principal).
    #[serde(default)]
    pub reflection_open: bool,
    /// Whether the webhook has a token of its own: without one, and with
    /// authentication on, the webhook needs an `operator` principal.
    #[serde(default)]
    pub webhook_token: bool,
    /// Credentials optional (`serve --dev` only): a request without any is
    /// the anonymous principal; presented ones are still checked.
    #[serde(default)]
    pub optional: bool,
}

impl AuthSettings {
    /// Whether any credential is configured (authentication on).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some() || !self.mtls.is_empty()
    }
}

/// Why a request was refused. The messages tell a person what to fix and
/// leak nothing (not which tokens exist, not how close a guess was).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials, malformed ones, or ones nobody configured.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A known principal without the role the call needs.
    #[error("{} lacks the {needed} role this call needs", .principal.subject)]
    Forbidden { principal: Principal, needed: Role },
    /// Reflection without any credentials.
    #[error("an authenticated principal is required")]
    AnyPrincipal,
}

impl AuthError {
    /// What kind of refusal this is (UNAUTHENTICATED / 401 or
    /// PERMISSION_DENIED / 403).
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Unauthenticated(_) | AuthError::AnyPrincipal => ErrorCode::Unauthenticated,
            AuthError::Forbidden { .. } => ErrorCode::PermissionDenied,
        }
    }

    /// Why, as a metric label (a fixed set): `no_credentials`,
    /// `malformed`, `bad_credentials` (unknown, revoked, expired, badly
    /// signed) or `missing_role`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(NO_CREDENTIALS) | AuthError::AnyPrincipal => {
                "no_credentials"
            }
            AuthError::Unauthenticated(MALFORMED) => "malformed",
            AuthError::Unauthenticated(_) => "bad_credentials",
            AuthError::Forbidden { .. } => "missing_role",
        }
    }
}

const NO_CREDENTIALS: &str = "authentication required: send `authorization: Bearer <token>` (verdict --token, VERDICT_TOKEN)";
const MALFORMED: &str = "the authorization header must be `Bearer <token>`";
const UNKNOWN: &str =
    "the bearer token is not valid here (mistyped, revoked, or for another server)";
const UNKNOWN_CERT: &str = "the client certificate is valid but names no principal here (add its CN or SAN to [[auth_mtls]]) — or send `authorization: Bearer <token>`";

/// What a request presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The raw `authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The connection's client certificate, verified at the TLS handshake.
    pub client_cert: Option<&'a ClientCert>,
}

impl Presented<'_> {
    /// Whether any credential was presented.
    fn any(&self) -> bool {
        self.authorization.is_some() || self.client_cert.is_some()
    }
}

/// The configuration in force, checked once.
#[derive(Debug, Default)]
struct Active {
    tokens: StaticTokens,
    jwt: Option<JwtVerifier>,
    mtls: MtlsPrincipals,
    reflection_open: bool,
    webhook_token: bool,
    optional: bool,
}

impl Active {
    /// `previous`: the configuration in force, whose JWKS URL cache a new
    /// one with the same URL keeps.
    fn new(s: &AuthSettings, previous: Option<&Active>) -> Result<Self, String> {
        let old_jwt = previous.and_then(|p| p.jwt.as_ref());
        Ok(Active {
            tokens: StaticTokens::new(&s.tokens)?,
            jwt: s
                .jwt
                .as_ref()
                .map(|j| JwtVerifier::new(j, old_jwt))
                .transpose()?,
            mtls: MtlsPrincipals::new(&s.mtls)?,
            reflection_open: s.reflection_open,
            webhook_token: s.webhook_token,
            optional: s.optional,
        })
    }

    fn enabled(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some() || !self.mtls.is_empty()
    }
}

/// A checked configuration waiting to be installed.
#[derive(Debug)]
pub struct Prepared(Arc<Active>);

impl Prepared {
    /// Reads a JWKS URL this configuration has not fetched yet; an error
    /// names the URL.
    pub async fn fetch(&self) -> Result<(), String> {
        match &self.0.jwt {
            Some(jwt) => jwt.fetch().await,
            None => Ok(()),
        }
    }
}

/// Decides who a request is and whether it may make its call. Shared by
/// every connection; reloaded in place.
#[derive(Debug)]
pub struct Authenticator {
    active: RwLock<Arc<Active>>,
}

impl Authenticator {
    /// Checks `settings`; an error names the bad entry. A JWKS URL is not
    /// fetched yet: the server calls [`Self::fetch_jwks`] before serving.
    pub fn new(settings: &AuthSettings) -> Result<Self, String> {
        Ok(Authenticator {
            active: RwLock::new(Arc::new(Active::new(settings, None)?)),
        })
    }

    /// Fetches the JWKS URL's keys if they never were (at start): an error
    /// names the URL and why it could not be used.
    pub async fn fetch_jwks(&self) -> Result<(), String> {
        match &self.active().jwt {
            Some(jwt) => jwt.fetch().await,
            None => Ok(()),
        }
    }

    /// Checks `settings` for a reload, keeping the JWKS URL cache in force
    /// when the URL stays; [`Prepared::fetch`] reads a new URL before
    /// [`Self::install`] swaps it in.
    pub fn prepare(&self, settings: &AuthSettings) -> Result<Prepared, String> {
        Ok(Prepared(Arc::new(Active::new(
            settings,
            Some(&self.active()),
        )?)))
    }

    /// Swaps a prepared configuration in.
    pub fn install(&self, next: Prepared) {
        match self.active.write() {
            Ok(mut a) => *a = next.0,
            Err(poisoned) => *poisoned.into_inner() = next.0,
        }
    }

    /// Replaces the configuration, or keeps the old one and says why (a
    /// new JWKS URL is fetched lazily: use [`Self::prepare`] to read it
    /// first).
    pub fn reload(&self, settings: &AuthSettings) -> Result<(), String> {
        let next = self.prepare(settings)?;
        self.install(next);
        Ok(())
    }

    fn active(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether authentication is on (any credential configured).
    pub fn enabled(&self) -> bool {
        self.active().enabled()
    }

    /// The principal making a call to `path`, or why it is refused.
    /// `Ok(None)`: no principal is attached (authentication off — the
    /// handler sees the anonymous principal — an open route, or the
    /// webhook left to check its own token).
    pub fn check(
        &self,
        path: &str,
        presented: Presented<'_>,
    ) -> Result<Option<Principal>, AuthError> {
        let active = self.active();
        if !active.enabled() {
            return Ok(None);
        }
        let access = table::required(path, active.reflection_open);
        if access == Access::Open || (active.optional && !presented.any()) {
            return Ok(None);
        }
        let principal = identify(&active, presented);
        match (access, principal) {
            (Access::Open, _) => Ok(None),
            (Access::Webhook, Ok(Some(p))) if p.may(Role::Operator) => Ok(Some(p)),
            // The webhook's own token (or a wrong one) is for the webhook
            // to judge; without one, an operator principal is required.
            (Access::Webhook, _) if active.webhook_token => Ok(None),
            (Access::Webhook, Ok(Some(p))) => Err(AuthError::Forbidden {
                principal: p,
                needed: Role::Operator,
            }),
            (_, Err(e)) => Err(e),
            (Access::Authenticated, Ok(None)) => Err(AuthError::AnyPrincipal),
            (_, Ok(None)) => Err(AuthError::Unauthenticated(NO_CREDENTIALS)),
            (Access::Authenticated, Ok(Some(p))) => Ok(Some(p)),
            (Access::Role(needed), Ok(Some(p))) if p.may(needed) => Ok(Some(p)),
            (Access::Role(needed), Ok(Some(p))) => Err(AuthError::Forbidden {
                principal: p,
                needed,
            }),
        }
    }
}

/// The principal the credentials name: `Ok(None)` when none were given.
fn identify(active: &Active, presented: Presented<'_>) -> Result<Option<Principal>, AuthError> {
    let Some(header) = presented.authorization else {
        return match presented.client_cert {
            Some(cert) => active
                .mtls
                .lookup(cert)
                .cloned()
                .map(Some)
                .ok_or(AuthError::Unauthenticated(UNKNOWN_CERT)),
            None => Ok(None),
        };
    };
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Unauthenticated(MALFORMED))?;
    if let Some(jwt) = active.jwt.as_ref().filter(|_| jwt::looks_like_jwt(token)) {
        return jwt
            .verify(token)
            .map(Some)
            .map_err(AuthError::Unauthenticated);
    }
    active
        .tokens
        .lookup(token)
        .cloned()
        .map(Some)
        .ok_or(AuthError::Unauthenticated(UNKNOWN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AuthMethod;

    fn with(subject: &str, roles: &[Role]) -> (String, TokenEntry) {
        token::generate(subject, roles.iter().copied().collect()).unwrap()
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    #[test]
    fn off_until_a_credential_is_configured() {
        let a = Authenticator::new(&AuthSettings::default()).unwrap();
        assert!(!a.enabled());
        let approve = "/verdict.v1.DecisionService/ApproveDecision";
        assert_eq!(a.check(approve, Presented::default()), Ok(None));
    }

    #[test]
    fn refusals_say_what_to_fix() {
        let (t, e) = with("vera", &[Role::Viewer]);
        let a = Authenticator::new(&AuthSettings {
            tokens: vec![e],
            ..AuthSettings::default()
        })
        .unwrap();
        let approve = "/verdict.v1.DecisionService/ApproveDecision";
        let none = a.check(approve, Presented::default()).unwrap_err();
        assert_eq!(none.code(), ErrorCode::Unauthenticated);
        assert!(none.to_string().contains("Bearer"));
        let basic = Presented {
            authorization: Some("Basic dXNlcjpwYXNz"),
            ..Presented::default()
        };
        assert_eq!(
            a.check(approve, basic),
            Err(AuthError::Unauthenticated(MALFORMED))
        );
        let wrong = bearer("vdt_nope");
        let wrong = Presented {
            authorization: Some(&wrong),
            ..Presented::default()
        };
        assert_eq!(
            a.check(approve, wrong),
            Err(AuthError::Unauthenticated(UNKNOWN))
        );
        let h = bearer(&t);
        let vera = Presented {
            authorization: Some(&h),
            ..Presented::default()
        };
        let denied = a.check(approve, vera).unwrap_err();
        assert_eq!(denied.code(), ErrorCode::PermissionDenied);
        assert_eq!(
            denied.to_string(),
            "vera lacks the approver role this call needs"
        );
        let get = "/verdict.v1.DecisionService/GetDecision";
        assert_eq!(a.check(get, vera).unwrap().unwrap().subject, "vera");
        assert_eq!(
            a.check("/grpc.health.v1.Health/Check", Presented::default()),
            Ok(None)
        );
    }

    #[test]
    fn a_reload_adds_and_revokes_and_a_bad_one_keeps_the_old() {
        let (t1, e1) = with("one", &[Role::Viewer]);
        let (t2, e2) = with("two", &[Role::Viewer]);
        let get = "/verdict.v1.DecisionService/GetDecision";
        let a = Authenticator::new(&AuthSettings {
            tokens: vec![e1.clone()],
            ..AuthSettings::default()
        })
        .unwrap();
        let h1 = bearer(&t1);
        let h2 = bearer(&t2);
        let p1 = Presented {
            authorization: Some(&h1),
            ..Presented::default()
        };
        let p2 = Presented {
            authorization: Some(&h2),
            ..Presented::default()
        };
        assert!(a.check(get, p1).is_ok() && a.check(get, p2).is_err());
        a.reload(&AuthSettings {
            tokens: vec![e2.clone()],
            ..AuthSettings::default()
        })
        .unwrap();
        assert!(a.check(get, p1).is_err() && a.check(get, p2).is_ok());
        let broken = TokenEntry {
            sha256: "x".into(),
            ..e1
        };
        assert!(
            a.reload(&AuthSettings {
                tokens: vec![broken],
                ..AuthSettings::default()
            })
            .is_err()
        );
        assert!(a.check(get, p2).is_ok(), "the old configuration stays");
    }

    #[test]
    fn a_mapped_client_certificate_is_a_principal_and_a_bearer_token_wins() {
        let (t, e) = with("vera", &[Role::Viewer]);
        let a = Authenticator::new(&AuthSettings {
            tokens: vec![e],
            mtls: vec![MtlsEntry {
                cert: "CN=alice".parse().unwrap(),
                subject: None,
                roles: [Role::Approver].into_iter().collect(),
            }],
            ..AuthSettings::default()
        })
        .unwrap();
        let approve = "/verdict.v1.DecisionService/ApproveDecision";
        let alice = ClientCert::with_names(vec![CertName::CommonName("alice".into())]);
        let p = a
            .check(
                approve,
                Presented {
                    client_cert: Some(&alice),
                    ..Presented::default()
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!((p.subject.as_str(), p.method), ("alice", AuthMethod::Mtls));
        let mallory = ClientCert::with_names(vec![CertName::CommonName("mallory".into())]);
        let unknown = Presented {
            client_cert: Some(&mallory),
            ..Presented::default()
        };
        assert_eq!(
            a.check(approve, unknown),
            Err(AuthError::Unauthenticated(UNKNOWN_CERT))
        );
        // A token with a certificate: the token decides (vera may not approve).
        let h = bearer(&t);
        let both = Presented {
            authorization: Some(&h),
            client_cert: Some(&alice),
        };
        assert_eq!(
            a.check(approve, both).unwrap_err().code(),
            ErrorCode::PermissionDenied
        );
    }

    #[test]
    fn the_webhook_takes_an_operator_or_leaves_its_token_to_itself() {
        let (t, e) = with("am", &[Role::Operator]);
        let (v, ev) = with("vera", &[Role::Viewer]);
        let path = "/api/v1/alertmanager";
        let settings = AuthSettings {
            tokens: vec![e, ev],
            ..AuthSettings::default()
        };
        let h = bearer(&t);
        let hv = bearer(&v);
        let op = Presented {
            authorization: Some(&h),
            ..Presented::default()
        };
        let viewer = Presented {
            authorization: Some(&hv),
            ..Presented::default()
        };
        let own = Presented {
            authorization: Some("Bearer webhook-secret"),
            ..Presented::default()
        };
        let a = Authenticator::new(&settings).unwrap();
        assert_eq!(a.check(path, op).unwrap().unwrap().subject, "am");
        assert!(a.check(path, own).is_err(), "no webhook token configured");
        assert_eq!(
            a.check(path, viewer).unwrap_err().code(),
            ErrorCode::PermissionDenied
        );
        let a = Authenticator::new(&AuthSettings {
            webhook_token: true,
            ..settings
        })
        .unwrap();
        assert_eq!(a.check(path, own), Ok(None), "the webhook judges its token");
    }
}

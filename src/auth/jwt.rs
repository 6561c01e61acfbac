//! OIDC / JWT bearer tokens: `Authorization: Bearer <JWT>` checked against
//! the keys of a JWKS file or URL ([`super::jwks`]), with the issuer, the audience, `exp` and `nbf`
//! (with a small leeway) enforced, and the subject and groups read from
//! configurable claims; groups map to roles by configuration.
//!
//! **Algorithm confusion is impossible by construction**: only asymmetric
//! algorithms may be allowed (RS*, PS*, ES*, EdDSA — `none` does not even
//! parse and HS* is refused when the configuration is read), symmetric
//! (`kty: oct`) keys in the JWKS are refused, and every key is typed by
//! its family, so a token "HS256-signed with the public key" finds no key
//! that could check it. A token's `alg` must be in the allowlist *and*
//! match the family of the key that checks it.

use crate::domain::{AuthMethod, Principal, Role};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::jwks::RemoteJwks;

/// Default allowlist: the asymmetric algorithms identity providers use.
pub const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];

/// Default leeway for `exp` and `nbf`: clocks of the identity provider
/// and of verdict may disagree a little.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Largest leeway: more would keep an expired token alive for long.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Largest accepted JWKS (file or fetched body): a real one holds a
/// handful of keys.
pub(super) const MAX_JWKS_BYTES: u64 = 1 << 20;

/// One group → roles mapping (`[[auth_jwt_group_roles]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRoles {
    /// A value of the groups claim.
    pub group: String,
    /// The roles a principal in that group holds.
    pub roles: BTreeSet<Role>,
}

/// The JWT settings, as the config file gives them (`auth_jwt_*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwtSettings {
    /// The JWKS file (`{"keys": [...]}`), read at start and on reload.
    /// Exactly one of this and `jwks_url`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The JWKS URL, fetched at start and refreshed ([`super::jwks`]).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the keys of `jwks_url` are refetched.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// The only accepted `iss`.
    pub issuer: String,
    /// The `aud` a token must carry.
    pub audience: String,
    /// The accepted algorithms (asymmetric only).
    pub algorithms: Vec<String>,
    /// Leeway for `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// The claim naming the principal.
    pub subject_claim: String,
    /// The claim listing the principal's groups (an array of strings, or
    /// one string).
    pub groups_claim: String,
    /// Which groups hold which roles.
    pub group_roles: Vec<GroupRoles>,
}

fn default_refresh() -> Duration {
    super::jwks::DEFAULT_REFRESH
}

/// One usable key: typed, with the algorithms it may check.
pub struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// Why a JWT was refused: a short reason for a person, which never says
/// how close a forgery came (no "signature almost matched").
pub type Refusal = &'static str;

const MALFORMED: Refusal = "the bearer token is not a well-formed JWT";
const ALGORITHM: Refusal = "the JWT's algorithm is not accepted here (asymmetric algorithms only)";
const NO_KEY: Refusal = "the JWT is not signed by a key this server trusts";
const EXPIRED: Refusal = "the JWT has expired: get a fresh one from your identity provider";
const NOT_YET: Refusal = "the JWT is not valid yet (nbf): check the clocks";
const ISSUER: Refusal = "the JWT was issued by another issuer than this server trusts";
const AUDIENCE: Refusal = "the JWT is for another audience than this server";
const CLAIMS: Refusal = "the JWT lacks a required claim (exp, iss, aud or the subject)";

/// A checked JWT configuration.
#[derive(Debug)]
pub struct JwtVerifier {
    keys: Keys,
    allowed: Vec<Algorithm>,
    issuer: String,
    audience: String,
    leeway: u64,
    subject_claim: String,
    groups_claim: String,
    group_roles: Vec<GroupRoles>,
}

/// Where the keys come from.
#[derive(Debug)]
enum Keys {
    /// Read from the file once per (re)load.
    Fixed(Arc<Vec<Key>>),
    /// Fetched from a URL and refreshed in place.
    Remote(Arc<RemoteJwks>),
}

impl JwtVerifier {
    /// Reads the JWKS file, or sets up the JWKS URL's cache (empty until
    /// [`Self::fetch`]), and checks the settings; an error names what to
    /// fix. A URL cache of `previous` with the same URL is kept, keys
    /// and all.
    pub fn new(s: &JwtSettings, previous: Option<&JwtVerifier>) -> Result<Self, String> {
        match (&s.jwks_file, &s.jwks_url) {
            (Some(file), None) => {
                let size = std::fs::metadata(file)
                    .map_err(|e| format!("auth_jwt_jwks_file {}: {e}", file.display()))?
                    .len();
                if size > MAX_JWKS_BYTES {
                    return Err(format!(
                        "auth_jwt_jwks_file {}: larger than {MAX_JWKS_BYTES} bytes",
                        file.display()
                    ));
                }
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("auth_jwt_jwks_file {}: {e}", file.display()))?;
                Self::from_jwks(s, &text).map_err(|e| format!("auth_jwt ({}): {e}", file.display()))
            }
            (None, Some(url)) => {
                let allowed = check_settings(s)?;
                let reused = previous.and_then(|p| match &p.keys {
                    Keys::Remote(r) if r.serves(url, s.jwks_refresh, &allowed) => Some(r.clone()),
                    _ => None,
                });
                let remote = match reused {
                    Some(r) => r,
                    None => Arc::new(RemoteJwks::new(url, s.jwks_refresh, &allowed)?),
                };
                Ok(Self::with_keys(s, allowed, Keys::Remote(remote)))
            }
            _ => Err("give exactly one of auth_jwt_jwks_file and auth_jwt_jwks_url".into()),
        }
    }

    /// [`Self::new`] with the JWKS given as text.
    pub fn from_jwks(s: &JwtSettings, jwks: &str) -> Result<Self, String> {
        let allowed = check_settings(s)?;
        let keys = parse_keys(jwks, &allowed)?;
        Ok(Self::with_keys(s, allowed, Keys::Fixed(Arc::new(keys))))
    }

    fn with_keys(s: &JwtSettings, allowed: Vec<Algorithm>, keys: Keys) -> Self {
        JwtVerifier {
            keys,
            allowed,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            leeway: s.leeway_secs,
            subject_claim: s.subject_claim.clone(),
            groups_claim: s.groups_claim.clone(),
            group_roles: s.group_roles.clone(),
        }
    }

    /// For a JWKS URL whose keys were never fetched: fetches them now (at
    /// start, and on a reload that changed the URL), so a URL that cannot
    /// be read is refused with the reason. Otherwise nothing.
    pub async fn fetch(&self) -> Result<(), String> {
        match &self.keys {
            Keys::Remote(r) if !r.fetched() => r.fetch().await.map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The principal a JWT names, or why it is refused. The signature is
    /// checked before any claim is trusted.
    pub fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `alg: none` and unknown algorithms fail to parse.
            jsonwebtoken::errors::ErrorKind::Json(_) => ALGORITHM,
            _ => MALFORMED,
        })?;
        if !self.allowed.contains(&header.alg) {
            return Err(ALGORITHM);
        }
        let keys = match &self.keys {
            Keys::Fixed(k) => k.clone(),
            Keys::Remote(r) => {
                let keys = r.keys();
                let unknown = header
                    .kid
                    .as_ref()
                    .is_some_and(|kid| !keys.iter().any(|k| k.kid.as_ref() == Some(kid)));
                r.poke(unknown);
                keys
            }
        };
        let candidates = keys.iter().filter(|k| {
            k.algorithms.contains(&header.alg)
                && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        });
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        for key in candidates {
            use jsonwebtoken::errors::ErrorKind as K;
            let refusal =
                match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
                    Ok(data) => return self.principal(&data.claims),
                    // Another key may have signed it.
                    Err(e) if matches!(e.kind(), K::InvalidSignature) => continue,
                    // Only a matching signature reaches the claims: these say
                    // the token is genuine but unusable here.
                    Err(e) => match e.kind() {
                        K::ExpiredSignature => EXPIRED,
                        K::ImmatureSignature => NOT_YET,
                        K::InvalidIssuer => ISSUER,
                        K::InvalidAudience => AUDIENCE,
                        K::MissingRequiredClaim(_) => CLAIMS,
                        _ => MALFORMED,
                    },
                };
            return Err(refusal);
        }
        Err(NO_KEY)
    }

    /// The principal from verified claims.
    fn principal(&self, claims: &serde_json::Value) -> Result<Principal, Refusal> {
        let subject = claims
            .get(&self.subject_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.trim().is_empty() && !s.chars().any(char::is_control))
            .ok_or(CLAIMS)?;
        let groups: Vec<&str> = match claims.get(&self.groups_claim) {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|g| g.as_str()).collect(),
            Some(serde_json::Value::String(g)) => vec![g.as_str()],
            _ => Vec::new(),
        };
        let roles = self
            .group_roles
            .iter()
            .filter(|m| groups.contains(&m.group.as_str()))
            .flat_map(|m| m.roles.iter().copied())
            .collect();
        Ok(Principal {
            subject: subject.to_owned(),
            method: AuthMethod::Jwt,
            roles,
        })
    }
}

/// Checks the settings besides the keys; the allowlist.
fn check_settings(s: &JwtSettings) -> Result<Vec<Algorithm>, String> {
    if s.issuer.trim().is_empty() {
        return Err("auth_jwt_issuer must be set".into());
    }
    if s.audience.trim().is_empty() {
        return Err("auth_jwt_audience must be set".into());
    }
    if s.leeway_secs > MAX_LEEWAY_SECS {
        return Err(format!(
            "auth_jwt_leeway must be at most {MAX_LEEWAY_SECS}s (it extends every token's life)"
        ));
    }
    if s.subject_claim.is_empty() || s.groups_claim.is_empty() {
        return Err("auth_jwt_subject_claim and auth_jwt_groups_claim must be set".into());
    }
    for g in &s.group_roles {
        if g.group.is_empty() || g.roles.is_empty() {
            return Err(format!(
                "auth_jwt_group_roles {:?}: give a group and at least one role",
                g.group
            ));
        }
    }
    let allowed = s
        .algorithms
        .iter()
        .map(|a| parse_algorithm(a))
        .collect::<Result<Vec<_>, _>>()?;
    if allowed.is_empty() {
        return Err("auth_jwt_algorithms: give at least one algorithm".into());
    }
    Ok(allowed)
}

/// The usable keys of a JWKS text, typed by the same rules for a file and
/// a URL; an error when it is not a JWKS or holds no usable key.
pub(super) fn parse_keys(jwks: &str, allowed: &[Algorithm]) -> Result<Vec<Key>, String> {
    let set: JwkSet =
        serde_json::from_str(jwks).map_err(|e| format!("not a JWKS ({{\"keys\": [...]}}): {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        keys.push(typed_key(jwk, allowed).map_err(|e| format!("keys[{i}]: {e}"))?);
    }
    keys.retain(|k| !k.algorithms.is_empty());
    if keys.is_empty() {
        return Err("the JWKS holds no key usable with auth_jwt_algorithms".into());
    }
    Ok(keys)
}

/// Whether a bearer token is shaped like a JWT (three base64url parts), so
/// it is checked as one rather than looked up as a static token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

/// An algorithm of the allowlist; symmetric ones are refused by name.
fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = name
        .trim()
        .parse()
        .map_err(|_| format!("auth_jwt_algorithms: unknown algorithm {name:?}"))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(format!(
            "auth_jwt_algorithms: {name} is symmetric; only asymmetric algorithms are accepted"
        )),
        a => Ok(a),
    }
}

/// A JWK as a typed key with the allowed algorithms it can check.
fn typed_key(jwk: &Jwk, allowed: &[Algorithm]) -> Result<Key, String> {
    use Algorithm as A;
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            &[A::RS256, A::RS384, A::RS512, A::PS256, A::PS384, A::PS512]
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[A::ES256],
            EllipticCurve::P384 => &[A::ES384],
            _ => return Err("unsupported elliptic curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => &[A::EdDSA],
            _ => return Err("unsupported OKP curve (Ed25519 only)".into()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (kty: oct) keys are refused: asymmetric keys only".into());
        }
    };
    // A key that names its algorithm checks only that one.
    let named = match jwk.common.key_algorithm {
        Some(ka) => Some(
            ka.to_string()
                .parse::<Algorithm>()
                .map_err(|_| format!("alg {ka} is not a signature algorithm"))?,
        ),
        None => None,
    };
    let algorithms = family
        .iter()
        .copied()
        .filter(|a| allowed.contains(a) && named.is_none_or(|n| n == *a))
        .collect();
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    })
}

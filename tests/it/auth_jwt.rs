//! OIDC / JWT bearer tokens (issue 13) against a JWKS file, with keys made
//! in the test (ring: ES256 and EdDSA): a valid token works with the roles
//! its groups map to; expired, not-yet-valid, wrong issuer or audience,
//! `alg: none`, HS256 signed with the public key and badly signed tokens
//! are UNAUTHENTICATED. And (issue 14) a call the edge refuses leaves
//! exactly one refusal in the audit trail and changes nothing.

use crate::common::{self, IncidentBuilder, TestServer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{self, KeyPair};
use serde_json::json;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::Code;
use tonic::metadata::MetadataValue;
use verdict::auth::GroupRoles;
use verdict::config::Config;
use verdict::domain::Role;
use verdict::proto as pb;
use verdict::proto::audit_service_client::AuditServiceClient;

pub(crate) const ISSUER: &str = "https://idp.example.test";
pub(crate) const AUDIENCE: &str = "verdict";

/// base64url without padding (JWK coordinates, the `none` token).
pub(crate) fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The identity provider of a test: an ES256 and an Ed25519 key, their
/// JWKS in a file, and a way to mint tokens.
struct Idp {
    es256: EncodingKey,
    ed25519: EncodingKey,
    /// The raw public EC point, the "secret" of an algorithm-confusion
    /// attack.
    ec_public: Vec<u8>,
    jwks: String,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Idp {
    fn new() -> Idp {
        let rng = ring::rand::SystemRandom::new();
        let ec = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let ec_pair = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ec.as_ref(),
            &rng,
        )
        .unwrap();
        let point = ec_pair.public_key().as_ref().to_vec(); // 0x04 || x || y
        let ed = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_pair = signature::Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap();
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
             "x": b64(&point[1..33]), "y": b64(&point[33..65])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "use": "sig",
             "x": b64(ed_pair.public_key().as_ref())},
        ]})
        .to_string();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, &jwks).unwrap();
        Idp {
            es256: EncodingKey::from_ec_der(ec.as_ref()),
            ed25519: EncodingKey::from_ed_der(ed.as_ref()),
            ec_public: point,
            jwks,
            _dir: dir,
            path,
        }
    }

    fn config(&self) -> Config {
        Config {
            auth_jwt_jwks_file: Some(self.path.clone()),
            auth_jwt_issuer: Some(ISSUER.into()),
            auth_jwt_audience: Some(AUDIENCE.into()),
            auth_jwt_group_roles: vec![
                GroupRoles {
                    group: "sre".into(),
                    roles: [Role::Operator].into_iter().collect(),
                },
                GroupRoles {
                    group: "sre-leads".into(),
                    roles: [Role::Approver].into_iter().collect(),
                },
                GroupRoles {
                    group: "everyone".into(),
                    roles: [Role::Viewer].into_iter().collect(),
                },
            ],
            ..common::config(None)
        }
    }

    /// Claims of `sub` in `groups`, valid for the next ten minutes.
    fn claims(sub: &str, groups: &[&str]) -> serde_json::Value {
        let now = now();
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": groups,
               "iat": now, "nbf": now, "exp": now + 600})
    }

    fn es256(&self, claims: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("ec1".into());
        jsonwebtoken::encode(&h, claims, &self.es256).unwrap()
    }

    fn eddsa(&self, claims: &serde_json::Value) -> String {
        let h = Header::new(Algorithm::EdDSA);
        jsonwebtoken::encode(&h, claims, &self.ed25519).unwrap()
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn bearer<T>(jwt: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    let v = MetadataValue::from_str(&format!("Bearer {jwt}")).unwrap();
    r.metadata_mut().insert("authorization", v);
    r
}

pub(crate) fn create() -> pb::CreateIncidentRequest {
    IncidentBuilder::alerting("t", "PodCrashLooping", "checkout").request()
}

#[tokio::test]
async fn a_valid_jwt_works_with_the_roles_of_its_groups() {
    let idp = Idp::new();
    let mut s = TestServer::start(idp.config()).await;
    let sre = idp.es256(&Idp::claims("olga", &["sre", "unmapped"]));
    let incident = s
        .incidents
        .create_incident(bearer(&sre, create()))
        .await
        .expect("an operator by its group")
        .into_inner()
        .incident
        .unwrap();
    let viewer = idp.eddsa(&Idp::claims("vic", &["everyone"]));
    let got = s
        .incidents
        .get_incident(bearer(
            &viewer,
            pb::GetIncidentRequest {
                id: incident.id.clone(),
            },
        ))
        .await
        .expect("a viewer (EdDSA) reads");
    assert_eq!(got.into_inner().incident.unwrap().id, incident.id);
    let e = s
        .incidents
        .create_incident(bearer(&viewer, create()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    assert!(e.message().contains("vic lacks the operator role"));
}

#[tokio::test]
async fn bad_jwts_are_unauthenticated() {
    let idp = Idp::new();
    let mut s = TestServer::start(idp.config()).await;
    let claims = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = Idp::claims("olga", &["sre"]);
        edit(&mut c);
        c
    };
    let now = now();
    let other = Idp::new();
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(Idp::claims("olga", &["sre"]).to_string().as_bytes())
    );
    let hs256_public = |secret: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Idp::claims("olga", &["sre"]),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let mut tampered = idp.es256(&Idp::claims("olga", &["everyone"]));
    // Swap in claims with more groups, keeping the old signature.
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(Idp::claims("olga", &["sre-leads"]).to_string().as_bytes()),
        parts[2]
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired beyond the leeway",
            idp.es256(&claims(&|c| c["exp"] = json!(now - 120))),
            "expired",
        ),
        (
            "not yet valid",
            idp.es256(&claims(&|c| c["nbf"] = json!(now + 300))),
            "not valid yet",
        ),
        (
            "wrong issuer",
            idp.es256(&claims(&|c| c["iss"] = json!("https://evil.test"))),
            "issuer",
        ),
        (
            "wrong audience",
            idp.es256(&claims(&|c| c["aud"] = json!("another-service"))),
            "audience",
        ),
        (
            "no exp",
            idp.es256(&claims(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            "claim",
        ),
        ("alg none", none, "algorithm"),
        (
            "HS256 with the public key",
            hs256_public(&idp.ec_public),
            "algorithm",
        ),
        (
            "HS256 with the JWKS text",
            hs256_public(idp.jwks.as_bytes()),
            "algorithm",
        ),
        (
            "signed by another key",
            other.es256(&Idp::claims("olga", &["sre"])),
            "not signed by a key",
        ),
        (
            "EdDSA by another key",
            other.eddsa(&Idp::claims("olga", &["sre"])),
            "not signed by a key",
        ),
        (
            "claims swapped under a signature",
            tampered,
            "not signed by a key",
        ),
        ("garbage", "eyJ.not.jwt".into(), "JWT"),
    ];
    for (what, jwt, says) in cases {
        let e = s
            .incidents
            .create_incident(bearer(&jwt, create()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {}", e.message());
        assert!(e.message().contains(says), "{what}: {}", e.message());
    }
    // Within the leeway, an expired token still works.
    let late = idp.es256(&claims(&|c| c["exp"] = json!(now - 5)));
    s.incidents
        .create_incident(bearer(&late, create()))
        .await
        .expect("within the leeway");
}

#[test]
fn symmetric_algorithms_and_keys_are_refused_in_the_configuration() {
    let idp = Idp::new();
    let hs = Config {
        auth_jwt_algorithms: vec!["ES256".into(), "HS256".into()],
        ..idp.config()
    };
    let e = hs.validate().unwrap_err().to_string();
    assert!(e.contains("symmetric"), "{e}");
    std::fs::write(
        &idp.path,
        json!({"keys": [{"kty": "oct", "k": b64(b"secret")}]}).to_string(),
    )
    .unwrap();
    let e = idp.config().validate().unwrap_err().to_string();
    assert!(e.contains("kty: oct"), "{e}");
    let idp = Idp::new();
    let no_issuer = Config {
        auth_jwt_issuer: None,
        ..idp.config()
    };
    let e = no_issuer.validate().unwrap_err().to_string();
    assert!(e.contains("auth_jwt_issuer"), "{e}");
    let lax = Config {
        auth_jwt_leeway: std::time::Duration::from_secs(3600),
        ..idp.config()
    };
    let e = lax.validate().unwrap_err().to_string();
    assert!(e.contains("auth_jwt_leeway"), "{e}");
}

#[tokio::test]
async fn a_refused_approval_leaves_one_refusal_and_changes_nothing() {
    let idp = Idp::new();
    let mut s = TestServer::start(idp.config()).await;
    let sre = idp.es256(&Idp::claims("olga", &["sre", "everyone"]));
    let incident = s
        .incidents
        .create_incident(bearer(&sre, create()))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let d = s
        .decisions
        .get_or_create_decision(bearer(
            &sre,
            pb::GetOrCreateDecisionRequest {
                incident_id: incident.id,
                wait: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(d.state(), pb::DecisionState::Ready);
    let mut audit = AuditServiceClient::new(s.channel.clone());
    let trail = |audit: &mut AuditServiceClient<tonic::transport::Channel>| {
        let mut audit = audit.clone();
        let sre = sre.clone();
        async move {
            audit
                .list_audit_events(bearer(&sre, pb::ListAuditEventsRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .events
        }
    };
    let before = trail(&mut audit).await;
    let approve = pb::ApproveDecisionRequest {
        token: d.token.clone(),
        actor: "olga".into(),
        expected_version: d.version,
        ..Default::default()
    };
    let e = s
        .decisions
        .approve_decision(bearer(&sre, approve))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let after = trail(&mut audit).await;
    assert_eq!(
        after.len(),
        before.len() + 1,
        "exactly one event: {after:?}"
    );
    let refusal = &after[before.len()];
    assert_eq!(refusal.action, "refused");
    assert_eq!(refusal.outcome, "PERMISSION_DENIED");
    assert_eq!(refusal.subject, "olga");
    assert_eq!(refusal.auth_method, "jwt");
    assert_eq!(refusal.rpc, "ApproveDecision");
    assert!(refusal.detail.contains("approver"), "{}", refusal.detail);
    let now = s
        .decisions
        .get_decision(bearer(
            &sre,
            pb::GetDecisionRequest {
                token: d.token.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(now.state(), pb::DecisionState::Ready, "nothing changed");
    assert_eq!(now.version, d.version);
    assert!(now.approvals.is_empty());

    // Without credentials: refused as UNAUTHENTICATED, recorded too.
    let e = s
        .decisions
        .approve_decision(pb::ApproveDecisionRequest {
            token: d.token.clone(),
            expected_version: d.version,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let last = trail(&mut audit).await;
    assert_eq!(last.len(), after.len() + 1);
    let anon = &last[after.len()];
    assert_eq!(
        (anon.outcome.as_str(), anon.subject.as_str()),
        ("UNAUTHENTICATED", "unauthenticated")
    );
    // A refused read is not a refusal of a change: not recorded.
    let _ = s
        .decisions
        .get_decision(pb::GetDecisionRequest { token: d.token })
        .await
        .unwrap_err();
    assert_eq!(trail(&mut audit).await.len(), last.len());
}

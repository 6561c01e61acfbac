//! OIDC / JWT bearer tokens checked against a JWKS served over HTTP
//! (`auth_jwt_jwks_url`, issue 13 item 5) by a fake identity provider the
//! test starts (axum, Keycloak's path shape): a token signed by a served
//! key is accepted; a rotated key is fetched on the first token naming its
//! unknown `kid`, without a restart; a garbage, keyless or oversize JWKS on
//! refresh is refused and the old keys still work; an identity provider
//! that cannot be read at start fails the start, naming the URL.

use crate::auth_jwt::{AUDIENCE, ISSUER, b64, bearer, create, now};
use crate::common::{self, TestServer};
use axum::extract::State;
use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{self, KeyPair};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use verdict::auth::GroupRoles;
use verdict::config::Config;
use verdict::domain::Role;

const CERTS: &str = "/realms/test/protocol/openid-connect/certs";

/// An ES256 signing key with its public JWK under `kid`.
struct Key {
    kid: &'static str,
    signing: EncodingKey,
    jwk: Value,
}

impl Key {
    fn new(kid: &'static str) -> Key {
        let rng = ring::rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        Key {
            kid,
            signing: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                        "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
        }
    }

    /// A token of `sub` (group `sre`: operator), valid for ten minutes.
    fn token(&self, sub: &str) -> String {
        let now = now();
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": ["sre"],
                            "iat": now, "nbf": now, "exp": now + 600});
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.into());
        jsonwebtoken::encode(&h, &claims, &self.signing).unwrap()
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

#[derive(Clone)]
struct Served {
    answer: Arc<Mutex<(StatusCode, String)>>,
    /// Requests answered so far.
    count: watch::Sender<usize>,
}

/// The fake identity provider: answers `GET CERTS` with whatever the test
/// set, and counts the requests.
struct FakeIdp {
    addr: std::net::SocketAddr,
    served: Served,
    task: tokio::task::JoinHandle<()>,
}

async fn certs(State(s): State<Served>) -> (StatusCode, String) {
    let answer = s.answer.lock().unwrap().clone();
    s.count.send_modify(|n| *n += 1);
    answer
}

impl FakeIdp {
    async fn start(status: StatusCode, body: String) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Served {
            answer: Arc::new(Mutex::new((status, body))),
            count: watch::Sender::new(0),
        };
        let app = axum::Router::new()
            .route(CERTS, axum::routing::get(certs))
            .with_state(served.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeIdp { addr, served, task }
    }

    fn url(&self) -> String {
        format!("http://{}{CERTS}", self.addr)
    }

    fn serve(&self, body: String) {
        *self.served.answer.lock().unwrap() = (StatusCode::OK, body);
    }

    fn fetches(&self) -> usize {
        *self.served.count.borrow()
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(url: String, refresh: Option<Duration>) -> Config {
    let mut c = Config {
        auth_jwt_jwks_url: Some(url),
        auth_jwt_issuer: Some(ISSUER.into()),
        auth_jwt_audience: Some(AUDIENCE.into()),
        auth_jwt_group_roles: vec![GroupRoles {
            group: "sre".into(),
            roles: [Role::Operator].into_iter().collect(),
        }],
        ..common::config(None)
    };
    if let Some(r) = refresh {
        c.auth_jwt_jwks_refresh = r;
    }
    c
}

async fn creates(s: &mut TestServer, token: &str) -> Result<(), tonic::Status> {
    s.incidents
        .create_incident(bearer(token, create()))
        .await
        .map(|_| ())
}

/// Polls (every 20 ms, up to 30 s) until `done`; each round first calls
/// `round`, which may assert.
async fn poll_until<F, R>(what: &str, mut round: R, mut done: F)
where
    R: AsyncFnMut(),
    F: FnMut() -> bool,
{
    for _ in 0..1500 {
        round().await;
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn a_jwt_signed_by_a_key_the_url_serves_is_accepted() {
    let (k1, stranger) = (Key::new("k1"), Key::new("k1"));
    let idp = FakeIdp::start(StatusCode::OK, jwks(&[&k1])).await;
    let mut s = TestServer::start(config(idp.url(), None)).await;
    assert_eq!(idp.fetches(), 1, "fetched once before serving");
    creates(&mut s, &k1.token("olga"))
        .await
        .expect("a token signed by the served key");
    // Same kid, another key: the signature decides.
    let e = creates(&mut s, &stranger.token("mallory"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{}", e.message());
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_its_unknown_kid_without_a_restart() {
    let (k1, k2, k3) = (Key::new("k1"), Key::new("k2"), Key::new("k3"));
    let idp = FakeIdp::start(StatusCode::OK, jwks(&[&k1])).await;
    // The periodic refresh is the default ten minutes: only the unknown
    // kid can make verdict ask again within this test.
    let mut s = TestServer::start(config(idp.url(), None)).await;
    // The provider rotates: it publishes k2 beside k1.
    idp.serve(jwks(&[&k1, &k2]));
    let token = k2.token("olga");
    let accepted = Arc::new(Mutex::new(false));
    poll_until(
        "a token signed with the new key is accepted",
        async || match creates(&mut s, &token).await {
            Ok(()) => *accepted.lock().unwrap() = true,
            Err(e) => assert_eq!(e.code(), tonic::Code::Unauthenticated, "{}", e.message()),
        },
        || *accepted.lock().unwrap(),
    )
    .await;
    assert_eq!(
        idp.fetches(),
        2,
        "one refetch, however many calls waited for it"
    );
    creates(&mut s, &k1.token("olga"))
        .await
        .expect("k1 still served");
    // A flood of tokens naming kids nobody serves asks the provider
    // nothing more: an unknown kid refetches at most once a minute.
    for _ in 0..20 {
        let e = creates(&mut s, &k3.token("mallory")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
    creates(&mut s, &k2.token("olga")).await.expect("k2 stays");
    assert_eq!(
        idp.fetches(),
        2,
        "unknown kids refetch at most once a minute"
    );
}

#[tokio::test]
async fn a_garbage_keyless_or_oversize_jwks_on_refresh_keeps_the_old_keys() {
    let k1 = Key::new("k1");
    let idp = FakeIdp::start(StatusCode::OK, jwks(&[&k1])).await;
    // A one-second refresh, driven by the checks themselves.
    let mut s = TestServer::start(config(idp.url(), Some(Duration::from_secs(1)))).await;
    let token = k1.token("olga");
    // Valid JSON padded past 1 MiB: refused for its size alone.
    let oversize = format!("{}{}", jwks(&[&k1]), " ".repeat(1 << 20));
    for bad in [
        "<html>502 Bad Gateway</html>".to_owned(),
        r#"{"keys": []}"#.to_owned(),
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}"#.to_owned(),
        oversize,
    ] {
        idp.serve(bad);
        // Two refreshes of the bad JWKS answered: the first has been
        // judged (one fetch at a time) while the old key kept working.
        let target = idp.fetches() + 2;
        poll_until(
            "two refreshes of a bad JWKS",
            async || {
                creates(&mut s, &token)
                    .await
                    .expect("the old key still works")
            },
            || idp.fetches() >= target,
        )
        .await;
        creates(&mut s, &token)
            .await
            .expect("the old key still works");
    }
}

#[tokio::test]
async fn a_jwks_url_that_cannot_be_read_fails_startup_naming_it() {
    // Nobody listens there.
    let down = format!("http://127.0.0.1:{}{CERTS}", common::free_port());
    let e = verdict::server::start(config(down.clone(), None), Default::default())
        .await
        .err()
        .expect("startup fails");
    let why = format!("{e:#}");
    assert!(
        why.contains(&down) && why.contains("cannot be read"),
        "{why}"
    );
    // A provider answering an error, or something that is not a JWKS.
    let idp = FakeIdp::start(StatusCode::NOT_FOUND, "no such realm".into()).await;
    let e = verdict::server::start(config(idp.url(), None), Default::default())
        .await
        .err()
        .expect("startup fails");
    let why = format!("{e:#}");
    assert!(why.contains(&idp.url()) && why.contains("404"), "{why}");
    idp.serve("{}".into());
    let e = verdict::server::start(config(idp.url(), None), Default::default())
        .await
        .err()
        .expect("startup fails");
    assert!(format!("{e:#}").contains("not a JWKS"), "{e:#}");
    // A file and a URL at once, or a URL that is not http(s): refused.
    let both = Config {
        auth_jwt_jwks_file: Some("/etc/verdict/jwks.json".into()),
        ..config(idp.url(), None)
    };
    let e = both.validate().unwrap_err();
    assert!(e.to_string().contains("exactly one"), "{e}");
    let e = config("file:///etc/jwks.json".into(), None)
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("auth_jwt_jwks_url"), "{e}");
}

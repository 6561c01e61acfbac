//! Opening a channel to a verdict server, in plain text (`http://`) or
//! over TLS (`https://`, optionally with a client certificate for mTLS).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The largest PEM file the client reads.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// TLS options of a client (`--ca-cert`, `--client-cert`, `--client-key`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientTls {
    /// CA that signs the server's certificate; None: the public web roots.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key (mTLS); both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl ClientTls {
    fn any(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// The tonic TLS configuration these options describe.
    fn config(&self) -> anyhow::Result<ClientTlsConfig> {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_cert {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read_pem(ca, "--ca-cert")?)),
            None => config.with_webpki_roots(),
        };
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(
                    read_pem(cert, "--client-cert")?,
                    read_pem(key, "--client-key")?,
                ));
            }
            (None, None) => {}
            _ => anyhow::bail!("--client-cert and --client-key go together"),
        }
        Ok(config)
    }
}

/// A PEM file, bounded in size, named by its option in errors.
fn read_pem(path: &Path, option: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("{option}: cannot read {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_PEM_BYTES,
        "{option}: {} is not a PEM file (larger than {MAX_PEM_BYTES} bytes)",
        path.display()
    );
    anyhow::ensure!(
        String::from_utf8_lossy(&bytes).contains("-----BEGIN "),
        "{option}: {} is not PEM (no `-----BEGIN` line)",
        path.display()
    );
    Ok(bytes)
}

/// A server address and how to reach it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `http://HOST:PORT`, `https://HOST:PORT` or `HOST:PORT`.
    pub addr: String,
    pub tls: ClientTls,
}

impl Target {
    /// `addr` without TLS options (plain text, or the web roots for an
    /// `https://` address): the load generator's targets.
    #[cfg(feature = "bench")]
    pub(crate) fn plain(addr: &str) -> Target {
        Target {
            addr: addr.to_owned(),
            tls: ClientTls::default(),
        }
    }
}

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a channel to the server, eagerly, so an unreachable address fails
/// here with one clear line rather than inside the first RPC. Each call
/// opens its own HTTP/2 connection.
pub(crate) async fn connect(target: &Target) -> anyhow::Result<Channel> {
    let addr = &target.addr;
    // Accept `host:port` as well as a full URL; TLS options without a
    // scheme mean https.
    let url = if addr.contains("://") {
        addr.to_owned()
    } else if target.tls.any() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let https = url.starts_with("https://");
    anyhow::ensure!(
        https || !target.tls.any(),
        "--ca-cert/--client-cert need an https:// address (got {url})"
    );
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid server address {addr:?} (expected http://HOST:PORT)"))?
        .connect_timeout(CONNECT_TIMEOUT);
    if https {
        endpoint = endpoint
            .tls_config(target.tls.config()?)
            .with_context(|| format!("cannot use TLS towards {url}"))?;
    }
    // The connect timeout covers TCP only; this one also covers a server
    // that accepts but never completes the HTTP/2 handshake.
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(anyhow::anyhow!(
            "cannot connect to verdict at {url}: {}",
            root_cause(&e)
        )),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to verdict at {url}: no answer within {}",
            humantime::format_duration(CONNECT_TIMEOUT)
        )),
    }
}

/// The innermost cause of an error chain: for a failed connection that is
/// the OS error ("Connection refused"), not tonic's "transport error".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

//! Opening a channel to a verdict server.

use anyhow::Context;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a channel to the server, eagerly, so an unreachable address fails
/// here with one clear line rather than inside the first RPC. Each call
/// opens its own HTTP/2 connection.
pub(crate) async fn connect(addr: &str) -> anyhow::Result<Channel> {
    // Accept `host:port` as well as a full URL.
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid server address {addr:?} (expected http://HOST:PORT)"))?
        .connect_timeout(CONNECT_TIMEOUT);
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

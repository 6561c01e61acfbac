//! The accept loop's policy: the connections the server takes, and what it
//! does when accepting fails.
//!
//! - **A connection cap** ([`ConnectionLimit`]): at most `max` connections
//!   are open at once; beyond it the server stops accepting and further
//!   clients wait in the kernel's listen backlog until one closes. By
//!   default the cap sits below the process's open-file limit, so accepting
//!   cannot run the process out of descriptors (Redis, files and logs need
//!   theirs too).
//! - **Back-off on accept errors**: "too many open files" (EMFILE, ENFILE)
//!   and "no buffer space" persist until something closes, and retrying at
//!   once spun the accept loop at 100 % CPU (issue 12.7). Failures are
//!   retried after a delay doubling from [`BACKOFF_MIN`] to [`BACKOFF_MAX`],
//!   logged once when they start and once when accepting recovers.
//!   Errors that belong to one connection (reset or aborted before it was
//!   accepted) are skipped at once.
//!
//! Every accepted socket gets TCP_NODELAY (see `server::start`).

use futures::Stream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The first delay after a failed accept.
pub const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest delay between accept attempts while they fail.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Descriptors kept free for everything but connections (listener, runtime,
/// logs, rules files, the change feed), on top of the Redis pool's.
const RESERVED_FDS: usize = 32;
/// The least cap derived from a (very low) descriptor limit.
const MIN_DERIVED: usize = 8;
/// The cap when the descriptor limit cannot be read (not Linux).
const FALLBACK: usize = 10_000;

/// How many connections may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimit(pub usize);

impl ConnectionLimit {
    /// `configured`, or when 0 the open-file limit less the Redis pool and
    /// [`RESERVED_FDS`]. A configured cap above the limit is kept (the
    /// operator may raise the limit later) but warned about: at the limit,
    /// accepting backs off instead of spinning.
    pub fn resolve(configured: usize, redis_pool: u32) -> ConnectionLimit {
        let reserve = RESERVED_FDS + redis_pool as usize;
        let fd_limit = open_file_limit();
        if configured > 0 {
            if let Some(limit) = fd_limit
                && configured + reserve > limit
            {
                tracing::warn!(
                    max_connections = configured,
                    open_file_limit = limit,
                    "max_connections is above what the open-file limit allows; \
                     at the limit accepting backs off until connections close"
                );
            }
            return ConnectionLimit(configured);
        }
        ConnectionLimit(fd_limit.map_or(FALLBACK, |l| l.saturating_sub(reserve).max(MIN_DERIVED)))
    }
}

/// The soft open-file limit (`ulimit -n`), read from `/proc/self/limits`
/// (no unsafe `getrlimit` call); None where that file does not exist.
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&text)
}

fn parse_open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether an accept error concerns only the connection being accepted
/// (the next accept can succeed at once).
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The accepted connections of `listener`, at most `limit` open at once,
/// each holding its slot until it is dropped. Never yields an error: a
/// failing accept is retried (with back-off), not fatal to the server.
pub fn incoming(
    listener: TcpListener,
    limit: ConnectionLimit,
) -> impl Stream<Item = Result<Admitted, io::Error>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(limit.0.max(1)));
    async_stream::stream! {
        let mut backoff = BACKOFF_MIN;
        let mut failing = false;
        let mut full = false;
        loop {
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    // A new episode is logged only once the load has
                    // dropped well below the cap, not on every close.
                    if slots.available_permits() >= limit.0 / 10 {
                        full = false;
                    }
                    slot
                }
                Err(_) => {
                    if !full {
                        tracing::warn!(
                            max_connections = limit.0,
                            "connection cap reached: new clients wait until a connection closes"
                        );
                        full = true;
                    }
                    match slots.clone().acquire_owned().await {
                        Ok(slot) => slot,
                        Err(_) => break,
                    }
                }
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    if failing {
                        tracing::info!("accepting connections again");
                        failing = false;
                    }
                    backoff = BACKOFF_MIN;
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    yield Ok(Admitted { stream, _slot: slot });
                }
                Err(e) if per_connection(&e) => continue,
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            error = %e,
                            "accepting a connection failed; retrying with back-off (logged again when it recovers)"
                        );
                        failing = true;
                    }
                    drop(slot);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// An accepted connection holding its slot under the cap.
pub struct Admitted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Admitted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn the_open_file_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63465                63465                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_file_limit(limits), Some(1024));
        assert_eq!(
            parse_open_file_limit("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(parse_open_file_limit(""), None);
    }

    #[test]
    fn a_configured_cap_wins_and_zero_derives_one_below_the_limit() {
        assert_eq!(ConnectionLimit::resolve(500, 4), ConnectionLimit(500));
        if let Some(limit) = open_file_limit() {
            let derived = ConnectionLimit::resolve(0, 4).0;
            assert!(derived < limit, "{derived} < {limit}");
        }
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_until_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = Box::pin(incoming(listener, ConnectionLimit(1)));
        let _a = TcpStream::connect(addr).await.expect("connect a");
        let _b = TcpStream::connect(addr).await.expect("connect b");
        let first = accepted.next().await.expect("one").expect("ok");
        // The second waits for the first's slot.
        let second = futures::FutureExt::now_or_never(accepted.next());
        assert!(second.is_none(), "held back at the cap");
        drop(first);
        let second = accepted.next().await.expect("then the second");
        assert!(second.is_ok());
    }
}

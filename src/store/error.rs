//! `StoreError`, the store layer's one error type, and the rule that sorts a
//! Redis error into "try again later" ([`StoreError::Unavailable`]) or "this
//! will not get better by itself" ([`StoreError::Backend`]).
//!
//! Every variant keeps the error it came from as its `source()`, so a log
//! line or an `anyhow` chain shows what Redis (or serde) actually said. The
//! classification lives here, once, because both the gRPC code and the HTTP
//! status of a failed request follow from the variant: a replica still
//! loading its dataset, a failover in progress or a dropped connection must
//! answer UNAVAILABLE (callers retry), not INTERNAL.

use redis::{ErrorKind, ParsingError, RedisError, ServerErrorKind};
use thiserror::Error;

/// A boxed error, for the causes of a corrupt record (JSON or id parsing).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong talking to the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend cannot answer now and a retry later may succeed: it is
    /// unreachable, loading, failing over, or no pooled connection came in
    /// time.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Outage),
    /// A stored record does not decode: a bug or a foreign writer.
    #[error("corrupt record {key}: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: BoxError,
    },
    /// Any other backend error (a script error, a reply of the wrong shape).
    #[error("store error: {0}")]
    Backend(#[source] RedisError),
    /// The audit chain of `chain` moved under every attempt to append to it
    /// (many writers on one incident at once); nothing was written.
    #[error("audit chain {chain} is contended; nothing was written, retry")]
    AuditContended { chain: String },
    /// The configured Redis URL does not parse (at start-up, never later).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] RedisError),
}

impl StoreError {
    /// A short, bounded name of the failure's kind (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(Outage::Redis(_)) => "unavailable",
            StoreError::Unavailable(Outage::Connect(_)) => "connect",
            StoreError::Unavailable(Outage::PoolTimedOut) => "pool_timeout",
            StoreError::Unavailable(Outage::AllBroken) => "broken",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Backend(_) => "backend",
            StoreError::InvalidUrl(_) => "invalid_url",
            StoreError::AuditContended { .. } => "audit_contended",
        }
    }
}

/// Why the store is unavailable.
#[derive(Debug, Error)]
pub enum Outage {
    /// Redis answered with, or failed with, a transient error (see
    /// [`is_transient`]).
    #[error(transparent)]
    Redis(RedisError),
    /// The pool could not open a connection.
    #[error(transparent)]
    Connect(RedisError),
    /// No pooled connection became free within the pool's wait.
    #[error("no Redis connection became available in time")]
    PoolTimedOut,
    /// Every pooled connection was found broken at checkout.
    #[error("every pooled Redis connection is broken")]
    AllBroken,
}

impl StoreError {
    /// A record at `key` that does not decode.
    pub(crate) fn corrupt(key: &str, source: impl Into<BoxError>) -> Self {
        StoreError::Corrupt {
            key: key.to_owned(),
            source: source.into(),
        }
    }

    /// What kind of failure this is (see [`crate::error_code`]): an
    /// unreachable or recovering store is worth retrying; a bad URL is a
    /// setting to fix; anything else is a bug or foreign data.
    pub fn code(&self) -> crate::error_code::ErrorCode {
        use crate::error_code::ErrorCode;
        match self {
            StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::AuditContended { .. } => ErrorCode::Aborted,
            StoreError::Corrupt { .. } | StoreError::Backend(_) | StoreError::InvalidUrl(_) => {
                ErrorCode::Internal
            }
        }
    }
}

/// Sorts a Redis error by [`is_transient`]: the one place that decides.
impl From<RedisError> for StoreError {
    fn from(e: RedisError) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(Outage::Redis(e))
        } else {
            StoreError::Backend(e)
        }
    }
}

/// A reply that does not have the shape the code expects is a bug, never an
/// outage, so it is a `Backend` error whatever redis-rs calls its kind.
impl From<ParsingError> for StoreError {
    fn from(e: ParsingError) -> Self {
        StoreError::Backend(e.into())
    }
}

/// The pool's checkout errors: it could not connect, or it timed out.
impl From<bb8::RunError<RedisError>> for StoreError {
    fn from(e: bb8::RunError<RedisError>) -> Self {
        StoreError::Unavailable(match e {
            bb8::RunError::User(e) => Outage::Connect(e),
            bb8::RunError::TimedOut => Outage::PoolTimedOut,
        })
    }
}

/// The connection itself failed (I/O, refused, reset, timed out, or a
/// protocol state redis-rs cannot recover from): the pool must drop it.
pub(crate) fn is_transport(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_timeout()
}

/// A retry later may succeed: a transport failure, or a server reply that
/// says so — LOADING (restarting with its dataset), TRYAGAIN, MASTERDOWN (a
/// replica cut off from its primary), READONLY (a write that reached a
/// primary demoted during failover), CLUSTERDOWN.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    is_transport(e)
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::ClusterDown
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The error redis-rs returns for a server's error reply, parsed from
    /// the bytes on the wire.
    fn reply(wire: &str) -> RedisError {
        match redis::parse_redis_value(wire.as_bytes()).map(|v| v.extract_error()) {
            Ok(Err(e)) | Err(e) => e,
            Ok(Ok(v)) => panic!("{wire:?} parsed as a value, not an error: {v:?}"),
        }
    }

    fn io(kind: std::io::ErrorKind) -> RedisError {
        std::io::Error::new(kind, "test").into()
    }

    #[test]
    fn transient_replies_are_unavailable() {
        for wire in [
            "-LOADING Redis is loading the dataset in memory\r\n",
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
            "-READONLY You can't write against a read only replica.\r\n",
            "-CLUSTERDOWN The cluster is down\r\n",
        ] {
            let e = StoreError::from(reply(wire));
            assert!(
                matches!(e, StoreError::Unavailable(Outage::Redis(_))),
                "{wire:?} → {e:?}"
            );
            assert!(e.source().is_some(), "{wire:?} keeps its source");
        }
    }

    #[test]
    fn transport_failures_are_unavailable() {
        use std::io::ErrorKind as Io;
        for kind in [
            Io::ConnectionRefused,
            Io::ConnectionReset,
            Io::BrokenPipe,
            Io::TimedOut,
            Io::UnexpectedEof,
        ] {
            let e = io(kind);
            assert!(is_transport(&e), "{kind:?} drops the connection");
            assert!(
                matches!(StoreError::from(e), StoreError::Unavailable(_)),
                "{kind:?}"
            );
        }
        let pool = StoreError::from(bb8::RunError::<RedisError>::TimedOut);
        assert!(matches!(
            pool,
            StoreError::Unavailable(Outage::PoolTimedOut)
        ));
    }

    #[test]
    fn other_replies_are_backend_errors() {
        for wire in [
            "-ERR Error running script (call to f_1234): @user_script:1: oops\r\n",
            "-NOSCRIPT No matching script. Please use EVAL.\r\n",
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            "-NOPERM this user has no permissions to run the 'evalsha' command\r\n",
        ] {
            let e = reply(wire);
            assert!(!is_transport(&e), "{wire:?} keeps the connection");
            let e = StoreError::from(e);
            assert!(matches!(e, StoreError::Backend(_)), "{wire:?} → {e:?}");
        }
        let shape: Result<i64, _> =
            redis::from_redis_value(redis::Value::SimpleString("not a number".into()));
        let e = StoreError::from(shape.expect_err("a string is not an integer"));
        assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
    }

    #[test]
    fn corrupt_records_keep_their_cause() {
        let json = serde_json::from_str::<u64>("{").expect_err("not JSON");
        let e = StoreError::corrupt("verdict:{INC-1}:incident", json);
        assert!(
            e.to_string()
                .starts_with("corrupt record verdict:{INC-1}:incident: ")
        );
        assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()));
    }
}

//! What a request costs Redis, counted by Redis itself (`INFO commandstats`)
//! rather than with a clock, so cost assertions are exact and never flaky.

use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;

/// Commands that never come from a request path: INFO and CONFIG are the
/// test's own; PING (the health probe) and XREAD (the change feed's blocking
/// read) run in the background at moments the test does not control.
const BACKGROUND: [&str; 4] = ["info", "config", "ping", "xread"];

/// Zeroes the counts (`CONFIG RESETSTAT`).
pub async fn reset_command_counts(conn: &mut MultiplexedConnection) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(conn)
        .await
        .expect("CONFIG RESETSTAT");
}

/// Calls per Redis command since the last reset, without the background
/// commands above.
pub async fn command_counts(conn: &mut MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    parse(&info)
        .filter(|(name, _)| !BACKGROUND.iter().any(|p| name.starts_with(p)))
        .collect()
}

/// `(command, calls)` of each `cmdstat_get:calls=3,usec=12,...` line.
fn parse(info: &str) -> impl Iterator<Item = (String, u64)> + '_ {
    info.lines().filter_map(|l| {
        let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
        let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
        Some((name.to_string(), calls.parse().ok()?))
    })
}

//! Bulk writes and introspection of the Redis store, for benchmarks and the
//! tests that measure cost: records written by plain pipelines in the real
//! key layout, and the counters Redis keeps of its own work.
//!
//! Apart from the live operations because none of this is atomic or meant
//! for live data: it fills a store fast so a measurement can start.

use super::RedisStore;
use super::record::encode;
use super::stats::stat_writes;
use crate::domain::{Decision, Incident};
use crate::stats::StatDelta;
use crate::store::{StoreError, keys};

/// Commands per round trip of [`RedisStore::write_bulk`]: well inside the
/// client's response timeout on a busy machine.
const PER_TRIP: usize = 2_000;

impl RedisStore {
    /// How many incidents the listing index holds (`ZCARD`, O(1)): for
    /// benchmarks, which report how much is stored when they measure.
    pub async fn incident_count(&self) -> Result<u64, StoreError> {
        self.run(async |c| {
            redis::cmd("ZCARD")
                .arg(keys::INCIDENT_INDEX)
                .query_async(c)
                .await
        })
        .await
    }

    /// How many times Redis has run `command` (lower-case, e.g. `evalsha`)
    /// and the microseconds it spent in it, from `INFO commandstats`; None
    /// before the first call. For benchmarks: the time Redis itself spends
    /// in a lookup is what would grow with the store if a lookup scanned,
    /// and unlike a client-side latency it does not move with the load of
    /// the machine.
    pub async fn command_stats(&self, command: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let info: String = self
            .run(async |c| redis::cmd("INFO").arg("commandstats").query_async(c).await)
            .await?;
        Ok(parse_command_stats(&info, command))
    }

    /// Writes incidents with one current decision each, pipelined 1 000 at a
    /// time, in the normal key layout: for benchmarks and the O(1) test.
    pub async fn seed_bulk(
        &self,
        decisions: &[Decision],
        incidents: &[Incident],
    ) -> Result<(), StoreError> {
        for (chunk_d, chunk_i) in decisions.chunks(1000).zip(incidents.chunks(1000)) {
            let mut pipe = redis::pipe();
            for (d, i) in chunk_d.iter().zip(chunk_i) {
                for c in incident_commands(i) {
                    pipe.add_command(c).ignore();
                }
                pipe.cmd("HSET")
                    .arg(keys::decision(&d.incident_id, &d.token))
                    .arg("v")
                    .arg(d.version)
                    .arg("d")
                    .arg(encode(d))
                    .ignore();
                pipe.cmd("SET")
                    .arg(keys::current(&d.incident_id))
                    .arg(d.token.as_str())
                    .ignore();
                pipe.cmd("LPUSH")
                    .arg(keys::history(&d.incident_id))
                    .arg(d.token.as_str())
                    .ignore();
                pipe.cmd("SET")
                    .arg(keys::token_index(&d.token))
                    .arg(d.incident_id.as_str())
                    .ignore();
            }
            self.run(async |c| pipe.query_async::<()>(c).await).await?;
        }
        Ok(())
    }

    /// Writes incidents (record and listing index, as `create_incident`
    /// would) and the statistics `delta` with plain pipelined commands,
    /// [`PER_TRIP`] commands per round trip (increments are not retried,
    /// since a retry could count twice): for seeding benchmarks, where the
    /// deltas of many incidents are coalesced first. Not atomic, and not
    /// for live data. Returns the number of commands sent.
    pub async fn write_bulk(
        &self,
        incidents: &[Incident],
        delta: &StatDelta,
    ) -> Result<usize, StoreError> {
        let commands = incidents
            .iter()
            .flat_map(incident_commands)
            .chain(stat_writes(delta, self.retention.stats).map(|w| w.command()));
        let mut pipe = redis::pipe();
        let mut queued = 0usize;
        let mut sent = 0usize;
        for c in commands {
            pipe.add_command(c).ignore();
            queued += 1;
            if queued == PER_TRIP {
                self.run(async |c| pipe.query_async::<()>(c).await).await?;
                pipe = redis::pipe();
                sent += queued;
                queued = 0;
            }
        }
        if queued > 0 {
            self.run(async |c| pipe.query_async::<()>(c).await).await?;
            sent += queued;
        }
        Ok(sent)
    }
}

/// An incident's record and its listing-index entry, as plain commands.
fn incident_commands(i: &Incident) -> [redis::Cmd; 2] {
    let mut record = redis::cmd("HSET");
    record
        .arg(keys::incident(&i.id))
        .arg("v")
        .arg(i.version)
        .arg("d")
        .arg(encode(i));
    let mut index = redis::cmd("ZADD");
    index
        .arg(keys::INCIDENT_INDEX)
        .arg(i.created_at.timestamp_millis())
        .arg(i.id.as_str());
    [record, index]
}

/// `(calls, usec)` of `command` in an `INFO commandstats` reply, whose lines
/// read `cmdstat_get:calls=3,usec=12,usec_per_call=4.00,...`.
fn parse_command_stats(info: &str, command: &str) -> Option<(u64, u64)> {
    let line = info.lines().find_map(|l| {
        l.strip_prefix("cmdstat_")?
            .strip_prefix(command)?
            .strip_prefix(':')
    })?;
    let field = |name: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("calls")?, field("usec")?))
}

#[cfg(test)]
mod tests {
    use super::parse_command_stats;

    #[test]
    fn reads_command_stats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=10,usec=55,usec_per_call=5.50\r\n";
        assert_eq!(parse_command_stats(info, "evalsha"), Some((10, 55)));
        assert_eq!(parse_command_stats(info, "get"), Some((3, 12)));
        assert_eq!(
            parse_command_stats(info, "eval"),
            None,
            "not a prefix match"
        );
        assert_eq!(parse_command_stats(info, "hget"), None);
    }
}

//! Statistics in the Redis store: a [`StatDelta`] as Redis writes, and the
//! reads of the statistics RPCs.
//!
//! A delta becomes a list of [`StatWrite`]s in one place ([`stat_writes`]);
//! the write scripts receive them as the ARGV tail that `lua/stats.lua`
//! applies atomically with the record, and bulk seeding sends the same list
//! as plain pipelined commands. Reads cost one round trip per query,
//! proportional to the buckets read, never to the incidents counted.

use super::RedisStore;
use crate::stats::{Action, Bucket, Series, Shape, StatDelta, StatsQuery, StatsRead, Target};
use crate::store::{StoreError, keys};
use redis::Value;
use std::time::Duration;

/// One Redis write of a statistics delta.
pub(super) enum StatWrite<'a> {
    /// `HINCRBY key field by`.
    Count {
        key: String,
        field: &'a str,
        by: i64,
    },
    /// `ZINCRBY key by member`.
    Rank {
        key: String,
        member: &'a str,
        by: i64,
    },
    /// `BITFIELD key OVERFLOW SAT INCRBY u32 #index by`.
    Bin { key: String, index: u32, by: u32 },
    /// `EXPIREAT key at` (seconds), for every bucket key the delta touches.
    ExpireAt { key: String, at: i64 },
}

/// The writes of `delta`: its increments in order, then the expiry of every
/// bucket key they touch (buckets expire `retention` after they end).
pub(super) fn stat_writes(
    delta: &StatDelta,
    retention: Duration,
) -> impl Iterator<Item = StatWrite<'_>> {
    let increments = delta.ops().iter().map(|op| {
        let key = match &op.target {
            Target::Bucket(b, s) => keys::stats(*b, s),
            Target::StatusGauge => keys::STATS_STATUS.to_owned(),
        };
        match &op.action {
            Action::Count { field, by } => StatWrite::Count {
                key,
                field,
                by: *by,
            },
            Action::Rank { member, by } => StatWrite::Rank {
                key,
                member,
                by: *by,
            },
            Action::Bin { index, by } => StatWrite::Bin {
                key,
                index: *index,
                by: *by,
            },
        }
    });
    let expiries = delta
        .touched()
        .into_iter()
        .map(move |(b, s)| StatWrite::ExpireAt {
            key: keys::stats(b, s),
            at: b.expires_at(retention),
        });
    increments.chain(expiries)
}

/// The ARGV tail that `lua/stats.lua` applies: the increments of `delta`,
/// the expiry of every bucket key they touch, then the number of entries
/// before it. Always at least that count ("0").
fn script_args(delta: &StatDelta, retention: Duration) -> Vec<String> {
    let mut a = Vec::new();
    for w in stat_writes(delta, retention) {
        w.push_script_args(&mut a);
    }
    a.push(a.len().to_string());
    a
}

impl StatWrite<'_> {
    /// Appends the ARGV entries `lua/stats.lua` reads for this write: a
    /// letter, the key, then two operands (one for an expiry).
    fn push_script_args(self, a: &mut Vec<String>) {
        match self {
            StatWrite::Count { key, field, by } => {
                a.extend(["H".into(), key, field.into(), by.to_string()])
            }
            StatWrite::Rank { key, member, by } => {
                a.extend(["Z".into(), key, member.into(), by.to_string()])
            }
            StatWrite::Bin { key, index, by } => {
                a.extend(["B".into(), key, index.to_string(), by.to_string()])
            }
            StatWrite::ExpireAt { key, at } => a.extend(["E".into(), key, at.to_string()]),
        }
    }

    /// The plain Redis command for this write (not atomic with anything).
    pub(super) fn command(self) -> redis::Cmd {
        let mut c;
        match self {
            StatWrite::Count { key, field, by } => {
                c = redis::cmd("HINCRBY");
                c.arg(key).arg(field).arg(by);
            }
            StatWrite::Rank { key, member, by } => {
                c = redis::cmd("ZINCRBY");
                c.arg(key).arg(by).arg(member);
            }
            StatWrite::Bin { key, index, by } => {
                c = redis::cmd("BITFIELD");
                c.arg(key)
                    .arg("OVERFLOW")
                    .arg("SAT")
                    .arg("INCRBY")
                    .arg("u32")
                    .arg(format!("#{index}"))
                    .arg(by);
            }
            StatWrite::ExpireAt { key, at } => {
                c = redis::cmd("EXPIREAT");
                c.arg(key).arg(at);
            }
        }
        c
    }
}

impl RedisStore {
    /// The ARGV tail of a write script for `delta` (see [`script_args`]).
    pub(super) fn stats_args(&self, delta: &StatDelta) -> Vec<String> {
        script_args(delta, self.retention.stats)
    }

    /// [`crate::store::Store::read_stats`]: every bucket of every series in
    /// one pipeline, added up.
    pub(super) async fn read_buckets(&self, query: &StatsQuery) -> Result<StatsRead, StoreError> {
        let mut out = StatsRead::default();
        let mut pipe = redis::pipe();
        let mut slots = Vec::new();
        for series in &query.series {
            for b in &query.buckets {
                let key = keys::stats(*b, series);
                match series.shape() {
                    Shape::Counters => pipe.cmd("HGETALL").arg(key),
                    Shape::Sketch => pipe.cmd("GET").arg(key),
                    Shape::Ranking => continue,
                };
                slots.push(Some(series));
            }
        }
        if query.gauge {
            pipe.cmd("HGETALL").arg(keys::STATS_STATUS);
            slots.push(None);
        }
        if slots.is_empty() {
            return Ok(out);
        }
        let replies: Vec<Value> = self.run(async |c| pipe.query_async(c).await).await?;
        for (slot, reply) in slots.into_iter().zip(replies) {
            match slot {
                Some(series) if series.shape() == Shape::Sketch => {
                    let bytes: Option<Vec<u8>> = redis::from_redis_value(reply)?;
                    if let Some(bytes) = bytes {
                        out.add_sketch(series, &bytes);
                    }
                }
                Some(series) => {
                    let fields: Vec<(String, i64)> = redis::from_redis_value(reply)?;
                    for (f, n) in fields {
                        out.add_counter(series, &f, n);
                    }
                }
                None => {
                    let fields: Vec<(String, i64)> = redis::from_redis_value(reply)?;
                    for (f, n) in fields {
                        out.gauge.add(&f, n);
                    }
                }
            }
        }
        Ok(out)
    }

    /// [`crate::store::Store::top_services`]: merged and ranked inside
    /// Redis by `lua/top_services.lua`.
    pub(super) async fn rank_services(
        &self,
        buckets: &[Bucket],
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        if buckets.is_empty() || limit == 0 {
            return Ok(vec![]);
        }
        let script = &self.scripts.top_services;
        let keys: Vec<String> = buckets
            .iter()
            .map(|b| keys::stats(*b, &Series::Services))
            .collect();
        let (above, ties): (Scored, Scored) = self
            .run(async |c| {
                script
                    .key(&keys)
                    .arg(limit)
                    .arg(keys::STATS_SCRATCH)
                    .invoke_async(c)
                    .await
            })
            .await?;
        let mut ranked = crate::stats::report::rank(
            above.into_iter().map(|(s, n)| (s, score(n))).collect(),
            limit,
        );
        ranked.extend(ties.into_iter().map(|(s, n)| (s, score(n))));
        ranked.truncate(limit);
        Ok(ranked)
    }
}

/// Services with their summed scores, as `lua/top_services.lua` returns them.
type Scored = Vec<(String, f64)>;

/// A ranking score as a count (scores are sums of whole increments).
fn score(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        n.round() as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One increment of each kind, in one hour bucket, plus the gauge.
    fn delta() -> StatDelta {
        let b = Bucket::Hour(0);
        let mut d = StatDelta::none();
        d.push(
            Target::Bucket(b, Series::Incidents),
            Action::Count {
                field: "new:P2".into(),
                by: 1,
            },
        );
        d.push(
            Target::Bucket(b, Series::Services),
            Action::Rank {
                member: "checkout".into(),
                by: 2,
            },
        );
        d.push(
            Target::StatusGauge,
            Action::Count {
                field: "OPEN".into(),
                by: -1,
            },
        );
        d
    }

    #[test]
    fn script_arguments_follow_the_layout_stats_lua_reads() {
        let retention = Duration::from_secs(10);
        let inc = keys::stats(Bucket::Hour(0), &Series::Incidents);
        let svc = keys::stats(Bucket::Hour(0), &Series::Services);
        let at = Bucket::Hour(0).expires_at(retention).to_string();
        let expected: Vec<String> = [
            "H",
            &inc,
            "new:P2",
            "1", //
            "Z",
            &svc,
            "checkout",
            "2", //
            "H",
            keys::STATS_STATUS,
            "OPEN",
            "-1", //
            "E",
            &inc,
            &at, //
            "E",
            &svc,
            &at, //
            "18",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(script_args(&delta(), retention), expected);
        assert_eq!(script_args(&StatDelta::none(), retention), vec!["0"]);
    }

    #[test]
    fn commands_are_the_same_writes() {
        let retention = Duration::from_secs(10);
        let names: Vec<String> = stat_writes(&delta(), retention)
            .map(|w| {
                let packed = w.command().get_packed_command();
                String::from_utf8_lossy(&packed).into_owned()
            })
            .map(|p| p.split("\r\n").nth(2).unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            names,
            ["HINCRBY", "ZINCRBY", "HINCRBY", "EXPIREAT", "EXPIREAT"]
        );
    }
}

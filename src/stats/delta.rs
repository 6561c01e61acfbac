//! The statistics a write adds: a short list of increments, computed in
//! Rust from the change (see [`super::record`]) and handed to the store
//! with the write itself. The store applies them in the same atomic step as
//! the compare-and-set they belong to, and only if it succeeds: a retried
//! RPC, a replayed transition or a second replica therefore never counts
//! twice, and nothing is counted for a write that did not happen.

use super::bucket::Bucket;
use super::series::Series;

/// What an increment applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A series of one time bucket (expires with the bucket).
    Bucket(Bucket, Series),
    /// The current number of incidents in each status (a gauge, never
    /// expires: it changes only when a status does).
    StatusGauge,
}

/// One increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Adds `by` to counter `field` (Redis `HINCRBY`).
    Count { field: String, by: i64 },
    /// Adds `by` to `member`'s score (Redis `ZINCRBY`).
    Rank { member: String, by: i64 },
    /// Adds `by` to sketch bin `index` (Redis `BITFIELD … INCRBY u32`).
    Bin { index: u32, by: u32 },
}

/// One increment of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatOp {
    pub target: Target,
    pub action: Action,
}

/// The increments of one write. Empty for writes that change nothing
/// counted (and for seeding tools that write no statistics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatDelta {
    ops: Vec<StatOp>,
}

impl StatDelta {
    /// No increments.
    pub fn none() -> StatDelta {
        StatDelta::default()
    }

    pub fn ops(&self) -> &[StatOp] {
        &self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The bucket series this delta touches, each once, in a fixed order:
    /// the store sets their expiry in the same step.
    pub fn touched(&self) -> Vec<(Bucket, &Series)> {
        let mut out: Vec<(Bucket, &Series)> = self
            .ops
            .iter()
            .filter_map(|op| match &op.target {
                Target::Bucket(b, s) => Some((*b, s)),
                Target::StatusGauge => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn push(&mut self, target: Target, action: Action) {
        self.ops.push(StatOp { target, action });
    }

    /// Adds `by` to `field` of `series` in both buckets of an event.
    pub(crate) fn count(&mut self, buckets: [Bucket; 2], series: &Series, field: &str, by: i64) {
        for b in buckets {
            self.push(
                Target::Bucket(b, series.clone()),
                Action::Count {
                    field: field.to_owned(),
                    by,
                },
            );
        }
    }

    /// Adds `by` to `member` of `series` in both buckets of an event.
    pub(crate) fn rank(&mut self, buckets: [Bucket; 2], series: &Series, member: &str, by: i64) {
        for b in buckets {
            self.push(
                Target::Bucket(b, series.clone()),
                Action::Rank {
                    member: member.to_owned(),
                    by,
                },
            );
        }
    }

    /// Adds one value to sketch `series` in both buckets of an event.
    pub(crate) fn bin(&mut self, buckets: [Bucket; 2], series: &Series, index: u32) {
        for b in buckets {
            self.push(
                Target::Bucket(b, series.clone()),
                Action::Bin { index, by: 1 },
            );
        }
    }

    /// Moves one incident between statuses in the gauge.
    pub(crate) fn gauge(&mut self, field: &str, by: i64) {
        self.push(
            Target::StatusGauge,
            Action::Count {
                field: field.to_owned(),
                by,
            },
        );
    }

    /// Appends every increment of `other` (for bulk seeding, which then
    /// coalesces them with [`StatDelta::coalesced`]).
    pub fn extend(&mut self, other: StatDelta) {
        self.ops.extend(other.ops);
    }

    /// The same increments with those of one target and field, member or
    /// bin added together: what a bulk writer sends instead of one command
    /// per increment. Applying the result equals applying the original.
    pub fn coalesced(&self) -> StatDelta {
        use std::collections::BTreeMap;
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Slot<'a> {
            Count(&'a str),
            Rank(&'a str),
            Bin(u32),
        }
        let mut sums: BTreeMap<(&Target, Slot<'_>), i64> = BTreeMap::new();
        for op in &self.ops {
            let (slot, by) = match &op.action {
                Action::Count { field, by } => (Slot::Count(field), *by),
                Action::Rank { member, by } => (Slot::Rank(member), *by),
                Action::Bin { index, by } => (Slot::Bin(*index), i64::from(*by)),
            };
            let e = sums.entry((&op.target, slot)).or_insert(0);
            *e = e.saturating_add(by);
        }
        let mut out = StatDelta::none();
        for ((target, slot), by) in sums {
            let action = match slot {
                Slot::Count(f) => Action::Count {
                    field: f.to_owned(),
                    by,
                },
                Slot::Rank(m) => Action::Rank {
                    member: m.to_owned(),
                    by,
                },
                Slot::Bin(index) => Action::Bin {
                    index,
                    by: u32::try_from(by.max(0)).unwrap_or(u32::MAX),
                },
            };
            out.push(target.clone(), action);
        }
        out
    }
}

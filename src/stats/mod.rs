//! Statistics, maintained as the data is written and read in O(buckets).
//!
//! Pure logic, no I/O: what a change adds ([`record`] → a [`StatDelta`],
//! applied by the store in the same atomic step as the change), how time is
//! bucketed and a query range resolved ([`bucket`]), the quantile sketch
//! ([`sketch`]), and the figures computed from what a query reads
//! ([`report`]). The store knows how deltas and reads map onto keys; the
//! stats manager (`manager/stats.rs`) runs the queries; bulk seeding for
//! benchmarks is `bench/seed_stats.rs`, which needs the store.

pub mod bucket;
pub mod delta;
pub mod record;
pub mod report;
pub mod series;
pub mod sketch;

pub use bucket::{Bucket, RangeSpec, Window};
pub use delta::{Action, StatDelta, StatOp, Target};
pub use report::{StatsQuery, StatsRead};
pub use series::{Series, Shape, Source};

/// How long statistics are kept by default: 90 days.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

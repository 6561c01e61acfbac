//! A log-bucketed quantile sketch in the spirit of DDSketch (Masson, Rim
//! and Lee, VLDB 2019), written for verdict's storage layout.
//!
//! Why a sketch: percentiles over a range must cost O(buckets), never
//! O(incidents), and one hour's sketch must merge with another's by plain
//! addition so a range query can sum its hour and day buckets.
//!
//! Why this one: with relative accuracy `α`, value `x > 0` goes to bin
//! `i = ceil(ln x / ln γ)`, `γ = (1 + α) / (1 − α)`; bin `i` holds
//! `(γ^(i−1), γ^i]` and is represented by `2γ^i / (γ + 1)`, which is within
//! `α·x` of every value in it. A quantile estimate is the representative of
//! the bin holding the element of that rank, so it is within `α` of the
//! exact quantile whatever the distribution, and merging two sketches
//! (adding their bins) loses nothing.
//!
//! Bins are dense: index 0 is the bin of the [`Mapping`]'s smallest value,
//! and the store keeps one unsigned 32-bit counter per bin (Redis
//! `BITFIELD … INCRBY u32`), so a sketch is one string of `4 × bins` bytes
//! that a range query reads with one `GET` and merges with vector adds.
//! Values below the smallest value are counted in bin 0: their estimate is
//! off by at most that smallest value in absolute terms (1 s for resolution
//! times, 100 µs for analysis latency: far below anything worth reporting).

/// Relative accuracy of every estimate: 1 %.
pub const ALPHA: f64 = 0.01;

/// The most bins a sketch has. With γ ≈ 1.0202 this spans a factor of
/// e^40 above the smallest value (beyond any duration verdict records), and
/// bounds a stored sketch to 8 KiB.
pub const MAX_BINS: u32 = 2048;

/// Maps values (integers in a fixed unit) to dense bin indexes and back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    /// The smallest value with its own bin; smaller ones share bin 0.
    min: u64,
    /// `ln γ`.
    ln_gamma: f64,
    /// `ceil(ln min / ln γ)`: the unbounded index of bin 0.
    offset: i64,
}

impl Mapping {
    /// Resolution times, in milliseconds, from 1 s.
    pub fn resolution() -> Mapping {
        Mapping::new(1_000)
    }

    /// Analysis latencies, in microseconds, from 100 µs.
    pub fn latency() -> Mapping {
        Mapping::new(100)
    }

    /// A mapping whose bin 0 holds `min` (at least 1) and everything below.
    pub fn new(min: u64) -> Mapping {
        let min = min.max(1);
        let ln_gamma = gamma().ln();
        Mapping {
            min,
            ln_gamma,
            offset: ((min as f64).ln() / ln_gamma).ceil() as i64,
        }
    }

    /// The dense bin of `value` (clamped to `0..MAX_BINS`).
    pub fn index(&self, value: u64) -> u32 {
        let v = value.max(self.min) as f64;
        let i = (v.ln() / self.ln_gamma).ceil() as i64 - self.offset;
        i.clamp(0, i64::from(MAX_BINS) - 1) as u32
    }

    /// The value that represents bin `index`: within `α` of every value in
    /// it.
    pub fn value(&self, index: u32) -> f64 {
        let g = gamma();
        let i = i64::from(index) + self.offset;
        2.0 * (i as f64 * self.ln_gamma).exp() / (g + 1.0)
    }

    /// The smallest value with a bin of its own.
    pub fn min(&self) -> u64 {
        self.min
    }
}

/// `γ = (1 + α) / (1 − α)`.
fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// A merged sketch: counts per dense bin (64-bit: a range adds up many
/// 32-bit stored counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bins {
    counts: Vec<u64>,
}

impl Bins {
    pub fn new() -> Bins {
        Bins::default()
    }

    /// Adds `by` to bin `index` (ignored beyond [`MAX_BINS`]).
    pub fn add(&mut self, index: u32, by: u64) {
        if index >= MAX_BINS {
            return;
        }
        let i = index as usize;
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = self.counts[i].saturating_add(by);
    }

    /// Adds a stored sketch: big-endian u32 counters, as Redis `BITFIELD`
    /// writes them (a trailing partial counter reads as if zero-padded).
    pub fn add_be_u32(&mut self, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(4).enumerate().take(MAX_BINS as usize) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            let n = u32::from_be_bytes(word);
            if n > 0 {
                self.add(i as u32, u64::from(n));
            }
        }
    }

    /// Adds every bin of `other`.
    pub fn merge(&mut self, other: &Bins) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// The counts, bin 0 first (trailing empty bins may be absent).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) by the nearest-rank definition: the
    /// estimate of the value of rank `max(1, ceil(q·n))` among the `n`
    /// values added, in the mapping's unit. `None` when empty.
    pub fn quantile(&self, mapping: &Mapping, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*c);
            if seen >= rank {
                return Some(mapping.value(i as u32));
            }
        }
        // Unreachable: the counts add up to n ≥ rank.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The relative bound, with room for the last bits of floating point
    /// at bin boundaries.
    const BOUND: f64 = ALPHA * (1.0 + 1e-9);

    fn exact(sorted: &[u64], q: f64) -> u64 {
        let n = sorted.len() as u64;
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        sorted[(rank - 1) as usize]
    }

    fn sketch(m: &Mapping, values: &[u64]) -> Bins {
        let mut b = Bins::new();
        for v in values {
            b.add(m.index(*v), 1);
        }
        b
    }

    #[test]
    fn every_value_is_within_alpha_of_its_bin() {
        let m = Mapping::resolution();
        for v in [
            1_000u64, 1_001, 1_500, 59_999, 60_000, 3_600_000, 86_400_000,
        ] {
            let est = m.value(m.index(v));
            let err = (est - v as f64).abs() / v as f64;
            assert!(err <= BOUND, "{v}: {est} ({err})");
        }
    }

    #[test]
    fn small_values_share_bin_zero() {
        let m = Mapping::resolution();
        assert_eq!(m.index(0), 0);
        assert_eq!(m.index(999), 0);
        assert_eq!(m.index(1_000), 0);
        assert!(m.index(1_100) > 0);
        let est = m.value(0);
        assert!((est - 1_000.0).abs() <= 1_000.0 * BOUND, "{est}");
    }

    #[test]
    fn huge_values_are_clamped_to_the_last_bin() {
        // With the real mappings even u64::MAX has a bin of its own; from 1
        // it does not.
        assert!(Mapping::latency().index(u64::MAX) < MAX_BINS - 1);
        assert_eq!(Mapping::new(1).index(u64::MAX), MAX_BINS - 1);
        let mut b = Bins::new();
        b.add(MAX_BINS, 1);
        assert_eq!(b.count(), 0, "out-of-range bins are ignored");
    }

    #[test]
    fn quantiles_of_a_known_set() {
        let m = Mapping::resolution();
        let values: Vec<u64> = (1..=1000).map(|i| i * 1_000).collect();
        let b = sketch(&m, &values);
        for (q, want) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let got = b.quantile(&m, q).unwrap();
            assert!((got - want).abs() <= want * BOUND, "q{q}: {got}");
        }
        assert_eq!(Bins::new().quantile(&m, 0.5), None);
    }

    #[test]
    fn stored_counters_decode_big_endian() {
        let mut b = Bins::new();
        b.add_be_u32(&[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 5, 0, 1]);
        assert_eq!(
            b.counts(),
            &[0, 258, 5, 65_536],
            "a partial counter is zero-padded"
        );
    }

    #[test]
    fn merging_is_adding() {
        let m = Mapping::latency();
        let a = sketch(&m, &[100, 2_000, 30_000]);
        let c = sketch(&m, &[2_000, 5_000_000]);
        let mut merged = a.clone();
        merged.merge(&c);
        assert_eq!(merged, sketch(&m, &[100, 2_000, 30_000, 2_000, 5_000_000]));
        assert_eq!(merged.count(), 5);
    }

    proptest! {
        /// The accuracy bound: every quantile estimate is within 1 % of the
        /// exact nearest-rank quantile, for values at or above the mapping's
        /// smallest value, whatever their distribution.
        #[test]
        fn quantiles_are_within_alpha(
            values in prop::collection::vec(1_000u64..=10_000_000_000_000, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let m = Mapping::resolution();
            let b = sketch(&m, &values);
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let want = exact(&sorted, q) as f64;
            let got = b.quantile(&m, q).unwrap();
            prop_assert!((got - want).abs() <= want * BOUND, "q={q} want={want} got={got}");
        }

        /// Splitting the values over several sketches and merging them gives
        /// the sketch of all values: hour buckets add up to a day.
        #[test]
        fn merge_equals_one_sketch(
            values in prop::collection::vec(0u64..=1_000_000_000, 0..200),
            split in 0usize..200,
        ) {
            let m = Mapping::latency();
            let split = split.min(values.len());
            let mut merged = sketch(&m, &values[..split]);
            merged.merge(&sketch(&m, &values[split..]));
            prop_assert_eq!(merged, sketch(&m, &values));
        }

        /// Below the smallest value the error is absolute and bounded by it.
        #[test]
        fn small_values_err_by_at_most_the_minimum(v in 0u64..1_000) {
            let m = Mapping::resolution();
            let est = m.value(m.index(v));
            prop_assert!((est - v as f64).abs() <= 1_000.0 * (1.0 + BOUND));
        }
    }
}

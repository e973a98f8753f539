//! A lock-free histogram with logarithmic buckets (about 4% relative error).

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BUCKETS: usize = 16;
const BUCKETS: usize = 64 * SUB_BUCKETS;

/// Records non-negative integer observations (e.g. nanoseconds, rows) without locks.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

/// Summary of a [`Histogram`] at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Number of observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: u64,
    /// Median (upper bound of its bucket).
    pub p50: u64,
    /// 99th percentile (upper bound of its bucket).
    pub p99: u64,
    /// Largest observation.
    pub max: u64,
}

fn bucket_of(v: u64) -> usize {
    if v < SUB_BUCKETS as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() as usize; // >= 4
    let shift = exp - 4;
    let sub = ((v >> shift) as usize) & (SUB_BUCKETS - 1);
    (exp - 3) * SUB_BUCKETS + sub
}

fn upper_bound(bucket: usize) -> u64 {
    if bucket < SUB_BUCKETS {
        return bucket as u64;
    }
    let exp = bucket / SUB_BUCKETS + 3;
    let sub = (bucket % SUB_BUCKETS) as u64;
    let shift = exp - 4;
    (((SUB_BUCKETS as u64) | sub) << shift) + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    /// The value below which `q` (0..=1) of the observations fall (bucket upper bound).
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return upper_bound(i).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }

    /// For each bound (ascending), how many observations were at most that bound, as the
    /// cumulative buckets of a Prometheus histogram. Exact for values below 16; above, a
    /// bound inside one of the internal logarithmic buckets (about 6% wide) counts that whole
    /// bucket as above the bound.
    pub fn cumulative_counts(&self, bounds: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds.len());
        let mut seen = 0u64;
        let mut i = 0usize;
        for &bound in bounds {
            while i < self.buckets.len() && upper_bound(i) <= bound {
                seen += self.buckets[i].load(Ordering::Relaxed);
                i += 1;
            }
            out.push(seen);
        }
        out
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of observations.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// Count, sum, p50, p99 and max.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_contain_their_values() {
        for v in [0u64, 1, 15, 16, 17, 31, 32, 1000, 123_456_789, u64::MAX / 2] {
            let b = bucket_of(v);
            assert!(upper_bound(b) >= v, "v={v}");
            if b > 0 {
                assert!(upper_bound(b - 1) < v, "v={v}");
            }
        }
    }

    #[test]
    fn cumulative_counts_are_exact_on_bucket_bounds() {
        let h = Histogram::default();
        for v in [1u64, 3, 3, 10, 40, 1000, 5000] {
            h.record(v);
        }
        // 39 and 1023 are upper bounds of internal buckets, so those counts are exact.
        assert_eq!(
            h.cumulative_counts(&[0, 3, 15, 39, 1023, u64::MAX]),
            vec![0, 3, 4, 4, 6, 7]
        );
    }

    #[test]
    fn quantiles_of_small_values_are_exact() {
        let h = Histogram::default();
        for v in 1..=10 {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!((s.count, s.sum, s.p50, s.p99, s.max), (10, 55, 5, 10, 10));
    }
}

//! A Prometheus histogram with fixed exponential buckets, lock-free to
//! observe, rendered in the text exposition format.
//!
//! Only what `/metrics` needs (etcd's `etcd_disk_wal_fsync_duration_seconds`
//! and `etcd_network_peer_round_trip_time_seconds` shapes); it never
//! allocates on `observe`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Cumulative bucket counts with upper bounds `start * factor^i`.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: Vec<AtomicU64>,
    /// Sum of observed seconds, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// `count` buckets with upper bounds `start`, `start*factor`, ...
    /// (Prometheus' `ExponentialBuckets`).
    pub fn exponential(start: f64, factor: f64, count: usize) -> Self {
        let bounds: Vec<f64> = (0..count).map(|i| start * factor.powi(i as i32)).collect();
        let counts = (0..=count).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            counts,
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// etcd's WAL fsync buckets: 1 ms to about 8 s.
    pub fn fsync() -> Self {
        Self::exponential(0.001, 2.0, 14)
    }

    /// etcd's peer round-trip buckets: 0.1 ms to about 0.8 s.
    pub fn round_trip() -> Self {
        Self::exponential(0.0001, 2.0, 14)
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of series `name`
    /// with `labels` (already formatted as `key="value",...`, or empty).
    pub fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_counts_everything() {
        let h = Histogram::exponential(0.001, 2.0, 3);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_micros(1500));
        h.observe(Duration::from_secs(1));
        let mut out = String::new();
        h.render_series(&mut out, "x", "");
        assert_eq!(
            out,
            "x_bucket{le=\"0.001\"} 1\nx_bucket{le=\"0.002\"} 2\nx_bucket{le=\"0.004\"} 2\n\
             x_bucket{le=\"+Inf\"} 3\nx_sum 1.002\nx_count 3\n"
        );
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn labels_come_before_le() {
        let h = Histogram::exponential(1.0, 2.0, 1);
        h.observe(Duration::from_millis(10));
        let mut out = String::new();
        h.render_series(&mut out, "rtt", "To=\"a\"");
        assert!(out.starts_with("rtt_bucket{To=\"a\",le=\"1\"} 1\n"));
        assert!(out.contains("rtt_count{To=\"a\"} 1\n"));
    }
}

//! Per-client measurements and the final report.
//!
//! Each client owns a [`Stats`] (no sharing, no locks on the request path);
//! they are merged once every client has finished.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use tonic::Code;

/// Latencies are recorded in microseconds, from 1 µs to 5 minutes.
const MAX_LATENCY_US: u64 = 300_000_000;

/// Number of gRPC status codes (0 = Ok … 16 = Unauthenticated).
const CODES: usize = 17;

/// What one client measured.
#[derive(Debug, Clone)]
pub struct Stats {
    latency_us: Histogram<u64>,
    errors: [u64; CODES],
    cas_failed: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            errors: [0; CODES],
            cas_failed: 0,
        }
    }

    /// A request that succeeded after `latency`.
    pub fn record_ok(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
    }

    /// A transaction whose compare failed (it still completed).
    pub fn record_cas_failed(&mut self) {
        self.cas_failed += 1;
    }

    /// A request that failed with `code`.
    pub fn record_error(&mut self, code: Code) {
        let slot = (code as usize).min(CODES - 1);
        self.errors[slot] += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        self.cas_failed += other.cas_failed;
    }

    /// Requests that succeeded.
    pub fn ok(&self) -> u64 {
        self.latency_us.len()
    }

    /// Requests that failed.
    pub fn errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Non-zero error counts by gRPC code name.
    fn errors_by_code(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.errors
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (format!("{:?}", Code::from(code as i32)), *n))
    }

    /// The latency at `quantile` (0.0 to 1.0) in milliseconds.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        us_to_ms(self.latency_us.value_at_quantile(quantile))
    }

    /// The mean latency in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.latency_us.mean() / 1000.0
    }

    /// The largest latency in milliseconds.
    pub fn max_ms(&self) -> f64 {
        us_to_ms(self.latency_us.max())
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The outcome of one workload run, ready to print.
#[derive(Debug)]
pub struct Report {
    /// Workload name as shown, e.g. `put` or `range-s`.
    pub workload: String,
    pub clients: u32,
    pub conns: u32,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    pub stats: Stats,
}

impl Report {
    /// Successful requests per second.
    pub fn qps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// One line for people.
    pub fn human(&self) -> String {
        let s = &self.stats;
        let mut line = format!(
            "{:<8} clients={} conns={} requests={} errors={}",
            self.workload,
            self.clients,
            self.conns,
            s.ok() + s.errors(),
            s.errors(),
        );
        let codes: Vec<String> = s
            .errors_by_code()
            .map(|(code, n)| format!("{code}:{n}"))
            .collect();
        if !codes.is_empty() {
            let _ = write!(line, " ({})", codes.join(","));
        }
        if s.cas_failed > 0 {
            let _ = write!(line, " cas_failed={}", s.cas_failed);
        }
        let _ = write!(
            line,
            " qps={:.0} p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms elapsed={:.2}s",
            self.qps(),
            s.quantile_ms(0.5),
            s.quantile_ms(0.9),
            s.quantile_ms(0.99),
            us_to_ms(s.latency_us.max()),
            self.elapsed.as_secs_f64(),
        );
        line
    }

    /// One JSON object, flat apart from `errors_by_code`.
    pub fn json(&self) -> Value {
        let s = &self.stats;
        let by_code: Map<String, Value> = s.errors_by_code().map(|(c, n)| (c, n.into())).collect();
        json!({
            "workload": self.workload,
            "clients": self.clients,
            "conns": self.conns,
            "requests": s.ok() + s.errors(),
            "ok": s.ok(),
            "errors": s.errors(),
            "errors_by_code": by_code,
            "cas_failed": s.cas_failed,
            "elapsed_s": round3(self.elapsed.as_secs_f64()),
            "qps": round3(self.qps()),
            "mean_ms": round3(s.latency_us.mean() / 1000.0),
            "p50_ms": round3(s.quantile_ms(0.5)),
            "p90_ms": round3(s.quantile_ms(0.9)),
            "p99_ms": round3(s.quantile_ms(0.99)),
            "max_ms": round3(us_to_ms(s.latency_us.max())),
        })
    }
}

/// Latency percentiles the summary lists, as etcd's benchmark tool does.
const SUMMARY_PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Buckets of the summary's latency histogram.
const SUMMARY_BUCKETS: usize = 10;

/// Width of the longest bar of the summary's histogram.
const SUMMARY_BAR_WIDTH: u64 = 40;

impl Report {
    /// The multi-line summary in the shape etcd's `benchmark` tool prints:
    /// totals in seconds, a latency histogram (its counts add up to the
    /// successful requests), percentiles, then failed requests by code.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let h = &s.latency_us;
        let secs = |us: f64| us / 1e6;
        let mut out = String::from("\nSummary:\n");
        let _ = writeln!(out, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        if s.ok() > 0 {
            let _ = writeln!(out, "  Slowest:\t{:.4} secs.", secs(h.max() as f64));
            let _ = writeln!(out, "  Fastest:\t{:.4} secs.", secs(h.min() as f64));
            let _ = writeln!(out, "  Average:\t{:.4} secs.", secs(h.mean()));
            let _ = writeln!(out, "  Stddev:\t{:.4} secs.", secs(h.stdev()));
        }
        let _ = writeln!(out, "  Requests/sec:\t{:.4}", self.qps());
        if s.ok() > 0 {
            out.push_str("\nResponse time histogram:\n");
            for (upper_us, count, bar) in self.histogram_rows() {
                let _ = writeln!(out, "  {:.4} [{count}]\t|{bar}", secs(upper_us as f64));
            }
            out.push_str("\nLatency distribution:\n");
            for p in SUMMARY_PERCENTILES {
                let us = h.value_at_quantile(p / 100.0);
                let _ = writeln!(out, "  {p}% in {:.4} secs.", secs(us as f64));
            }
        }
        if s.errors() > 0 {
            out.push_str("\nError distribution:\n");
            for (code, n) in s.errors_by_code() {
                let _ = writeln!(out, "  [{n}]\t{code}");
            }
        }
        out
    }

    /// `(bucket upper bound in µs, count, bar)` for each bucket between the
    /// fastest and the slowest request; the first bucket also holds the
    /// fastest, so every request is counted once.
    fn histogram_rows(&self) -> Vec<(u64, u64, String)> {
        let h = &self.stats.latency_us;
        let (min, max) = (h.min(), h.max());
        let width = (max - min) as f64 / SUMMARY_BUCKETS as f64;
        let uppers: Vec<u64> = (0..=SUMMARY_BUCKETS)
            .map(|i| min + (width * i as f64).round() as u64)
            .collect();
        let mut counts = vec![0u64; uppers.len()];
        for v in h.iter_recorded() {
            // hdrhistogram stores values in equivalence ranges; clamp so the
            // range's representative never falls outside [min, max].
            let value = h.highest_equivalent(v.value_iterated_to()).clamp(min, max);
            let slot = uppers
                .iter()
                .position(|u| value <= *u)
                .unwrap_or(uppers.len() - 1);
            counts[slot] += v.count_at_value();
        }
        let most = counts.iter().copied().max().unwrap_or(0).max(1);
        uppers
            .into_iter()
            .zip(counts)
            .map(|(upper, count)| {
                let bar = "∎".repeat((count * SUMMARY_BAR_WIDTH / most) as usize);
                (upper, count, bar)
            })
            .collect()
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_stats_add_up() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.record_ok(Duration::from_millis(1));
        b.record_ok(Duration::from_millis(3));
        b.record_error(Code::Unavailable);
        b.record_cas_failed();
        a.merge(&b);
        assert_eq!(a.ok(), 2);
        assert_eq!(a.errors(), 1);
        assert_eq!(a.cas_failed, 1);
        assert_eq!(
            a.errors_by_code().collect::<Vec<_>>(),
            [("Unavailable".to_string(), 1)]
        );
    }

    #[test]
    fn report_formats() {
        let mut stats = Stats::new();
        for ms in 1..=100 {
            stats.record_ok(Duration::from_millis(ms));
        }
        stats.record_error(Code::DeadlineExceeded);
        let report = Report {
            workload: "put".into(),
            clients: 4,
            conns: 2,
            elapsed: Duration::from_secs(2),
            stats,
        };
        assert_eq!(report.qps(), 50.0);
        let line = report.human();
        assert!(
            line.contains("requests=101 errors=1 (DeadlineExceeded:1)"),
            "{line}"
        );
        assert!(line.contains("qps=50"), "{line}");
        let json = report.json();
        assert_eq!(json["ok"], 100);
        assert_eq!(json["errors_by_code"]["DeadlineExceeded"], 1);
        let p99 = json["p99_ms"].as_f64().unwrap();
        assert!((98.0..=100.0).contains(&p99), "{p99}");
        let summary = report.summary();
        assert!(
            summary.contains("\n  Requests/sec:\t50.0000\n"),
            "{summary}"
        );
        assert!(summary.contains("\n  99.9% in 0.1"), "{summary}");
        assert!(summary.contains("\n  [1]\tDeadlineExceeded\n"), "{summary}");
        assert_eq!(histogram_total(&summary), 100, "{summary}");
    }

    #[test]
    fn summary_of_one_latency_counts_it_once() {
        let mut stats = Stats::new();
        stats.record_ok(Duration::from_millis(5));
        let report = Report {
            workload: "put".into(),
            clients: 1,
            conns: 1,
            elapsed: Duration::from_secs(1),
            stats,
        };
        assert_eq!(histogram_total(&report.summary()), 1);
    }

    /// The sum of the `[count]`s of the summary's histogram rows.
    fn histogram_total(summary: &str) -> u64 {
        summary
            .lines()
            .filter(|l| l.contains("\t|"))
            .filter_map(|l| l.split_once('[')?.1.split_once(']')?.0.parse::<u64>().ok())
            .sum()
    }
}

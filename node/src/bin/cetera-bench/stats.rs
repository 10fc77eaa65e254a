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
pub(crate) struct Stats {
    latency_us: Histogram<u64>,
    errors: [u64; CODES],
    cas_failed: u64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            errors: [0; CODES],
            cas_failed: 0,
        }
    }

    /// A request that succeeded after `latency`.
    pub(crate) fn record_ok(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
    }

    /// A transaction whose compare failed (it still completed).
    pub(crate) fn record_cas_failed(&mut self) {
        self.cas_failed += 1;
    }

    /// A request that failed with `code`.
    pub(crate) fn record_error(&mut self, code: Code) {
        let slot = (code as usize).min(CODES - 1);
        self.errors[slot] += 1;
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        self.cas_failed += other.cas_failed;
    }

    /// Requests that succeeded.
    pub(crate) fn ok(&self) -> u64 {
        self.latency_us.len()
    }

    /// Requests that failed.
    pub(crate) fn errors(&self) -> u64 {
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
    pub(crate) fn quantile_ms(&self, quantile: f64) -> f64 {
        us_to_ms(self.latency_us.value_at_quantile(quantile))
    }

    /// The mean latency in milliseconds.
    pub(crate) fn mean_ms(&self) -> f64 {
        self.latency_us.mean() / 1000.0
    }

    /// The largest latency in milliseconds.
    pub(crate) fn max_ms(&self) -> f64 {
        us_to_ms(self.latency_us.max())
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The outcome of one workload run, ready to print.
#[derive(Debug)]
pub(crate) struct Report {
    /// Workload name as shown, e.g. `put` or `range-s`.
    pub(crate) workload: String,
    pub(crate) clients: u32,
    pub(crate) conns: u32,
    /// Wall time of the measured phase.
    pub(crate) elapsed: Duration,
    pub(crate) stats: Stats,
}

impl Report {
    /// Successful requests per second.
    pub(crate) fn qps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// One line for people.
    pub(crate) fn human(&self) -> String {
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
    pub(crate) fn json(&self) -> Value {
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

pub(crate) fn round3(x: f64) -> f64 {
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
    }
}

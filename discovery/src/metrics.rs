//! Process-wide counters and the Prometheus text rendering of `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the process started. Gauges that describe stored state
/// (live tokens, registrations) are read from the store at scrape time.
#[derive(Debug, Default)]
pub struct Metrics {
    pub tokens_created: AtomicU64,
    pub tokens_expired: AtomicU64,
    pub registrations: AtomicU64,
    pub waits_started: AtomicU64,
    pub waits_blocked: AtomicU64,
    pub waits_refused: AtomicU64,
}

/// What the store reports at scrape time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Unexpired tokens.
    pub tokens: u64,
    /// Members registered under unexpired tokens.
    pub registrations: u64,
    /// Long polls blocked right now.
    pub waits: u64,
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, gauges: Gauges) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 9] = [
            (
                "cetera_discovery_tokens",
                "gauge",
                "Unexpired discovery tokens.",
                gauges.tokens,
            ),
            (
                "cetera_discovery_registrations",
                "gauge",
                "Members registered under unexpired tokens.",
                gauges.registrations,
            ),
            (
                "cetera_discovery_waits",
                "gauge",
                "Long polls (wait=true) blocked right now.",
                gauges.waits,
            ),
            (
                "cetera_discovery_tokens_created_total",
                "counter",
                "Tokens created by /new.",
                load(&self.tokens_created),
            ),
            (
                "cetera_discovery_tokens_expired_total",
                "counter",
                "Expired tokens collected.",
                load(&self.tokens_expired),
            ),
            (
                "cetera_discovery_registrations_total",
                "counter",
                "Member keys created.",
                load(&self.registrations),
            ),
            (
                "cetera_discovery_waits_total",
                "counter",
                "Long polls (wait=true) answered or started.",
                load(&self.waits_started),
            ),
            (
                "cetera_discovery_waits_blocked_total",
                "counter",
                "Long polls that had to block for a future event.",
                load(&self.waits_blocked),
            ),
            (
                "cetera_discovery_waits_refused_total",
                "counter",
                "Long polls refused because --max-waiters were already blocked.",
                load(&self.waits_refused),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_once() {
        let metrics = Metrics::default();
        Metrics::inc(&metrics.registrations);
        let text = metrics.render(Gauges {
            tokens: 2,
            registrations: 3,
            waits: 1,
        });
        assert!(text.contains("\ncetera_discovery_tokens 2\n"));
        assert!(text.contains("\ncetera_discovery_registrations 3\n"));
        assert!(text.contains("\ncetera_discovery_waits 1\n"));
        assert!(text.contains("\ncetera_discovery_registrations_total 1\n"));
        assert_eq!(text.matches("# TYPE ").count(), 9);
    }
}

//! Command-line interface: the global options shared by every workload and
//! one subcommand per workload.
//!
//! Every option is validated by clap (ranges, enums, durations), so a bad flag
//! ends in a usage message, never a panic.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Requests sent when neither `--total` nor `--duration` is given.
pub(crate) const DEFAULT_TOTAL: u64 = 10_000;

/// Hard cap on the measured phase when `--duration` is not given, so a run
/// always stops by itself even against a server that stalls.
pub(crate) const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);

/// Load generator for the etcd v3 gRPC API: the same load runs against
/// cetera and against real etcd.
#[derive(Debug, Parser)]
#[command(name = "cetera-bench", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) opts: Opts,

    #[command(subcommand)]
    pub(crate) workload: Workload,
}

/// Options shared by every workload (they may follow the subcommand).
#[derive(Debug, Args)]
pub(crate) struct Opts {
    /// Comma-separated client endpoints (host:port or http://host:port);
    /// connections are spread across them round-robin.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub(crate) endpoints: Vec<String>,

    /// Send everything to the leader, found with Maintenance.Status on each
    /// endpoint.
    #[arg(long, global = true)]
    pub(crate) target_leader: bool,

    /// Number of gRPC connections (HTTP/2 channels).
    #[arg(long, global = true, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) conns: u32,

    /// Number of concurrent clients, each with one request in flight;
    /// client i uses connection i % conns.
    #[arg(long, global = true, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) clients: u32,

    /// Total number of measured requests (default 10000 when --duration is
    /// not given either).
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) total: Option<u64>,

    /// Length of the measured phase, e.g. 30s, 500ms, 2m. With --total too,
    /// the run stops at whichever comes first. Without it a run is capped at
    /// 10 minutes.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,

    /// Per-request timeout; a request that takes longer counts as a
    /// DeadlineExceeded error.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,

    /// Key size in bytes (keys are zero-padded decimal indexes).
    #[arg(long, global = true, default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) key_size: u32,

    /// Value size in bytes.
    #[arg(long, global = true, default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(0..=2_000_000))]
    pub(crate) val_size: u32,

    /// Number of distinct keys the workload touches.
    #[arg(long, global = true, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) keyspace: u64,

    /// Walk the keyspace in order instead of picking keys at random.
    #[arg(long, global = true)]
    pub(crate) sequential_keys: bool,

    /// Print the report as one JSON line on stdout (the human line goes to
    /// stderr).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Tokio worker threads (default: one per core).
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) threads: Option<u32>,
}

/// Read consistency, as in etcd's own benchmark tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Consistency {
    /// Linearizable: the read goes through the leader's read index.
    #[value(name = "l")]
    Linearizable,
    /// Serializable: the member answers from its local state.
    #[value(name = "s")]
    Serializable,
}

/// The workloads.
#[derive(Debug, Subcommand)]
pub(crate) enum Workload {
    /// KV.Put of one key per request.
    Put,
    /// KV.Range of one key per request, on keys written before measuring.
    Range(ReadArgs),
    /// KV.Txn compare-and-swap: if mod_revision(key) == last seen then put
    /// else read it back (keys created with a create_revision == 0 guard).
    Txn,
    /// A mix of single-key reads and puts.
    Mixed(MixedArgs),
    /// Watch delivery: watchers on one prefix while a writer puts --total
    /// keys under it; reports delivered events/s and the latency from each
    /// put's send to its event's arrival.
    Watch(WatchArgs),
    /// Lease keep-alives: each client grants a lease, then sends keep-alives
    /// for it on one stream, one in flight (etcd's `lease-keepalive`).
    LeaseKeepalive,
    /// Memory per idle watch: opens watches on keys nobody writes and
    /// reports the server's resident memory growth (read from
    /// /proc/<pid>/status, so the server must run on this machine).
    WatchIdle(IdleArgs),
}

/// Options of the watch delivery workload. The writer keeps --clients puts
/// in flight on its own connection (to the leader with --target-leader,
/// else to the first endpoint); the watch streams are spread over --conns
/// connections to the endpoints.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Number of watchers, all on the same prefix.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) watchers: u32,

    /// Watch streams the watchers are spread over (default: one each).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) streams: Option<u32>,

    /// The prefix watched and written under.
    #[arg(long, default_value = "bench-watch/")]
    pub(crate) prefix: String,
}

/// Options of the idle watch workload.
#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// Number of watches, each on its own key that nobody writes.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) watchers: u32,

    /// Watch streams the watches are spread over.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) streams: u32,

    /// Prefix of the watched keys.
    #[arg(long, default_value = "bench-idle/")]
    pub(crate) prefix: String,

    /// Process id of the server the watches go to; its VmRSS is read
    /// before and after opening them.
    #[arg(long)]
    pub(crate) rss_pid: Option<u32>,

    /// How long to wait after the last watch is created before reading the
    /// server's memory (lets it finish allocating and settle).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) settle: Duration,
}

/// Options of the read workloads.
#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// l = linearizable, s = serializable.
    #[arg(long, value_enum, default_value = "l")]
    pub(crate) consistency: Consistency,

    /// Do not write the keyspace before measuring (it already exists).
    #[arg(long)]
    pub(crate) skip_populate: bool,
}

/// Options of the mixed workload.
#[derive(Debug, Args)]
pub(crate) struct MixedArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,

    /// Fraction of requests that are reads, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.9, value_parser = parse_ratio)]
    pub(crate) read_ratio: f64,
}

/// Parses `1.5s`, `500ms`, `2m`, `1h` or plain seconds (`30`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 500ms, 2m"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" => number / 1e6,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("invalid duration unit {unit:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Parses a fraction between 0 and 1 inclusive.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a number between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn ratio_is_bounded() {
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("-0.1").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "cetera-bench",
            "range",
            "--consistency",
            "s",
            "--clients",
            "64",
            "--endpoints",
            "a:1,b:2",
        ])
        .expect("valid command line");
        assert_eq!(cli.opts.clients, 64);
        assert_eq!(cli.opts.endpoints, ["a:1", "b:2"]);
        match cli.workload {
            Workload::Range(r) => assert_eq!(r.consistency, Consistency::Serializable),
            other => panic!("unexpected workload {other:?}"),
        }
    }

    #[test]
    fn watch_workloads_parse() {
        let cli = Cli::try_parse_from([
            "cetera-bench",
            "watch",
            "--watchers",
            "100",
            "--total",
            "2000",
        ])
        .expect("valid command line");
        assert_eq!(cli.opts.total, Some(2000));
        match cli.workload {
            Workload::Watch(w) => {
                assert_eq!(w.watchers, 100);
                assert_eq!(w.streams, None);
                assert_eq!(w.prefix, "bench-watch/");
            }
            other => panic!("unexpected workload {other:?}"),
        }
        let cli = Cli::try_parse_from(["cetera-bench", "watch-idle", "--rss-pid", "42"])
            .expect("valid command line");
        match cli.workload {
            Workload::WatchIdle(w) => {
                assert_eq!((w.watchers, w.streams, w.rss_pid), (10_000, 100, Some(42)));
            }
            other => panic!("unexpected workload {other:?}"),
        }
    }
}

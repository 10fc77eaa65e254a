//! Command-line flags (clap), etcdctl-style where etcdctl has the flag.

use std::time::Duration;

use clap::Parser;

use crate::app::Config;
use crate::data::normalize_endpoint;

/// The full-screen operations console for cetera and etcd clusters.
#[derive(Debug, Parser)]
#[command(name = "cetera-console", version, about)]
pub struct Args {
    /// gRPC endpoints, comma-separated (like etcdctl; `http://` is assumed).
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,

    /// No mutations: puts, deletes and every cluster action are removed.
    #[arg(long)]
    pub read_only: bool,

    /// How often to poll the cluster (e.g. 2s, 500ms, 1m).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub refresh: Duration,

    /// No colours (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,

    /// Enable the mouse (wheel scrolls the focused list).
    #[arg(long)]
    pub mouse: bool,

    /// Print the cluster view as plain text to stdout and exit.
    #[arg(long)]
    pub once: bool,
}

impl Args {
    /// The core's settings.
    pub fn config(&self) -> Config {
        Config {
            endpoints: self
                .endpoints
                .iter()
                .filter(|e| !e.trim().is_empty())
                .map(|e| normalize_endpoint(e))
                .collect(),
            read_only: self.read_only,
            refresh: self.refresh,
        }
    }

    /// Whether to draw colours (`--no-color` and `NO_COLOR` turn them off).
    pub fn color(&self) -> bool {
        color_wanted(self.no_color, std::env::var_os("NO_COLOR").as_deref())
    }
}

/// Colours unless `--no-color` or a non-empty `NO_COLOR` (no-color.org).
pub fn color_wanted(no_color_flag: bool, no_color_env: Option<&std::ffi::OsStr>) -> bool {
    !no_color_flag && no_color_env.is_none_or(|v| v.is_empty())
}

/// "2s", "500ms", "1m", "1.5s" or plain seconds ("3").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("not a duration: {s:?} (use ms, s or m)")),
    };
    if !(0.1..=3600.0).contains(&secs) {
        return Err(format!("{s:?} is out of range (100ms..1h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn no_color_flag_and_env() {
        use std::ffi::OsStr;
        assert!(color_wanted(false, None));
        assert!(!color_wanted(true, None));
        assert!(!color_wanted(false, Some(OsStr::new("1"))));
        assert!(
            color_wanted(false, Some(OsStr::new(""))),
            "empty means unset"
        );
        let args = Args::parse_from(["cetera-console", "--no-color"]);
        assert!(args.no_color && !args.color());
    }

    #[test]
    fn defaults() {
        let args = Args::parse_from(["cetera-console", "--endpoints", "h:1"]);
        let config = args.config();
        assert_eq!(
            config.refresh,
            Duration::from_secs(2),
            "every 2 s by default"
        );
        assert!(!config.read_only && !args.mouse && !args.once && !args.no_color);
    }

    #[test]
    fn flags() {
        let args = Args::parse_from([
            "cetera-console",
            "--read-only",
            "--mouse",
            "--once",
            "--refresh",
            "750ms",
        ]);
        assert!(args.read_only && args.mouse && args.once);
        let config = args.config();
        assert!(config.read_only);
        assert_eq!(config.refresh, Duration::from_millis(750));
        assert!(Args::try_parse_from(["cetera-console", "--refresh", "0s"]).is_err());
    }

    #[test]
    fn endpoints_like_etcdctl() {
        let args = Args::parse_from(["cetera-console", "--endpoints", "127.0.0.1:1,http://h:2"]);
        assert_eq!(
            args.config().endpoints,
            ["http://127.0.0.1:1", "http://h:2"]
        );
    }
}

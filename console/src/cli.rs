//! Command-line flags (clap), etcdctl-style where etcdctl has the flag.

use std::time::Duration;

use cetera::client_auth::UserFlags;
use cetera::client_tls::TlsFlags;
use clap::Parser;

use crate::app::Config;
use crate::data::normalize_endpoint;

/// The full-screen operations console for cetera and etcd clusters.
#[derive(Debug, Parser)]
#[command(name = "cetera-console", version, about)]
pub struct Args {
    /// gRPC endpoints, comma-separated (like etcdctl; `http://` is assumed,
    /// `https://` when a TLS file is given or --insecure-transport=false).
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

    /// Verify the servers' certificates with this CA bundle (PEM; the
    /// system's CAs without it).
    #[arg(long, env = "ETCDCTL_CACERT", value_name = "FILE")]
    pub cacert: Option<String>,

    /// Identify the console with this TLS client certificate (PEM).
    #[arg(long, env = "ETCDCTL_CERT", value_name = "FILE")]
    pub cert: Option<String>,

    /// The private key of --cert (PEM).
    #[arg(long, env = "ETCDCTL_KEY", value_name = "FILE")]
    pub key: Option<String>,

    /// Disable transport security for endpoints without a scheme
    /// (`https://` ones always use TLS, `http://` ones never).
    #[arg(
        long,
        env = "ETCDCTL_INSECURE_TRANSPORT",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub insecure_transport: bool,

    /// Skip server certificate verification (dangerous).
    #[arg(
        long,
        env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub insecure_skip_tls_verify: bool,

    /// Authenticate as this user (`name:password`, or `name` and the
    /// password from --password or asked for on the terminal).
    #[arg(long, env = "ETCDCTL_USER", value_name = "NAME[:PASSWORD]")]
    pub user: Option<String>,

    /// The password of --user (which then must not hold one).
    #[arg(long, env = "ETCDCTL_PASSWORD", value_name = "PASSWORD")]
    pub password: Option<String>,
}

impl Args {
    /// The core's settings.
    pub fn config(&self) -> Config {
        let bare_tls = self.tls().is_ok_and(|t| t.bare_endpoints_use_tls());
        Config {
            endpoints: self
                .endpoints
                .iter()
                .filter(|e| !e.trim().is_empty())
                .map(|e| normalize_endpoint(e, bare_tls))
                .collect(),
            read_only: self.read_only,
            refresh: self.refresh,
        }
    }

    /// The TLS flags, as etcdctl's; an empty file name is refused with
    /// etcdctl's message.
    pub fn tls(&self) -> Result<TlsFlags, String> {
        for (flag, value) in [
            ("cert", &self.cert),
            ("key", &self.key),
            ("cacert", &self.cacert),
        ] {
            if value.as_deref() == Some("") {
                return Err(format!("empty string is passed to --{flag} option"));
            }
        }
        Ok(TlsFlags {
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            insecure_transport: self.insecure_transport,
            insecure_skip_verify: self.insecure_skip_tls_verify,
        })
    }

    /// `--user`/`--password` with etcdctl's rules.
    pub fn user_flags(&self) -> UserFlags {
        UserFlags::from_flags(self.user.as_deref(), self.password.as_deref())
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

/// A boolean as Go's `strconv.ParseBool` reads it (etcdctl's flags and
/// `ETCDCTL_*` variables): 1/t/T/TRUE/true/True or 0/f/F/FALSE/false/False.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (use true or false)")),
    }
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
    fn tls_flags_like_etcdctl() {
        let args = Args::parse_from(["cetera-console", "--endpoints", "h:1"]);
        assert_eq!(args.tls(), Ok(TlsFlags::etcdctl_defaults()));
        let args = Args::parse_from([
            "cetera-console",
            "--endpoints",
            "h:1,http://h:2,https://h:3",
            "--cacert",
            "ca.pem",
            "--cert=c.pem",
            "--key",
            "k.pem",
            "--insecure-skip-tls-verify",
        ]);
        assert_eq!(
            args.tls(),
            Ok(TlsFlags {
                cacert: Some("ca.pem".into()),
                cert: Some("c.pem".into()),
                key: Some("k.pem".into()),
                insecure_transport: true,
                insecure_skip_verify: true,
            })
        );
        // A TLS file turns scheme-less endpoints to https; explicit schemes stay.
        assert_eq!(
            args.config().endpoints,
            ["https://h:1", "http://h:2", "https://h:3"]
        );
        let args = Args::parse_from([
            "cetera-console",
            "--endpoints",
            "h:1",
            "--insecure-transport=false",
        ]);
        assert!(!args.insecure_transport);
        assert_eq!(args.config().endpoints, ["https://h:1"]);
        let args = Args::parse_from(["cetera-console", "--insecure-transport=F"]);
        assert!(!args.insecure_transport);
        assert!(Args::try_parse_from(["cetera-console", "--insecure-transport=maybe"]).is_err());
        let args = Args::parse_from(["cetera-console", "--cacert", ""]);
        assert_eq!(
            args.tls(),
            Err("empty string is passed to --cacert option".to_string())
        );
    }

    #[test]
    fn tls_flags_read_etcdctl_variables() {
        use clap::CommandFactory;
        let command = Args::command();
        let env = |flag: &str| {
            command
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        for (flag, var) in [
            ("endpoints", "ETCDCTL_ENDPOINTS"),
            ("cacert", "ETCDCTL_CACERT"),
            ("cert", "ETCDCTL_CERT"),
            ("key", "ETCDCTL_KEY"),
            ("insecure-transport", "ETCDCTL_INSECURE_TRANSPORT"),
            (
                "insecure-skip-tls-verify",
                "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
            ),
            ("user", "ETCDCTL_USER"),
            ("password", "ETCDCTL_PASSWORD"),
        ] {
            assert_eq!(env(flag).as_deref(), Some(var), "--{flag}");
        }
    }

    #[test]
    fn credentials_like_etcdctl() {
        use cetera::client_auth::Credentials;
        let args = Args::parse_from(["cetera-console"]);
        assert_eq!(args.user_flags(), UserFlags::Anonymous);
        let args = Args::parse_from(["cetera-console", "--user", "root:pw"]);
        let root = |password: &str| {
            UserFlags::Complete(Credentials {
                name: "root".into(),
                password: password.into(),
            })
        };
        assert_eq!(args.user_flags(), root("pw"));
        let args = Args::parse_from(["cetera-console", "--user=root", "--password=secret"]);
        assert_eq!(args.user_flags(), root("secret"));
        let args = Args::parse_from(["cetera-console", "--user=root"]);
        assert_eq!(
            args.user_flags(),
            UserFlags::PasswordMissing {
                name: "root".into()
            }
        );
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Ok(false), "{f}");
        }
        assert!(parse_go_bool("yes").is_err());
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

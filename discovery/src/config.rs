//! Command line and `CETERA_DISCOVERY_*` variables, validated once into
//! [`Config`]. Nothing else reads the command line or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The flags of `cetera-discovery`; every one can also come from its
/// `CETERA_DISCOVERY_*` variable (the flag wins when both are given).
#[derive(Debug, Parser)]
#[command(
    name = "cetera-discovery",
    version,
    about = "Discovery service for bootstrapping etcd and cetera clusters (`--discovery=<url>`)"
)]
pub struct Args {
    /// Address to listen on for HTTP.
    #[arg(
        long,
        env = "CETERA_DISCOVERY_LISTEN_ADDR",
        default_value = "127.0.0.1:8087"
    )]
    pub listen_addr: String,

    /// Base of the discovery URLs handed out by /new (`<advertise-url>/<token>`).
    /// Defaults to `http://<listen-addr>`; required when listening on a
    /// wildcard address.
    #[arg(long, env = "CETERA_DISCOVERY_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Directory holding the token database (created if missing).
    #[arg(
        long,
        env = "CETERA_DISCOVERY_DATA_DIR",
        default_value = "default.cetera-discovery"
    )]
    pub data_dir: PathBuf,

    /// How long a token lives after /new created it (e.g. 7d, 168h, 90m, 30s).
    #[arg(long, env = "CETERA_DISCOVERY_TOKEN_TTL", default_value = "7d")]
    pub token_ttl: String,

    /// Largest cluster size /new accepts.
    #[arg(long, env = "CETERA_DISCOVERY_MAX_SIZE", default_value_t = 64)]
    pub max_size: u64,

    /// Most live (unexpired) tokens at once; /new is refused beyond it.
    #[arg(long, env = "CETERA_DISCOVERY_MAX_TOKENS", default_value_t = 100_000)]
    pub max_tokens: u64,

    /// Most long polls (`wait=true`) blocked at once; more are refused with 503.
    #[arg(long, env = "CETERA_DISCOVERY_MAX_WAITERS", default_value_t = 10_000)]
    pub max_waiters: usize,

    /// Longest a long poll is held before it ends with an empty 200 body
    /// (etcd's client then polls again from the same index).
    #[arg(long, env = "CETERA_DISCOVERY_WAIT_TIMEOUT", default_value = "5m")]
    pub wait_timeout: String,

    /// Log level or tracing filter (e.g. info, debug, discovery=trace).
    #[arg(long, env = "CETERA_DISCOVERY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen_addr: SocketAddr,
    /// Without a trailing slash.
    pub advertise_url: String,
    pub data_dir: PathBuf,
    pub token_ttl: Duration,
    pub max_size: u64,
    pub max_tokens: u64,
    pub max_waiters: usize,
    pub wait_timeout: Duration,
    pub log_level: String,
}

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--listen-addr {value:?} is not an IP:port address")]
    ListenAddr { value: String },
    #[error("--advertise-url {value:?}: {reason}")]
    AdvertiseUrl { value: String, reason: &'static str },
    #[error(
        "--advertise-url is required when --listen-addr is a wildcard address ({addr}): \
         clients need a reachable host in the discovery URL"
    )]
    AdvertiseUrlRequired { addr: SocketAddr },
    #[error("--{flag} {value:?}: {reason}")]
    Duration {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("--{flag} must be at least 1")]
    Zero { flag: &'static str },
}

impl Config {
    /// Validates the parsed flags.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let listen_addr: SocketAddr =
            args.listen_addr
                .parse()
                .map_err(|_| ConfigError::ListenAddr {
                    value: args.listen_addr.clone(),
                })?;
        let advertise_url = match args.advertise_url {
            Some(url) => validate_advertise_url(&url)?,
            None if listen_addr.ip().is_unspecified() => {
                return Err(ConfigError::AdvertiseUrlRequired { addr: listen_addr });
            }
            None => format!("http://{listen_addr}"),
        };
        let token_ttl =
            parse_duration(&args.token_ttl).map_err(|reason| ConfigError::Duration {
                flag: "token-ttl",
                value: args.token_ttl.clone(),
                reason,
            })?;
        let wait_timeout =
            parse_duration(&args.wait_timeout).map_err(|reason| ConfigError::Duration {
                flag: "wait-timeout",
                value: args.wait_timeout.clone(),
                reason,
            })?;
        if args.max_size == 0 {
            return Err(ConfigError::Zero { flag: "max-size" });
        }
        if args.max_tokens == 0 {
            return Err(ConfigError::Zero { flag: "max-tokens" });
        }
        if args.max_waiters == 0 {
            return Err(ConfigError::Zero {
                flag: "max-waiters",
            });
        }
        Ok(Config {
            listen_addr,
            advertise_url,
            data_dir: args.data_dir,
            token_ttl,
            max_size: args.max_size,
            max_tokens: args.max_tokens,
            max_waiters: args.max_waiters,
            wait_timeout,
            log_level: args.log_level,
        })
    }
}

/// Checks that `url` is an absolute http(s) URL without query or fragment and
/// returns it without trailing slashes.
fn validate_advertise_url(url: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::AdvertiseUrl {
        value: url.to_string(),
        reason,
    };
    let trimmed = url.trim_end_matches('/');
    let uri: http::Uri = trimmed.parse().map_err(|_| bad("not a valid URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(bad("the URL needs a host"));
    }
    if trimmed.contains(['?', '#']) {
        return Err(bad("the URL must not have a query or fragment"));
    }
    Ok(trimmed.to_string())
}

/// Parses a duration such as `7d`, `168h`, `1h30m`, `90s` or `500ms`.
/// Units: `ms`, `s`, `m`, `h`, `d`; at least one part; the total must be > 0.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "expected a number at {rest:?} (e.g. 7d, 168h, 30s)"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large in {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("missing unit after {number} (ms, s, m, h or d)")),
            other => return Err(format!("unknown unit {other:?} (ms, s, m, h or d)")),
        };
        rest = &rest[unit_len..];
        let part = number
            .checked_mul(unit_ms)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{text:?} is too long"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{text:?} is too long"))?;
    }
    if total.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["cetera-discovery"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
        for bad in [
            "",
            "0s",
            "7",
            "d",
            "7w",
            "1.5h",
            "-1s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn defaults() {
        let config = Config::from_args(args(&[])).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8087");
        assert_eq!(config.advertise_url, "http://127.0.0.1:8087");
        assert_eq!(config.token_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(config.max_size, 64);
    }

    #[test]
    fn advertise_url_rules() {
        let config =
            Config::from_args(args(&["--advertise-url", "https://d.example.com/"])).unwrap();
        assert_eq!(config.advertise_url, "https://d.example.com");
        for bad in ["d.example.com", "ftp://x", "http://x/?a=b", "http://"] {
            assert!(
                Config::from_args(args(&["--advertise-url", bad])).is_err(),
                "{bad:?} should be refused"
            );
        }
        let err = Config::from_args(args(&["--listen-addr", "0.0.0.0:8087"])).unwrap_err();
        assert!(matches!(err, ConfigError::AdvertiseUrlRequired { .. }));
        assert!(
            Config::from_args(args(&[
                "--listen-addr",
                "0.0.0.0:8087",
                "--advertise-url",
                "http://10.0.0.1:8087"
            ]))
            .is_ok()
        );
    }

    #[test]
    fn limits_must_be_positive() {
        for flag in ["--max-size", "--max-tokens", "--max-waiters"] {
            assert!(Config::from_args(args(&[flag, "0"])).is_err(), "{flag}");
        }
        assert!(Config::from_args(args(&["--listen-addr", "localhost"])).is_err());
    }
}

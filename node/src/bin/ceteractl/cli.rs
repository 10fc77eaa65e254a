//! The command line: etcdctl's commands and flags (clap), pflag's value
//! syntax (`--flag=false`, Go durations and integers), `ETCDCTL_*`
//! variables with etcdctl's precedence, and etcdctl's wording for command
//! line errors.

use std::ffi::OsString;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::client::{Client, ClientConfig};
use crate::error::{CtlError, CtlResult, EXIT_ERROR};
use crate::gofmt;
use crate::printer::{self, Format, Printer};
use cetera::client_auth::{Credentials, UserFlags, ask_password};
use cetera::client_tls::TlsFlags;

pub(crate) fn parse_go_bool(s: &str) -> Result<bool, String> {
    gofmt::parse_bool(s)
}

pub(crate) fn parse_go_int(s: &str) -> Result<i64, String> {
    gofmt::parse_int_base0(s)
}

fn parse_go_duration(s: &str) -> Result<Duration, String> {
    gofmt::parse_duration(s)
}

/// A simple command line client for etcd-API servers (cetera, etcd).
#[derive(Parser, Debug)]
#[command(
    name = "ceteractl",
    about = "A command line client for cetera and etcd (v3 API), compatible with etcdctl 3.4.",
    infer_subcommands = true,
    arg_required_else_help = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(crate) struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// etcdctl's global flags. Each is optional so that an `ETCDCTL_*`
/// variable can stand in for a flag that is absent.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct GlobalArgs {
    /// gRPC endpoints [default: 127.0.0.1:2379]
    #[arg(long, global = true, value_delimiter = ',')]
    pub(crate) endpoints: Option<Vec<String>>,
    /// enable client-side debug logging
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub(crate) debug: Option<bool>,
    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(short = 'w', long = "write-out", global = true)]
    pub(crate) write_out: Option<String>,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub(crate) hex: Option<bool>,
    /// dial timeout for client connections [default: 2s]
    #[arg(long, global = true, value_parser = parse_go_duration)]
    pub(crate) dial_timeout: Option<Duration>,
    /// timeout for short running command (excluding dial timeout) [default: 5s]
    #[arg(long, global = true, value_parser = parse_go_duration)]
    pub(crate) command_timeout: Option<Duration>,
    /// keepalive time for client connections [default: 2s]
    #[arg(long, global = true, value_parser = parse_go_duration)]
    pub(crate) keepalive_time: Option<Duration>,
    /// keepalive timeout for client connections [default: 6s]
    #[arg(long, global = true, value_parser = parse_go_duration)]
    pub(crate) keepalive_timeout: Option<Duration>,
    /// disable transport security for client connections [default: true]
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub(crate) insecure_transport: Option<bool>,
    /// accept insecure SRV records describing cluster endpoints [default: true]
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub(crate) insecure_discovery: Option<bool>,
    /// skip server certificate verification
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub(crate) insecure_skip_tls_verify: Option<bool>,
    /// identify secure client using this TLS certificate file
    #[arg(long, global = true)]
    pub(crate) cert: Option<String>,
    /// identify secure client using this TLS key file
    #[arg(long, global = true)]
    pub(crate) key: Option<String>,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(long, global = true)]
    pub(crate) cacert: Option<String>,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, global = true)]
    pub(crate) user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(long, global = true)]
    pub(crate) password: Option<String>,
    /// domain name to query for SRV records describing cluster endpoints (not supported)
    #[arg(short = 'd', long, global = true)]
    pub(crate) discovery_srv: Option<String>,
    /// service name to query when using DNS discovery (not supported)
    #[arg(long, global = true)]
    pub(crate) discovery_srv_name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Gets the key or a range of keys
    Get(crate::kv::GetArgs),
    /// Puts the given key into the store
    Put(crate::kv::PutArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(crate::kv::DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(crate::txn::TxnArgs),
    /// Compacts the event history in etcd
    Compaction(crate::kv::CompactionArgs),
    /// Alarm related commands
    #[command(subcommand, arg_required_else_help = true)]
    Alarm(crate::maintenance::AlarmCommand),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(crate::maintenance::DefragArgs),
    /// Endpoint related commands
    Endpoint(crate::endpoint::EndpointArgs),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader(crate::maintenance::MoveLeaderArgs),
    /// Watches events stream on keys or prefixes
    Watch(crate::watch::WatchArgs),
    /// Prints the version of ceteractl
    Version,
    /// Enable or disable authentication
    #[command(subcommand, arg_required_else_help = true)]
    Auth(crate::auth::AuthCommand),
    /// User related commands
    #[command(subcommand, arg_required_else_help = true)]
    User(crate::auth::UserCommand),
    /// Role related commands
    #[command(subcommand, arg_required_else_help = true)]
    Role(crate::auth::RoleCommand),
    /// Lease related commands
    #[command(subcommand, arg_required_else_help = true)]
    Lease(crate::lease::LeaseCommand),
    /// Membership related commands
    #[command(subcommand, arg_required_else_help = true)]
    Member(crate::member::MemberCommand),
    /// Manages etcd node snapshots
    #[command(subcommand, arg_required_else_help = true)]
    Snapshot(crate::snapshot::SnapshotCommand),
    /// Acquires a named lock
    Lock(crate::concurrency::LockArgs),
    /// Observes and participates in leader election
    Elect(crate::concurrency::ElectArgs),
    /// commands for checking properties of the etcd cluster
    #[command(subcommand, arg_required_else_help = true)]
    Check(crate::check::CheckCommand),
    /// Loads keys from JSON, a JSON array or NDJSON (FILE or - for stdin), in batched transactions
    Import(crate::bulk::ImportArgs),
    /// Writes keys as NDJSON ({"key","value","lease"} per line), the format import reads
    Export(crate::bulk::ExportArgs),
    /// Discovery service commands (a token URL for cetera --discovery)
    #[command(subcommand, arg_required_else_help = true)]
    Discovery(crate::discovery::DiscoveryCommand),
    /// Benchmarks put, get, txn or watch like etcd's benchmark tool (throughput, latency percentiles)
    #[command(subcommand, arg_required_else_help = true)]
    Bench(crate::bench::BenchCommand),
    /// Prints a shell completion script (bash, zsh or fish)
    Completion {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

/// What the command line asked for, with the environment applied.
pub(crate) struct Parsed {
    pub(crate) global: GlobalArgs,
    pub(crate) command: Command,
}

/// Everything a command needs: the (env-applied) global flags, from which
/// the printer and the client are made when the command gets to them (so
/// argument errors come first, as in etcdctl).
pub(crate) struct Ctx {
    pub(crate) global: GlobalArgs,
    /// `--user`/`--password`, resolved (and the password asked for) on
    /// first use only.
    credentials: std::sync::OnceLock<Option<Credentials>>,
}

impl Ctx {
    pub(crate) fn new(global: GlobalArgs) -> Ctx {
        Ctx {
            global,
            credentials: std::sync::OnceLock::new(),
        }
    }

    /// The printer chosen with `-w` and `--hex`.
    pub(crate) fn printer(&self) -> CtlResult<Printer> {
        let format = Format::parse(self.global.write_out.as_deref().unwrap_or("simple"))?;
        Ok(Printer {
            format,
            hex: self.global.hex.unwrap_or(false),
            value_only: false,
        })
    }

    /// Client settings (etcdctl's `clientConfigFromCmd`).
    pub(crate) fn config(&self) -> CtlResult<ClientConfig> {
        let mut config = client_config(&self.global)?;
        config.auth = self.credentials()?;
        Ok(config)
    }

    /// The credentials of `--user`/`--password`, asking for a missing
    /// password (etcdctl's `Password: ` prompt) the first time only.
    fn credentials(&self) -> CtlResult<Option<Credentials>> {
        if let Some(c) = self.credentials.get() {
            return Ok(c.clone());
        }
        let flags =
            UserFlags::from_flags(self.global.user.as_deref(), self.global.password.as_deref());
        let resolved = flags
            .resolve(|_| ask_password("Password: "))
            .map_err(|e| CtlError::error(e.to_string()))?;
        Ok(self.credentials.get_or_init(|| resolved).clone())
    }

    /// A client (connecting on first use).
    pub(crate) fn client(&self) -> CtlResult<Client> {
        Client::new(self.config()?)
    }
}

/// The flags that `ETCDCTL_<FLAG>` can set for every command.
const GLOBAL_FLAGS: &[&str] = &[
    "endpoints",
    "debug",
    "write-out",
    "hex",
    "dial-timeout",
    "command-timeout",
    "keepalive-time",
    "keepalive-timeout",
    "insecure-transport",
    "insecure-discovery",
    "insecure-skip-tls-verify",
    "cert",
    "key",
    "cacert",
    "user",
    "password",
    "discovery-srv",
    "discovery-srv-name",
];

/// pflag's `FlagToEnv`: `dial-timeout` -> `ETCDCTL_DIAL_TIMEOUT`.
pub(crate) fn flag_to_env(flag: &str) -> String {
    format!("ETCDCTL_{}", flag.replace('-', "_").to_uppercase())
}

/// Parses the command line, reporting errors the way etcdctl (cobra and
/// pflag) does.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> CtlResult<Parsed> {
    let args: Vec<OsString> = args.into_iter().collect();
    let command = Cli::command();
    let matches = match command.clone().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return Err(report_clap_error(e, &args)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| report_clap_error(e, &args))?;
    Ok(Parsed {
        global: cli.global,
        command: cli.command,
    })
}

fn context_string(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    }
}

/// The flag's name as pflag shows it: `--limit <LIMIT>` -> `--limit`.
fn flag_name(arg: &str) -> String {
    arg.split([' ', '=', '[']).next().unwrap_or(arg).to_string()
}

fn report_clap_error(e: clap::Error, args: &[OsString]) -> CtlError {
    let kind = e.kind();
    match kind {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // etcdctl prints usage on stdout and exits 0.
            printer::out(e.render().to_string());
            return CtlError::exit(0);
        }
        _ => {}
    }
    let message = match kind {
        ErrorKind::UnknownArgument => {
            let arg = context_string(&e, ContextKind::InvalidArg).unwrap_or_default();
            if arg.starts_with("--") || arg.len() < 2 || !arg.starts_with('-') {
                format!("unknown flag: {}", flag_name(&arg))
            } else {
                let c = arg.chars().nth(1).unwrap_or('-');
                format!("unknown shorthand flag: '{c}' in {arg}")
            }
        }
        ErrorKind::InvalidSubcommand => {
            let sub = context_string(&e, ContextKind::InvalidSubcommand).unwrap_or_default();
            let msg = format!("unknown command {:?} for \"ceteractl\"", sub);
            printer::err(format!(
                "Error: {msg}\nRun 'ceteractl --help' for usage.\nError: {msg}\n"
            ));
            return CtlError::exit(EXIT_ERROR);
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::NoEquals => {
            let arg = flag_name(&context_string(&e, ContextKind::InvalidArg).unwrap_or_default());
            let value = context_string(&e, ContextKind::InvalidValue).unwrap_or_default();
            if value.is_empty() && kind != ErrorKind::ValueValidation {
                format!("flag needs an argument: {arg}")
            } else {
                let reason = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| first_line(&e));
                format!("invalid argument {value:?} for {arg:?} flag: {reason}")
            }
        }
        _ => first_line(&e),
    };
    // cobra prints the error, the usage (stdout), then etcdctl prints the
    // error again.
    let usage = usage_for(args);
    printer::err(format!("Error: {message}\n"));
    printer::out(usage);
    printer::err(format!("\nError: {message}\n"));
    CtlError::exit(EXIT_ERROR)
}

fn first_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    rendered
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

/// The help text of the (sub)command named on the command line.
fn usage_for(args: &[OsString]) -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let mut current = cmd;
    for arg in args.iter().skip(1) {
        let Some(arg) = arg.to_str() else { break };
        if arg.starts_with('-') {
            continue;
        }
        let next = current
            .get_subcommands()
            .find(|s| s.get_name() == arg)
            .cloned();
        match next {
            Some(sub) => current = sub,
            None => break,
        }
    }
    current.render_help().to_string()
}

/// Applies `ETCDCTL_*` variables to the flags the command line left unset
/// (etcdctl's `SetPflagsFromEnv`): a variable set together with its flag is
/// a fatal conflict, an unknown `ETCDCTL_` variable a warning, and a value
/// that does not parse is ignored.
pub(crate) fn apply_env(
    global: &mut GlobalArgs,
    extra: &mut [(&str, &mut Option<bool>)],
) -> CtlResult<()> {
    let mut known: Vec<String> = GLOBAL_FLAGS.iter().map(|f| flag_to_env(f)).collect();
    known.extend(extra.iter().map(|(f, _)| flag_to_env(f)));
    let env = |flag: &str| -> Option<String> {
        std::env::var(flag_to_env(flag))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let mut conflict: Option<String> = None;
    macro_rules! take {
        ($field:expr, $flag:literal, $parse:expr) => {
            if let Some(v) = env($flag) {
                if $field.is_some() {
                    conflict.get_or_insert(flag_to_env($flag));
                } else if let Ok(parsed) = $parse(&v) {
                    $field = Some(parsed);
                }
            }
        };
    }
    let list = |v: &str| -> Result<Vec<String>, ()> {
        Ok(v.split(',').map(|s| s.trim().to_string()).collect())
    };
    let text = |v: &str| -> Result<String, ()> { Ok(v.to_string()) };
    take!(global.endpoints, "endpoints", list);
    take!(global.debug, "debug", gofmt::parse_bool);
    take!(global.write_out, "write-out", text);
    take!(global.hex, "hex", gofmt::parse_bool);
    take!(global.dial_timeout, "dial-timeout", gofmt::parse_duration);
    take!(
        global.command_timeout,
        "command-timeout",
        gofmt::parse_duration
    );
    take!(
        global.keepalive_time,
        "keepalive-time",
        gofmt::parse_duration
    );
    take!(
        global.keepalive_timeout,
        "keepalive-timeout",
        gofmt::parse_duration
    );
    take!(
        global.insecure_transport,
        "insecure-transport",
        gofmt::parse_bool
    );
    take!(
        global.insecure_discovery,
        "insecure-discovery",
        gofmt::parse_bool
    );
    take!(
        global.insecure_skip_tls_verify,
        "insecure-skip-tls-verify",
        gofmt::parse_bool
    );
    take!(global.cert, "cert", text);
    take!(global.key, "key", text);
    take!(global.cacert, "cacert", text);
    take!(global.user, "user", text);
    take!(global.password, "password", text);
    take!(global.discovery_srv, "discovery-srv", text);
    take!(global.discovery_srv_name, "discovery-srv-name", text);
    for (flag, field) in extra.iter_mut() {
        if let Some(v) = env(flag) {
            if field.is_some() {
                conflict.get_or_insert(flag_to_env(flag));
            } else if let Ok(b) = gofmt::parse_bool(&v) {
                **field = Some(b);
            }
        }
    }
    if let Some(var) = conflict {
        printer::err(format!(
            "{} C | pkg/flags: conflicting environment variable {var:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n",
            gofmt::log_timestamp()
        ));
        return Err(CtlError::exit(EXIT_ERROR));
    }
    let mut warnings = String::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("ETCDCTL_") && key != "ETCDCTL_API" && !known.iter().any(|k| k == key) {
            warnings.push_str(&format!(
                "{} W | pkg/flags: unrecognized environment variable {key}={}\n",
                gofmt::log_timestamp(),
                value.to_string_lossy()
            ));
        }
    }
    printer::err(warnings);
    Ok(())
}

/// Client settings from the (env-applied) flags; also checks `-w`, as
/// etcdctl does when it makes a client.
pub(crate) fn client_config(global: &GlobalArgs) -> CtlResult<ClientConfig> {
    for (flag, value) in [
        ("cert", &global.cert),
        ("key", &global.key),
        ("cacert", &global.cacert),
    ] {
        if value.as_deref() == Some("") {
            return Err(CtlError::bad_args(format!(
                "empty string is passed to --{flag} option"
            )));
        }
    }
    let tls = TlsFlags {
        cacert: global.cacert.clone(),
        cert: global.cert.clone(),
        key: global.key.clone(),
        insecure_transport: global.insecure_transport.unwrap_or(true),
        insecure_skip_verify: global.insecure_skip_tls_verify.unwrap_or(false),
    };
    Format::parse(global.write_out.as_deref().unwrap_or("simple"))?;
    let endpoints = global
        .endpoints
        .clone()
        .unwrap_or_else(|| vec!["127.0.0.1:2379".to_string()])
        .into_iter()
        .map(|e| e.trim().to_string())
        .collect();
    Ok(ClientConfig {
        endpoints,
        dial_timeout: global.dial_timeout.unwrap_or(Duration::from_secs(2)),
        command_timeout: global.command_timeout.unwrap_or(Duration::from_secs(5)),
        command_timeout_set: global.command_timeout.is_some(),
        keepalive_time: global.keepalive_time.unwrap_or(Duration::from_secs(2)),
        keepalive_timeout: global.keepalive_timeout.unwrap_or(Duration::from_secs(6)),
        auth: None,
        tls,
    })
}

/// Runs the parsed command.
pub(crate) async fn dispatch(parsed: Parsed) -> CtlResult<()> {
    let Parsed {
        mut global,
        command,
    } = parsed;
    match command {
        Command::Version => {
            printer::out(format!(
                "ceteractl version: {}\nAPI version: 3.4\n",
                env!("CARGO_PKG_VERSION")
            ));
            Ok(())
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ceteractl", &mut script);
            printer::out(script);
            Ok(())
        }
        Command::Endpoint(mut args) => {
            let mut cluster = args.cluster;
            apply_env(&mut global, &mut [("cluster", &mut cluster)])?;
            args.cluster = cluster;
            let ctx = Ctx::new(global);
            crate::endpoint::run(&ctx, args).await
        }
        Command::Watch(args) => {
            apply_env(&mut global, &mut [])?;
            let ctx = Ctx::new(global);
            crate::watch::run(&ctx, args).await
        }
        other => {
            apply_env(&mut global, &mut [])?;
            let ctx = Ctx::new(global);
            run_command(&ctx, other).await
        }
    }
}

async fn run_command(ctx: &Ctx, command: Command) -> CtlResult<()> {
    match command {
        Command::Get(a) => crate::kv::get(ctx, a).await,
        Command::Put(a) => crate::kv::put(ctx, a).await,
        Command::Del(a) => crate::kv::del(ctx, a).await,
        Command::Txn(a) => crate::txn::run(ctx, a).await,
        Command::Compaction(a) => crate::kv::compaction(ctx, a).await,
        Command::Alarm(c) => crate::maintenance::alarm(ctx, c).await,
        Command::Defrag(a) => crate::maintenance::defrag(ctx, a).await,
        Command::MoveLeader(a) => crate::maintenance::move_leader(ctx, a).await,
        Command::Auth(c) => crate::auth::auth(ctx, c).await,
        Command::User(c) => crate::auth::user(ctx, c).await,
        Command::Role(c) => crate::auth::role(ctx, c).await,
        Command::Lease(c) => crate::lease::run(ctx, c).await,
        Command::Member(c) => crate::member::run(ctx, c).await,
        Command::Snapshot(c) => crate::snapshot::run(ctx, c).await,
        Command::Lock(a) => crate::concurrency::lock(ctx, a).await,
        Command::Elect(a) => crate::concurrency::elect(ctx, a).await,
        Command::Check(c) => crate::check::run(ctx, c).await,
        Command::Import(a) => crate::bulk::import(ctx, a).await,
        Command::Export(a) => crate::bulk::export(ctx, a).await,
        Command::Discovery(c) => crate::discovery::run(c).await,
        Command::Bench(c) => crate::bench::run(ctx, c).await,
        Command::Version
        | Command::Completion { .. }
        | Command::Endpoint(_)
        | Command::Watch(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Parsed {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match parse(args) {
            Ok(p) => p,
            Err(e) => panic!("parse failed: {e:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_may_follow_arguments_and_bools_take_values() {
        let p = parse_ok(&[
            "ceteractl",
            "get",
            "a",
            "--prefix=false",
            "--limit=0x10",
            "-w",
            "json",
        ]);
        let Command::Get(g) = p.command else {
            panic!("not get")
        };
        assert!(!g.prefix);
        assert_eq!(g.limit, 16);
        assert_eq!(p.global.write_out.as_deref(), Some("json"));
        let p = parse_ok(&["ceteractl", "--endpoints=a:1,b:2", "get", "k", "--prefix"]);
        assert_eq!(
            p.global.endpoints,
            Some(vec!["a:1".to_string(), "b:2".to_string()])
        );
        let Command::Get(g) = p.command else {
            panic!("not get")
        };
        assert!(g.prefix);
    }

    #[test]
    fn subcommands_match_by_prefix() {
        let p = parse_ok(&["ceteractl", "memb", "list"]);
        assert!(matches!(p.command, Command::Member(_)));
    }

    #[test]
    fn env_names_follow_pflag() {
        assert_eq!(flag_to_env("dial-timeout"), "ETCDCTL_DIAL_TIMEOUT");
        assert_eq!(flag_to_env("write-out"), "ETCDCTL_WRITE_OUT");
    }
}

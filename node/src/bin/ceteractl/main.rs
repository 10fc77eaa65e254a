//! `ceteractl`: the command-line client of cetera, a drop-in for etcd's
//! `etcdctl` (v3 API, 3.4): the same commands, flags, `ETCDCTL_*`
//! environment variables, output formats and exit codes, so scripts port
//! by renaming the binary. It talks to any etcd-API server.
//!
//! Beyond etcdctl: `get --count-only`, `import`, `export`,
//! `discovery new`, `bench` (etcd's benchmark tool) and `completion`.
//!
//! Modules: `cli` (the command line and the environment), `client` (the
//! connection, timeouts and retries; TLS through `cetera::client_tls`,
//! the auth token through `cetera::client_auth`), `printer`/`json`/`gofmt` (etcdctl's
//! output formats), `error` (exit codes), and one module per command group.

mod auth;
mod bench;
mod bulk;
mod check;
mod cli;
mod client;
mod concurrency;
mod discovery;
mod endpoint;
mod error;
mod gofmt;
mod json;
mod kv;
mod lease;
mod maintenance;
mod member;
mod printer;
mod resume;
mod snapshot;
mod txn;
mod watch;

use error::CtlError;

fn main() {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            if !e.silent {
                printer::err(format!("Error: {}\n", e.message));
            }
            e.code
        }
    };
    std::process::exit(code);
}

fn run() -> Result<(), CtlError> {
    // etcdctl reads ETCDCTL_API itself and never treats it as a flag.
    match std::env::var("ETCDCTL_API") {
        Ok(v) if !v.is_empty() && v != "3" => {
            printer::err(format!("unsupported API version {v}\n"));
            return Err(CtlError::exit(error::EXIT_ERROR));
        }
        _ => {}
    }
    let parsed = cli::parse(std::env::args_os())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CtlError::error(format!("starting the runtime: {e}")))?;
    runtime.block_on(cli::dispatch(parsed))
}

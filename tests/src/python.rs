//! Running small Python client scripts against a cluster member.
//!
//! The interpreter is the workspace's virtualenv, `.venv/bin/python`, which
//! `scripts/test` creates with the client libraries the tests use (its
//! `ensure_python_clients` step: `etcd3` for gRPC, `etcd3gw` for the JSON
//! gateway, `python-etcd` for the v2 API). A script gets the member's client host and port as
//! `sys.argv[1]` and `sys.argv[2]`, then any extra arguments; it passes by
//! exiting 0 within [`SCRIPT_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;
use tokio::time::timeout;

use crate::TestCluster;

/// How long one script may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What every [`etcd3`] script starts with: `client` talks to the member
/// whose host and port are the first two arguments.
pub const ETCD3_PRELUDE: &str = r#"
import sys, threading, time
import etcd3
client = etcd3.client(host=sys.argv[1], port=int(sys.argv[2]), timeout=10)
"#;

/// The workspace's virtualenv interpreter (made by `scripts/test`).
pub fn python() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let python = root.join(".venv/bin/python");
    ensure!(
        python.is_file(),
        "{} is missing: run scripts/test, whose ensure_python_clients step creates \
         the virtualenv with the Python clients",
        python.display()
    );
    Ok(python)
}

/// Runs a Python script with member `i`'s client host and port (and
/// `extra`) as arguments; fails unless it exits 0 within
/// [`SCRIPT_TIMEOUT`]. Returns what it printed.
pub async fn run(cluster: &TestCluster, i: usize, script: &str, extra: &[&str]) -> Result<String> {
    let url = cluster.client_url(i);
    let address = url.trim_start_matches("http://");
    let (host, port) = address.rsplit_once(':').context("client url")?;
    let child = Command::new(python()?)
        .arg("-c")
        .arg(script)
        .args([host, port])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning python")?;
    let output = timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("the Python script did not finish within {SCRIPT_TIMEOUT:?}"))??;
    if !output.status.success() {
        bail!(
            "the Python script failed with {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `body` after [`ETCD3_PRELUDE`]; see [`run`].
pub async fn etcd3(cluster: &TestCluster, i: usize, body: &str, extra: &[&str]) -> Result<()> {
    run(cluster, i, &format!("{ETCD3_PRELUDE}{body}"), extra)
        .await
        .map(drop)
}

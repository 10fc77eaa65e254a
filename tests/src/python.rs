//! Python client scripts run with the workspace's virtualenv (`.venv`,
//! made by `scripts/test`'s `ensure_python_clients` step with the clients
//! the tests use: `etcd3`, `etcd3gw`, `python-etcd`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;
use tokio::time::timeout;

use crate::TestCluster;

/// How long a script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace's virtualenv interpreter.
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
/// `extra`) as arguments; fails unless it exits 0 within 30 s. Returns
/// what it printed.
pub async fn run_python(
    cluster: &TestCluster,
    i: usize,
    script: &str,
    extra: &[&str],
) -> Result<String> {
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
        .context("the Python script did not finish within 30 s")??;
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

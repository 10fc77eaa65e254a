//! Running `ceteractl` (this workspace's etcdctl) the way [`crate::etcdctl`]
//! runs the real one: a clean `ETCDCTL_*` environment, the harness's
//! timeouts and a hard deadline, so a server that does not answer fails the
//! test instead of hanging it.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::binaries::ceteractl_bin;
use crate::etcdctl::CtlOutput;

/// Hard deadline for one ceteractl invocation.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `ceteractl --endpoints=<endpoints> <args>` (no `--endpoints` when
/// `endpoints` is empty) with `env` added to a clean `ETCDCTL_*`
/// environment, feeding `stdin` (or nothing).
pub async fn run(
    endpoints: &str,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Result<CtlOutput> {
    let mut cmd = Command::new(ceteractl_bin()?);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    if !endpoints.is_empty() {
        cmd.arg(format!("--endpoints={endpoints}"));
    }
    cmd.arg("--dial-timeout=5s")
        .arg("--command-timeout=20s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawning ceteractl")?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("ceteractl stdin")?;
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe); // EOF
    }
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("ceteractl {args:?} did not finish within {RUN_TIMEOUT:?}"))??;
    Ok(CtlOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

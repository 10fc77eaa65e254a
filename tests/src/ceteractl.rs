//! Running `ceteractl` (this workspace's etcdctl) the way [`crate::etcdctl`]
//! runs the real one: a clean `ETCDCTL_*` environment, the harness's
//! timeouts and a hard deadline, so a server that does not answer fails the
//! test instead of hanging it.

use anyhow::Result;
use tokio::process::Command;

use crate::binaries::ceteractl_bin;
use crate::etcdctl::CtlOutput;

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
        .args(args);
    crate::etcdctl::run_with_input(cmd, stdin, &format!("ceteractl {args:?}")).await
}

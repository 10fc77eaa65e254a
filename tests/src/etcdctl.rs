//! Running the real `etcdctl` (v3 API) against a cluster, and normalising
//! its output so that two clusters' answers can be compared.
//!
//! Every run has a deadline and passes `--dial-timeout` and
//! `--command-timeout`, so a server that does not answer fails the test
//! instead of hanging it.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::binaries::etcdctl_bin;

/// Hard deadline for one client invocation: a guard against a hung
/// command, not a speed check. A bulk import of 100,000 keys into debug
/// builds on a loaded 2-core machine took over a minute.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// What one etcdctl run printed.
#[derive(Clone, Debug)]
pub struct CtlOutput {
    /// Exit status of etcdctl.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CtlOutput {
    /// Whether etcdctl exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout if etcdctl exited 0, else an error showing both streams.
    pub fn ok(self) -> Result<String> {
        if !self.success() {
            bail!(
                "etcdctl failed with {}\nstdout:\n{}\nstderr:\n{}",
                self.status,
                self.stdout,
                self.stderr
            );
        }
        Ok(self.stdout)
    }

    /// Stderr without the client library's JSON log lines (which carry
    /// timestamps and random target names), e.g. just
    /// `Error: etcdserver: key is not provided`.
    pub fn stderr_messages(&self) -> String {
        strip_client_logs(&self.stderr)
    }

    /// Stdout parsed as JSON if etcdctl exited 0 (for `-w json`).
    pub fn ok_json(self) -> Result<Value> {
        let stdout = self.ok()?;
        serde_json::from_str(stdout.trim())
            .with_context(|| format!("etcdctl stdout is not JSON:\n{stdout}"))
    }

    /// Stdout parsed as JSON (for `-w json`), whatever the exit status.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(self.stdout.trim())
            .with_context(|| format!("etcdctl stdout is not JSON:\n{}", self.stdout))
    }
}

/// Runs `ETCDCTL_API=3 etcdctl --endpoints=<endpoints> <args>`, feeding
/// `stdin` (or nothing).
pub async fn run(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Result<CtlOutput> {
    run_env(endpoints, args, stdin, &[]).await
}

/// [`run`] with `env` added to the clean `ETCDCTL_*` environment.
pub async fn run_env(
    endpoints: &str,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Result<CtlOutput> {
    let mut cmd = Command::new(etcdctl_bin()?);
    // etcdctl reads ETCDCTL_* variables as flags: only ours count.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=20s")
        .args(args);
    let what = format!("etcdctl --endpoints={endpoints} {}", args.join(" "));
    run_with_input(cmd, stdin, &what).await
}

/// Runs a command-line client (`cmd`, arguments set) with `stdin` (or no
/// input), bounded by [`RUN_TIMEOUT`], and collects its exit status and
/// output. `what` names the command in errors.
pub(crate) async fn run_with_input(
    mut cmd: Command,
    stdin: Option<&str>,
    what: &str,
) -> Result<CtlOutput> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("spawning {what}"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("client stdin")?;
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe); // EOF
    }
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("{what} did not finish within {RUN_TIMEOUT:?}"))??;
    Ok(CtlOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Removes the zap JSON log lines (`{"level":...}`) that etcd's client
/// library writes to stderr.
pub fn strip_client_logs(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| !line.trim_start().starts_with("{\"level\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fields whose values legitimately differ between two clusters: ids are
/// random and terms depend on election timing.
pub const VOLATILE_FIELDS: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "ClusterID",
    "MemberID",
    "RaftTerm",
];

/// Replaces every [`VOLATILE_FIELDS`] value anywhere in `value` with 0.
pub fn normalize_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if VOLATILE_FIELDS.contains(&key.as_str()) {
                    *field = Value::from(0);
                } else {
                    normalize_json(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_json),
        _ => {}
    }
}

/// Normalises one stdout: JSON documents (one per line or the whole text)
/// get [`normalize_json`] and are pretty-printed so diffs are readable;
/// anything else is returned unchanged.
pub fn normalize_stdout(stdout: &str) -> String {
    if let Ok(mut value) = serde_json::from_str::<Value>(stdout.trim()) {
        normalize_json(&mut value);
        return pretty(&value);
    }
    stdout
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(mut value) if value.is_object() || value.is_array() => {
                normalize_json(&mut value);
                pretty(&value)
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_ids_and_terms_but_not_revisions() {
        let a = r#"{"header":{"cluster_id":1,"member_id":2,"revision":5,"raft_term":3},"count":1}"#;
        let b = r#"{"header":{"cluster_id":9,"member_id":8,"revision":5,"raft_term":7},"count":1}"#;
        assert_eq!(normalize_stdout(a), normalize_stdout(b));
        let c = r#"{"header":{"cluster_id":9,"member_id":8,"revision":6,"raft_term":7},"count":1}"#;
        assert_ne!(normalize_stdout(a), normalize_stdout(c));
    }

    #[test]
    fn strips_client_log_lines() {
        let stderr = "{\"level\":\"warn\",\"ts\":\"x\"}\nError: etcdserver: key is not provided\n";
        assert_eq!(
            strip_client_logs(stderr),
            "Error: etcdserver: key is not provided"
        );
    }
}

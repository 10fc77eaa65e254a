//! Running `ceteractl` (this workspace's etcdctl) the way [`crate::etcdctl`]
//! runs the real one: a clean `ETCDCTL_*` environment, the harness's
//! timeouts and a hard deadline, so a server that does not answer fails the
//! test instead of hanging it. [`differential`] runs the same steps through
//! etcdctl and ceteractl and compares what they print.

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::TestCluster;
use crate::binaries::ceteractl_bin;
use crate::diff::line_diff;
use crate::etcdctl::{CtlOutput, strip_client_logs};

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

/// Replaces the digits after every `marker` with `N`.
pub fn mask_after(text: &str, marker: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '-')
            .unwrap_or(rest.len());
        if digits > 0 {
            out.push('N');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Masks what differs between two clusters: their ids (decimal and hex),
/// raft terms, and `extra` strings.
pub fn normalize(text: &str, ids: &[u64], extra: &[String]) -> String {
    let mut s = text.to_string();
    for id in ids {
        s = s
            .replace(&id.to_string(), "<ID>")
            .replace(&format!("{id:x}"), "<ID>");
    }
    for e in extra {
        if !e.is_empty() {
            s = s.replace(e.as_str(), "<X>");
        }
    }
    for marker in ["\"raft_term\":", "\"RaftTerm\" : "] {
        s = mask_after(&s, marker);
    }
    s
}

/// Cluster id and member ids of a cluster.
pub async fn ids(cluster: &TestCluster) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for i in 0..cluster.size() {
        let header = cluster.status(i).await?.header.context("no header")?;
        ids.push(header.cluster_id);
        ids.push(header.member_id);
    }
    Ok(ids)
}

/// One command's observable result: exit code, stdout, stderr without the
/// Go client's log lines.
pub fn transcript(out: &CtlOutput, ids: &[u64], extra: &[String]) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}\n",
        out.status.code(),
        normalize(&out.stdout, ids, extra),
        normalize(&strip_client_logs(&out.stderr), ids, extra).replace("ceteractl", "etcdctl")
    )
}

/// Runs each step with etcdctl on `a` and ceteractl on `b` and fails with
/// a diff if any transcript differs.
pub async fn differential(
    a: &TestCluster,
    b: &TestCluster,
    steps: &[(&[&str], Option<&str>)],
) -> Result<()> {
    let (ids_a, ids_b) = (ids(a).await?, ids(b).await?);
    let mut failures = String::new();
    for (args, stdin) in steps {
        let expected = a.etcdctl(args, *stdin).await?;
        let actual = run(&b.endpoints(), args, *stdin, &[]).await?;
        let e = transcript(&expected, &ids_a, &a.client_urls());
        let c = transcript(&actual, &ids_b, &b.client_urls());
        if e != c {
            failures.push_str(&format!("$ {}\n{}\n", args.join(" "), line_diff(&e, &c)));
        }
    }
    if !failures.is_empty() {
        bail!("ceteractl differs from etcdctl (- etcdctl, + ceteractl):\n{failures}");
    }
    Ok(())
}

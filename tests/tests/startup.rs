//! Start-up refusals: every way an operator can misconfigure a member ends
//! with one clear line on stderr and a non-zero exit, never a panic and
//! never a silently fresh store.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::TestCluster;
use tests::binaries::cetera_bin;
use tests::ports;

/// Runs `cetera` to completion (it must exit by itself) with loopback ports
/// leased for this test.
fn run_cetera(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let client = ports::lease()?;
    run_cetera_on(dir, client.port(), args, env)
}

/// Like [`run_cetera`], serving clients on `client_port`.
fn run_cetera_on(
    dir: &Path,
    client_port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Output> {
    let peer = ports::lease()?;
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{}", peer.port());
    let mut command = std::process::Command::new(cetera_bin()?);
    command
        .current_dir(dir)
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(args)
        .env_remove("ETCD_NAME");
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let output = wait_with_deadline(child, Duration::from_secs(20))?;
    Ok(output)
}

fn wait_with_deadline(mut child: std::process::Child, limit: Duration) -> Result<Output> {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            child.kill()?;
            anyhow::bail!("cetera did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

/// The process failed with exactly one `cetera:` line that says `expected`,
/// and did not panic.
fn assert_refused(output: &Output, expected: &str) -> Result<()> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success(),
        "cetera should have failed; stderr:\n{stderr}"
    );
    ensure!(!stderr.contains("panicked"), "cetera panicked:\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("cetera:"))
        .collect();
    ensure!(
        lines.len() == 1,
        "expected one `cetera:` line, got:\n{stderr}"
    );
    ensure!(
        lines[0].contains(expected),
        "expected {expected:?} in {:?}",
        lines[0]
    );
    Ok(())
}

#[test]
fn a_bad_flag_value_is_refused_in_one_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = run_cetera(dir.path(), &["--election-timeout", "10"], &[])?;
    assert_refused(&output, "--election-timeout")
}

#[test]
fn a_jwt_key_that_cannot_be_read_is_refused_before_anything_is_written() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.pub");
    let option = format!(
        "--auth-token=jwt,sign-method=RS256,pub-key={}",
        missing.display()
    );
    let output = run_cetera(dir.path(), &[&option], &[])?;
    assert_refused(&output, "--auth-token jwt: cannot read")?;
    ensure!(
        !dir.path().join("default.cetera").exists(),
        "no data dir for a member that never started"
    );
    Ok(())
}

#[test]
fn a_flag_shadowing_its_environment_variable_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = run_cetera(dir.path(), &["--name", "a"], &[("ETCD_NAME", "b")])?;
    assert_refused(&output, "conflicting environment variable ETCD_NAME")
}

#[test]
fn a_corrupt_database_is_refused_and_left_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("default.cetera/member/cetera.db");
    std::fs::create_dir_all(db.parent().context("parent")?)?;
    let garbage: Vec<u8> = (0..65_536u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&db, &garbage)?;
    let output = run_cetera(dir.path(), &[], &[])?;
    assert_refused(&output, "is corrupt")?;
    ensure!(
        std::fs::read(&db)? == garbage,
        "the corrupt file must not be rewritten"
    );
    Ok(())
}

#[test]
fn a_port_in_use_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let lease = ports::lease()?;
    let _taken = std::net::TcpListener::bind(("127.0.0.1", lease.port()))?;
    let output = run_cetera_on(dir.path(), lease.port(), &[], &[])?;
    assert_refused(&output, "cannot listen on")
}

#[tokio::test]
async fn another_members_data_dir_is_refused() -> Result<()> {
    // Bootstrap a member named n1, stop it, then point a member with another
    // name at the same data dir.
    let cluster = TestCluster::start(tests::Flavor::Cetera, 1).await?;
    cluster.member(0).stop().await?;
    let data_dir = cluster.member(0).data_dir().to_path_buf();
    let dir = tempfile::tempdir()?;
    let data_dir = data_dir.to_string_lossy().into_owned();
    let output = tokio::task::spawn_blocking(move || {
        run_cetera(
            dir.path(),
            &["--name", "intruder", "--data-dir", &data_dir],
            &[],
        )
    })
    .await??;
    assert_refused(&output, "belongs to member \"n1\"")
}

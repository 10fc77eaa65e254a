//! Backups: `etcdctl snapshot save` against cetera, `ceteractl snapshot
//! restore` into a new data dir, and a new member serving the same keys and
//! history from it.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::binaries::{cetera_bin, ceteractl_bin};
use tests::spawn::{guarded_command, spawn};
use tests::{Flavor, TestCluster, ports};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_snapshot_restores_into_a_serving_member() -> Result<()> {
    let cluster = TestCluster::start(Flavor::Cetera, 3).await?;
    for i in 0..20 {
        cluster
            .etcdctl_ok(&["put", &format!("b/{i:02}"), &i.to_string()])
            .await?;
    }
    cluster.etcdctl_ok(&["put", "b/00", "rewritten"]).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("backup.db");
    let saved = cluster
        .etcdctl_at(1, &["snapshot", "save", &file.to_string_lossy()], None)
        .await?
        .ok()?;
    ensure!(saved.contains("Snapshot saved"), "{saved}");

    let data_dir = dir.path().join("restored");
    let restore = std::process::Command::new(ceteractl_bin()?)
        .args([
            "snapshot",
            "restore",
            &file.to_string_lossy(),
            "--data-dir",
            &data_dir.to_string_lossy(),
        ])
        .output()?;
    ensure!(
        restore.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&restore.stderr)
    );

    // A tampered file is refused.
    let mut tampered = std::fs::read(&file)?;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, tampered)?;
    let refused = std::process::Command::new(ceteractl_bin()?)
        .args([
            "snapshot",
            "restore",
            &bad.to_string_lossy(),
            "--data-dir",
            &dir.path().join("x").to_string_lossy(),
        ])
        .output()?;
    ensure!(!refused.status.success(), "a corrupt snapshot was restored");

    let (client, peer) = (ports::lease()?, ports::lease()?);
    let client_url = format!("http://127.0.0.1:{}", client.port());
    let peer_url = format!("http://127.0.0.1:{}", peer.port());
    let mut command = guarded_command(&cetera_bin()?);
    command
        .args(["--name", "restored", "--data-dir"])
        .arg(&data_dir)
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
        .args(["--initial-cluster", &format!("restored={peer_url}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = spawn(command)?;
    // The original cluster moves on: only the restored member has the keys.
    cluster.etcdctl_ok(&["del", "b/", "--prefix"]).await?;
    let outcome = async {
        let endpoint = format!("--endpoints={client_url}");
        let mut values = String::new();
        for _ in 0..100 {
            let out = restored_ctl(&[&endpoint, "get", "b/00", "--print-value-only"], None).await?;
            if out.status.success() {
                values = out.stdout;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(values, "rewritten\n");
        let count = restored_ctl(&[&endpoint, "get", "b/", "--prefix", "--keys-only"], None)
            .await?
            .ok()?;
        assert_eq!(count.lines().filter(|l| !l.is_empty()).count(), 20);
        // History came along: b/00's first value is still readable.
        let json: serde_json::Value = serde_json::from_str(
            &restored_ctl(&[&endpoint, "get", "b/00", "-w", "json"], None)
                .await?
                .ok()?,
        )?;
        let create = json["kvs"][0]["create_revision"]
            .as_i64()
            .context("create_revision")?;
        let old = cluster
            .etcdctl(
                &[
                    &endpoint,
                    "get",
                    "b/00",
                    "--print-value-only",
                    &format!("--rev={create}"),
                ],
                None,
            )
            .await?
            .ok()?;
        assert_eq!(old, "0\n");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// Runs etcdctl against the restored member only.
async fn restored_ctl(args: &[&str], _stdin: Option<&str>) -> Result<tests::CtlOutput> {
    let output = tokio::process::Command::new(tests::binaries::etcdctl_bin()?)
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
        .await?;
    Ok(tests::CtlOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

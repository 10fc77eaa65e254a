//! `cetera-console` end to end: the real binary in a real terminal (a
//! private tmux server, read back with `capture-pane`) against a real
//! 3-member cluster.
//!
//! The console needs `Cluster.MemberList`, which cetera does not serve yet,
//! so only the etcd variant runs for now; add the cetera flavor when the
//! Cluster service lands.
//!
//! No process outlives a test: the console runs under `timeout` inside the
//! tmux session, the session ends when the console exits, and dropping the
//! [`Tmux`] guard kills the private tmux server (and the console with it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tests::binaries::console_bin;
use tests::{Flavor, TestCluster};

/// How long any one screen condition may take to appear.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A private tmux server running one session with the console in it.
struct Tmux {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Tmux {
    /// Starts `program args...` in a `width`x`height` pane.
    fn start(program: &Path, args: &[String], width: u16, height: u16) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cetera-console-test-")
            .tempdir()?;
        let socket = dir.path().join("tmux.sock");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(&conf, "set -g status off\nset -g history-limit 0\n")?;
        let status = dir.path().join("exit-status");
        let mut line = format!(
            "timeout --foreground -k 5 600 {}",
            quote(&program.display().to_string())
        );
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line.push_str(&format!(
            "; echo $? > {}",
            quote(&status.display().to_string())
        ));
        let tmux = Tmux { dir, socket };
        let out = tmux
            .command()
            .arg("-f")
            .arg(&conf)
            .args(["new-session", "-d", "-s", "console", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(line)
            .env("TERM", "xterm-256color")
            .output()
            .context("running tmux (install the Debian package tmux; scripts/test does)")?;
        ensure!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(tmux)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// The visible screen as text.
    fn capture(&self) -> String {
        self.command()
            .args(["capture-pane", "-p", "-t", "console"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Sends tmux key names (`"Enter"`, `"j"`, ...) or literal text (`-l`).
    fn send(&self, keys: &[&str]) -> Result<()> {
        let status = self
            .command()
            .args(["send-keys", "-t", "console"])
            .args(keys)
            .status()?;
        ensure!(status.success(), "tmux send-keys {keys:?} failed");
        Ok(())
    }

    fn send_text(&self, text: &str) -> Result<()> {
        let status = self
            .command()
            .args(["send-keys", "-t", "console", "-l", text])
            .status()?;
        ensure!(status.success(), "tmux send-keys -l {text:?} failed");
        Ok(())
    }

    /// Polls the screen until `pred` holds; fails with the last screen.
    async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return Ok(screen);
            }
            if let Some(code) = self.exit_status() {
                bail!(
                    "the console exited ({code}) while waiting for {what}; last screen:\n{screen}"
                );
            }
            if Instant::now() >= deadline {
                bail!("timed out waiting for {what}; last screen:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The console's exit status once it has exited.
    fn exit_status(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("exit-status"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    async fn wait_exit(&self) -> Result<String> {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            if let Some(code) = self.exit_status() {
                return Ok(code);
            }
            if Instant::now() >= deadline {
                bail!("the console did not exit; screen:\n{}", self.capture());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Rows of the members table with this role (the detail pane repeats the
/// selected member's role, but not its health column).
fn count(screen: &str, role: &str) -> usize {
    screen
        .lines()
        .filter(|l| l.contains(role) && (l.contains("✔ healthy") || l.contains("✖ un")))
        .count()
}

async fn console_shows_members_leader_and_keys(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    cluster
        .etcdctl_ok(&["put", "console-e2e", "hello-from-etcdctl"])
        .await?;
    let args = vec![
        "--endpoints".to_string(),
        cluster.endpoints(),
        "--refresh".to_string(),
        "500ms".to_string(),
    ];
    let tmux = Tmux::start(&console_bin()?, &args, 140, 40)?;

    // The Cluster view: 3 members, one leader, two followers, quorum in words.
    let screen = tmux
        .wait_for("3 members and a leader", |s| {
            s.contains("Members (3)") && count(s, "★ leader") >= 1 && count(s, "● follower") == 2
        })
        .await?;
    ensure!(
        screen.contains("3/3 healthy, tolerates 1 failure"),
        "no quorum verdict:\n{screen}"
    );
    for name in ["n1", "n2", "n3"] {
        ensure!(screen.contains(name), "member {name} missing:\n{screen}");
    }

    // The Keys view lists the key put by etcdctl; filtering selects it and
    // the value pane shows its value.
    tmux.send(&["2"])?;
    tmux.wait_for("the key in the Keys view", |s| s.contains("console-e2e"))
        .await?;
    tmux.send(&["/"])?;
    tmux.send_text("console-e2e")?;
    tmux.send(&["Enter"])?;
    let screen = tmux
        .wait_for("the key's value", |s| s.contains("hello-from-etcdctl"))
        .await?;
    ensure!(screen.contains("version 1"), "no key metadata:\n{screen}");

    // Killing the leader: the console stays up, shows it down and the new leader.
    tmux.send(&["1"])?;
    let leader = cluster.leader_index().await?;
    let leader_name = cluster.member(leader).name().to_string();
    cluster.member(leader).kill().await?;
    tmux.wait_for("the old leader down and a new leader", |s| {
        s.lines().any(|l| {
            l.contains(&format!(" {leader_name} "))
                && l.contains("✖ down")
                && l.contains("✖ unreachable")
        }) && count(s, "★ leader") == 1
            && s.contains("2/3 healthy, tolerates 0 failures")
    })
    .await?;

    // `q` quits cleanly.
    tmux.send(&["q"])?;
    let code = tmux.wait_exit().await?;
    ensure!(code == "0", "the console exited with {code}");
    Ok(())
}

mod on_etcd {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn console_shows_members_leader_and_keys() -> anyhow::Result<()> {
        super::console_shows_members_leader_and_keys(tests::Flavor::Etcd).await
    }
}

mod on_cetera {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn console_shows_members_leader_and_keys() -> anyhow::Result<()> {
        super::console_shows_members_leader_and_keys(tests::Flavor::Cetera).await
    }
}

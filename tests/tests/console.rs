//! `cetera-console` end to end: the real binary in a real terminal (a
//! private tmux server, read back with `capture-pane`) against a real
//! 3-member cluster, on both flavors.
//!
//! - the dashboard shows the members and the leader, survives being resized
//!   below its minimum size and back; killing the leader
//!   (SIGKILL) shows it down with its last data marked STALE and the new
//!   leader, without the console exiting; restarted, it is healthy again;
//!   with every member down it shows the three of them down, keeps their
//!   last data under STALE and reconnects by itself, roles back;
//! - a learner is added through the console's palette, started with the
//!   `--initial-cluster` line the console printed, promoted and removed
//!   through the console (each step checked with `Cluster.MemberList`);
//! - the Keys view browses to a key: its value, metadata, history of older
//!   values, the diff between two revisions, and the live watch, which
//!   survives the death of the member serving it without losing a change;
//!   a put through the value editor and a delete, each confirmed first;
//! - `q` exits with status 0 and the terminal is restored (alternate screen
//!   left, a shell typed into afterwards works); so does a real panic
//!   (through the test hook `CETERA_CONSOLE_PANIC_ON_KEY`), checked with
//!   `stty -a` in the shell that runs next;
//! - a lease is shown with its TTL counting down and its keys, and revoked
//!   behind a confirmation;
//! - a NOSPACE alarm is listed (the members still count for the quorum)
//!   and disarmed through the console;
//! - leadership is moved, the keyspace compacted (through the form) and a
//!   member defragmented through the console;
//! - `--read-only` offers no mutation; `NO_COLOR` and `--no-color` draw
//!   without a single colour escape, while glyphs and words remain;
//! - over a thousand keys are listed in server-side pages, and `G` reads them
//!   to the last one;
//! - `--once` prints the cluster view as text, with `ETCDCTL_ENDPOINTS`;
//! - with auth enabled, `--user` (or `ETCDCTL_USER`/`ETCDCTL_PASSWORD`)
//!   shows the keys that user may read and refuses the others; after the
//!   members restart (forgetting its token) it authenticates again; a wrong
//!   password is shown in the header, the console running on.
//!
//! Every check waits for a predicate on the captured screen (never a fixed
//! sleep as an assertion). No process outlives a test: the console runs
//! under `timeout` inside the tmux session, and dropping the [`Tmux`] guard
//! kills the private tmux server (and everything in it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cetera::proto::etcdserverpb::cluster_client::ClusterClient;
use cetera::proto::etcdserverpb::{MemberListRequest, RangeRequest};
use tests::binaries::console_bin;
use tests::pki::{Pki, path};
use tests::ports::{self, PortLease};
use tests::spawn::{guarded_command, spawn};
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    leader_killed_is_shown_down_and_stale_then_healthy_again,
    learner_added_promoted_and_removed_through_the_console,
    keys_view_shows_value_history_diff_and_watch,
    once_prints_the_cluster_view_with_etcdctl_endpoints,
    leader_moved_keyspace_compacted_and_member_defragmented_through_the_console,
    read_only_and_no_color_in_a_real_terminal,
    many_keys_are_listed_page_by_page,
    lease_shown_with_its_countdown_and_keys_then_revoked,
    nospace_alarm_listed_then_disarmed_through_the_console,
    https_cluster_shown_with_cacert_and_refused_with_the_wrong_ca,
    client_cert_auth_cluster_shown_with_etcdctl_tls_variables,
    auth_user_sees_the_keys_it_may_read_and_a_bad_password_in_the_header,
);

/// A real panic (through the documented test hook
/// `CETERA_CONSOLE_PANIC_ON_KEY`) restores the terminal before the panic
/// is reported: the alternate screen is left, the cursor shows, mouse
/// capture is off, and the shell that runs next is in cooked mode with echo
/// (`stty -a` says `icanon` and `echo`). No cluster is needed: the console
/// runs (and panics) the same while its endpoint refuses connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_restores_the_terminal() -> Result<()> {
    let dead = ports::lease()?;
    let args = vec![
        "--endpoints".to_string(),
        format!("http://127.0.0.1:{}", dead.port()),
        "--mouse".to_string(),
    ];
    let tmux = Tmux::start_with_env(
        &console_bin()?,
        &args,
        // No backtrace: it would scroll the panic message off the screen.
        &[
            ("CETERA_CONSOLE_PANIC_ON_KEY", "~"),
            ("RUST_BACKTRACE", "0"),
        ],
        100,
        30,
    )?;
    tmux.wait_for("the console drawn", |s| {
        s.contains("cetera-console") && s.contains("✖ disconnected")
    })
    .await?;
    ensure!(
        tmux.pane_var("alternate_on")? == "1",
        "not on the alternate screen"
    );
    ensure!(
        tmux.pane_var("mouse_any_flag")? == "1",
        "--mouse did not capture the mouse"
    );

    tmux.send(&["~"])?;
    let code = tmux.wait_exit().await?;
    ensure!(code == "101", "a panic exits with 101, not {code}");
    let screen = tmux
        .wait_screen("the panic reported on the shell's screen", false, |s| {
            s.contains("console exited (101)")
        })
        .await?;
    ensure!(
        screen.contains("panicked") && screen.contains("CETERA_CONSOLE_PANIC_ON_KEY"),
        "the panic message is not on the restored screen:\n{screen}"
    );
    ensure!(
        tmux.pane_var("alternate_on")? == "0",
        "the alternate screen is still on:\n{}",
        tmux.capture()
    );
    ensure!(
        tmux.pane_var("cursor_flag")? == "1",
        "the cursor is still hidden"
    );
    ensure!(
        tmux.pane_var("mouse_any_flag")? == "0",
        "the mouse is still captured"
    );

    // The terminal modes as the next program sees them (the marker is
    // computed, so only the answer ends with it, not the typed line).
    tmux.send_text(
        r"stty -a | tr ' ;' '\n\n' | grep -Ex -- '-?(icanon|echo)' | tr '\n' ' '; echo m$((6*7))",
    )?;
    tmux.send(&["Enter"])?;
    let answer = |s: &str| {
        s.lines()
            .find(|l| l.trim_end().ends_with("m42"))
            .map(str::to_string)
    };
    let screen = tmux
        .wait_screen("stty's answer", false, |s| answer(s).is_some())
        .await?;
    let modes = answer(&screen).unwrap_or_default();
    ensure!(
        modes.split_whitespace().collect::<Vec<_>>() == ["icanon", "echo", "m42"],
        "the terminal is not back in cooked mode with echo (stty: {modes:?}):\n{screen}"
    );
    Ok(())
}

/// How long any one screen condition may take to appear.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a membership change may keep being refused as transient.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);

/// A private tmux server running one session with the console in it. When
/// the console exits, the pane runs an interactive shell, so the test can
/// check that the terminal was restored.
struct Tmux {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Tmux {
    /// Starts `program args...` in a `width`x`height` pane.
    fn start(program: &Path, args: &[String], width: u16, height: u16) -> Result<Self> {
        Self::start_with_env(program, args, &[], width, height)
    }

    /// Starts `NAME=VALUE... program args...` in a `width`x`height` pane.
    fn start_with_env(
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        width: u16,
        height: u16,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cetera-console-test-")
            .tempdir()?;
        let socket = dir.path().join("tmux.sock");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(&conf, "set -g status off\nset -g history-limit 0\n")?;
        let status = dir.path().join("exit-status");
        let mut line = String::new();
        for (name, value) in env {
            line.push_str(&format!("{name}={} ", quote(value)));
        }
        line.push_str(&format!(
            "timeout --foreground -k 5 600 {}",
            quote(&program.display().to_string())
        ));
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line.push_str(&format!(
            "; code=$?; echo $code > {}; echo \"console exited ($code)\"; exec sh",
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
            .env_remove("NO_COLOR")
            .env_remove("ETCDCTL_ENDPOINTS")
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

    /// The visible screen with its attributes as escape sequences.
    fn capture_styled(&self) -> String {
        self.command()
            .args(["capture-pane", "-p", "-e", "-t", "console"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// A tmux format variable of the pane (`alternate_on`, `cursor_flag`, ...).
    fn pane_var(&self, name: &str) -> Result<String> {
        let out = self
            .command()
            .args(["display-message", "-p", "-t", "console"])
            .arg(format!("#{{{name}}}"))
            .output()?;
        ensure!(out.status.success(), "tmux display-message failed");
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Sends tmux key names (`"Enter"`, `"j"`, ...).
    fn send(&self, keys: &[&str]) -> Result<()> {
        let status = self
            .command()
            .args(["send-keys", "-t", "console"])
            .args(keys)
            .status()?;
        ensure!(status.success(), "tmux send-keys {keys:?} failed");
        Ok(())
    }

    /// Resizes the pane's window (the console gets SIGWINCH).
    fn resize(&self, width: u16, height: u16) -> Result<()> {
        let status = self
            .command()
            .args(["resize-window", "-t", "console", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .status()?;
        ensure!(status.success(), "tmux resize-window failed");
        Ok(())
    }

    /// Types literal text.
    fn send_text(&self, text: &str) -> Result<()> {
        let status = self
            .command()
            .args(["send-keys", "-t", "console", "-l", text])
            .status()?;
        ensure!(status.success(), "tmux send-keys -l {text:?} failed");
        Ok(())
    }

    /// Runs a `:` palette command.
    fn palette(&self, command: &str) -> Result<()> {
        self.send(&[":"])?;
        self.send_text(command)?;
        self.send(&["Enter"])
    }

    /// Polls the screen until `pred` holds while the console runs; fails
    /// with the last screen (or when the console exits).
    async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
        self.wait_screen(what, true, pred).await
    }

    async fn wait_screen(
        &self,
        what: &str,
        console_running: bool,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return Ok(screen);
            }
            if console_running && let Some(code) = self.exit_status() {
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

    /// `q` quits with status 0 and leaves a usable terminal: the alternate
    /// screen is left, the cursor shows, and a line typed into the shell
    /// that runs next is echoed and executed (raw mode is off).
    async fn quit_and_check_terminal_restored(&self) -> Result<()> {
        self.send(&["q"])?;
        let code = self.wait_exit().await?;
        ensure!(code == "0", "the console exited with {code}");
        self.wait_screen("the shell after the console", false, |s| {
            s.contains("console exited (0)")
        })
        .await?;
        ensure!(
            self.pane_var("alternate_on")? == "0",
            "the alternate screen is still on:\n{}",
            self.capture()
        );
        ensure!(
            self.pane_var("cursor_flag")? == "1",
            "the cursor is still hidden"
        );
        self.send_text("echo restored-$((40+2))")?;
        self.send(&["Enter"])?;
        self.wait_screen("the shell to run a typed line", false, |s| {
            s.contains("restored-42")
        })
        .await?;
        Ok(())
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

/// Starts the console on `cluster` polling every 500 ms.
fn console(cluster: &TestCluster, width: u16, height: u16) -> Result<Tmux> {
    let args = vec![
        "--endpoints".to_string(),
        cluster.endpoints(),
        "--refresh".to_string(),
        "500ms".to_string(),
    ];
    Tmux::start(&console_bin()?, &args, width, height)
}

/// Rows of the members table with this role (the detail pane repeats the
/// selected member's role, but not its health column).
fn count(screen: &str, role: &str) -> usize {
    screen
        .lines()
        .filter(|l| l.contains(role) && (l.contains("✔ healthy") || l.contains("✖ un")))
        .count()
}

/// The members table row of the member called `name`.
fn member_row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        l.contains(&format!(" {name} ")) && (l.contains("✔ healthy") || l.contains("✖ un"))
    })
}

async fn wait_dashboard(tmux: &Tmux) -> Result<String> {
    tmux.wait_for("3 members and a leader", |s| {
        s.contains("Members (3)")
            && count(s, "★ leader") == 1
            && count(s, "● follower") == 2
            && s.contains("3/3 healthy, tolerates 1 failure")
    })
    .await
}

async fn leader_killed_is_shown_down_and_stale_then_healthy_again(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let tmux = console(&cluster, 150, 40)?;

    // The Cluster view: 3 members, one leader, two followers, quorum in words.
    let screen = wait_dashboard(&tmux).await?;
    for name in ["n1", "n2", "n3"] {
        ensure!(screen.contains(name), "member {name} missing:\n{screen}");
    }

    // Shrunk below the minimum: the "too small" screen; grown back: the
    // dashboard again (resizing never ends the console).
    tmux.resize(50, 12)?;
    tmux.wait_for("the too-small screen", |s| {
        s.contains("terminal too small") && s.contains("need 60x16, have 50x12")
    })
    .await?;
    tmux.resize(150, 40)?;
    wait_dashboard(&tmux).await?;

    // Killing the leader: the console stays up, shows it down, its last
    // good data marked STALE, and the new leader.
    let leader = cluster.leader_index().await?;
    let old = cluster.member(leader).name().to_string();
    cluster.member(leader).kill().await?;
    tmux.wait_for("the old leader down (stale) and a new leader", |s| {
        let down = member_row(s, &old)
            .is_some_and(|l| l.contains("✖ down") && l.contains("✖ unreachable · STALE"));
        let new_leader = s
            .lines()
            .any(|l| l.contains("★ leader") && l.contains("✔ healthy") && !l.contains(&old));
        down && new_leader && s.contains("2/3 healthy, tolerates 0 failures")
    })
    .await?;

    // Restarted, it is healthy again and the STALE badge is gone.
    cluster.member(leader).restart().await?;
    cluster.wait_ready(leader).await?;
    tmux.wait_for("all three healthy again, nothing stale", |s| {
        s.contains("3/3 healthy, tolerates 1 failure")
            && count(s, "★ leader") + count(s, "● follower") == 3
            && member_row(s, &old).is_some_and(|l| l.contains("✔ healthy"))
            && !s.contains("STALE")
    })
    .await?;

    // The whole cluster unreachable: the console stays, shows every member
    // down with its last data dimmed under STALE (no role of the last good
    // poll survives), and retries; back up, roles return and the badge clears.
    for i in 0..3 {
        cluster.member(i).kill().await?;
    }
    tmux.wait_for("the cluster unreachable: 3 members down, data stale", |s| {
        s.contains("✖ disconnected (retry #")
            && s.contains("Members (3) · STALE")
            && s.contains("0/3 answering, quorum unknown")
            && count(s, "✖ down") == 3
            && s.lines()
                .filter(|l| l.contains("✖ unreachable · STALE"))
                .count()
                == 3
            && count(s, "★ leader") + count(s, "● follower") == 0
    })
    .await?;
    ensure!(
        tmux.exit_status().is_none(),
        "the console exited while the cluster was down:\n{}",
        tmux.capture()
    );
    cluster.restart_all().await?;
    tmux.wait_for("reconnected, roles back, nothing stale", |s| {
        s.contains("✔ connected")
            && s.contains("3/3 healthy, tolerates 1 failure")
            && count(s, "★ leader") == 1
            && count(s, "● follower") == 2
            && count(s, "✖ down") == 0
            && !s.contains("STALE")
    })
    .await?;

    tmux.quit_and_check_terminal_restored().await
}

/// A member started after the cluster, with `--initial-cluster-state existing`.
struct JoiningMember {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for JoiningMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts member `name` of `flavor` joining with `initial_cluster` (the
/// line the console printed), as an operator would.
fn start_joining_member(
    flavor: Flavor,
    name: &str,
    client: &PortLease,
    peer: &PortLease,
    initial_cluster: &str,
) -> Result<JoiningMember> {
    let client_url = format!("http://127.0.0.1:{}", client.port());
    let peer_url = format!("http://127.0.0.1:{}", peer.port());
    let dir = tempfile::tempdir()?;
    let log = std::fs::File::create(dir.path().join("member.log"))?;
    let mut command = guarded_command(&flavor.binary()?);
    command
        .args(["--name", name])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-state", "existing"])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(JoiningMember {
        child: spawn(command)?,
        _dir: dir,
    })
}

/// `(peer URLs, is_learner)` of every member, from `Cluster.MemberList`.
async fn member_list(cluster: &TestCluster) -> Result<Vec<(Vec<String>, bool)>> {
    let resp = ClusterClient::new(cluster.grpc_channel(0)?)
        .member_list(MemberListRequest {
            linearizable: false,
        })
        .await?
        .into_inner();
    Ok(resp
        .members
        .into_iter()
        .map(|m| (m.peer_ur_ls, m.is_learner))
        .collect())
}

/// Runs a membership palette command and confirms it with `y`, again while
/// the cluster refuses it for a transient reason (etcd's "unhealthy
/// cluster" until its members have been connected for a few seconds, a
/// learner not in sync yet). Returns the confirmation and the outcome
/// screens of the attempt that succeeded (the outcome shows `done`).
async fn confirm_membership(
    tmux: &Tmux,
    command: &str,
    title: &str,
    done: &str,
    failed: &str,
) -> Result<(String, String)> {
    let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
    loop {
        tmux.palette(command)?;
        let confirmation = tmux
            .wait_for(title, |s| s.contains(title) && s.contains("[ No ]"))
            .await?;
        tmux.send(&["y"])?;
        let outcome = tmux
            .wait_for(&format!("the outcome of {command:?}"), |s| {
                s.contains(done) || s.contains(failed)
            })
            .await?;
        if outcome.contains(done) {
            return Ok((confirmation, outcome));
        }
        let transient = ["in sync", "unhealthy cluster", "not started", "not ready"]
            .iter()
            .any(|r| outcome.contains(r));
        ensure!(transient, "{command:?} failed:\n{outcome}");
        ensure!(
            Instant::now() < deadline,
            "{command:?} kept failing:\n{outcome}"
        );
        // The failure toast goes away before the next attempt, so that
        // attempt's outcome is not confused with this one's.
        tmux.wait_for("the failure toast to go", |s| !s.contains(failed))
            .await?;
    }
}

async fn learner_added_promoted_and_removed_through_the_console(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let tmux = console(&cluster, 220, 50)?;
    wait_dashboard(&tmux).await?;
    let (client, peer) = (ports::lease()?, ports::lease()?);
    let peer_url = format!("http://127.0.0.1:{}", peer.port());

    // Add: the confirmation names the target and the quorum impact, and
    // defaults to No; once confirmed, the flags to start the member with.
    let (confirmation, screen) = confirm_membership(
        &tmux,
        &format!("member add {peer_url} --learner --name n4"),
        "Add learner?",
        // The popup's last line: the capture may otherwise catch the frame
        // half written, with the flags above it only partly there.
        "Enter/Esc closes",
        "✖ member add",
    )
    .await?;
    ensure!(
        confirmation.contains(&format!("n4 at {peer_url}"))
            && confirmation.contains("voters unchanged (3), tolerates 1 failure"),
        "incomplete confirmation:\n{confirmation}"
    );
    ensure!(
        screen.contains("Member added"),
        "no result modal:\n{screen}"
    );
    let initial_cluster = screen
        .lines()
        .find_map(|l| l.split("--initial-cluster ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no --initial-cluster line")?
        .trim_end_matches('│')
        .to_string();
    ensure!(
        initial_cluster.contains(&format!("n4={peer_url}"))
            && initial_cluster.matches('=').count() == 4,
        "unexpected --initial-cluster {initial_cluster:?}:\n{screen}"
    );
    ensure!(
        screen.contains("--initial-cluster-state existing"),
        "no --initial-cluster-state:\n{screen}"
    );
    let members = member_list(&cluster).await?;
    ensure!(
        members.len() == 4 && members.contains(&(vec![peer_url.clone()], true)),
        "the cluster does not list the learner: {members:?}"
    );
    tmux.send(&["Escape"])?;
    tmux.wait_for("the result to close", |s| !s.contains("Member added"))
        .await?;

    // Start it with that line: the console shows it as a learner that
    // caught up (healthy).
    let _n4 = start_joining_member(flavor, "n4", &client, &peer, &initial_cluster)?;
    tmux.wait_for("n4 as a healthy learner", |s| {
        member_row(s, "n4").is_some_and(|l| l.contains("◐ learner") && l.contains("✔ healthy"))
            && s.contains("4/4 healthy, tolerates 1 failure (1 learner)")
    })
    .await?;

    // Promote it through the console.
    let (confirmation, _) = confirm_membership(
        &tmux,
        "member promote n4",
        "Promote learner?",
        "✔ member promote",
        "✖ member promote",
    )
    .await?;
    ensure!(
        confirmation.contains("3 -> 4 voters, tolerates 1 failure"),
        "no quorum impact:\n{confirmation}"
    );
    let members = member_list(&cluster).await?;
    ensure!(
        members.contains(&(vec![peer_url.clone()], false)),
        "n4 is still a learner: {members:?}"
    );
    tmux.wait_for("n4 as a voter", |s| {
        member_row(s, "n4").is_some_and(|l| !l.contains("learner"))
            && s.contains("4/4 healthy, tolerates 1 failure")
    })
    .await?;

    // Remove it through the console: the modal names it and the quorum
    // impact; Enter on the default (No) changes nothing.
    tmux.palette("member remove n4")?;
    let screen = tmux
        .wait_for("the remove confirmation", |s| s.contains("Remove member?"))
        .await?;
    ensure!(
        screen.contains("target  n4 (")
            && screen.contains("4 -> 3 voters, tolerates 1 failure")
            && screen.contains("[ No ]"),
        "incomplete confirmation:\n{screen}"
    );
    tmux.send(&["Enter"])?;
    tmux.wait_for("the modal to close", |s| !s.contains("Remove member?"))
        .await?;
    ensure!(
        member_list(&cluster).await?.len() == 4,
        "No removed the member"
    );
    confirm_membership(
        &tmux,
        "member remove n4",
        "Remove member?",
        "✔ member remove",
        "✖ member remove",
    )
    .await?;
    let members = member_list(&cluster).await?;
    ensure!(
        members.len() == 3 && !members.iter().any(|(urls, _)| urls.contains(&peer_url)),
        "n4 is still listed: {members:?}"
    );
    tmux.wait_for("three members again", |s| {
        s.contains("Members (3)") && member_row(s, "n4").is_none()
    })
    .await?;
    tmux.quit_and_check_terminal_restored().await
}

async fn keys_view_shows_value_history_diff_and_watch(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    for replicas in 1..=3 {
        let value = format!(r#"{{"image":"web:1.{replicas}","replicas":{replicas}}}"#);
        cluster
            .etcdctl_ok(&["put", "console/app/config.json", &value])
            .await?;
    }
    cluster
        .etcdctl_ok(&["put", "console/app/name", "web"])
        .await?;
    cluster
        .etcdctl_ok(&["put", "console/readme", "hello"])
        .await?;
    let tmux = console(&cluster, 160, 48)?;
    wait_dashboard(&tmux).await?;

    // Browse: the prefix's tree, Enter opens the dir, Enter on the key
    // focuses its value (pretty-printed JSON) with its metadata.
    tmux.palette("keys console/")?;
    tmux.wait_for("the console/ listing", |s| {
        s.contains("app/") && s.contains("readme")
    })
    .await?;
    tmux.send(&["Enter"])?;
    let screen = tmux
        .wait_for("the value of config.json", |s| {
            s.contains("config.json · JSON")
                && s.contains(r#""replicas": 3"#)
                && s.contains("version 3")
        })
        .await?;
    ensure!(
        screen.contains(r#""image": "web:1.3","#),
        "the JSON is not pretty-printed:\n{screen}"
    );
    tmux.send(&["Enter"])?;

    // History: the older values, read at past revisions.
    let screen = tmux
        .wait_for("three revisions in the history", |s| {
            s.contains("v3") && s.contains("v2") && s.contains("v1") && s.contains("(current)")
        })
        .await?;
    ensure!(
        screen.contains("key absent at revision"),
        "the history does not say where it ends:\n{screen}"
    );

    // Select the previous revision: its value shows; `d` diffs it with the
    // one before.
    tmux.send(&["Tab"])?;
    tmux.send(&["j"])?;
    tmux.wait_for("the older value", |s| {
        s.contains("showing an older revision") && s.contains(r#""replicas": 2"#)
    })
    .await?;
    tmux.send(&["d"])?;
    tmux.wait_for("the diff of revisions 1 and 2", |s| {
        s.contains("diff rev ")
            && s.contains(r#"-   "image": "web:1.1","#)
            && s.contains(r#"+   "image": "web:1.2","#)
            && s.contains(r#"-   "replicas": 1"#)
            && s.contains(r#"+   "replicas": 2"#)
    })
    .await?;

    // Live watch of the prefix: a put made elsewhere shows up.
    tmux.send(&["w"])?;
    tmux.wait_for("the watch to start", |s| s.contains("● LIVE"))
        .await?;
    cluster
        .etcdctl_ok(&["put", "console/app/replicas", "4"])
        .await?;
    tmux.wait_for("the watch event", |s| {
        s.contains("PUT console/app/replicas")
    })
    .await?;

    // The member serving the watch (the first endpoint) dies: the watch is
    // lost, resumes on another member after the last revision it saw, and
    // reports the change made while it was down.
    cluster.member(0).kill().await?;
    put_once_a_leader_answers(&cluster, "console/app/while-lost", "5").await?;
    tmux.wait_for("the resumed watch to report the change", |s| {
        s.contains("PUT console/app/while-lost") && s.contains("● LIVE")
    })
    .await?;

    // Put a new value through the editor, behind its confirmation.
    tmux.send(&["e"])?;
    tmux.wait_for("the value editor", |s| s.contains("Put value"))
        .await?;
    tmux.send(&["C-u"])?;
    tmux.send_text(r#"{"replicas":5}"#)?;
    tmux.send(&["Enter"])?;
    let screen = tmux
        .wait_for("the put confirmation", |s| {
            s.contains("Put key?") && s.contains("[ No ]")
        })
        .await?;
    ensure!(
        screen.contains("target  console/app/config.json")
            && screen.contains(r#"value: {"replicas":5} (14 bytes)"#),
        "incomplete confirmation:\n{screen}"
    );
    tmux.send(&["y"])?;
    tmux.wait_for("the put", |s| s.contains("✔ put console/app/config.json"))
        .await?;
    let get = |key: &'static str| {
        let cluster = &cluster;
        async move {
            let leader = cluster.leader_index().await?;
            tests::kv::get_value(&mut cluster.kv(leader)?, key).await
        }
    };
    ensure!(
        get("console/app/config.json").await?.as_deref() == Some(r#"{"replicas":5}"#),
        "the put did not land"
    );

    // Delete: Enter on the default (No) keeps the key; y deletes it.
    tmux.send(&["x"])?;
    tmux.wait_for("the delete confirmation", |s| {
        s.contains("Delete key?") && s.contains("target  console/app/config.json")
    })
    .await?;
    tmux.send(&["Enter"])?;
    tmux.wait_for("the modal to close", |s| !s.contains("Delete key?"))
        .await?;
    ensure!(
        get("console/app/config.json").await?.is_some(),
        "No deleted the key"
    );
    tmux.send(&["x"])?;
    tmux.wait_for("the delete confirmation", |s| s.contains("Delete key?"))
        .await?;
    tmux.send(&["y"])?;
    tmux.wait_for("the delete", |s| {
        s.contains("✔ delete console/app/config.json: 1 key(s) deleted")
    })
    .await?;
    ensure!(
        get("console/app/config.json").await?.is_none(),
        "the key is still there"
    );

    tmux.quit_and_check_terminal_restored().await
}

/// Puts `key` through the current leader, again while a member's death
/// leaves the cluster electing one (a write can fail meanwhile).
async fn put_once_a_leader_answers(cluster: &TestCluster, key: &str, value: &str) -> Result<()> {
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    loop {
        let leader = cluster.leader_index().await?;
        match tests::kv::put(&mut cluster.kv(leader)?, key, value).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                eprintln!("put {key} during the election: {e:#}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn once_prints_the_cluster_view_with_etcdctl_endpoints(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    cluster.leader_index().await?;
    // One poll is one snapshot: right after start-up a member may not
    // report healthy yet, so run it until the cluster has settled.
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    let stdout = loop {
        let out = tokio::process::Command::new(console_bin()?)
            .arg("--once")
            .env("ETCDCTL_ENDPOINTS", cluster.endpoints())
            .env_remove("NO_COLOR")
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "--once failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if stdout.contains("3/3 healthy, tolerates 1 failure") {
            break stdout;
        }
        ensure!(
            Instant::now() < deadline,
            "--once never showed a healthy cluster:\n{stdout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(
        stdout.contains("Members (3)")
            && count(&stdout, "★ leader") == 1
            && count(&stdout, "● follower") == 2,
        "unexpected --once output:\n{stdout}"
    );
    ensure!(
        !stdout.contains('\u{1b}'),
        "--once printed escape sequences:\n{stdout}"
    );
    for i in 0..3 {
        ensure!(
            stdout.contains(&cluster.client_url(i)),
            "member {i} missing:\n{stdout}"
        );
    }

    // Unreachable: a clear error and a failing status, never a hang.
    let dead = ports::lease()?;
    let out = tokio::process::Command::new(console_bin()?)
        .args(["--once", "--endpoints"])
        .arg(format!("127.0.0.1:{}", dead.port()))
        .output()
        .await?;
    ensure!(!out.status.success(), "--once succeeded without a cluster");
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the cluster"),
        "unexpected error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn leader_moved_keyspace_compacted_and_member_defragmented_through_the_console(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    for i in 0..5 {
        cluster
            .etcdctl_ok(&["put", "console/m", &i.to_string()])
            .await?;
    }
    let tmux = console(&cluster, 160, 48)?;
    wait_dashboard(&tmux).await?;

    // Move leadership to a follower.
    let old = cluster.leader_index().await?;
    let target = (old + 1) % 3;
    let name = cluster.member(target).name().to_string();
    let (confirmation, _) = confirm_membership(
        &tmux,
        &format!("move-leader {name}"),
        "Move leader?",
        "✔ move leader",
        "✖ move leader",
    )
    .await?;
    ensure!(
        confirmation.contains("voters unchanged (3), tolerates 1 failure"),
        "no quorum impact:\n{confirmation}"
    );
    tmux.wait_for("the new leader", |s| {
        member_row(s, &name).is_some_and(|l| l.contains("★ leader"))
    })
    .await?;
    ensure!(
        cluster.leader_index().await? == target,
        "the cluster's leader is not {name}"
    );

    // Compact through the form, which offers the current revision.
    tmux.palette("compact")?;
    tmux.wait_for("the compaction form", |s| s.contains("revision: "))
        .await?;
    tmux.send(&["Enter"])?;
    let screen = tmux
        .wait_for("the compaction confirmation", |s| {
            s.contains("Compact keyspace?") && s.contains("[ No ]")
        })
        .await?;
    ensure!(screen.contains("cannot be undone"), "no warning:\n{screen}");
    tmux.send(&["y"])?;
    tmux.wait_for("the compaction", |s| s.contains("✔ compact to revision"))
        .await?;
    let old_read = cluster
        .kv(0)?
        .range(RangeRequest {
            key: b"console/m".to_vec(),
            revision: 2,
            ..RangeRequest::default()
        })
        .await;
    ensure!(
        old_read
            .as_ref()
            .is_err_and(|e| e.message().contains("compacted")),
        "revision 2 is still readable: {old_read:?}"
    );

    // Defragment a member: named in the modal, with its quorum impact.
    let (confirmation, _) = confirm_membership(
        &tmux,
        "defrag n1",
        "Defragment member?",
        "✔ defragment",
        "✖ defragment",
    )
    .await?;
    ensure!(
        confirmation.contains("target  n1 (")
            && confirmation.contains("tolerates 0 failures while it runs"),
        "incomplete confirmation:\n{confirmation}"
    );
    tmux.quit_and_check_terminal_restored().await
}

/// Whether the styled capture sets a foreground or background colour
/// (SGR 30-37, 40-47, 90-97, 100-107, or 38/48 extended colours).
fn has_colour(styled: &str) -> bool {
    styled.split("\u{1b}[").skip(1).any(|seq| {
        let Some(end) = seq.find('m') else {
            return false;
        };
        let params: Vec<&str> = seq[..end].split(';').collect();
        params.iter().any(|p| {
            p.parse::<u16>()
                .is_ok_and(|n| matches!(n, 30..=37 | 40..=47 | 90..=97 | 100..=107 | 38 | 48))
        })
    })
}

async fn read_only_and_no_color_in_a_real_terminal(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    cluster.etcdctl_ok(&["put", "console/ro", "v"]).await?;
    let program = console_bin()?;
    let endpoints = cluster.endpoints();

    // Colour by default (the check below can tell).
    let tmux = console(&cluster, 120, 40)?;
    wait_dashboard(&tmux).await?;
    ensure!(
        has_colour(&tmux.capture_styled()),
        "no colour without NO_COLOR"
    );
    drop(tmux);

    // NO_COLOR: not one colour, but the glyphs and words are all there.
    let args = vec!["--endpoints".to_string(), endpoints.clone()];
    let tmux = Tmux::start_with_env(&program, &args, &[("NO_COLOR", "1")], 120, 40)?;
    wait_dashboard(&tmux).await?;
    let styled = tmux.capture_styled();
    ensure!(!has_colour(&styled), "colour despite NO_COLOR:\n{styled:?}");
    tmux.quit_and_check_terminal_restored().await?;

    // --read-only --no-color: the badge, no mutating keys in the footer or
    // the help, and mutations refused.
    let args = vec![
        "--endpoints".to_string(),
        endpoints,
        "--read-only".to_string(),
        "--no-color".to_string(),
    ];
    let tmux = Tmux::start(&program, &args, 120, 40)?;
    wait_dashboard(&tmux).await?;
    ensure!(
        !has_colour(&tmux.capture_styled()),
        "colour despite --no-color"
    );
    tmux.palette("keys console/")?;
    tmux.wait_for("the key and its value", |s| {
        s.contains("READ-ONLY") && s.contains("ro · text")
    })
    .await?;
    let screen = tmux.capture();
    let footer = screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    ensure!(
        !footer.contains("delete") && !footer.contains("edit"),
        "mutating keys in the footer: {footer}"
    );
    tmux.send(&["x"])?;
    tmux.send(&["?"])?;
    let help = tmux
        .wait_for("the help", |s| s.contains("Everywhere"))
        .await?;
    ensure!(
        !help.contains("delete the selected key") && !help.contains("Delete key?"),
        "the help offers a mutation:\n{help}"
    );
    tmux.send(&["Escape"])?;
    // Wait for the help to close: an Escape followed at once by `:` reads as
    // Alt-: to the terminal.
    tmux.wait_for("the help to close", |s| !s.contains("Everywhere"))
        .await?;
    tmux.palette("member remove n1")?;
    tmux.wait_for("the refusal", |s| {
        s.contains("read-only: mutations are disabled")
    })
    .await?;
    ensure!(
        member_list(&cluster).await?.len() == 3,
        "a member was removed"
    );
    ensure!(
        cluster
            .etcdctl_ok(&["get", "console/ro", "--print-value-only"])
            .await?
            .trim()
            == "v",
        "the key changed"
    );
    tmux.quit_and_check_terminal_restored().await
}

/// Keys under `many/`: more than three pages of the console's 500.
const MANY_KEYS: usize = 1600;

async fn many_keys_are_listed_page_by_page(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    // 16 writers at once, to fill the keyspace quickly.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let mut kv = cluster.kv(leader)?;
        writers.spawn(async move {
            for i in (w..MANY_KEYS).step_by(16) {
                tests::kv::put(&mut kv, &format!("many/k{i:05}"), "v").await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = writers.join_next().await {
        result??;
    }
    cluster.etcdctl_ok(&["put", "other", "v"]).await?;

    let tmux = console(&cluster, 120, 40)?;
    wait_dashboard(&tmux).await?;
    tmux.palette("flat")?;
    tmux.palette("keys many/")?;
    // The first page only: 500 keys and a `+` for more.
    let screen = tmux
        .wait_for("the first page", |s| s.contains("many/ [flat] 500+"))
        .await?;
    ensure!(screen.contains("many/k00000"), "no first key:\n{screen}");
    // G reads page after page and lands on the last key.
    tmux.send(&["G"])?;
    let last = format!("many/k{:05}", MANY_KEYS - 1);
    tmux.wait_for("every page and the last key", |s| {
        s.contains(&format!("many/ [flat] {MANY_KEYS} "))
            && s.lines().any(|l| l.contains('>') && l.contains(&last))
    })
    .await?;
    // The selected key's value is read after the selection lands.
    tmux.wait_for("the last key's value", |s| {
        s.contains(&format!("{last} · text"))
    })
    .await?;
    tmux.quit_and_check_terminal_restored().await
}

async fn lease_shown_with_its_countdown_and_keys_then_revoked(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let granted = cluster.etcdctl_ok(&["lease", "grant", "600"]).await?;
    // "lease 694d7a1b2c3d4e5f granted with TTL(600s)"
    let id = granted
        .split_whitespace()
        .nth(1)
        .context("no lease id")?
        .to_string();
    cluster
        .etcdctl_ok(&["put", "console/leased", "v", "--lease", &id])
        .await?;
    let tmux = console(&cluster, 140, 40)?;
    wait_dashboard(&tmux).await?;
    tmux.send(&["3"])?;
    let screen = tmux
        .wait_for("the lease with its key", |s| {
            s.contains(&id) && s.contains("console/leased") && s.contains("⏱ ")
        })
        .await?;
    // The countdown moves with the clock (between polls too).
    // "⏱ 9m29s" or "⏱ 42s", in seconds.
    let remaining = |screen: &str| -> Option<u32> {
        let line = screen.lines().find(|l| l.contains(&id))?;
        let text = line.split("⏱ ").nth(1)?.split_whitespace().next()?;
        let (minutes, seconds) = match text.split_once('m') {
            Some((m, s)) => (m.parse::<u32>().ok()?, s),
            None => (0, text),
        };
        Some(minutes * 60 + seconds.strip_suffix('s')?.parse::<u32>().ok()?)
    };
    let first = remaining(&screen).context("no countdown")?;
    tmux.wait_for("the countdown to move", |s| {
        remaining(s).is_some_and(|r| r < first)
    })
    .await?;

    tmux.send(&["x"])?;
    let screen = tmux
        .wait_for("the revoke confirmation", |s| {
            s.contains("Revoke lease?") && s.contains("[ No ]")
        })
        .await?;
    ensure!(
        screen.contains(&format!("target  lease {id} (TTL 600s)"))
            && screen.contains("console/leased"),
        "incomplete confirmation:\n{screen}"
    );
    tmux.send(&["y"])?;
    tmux.wait_for("the revocation", |s| s.contains("✔ lease revoke"))
        .await?;
    tmux.wait_for("the lease gone", |s| !s.contains(&id))
        .await?;
    let leases = cluster.etcdctl_ok(&["lease", "list"]).await?;
    ensure!(!leases.contains(&id), "the lease is still listed: {leases}");
    let key = cluster.etcdctl_ok(&["get", "console/leased"]).await?;
    ensure!(key.trim().is_empty(), "the leased key survived: {key}");
    tmux.quit_and_check_terminal_restored().await
}

async fn nospace_alarm_listed_then_disarmed_through_the_console(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::builder(flavor, 3)
        .args(["--quota-backend-bytes", "600000"])
        .start()
        .await?;
    let leader = cluster.leader_index().await?;
    let mut kv = cluster.kv(leader)?;
    let value = "x".repeat(20_000);
    let mut refused = None;
    for i in 0..200 {
        if let Err(e) = tests::kv::put(&mut kv, &format!("q{i}"), &value).await {
            refused = Some(format!("{e:#}"));
            break;
        }
    }
    let refused = refused.context("the quota was never enforced")?;
    ensure!(refused.contains("space exceeded"), "{refused}");

    let tmux = console(&cluster, 160, 40)?;
    let screen = tmux
        .wait_for("the alarm", |s| {
            s.contains("⚠ ALARMS") && s.contains("NOSPACE on ")
        })
        .await?;
    ensure!(
        screen.contains("⚠ alarm NOSPACE") && screen.contains("tolerates 1 failure"),
        "the alarmed members do not count for the quorum:\n{screen}"
    );
    let (confirmation, _) = confirm_membership(
        &tmux,
        "alarm disarm",
        "Disarm alarms?",
        "✔ alarm disarm",
        "✖ alarm disarm",
    )
    .await?;
    ensure!(
        confirmation.contains("active alarm(s) on the cluster"),
        "no target:\n{confirmation}"
    );
    tmux.wait_for("the alarm gone", |s| !s.contains("⚠ ALARMS"))
        .await?;
    let alarms = cluster.etcdctl_ok(&["alarm", "list"]).await?;
    ensure!(alarms.trim().is_empty(), "alarms left: {alarms}");
    tmux.quit_and_check_terminal_restored().await
}

/// Runs `cetera-console --once` with `args` and `env` until it shows a
/// healthy three-member cluster (the harness does not wait for `https://`
/// members, so this is also the readiness wait).
async fn once_until_healthy(args: &[String], env: &[(&str, &str)]) -> Result<String> {
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    loop {
        let out = tokio::process::Command::new(console_bin()?)
            .arg("--once")
            .args(args)
            .envs(env.iter().copied())
            .env_remove("ETCDCTL_ENDPOINTS")
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && stdout.contains("3/3 healthy, tolerates 1 failure") {
            return Ok(stdout);
        }
        ensure!(
            Instant::now() < deadline,
            "--once never showed a healthy cluster:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `--once` with `args` fails at once with one clear line naming why.
async fn once_fails(args: &[String], env: &[(&str, &str)], why: &str) -> Result<()> {
    let out = tokio::time::timeout(
        SCREEN_TIMEOUT,
        tokio::process::Command::new(console_bin()?)
            .arg("--once")
            .args(args)
            .envs(env.iter().copied())
            .env_remove("ETCDCTL_ENDPOINTS")
            .env("RUST_BACKTRACE", "0")
            .output(),
    )
    .await
    .context("--once hung")??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "--once succeeded with {args:?}");
    ensure!(
        stderr.contains(why) && !stderr.contains("panicked"),
        "unexpected error for {args:?}: {stderr}"
    );
    Ok(())
}

fn shows_three_members(screen: &str) -> bool {
    screen.contains("Members (3)")
        && count(screen, "★ leader") == 1
        && count(screen, "● follower") == 2
}

async fn https_cluster_shown_with_cacert_and_refused_with_the_wrong_ca(
    flavor: Flavor,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "console")?;
    let other = Pki::generate(dir.path(), "other")?;
    let cluster = TestCluster::builder(flavor, 3)
        .https_clients()
        .args(pki.server_flags())
        .start()
        .await?;
    let endpoints = cluster.endpoints();
    ensure!(endpoints.starts_with("https://"), "{endpoints}");

    // --once: every member's status and /health over TLS.
    let args = vec!["--endpoints".to_string(), endpoints.clone(), pki.cacert()];
    let stdout = once_until_healthy(&args, &[]).await?;
    ensure!(
        shows_three_members(&stdout),
        "unexpected --once output:\n{stdout}"
    );
    for i in 0..3 {
        ensure!(
            stdout.contains(&cluster.client_url(i)),
            "member {i} missing:\n{stdout}"
        );
    }

    // The full screen, with the CA from the flag.
    let tmux_args = vec![
        "--endpoints".to_string(),
        endpoints.clone(),
        "--refresh".to_string(),
        "500ms".to_string(),
        "--cacert".to_string(),
        path(&pki.ca),
    ];
    let tmux = Tmux::start(&console_bin()?, &tmux_args, 150, 40)?;
    wait_dashboard(&tmux).await?;
    tmux.quit_and_check_terminal_restored().await?;

    // Another CA: one clear line, not a hang. Without any CA the system's
    // store does not know the test CA either.
    let wrong = vec!["--endpoints".to_string(), endpoints.clone(), other.cacert()];
    once_fails(&wrong, &[], "invalid peer certificate").await?;
    let none = vec!["--endpoints".to_string(), endpoints.clone()];
    once_fails(&none, &[], "invalid peer certificate").await?;
    // A CA file that is not there ends it before any dial.
    let missing = vec![
        "--endpoints".to_string(),
        endpoints,
        "--cacert=/nonexistent/ca.pem".to_string(),
    ];
    once_fails(
        &missing,
        &[],
        "open /nonexistent/ca.pem: no such file or directory",
    )
    .await?;
    Ok(())
}

async fn client_cert_auth_cluster_shown_with_etcdctl_tls_variables(flavor: Flavor) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "mtls")?;
    let cluster = TestCluster::builder(flavor, 3)
        .https_clients()
        .args(pki.server_flags())
        .args(["--trusted-ca-file".to_string(), path(&pki.ca)])
        .args(["--client-cert-auth".to_string()])
        .start()
        .await?;
    // Scheme-less endpoints use TLS once a TLS file is given, as in etcdctl.
    let bare = cluster.endpoints().replace("https://", "");
    let [cert, key] = pki.client_identity();

    // --once with the flags.
    let args = vec![
        "--endpoints".to_string(),
        bare.clone(),
        pki.cacert(),
        cert,
        key,
    ];
    let stdout = once_until_healthy(&args, &[]).await?;
    ensure!(
        shows_three_members(&stdout),
        "unexpected --once output:\n{stdout}"
    );

    // The full screen, configured only through etcdctl's variables.
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client_cert), path(&pki.client_key));
    let env = [
        ("ETCDCTL_ENDPOINTS", bare.as_str()),
        ("ETCDCTL_CACERT", ca.as_str()),
        ("ETCDCTL_CERT", cert.as_str()),
        ("ETCDCTL_KEY", key.as_str()),
    ];
    let tmux = Tmux::start_with_env(
        &console_bin()?,
        &["--refresh".to_string(), "500ms".to_string()],
        &env,
        150,
        40,
    )?;
    wait_dashboard(&tmux).await?;
    tmux.quit_and_check_terminal_restored().await?;

    // Without a client certificate the members refuse the console: an
    // error line, not a hang.
    let no_identity = vec!["--endpoints".to_string(), bare.clone(), pki.cacert()];
    once_fails(&no_identity, &[], "cannot reach the cluster").await?;
    // A certificate without its key is refused as etcdctl refuses it.
    let half = vec![
        "--endpoints".to_string(),
        bare,
        pki.cacert(),
        format!("--cert={}", path(&pki.client_cert)),
    ];
    once_fails(&half, &[], "KeyFile and CertFile must both be present").await?;
    Ok(())
}

/// With auth enabled, the console authenticates as `--user` and shows what
/// that user may read; the token it holds is renewed when the server
/// refuses it (after a restart of the members); a wrong password is an
/// error in the header, not an exit.
async fn auth_user_sees_the_keys_it_may_read_and_a_bad_password_in_the_header(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    for args in [
        &["put", "shared/alpha", "one"][..],
        &["put", "shared/beta", "two"],
        &["put", "vault/gamma", "three"],
        &["user", "add", "root:rootpw"],
        &["role", "add", "reader"],
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "--prefix",
            "shared/",
        ],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "reader"],
        &["auth", "enable"],
    ] {
        cluster.etcdctl_ok(args).await?;
    }
    let endpoints = cluster.endpoints();
    let env = [("ETCDCTL_USER", "alice"), ("ETCDCTL_PASSWORD", "alicepw")];
    let args = vec![
        "--endpoints".to_string(),
        endpoints.clone(),
        "--refresh".to_string(),
        "500ms".to_string(),
    ];
    let tmux = Tmux::start_with_env(&console_bin()?, &args, &env, 160, 48)?;
    wait_dashboard(&tmux).await?;
    tmux.palette("keys shared/")?;
    tmux.wait_for("the keys alice may read", |s| {
        s.contains("alpha") && s.contains("beta")
    })
    .await?;
    tmux.palette("keys vault/")?;
    // The listing fails (the panel keeps its last data under STALE).
    tmux.wait_for("the refusal of a prefix alice may not read", |s| {
        s.lines()
            .any(|l| l.contains("STALE") && l.contains("vault/"))
            && !s.contains("gamma")
    })
    .await?;
    // Alice may read more now; the members restart, forgetting every token
    // they issued (`invalid auth token`): the console gets a new one.
    cluster
        .etcdctl_ok(&[
            "--user=root:rootpw",
            "role",
            "grant-permission",
            "reader",
            "read",
            "--prefix",
            "vault/",
        ])
        .await?;
    cluster.stop_all().await?;
    cluster.restart_all().await?;
    tmux.wait_for("the restarted cluster", |s| {
        s.contains("3/3 healthy, tolerates 1 failure")
    })
    .await?;
    tmux.palette("keys vault/")?;
    let screen = tmux
        .wait_for("the newly readable key", |s| s.contains("gamma"))
        .await?;
    ensure!(
        !screen.contains("invalid auth token"),
        "the refused token was not renewed:\n{screen}"
    );
    tmux.quit_and_check_terminal_restored().await?;

    // A wrong password: the header says so and the console keeps running.
    let wrong = vec![
        "--endpoints".to_string(),
        endpoints,
        "--refresh".to_string(),
        "500ms".to_string(),
        "--user".to_string(),
        "alice:wrong".to_string(),
    ];
    let tmux = Tmux::start(&console_bin()?, &wrong, 160, 48)?;
    tmux.wait_for("the failed authentication", |s| {
        s.lines()
            .take(3)
            .any(|l| l.contains("authentication failed"))
    })
    .await?;
    tmux.quit_and_check_terminal_restored().await?;
    Ok(())
}

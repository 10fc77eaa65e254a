//! `ceteractl`'s authentication against the real `etcdctl`: `auth`, `user`
//! and `role` in every output format, their argument and server errors and
//! exit codes, and the global `--user`/`--password` flags and their
//! `ETCDCTL_*` variables, run through both tools (two fresh clusters, the
//! same steps; only ids and terms are masked, see `tests::ceteractl`).
//!
//! The cetera flavor needs cetera's auth server; the etcd flavor proves
//! ceteractl behaves like etcdctl.
//!
//! The long-running commands (`watch`, `lease keep-alive`, `lock`) are run
//! against members started with `--auth-token-ttl=1` and are taken through
//! tokens that expired, members that stopped and members that restarted
//! (forgetting every token): as etcdctl, they carry on.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tests::ceteractl::{differential, ids, transcript};
use tests::diff::line_diff;
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    auth_commands_print_what_etcdctl_prints,
    auth_errors_and_exit_codes_match_etcdctl,
    credentials_follow_etcdctl_flags_and_variables,
    a_missing_password_is_read_from_stdin,
    protobuf_output_matches_etcdctl_byte_for_byte,
    a_token_forgotten_by_a_restart_is_renewed,
    bench_authenticates_as_the_user,
    bench_renews_a_token_forgotten_by_a_restart,
    a_watch_delivers_every_event_once_across_expired_tokens_and_restarts,
    lease_keep_alive_outlives_expired_tokens_and_restarts,
    a_held_lock_outlives_a_restart_of_every_member,
    an_election_and_its_observer_outlive_a_restart_of_every_member,
);

type Step<'a> = (&'a [&'a str], Option<&'a str>);
/// Arguments and `ETCDCTL_*` variables of one run.
type EnvStep<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

const ROOT: &str = "--user=root:rootpw";

/// Users, roles and permissions in each output format, with auth off.
async fn auth_commands_print_what_etcdctl_prints(flavor: Flavor) -> Result<()> {
    let (a, b) = tokio::try_join!(TestCluster::start(flavor, 1), TestCluster::start(flavor, 1))?;
    let mut steps: Vec<(Vec<String>, Option<&str>)> = Vec::new();
    // Protobuf carries the cluster's ids in varints: see
    // `protobuf_output_matches_etcdctl_byte_for_byte`.
    for w in ["simple", "json", "fields", "table"] {
        let (role, user, other) = (format!("r{w}"), format!("u{w}"), format!("v{w}"));
        let user_and_password = format!("{user}:pw");
        let cmds: Vec<(Vec<&str>, Option<&str>)> = vec![
            (vec!["role", "add", &role], None),
            (vec!["user", "add", &user_and_password], None),
            (vec!["user", "add", &other, "--new-user-password=x"], None),
            (vec!["user", "grant-role", &user, &role], None),
            (
                vec!["role", "grant-permission", &role, "readwrite", "foo"],
                None,
            ),
            (
                vec!["role", "grant-permission", &role, "read", "--prefix", "p/"],
                None,
            ),
            (
                vec!["role", "grant-permission", &role, "WRITE", "a", "z"],
                None,
            ),
            (
                vec!["role", "grant-permission", &role, "read", "--from-key", "k"],
                None,
            ),
            (
                vec!["role", "grant-permission", &role, "write", "--prefix", ""],
                None,
            ),
            (vec!["role", "get", &role], None),
            (vec!["user", "get", &user], None),
            (vec!["user", "get", "--detail", &user], None),
            (vec!["user", "get", "--detail", &other], None),
            (vec!["user", "list"], None),
            (vec!["role", "list"], None),
            (vec!["role", "revoke-permission", &role, "foo"], None),
            (vec!["role", "revoke-permission", &role, "a", "z"], None),
            (
                vec!["role", "revoke-permission", &role, "--prefix", "p/"],
                None,
            ),
            (
                vec!["role", "revoke-permission", &role, "--from-key", "k"],
                None,
            ),
            (vec!["user", "revoke-role", &user, &role], None),
            (
                vec!["user", "passwd", &user, "--interactive=false"],
                Some("new pw\n"),
            ),
            (vec!["user", "delete", &other], None),
            (vec!["user", "delete", &user], None),
            (vec!["role", "delete", &role], None),
        ];
        for (args, stdin) in cmds {
            let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            full.extend(["-w".to_string(), w.to_string()]);
            steps.push((full, stdin));
        }
    }
    // Several roles, none, and users made each way.
    let more: &[Step] = &[
        (&["role", "add", "r1"], None),
        (&["role", "add", "r2"], None),
        (&["user", "add", "nopw", "--no-password"], None),
        (
            &["user", "add", "piped", "--interactive=false"],
            Some("  word more\n"),
        ),
        (&["user", "add", "empty", "--interactive=false"], None),
        (&["user", "add", "colon:pa:ss"], None),
        (&["user", "grant-role", "nopw", "r2"], None),
        (&["user", "grant-role", "nopw", "r1"], None),
        (&["user", "get", "nopw"], None),
        (&["user", "get", "nopw", "--detail"], None),
        (&["user", "get", "piped"], None),
        (&["user", "list"], None),
        (&["role", "list", "-w", "fields"], None),
        (&["role", "get", "r1"], None),
    ];
    for (args, stdin) in more {
        steps.push((args.iter().map(|s| s.to_string()).collect(), *stdin));
    }
    let borrowed: Vec<Vec<&str>> = steps
        .iter()
        .map(|(args, _)| args.iter().map(String::as_str).collect())
        .collect();
    let steps: Vec<Step> = borrowed
        .iter()
        .zip(&steps)
        .map(|(args, (_, stdin))| (args.as_slice(), *stdin))
        .collect();
    differential(&a, &b, &steps).await
}

/// Argument errors (exit 128), server errors (exit 1), and what changes
/// once auth is enabled: `root` role creation, permission denied, failed
/// authentication (exit 2).
async fn auth_errors_and_exit_codes_match_etcdctl(flavor: Flavor) -> Result<()> {
    let (a, b) = tokio::try_join!(TestCluster::start(flavor, 1), TestCluster::start(flavor, 1))?;
    let steps: &[Step] = &[
        (&["role", "add"], None),
        (&["role", "add", "a", "b"], None),
        (&["role", "get"], None),
        (&["role", "get", "nope"], None),
        (&["role", "delete", "nope"], None),
        (&["role", "list", "extra"], None),
        (&["user", "add"], None),
        (&["user", "add", "x", "y"], None),
        (&["user", "add", ":x"], None),
        (&["user", "get"], None),
        (&["user", "get", "nope"], None),
        (&["user", "delete", "nope"], None),
        (&["user", "list", "extra"], None),
        (&["user", "passwd"], None),
        (
            &["user", "passwd", "nope", "--interactive=false"],
            Some("pw\n"),
        ),
        (&["user", "grant-role", "u"], None),
        (&["user", "grant-role", "nope", "r"], None),
        (&["user", "revoke-role"], None),
        (&["role", "grant-permission"], None),
        (&["role", "grant-permission", "r", "read"], None),
        (&["role", "grant-permission", "r", "bogus", "k"], None),
        (&["role", "grant-permission", "nope", "read", "k"], None),
        (&["role", "add", "r1"], None),
        (&["role", "add", "r1"], None),
        (&["role", "add", ""], None),
        (
            &[
                "role",
                "grant-permission",
                "r1",
                "read",
                "a",
                "b",
                "--prefix",
            ],
            None,
        ),
        (
            &[
                "role",
                "grant-permission",
                "r1",
                "read",
                "a",
                "--prefix",
                "--from-key",
            ],
            None,
        ),
        (
            &[
                "role",
                "grant-permission",
                "r1",
                "read",
                "a",
                "b",
                "--from-key",
            ],
            None,
        ),
        (&["role", "revoke-permission", "r1"], None),
        (&["role", "revoke-permission", "r1", "zz"], None),
        (
            &["role", "revoke-permission", "r1", "a", "b", "--prefix"],
            None,
        ),
        (&["role", "revoke-permission", "nope", "a"], None),
        (&["user", "add", "u1:x"], None),
        (&["user", "add", "u1:x"], None),
        (&["user", "revoke-role", "u1", "r1"], None),
        (&["auth", "enable", "extra"], None),
        (&["auth", "disable", "extra"], None),
        (&["auth", "disable"], None),
        // No root user yet.
        (&["auth", "enable"], None),
        (&["user", "add", "root:rootpw"], None),
        // No root role yet: auth enable creates it and grants it to root.
        (&["auth", "enable"], None),
        (&["user", "list"], None),
        (&["put", "k", "v"], None),
        (&[ROOT, "user", "get", "root"], None),
        (&[ROOT, "role", "get", "root"], None),
        (&[ROOT, "role", "grant-permission", "r1", "read", "k"], None),
        (&[ROOT, "user", "grant-role", "u1", "r1"], None),
        (&[ROOT, "put", "k", "v"], None),
        (&["--user=u1:x", "get", "k"], None),
        (&["--user=u1:x", "put", "k", "w"], None),
        (&["--user=u1:x", "get", "other"], None),
        (&["--user=u1:x", "user", "list"], None),
        (&["--user=u1:wrong", "get", "k"], None),
        (&["--user=nobody:x", "get", "k"], None),
        (&["--user=root", "--password=rootpw", "get", "k"], None),
        (&["--user=root:rootpw", "--password=x", "get", "k"], None),
        (&["--user=:rootpw", "get", "k"], None),
        (&["--password=rootpw", "get", "k"], None),
        (&[ROOT, "auth", "enable"], None),
        (&[ROOT, "auth", "disable", "-w", "json"], None),
        (&["get", "k"], None),
        (&["role", "delete", "root"], None),
        // The root user lost the root role with it: enable restores both.
        (&["auth", "enable", "-w", "json"], None),
        (&[ROOT, "user", "get", "root", "-w", "json"], None),
        (&[ROOT, "auth", "disable"], None),
    ];
    differential(&a, &b, steps).await
}

/// `ETCDCTL_USER` and `ETCDCTL_PASSWORD` stand in for the flags, with the
/// flags' rules; a variable and its flag together are etcdctl's conflict.
async fn credentials_follow_etcdctl_flags_and_variables(flavor: Flavor) -> Result<()> {
    let (a, b) = tokio::try_join!(TestCluster::start(flavor, 1), TestCluster::start(flavor, 1))?;
    for cluster in [&a, &b] {
        for args in [
            &["user", "add", "root:rootpw"][..],
            &["auth", "enable"],
            &[ROOT, "put", "k", "v"],
        ] {
            cluster.etcdctl(args, None).await?.ok()?;
        }
    }
    let (ids_a, ids_b) = (ids(&a).await?, ids(&b).await?);
    let cases: &[EnvStep] = &[
        (&["get", "k"], &[("ETCDCTL_USER", "root:rootpw")]),
        (
            &["get", "k"],
            &[("ETCDCTL_USER", "root"), ("ETCDCTL_PASSWORD", "rootpw")],
        ),
        (&["get", "k"], &[("ETCDCTL_USER", "root:bad")]),
        (&["get", "k"], &[("ETCDCTL_PASSWORD", "rootpw")]),
        (
            &["--password=rootpw", "get", "k"],
            &[("ETCDCTL_USER", "root")],
        ),
        (&[ROOT, "get", "k"], &[("ETCDCTL_USER", "root:rootpw")]),
    ];
    let mut failures = String::new();
    for (args, env) in cases {
        let expected = tests::etcdctl::run_env(&a.endpoints(), args, None, env).await?;
        let actual = tests::ceteractl::run(&b.endpoints(), args, None, env).await?;
        // etcdctl's fatal log line starts with a timestamp.
        let mask_time = |s: String| {
            s.lines()
                .map(|line| match line.split_once(" C | ") {
                    Some((_, rest)) => format!("<time> C | {rest}\n"),
                    None => format!("{line}\n"),
                })
                .collect::<String>()
        };
        let e = mask_time(transcript(&expected, &ids_a, &a.client_urls()));
        let c = mask_time(transcript(&actual, &ids_b, &b.client_urls()));
        if e != c {
            failures.push_str(&format!("{env:?} {args:?}\n{}\n", line_diff(&e, &c)));
        }
    }
    ensure!(failures.is_empty(), "(- etcdctl, + ceteractl):\n{failures}");
    Ok(())
}

/// `--user name` without a password asks for it: `Password: ` on stdout,
/// the answer read from stdin when it is not a terminal (etcdctl reads it
/// there too, complaining that stdin is no terminal).
async fn a_missing_password_is_read_from_stdin(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["auth", "enable"],
        &[ROOT, "put", "k", "v"],
    ] {
        cluster.etcdctl(args, None).await?.ok()?;
    }
    let ep = cluster.endpoints();
    let ok =
        tests::ceteractl::run(&ep, &["--user=root", "get", "k"], Some("rootpw\n"), &[]).await?;
    assert_eq!(ok.clone().ok()?, "Password: \nk\nv\n");
    let etcdctl = cluster
        .etcdctl(&["--user=root", "get", "k"], Some("rootpw\n"))
        .await?;
    assert_eq!(etcdctl.ok()?, ok.stdout, "etcdctl prints the same");
    // Nothing on stdin: an empty password, so no authentication at all.
    let anonymous = tests::ceteractl::run(&ep, &["--user=root", "get", "k"], None, &[]).await?;
    assert_eq!(anonymous.status.code(), Some(1));
    assert_eq!(anonymous.stdout, "Password: \n");
    assert_eq!(anonymous.stderr, "Error: etcdserver: user name is empty\n");
    // New users' passwords are asked twice and must agree.
    let add = |stdin: &'static str| {
        let ep = ep.clone();
        async move { tests::ceteractl::run(&ep, &[ROOT, "user", "add", "u"], Some(stdin), &[]).await }
    };
    let differ = add("one\ntwo\n").await?;
    assert_eq!(differ.status.code(), Some(128));
    assert_eq!(
        differ.stdout,
        "Password of u: \nType password of u again for confirmation: \n"
    );
    assert_eq!(differ.stderr, "Error: given passwords are different\n");
    let empty = add("\n").await?;
    assert_eq!(empty.status.code(), Some(128));
    assert_eq!(empty.stderr, "Error: empty password\n");
    let added = add("secret\nsecret\n").await?;
    assert!(added.ok()?.ends_with("User u created\n"));
    Ok(())
}

/// `-w protobuf` on one cluster (the encoded ids then agree): each step
/// runs through etcdctl, then through ceteractl on objects of its own
/// (`{who}` becomes `e` or `c`); reads see the same objects.
async fn protobuf_output_matches_etcdctl_byte_for_byte(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let ep = cluster.endpoints();
    let steps: &[&[&str]] = &[
        &["role", "add", "r{who}"],
        &["user", "add", "u{who}:pw"],
        &["user", "grant-role", "u{who}", "r{who}"],
        &["role", "grant-permission", "r{who}", "readwrite", "foo"],
        &[
            "role",
            "grant-permission",
            "r{who}",
            "read",
            "--prefix",
            "p/",
        ],
        &["role", "get", "r{who}"],
        &["user", "get", "u{who}"],
        &["user", "get", "--detail", "u{who}"],
        &["user", "list"],
        &["role", "list"],
        &["role", "revoke-permission", "r{who}", "foo"],
        &["user", "revoke-role", "u{who}", "r{who}"],
        &["user", "delete", "u{who}"],
        &["role", "delete", "r{who}"],
    ];
    let mut failures = String::new();
    for step in steps {
        let args = |who: &str| -> Vec<String> {
            let mut args: Vec<String> = step.iter().map(|a| a.replace("{who}", who)).collect();
            args.extend(["-w".to_string(), "protobuf".to_string()]);
            args
        };
        let (e_args, c_args) = (args("e"), args("c"));
        let e_args: Vec<&str> = e_args.iter().map(String::as_str).collect();
        let c_args: Vec<&str> = c_args.iter().map(String::as_str).collect();
        let expected = cluster.etcdctl(&e_args, None).await?;
        let actual = tests::ceteractl::run(&ep, &c_args, None, &[]).await?;
        let (mut e, mut c) = (
            transcript(&expected, &[], &[]),
            transcript(&actual, &[], &[]),
        );
        if step.iter().any(|a| a.contains("{who}")) {
            // Each tool's own objects: names of the same length, one
            // letter apart.
            e = e.replace("re", "rX").replace("ue", "uX");
            c = c.replace("rc", "rX").replace("uc", "uX");
        }
        if e != c {
            failures.push_str(&format!("$ {}\n{}\n", step.join(" "), line_diff(&e, &c)));
        }
    }
    ensure!(failures.is_empty(), "(- etcdctl, + ceteractl):\n{failures}");
    Ok(())
}

/// `lock NAME -- COMMAND` unlocks after the command with the token it got
/// before: when the members restarted meanwhile (forgetting every token),
/// the unlock is answered `invalid auth token`, and ceteractl
/// authenticates again and retries instead of failing.
async fn a_token_forgotten_by_a_restart_is_renewed(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "locker"],
        &[
            "role",
            "grant-permission",
            "locker",
            "readwrite",
            "--prefix",
            "door",
        ],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "locker"],
        &["auth", "enable"],
    ] {
        cluster.etcdctl_ok(args).await?;
    }
    let dir = tempfile::tempdir()?;
    let flag = dir.path().join("release");
    let wait_for_flag = format!("while [ ! -e '{}' ]; do sleep 0.05; done", flag.display());
    let holder = tokio::process::Command::new(tests::binaries::ceteractl_bin()?)
        .arg(format!("--endpoints={}", cluster.endpoints()))
        .args(["--user=alice:alicepw", "lock", "door", "sh", "-c"])
        .arg(&wait_for_flag)
        .env_remove("ETCDCTL_ENDPOINTS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let held = || async {
        let out = cluster
            .etcdctl(&[ROOT, "get", "door", "--prefix", "--keys-only"], None)
            .await?;
        anyhow::Ok(out.ok()?.trim().to_string())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while held().await?.is_empty() {
        if tokio::time::Instant::now() > deadline {
            bail!("ceteractl never took the lock");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.stop_all().await?;
    cluster.restart_all().await?;
    std::fs::write(&flag, b"")?;
    let out = tokio::time::timeout(Duration::from_secs(60), holder.wait_with_output())
        .await
        .context("ceteractl lock did not finish")??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "ceteractl lock failed ({:?}): {stderr}",
        out.status
    );
    ensure!(held().await?.is_empty(), "the lock is still held");
    Ok(())
}

/// How long a long-running ceteractl may take to print what a test waits
/// for (members restart in between).
const OUTPUT_WAIT: Duration = Duration::from_secs(90);

/// A ceteractl that runs until stopped, its stdout collected line by line.
struct LongRunning {
    child: tokio::process::Child,
    lines: tokio::sync::watch::Receiver<Vec<String>>,
    stderr: tokio::task::JoinHandle<String>,
}

impl LongRunning {
    fn spawn(endpoints: &str, args: &[&str]) -> Result<LongRunning> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut child = tokio::process::Command::new(tests::binaries::ceteractl_bin()?)
            .arg(format!("--endpoints={endpoints}"))
            .args(args)
            .env_remove("ETCDCTL_ENDPOINTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut stderr = child.stderr.take().context("no stderr")?;
        let (tx, lines) = tokio::sync::watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                tx.send_modify(|lines| lines.push(line));
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Ok(LongRunning {
            child,
            lines,
            stderr,
        })
    }

    /// Waits until the output so far satisfies `done`; the lines.
    async fn wait_for(
        &mut self,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>> {
        let wait = async {
            let lines = self.lines.wait_for(|l| done(l)).await;
            lines.map(|lines| lines.clone())
        };
        if let Ok(Ok(lines)) = tokio::time::timeout(OUTPUT_WAIT, wait).await {
            return Ok(lines);
        }
        let lines = self.lines.borrow().join("\n");
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        bail!("ceteractl never printed {what}; stdout:\n{lines}\nstderr:\n{stderr}")
    }

    /// Whether the process is still running.
    fn running(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    /// Sends SIGINT and waits for the process to exit: its status and
    /// stderr.
    async fn interrupt(mut self) -> Result<(std::process::ExitStatus, String)> {
        let pid = self.child.id().context("ceteractl already exited")?;
        let pid = rustix::process::Pid::from_raw(pid as i32).context("pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::INT)?;
        let status = tokio::time::timeout(OUTPUT_WAIT, self.child.wait())
            .await
            .context("ceteractl did not exit on SIGINT")??;
        Ok((status, self.stderr.await?))
    }

    /// Kills the process; its stderr.
    async fn stop(mut self) -> Result<String> {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        Ok(self.stderr.await?)
    }
}

/// Users for the long-running commands: `root`, and `alice`, who may
/// read and write under `w/` and `door`.
async fn users_with_auth_enabled(cluster: &TestCluster) -> Result<()> {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "worker"],
        &[
            "role",
            "grant-permission",
            "worker",
            "readwrite",
            "--prefix",
            "w/",
        ],
        &[
            "role",
            "grant-permission",
            "worker",
            "readwrite",
            "--prefix",
            "door",
        ],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "worker"],
        &["auth", "enable"],
    ] {
        cluster.etcdctl_ok(args).await?;
    }
    Ok(())
}

/// How long an unused token takes to expire with `--auth-token-ttl=1`:
/// etcd drops expired tokens once a second, so up to two seconds.
const TOKEN_EXPIRY: Duration = Duration::from_millis(2500);

/// `ceteractl bench` with `--user`/`--password` (or their variables)
/// authenticates once and writes as that user; a wrong password ends it
/// before it measures anything, as a failed authentication ends any
/// ceteractl command (exit 2).
async fn bench_authenticates_as_the_user(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    users_with_auth_enabled(&cluster).await?;
    let ep = cluster.endpoints();
    let knobs = [
        "--total=40",
        "--clients=4",
        "--conns=2",
        "--key-size=4",
        "--key-space-size=10",
        "--sequential-keys",
        "--prefix=w/",
    ];
    let runs: [EnvStep; 4] = [
        (&["--user=alice:alicepw", "bench", "put"], &[]),
        (
            &["bench", "txn"],
            &[("ETCDCTL_USER", "alice"), ("ETCDCTL_PASSWORD", "alicepw")],
        ),
        (
            &[
                "--user=alice",
                "--password=alicepw",
                "bench",
                "get",
                "--target-leader",
            ],
            &[],
        ),
        (&["--user=alice:alicepw", "bench", "watch"], &[]),
    ];
    for (args, env) in runs {
        let args: Vec<&str> = args.iter().chain(&knobs).copied().collect();
        let out = tests::ceteractl::run(&ep, &args, None, env).await?;
        let summary = out.clone().ok().with_context(|| format!("{args:?}"))?;
        ensure!(
            summary.contains("Requests/sec") && !summary.contains("Error distribution"),
            "{args:?}:\n{summary}"
        );
    }
    let keys = cluster
        .etcdctl_ok(&[ROOT, "get", "w/", "--prefix", "--keys-only"])
        .await?;
    let written = keys.lines().filter(|l| !l.is_empty()).count();
    assert_eq!(written, 10, "every key of the keyspace, as alice: {keys}");

    let wrong = ["--user=alice:wrong", "bench", "put", "--total=10"];
    let refused = tests::ceteractl::run(&ep, &wrong, None, &[]).await?;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert_eq!(
        refused.stderr,
        "Error: etcdserver: authentication failed, invalid user ID or password\n"
    );
    assert_eq!(refused.stdout, "", "nothing measured");
    // Without credentials every request is refused (`user name is
    // empty`): counted, and the run fails.
    let anonymous = ["bench", "put", "--total=10", "--prefix=w/"];
    let refused = tests::ceteractl::run(&ep, &anonymous, None, &[]).await?;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        refused
            .stdout
            .ends_with("Error distribution:\n  [10]\tInvalidArgument\n"),
        "{refused:?}"
    );
    Ok(())
}

/// Keys under `w/`, counted as root.
async fn keys_under_w(cluster: &TestCluster) -> Result<u64> {
    let out = cluster
        .etcdctl_ok(&[ROOT, "get", "w/", "--prefix", "--keys-only", "-w", "json"])
        .await?;
    let json: serde_json::Value = serde_json::from_str(&out)?;
    Ok(json["count"].as_u64().unwrap_or(0))
}

/// A `bench put` writing one new key per request goes on writing after
/// the member restarted and forgot its token: the refused requests renew
/// it (once for all clients) and carry on.
async fn bench_renews_a_token_forgotten_by_a_restart(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    users_with_auth_enabled(&cluster).await?;
    let args = [
        "--user=alice:alicepw",
        "bench",
        "put",
        "--total=1000000",
        "--clients=2",
        "--key-space-size=1000000",
        "--sequential-keys",
        "--prefix=w/",
    ];
    let mut bench = LongRunning::spawn(&cluster.endpoints(), &args)?;
    let grows = |from: u64| {
        let cluster = &cluster;
        async move {
            let deadline = tokio::time::Instant::now() + OUTPUT_WAIT;
            loop {
                let now = keys_under_w(cluster).await?;
                if now > from + 10 {
                    return anyhow::Ok(now);
                }
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "bench wrote nothing more than {from} keys"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    grows(0).await?;
    cluster.stop_all().await?;
    cluster.restart_all().await?;
    let before = keys_under_w(&cluster).await?;
    let grown = grows(before).await;
    ensure!(bench.running()?, "bench ended");
    let stderr = bench.stop().await?;
    grown.with_context(|| format!("ceteractl stderr: {stderr}"))?;
    Ok(())
}

/// `ceteractl --user watch` against two of three members, with tokens
/// that expire after a second: the watched member stops (the watch goes
/// on at the other, whose copy of the token has expired by then, so it is
/// renewed), events are written while no stream is open, the member comes
/// back having forgotten every token and the other stops. Every event is
/// printed once, in order.
async fn a_watch_delivers_every_event_once_across_expired_tokens_and_restarts(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::builder(flavor, 3)
        .arg("--auth-token-ttl=1")
        .start()
        .await?;
    users_with_auth_enabled(&cluster).await?;
    let put = |i: usize| {
        let (key, value) = (format!("w/{i:02}"), format!("v{i}"));
        let cluster = &cluster;
        async move {
            cluster
                .etcdctl_at(2, &[ROOT, "put", &key, &value], None)
                .await?
                .ok()
        }
    };
    let printed = |n: usize| move |lines: &[String]| lines.len() >= 3 * n;
    let endpoints = format!("{},{}", cluster.client_url(0), cluster.client_url(1));
    let watch_args = ["--user=alice:alicepw", "watch", "w/", "--prefix"];
    let mut watch = LongRunning::spawn(&endpoints, &watch_args)?;
    cluster.wait_watchers(0, 1).await?;
    for i in 0..5 {
        put(i).await?;
    }
    watch.wait_for("the first events", printed(5)).await?;

    tokio::time::sleep(TOKEN_EXPIRY).await;
    cluster.member(0).stop().await?;
    for i in 5..10 {
        put(i).await?;
    }
    watch
        .wait_for("the events written while it was away", printed(10))
        .await?;

    cluster.member(0).restart().await?;
    cluster.wait_ready(0).await?;
    cluster.member(1).stop().await?;
    for i in 10..15 {
        put(i).await?;
    }
    let lines = watch
        .wait_for("the events after the restart", printed(15))
        .await?;
    ensure!(watch.running()?, "the watch ended: {lines:?}");
    let stderr = watch.stop().await?;
    let expected: Vec<String> = (0..15)
        .flat_map(|i| ["PUT".to_string(), format!("w/{i:02}"), format!("v{i}")])
        .collect();
    assert_eq!(lines, expected, "stderr: {stderr}");
    Ok(())
}

/// `ceteractl --user lease keep-alive` keeps renewing while its token
/// expires, its member stops (it goes on at another) and comes back.
async fn lease_keep_alive_outlives_expired_tokens_and_restarts(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::builder(flavor, 3)
        .arg("--auth-token-ttl=1")
        .start()
        .await?;
    users_with_auth_enabled(&cluster).await?;
    let granted = cluster.etcdctl_ok(&[ROOT, "lease", "grant", "3"]).await?;
    let id = granted
        .split_whitespace()
        .nth(1)
        .context("lease id")?
        .to_string();
    let endpoints = format!("{},{}", cluster.client_url(0), cluster.client_url(1));
    let args = ["--user=alice:alicepw", "lease", "keep-alive", id.as_str()];
    let mut keep_alive = LongRunning::spawn(&endpoints, &args)?;
    let answered = format!("lease {id} keepalived with TTL(3)");
    // Each answer comes a second after the last: more answers than the
    // TTL has seconds show the lease was renewed, not merely not expired.
    let answers = |n: usize| {
        let answered = answered.clone();
        move |lines: &[String]| lines.iter().filter(|l| **l == answered).count() >= n
    };
    keep_alive.wait_for("a first answer", answers(1)).await?;
    tokio::time::sleep(TOKEN_EXPIRY).await;
    let seen = keep_alive.wait_for("answers", answers(1)).await?.len();
    cluster.member(0).stop().await?;
    keep_alive
        .wait_for("answers from the other member", answers(seen + 5))
        .await?;
    cluster.member(0).restart().await?;
    cluster.wait_ready(0).await?;
    let seen = keep_alive.wait_for("answers", answers(1)).await?.len();
    cluster.member(1).stop().await?;
    let lines = keep_alive
        .wait_for("answers from the restarted member", answers(seen + 5))
        .await?;
    ensure!(keep_alive.running()?, "keep-alive ended: {lines:?}");
    let stderr = keep_alive.stop().await?;
    ensure!(
        lines.iter().all(|l| *l == answered),
        "{lines:?}\nstderr: {stderr}"
    );
    let ttl = cluster
        .etcdctl_at(0, &[ROOT, "lease", "timetolive", &id], None)
        .await?
        .ok()?;
    ensure!(ttl.contains("remaining("), "{ttl}");
    Ok(())
}

/// etcdctl 3.4 keeps a lock through a restart of every member (the
/// session's keep-alive comes back; the lease outlives the restart): so
/// does ceteractl, which gives it up on SIGINT only.
async fn a_held_lock_outlives_a_restart_of_every_member(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::builder(flavor, 1)
        .arg("--auth-token-ttl=1")
        .start()
        .await?;
    users_with_auth_enabled(&cluster).await?;
    let args = ["--user=alice:alicepw", "lock", "--ttl=3", "door"];
    let mut holder = LongRunning::spawn(&cluster.endpoints(), &args)?;
    let lines = holder
        .wait_for("the lock key", |lines| lines.len() >= 2)
        .await?;
    let key = lines[0].clone();
    ensure!(key.starts_with("door/"), "{lines:?}");
    let held = || async {
        let out = cluster
            .etcdctl_ok(&[ROOT, "get", "door", "--prefix", "--keys-only"])
            .await?;
        anyhow::Ok(out.trim().to_string())
    };
    cluster.stop_all().await?;
    cluster.restart_all().await?;
    assert_eq!(held().await?, key);
    // Longer than the session's TTL: only its keep-alive keeps it held.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(held().await?, key, "the lock was lost");
    ensure!(holder.running()?, "ceteractl lock gave up the lock");
    let (status, stderr) = holder.interrupt().await?;
    ensure!(status.success(), "ceteractl lock: {status:?}: {stderr}");
    ensure!(held().await?.is_empty(), "SIGINT did not unlock");
    Ok(())
}

/// `elect` keeps its leadership and `elect -l` keeps observing through a
/// restart of every member (tokens forgotten, streams broken): after it,
/// the leader resigns on SIGINT and the observer sees the next one.
async fn an_election_and_its_observer_outlive_a_restart_of_every_member(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::builder(flavor, 1)
        .arg("--auth-token-ttl=1")
        .start()
        .await?;
    users_with_auth_enabled(&cluster).await?;
    let ep = cluster.endpoints();
    let mut observer = LongRunning::spawn(&ep, &["--user=alice:alicepw", "elect", "-l", "door-e"])?;
    let mut first = LongRunning::spawn(&ep, &["--user=alice:alicepw", "elect", "door-e", "first"])?;
    let first_won = first.wait_for("the first leader", |l| l.len() >= 2).await?;
    ensure!(
        first_won[0].starts_with("door-e/") && first_won[1] == "first",
        "{first_won:?}"
    );
    observer
        .wait_for("the first leader", |l| l.len() >= 2)
        .await?;

    cluster.stop_all().await?;
    cluster.restart_all().await?;
    // Longer than a token lives: both hold on with renewed ones.
    tokio::time::sleep(TOKEN_EXPIRY).await;
    ensure!(first.running()?, "the leader gave up");
    let (status, stderr) = first.interrupt().await?;
    ensure!(status.success(), "elect: {status:?}: {stderr}");
    let mut second =
        LongRunning::spawn(&ep, &["--user=alice:alicepw", "elect", "door-e", "second"])?;
    let won = second
        .wait_for("the second leader", |l| l.len() >= 2)
        .await?;
    let seen = observer
        .wait_for("the second leader, observed", |l| l.len() >= 4)
        .await?;
    ensure!(observer.running()?, "the observer ended: {seen:?}");
    let stderr = observer.stop().await?;
    second.stop().await?;
    assert_eq!(seen[..2], first_won[..], "{stderr}");
    assert_eq!(seen[2..], won[..], "{stderr}");
    Ok(())
}

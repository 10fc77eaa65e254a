//! `ceteractl`'s authentication against the real `etcdctl`: `auth`, `user`
//! and `role` in every output format, their argument and server errors and
//! exit codes, and the global `--user`/`--password` flags and their
//! `ETCDCTL_*` variables, run through both tools (two fresh clusters, the
//! same steps; only ids and terms are masked, see `tests::ceteractl`).
//!
//! The cetera flavor needs cetera's auth server; the etcd flavor proves
//! ceteractl behaves like etcdctl.

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

//! TLS on the client URL: cetera started with etcd's `--cert-file`,
//! `--key-file`, `--trusted-ca-file` and `--client-cert-auth` on an
//! `https://` listen URL, reached by etcdctl, ceteractl (`--cacert`,
//! `--cert`, `--key`, `ETCDCTL_CACERT`, `--insecure-skip-tls-verify`, and
//! its load generator `bench`), curl and the Python `etcd3` client. And TLS between members:
//! `https://` peer URLs with `--peer-cert-file`, `--peer-key-file`,
//! `--peer-trusted-ca-file` and `--peer-client-cert-auth`, where a member
//! with another CA is kept out. Each flavor test also runs on real etcd
//! with the same flags, which proves the test (and ceteractl against
//! etcd). The certificates are made at test time by a throwaway CA.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tests::etcdctl::CtlOutput;
use tests::pki::{Pki, path};
use tests::{Flavor, TestCluster, flavor_tests};
use tokio::process::Command;

flavor_tests!(
    https_client_url_serves_grpc_and_http,
    client_cert_auth_refuses_clients_without_a_certificate,
    https_peers_elect_replicate_and_survive_a_leader_kill,
    peer_client_cert_auth_replicates_through_the_environment,
    a_member_with_another_ca_is_kept_out_until_it_has_the_right_one,
    members_join_over_tls_only_with_the_right_ca,
    with_client_cert_auth_a_certificate_names_the_user,
);

/// Runs the real etcdctl with `args` (TLS flags included).
async fn etcdctl(endpoint: &str, args: &[&str]) -> Result<CtlOutput> {
    tests::etcdctl::run(endpoint, args, None).await
}

async fn ceteractl(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Result<CtlOutput> {
    tests::ceteractl::run(endpoint, args, None, env).await
}

/// Waits until the member answers a linearizable read over TLS (the
/// harness cannot check `https://` members itself).
async fn wait_tls_ready(cluster: &TestCluster, tls_args: &[String]) -> Result<()> {
    let endpoint = cluster.client_url(0);
    let mut args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    args.extend(["get", "ready-probe"]);
    let mut last = None;
    for _ in 0..150 {
        let out = ceteractl(&endpoint, &args, &[]).await?;
        if out.success() {
            return Ok(());
        }
        last = Some(out);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "{} never answered over TLS: {last:?}\nlog tail:\n{}",
        endpoint,
        cluster.member(0).log_tail(20)
    )
}

/// [`wait_tls_ready`] for a member that wants client certificates; the
/// client's flags (`--cacert`, `--cert`, `--key`).
async fn wait_mtls_ready(cluster: &TestCluster, pki: &Pki) -> Result<[String; 3]> {
    let [cert, key] = pki.client_identity();
    let flags = [pki.cacert(), cert, key];
    wait_tls_ready(cluster, &flags).await?;
    Ok(flags)
}

async fn curl(args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .await
        .context("running curl")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ))
}

async fn https_client_url_serves_grpc_and_http(flavor: Flavor) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "main")?;
    let other = Pki::generate(dir.path(), "other")?;
    let cluster = TestCluster::builder(flavor, 1)
        .https_clients()
        .args(pki.server_flags())
        .start()
        .await?;
    wait_tls_ready(&cluster, &[pki.cacert()]).await?;
    let ep = cluster.client_url(0);
    ensure!(ep.starts_with("https://"), "{ep}");
    let cacert = pki.cacert();

    // etcdctl writes over TLS; ceteractl reads it back, by flag and by
    // ETCDCTL_CACERT.
    etcdctl(&ep, &[&cacert, "put", "tls/a", "from etcdctl"])
        .await?
        .ok()?;
    let got = ceteractl(&ep, &[&cacert, "get", "tls/a", "--print-value-only"], &[]).await?;
    assert_eq!(got.ok()?, "from etcdctl\n");
    ceteractl(&ep, &[&cacert, "put", "tls/b", "from ceteractl"], &[])
        .await?
        .ok()?;
    let got = etcdctl(&ep, &[&cacert, "get", "tls/b", "--print-value-only"]).await?;
    assert_eq!(got.ok()?, "from ceteractl\n");
    let ca = path(&pki.ca);
    let by_env = ceteractl(
        &ep,
        &["get", "tls/", "--prefix", "--count-only"],
        &[("ETCDCTL_CACERT", &ca)],
    )
    .await?;
    assert_eq!(by_env.ok()?, "2\n");
    // A bare host:port endpoint with --cacert uses TLS too.
    let bare = ep.trim_start_matches("https://");
    let got = ceteractl(bare, &[&cacert, "get", "tls/a", "--print-value-only"], &[]).await?;
    assert_eq!(got.ok()?, "from etcdctl\n");
    // Skipping verification works without the CA; the wrong CA does not.
    let skip = ceteractl(&ep, &["--insecure-skip-tls-verify", "get", "tls/a"], &[]).await?;
    assert!(skip.success(), "{skip:?}");
    let wrong_ca = other.cacert();
    let short = ["--dial-timeout=1s", "--command-timeout=2s"];
    let theirs = etcdctl(&ep, &[&wrong_ca, short[0], short[1], "get", "tls/a"]).await?;
    let ours = ceteractl(&ep, &[&wrong_ca, short[0], short[1], "get", "tls/a"], &[]).await?;
    assert!(
        !theirs.success(),
        "etcdctl trusted the wrong CA: {theirs:?}"
    );
    assert_eq!(ours.status.code(), theirs.status.code(), "{ours:?}");
    assert_eq!(ours.stderr, "Error: context deadline exceeded\n");
    // https:// without --cacert: the system's CAs do not know ours.
    let theirs = etcdctl(&ep, &[short[0], short[1], "get", "tls/a"]).await?;
    let ours = ceteractl(&ep, &[short[0], short[1], "get", "tls/a"], &[]).await?;
    assert!(
        !theirs.success(),
        "etcdctl trusted an unknown CA: {theirs:?}"
    );
    assert_eq!(ours.status.code(), theirs.status.code(), "{ours:?}");
    assert_eq!(ours.stderr, "Error: context deadline exceeded\n");

    // The load generator dials TLS too: by --cacert, and by
    // --insecure-skip-tls-verify; not with a CA that did not sign the
    // server's certificate.
    let bench = |tls: &'static str, wrong: Option<&str>| {
        let (ep, cacert, wrong) = (ep.clone(), cacert.clone(), wrong.map(str::to_string));
        async move {
            let tls = match (tls, wrong) {
                (_, Some(wrong)) => wrong,
                ("ca", None) => cacert,
                _ => "--insecure-skip-tls-verify".to_string(),
            };
            let knobs = [
                tls.as_str(),
                "--dial-timeout=1s",
                "bench",
                "put",
                "--total=20",
                "--clients=2",
                "--conns=2",
                "--key-space-size=5",
                "--sequential-keys",
                "--prefix=tlsbench/",
            ];
            ceteractl(&ep, &knobs, &[]).await
        }
    };
    for tls in ["ca", "skip"] {
        let out = bench(tls, None).await?;
        let summary = out.ok()?;
        assert!(summary.contains("Requests/sec"), "{summary}");
        assert!(!summary.contains("Error distribution"), "{summary}");
    }
    let written = ceteractl(
        &ep,
        &[&cacert, "get", "tlsbench/", "--prefix", "--keys-only"],
        &[],
    )
    .await?
    .ok()?;
    assert_eq!(
        written.lines().filter(|l| !l.is_empty()).count(),
        5,
        "{written}"
    );
    let refused = bench("ca", Some(&other.cacert())).await?;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        refused
            .stderr
            .starts_with("Error: cannot connect to https://"),
        "{refused:?}"
    );

    // HTTP on the same TLS port: /health and the v3 JSON gateway.
    let (ok, body) = curl(&["--cacert", &ca, &format!("{ep}/health")]).await?;
    assert!(ok && body.contains(r#""health":"true""#), "{body}");
    let (ok, body) = curl(&[
        "--cacert",
        &ca,
        "-X",
        "POST",
        &format!("{ep}/v3/kv/range"),
        "-d",
        r#"{"key":"dGxzL2E="}"#,
    ])
    .await?;
    assert!(
        ok && body.contains(r#""value":"ZnJvbSBldGNkY3Rs""#),
        "{body}"
    );
    // Plain HTTP to the TLS port gets nothing useful.
    let plain = ep.replace("https://", "http://");
    let (ok, body) = curl(&[&format!("{plain}/health")]).await?;
    assert!(!ok || !body.contains(r#""health":"true""#), "{body}");

    // The Python etcd3 client with ca_cert.
    let port = ep.rsplit(':').next().context("port")?;
    let script = format!(
        "import etcd3\nc = etcd3.client(host='127.0.0.1', port={port}, ca_cert={ca:?}, timeout=10)\nc.put('tls/py', 'from python')\nprint(c.get('tls/a')[0].decode())\n"
    );
    let out = Command::new(tests::python::python()?)
        .args(["-c", &script])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "python etcd3 over TLS failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from etcdctl\n");
    let got = ceteractl(&ep, &[&cacert, "get", "tls/py", "--print-value-only"], &[]).await?;
    assert_eq!(got.ok()?, "from python\n");
    Ok(())
}

async fn client_cert_auth_refuses_clients_without_a_certificate(flavor: Flavor) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "mtls")?;
    // This time through etcd's environment variables instead of flags.
    let cluster = TestCluster::builder(flavor, 1)
        .https_clients()
        .env("ETCD_CERT_FILE", path(&pki.server_cert))
        .env("ETCD_KEY_FILE", path(&pki.server_key))
        .env("ETCD_TRUSTED_CA_FILE", path(&pki.ca))
        .env("ETCD_CLIENT_CERT_AUTH", "true")
        .start()
        .await?;
    let [cacert, cert, key] = wait_mtls_ready(&cluster, &pki).await?;
    let ep = cluster.client_url(0);

    let with = [cacert.as_str(), cert.as_str(), key.as_str()];
    let mut put = with.to_vec();
    put.extend(["put", "mtls/k", "v"]);
    ceteractl(&ep, &put, &[]).await?.ok()?;
    let mut get = with.to_vec();
    get.extend(["get", "mtls/k", "--print-value-only"]);
    assert_eq!(etcdctl(&ep, &get).await?.ok()?, "v\n");
    assert_eq!(ceteractl(&ep, &get, &[]).await?.ok()?, "v\n");
    let (ca, cert_path, key_path) = (path(&pki.ca), path(&pki.client_cert), path(&pki.client_key));
    let env = [
        ("ETCDCTL_CACERT", ca.as_str()),
        ("ETCDCTL_CERT", cert_path.as_str()),
        ("ETCDCTL_KEY", key_path.as_str()),
    ];
    let by_env = ceteractl(&ep, &["get", "mtls/k", "--print-value-only"], &env).await?;
    assert_eq!(by_env.ok()?, "v\n");

    // Without a client certificate the handshake fails: both tools time out.
    let without = [
        cacert.as_str(),
        "--dial-timeout=1s",
        "--command-timeout=2s",
        "get",
        "mtls/k",
    ];
    let theirs = etcdctl(&ep, &without).await?;
    let ours = ceteractl(&ep, &without, &[]).await?;
    assert!(
        !theirs.success(),
        "etcd served a client without a certificate: {theirs:?}"
    );
    assert_eq!(ours.status.code(), theirs.status.code(), "{ours:?}");
    assert_eq!(ours.stderr, "Error: context deadline exceeded\n");
    let (ok, body) = curl(&["--cacert", &ca, &format!("{ep}/health")]).await?;
    assert!(!ok, "curl without a certificate was served: {body}");
    let (ok, body) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &cert_path,
        "--key",
        &key_path,
        &format!("{ep}/health"),
    ])
    .await?;
    assert!(ok && body.contains(r#""health":"true""#), "{body}");
    // The load generator presents the client certificate too. Without
    // one, TLS 1.3 completes the client's side of the handshake before the
    // server refuses it: every request fails and so does the run.
    let mut bench = with.to_vec();
    bench.extend([
        "bench",
        "txn",
        "--total=10",
        "--key-space-size=2",
        "--prefix=mtls/b",
    ]);
    let summary = ceteractl(&ep, &bench, &[]).await?.ok()?;
    assert!(summary.contains("Requests/sec"), "{summary}");
    assert!(!summary.contains("Error distribution"), "{summary}");
    let refused = ceteractl(
        &ep,
        &[&cacert, "bench", "put", "--total=1", "--prefix=mtls/b"],
        &[],
    )
    .await?;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(refused.stderr, "Error: no request succeeded\n");
    // Only one of --cert and --key: etcdctl's message and exit code.
    let half = ceteractl(&ep, &[&cacert, &cert, "get", "mtls/k"], &[]).await?;
    let theirs = etcdctl(&ep, &[&cacert, &cert, "get", "mtls/k"]).await?;
    assert_eq!(half.status.code(), theirs.status.code());
    assert_eq!(
        half.stderr,
        format!("Error: KeyFile and CertFile must both be present[key: , cert: {cert_path}]\n")
    );
    Ok(())
}

/// `--client-cert-auth` with auth enabled: a request without a token acts
/// as the user its certificate's common name names; a token still wins.
async fn with_client_cert_auth_a_certificate_names_the_user(flavor: Flavor) -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Every certificate of this PKI has the common name `root`.
    let pki = Pki::generate(dir.path(), "root")?;
    let cluster = TestCluster::builder(flavor, 1)
        .https_clients()
        .args(pki.server_flags())
        .args(["--trusted-ca-file".to_string(), path(&pki.ca)])
        .arg("--client-cert-auth")
        .start()
        .await?;
    let [cacert, cert, key] = wait_mtls_ready(&cluster, &pki).await?;
    let ep = cluster.client_url(0);
    let run = |extra: &'static [&'static str]| {
        let mut args = vec![cacert.clone(), cert.clone(), key.clone()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let ep = ep.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = etcdctl(&ep, &args).await?;
            Ok::<_, anyhow::Error>(if out.success() {
                out.stdout
            } else {
                out.stderr_messages().trim().to_string()
            })
        }
    };
    assert_eq!(
        run(&["user", "add", "root", "--new-user-password=pw"]).await?,
        "User root created\n"
    );
    assert_eq!(run(&["auth", "enable"]).await?, "Authentication Enabled\n");
    // No --user: the certificate says root, who may do anything.
    assert_eq!(run(&["put", "cn/k", "v"]).await?, "OK\n");
    assert_eq!(
        run(&["user", "add", "alice", "--new-user-password=pw"]).await?,
        "User alice created\n"
    );
    assert_eq!(run(&["get", "cn/k", "--print-value-only"]).await?, "v\n");
    // A token is taken over the certificate: alice has no role.
    assert_eq!(
        run(&["--user=alice:pw", "put", "cn/k", "w"]).await?,
        "Error: etcdserver: permission denied"
    );
    // ceteractl presents the certificate the same way.
    let ours = ceteractl(
        &ep,
        &[&cacert, &cert, &key, "get", "cn/k", "--print-value-only"],
        &[],
    )
    .await?;
    assert_eq!(ours.ok()?, "v\n");
    Ok(())
}

/// Waits until member `i` serves `key` with `value` from its own store (a
/// serializable read), i.e. it has replicated it.
async fn wait_replicated(cluster: &TestCluster, i: usize, key: &str, value: &str) -> Result<()> {
    let mut last = String::new();
    for _ in 0..200 {
        let out = cluster
            .etcdctl_at(
                i,
                &["get", key, "--consistency=s", "--print-value-only"],
                None,
            )
            .await?;
        if out.success() && out.stdout == format!("{value}\n") {
            return Ok(());
        }
        last = format!("{out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{} never replicated {key}={value}: {last}\nlog tail:\n{}",
        cluster.member(i).name(),
        cluster.member(i).log_tail(20)
    )
}

/// Writes `key` through member `through` and waits until every member in
/// `readers` serves it from its own store.
async fn write_and_read_back(
    cluster: &TestCluster,
    through: usize,
    readers: &[usize],
    key: &str,
    value: &str,
) -> Result<()> {
    cluster
        .etcdctl_at(through, &["put", key, value], None)
        .await?
        .ok()?;
    for &i in readers {
        wait_replicated(cluster, i, key, value).await?;
    }
    Ok(())
}

/// The peer listener of member `i` completes a TLS handshake with the CA
/// (and the client certificate when `identity` is given): curl exits 0
/// on any HTTP answer.
async fn peer_handshake(
    cluster: &TestCluster,
    i: usize,
    pki: &Pki,
    identity: bool,
) -> Result<(bool, String)> {
    let url = cluster.member(i).peer_url();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.server_cert), path(&pki.server_key));
    let mut args = vec!["--http1.1", "--cacert", ca.as_str()];
    if identity {
        args.extend(["--cert", cert.as_str(), "--key", key.as_str()]);
    }
    let target = format!("{url}/version");
    args.push(&target);
    curl(&args).await
}

async fn https_peers_elect_replicate_and_survive_a_leader_kill(flavor: Flavor) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "peers")?;
    let cluster = TestCluster::builder(flavor, 3)
        .https_peers()
        .args(pki.peer_flags(false))
        .start()
        .await?;
    let all = [0, 1, 2];
    // The members know each other by their https:// peer URLs.
    let members = cluster.etcdctl_ok(&["member", "list"]).await?;
    for i in all {
        let url = cluster.member(i).peer_url();
        ensure!(url.starts_with("https://"), "{url}");
        ensure!(members.contains(&url), "{url} not in {members}");
    }
    // The peer listener speaks TLS. As in etcd, a trusted CA alone (no
    // --peer-client-cert-auth) already requires a certificate it signed.
    let (ok, body) = peer_handshake(&cluster, 0, &pki, true).await?;
    ensure!(ok, "TLS handshake with the peer listener failed: {body}");
    let (ok, body) = peer_handshake(&cluster, 0, &pki, false).await?;
    ensure!(
        !ok,
        "the peer listener served a client without a certificate: {body}"
    );

    write_and_read_back(&cluster, 0, &all, "ptls/a", "1").await?;
    let leader = cluster.leader_index().await?;
    write_and_read_back(&cluster, leader, &all, "ptls/b", "2").await?;

    cluster.member(leader).kill().await?;
    let survivors: Vec<usize> = all.into_iter().filter(|&i| i != leader).collect();
    let new_leader = cluster.leader_index().await?;
    ensure!(new_leader != leader, "the killed member still leads");
    write_and_read_back(&cluster, survivors[0], &survivors, "ptls/c", "3").await?;
    // The killed member comes back and catches up over TLS.
    cluster.member(leader).restart().await?;
    cluster.wait_ready(leader).await?;
    wait_replicated(&cluster, leader, "ptls/c", "3").await?;
    Ok(())
}

async fn peer_client_cert_auth_replicates_through_the_environment(flavor: Flavor) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "peer-mtls")?;
    let cluster = TestCluster::builder(flavor, 3)
        .https_peers()
        .env("ETCD_PEER_CERT_FILE", path(&pki.server_cert))
        .env("ETCD_PEER_KEY_FILE", path(&pki.server_key))
        .env("ETCD_PEER_TRUSTED_CA_FILE", path(&pki.ca))
        .env("ETCD_PEER_CLIENT_CERT_AUTH", "true")
        .start()
        .await?;
    let all = [0, 1, 2];
    write_and_read_back(&cluster, 1, &all, "pmtls/a", "1").await?;
    // A client without a certificate cannot talk to the peer listener;
    // with one it can.
    let (ok, body) = peer_handshake(&cluster, 0, &pki, false).await?;
    ensure!(
        !ok,
        "the peer listener served a client without a certificate: {body}"
    );
    let (ok, body) = peer_handshake(&cluster, 0, &pki, true).await?;
    ensure!(
        ok,
        "the peer listener refused a member's certificate: {body}"
    );

    let leader = cluster.leader_index().await?;
    cluster.member(leader).kill().await?;
    let survivors: Vec<usize> = all.into_iter().filter(|&i| i != leader).collect();
    let new_leader = cluster.leader_index().await?;
    ensure!(new_leader != leader, "the killed member still leads");
    write_and_read_back(&cluster, survivors[1], &survivors, "pmtls/b", "2").await?;
    Ok(())
}

async fn a_member_with_another_ca_is_kept_out_until_it_has_the_right_one(
    flavor: Flavor,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "club")?;
    let stranger = Pki::generate(dir.path(), "stranger")?;
    // n3 reads its peer files from paths of its own, holding the other
    // CA's material first; the right files replace them later.
    let n3_files = [
        (&stranger.server_cert, dir.path().join("n3-peer.pem")),
        (&stranger.server_key, dir.path().join("n3-peer-key.pem")),
        (&stranger.ca, dir.path().join("n3-ca.pem")),
    ];
    for (from, to) in &n3_files {
        std::fs::copy(from, to)?;
    }
    let n3_flags = vec![
        "--peer-cert-file".to_string(),
        path(&n3_files[0].1),
        "--peer-key-file".into(),
        path(&n3_files[1].1),
        "--peer-trusted-ca-file".into(),
        path(&n3_files[2].1),
        "--peer-client-cert-auth".into(),
    ];
    let mut builder = TestCluster::builder(flavor, 3)
        .https_peers()
        .wait_ready(false);
    for i in [0, 1] {
        builder = builder.member_args(i, pki.peer_flags(true));
    }
    let cluster = builder.member_args(2, n3_flags).start().await?;
    cluster.wait_ready(0).await?;
    cluster.wait_ready(1).await?;

    // n1 and n2 are a quorum: they elect a leader and replicate.
    write_and_read_back(&cluster, 0, &[0, 1], "club/a", "1").await?;
    let leader = cluster.leader_index().await?;
    ensure!(leader != 2, "the stranger leads");
    write_and_read_back(&cluster, leader, &[0, 1], "club/b", "2").await?;
    // The stranger never hears from them: no leader, none of the writes,
    // however many heartbeats it is given. (etcd does not even serve
    // clients before it has a leader; cetera answers, with nothing.)
    for _ in 0..6 {
        if let Ok(status) = cluster.status(2).await {
            ensure!(
                status.leader == 0,
                "the stranger follows {:x}",
                status.leader
            );
        }
        let out = cluster
            .etcdctl_at(
                2,
                &[
                    "--dial-timeout=1s",
                    "--command-timeout=1s",
                    "get",
                    "club/",
                    "--prefix",
                    "--consistency=s",
                    "--keys-only",
                ],
                None,
            )
            .await?;
        ensure!(!out.stdout.contains("club/"), "the stranger has {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Given the club's certificate and CA, the same member joins in and
    // catches up.
    cluster.member(2).kill().await?;
    for (to, from) in [
        (&n3_files[0].1, &pki.server_cert),
        (&n3_files[1].1, &pki.server_key),
        (&n3_files[2].1, &pki.ca),
    ] {
        std::fs::copy(from, to)?;
    }
    cluster.member(2).restart().await?;
    cluster.wait_ready(2).await?;
    wait_replicated(&cluster, 2, "club/b", "2").await?;
    write_and_read_back(&cluster, 2, &[0, 1, 2], "club/c", "3").await?;
    Ok(())
}

/// A bad TLS file or a missing one ends cetera's start-up with one line.
#[tokio::test]
async fn bad_tls_files_end_startup_with_one_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "bad")?;
    let data = dir.path().join("data");
    let run = |extra: Vec<String>| {
        let data = data.clone();
        async move {
            let mut cmd = Command::new(Flavor::Cetera.binary()?);
            cmd.args([
                "--data-dir",
                &path(&data),
                "--listen-client-urls",
                "https://127.0.0.1:0",
                "--advertise-client-urls",
                "https://127.0.0.1:2379",
                "--listen-peer-urls",
                "http://127.0.0.1:0",
            ])
            .args(extra)
            .kill_on_drop(true);
            let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await??;
            anyhow::Ok((
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    };
    let (code, stderr) = run(vec![]).await?;
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "cetera: TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:0 with HTTPS scheme\n"
    );
    let (code, stderr) = run(vec![
        "--cert-file".into(),
        "/nonexistent/server.pem".into(),
        "--key-file".into(),
        path(&pki.server_key),
    ])
    .await?;
    assert_eq!(code, Some(1));
    assert_eq!(
        last_line(&stderr),
        "cetera: open /nonexistent/server.pem: no such file or directory"
    );
    // A key that is not a key.
    let (code, stderr) = run(vec![
        "--cert-file".into(),
        path(&pki.server_cert),
        "--key-file".into(),
        path(&pki.server_cert),
    ])
    .await?;
    assert_eq!(code, Some(1));
    let line = last_line(&stderr);
    assert!(
        line.starts_with(&format!(
            "cetera: {}: no usable private key",
            path(&pki.server_cert)
        )),
        "{stderr}"
    );
    Ok(())
}

/// A member started with `--initial-cluster-state existing` after `member
/// add`, with its own `--peer-*` flags.
struct Joiner {
    child: std::process::Child,
    client_url: String,
    _ports: (tests::ports::PortLease, tests::ports::PortLease),
    dir: tempfile::TempDir,
}

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Joiner {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("member.log")).unwrap_or_default()
    }
}

/// `member add <name>` (`--learner` if `learner`) with an https:// peer
/// URL, then starts the member with the `ETCD_INITIAL_CLUSTER` line it
/// printed.
async fn join(
    cluster: &TestCluster,
    name: &str,
    learner: bool,
    peer_flags: Vec<String>,
) -> Result<Joiner> {
    let (client, peer) = (tests::ports::lease()?, tests::ports::lease()?);
    let client_url = format!("http://127.0.0.1:{}", client.port());
    let peer_url = format!("https://127.0.0.1:{}", peer.port());
    let mut printed = None;
    // etcd refuses membership changes until its members have been
    // connected for a while ("unhealthy cluster").
    for _ in 0..100 {
        let mut add = vec!["member", "add", name, "--peer-urls", &peer_url];
        if learner {
            add.push("--learner");
        }
        let out = cluster.etcdctl(&add, None).await?;
        if out.success() {
            printed = Some(out.stdout);
            break;
        }
        ensure!(
            out.stderr.contains("unhealthy cluster"),
            "member add: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let printed = printed.context("member add kept failing")?;
    let initial_cluster = printed
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .with_context(|| format!("no ETCD_INITIAL_CLUSTER in {printed}"))?
        .to_string();
    let dir = tempfile::tempdir()?;
    let log = std::fs::File::create(dir.path().join("member.log"))?;
    let mut command = tests::spawn::guarded_command(&cluster.flavor().binary()?);
    command
        .args(["--name", name])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &initial_cluster])
        .args(["--initial-cluster-state", "existing"])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .args(peer_flags)
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = tests::spawn::spawn(command)?;
    Ok(Joiner {
        child,
        client_url,
        _ports: (client, peer),
        dir,
    })
}

async fn members_join_over_tls_only_with_the_right_ca(flavor: Flavor) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "joinclub")?;
    let stranger = Pki::generate(dir.path(), "joinstranger")?;
    let cluster = TestCluster::builder(flavor, 3)
        .https_peers()
        .args(pki.peer_flags(true))
        .start()
        .await?;
    write_and_read_back(&cluster, 0, &[0, 1, 2], "join/a", "1").await?;

    // With the club's files the new member learns who it is from a peer
    // over TLS and replicates.
    let mut n4 = join(&cluster, "n4", true, pki.peer_flags(true)).await?;
    let mut replicated = false;
    for _ in 0..200 {
        ensure!(n4.child.try_wait()?.is_none(), "n4 exited:\n{}", n4.log());
        let out = tests::etcdctl::run(
            &n4.client_url,
            &["get", "join/a", "--consistency=s", "--print-value-only"],
            None,
        )
        .await?;
        if out.success() && out.stdout == "1\n" {
            replicated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(replicated, "n4 never replicated join/a:\n{}", n4.log());

    // A member with another CA cannot even learn its id: it gives up, and
    // the cluster carries on. (A voter: etcd takes one learner at a time;
    // three of the four voters still make a quorum.)
    let mut n5 = join(&cluster, "n5", false, stranger.peer_flags(true)).await?;
    let mut exited = None;
    for _ in 0..600 {
        if let Some(status) = n5.child.try_wait()? {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = exited.with_context(|| format!("n5 kept running:\n{}", n5.log()))?;
    ensure!(!status.success(), "n5 exited with {status}:\n{}", n5.log());
    // Its log says why: the peers' certificate is not one it trusts.
    ensure!(n5.log().contains("certificate"), "n5's log:\n{}", n5.log());
    write_and_read_back(&cluster, 1, &[0, 1, 2], "join/b", "2").await?;
    Ok(())
}

/// Bad or missing peer TLS files end cetera's start-up with one line.
#[tokio::test]
async fn bad_peer_tls_files_end_startup_with_one_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path(), "badpeer")?;
    let data = dir.path().join("data");
    let run = |extra: Vec<String>| {
        let data = data.clone();
        async move {
            let mut cmd = Command::new(Flavor::Cetera.binary()?);
            cmd.args([
                "--data-dir",
                &path(&data),
                "--listen-client-urls",
                "http://127.0.0.1:0",
                "--advertise-client-urls",
                "http://127.0.0.1:2379",
                "--listen-peer-urls",
                "https://127.0.0.1:0",
                "--initial-advertise-peer-urls",
                "https://127.0.0.1:2380",
                "--initial-cluster",
                "default=https://127.0.0.1:2380",
            ])
            .args(extra)
            .kill_on_drop(true);
            let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await??;
            anyhow::Ok((
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    };
    let (code, stderr) = run(vec![]).await?;
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "cetera: TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url https://127.0.0.1:0 with HTTPS scheme\n"
    );
    let files = |cert: String, key: String, ca: String| {
        vec![
            "--peer-cert-file".into(),
            cert,
            "--peer-key-file".into(),
            key,
            "--peer-trusted-ca-file".into(),
            ca,
        ]
    };
    let (cert, key, ca) = (path(&pki.server_cert), path(&pki.server_key), path(&pki.ca));
    let (code, stderr) = run(files(
        cert.clone(),
        key.clone(),
        "/nonexistent/ca.pem".into(),
    ))
    .await?;
    assert_eq!(code, Some(1));
    assert_eq!(
        last_line(&stderr),
        "cetera: open /nonexistent/ca.pem: no such file or directory"
    );
    let (code, stderr) = run(files(cert.clone(), cert.clone(), ca.clone())).await?;
    assert_eq!(code, Some(1));
    assert!(
        last_line(&stderr).starts_with(&format!("cetera: {cert}: no usable private key")),
        "{stderr}"
    );
    // A CA file that holds no certificate.
    let (code, stderr) = run(files(cert.clone(), key.clone(), key.clone())).await?;
    assert_eq!(code, Some(1));
    assert_eq!(
        last_line(&stderr),
        format!("cetera: {key}: no PEM certificate found")
    );
    let (code, stderr) = run(vec![
        "--peer-cert-file".into(),
        cert,
        "--peer-key-file".into(),
        key,
        "--peer-client-cert-auth".into(),
    ])
    .await?;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--peer-client-cert-auth needs --peer-trusted-ca-file"),
        "{stderr}"
    );
    Ok(())
}

/// The last line of stderr (the tracing subscriber may log before it).
fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

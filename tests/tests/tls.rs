//! TLS on the client URL: cetera started with etcd's `--cert-file`,
//! `--key-file`, `--trusted-ca-file` and `--client-cert-auth` on an
//! `https://` listen URL, reached by etcdctl, ceteractl (`--cacert`,
//! `--cert`, `--key`, `ETCDCTL_CACERT`, `--insecure-skip-tls-verify`),
//! curl and the Python `etcd3` client. Each flavor test also runs on real
//! etcd with the same flags, which proves the test (and ceteractl against
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

    // The load generator refuses TLS endpoints instead of dialling them
    // in the clear.
    let bench = ceteractl(&ep, &[&cacert, "bench", "put", "--total=1"], &[]).await?;
    assert_eq!(bench.status.code(), Some(128), "{bench:?}");
    assert_eq!(
        bench.stderr,
        "Error: bench does not support TLS endpoints yet
"
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
    let [cert, key] = pki.client_identity();
    let cacert = pki.cacert();
    wait_tls_ready(&cluster, &[cacert.clone(), cert.clone(), key.clone()]).await?;
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

/// The last line of stderr (the tracing subscriber may log before it).
fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

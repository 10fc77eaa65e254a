//! Discovery bootstrap end to end: `cetera-discovery` against the real etcd
//! 3.4 discovery client, and cetera members (`cetera --discovery=<url>`)
//! against `cetera-discovery`.
//!
//! Every test starts its own `cetera-discovery` on a leased loopback port
//! with its data dir in a fresh `cetera-test-discovery-*` directory, and
//! either real `etcd` members with `--discovery=<url>`, each on leased ports
//! with its own data dir there, or cetera members through the shared
//! [`TestCluster`] harness (`ClusterBuilder::discovery`).
//! Every process is SIGKILLed and reaped when its handle drops (and dies
//! with the test process through `setpriv --pdeathsig`, see
//! `tests::spawn`); its log tail goes to stderr, which the runner shows for
//! failing tests.
//!
//! The small HTTP client below speaks HTTP/1.1 over a plain socket so the
//! tests see exactly what a client sees: status, `X-Etcd-Index`, and a long
//! poll's headers arriving before its body.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use tempfile::TempDir;
use tests::ports::{self, PortLease};
use tests::{Flavor, TestCluster, binaries, etcdctl, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

/// How long a process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a cluster may take to bootstrap through discovery.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one HTTP exchange.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines printed per process when it is dropped.
const LOG_TAIL_LINES: usize = 40;

// ---------------------------------------------------------------------------
// Processes

/// A child process writing to a log file; SIGKILLed and reaped on drop.
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Proc> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = spawn::guarded_command(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = spawn::spawn(cmd)?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The exit status if the process has ended.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} still runs after {limit:?}", self.name);
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s).
    async fn stop(&mut self) -> Result<ExitStatus> {
        let child = self.child.as_ref().context("not running")?;
        kill_process(Pid::from_child(child), Signal::TERM)
            .with_context(|| format!("signalling {}", self.name))?;
        match self.wait_exit(Duration::from_secs(10)).await {
            Ok(status) => Ok(status),
            Err(e) => {
                self.kill();
                Err(e.context("it ignored SIGTERM"))
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        eprintln!(
            "----- {} ({}) -----\n{}",
            self.name,
            self.log.display(),
            self.log_tail()
        );
    }
}

/// A fresh `cetera-test-discovery-*` directory (kept with `CETERA_TEST_KEEP=1`).
fn temp_dir() -> Result<TempDir> {
    let mut dir = tempfile::Builder::new()
        .prefix("cetera-test-discovery-")
        .tempdir()
        .context("creating a temporary directory")?;
    if std::env::var_os("CETERA_TEST_KEEP").is_some_and(|v| v != "0" && !v.is_empty()) {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    Ok(dir)
}

/// A `cetera-discovery` process on a leased port.
struct Discovery {
    port: PortLease,
    args: Vec<String>,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Discovery {
    /// Starts it with its data dir in `dir` and waits until `/health` is 200.
    async fn start(dir: &Path, extra: &[&str]) -> Result<Discovery> {
        let port = ports::lease()?;
        let mut args = vec![
            "--listen-addr".to_string(),
            format!("127.0.0.1:{}", port.port()),
            "--data-dir".to_string(),
            dir.join("discovery").display().to_string(),
            "--log-level".to_string(),
            "debug".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut discovery = Discovery {
            port,
            args,
            log: dir.join("discovery.log"),
            proc: None,
        };
        discovery.launch().await?;
        Ok(discovery)
    }

    async fn launch(&mut self) -> Result<()> {
        let program = binaries::discovery_bin()?;
        let mut proc = Proc::start("cetera-discovery", &program, &self.args, &self.log)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = proc.exited() {
                bail!(
                    "cetera-discovery exited with {status} during start-up:\n{}",
                    proc.log_tail()
                );
            }
            if let Ok(reply) = http(self.port(), "GET", "/health", None).await
                && reply.status == 200
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("cetera-discovery not healthy after {READY_TIMEOUT:?}");
            }
            sleep(Duration::from_millis(50)).await;
        }
        self.proc = Some(proc);
        Ok(())
    }

    /// SIGKILL (like `kill -9`): open long polls break mid-answer.
    fn kill(&mut self) -> Result<()> {
        let mut proc = self
            .proc
            .take()
            .context("cetera-discovery is not running")?;
        proc.kill();
        Ok(())
    }

    /// Starts it again after [`Discovery::kill`]: same port, flags and data.
    async fn relaunch(&mut self) -> Result<()> {
        ensure!(self.proc.is_none(), "cetera-discovery is still running");
        self.launch().await
    }

    /// Waits until `token` has `n` registrations.
    async fn wait_registered(&self, token: &str, n: usize) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let count = self.registrations(token).await?.len();
            if count >= n {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{count} of {n} members registered after {READY_TIMEOUT:?}"
            );
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `n` long polls have blocked waiting for an event.
    async fn wait_blocked_polls(&self, n: u64) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let blocked = self.metric("cetera_discovery_waits_blocked_total").await?;
            if blocked >= n {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{blocked} of {n} long polls blocked after {READY_TIMEOUT:?}"
            );
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// The registrations' values (`<name>=<peer URL>`), in listing order.
    async fn registered_values(&self, token: &str) -> Result<Vec<String>> {
        Ok(self
            .registrations(token)
            .await?
            .iter()
            .filter_map(|n| n["value"].as_str().map(String::from))
            .collect())
    }

    /// SIGTERM, wait for the exit, start again with the same flags and data.
    async fn restart(&mut self) -> Result<()> {
        let mut proc = self
            .proc
            .take()
            .context("cetera-discovery is not running")?;
        let status = proc.stop().await?;
        ensure!(
            status.success(),
            "cetera-discovery exited with {status} on SIGTERM"
        );
        drop(proc);
        self.launch().await
    }

    fn port(&self) -> u16 {
        self.port.port()
    }

    async fn get(&self, path: &str) -> Result<HttpReply> {
        http(self.port(), "GET", path, None).await
    }

    async fn put(&self, path: &str, form: &str) -> Result<HttpReply> {
        http(self.port(), "PUT", path, Some(form)).await
    }

    /// `GET /new?size=N`; returns the URL and the token.
    async fn new_token(&self, size: u64) -> Result<(String, String)> {
        let reply = self.get(&format!("/new?size={size}")).await?;
        ensure!(
            reply.status == 200,
            "/new answered {}: {}",
            reply.status,
            reply.body
        );
        let url = reply.body.trim().to_string();
        let prefix = format!("http://127.0.0.1:{}/", self.port());
        let token = url
            .strip_prefix(&prefix)
            .with_context(|| format!("/new answered {url:?}, not a URL under {prefix}"))?
            .to_string();
        ensure!(
            token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            "token {token:?} is not 32 hex digits"
        );
        Ok((url, token))
    }

    /// The members registered under `token`, in listing order.
    async fn registrations(&self, token: &str) -> Result<Vec<Value>> {
        let reply = self.get(&format!("/{token}")).await?;
        ensure!(
            reply.status == 200,
            "listing answered {}: {}",
            reply.status,
            reply.body
        );
        let json = reply.json()?;
        Ok(json["node"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The value of one `/metrics` series.
    async fn metric(&self, name: &str) -> Result<u64> {
        let reply = self.get("/metrics").await?;
        ensure!(reply.status == 200, "/metrics answered {}", reply.status);
        reply
            .body
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .with_context(|| format!("no {name} in /metrics:\n{}", reply.body))?
            .trim()
            .parse()
            .context("metric value")
    }
}

/// A real etcd member bootstrapping through a discovery URL.
struct Etcd {
    name: String,
    client: PortLease,
    peer: PortLease,
    proc: Proc,
}

impl Etcd {
    fn start(dir: &Path, name: &str, discovery_url: &str, extra: &[&str]) -> Result<Etcd> {
        let client = ports::lease()?;
        let peer = ports::lease()?;
        let client_url = format!("http://127.0.0.1:{}", client.port());
        let peer_url = format!("http://127.0.0.1:{}", peer.port());
        let mut args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &dir.join(name).display().to_string(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--discovery",
            discovery_url,
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let program = tests::Flavor::Etcd.binary()?;
        let proc = Proc::start(
            &format!("etcd {name}"),
            &program,
            &args,
            &dir.join(format!("{name}.log")),
        )?;
        Ok(Etcd {
            name: name.to_string(),
            client,
            peer,
            proc,
        })
    }

    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client.port())
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer.port())
    }
}

/// Waits until `etcdctl endpoint health --cluster` passes through `first`.
async fn wait_cluster_healthy(members: &mut [Etcd]) -> Result<()> {
    let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
    loop {
        for member in members.iter_mut() {
            if let Some(status) = member.proc.exited() {
                bail!(
                    "etcd {} exited with {status} while bootstrapping:\n{}",
                    member.name,
                    member.proc.log_tail()
                );
            }
        }
        let out = etcdctl::run(
            &members[0].client_url(),
            &["endpoint", "health", "--cluster"],
            None,
        )
        .await?;
        if out.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster is not healthy after {BOOTSTRAP_TIMEOUT:?}:\n{}\n{}",
                out.stdout,
                out.stderr_messages()
            );
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Checks that `members` form one cluster: three members listed with their
/// names and peer URLs, and a put on one is read on another.
async fn check_one_cluster(members: &[Etcd]) -> Result<()> {
    let list = etcdctl::run(
        &members[0].client_url(),
        &["member", "list", "-w", "json"],
        None,
    )
    .await?
    .ok_json()?;
    let listed = list["members"].as_array().context("member list")?;
    ensure!(
        listed.len() == members.len(),
        "member list shows {} members: {list}",
        listed.len()
    );
    for member in members {
        ensure!(
            listed.iter().any(|m| m["name"] == member.name.as_str()
                && m["peerURLs"][0] == member.peer_url().as_str()),
            "{} ({}) is not in the member list: {list}",
            member.name,
            member.peer_url()
        );
    }
    let last = &members[members.len() - 1];
    etcdctl::run(
        &members[0].client_url(),
        &["put", "greeting", "hello"],
        None,
    )
    .await?
    .ok()?;
    let got = etcdctl::run(
        &last.client_url(),
        &["get", "greeting", "--print-value-only"],
        None,
    )
    .await?
    .ok()?;
    ensure!(got.trim() == "hello", "{} read {got:?}", last.name);
    Ok(())
}

// ---------------------------------------------------------------------------
// HTTP

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn etcd_index(&self) -> Option<u64> {
        self.header("x-etcd-index")?.parse().ok()
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("body is not JSON: {:?}", self.body))
    }
}

fn request_bytes(port: u16, method: &str, path: &str, form: Option<&str>) -> Vec<u8> {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    let body = form.unwrap_or("");
    if form.is_some() {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// One request on a fresh connection (`Connection: close`).
async fn http(port: u16, method: &str, path: &str, form: Option<&str>) -> Result<HttpReply> {
    timeout(HTTP_TIMEOUT, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(&request_bytes(port, method, path, form))
            .await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    })
    .await
    .with_context(|| format!("{method} {path} timed out"))?
    .with_context(|| format!("{method} {path}"))
}

/// Where the header block ends (after `\r\n\r\n`).
fn header_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn parse_response(raw: &[u8]) -> Result<HttpReply> {
    let end = header_end(raw).context("no end of headers")?;
    let (status, headers) = parse_head(&raw[..end])?;
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(&raw[end..])?
    } else {
        raw[end..].to_vec()
    };
    Ok(HttpReply {
        status,
        headers,
        body: String::from_utf8(body).context("body is not UTF-8")?,
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(raw.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

// ---------------------------------------------------------------------------
// Tests

/// Three real etcd members bootstrap through a token (one of them started
/// late, so the others sit in the recursive long poll, which times out and
/// is renewed a few times); a fourth member with `--discovery-fallback=exit`
/// is refused with etcd's full-cluster error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_etcd_members_bootstrap_and_a_fourth_is_refused() -> Result<()> {
    let dir = temp_dir()?;
    let discovery = Discovery::start(dir.path(), &["--wait-timeout", "300ms"]).await?;
    let (url, token) = discovery.new_token(3).await?;

    let mut members = vec![
        Etcd::start(dir.path(), "e1", &url, &[])?,
        Etcd::start(dir.path(), "e2", &url, &[])?,
    ];
    // Both register and then wait for the third.
    discovery.wait_registered(&token, 2).await?;
    // Each long poll ends empty after 300 ms and etcd's client polls again
    // from the same index: wait for a few of those rounds.
    discovery.wait_blocked_polls(6).await?;
    members.push(Etcd::start(dir.path(), "e3", &url, &[])?);
    wait_cluster_healthy(&mut members).await?;
    check_one_cluster(&members).await?;

    // The token lists the three registrations in order, `<name>=<peer URL>`.
    let registered = discovery.registrations(&token).await?;
    let values = discovery.registered_values(&token).await?;
    ensure!(values.len() == 3, "registrations: {registered:?}");
    for member in &members {
        let expected = format!("{}={}", member.name, member.peer_url());
        ensure!(values.contains(&expected), "{values:?} lacks {expected}");
    }
    let last = format!("e3={}", members[2].peer_url());
    ensure!(values[2] == last, "{values:?} should end with {last}");
    let created: Vec<u64> = registered
        .iter()
        .filter_map(|n| n["createdIndex"].as_u64())
        .collect();
    ensure!(
        created.windows(2).all(|w| w[0] < w[1]),
        "order: {created:?}"
    );

    // A fourth member finds the cluster full and exits.
    let mut fourth = Etcd::start(dir.path(), "e4", &url, &["--discovery-fallback", "exit"])?;
    let status = fourth.proc.wait_exit(Duration::from_secs(30)).await?;
    ensure!(!status.success(), "e4 exited with {status}");
    let log = fourth.proc.log_text();
    ensure!(
        log.contains("discovery: cluster is full"),
        "e4's log lacks the full-cluster error:\n{log}"
    );
    ensure!(discovery.registrations(&token).await?.len() == 3);
    ensure!(discovery.metric("cetera_discovery_registrations").await? == 3);
    Ok(())
}

/// The service restarts while two members wait for the third: the token and
/// its registrations survive, the waiting members reconnect, and the
/// cluster forms when the third member arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_bootstrap_keeps_tokens() -> Result<()> {
    let dir = temp_dir()?;
    let mut discovery = Discovery::start(dir.path(), &[]).await?;
    let (url, token) = discovery.new_token(3).await?;
    let mut members = vec![
        Etcd::start(dir.path(), "r1", &url, &[])?,
        Etcd::start(dir.path(), "r2", &url, &[])?,
    ];
    discovery.wait_registered(&token, 2).await?;
    let before = discovery.get(&format!("/{token}")).await?;

    discovery.restart().await?;
    let after = discovery.get(&format!("/{token}")).await?;
    ensure!(
        after.status == 200,
        "after restart: {} {}",
        after.status,
        after.body
    );
    ensure!(
        after.json()? == before.json()? && after.etcd_index() == before.etcd_index(),
        "the token changed across the restart:\nbefore {}\nafter  {}",
        before.body,
        after.body
    );
    let size = discovery.get(&format!("/{token}/_config/size")).await?;
    ensure!(size.json()?["node"]["value"] == "3", "size: {}", size.body);

    members.push(Etcd::start(dir.path(), "r3", &url, &[])?);
    wait_cluster_healthy(&mut members).await?;
    check_one_cluster(&members).await
}

/// The v2 details etcd's client depends on, over real HTTP: creates and
/// duplicates, the index header, listing order, and a long poll whose
/// headers arrive before its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_protocol_over_http() -> Result<()> {
    let dir = temp_dir()?;
    let discovery = Discovery::start(dir.path(), &["--max-size", "5"]).await?;
    let (_url, token) = discovery.new_token(3).await?;

    let first = discovery
        .put(
            &format!("/{token}/aaaa?prevExist=false"),
            "value=n1%3Dhttp%3A%2F%2F10.0.0.1%3A2380",
        )
        .await?;
    ensure!(
        first.status == 201,
        "create: {} {}",
        first.status,
        first.body
    );
    ensure!(
        first.etcd_index() == Some(2),
        "create index: {:?}",
        first.headers
    );
    ensure!(first.json()?["action"] == "create");

    let duplicate = discovery
        .put(&format!("/{token}/aaaa?prevExist=false"), "value=other")
        .await?;
    ensure!(
        duplicate.status == 412,
        "duplicate: {} {}",
        duplicate.status,
        duplicate.body
    );
    let json = duplicate.json()?;
    ensure!(
        json["errorCode"] == 105 && json["message"] == "Key already exists",
        "duplicate body: {}",
        duplicate.body
    );
    ensure!(json["cause"] == format!("/{token}/aaaa").as_str() && json["index"] == 2);

    // A long poll for the next registration: headers now, event later.
    let mut stream = TcpStream::connect(("127.0.0.1", discovery.port())).await?;
    let path = format!("/{token}?recursive=true&wait=true&waitIndex=3");
    stream
        .write_all(&request_bytes(discovery.port(), "GET", &path, None))
        .await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    timeout(Duration::from_secs(10), async {
        while header_end(&raw).is_none() {
            let n = stream.read(&mut buf).await?;
            ensure!(n > 0, "connection closed before the headers");
            raw.extend_from_slice(&buf[..n]);
        }
        Ok(())
    })
    .await
    .context("the long poll's headers did not arrive")??;
    let (status, headers) = parse_head(&raw[..header_end(&raw).unwrap_or(0)])?;
    ensure!(status == 200, "long poll status {status}");
    ensure!(
        headers.iter().any(|(k, v)| k == "x-etcd-index" && v == "2"),
        "long poll headers: {headers:?}"
    );
    ensure!(
        timeout(Duration::from_millis(300), stream.read(&mut buf))
            .await
            .is_err(),
        "the long poll answered before any event"
    );
    // Hidden and other tokens' keys do not wake it; the next member does.
    let (_, other) = discovery.new_token(3).await?;
    discovery.put(&format!("/{other}/x"), "value=1").await?;
    let second = discovery
        .put(&format!("/{token}/bbbb?prevExist=false"), "value=n2")
        .await?;
    ensure!(second.status == 201, "second create: {}", second.body);
    timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .context("the long poll did not end after the event")??;
    let event = parse_response(&raw)?.json()?;
    ensure!(
        event["action"] == "create"
            && event["node"]["key"] == format!("/{token}/bbbb").as_str()
            && event["node"]["modifiedIndex"] == 3,
        "long poll event: {event}"
    );

    // Listing: registration order, `_config` hidden, index header.
    let listing = discovery
        .get(&format!(
            "/{token}?quorum=false&recursive=false&sorted=false"
        ))
        .await?;
    ensure!(listing.etcd_index() == Some(3));
    let keys: Vec<String> = listing.json()?["node"]["nodes"]
        .as_array()
        .context("nodes")?
        .iter()
        .filter_map(|n| n["key"].as_str().map(String::from))
        .collect();
    ensure!(
        keys == [format!("/{token}/aaaa"), format!("/{token}/bbbb")],
        "listing keys: {keys:?}"
    );

    // Bad input gets v2 errors, and the service keeps serving.
    for (method, path, status, code) in [
        ("GET", "/new?size=6".to_string(), 400, 209),
        ("GET", "/new?size=0".to_string(), 400, 209),
        ("GET", format!("/{token}?wait=true&waitIndex=abc"), 400, 203),
        (
            "GET",
            "/00000000000000000000000000000000".to_string(),
            404,
            100,
        ),
        ("DELETE", format!("/{token}"), 403, 102),
    ] {
        let reply = http(discovery.port(), method, &path, None).await?;
        ensure!(
            reply.status == status && reply.json()?["errorCode"] == code,
            "{method} {path}: {} {}",
            reply.status,
            reply.body
        );
    }
    let health = discovery.get("/health").await?;
    ensure!(
        health.status == 200,
        "health after bad input: {}",
        health.body
    );
    Ok(())
}

/// Tokens expire after `--token-ttl`: the token answers 404 with
/// errorCode 100, and the collector removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_not_found() -> Result<()> {
    let dir = temp_dir()?;
    let discovery = Discovery::start(dir.path(), &["--token-ttl", "2s"]).await?;
    let created = Instant::now();
    let (_url, token) = discovery.new_token(3).await?;
    let put = discovery
        .put(&format!("/{token}/m1?prevExist=false"), "value=x")
        .await?;
    ensure!(put.status == 201, "create: {}", put.body);
    ensure!(discovery.metric("cetera_discovery_tokens").await? == 1);

    tokio::time::sleep_until((created + Duration::from_millis(2300)).into()).await;
    for path in [
        format!("/{token}"),
        format!("/{token}/_config/size"),
        format!("/{token}/m1"),
    ] {
        let reply = discovery.get(&path).await?;
        ensure!(
            reply.status == 404,
            "{path} after expiry: {} {}",
            reply.status,
            reply.body
        );
        let json = reply.json()?;
        ensure!(
            json["errorCode"] == 100 && json["message"] == "Key not found",
            "{path}: {}",
            reply.body
        );
    }
    let put = discovery
        .put(&format!("/{token}/m2?prevExist=false"), "value=x")
        .await?;
    ensure!(
        put.status == 404,
        "create under an expired token: {} {}",
        put.status,
        put.body
    );
    ensure!(discovery.metric("cetera_discovery_tokens").await? == 0);

    let deadline = Instant::now() + Duration::from_secs(10);
    while discovery
        .metric("cetera_discovery_tokens_expired_total")
        .await?
        < 1
    {
        ensure!(
            Instant::now() < deadline,
            "the expired token was not collected"
        );
        sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// cetera members

/// The id etcd derives for a member bootstrapping through `url` (the
/// discovery URL takes the place of the cluster token).
fn expected_member_id(peer_url: &str, url: &str) -> u64 {
    cetera::cluster::member_id(&[peer_url.to_string()], url, None)
}

/// A member as `member list -w json` shows it: id, name, peer and client URL.
type Listed = (u64, String, String, String);

fn listed_members(list: &Value) -> Result<BTreeSet<Listed>> {
    let members = list["members"]
        .as_array()
        .context("no members in the list")?;
    Ok(members
        .iter()
        .map(|m| {
            (
                m["ID"].as_u64().unwrap_or(0),
                m["name"].as_str().unwrap_or("").to_string(),
                m["peerURLs"][0].as_str().unwrap_or("").to_string(),
                m["clientURLs"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

/// Checks that `members` (indices) form one cluster: each lists exactly
/// them, with the ids etcd would derive from the discovery URL and the
/// cluster id that follows from those; a put through the first is read
/// through the last.
async fn check_one_cetera_cluster(
    cluster: &TestCluster,
    members: &[usize],
    url: &str,
) -> Result<()> {
    let expected: BTreeSet<Listed> = members
        .iter()
        .map(|&i| {
            let m = cluster.member(i);
            (
                expected_member_id(&m.peer_url(), url),
                m.name().to_string(),
                m.peer_url(),
                m.client_url(),
            )
        })
        .collect();
    let cluster_id = cetera::cluster::cluster_id(expected.iter().map(|m| m.0));
    for &i in members {
        // Client URLs appear once each member has published them.
        let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
        loop {
            let list = cluster
                .etcdctl_at(i, &["member", "list", "-w", "json"], None)
                .await?
                .ok_json()?;
            let listed = listed_members(&list)?;
            if listed == expected {
                ensure!(
                    list["header"]["cluster_id"].as_u64() == Some(cluster_id),
                    "{} reports cluster id {}, etcd would derive {cluster_id}",
                    cluster.member(i).name(),
                    list["header"]["cluster_id"]
                );
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} lists {listed:?}\nexpected {expected:?}",
                cluster.member(i).name()
            );
            sleep(Duration::from_millis(100)).await;
        }
    }
    let (first, last) = (members[0], members[members.len() - 1]);
    cluster
        .etcdctl_at(first, &["put", "greeting", "hello"], None)
        .await?
        .ok()?;
    let got = cluster
        .etcdctl_at(last, &["get", "greeting", "--print-value-only"], None)
        .await?
        .ok()?;
    ensure!(
        got.trim() == "hello",
        "{} read {got:?}",
        cluster.member(last).name()
    );
    Ok(())
}

/// Waits until member `i` exits by itself; checks that it failed, that its
/// last line on stderr says `expected`, and that it did not panic.
async fn expect_refused(cluster: &TestCluster, i: usize, expected: &str) -> Result<String> {
    let member = cluster.member(i);
    let status = member.wait_for_exit(Duration::from_secs(60)).await?;
    let log = std::fs::read_to_string(member.log_path()).context("reading the log")?;
    ensure!(
        !status.success(),
        "{} exited with {status}:\n{log}",
        member.name()
    );
    ensure!(
        !log.contains("panicked"),
        "{} panicked:\n{log}",
        member.name()
    );
    let last = log.lines().last().unwrap_or("");
    ensure!(
        last.starts_with("cetera: ") && last.contains(expected),
        "{}'s last line does not say {expected:?}:\n{log}",
        member.name()
    );
    Ok(last.to_string())
}

/// Three cetera members started together bootstrap through a token into
/// one cluster with etcd's ids. Then: a member whose data dir was lost
/// finds its id already registered and stops (`found duplicate id`); and a
/// member with data restarts while the discovery service is gone, because
/// a member with a data dir ignores `--discovery`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_cetera_members_bootstrap_together() -> Result<()> {
    let dir = temp_dir()?;
    let mut discovery = Discovery::start(dir.path(), &[]).await?;
    let (url, token) = discovery.new_token(3).await?;
    let cluster = TestCluster::builder(Flavor::Cetera, 3)
        .discovery(&url)
        .ready_timeout(BOOTSTRAP_TIMEOUT)
        .start()
        .await?;
    check_one_cetera_cluster(&cluster, &[0, 1, 2], &url).await?;
    let mut values = discovery.registered_values(&token).await?;
    values.sort();
    let expected: Vec<String> = cluster
        .members()
        .iter()
        .map(|m| format!("{}={}", m.name(), m.peer_url()))
        .collect();
    ensure!(values == expected, "registrations {values:?}");

    // n3 loses its data dir: discovery runs again and finds its id taken.
    cluster.member(2).stop().await?;
    std::fs::remove_dir_all(cluster.member(2).data_dir())?;
    cluster.member(2).start().await?;
    let line = expect_refused(&cluster, 2, "discovery: found duplicate id").await?;
    ensure!(
        line.contains("failed to join discovery cluster (discovery: found duplicate id)"),
        "{line}"
    );
    ensure!(discovery.registrations(&token).await?.len() == 3);

    // The service is gone for good; n1 (killed) still restarts from its data.
    discovery.kill()?;
    cluster.member(0).kill().await?;
    cluster.member(0).restart().await?;
    cluster.wait_ready(0).await?;
    let got = cluster
        .etcdctl_at(0, &["get", "greeting", "--print-value-only"], None)
        .await?
        .ok()?;
    ensure!(got.trim() == "hello", "n1 read {got:?} after its restart");
    let log = std::fs::read_to_string(cluster.member(0).log_path())?;
    let starts = log
        .matches("bootstrapping through the discovery service")
        .count();
    ensure!(starts == 1, "n1 used discovery on {starts} starts:\n{log}");
    Ok(())
}

/// Five members started one at a time, in a shuffled order and with pauses,
/// each after the previous one registered: the early ones wait in long
/// polls, and all five converge on one cluster whose registrations are in
/// start order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_cetera_members_in_any_order_and_with_delays() -> Result<()> {
    let dir = temp_dir()?;
    let discovery = Discovery::start(dir.path(), &["--wait-timeout", "1s"]).await?;
    let (url, token) = discovery.new_token(5).await?;
    let cluster = TestCluster::builder(Flavor::Cetera, 5)
        .discovery(&url)
        .spawn_members(false)
        .ready_timeout(BOOTSTRAP_TIMEOUT)
        .start()
        .await?;
    let order = [3, 0, 4, 1, 2];
    for (started, &i) in order.iter().enumerate() {
        cluster.member(i).start().await?;
        discovery.wait_registered(&token, started + 1).await?;
        // The waiting members sit in long polls across this pause (and
        // renew them when the 1 s poll ends empty).
        sleep(Duration::from_millis(300 * started as u64)).await;
    }
    cluster.wait_all_ready().await?;
    check_one_cetera_cluster(&cluster, &[0, 1, 2, 3, 4], &url).await?;
    let values = discovery.registered_values(&token).await?;
    let expected: Vec<String> = order
        .iter()
        .map(|&i| {
            let m = cluster.member(i);
            format!("{}={}", m.name(), m.peer_url())
        })
        .collect();
    ensure!(values == expected, "registrations {values:?}");
    Ok(())
}

/// A fourth member on a token of three is refused with etcd's full-cluster
/// error and a non-zero exit, whatever `--discovery-fallback` says (cetera
/// has no proxy to fall back to), and is never registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_cetera_member_finds_the_token_full() -> Result<()> {
    let dir = temp_dir()?;
    let discovery = Discovery::start(dir.path(), &[]).await?;
    let (url, token) = discovery.new_token(3).await?;
    // etcd's default fallback, through its environment variable; it only
    // matters to the member that finds the token full.
    let cluster = TestCluster::builder(Flavor::Cetera, 5)
        .discovery(&url)
        .env("ETCD_DISCOVERY_FALLBACK", "proxy")
        .spawn_members(false)
        .ready_timeout(BOOTSTRAP_TIMEOUT)
        .start()
        .await?;
    for i in 0..3 {
        cluster.member(i).start().await?;
    }
    for i in 0..3 {
        cluster.wait_ready(i).await?;
    }
    check_one_cetera_cluster(&cluster, &[0, 1, 2], &url).await?;

    cluster.member(3).start().await?;
    let line = expect_refused(
        &cluster,
        3,
        "failed to join discovery cluster (discovery: cluster is full)",
    )
    .await?;
    ensure!(line.contains("proxy"), "no word on the proxy: {line}");

    // The same with the default fallback, `exit`, on the command line.
    let fifth = cluster.member(4);
    let mut args = fifth.args().to_vec();
    args.extend(["--discovery-fallback".to_string(), "exit".to_string()]);
    let mut proc = Proc::start(
        "n5",
        &binaries::cetera_bin()?,
        &args,
        &dir.path().join("n5-exit.log"),
    )?;
    let status = proc.wait_exit(Duration::from_secs(60)).await?;
    let log = proc.log_text();
    ensure!(!status.success(), "n5 exited with {status}:\n{log}");
    ensure!(
        log.contains("cetera: failed to join discovery cluster (discovery: cluster is full)"),
        "n5's log lacks the full-cluster error:\n{log}"
    );
    ensure!(
        discovery.registrations(&token).await?.len() == 3,
        "a refused member registered"
    );
    check_one_cetera_cluster(&cluster, &[0, 1, 2], &url).await
}

/// The discovery service is SIGKILLed while two members wait for the third,
/// and the third starts while it is down: all three retry with backoff
/// (logging each retry), and once the service is back on the same port and
/// data dir, with the token and its registrations intact, they finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cetera_members_ride_out_a_discovery_crash() -> Result<()> {
    let dir = temp_dir()?;
    let mut discovery = Discovery::start(dir.path(), &[]).await?;
    let (url, token) = discovery.new_token(3).await?;
    let cluster = TestCluster::builder(Flavor::Cetera, 3)
        .discovery(&url)
        .spawn_members(false)
        .ready_timeout(BOOTSTRAP_TIMEOUT)
        .start()
        .await?;
    cluster.member(0).start().await?;
    cluster.member(1).start().await?;
    discovery.wait_registered(&token, 2).await?;
    discovery.wait_blocked_polls(2).await?;

    discovery.kill()?;
    cluster.member(2).start().await?;
    let retrying = "discovery service unavailable; retrying";
    let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
    for member in cluster.members() {
        loop {
            let log = std::fs::read_to_string(member.log_path())?;
            if log.contains(retrying) {
                break;
            }
            ensure!(
                member.is_running(),
                "{} exited while the service was down:\n{log}",
                member.name()
            );
            ensure!(
                Instant::now() < deadline,
                "{} did not retry:\n{log}",
                member.name()
            );
            sleep(Duration::from_millis(100)).await;
        }
    }

    discovery.relaunch().await?;
    cluster.wait_all_ready().await?;
    check_one_cetera_cluster(&cluster, &[0, 1, 2], &url).await?;
    ensure!(discovery.registrations(&token).await?.len() == 3);
    Ok(())
}

/// Tokens that cannot make a cluster end start-up with etcd's errors: two
/// registrations with one name, and a token the service does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_end_cetera_start_up_with_etcds_errors() -> Result<()> {
    let dir = temp_dir()?;
    let discovery = Discovery::start(dir.path(), &[]).await?;
    let (url, token) = discovery.new_token(2).await?;
    // Someone else registered as `n1` already.
    let put = discovery
        .put(
            &format!("/{token}/123abc?prevExist=false"),
            "value=n1%3Dhttp%3A%2F%2F127.0.0.1%3A9",
        )
        .await?;
    ensure!(
        put.status == 201,
        "registering: {} {}",
        put.status,
        put.body
    );
    lone_member_is_refused(
        &url,
        "failed to join discovery cluster (discovery: found duplicate name)",
    )
    .await?;
    let unknown = format!("http://127.0.0.1:{}/{}", discovery.port(), "0".repeat(32));
    lone_member_is_refused(
        &unknown,
        "failed to join discovery cluster (discovery: size key not found)",
    )
    .await
}

/// Starts one cetera member with `--discovery <url>` and expects it to end
/// start-up with `expected`.
async fn lone_member_is_refused(url: &str, expected: &str) -> Result<()> {
    let cluster = TestCluster::builder(Flavor::Cetera, 1)
        .discovery(url)
        .spawn_members(false)
        .start()
        .await?;
    cluster.member(0).start().await?;
    expect_refused(&cluster, 0, expected).await?;
    Ok(())
}

/// Runs `ceteractl <args>`; returns (exit code, stdout, stderr).
async fn ceteractl(args: &[&str]) -> Result<(i32, String, String)> {
    let output = tokio::process::Command::new(binaries::ceteractl_bin()?)
        .args(args)
        .output()
        .await?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// `ceteractl discovery new` prints a fresh token URL of the requested
/// size, and says why when the service refuses or is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceteractl_discovery_new_prints_a_token_url() -> Result<()> {
    let dir = temp_dir()?;
    let discovery = Discovery::start(dir.path(), &["--max-size", "7"]).await?;
    let endpoint = format!("http://127.0.0.1:{}", discovery.port());
    let (code, out, err) = ceteractl(&[
        "discovery",
        "new",
        "--size",
        "5",
        "--discovery-endpoint",
        &endpoint,
    ])
    .await?;
    ensure!(code == 0, "exit {code}: {err}");
    let url = out.trim();
    let token = url
        .strip_prefix(&format!("{endpoint}/"))
        .with_context(|| format!("{url:?} is not a token URL of {endpoint}"))?;
    let size = discovery.get(&format!("/{token}/_config/size")).await?;
    ensure!(size.json()?["node"]["value"] == "5", "size: {}", size.body);
    let (_, again, _) = ceteractl(&[
        "discovery",
        "new",
        "--size",
        "5",
        "--discovery-endpoint",
        &endpoint,
    ])
    .await?;
    ensure!(again.trim() != url, "the same token twice: {url}");

    let (code, _, err) = ceteractl(&[
        "discovery",
        "new",
        "--size",
        "8",
        "--discovery-endpoint",
        &endpoint,
    ])
    .await?;
    ensure!(
        code == 1 && err.starts_with("Error: 209: Invalid field"),
        "a size over --max-size: exit {code}, {err}"
    );
    let (code, _, err) = ceteractl(&["discovery", "new", "--size", "0"]).await?;
    ensure!(
        code == 128 && err.contains("--size must be at least 1"),
        "size 0: exit {code}, {err}"
    );
    drop(discovery);
    let (code, _, err) =
        ceteractl(&["discovery", "new", "--discovery-endpoint", &endpoint]).await?;
    ensure!(
        code == 2 && err.contains("cannot reach the discovery service"),
        "no service: exit {code}, {err}"
    );
    Ok(())
}

//! Peer links a test can cut: a TCP proxy in front of every member's peer
//! listener that knows which member each connection comes from.
//!
//! With [`crate::ClusterBuilder::cuttable_links`], members listen on their
//! own peer port (`--listen-peer-urls`) and advertise their proxy's
//! (`--initial-advertise-peer-urls` and `--initial-cluster`), so every
//! connection one member opens to another passes through the receiver's
//! proxy. The proxy tells who is calling by the calling socket: it finds
//! the socket's inode in `/proc/net/tcp` and the member process holding it
//! in `/proc/<pid>/fd`.
//!
//! A cut link between two members blackholes both directions, as a dead
//! network does: connections between them stop carrying bytes but stay
//! open, and new ones are accepted and never answered. When the link heals
//! those connections are closed, and the members dial anew. Connections
//! the proxy cannot attribute to a member (the harness's own) are always
//! carried. Client URLs never pass through a proxy, so a member cut off
//! from its peers still hears its clients, as in a real partition.
//!
//! The proxies run on a runtime thread of their own, so they carry traffic
//! whatever the test's runtime is doing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Two members (by index), smaller index first: a link is cut both ways.
type Link = (usize, usize);

fn link(a: usize, b: usize) -> Link {
    (a.min(b), a.max(b))
}

/// The proxies of one cluster; dropping it stops them.
#[derive(Debug)]
pub struct Links {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    /// `(proxy port, member's own peer port)` per member.
    ports: Vec<(u16, u16)>,
}

#[derive(Debug)]
struct Shared {
    /// The process of each member, as last started.
    pids: Mutex<Vec<Option<u32>>>,
    cuts: watch::Sender<BTreeSet<Link>>,
    /// Connections from members, and from anything else.
    from_members: AtomicU64,
    from_others: AtomicU64,
}

impl Links {
    /// Starts a proxy for every member: member `i` advertises `ports[i].0`
    /// and listens on `ports[i].1`.
    pub fn start(ports: Vec<(u16, u16)>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("link-proxy")
            .enable_all()
            .build()
            .context("starting the link proxies' runtime")?;
        let shared = Arc::new(Shared {
            pids: Mutex::new(vec![None; ports.len()]),
            cuts: watch::Sender::new(BTreeSet::new()),
            from_members: AtomicU64::new(0),
            from_others: AtomicU64::new(0),
        });
        for (member, &(proxy_port, own_port)) in ports.iter().enumerate() {
            // Bound here, so a taken port fails the start; served there.
            let listener = std::net::TcpListener::bind(("127.0.0.1", proxy_port))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .with_context(|| format!("binding the link proxy on port {proxy_port}"))?;
            runtime.spawn(serve(shared.clone(), member, listener, own_port));
        }
        Ok(Self {
            shared,
            runtime: Some(runtime),
            ports,
        })
    }

    /// The port member `i` advertises to its peers.
    pub fn proxy_port(&self, member: usize) -> u16 {
        self.ports[member].0
    }

    /// Records the process now running member `i`.
    pub fn set_pid(&self, member: usize, pid: u32) {
        self.shared.lock_pids()[member] = Some(pid);
    }

    /// Cuts the link between members `a` and `b` (both ways).
    pub fn cut(&self, a: usize, b: usize) -> Result<()> {
        if a == b || a >= self.ports.len() || b >= self.ports.len() {
            bail!("no link between members {a} and {b}");
        }
        self.shared.cuts.send_modify(|cuts| {
            cuts.insert(link(a, b));
        });
        Ok(())
    }

    /// Cuts every link of member `i`.
    pub fn isolate(&self, member: usize) -> Result<()> {
        for other in (0..self.ports.len()).filter(|&o| o != member) {
            self.cut(member, other)?;
        }
        Ok(())
    }

    /// Heals every cut link.
    pub fn heal(&self) {
        self.shared.cuts.send_modify(BTreeSet::clear);
    }

    /// Connections carried so far: from members, and from anything else.
    pub fn connections(&self) -> (u64, u64) {
        (
            self.shared.from_members.load(Ordering::Relaxed),
            self.shared.from_others.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Shared {
    fn lock_pids(&self) -> std::sync::MutexGuard<'_, Vec<Option<u32>>> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The member whose process holds the socket at `caller` connected to
    /// `proxy_port`.
    fn member_behind(&self, caller: SocketAddr, proxy_port: u16) -> Option<usize> {
        let inode = socket_inode(caller.port(), proxy_port)?;
        let holder = format!("socket:[{inode}]");
        let pids = self.lock_pids().clone();
        pids.iter().enumerate().find_map(|(member, pid)| {
            let fds = std::fs::read_dir(format!("/proc/{}/fd", (*pid)?)).ok()?;
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == &*holder))
                .then_some(member)
        })
    }
}

/// The inode of the loopback socket with local port `local` connected to
/// remote port `remote`, from `/proc/net/tcp` (or `tcp6`).
fn socket_inode(local: u16, remote: u16) -> Option<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port_of = |field: &str| {
                    let (_, hex) = field.rsplit_once(':')?;
                    u16::from_str_radix(hex, 16).ok()
                };
                let matches =
                    port_of(fields.get(1)?)? == local && port_of(fields.get(2)?)? == remote;
                matches.then(|| fields.get(9)?.parse().ok()).flatten()
            })
        })
}

async fn serve(shared: Arc<Shared>, member: usize, listener: std::net::TcpListener, own_port: u16) {
    let proxy_port = listener.local_addr().map_or(0, |a| a.port());
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((inbound, caller)) = listener.accept().await else {
            // Out of descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(carry(
            shared.clone(),
            member,
            inbound,
            caller,
            proxy_port,
            own_port,
        ));
    }
}

/// Carries one connection to member `to`, unless or until its link is cut.
async fn carry(
    shared: Arc<Shared>,
    to: usize,
    mut inbound: TcpStream,
    caller: SocketAddr,
    proxy_port: u16,
    own_port: u16,
) {
    let origin = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.member_behind(caller, proxy_port))
            .await
            .ok()
            .flatten()
    };
    let counter = match origin {
        Some(_) => &shared.from_members,
        None => &shared.from_others,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let link = origin.map(|from| link(from, to));
    let mut cuts = shared.cuts.subscribe();
    let is_cut = |cuts: &BTreeSet<Link>| link.is_some_and(|l| cuts.contains(&l));
    if is_cut(&cuts.borrow()) {
        // Accepted, never answered; closed once the link heals.
        let _ = cuts.wait_for(|c| !is_cut(c)).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", own_port)).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let cut = tokio::select! {
        _ = copy_bidirectional(&mut inbound, &mut outbound) => false,
        seen = cuts.wait_for(|c| is_cut(c)) => seen.is_ok(),
    };
    if cut {
        // Bytes stop here; the connection is held until the link heals.
        let _ = cuts.wait_for(|c| !is_cut(c)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    use super::*;
    use crate::ports;

    /// An echo server standing in for a member's peer listener.
    async fn echo_server() -> Result<(u16, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Ok((port, task))
    }

    /// A process that connects to `port` and echoes each line it gets back
    /// to its stdout: a member dialling a peer.
    fn caller(port: u16) -> Result<tokio::process::Child> {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; \
             while read -r line; do echo \"$line\" >&3; read -r back <&3 || exit 1; echo \"$back\"; done"
        );
        tokio::process::Command::new("bash")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting bash")
    }

    #[tokio::test]
    async fn a_cut_link_carries_nothing_until_healed_and_other_callers_pass() -> Result<()> {
        let (echo, _server) = echo_server().await?;
        let proxy = ports::lease()?;
        let links = Links::start(vec![(proxy.port(), echo), (0, 0)])?;
        let mut member = caller(proxy.port())?;
        links.set_pid(1, member.id().context("no pid")?);
        let mut to_member = member.stdin.take().context("stdin")?;
        let mut from_member = BufReader::new(member.stdout.take().context("stdout")?).lines();

        to_member.write_all(b"one\n").await?;
        let echoed =
            tokio::time::timeout(Duration::from_secs(10), from_member.next_line()).await??;
        assert_eq!(echoed.as_deref(), Some("one"));
        assert_eq!(links.connections(), (1, 0), "the caller is member 1");

        links.cut(0, 1)?;
        to_member.write_all(b"two\n").await?;
        let silent =
            tokio::time::timeout(Duration::from_millis(500), from_member.next_line()).await;
        assert!(silent.is_err(), "a cut link carried {silent:?}");

        // The harness's own connections are never cut.
        let mut own = TcpStream::connect(("127.0.0.1", proxy.port())).await?;
        own.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), own.read_exact(&mut byte)).await??;
        assert_eq!(&byte, b"x");

        links.heal();
        // The held connection is closed: the caller's read ends.
        let after = tokio::time::timeout(Duration::from_secs(10), from_member.next_line()).await?;
        assert!(matches!(after, Ok(None) | Err(_)), "got {after:?}");
        Ok(())
    }
}

//! Loopback port leases that do not collide between parallel tests.
//!
//! nextest runs every test in its own process, so a process-wide set of
//! handed-out ports is not enough. A lease is an exclusive `flock(2)` on
//! `$TMPDIR/cetera-test-ports-<uid>/<port>.lock`, held for as long as the
//! [`PortLease`] lives (the kernel drops it when the process dies, so a crashed
//! test never leaks a port). The lock works between threads of one process as
//! well, because every lease opens its own file description.
//!
//! Ports are drawn at random from 20000..32000, below Linux's ephemeral range
//! (32768..60999): ports picked by binding `127.0.0.1:0` come from the
//! ephemeral range, where outgoing connections (clients, peers) may grab them
//! while a member is down and make its restart fail. Leased ports stay
//! reserved for the whole test, across kills and restarts. A leased port that
//! something else is listening on (`bind` fails) is skipped. The remaining
//! race, a process outside this harness binding the port between the check
//! and the server's own bind, is handled by [`crate::TestCluster`], which
//! retries start-up with new ports when a member reports "address already in
//! use".

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use rustix::fs::{FlockOperation, flock};

/// First port handed out (inclusive).
const FIRST: u16 = 20000;
/// End of the range (exclusive); Linux's ephemeral range starts at 32768.
const END: u16 = 32000;

/// An exclusively held loopback port; released on drop.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    _lock: File,
}

impl PortLease {
    /// The leased port number.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Leases one free loopback port.
pub fn lease() -> Result<PortLease> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for _ in 0..10_000 {
        let port = FIRST + (random() % u64::from(END - FIRST)) as u16;
        let path = dir.join(format!("{port}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // another test holds it
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // something outside the harness listens there
        }
        return Ok(PortLease { port, _lock: file });
    }
    bail!("no free loopback port in {FIRST}..{END}")
}

/// Leases `n` distinct free loopback ports.
pub fn lease_many(n: usize) -> Result<Vec<PortLease>> {
    (0..n).map(|_| lease()).collect()
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "cetera-test-ports-{}",
        rustix::process::getuid().as_raw()
    ))
}

/// A random number, different on every call and in every process.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_and_exclusive() {
        let leases = lease_many(50).unwrap();
        let mut ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 50);
        assert!(ports.iter().all(|p| (FIRST..END).contains(p)));

        // A held port cannot be locked again, even from this process.
        let held = leases[0].port();
        let again = OpenOptions::new()
            .write(true)
            .open(lock_dir().join(format!("{held}.lock")))
            .unwrap();
        assert!(flock(&again, FlockOperation::NonBlockingLockExclusive).is_err());
        drop(leases);
        assert!(flock(&again, FlockOperation::NonBlockingLockExclusive).is_ok());
    }
}

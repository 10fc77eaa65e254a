//! Test harness for cetera's cluster tests.
//!
//! Every cluster test starts real server processes through [`TestCluster`]:
//! either `cetera` ([`Flavor::Cetera`]) or the real etcd ([`Flavor::Etcd`]),
//! always with exactly the same etcd-style flags, on loopback ports leased at
//! run time, with data and logs in a fresh temporary directory. Because the
//! same test body runs against both flavors, etcd is the oracle: a test that
//! passes on etcd and fails on cetera has found a compatibility bug.
//!
//! Modules:
//! - [`cluster`]: [`TestCluster`], its builder and [`Member`] processes
//!   (start, kill, stop, restart, readiness, leader lookup, gRPC channels).
//! - [`binaries`]: where the `cetera`, `etcd` and `etcdctl` executables are.
//! - [`ports`]: loopback port leases that never collide across parallel tests.
//! - [`etcdctl`]: running the real `etcdctl` and normalising its output.
//! - [`ceteractl`]: running this workspace's `ceteractl` the same way.
//! - [`diff`]: readable line diffs for differential tests.
//! - [`history`]: recorded KV histories and their linearizability check.
//! - [`links`]: proxies in front of members' peer ports whose links a test
//!   can cut (partitions with the processes running).
//! - [`pki`]: a throwaway CA and certificates for TLS tests.
//! - [`kv`]: small conveniences over the generated gRPC clients.
//! - [`python`]: Python client scripts (`etcd3`, `etcd3gw`) run against a member.
//! - [`spawn`]: child processes that die with the test process.
//! - [`watch`]: a Watch stream client with time limits.
//! - [`python`]: Python client scripts run with the workspace's virtualenv.
//! - [`transcript`]: masking for differential transcripts.
//!
//! Tests are written once as `async fn name(flavor: Flavor) -> anyhow::Result<()>`
//! and instantiated per flavor with [`flavor_tests!`], which produces
//! `on_etcd::name` and `on_cetera::name` test functions (the `on_cetera` ones
//! are the cetera variants; the `on_etcd` ones validate the test itself).

pub mod binaries;
pub mod ceteractl;
pub mod cluster;
pub mod diff;
pub mod etcdctl;
pub mod history;
pub mod kv;
pub mod links;
pub mod pki;
pub mod ports;
pub mod python;
pub mod spawn;
pub mod transcript;
pub mod watch;

pub use binaries::Flavor;
pub use cluster::{ClusterBuilder, Member, TestCluster};
pub use etcdctl::CtlOutput;

/// Re-exported so that [`flavor_tests!`] works without the caller naming tokio.
#[doc(hidden)]
pub use tokio as __tokio;

/// Instantiates flavor-generic test bodies once per flavor.
///
/// `flavor_tests!(a, b)` expects `async fn a(flavor: Flavor) -> anyhow::Result<()>`
/// (and `b`) in scope and generates `on_etcd::a`, `on_cetera::a`, `on_etcd::b`
/// and `on_cetera::b`.
///
/// `flavor_tests!(sizes; a, b)` expects `async fn a(flavor: Flavor, nodes: usize)`
/// and generates `on_etcd_1node::a`, `on_etcd_3node::a`, `on_cetera_1node::a`
/// and `on_cetera_3node::a` (and the same for `b`).
///
/// Every test whose path starts with `on_cetera` is a cetera variant (select
/// them with `cargo nextest run -E 'test(/^on_cetera/)'`); `on_etcd` ones
/// check the test itself against the reference implementation.
#[macro_export]
macro_rules! flavor_tests {
    (sizes; $($name:ident),+ $(,)?) => {
        $crate::flavor_tests!(@sized on_etcd_1node, Etcd, 1; $($name),+);
        $crate::flavor_tests!(@sized on_etcd_3node, Etcd, 3; $($name),+);
        $crate::flavor_tests!(@sized on_cetera_1node, Cetera, 1; $($name),+);
        $crate::flavor_tests!(@sized on_cetera_3node, Cetera, 3; $($name),+);
    };
    (@sized $module:ident, $flavor:ident, $nodes:literal; $($name:ident),+) => {
        mod $module {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> ::anyhow::Result<()> {
                    super::$name($crate::Flavor::$flavor, $nodes).await
                }
            )+
        }
    };
    ($($name:ident),+ $(,)?) => {
        $crate::flavor_tests!(@plain on_etcd, Etcd; $($name),+);
        $crate::flavor_tests!(@plain on_cetera, Cetera; $($name),+);
    };
    (@plain $module:ident, $flavor:ident; $($name:ident),+) => {
        mod $module {
            $(
                #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> ::anyhow::Result<()> {
                    super::$name($crate::Flavor::$flavor).await
                }
            )+
        }
    };
}

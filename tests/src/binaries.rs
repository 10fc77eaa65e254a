//! Where the executables under test live.
//!
//! - `cetera`: `$CETERA_BIN`, else `<target dir>/<profile>/cetera`, found from
//!   the running test executable (`target/<profile>/deps/<test>-<hash>`), so
//!   tests always run the binary built by the same `cargo` profile.
//! - `etcd`: `$ETCD_BIN`, else `/usr/bin/etcd` (Debian package `etcd-server`).
//! - `etcdctl`: `$ETCDCTL_BIN`, else `/usr/bin/etcdctl` (package `etcd-client`).
//! - `cetera-console`: `$CETERA_CONSOLE_BIN`, else next to `cetera` in the
//!   target directory.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// Which server implementation a [`crate::TestCluster`] runs. Both take the
/// same flags and must give the same answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// The `cetera` binary of this workspace.
    Cetera,
    /// The real etcd (3.4 from Debian), the reference implementation.
    Etcd,
}

impl Flavor {
    /// Short lowercase name, used in logs and directory names.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Cetera => "cetera",
            Flavor::Etcd => "etcd",
        }
    }

    /// Path of the server executable for this flavor; fails with a hint when
    /// it does not exist.
    pub fn binary(self) -> Result<PathBuf> {
        match self {
            Flavor::Cetera => cetera_bin(),
            Flavor::Etcd => existing(
                env_path("ETCD_BIN").unwrap_or_else(|| "/usr/bin/etcd".into()),
                "install the Debian package etcd-server (scripts/test does) or set ETCD_BIN",
            ),
        }
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Path of the real `etcdctl`.
pub fn etcdctl_bin() -> Result<PathBuf> {
    existing(
        env_path("ETCDCTL_BIN").unwrap_or_else(|| "/usr/bin/etcdctl".into()),
        "install the Debian package etcd-client (scripts/test does) or set ETCDCTL_BIN",
    )
}

/// `$CETERA_BIN`, else the `cetera` binary next to this test's `deps/` dir.
pub fn cetera_bin() -> Result<PathBuf> {
    if let Some(path) = env_path("CETERA_BIN") {
        return existing(path, "CETERA_BIN points to a missing file");
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test>-<hash> -> target/<profile>
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    existing(
        dir.join(format!("cetera{}", std::env::consts::EXE_SUFFIX)),
        "build it first with `cargo build --workspace --bins` (same profile as the tests) \
         or set CETERA_BIN",
    )
}

/// `$CETERACTL_BIN`, else the `ceteractl` binary next to this test's
/// `deps/` dir (built by `cargo build --workspace --bins`).
pub fn ceteractl_bin() -> Result<PathBuf> {
    if let Some(path) = env_path("CETERACTL_BIN") {
        return existing(path, "CETERACTL_BIN points to a missing file");
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    existing(
        dir.join(format!("ceteractl{}", std::env::consts::EXE_SUFFIX)),
        "build it first with `cargo build --workspace --bins` (same profile as the tests) \
         or set CETERACTL_BIN",
    )
}

/// `$CETERA_CONSOLE_BIN`, else the `cetera-console` binary next to this
/// test's `deps/` dir (built by `cargo build --workspace --bins`).
pub fn console_bin() -> Result<PathBuf> {
    if let Some(path) = env_path("CETERA_CONSOLE_BIN") {
        return existing(path, "CETERA_CONSOLE_BIN points to a missing file");
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    existing(
        dir.join(format!("cetera-console{}", std::env::consts::EXE_SUFFIX)),
        "build it first with `cargo build --workspace --bins` (same profile as the tests) \
         or set CETERA_CONSOLE_BIN",
    )
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn existing(path: PathBuf, hint: &str) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("executable {} not found: {hint}", path.display());
    }
    Ok(path)
}

/// `$CETERA_DISCOVERY_BIN`, else the `cetera-discovery` binary next to this
/// test's `deps/` dir (built by `cargo build --workspace --bins`).
pub fn discovery_bin() -> Result<PathBuf> {
    if let Some(path) = env_path("CETERA_DISCOVERY_BIN") {
        return existing(path, "CETERA_DISCOVERY_BIN points to a missing file");
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    existing(
        dir.join(format!("cetera-discovery{}", std::env::consts::EXE_SUFFIX)),
        "build it first with `cargo build --workspace --bins` (same profile as the tests) \
         or set CETERA_DISCOVERY_BIN",
    )
}

//! Child processes that cannot outlive the test process.
//!
//! Three layers make sure no server is left running:
//! 1. [`crate::TestCluster`]'s `Drop` SIGKILLs and reaps every member, also
//!    while unwinding from a panic.
//! 2. Children stay in the test's process group, so nextest's timeout
//!    signals (sent to the group) and Ctrl-C reach them too.
//! 3. If `setpriv` (util-linux) is available, servers are started as
//!    `setpriv --pdeathsig KILL -- <server> ...`, so the kernel SIGKILLs them
//!    when the test process dies for any reason (even SIGKILL). The parent-death
//!    signal fires when the *thread* that forked exits, so all spawns happen on
//!    one dedicated thread that lives as long as the process.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, anyhow};

const SETPRIV: &str = "/usr/bin/setpriv";

type Request = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Builds a command for `program` that dies with the test process (when
/// `setpriv` exists; otherwise a plain command).
pub fn guarded_command(program: &Path) -> Command {
    if Path::new(SETPRIV).is_file() {
        let mut cmd = Command::new(SETPRIV);
        cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Spawns `cmd` on the process-lifetime spawner thread.
pub fn spawn(cmd: Command) -> Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let sender = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name("test-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("starting the spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .map_err(|_| anyhow!("spawner lock poisoned"))?
        .clone();
    let what = format!("{cmd:?}");
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .send((cmd, reply_tx))
        .map_err(|_| anyhow!("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| anyhow!("spawner thread is gone"))?
        .with_context(|| format!("spawning {what}"))
}

//! Real clients' watches: `etcdctl watch` (a key, `--prefix`, `--rev`,
//! `--prev-kv`, `-w json` and interactive `-i` with `watch` lines on stdin)
//! and the Python `etcd3` client's `watch`, `watch_prefix` and
//! `watch_once`.
//!
//! The etcdctl test is differential: the same sequence runs on a fresh real
//! etcd cluster and on a fresh cluster of the flavor under test, and every
//! watcher's output must be identical byte for byte (revisions included:
//! the same writes on a fresh cluster give the same revisions). Only the
//! `-w json` watcher's cluster id, member id and raft term are masked,
//! since those differ between any two clusters. `on_etcd::...` compares two
//! etcd clusters, which proves the sequence deterministic.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::diff::line_diff;
use tests::etcdctl::normalize_stdout;
use tests::{Flavor, TestCluster, flavor_tests};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

flavor_tests!(etcdctl_watch_prints_what_etcd_prints, python_etcd3_watches);

/// How long a watcher may take to print everything it should.
const OUTPUT_WAIT: Duration = Duration::from_secs(30);

/// The member every etcdctl watcher talks to.
const WATCHED_MEMBER: usize = 1;

/// One `etcdctl watch` process of the sequence.
struct WatchSpec {
    args: &'static [&'static str],
    /// Lines typed on its stdin (kept open: `-i` exits at end of input).
    stdin: &'static str,
    /// Watches it opens on the server.
    watches: usize,
    /// Its output is complete once `marker` appeared `markers` times (the
    /// last writes put the value `final`).
    marker: &'static str,
    markers: usize,
}

/// `final`, base64-encoded as `-w json` prints values.
const FINAL_B64: &str = "ZmluYWw=";

const WATCHERS: &[WatchSpec] = &[
    WatchSpec {
        args: &["watch", "fruit/apple"],
        stdin: "",
        watches: 1,
        marker: "final",
        markers: 1,
    },
    WatchSpec {
        args: &["watch", "--prefix", "fruit/"],
        stdin: "",
        watches: 1,
        marker: "final",
        markers: 2,
    },
    WatchSpec {
        args: &["watch", "--prev-kv", "fruit/apple"],
        stdin: "",
        watches: 1,
        marker: "final",
        markers: 1,
    },
    WatchSpec {
        args: &["watch", "--rev=2", "--prefix", "fruit/"],
        stdin: "",
        watches: 1,
        marker: "final",
        markers: 2,
    },
    WatchSpec {
        args: &["watch", "--rev=3", "--prev-kv", "--prefix", ""],
        stdin: "",
        watches: 1,
        marker: "final",
        markers: 3,
    },
    WatchSpec {
        args: &["watch", "-i"],
        stdin: "watch fruit/banana\nwatch --prefix veg/\n",
        watches: 2,
        marker: "final",
        markers: 2,
    },
    WatchSpec {
        args: &["watch", "-w", "json", "--prev-kv", "--prefix", "veg/"],
        stdin: "",
        watches: 1,
        marker: FINAL_B64,
        markers: 1,
    },
];

/// Written before the watchers start (revisions 2 to 4).
const BEFORE: &[&[&str]] = &[
    &["put", "fruit/apple", "red"],
    &["put", "fruit/banana", "yellow"],
    &["put", "veg/carrot", "orange"],
];

/// Written once every watch exists: (arguments, stdin). No two writes
/// that the interactive watcher's two watches see share a revision, so
/// the order it prints them in is fixed.
const WRITES: &[(&[&str], Option<&str>)] = &[
    (&["put", "fruit/apple", "green"], None),
    (&["put", "fruit/banana", "brown"], None),
    (&["del", "fruit/apple"], None),
    (&["put", "veg/carrot", "purple"], None),
    (
        &["txn", "-i"],
        Some("\nput fruit/cherry red\nput veg/pea green\n\n\n"),
    ),
    (&["put", "fruit/apple", "again"], None),
    (&["del", "--prefix", "fruit/"], None),
    (
        &["txn", "-i"],
        Some("\nput fruit/apple final\nput fruit/banana final\n\n\n"),
    ),
    (&["put", "veg/carrot", "final"], None),
];

/// A running `etcdctl watch`.
struct CtlWatch {
    spec: &'static WatchSpec,
    child: Child,
    /// Held open until the output is read.
    _stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl CtlWatch {
    async fn spawn(cluster: &TestCluster, spec: &'static WatchSpec) -> Result<Self> {
        let mut cmd = Command::new(tests::binaries::etcdctl_bin()?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCDCTL_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .env("ETCDCTL_API", "3")
            .arg(format!(
                "--endpoints={}",
                cluster.client_url(WATCHED_MEMBER)
            ))
            .arg("--dial-timeout=5s")
            .args(spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning etcdctl watch")?;
        let mut stdin = child.stdin.take().context("etcdctl stdin")?;
        stdin.write_all(spec.stdin.as_bytes()).await?;
        stdin.flush().await?;
        let stdout = child.stdout.take().context("etcdctl stdout")?;
        Ok(Self {
            spec,
            child,
            _stdin: stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// Everything it printed, once its last expected line is out.
    async fn output(mut self) -> Result<String> {
        let mut text = String::new();
        let read = async {
            while text.matches(self.spec.marker).count() < self.spec.markers {
                let line = self
                    .lines
                    .next_line()
                    .await?
                    .context("etcdctl watch exited")?;
                text.push_str(&line);
                text.push('\n');
            }
            anyhow::Ok(())
        };
        let outcome = timeout(OUTPUT_WAIT, read).await;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        outcome
            .with_context(|| format!("etcdctl {} printed only:\n{text}", self.spec.args.join(" ")))?
            .with_context(|| format!("etcdctl {}", self.spec.args.join(" ")))?;
        Ok(text)
    }
}

/// Runs the sequence on a fresh cluster and returns every watcher's
/// output, each under a line naming the watcher.
async fn watch_transcript(cluster: &TestCluster) -> Result<String> {
    for args in BEFORE {
        cluster.etcdctl_ok(args).await?;
    }
    let mut watchers = Vec::new();
    for spec in WATCHERS {
        watchers.push(CtlWatch::spawn(cluster, spec).await?);
    }
    let watches = WATCHERS.iter().map(|w| w.watches).sum();
    cluster.wait_watchers(WATCHED_MEMBER, watches).await?;
    for (args, stdin) in WRITES {
        cluster.etcdctl(args, *stdin).await?.ok()?;
    }
    let mut transcript = String::new();
    for watcher in watchers {
        let spec = watcher.spec;
        let mut output = watcher.output().await?;
        if spec.args.contains(&"json") {
            output = normalize_stdout(&output) + "\n";
        }
        transcript += &format!(
            "$ etcdctl {} <<< {:?}\n{output}",
            spec.args.join(" "),
            spec.stdin
        );
    }
    Ok(transcript)
}

async fn etcdctl_watch_prints_what_etcd_prints(flavor: Flavor) -> Result<()> {
    let reference = TestCluster::start(Flavor::Etcd, 3).await?;
    let expected = watch_transcript(&reference).await?;
    drop(reference);
    let cluster = TestCluster::start(flavor, 3).await?;
    let actual = watch_transcript(&cluster).await?;
    ensure!(
        expected == actual,
        "etcdctl watch output differs from real etcd's (- etcd, + {flavor}):\n{}",
        line_diff(&expected, &actual)
    );
    // The sequence really exercised every watcher.
    for needle in ["DELETE", "fruit/cherry", "orange", "purple"] {
        ensure!(actual.contains(needle), "no {needle:?} in:\n{actual}");
    }
    Ok(())
}

async fn python_etcd3_watches(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    tests::python::etcd3(
        &cluster,
        1,
        r#"
writer = etcd3.client(host=sys.argv[1], port=int(sys.argv[2]), timeout=10)

def take(events, n):
    return [next(events) for _ in range(n)]

# watch and watch_prefix: each returns once its watch is created.
events, cancel = client.watch('py/w/k')
prefix_events, cancel_prefix = client.watch_prefix('py/w/')
r1 = writer.put('py/w/k', 'one').header.revision
r2 = writer.put('py/w/other', 'two').header.revision
r3 = writer.delete('py/w/k', return_response=True).header.revision
writer.put('py/elsewhere', 'not watched')
r5 = writer.put('py/w/k', 'three').header.revision

got = take(events, 3)
kinds = [type(e).__name__ for e in got]
assert kinds == ['PutEvent', 'DeleteEvent', 'PutEvent'], kinds
assert [e.mod_revision for e in got] == [r1, r3, r5], got
assert [e.value for e in got] == [b'one', b'', b'three'], got

got = take(prefix_events, 4)
seen = [(e.key, e.mod_revision) for e in got]
assert seen == [(b'py/w/k', r1), (b'py/w/other', r2), (b'py/w/k', r3), (b'py/w/k', r5)], seen
cancel()
cancel_prefix()

# A past start revision replays the history; prev_kv carries old values.
events, cancel = client.watch('py/w/k', start_revision=r1, prev_kv=True)
got = take(events, 3)
assert [e.mod_revision for e in got] == [r1, r3, r5], got
assert got[1].prev_value == b'one', got[1]
assert got[2].prev_key == b'', 'no previous value after a delete'
cancel()

# watch_once: an event in the past comes back at once, a live one when
# written, and a quiet key times out.
event = client.watch_once('py/w/other', timeout=5, start_revision=r2)
assert isinstance(event, etcd3.events.PutEvent) and event.value == b'two', event
seen = threading.Event()
def keep_writing():
    # Until the watch has seen one: a put before the watch exists is missed.
    while not seen.is_set():
        writer.put('py/w/once', 'live')
        time.sleep(0.2)
threading.Thread(target=keep_writing, daemon=True).start()
event = client.watch_once('py/w/once', timeout=10)
seen.set()
assert event.key == b'py/w/once' and event.value == b'live', event
try:
    client.watch_once('py/w/never', timeout=1)
    raise SystemExit('watch_once on a quiet key did not time out')
except etcd3.exceptions.WatchTimedOut:
    pass

# A compacted start revision is refused.
writer.compact(r5)
try:
    events, cancel = client.watch('py/w/k', start_revision=r1)
    next(events)
    raise SystemExit('a watch from a compacted revision was accepted')
except etcd3.exceptions.RevisionCompactedError as e:
    assert e.compacted_revision == r5, e.compacted_revision
"#,
        &[],
    )
    .await
}

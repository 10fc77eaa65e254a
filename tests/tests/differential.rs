//! Differential test: one scripted sequence of etcdctl commands runs against
//! a real etcd cluster and against a cluster of the flavor under test; the
//! two transcripts (exit status, stdout, stderr of every command) must be
//! identical once the values that legitimately differ are normalised:
//! `cluster_id`, `member_id` and `raft_term` in `-w json` output (and their
//! `-w fields` spellings), and the client library's timestamped log lines.
//!
//! `on_cetera::etcdctl_transcript_matches_real_etcd` is the cetera variant;
//! `on_etcd::...` compares two independent etcd clusters, which proves the
//! script and the normalisation are deterministic.

use anyhow::Result;
use tests::diff::line_diff;
use tests::etcdctl::{VOLATILE_FIELDS, normalize_stdout};
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(etcdctl_transcript_matches_real_etcd);

/// One etcdctl invocation: arguments and optional stdin.
type Step = (&'static [&'static str], Option<&'static str>);

const SCRIPT: &[Step] = &[
    (&["get", "", "--from-key", "-w", "json"], None),
    (&["put", "fruit/apple", "red"], None),
    (&["put", "fruit/banana", "yellow", "-w", "json"], None),
    (&["put", "fruit/cherry", "dark red"], None),
    (&["put", "veg/carrot", "orange"], None),
    (&["put", "fruit/apple", "green", "--prev-kv"], None),
    (
        &["put", "fruit/apple", "green", "--prev-kv", "-w", "json"],
        None,
    ),
    (&["get", "fruit/apple"], None),
    (&["get", "fruit/apple", "-w", "json"], None),
    (&["get", "fruit/apple", "-w", "fields"], None),
    (&["get", "fruit/", "--prefix"], None),
    (&["get", "fruit/", "--prefix", "-w", "json"], None),
    (
        &["get", "fruit/", "--prefix", "--limit=2", "-w", "json"],
        None,
    ),
    (&["get", "fruit/", "--prefix", "--keys-only"], None),
    (
        &[
            "get",
            "fruit/",
            "--prefix",
            "--sort-by=VALUE",
            "--order=DESCEND",
        ],
        None,
    ),
    (
        &[
            "get",
            "fruit/",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=ASCEND",
        ],
        None,
    ),
    (
        &[
            "get",
            "fruit/",
            "--prefix",
            "--sort-by=VERSION",
            "--order=DESCEND",
            "-w",
            "json",
        ],
        None,
    ),
    (
        &["get", "fruit/", "--prefix", "--sort-by=CREATE", "--limit=1"],
        None,
    ),
    (&["get", "fruit/b", "--from-key"], None),
    (&["get", "fruit/apple", "--rev=2"], None),
    (&["get", "fruit/apple", "--rev=2", "-w", "json"], None),
    (&["get", "fruit/apple", "--rev=1"], None),
    (&["get", "fruit/apple", "--rev=1000"], None),
    (
        &["get", "fruit/", "--prefix", "--consistency=s", "-w", "json"],
        None,
    ),
    (&["get", "nothing", "-w", "json"], None),
    (&["put", "", "empty key"], None),
    (
        &["txn", "-i"],
        Some(
            "value(\"fruit/apple\") = \"green\"\n\nput basket full\nget fruit/apple\n\nput basket empty\n\n",
        ),
    ),
    (
        &["txn", "-i", "-w", "json"],
        Some(
            "version(\"fruit/apple\") = \"2\"\ncreate(\"basket\") > \"0\"\n\nput basket x\n\ndel basket\nget veg/carrot\n\n",
        ),
    ),
    (
        &["txn", "-i"],
        Some("mod(\"veg/carrot\") < \"100\"\n\ndel veg/carrot\n\nput veg/carrot again\n\n"),
    ),
    (&["txn", "-i"], Some("\nput twice 1\nput twice 2\n\n\n")),
    (&["txn", "-i"], Some("\nput twice 1\ndel twice\n\n\n")),
    (&["get", "", "--from-key", "-w", "json"], None),
    (&["del", "fruit/cherry", "--prev-kv"], None),
    (&["del", "fruit/", "--prefix", "-w", "json"], None),
    (&["del", "fruit/", "--prefix"], None),
    (&["del", "missing"], None),
    (&["get", "", "--from-key"], None),
    (&["compaction", "4"], None),
    (&["compaction", "4"], None),
    (&["compaction", "1000"], None),
    (&["get", "fruit/apple", "--rev=3"], None),
    (&["get", "fruit/apple", "--rev=4", "-w", "json"], None),
    (&["put", "after/compaction", "yes", "-w", "json"], None),
    (&["get", "", "--from-key", "-w", "json"], None),
];

async fn etcdctl_transcript_matches_real_etcd(flavor: Flavor) -> Result<()> {
    let (reference, tested) = tokio::join!(
        TestCluster::start(Flavor::Etcd, 3),
        TestCluster::start(flavor, 3),
    );
    let (reference, tested) = (reference?, tested?);
    let (expected, actual) = tokio::join!(transcript(&reference), transcript(&tested));
    let (expected, actual) = (expected?, actual?);
    assert!(
        expected.contains("\"revision\": 13"),
        "the script should have run to completion:\n{expected}"
    );
    if expected != actual {
        panic!(
            "etcdctl transcripts differ (- real etcd, + {flavor}):\n{}",
            line_diff(&expected, &actual)
        );
    }
    Ok(())
}

/// Runs [`SCRIPT`] against member 0 and returns the normalised transcript.
async fn transcript(cluster: &TestCluster) -> Result<String> {
    let mut out = String::new();
    for (args, stdin) in SCRIPT {
        let result = cluster.etcdctl_at(0, args, *stdin).await?;
        out.push_str(&format!("$ etcdctl {}\n", args.join(" ")));
        if let Some(input) = stdin {
            out.push_str(&format!("stdin: {input:?}\n"));
        }
        out.push_str(&format!("exit: {:?}\n", result.status.code()));
        out.push_str(&format!(
            "stdout:\n{}\n",
            normalize_fields(&normalize_stdout(&result.stdout))
        ));
        out.push_str(&format!("stderr:\n{}\n\n", result.stderr_messages()));
    }
    Ok(out)
}

/// Zeroes the volatile fields in `-w fields` output (`"MemberID" : 123`).
fn normalize_fields(text: &str) -> String {
    text.lines()
        .map(|line| {
            for field in VOLATILE_FIELDS {
                if line.starts_with(&format!("\"{field}\" : ")) {
                    return format!("\"{field}\" : 0");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

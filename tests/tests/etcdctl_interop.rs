//! Interoperability with the real `etcdctl` (v3 API, from etcd 3.4): each
//! test drives a cluster only through etcdctl and checks exactly what it
//! prints, in the default "simple" format and in `-w json`.
//!
//! `on_etcd::*` validates the expectations against real etcd; `on_cetera::*`
//! are the cetera variants. (etcdctl 3.4 has no `get --count-only`; counts are
//! checked through the `count` field of `-w json` instead.)

use anyhow::{Context, Result};
use serde_json::Value;
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    put_and_get_print_the_simple_format,
    get_filters_sorts_and_limits_ranges,
    get_json_output_has_header_counts_and_base64_kvs,
    get_rev_reads_history,
    del_prints_deleted_counts_and_prev_kvs,
    txn_interactive_runs_the_branch_its_compares_choose,
    compaction_makes_old_revisions_unreadable,
    server_errors_reach_etcdctl,
    endpoint_status_json_reports_leader_and_revision,
);

async fn put_and_get_print_the_simple_format(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    assert_eq!(
        cluster.etcdctl_ok(&["put", "greeting", "hello"]).await?,
        "OK\n"
    );
    assert_eq!(
        cluster.etcdctl_ok(&["get", "greeting"]).await?,
        "greeting\nhello\n"
    );
    assert_eq!(
        cluster
            .etcdctl_ok(&["get", "greeting", "--print-value-only"])
            .await?,
        "hello\n"
    );
    assert_eq!(cluster.etcdctl_ok(&["get", "missing"]).await?, "");
    assert_eq!(
        cluster
            .etcdctl_ok(&["put", "greeting", "bonjour", "--prev-kv"])
            .await?,
        "OK\ngreeting\nhello\n"
    );
    // A value given on stdin (etcdctl reads it when the argument is absent)
    // is stored byte for byte, trailing newline included.
    let out = cluster.etcdctl(&["put", "multi"], Some("line1\n")).await?;
    assert_eq!(out.ok()?, "OK\n");
    assert_eq!(
        cluster.etcdctl_ok(&["get", "multi"]).await?,
        "multi\nline1\n\n"
    );
    assert_eq!(
        cluster.etcdctl_ok(&["get", "greeting"]).await?,
        "greeting\nbonjour\n"
    );
    Ok(())
}

async fn get_filters_sorts_and_limits_ranges(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    for (key, value) in [("a/2", "x"), ("a/1", "z"), ("a/3", "y"), ("b", "w")] {
        cluster.etcdctl_ok(&["put", key, value]).await?;
    }
    let get = |args: &'static [&'static str]| cluster.etcdctl_ok(args);

    assert_eq!(
        get(&["get", "a/", "--prefix"]).await?,
        "a/1\nz\na/2\nx\na/3\ny\n"
    );
    assert_eq!(
        get(&["get", "a/", "--prefix", "--limit=2"]).await?,
        "a/1\nz\na/2\nx\n"
    );
    assert_eq!(
        get(&[
            "get",
            "a/",
            "--prefix",
            "--sort-by=VALUE",
            "--order=DESCEND"
        ])
        .await?,
        "a/1\nz\na/3\ny\na/2\nx\n"
    );
    assert_eq!(
        get(&[
            "get",
            "a/",
            "--prefix",
            "--sort-by=CREATE",
            "--order=ASCEND"
        ])
        .await?,
        "a/2\nx\na/1\nz\na/3\ny\n"
    );
    assert_eq!(
        get(&[
            "get",
            "a/",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--limit=1"
        ])
        .await?,
        "a/3\ny\n"
    );
    assert_eq!(
        get(&["get", "a/", "--prefix", "--keys-only"]).await?,
        "a/1\n\na/2\n\na/3\n\n"
    );
    assert_eq!(
        get(&["get", "a/2", "--from-key"]).await?,
        "a/2\nx\na/3\ny\nb\nw\n"
    );
    assert_eq!(get(&["get", "a/1", "a/3"]).await?, "a/1\nz\na/2\nx\n");
    Ok(())
}

async fn get_json_output_has_header_counts_and_base64_kvs(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    for key in ["j/1", "j/2", "j/3"] {
        cluster.etcdctl_ok(&["put", key, "val"]).await?;
    }
    let json = cluster
        .etcdctl(&["get", "j/", "--prefix", "--limit=2", "-w", "json"], None)
        .await?
        .ok_json()?;
    let header = &json["header"];
    assert_eq!(header["revision"], 4, "{json}");
    assert!(header["cluster_id"].as_u64().unwrap_or(0) != 0, "{json}");
    assert!(header["member_id"].as_u64().unwrap_or(0) != 0, "{json}");
    assert!(header["raft_term"].as_u64().unwrap_or(0) >= 1, "{json}");
    assert_eq!(json["count"], 3, "{json}");
    assert_eq!(json["more"], true, "{json}");
    let kvs = json["kvs"].as_array().context("kvs array")?;
    assert_eq!(kvs.len(), 2);
    assert_eq!(kvs[0]["key"], base64("j/1"));
    assert_eq!(kvs[0]["value"], base64("val"));
    assert_eq!(kvs[0]["create_revision"], 2);
    assert_eq!(kvs[0]["mod_revision"], 2);
    assert_eq!(kvs[0]["version"], 1);
    assert_eq!(kvs[1]["key"], base64("j/2"));

    // Without --limit there is no "more"; a miss has no "kvs" and no count.
    let all = cluster
        .etcdctl(&["get", "j/", "--prefix", "-w", "json"], None)
        .await?
        .ok_json()?;
    assert_eq!(all["count"], 3, "{all}");
    assert_eq!(all.get("more"), None, "{all}");
    let miss = cluster
        .etcdctl(&["get", "nothing", "-w", "json"], None)
        .await?
        .ok_json()?;
    assert_eq!(miss.get("kvs"), None, "{miss}");
    assert_eq!(miss.get("count"), None, "{miss}");
    assert_eq!(miss["header"]["revision"], 4, "{miss}");
    Ok(())
}

async fn get_rev_reads_history(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    cluster.etcdctl_ok(&["put", "h", "v1"]).await?; // revision 2
    cluster.etcdctl_ok(&["put", "h", "v2"]).await?; // revision 3
    cluster.etcdctl_ok(&["del", "h"]).await?; // revision 4
    assert_eq!(cluster.etcdctl_ok(&["get", "h", "--rev=1"]).await?, "");
    assert_eq!(
        cluster.etcdctl_ok(&["get", "h", "--rev=2"]).await?,
        "h\nv1\n"
    );
    assert_eq!(
        cluster.etcdctl_ok(&["get", "h", "--rev=3"]).await?,
        "h\nv2\n"
    );
    assert_eq!(cluster.etcdctl_ok(&["get", "h", "--rev=4"]).await?, "");
    assert_eq!(cluster.etcdctl_ok(&["get", "h"]).await?, "");
    let future = cluster.etcdctl(&["get", "h", "--rev=99"], None).await?;
    assert!(!future.success());
    assert_eq!(
        future.stderr_messages(),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
    Ok(())
}

async fn del_prints_deleted_counts_and_prev_kvs(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    for (key, value) in [("d/1", "one"), ("d/2", "two"), ("d/3", "three"), ("e", "e")] {
        cluster.etcdctl_ok(&["put", key, value]).await?;
    }
    assert_eq!(
        cluster.etcdctl_ok(&["del", "d/1", "--prev-kv"]).await?,
        "1\nd/1\none\n"
    );
    assert_eq!(cluster.etcdctl_ok(&["del", "d/", "--prefix"]).await?, "2\n");
    assert_eq!(cluster.etcdctl_ok(&["del", "d/", "--prefix"]).await?, "0\n");
    assert_eq!(cluster.etcdctl_ok(&["del", "nothing"]).await?, "0\n");
    assert_eq!(
        cluster.etcdctl_ok(&["get", "", "--from-key"]).await?,
        "e\ne\n"
    );
    let json = cluster
        .etcdctl(&["del", "e", "--prev-kv", "-w", "json"], None)
        .await?
        .ok_json()?;
    assert_eq!(json["deleted"], 1, "{json}");
    assert_eq!(json["prev_kvs"][0]["value"], base64("e"), "{json}");
    assert_eq!(json["header"]["revision"], 8, "{json}");
    Ok(())
}

async fn txn_interactive_runs_the_branch_its_compares_choose(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    cluster.etcdctl_ok(&["put", "k1", "v1"]).await?;
    const PROMPTS: &str =
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n";

    let success = cluster
        .etcdctl(
            &["txn", "-i"],
            Some("value(\"k1\") = \"v1\"\n\nput k2 yes\nget k1\n\nput k2 no\n\n"),
        )
        .await?
        .ok()?;
    assert_eq!(success, format!("{PROMPTS}SUCCESS\n\nOK\n\nk1\nv1\n"));
    assert_eq!(cluster.etcdctl_ok(&["get", "k2"]).await?, "k2\nyes\n");

    let failure = cluster
        .etcdctl(
            &["txn", "-i"],
            Some(
                "value(\"k1\") = \"v1\"\nversion(\"k2\") > \"1\"\n\n\
                 put k3 yes\n\nput k3 no\ndel k1\n\n",
            ),
        )
        .await?
        .ok()?;
    assert_eq!(failure, format!("{PROMPTS}FAILURE\n\nOK\n\n1\n"));
    assert_eq!(
        cluster.etcdctl_ok(&["get", "k", "--prefix"]).await?,
        "k2\nyes\nk3\nno\n"
    );

    let revs = cluster
        .etcdctl(
            &["txn", "-i", "-w", "json"],
            Some("create(\"k3\") > \"0\"\nmod(\"k2\") < \"100\"\n\nget k3\n\n\n"),
        )
        .await?;
    let text = revs.ok()?;
    let json: Value = serde_json::from_str(text.trim_start_matches(PROMPTS).trim())?;
    assert_eq!(json["succeeded"], true, "{json}");
    let range = &json["responses"][0]["Response"]["ResponseRange"];
    assert_eq!(range["kvs"][0]["key"], base64("k3"), "{json}");
    assert_eq!(range["kvs"][0]["value"], base64("no"), "{json}");
    assert_eq!(json["header"]["revision"], 4, "{json}");
    Ok(())
}

async fn compaction_makes_old_revisions_unreadable(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    for value in ["v1", "v2", "v3", "v4"] {
        cluster.etcdctl_ok(&["put", "c", value]).await?; // revisions 2..=5
    }
    assert_eq!(
        cluster.etcdctl_ok(&["compaction", "3"]).await?,
        "compacted revision 3\n"
    );
    let old = cluster.etcdctl(&["get", "c", "--rev=2"], None).await?;
    assert!(!old.success());
    assert_eq!(
        old.stderr_messages(),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(
        cluster.etcdctl_ok(&["get", "c", "--rev=3"]).await?,
        "c\nv2\n"
    );
    let again = cluster.etcdctl(&["compaction", "3"], None).await?;
    assert!(!again.success());
    assert_eq!(
        again.stderr_messages(),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(
        cluster
            .etcdctl_ok(&["compaction", "--physical", "5"])
            .await?,
        "compacted revision 5\n"
    );
    assert_eq!(cluster.etcdctl_ok(&["get", "c"]).await?, "c\nv4\n");
    Ok(())
}

async fn server_errors_reach_etcdctl(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let empty_key = cluster.etcdctl(&["put", "", "v"], None).await?;
    assert!(!empty_key.success());
    assert_eq!(
        empty_key.stderr_messages(),
        "Error: etcdserver: key is not provided"
    );
    let duplicate = cluster
        .etcdctl(&["txn", "-i"], Some("\nput x 1\nput x 2\n\n\n"))
        .await?;
    assert!(!duplicate.success());
    assert_eq!(
        duplicate.stderr_messages(),
        "Error: etcdserver: duplicate key given in txn request"
    );
    assert_eq!(cluster.etcdctl_ok(&["get", "x"]).await?, "");
    Ok(())
}

async fn endpoint_status_json_reports_leader_and_revision(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    cluster.etcdctl_ok(&["put", "s", "1"]).await?;
    cluster.etcdctl_ok(&["put", "s", "2"]).await?;
    // Linearizable read everywhere so that every member has applied both.
    for i in 0..3 {
        assert_eq!(
            cluster.etcdctl_at(i, &["get", "s"], None).await?.ok()?,
            "s\n2\n"
        );
    }
    let json = cluster
        .etcdctl(&["endpoint", "status", "-w", "json"], None)
        .await?
        .ok_json()?;
    let statuses = json.as_array().context("an array of endpoint statuses")?;
    assert_eq!(statuses.len(), 3, "{json}");

    let leader_index = cluster.leader_index().await?;
    let mut member_ids = Vec::new();
    for (i, entry) in statuses.iter().enumerate() {
        assert_eq!(entry["Endpoint"], cluster.client_url(i), "{json}");
        let status = &entry["Status"];
        let id = status["header"]["member_id"]
            .as_u64()
            .context("member_id")?;
        member_ids.push(id);
        assert_eq!(status["header"]["revision"], 3, "{json}");
        assert!(status["raftIndex"].as_u64().unwrap_or(0) > 0, "{json}");
        assert!(status["raftTerm"].as_u64().unwrap_or(0) >= 1, "{json}");
        assert!(status["dbSize"].as_i64().unwrap_or(0) > 0, "{json}");
        assert!(
            !status["version"].as_str().unwrap_or("").is_empty(),
            "{json}"
        );
    }
    member_ids.sort_unstable();
    member_ids.dedup();
    assert_eq!(member_ids.len(), 3, "distinct member ids: {json}");
    let cluster_ids: Vec<_> = statuses
        .iter()
        .map(|s| s["Status"]["header"]["cluster_id"].clone())
        .collect();
    assert!(cluster_ids.iter().all(|c| *c == cluster_ids[0]), "{json}");
    let leaders: Vec<_> = statuses
        .iter()
        .map(|s| s["Status"]["leader"].clone())
        .collect();
    assert!(leaders.iter().all(|l| *l == leaders[0]), "{json}");
    assert_eq!(
        leaders[0], statuses[leader_index]["Status"]["header"]["member_id"],
        "every member names the leader found over gRPC: {json}"
    );
    Ok(())
}

/// Standard base64 (with padding), as etcdctl's JSON output encodes bytes.
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_known_encodings() {
    assert_eq!(base64("a"), "YQ==");
    assert_eq!(base64("ab"), "YWI=");
    assert_eq!(base64("abc"), "YWJj");
    assert_eq!(base64("j/1"), "ai8x");
}

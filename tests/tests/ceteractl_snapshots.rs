//! `ceteractl`'s own output, pinned with insta snapshots
//! (`tests/tests/snapshots/`): every command that prints a response, in
//! each output format it supports, run in a fixed sequence against a real
//! 3-member cetera cluster.
//!
//! The differential tests (`ceteractl.rs`) prove ceteractl prints what
//! etcdctl prints; these snapshots make any change to cetera's own answers
//! or ceteractl's layout show up as a reviewable diff.
//!
//! Only what differs from run to run is masked (see [`Masker`]): member
//! and cluster ids, names and URLs become stable placeholders (ordered by
//! member id, so the member list's order is stable too), and raft terms
//! and indexes, database sizes, hashes, lease ids, remaining TTLs,
//! durations and temporary paths become `*`. Revisions, versions, counts,
//! key and value encodings and number formats stay as printed, since
//! scripts parse them. Table borders are padded to the widest cell, which
//! can change with a masked value, so runs of `-` and spaces inside table
//! lines are collapsed; the columns, their order and their headers stay.
//! The differential tests pin the widths themselves against etcdctl.
//!
//! The auth commands' snapshot (`auth`) is taken on a single member of
//! each flavor: real etcd and cetera must print the same.
//!
//! Run `cargo insta review` (or set `INSTA_UPDATE=always`) after an
//! intended change.

use anyhow::{Context, Result, ensure};
use tests::etcdctl::CtlOutput;
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(auth_output_formats);

/// Literal replacements for one cluster, then number masks.
#[derive(Default)]
struct Masker {
    /// Applied in order; longer forms of a value come before shorter ones.
    literals: Vec<(String, String)>,
}

impl Masker {
    /// Ids, names and URLs of `cluster`'s members, lettered `a`, `b`, `c`
    /// in member id order; returns the member indices in that order too.
    async fn for_cluster(cluster: &TestCluster) -> Result<(Masker, Vec<usize>)> {
        let mut members = Vec::new();
        let mut cluster_id = 0;
        for i in 0..cluster.size() {
            let header = cluster.status(i).await?.header.context("no header")?;
            cluster_id = header.cluster_id;
            members.push((header.member_id, i));
        }
        members.sort_unstable();
        let mut masker = Masker::default();
        masker.id(cluster_id, "<cluster-id>");
        let mut order = Vec::new();
        for ((id, i), letter) in members.into_iter().zip(['a', 'b', 'c', 'd', 'e']) {
            let member = cluster.member(i);
            masker.id(id, &format!("<id-{letter}>"));
            for (url, what) in [(member.client_url(), "client"), (member.peer_url(), "peer")] {
                let token = format!("<{what}-{letter}>");
                masker.literal(&url, &token);
                if let Some(bare) = url.strip_prefix("http://") {
                    masker.literal(bare, &token);
                }
            }
            order.push(i);
        }
        // Names last: `n1` must not be found inside a longer value first.
        for (i, letter) in order.iter().zip(['a', 'b', 'c', 'd', 'e']) {
            let name = cluster.member(*i).name();
            masker.literal(&format!("\"{name}\""), &format!("\"<name-{letter}>\""));
            masker.literal(&format!(", {name},"), &format!(", <name-{letter}>,"));
            masker.literal(&format!("| {name} |"), &format!("| <name-{letter}> |"));
            masker.literal(&format!("{name}="), &format!("<name-{letter}>="));
        }
        Ok((masker, order))
    }

    fn literal(&mut self, from: &str, to: &str) {
        self.literals.push((from.to_string(), to.to_string()));
    }

    /// A 64-bit id as ceteractl prints it: `%016x`, `%x` and decimal
    /// (`%16x`'s space padding is collapsed by [`Masker::apply`]).
    fn id(&mut self, id: u64, token: &str) {
        for form in [format!("{id:016x}"), format!("{id:x}"), id.to_string()] {
            self.literal(&form, token);
        }
    }

    fn apply(&self, text: &str) -> String {
        let mut s = collapse_tables(text);
        for (from, to) in &self.literals {
            s = s.replace(from.as_str(), to);
        }
        s = collapse_padding(&s);
        for key in NUMBER_FIELDS {
            s = mask_number_after(&s, key);
        }
        mask_durations(&s)
    }
}

/// Markers after which a number changes from run to run (json, fields and
/// simple output).
const NUMBER_FIELDS: &[&str] = &[
    "\"raft_term\":",
    "\"RaftTerm\" : ",
    "\"raft_index\":",
    "\"RaftIndex\" : ",
    "\"raftAppliedIndex\":",
    "\"RaftAppliedIndex\" : ",
    "\"dbSize\":",
    "\"DBSize\" : ",
    "\"dbSizeInUse\":",
    "\"DBSizeInUse\" : ",
    "\"hash\":",
    "\"Hash\" : ",
    "\"raftIndex\":",
    "\"raftTerm\":",
    "\"totalSize\":",
    "\"TotalSize\" : ",
    // Lease ids other than the one the lease steps name.
    "\"ID\":",
    "\"ID\" : ",
];

/// Replaces the (possibly negative or fractional) number after every
/// `marker` with `*`.
fn mask_number_after(text: &str, marker: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '-' && c != '.')
            .unwrap_or(rest.len());
        if end > 0 {
            out.push('*');
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces measured Go-style durations (`1.234ms`, `850µs`, `1.2s`) with
/// `*`; whole seconds (`TTL(600s)`) are settings and stay.
fn mask_durations(text: &str) -> String {
    let mut out = String::new();
    let mut number = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_number = number.is_empty()
            && c.is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '<'));
        if starts_number || (!number.is_empty() && (c.is_ascii_digit() || c == '.')) {
            number.push(c);
            i += 1;
            continue;
        }
        if !number.is_empty() {
            let unit: String = chars[i..].iter().take(2).collect();
            let unit_len = if unit == "ms" || unit == "µs" || unit == "ns" {
                2
            } else if c == 's' && number.contains('.') {
                1
            } else {
                0
            };
            let ends_word = chars.get(i + unit_len).is_none_or(|n| !n.is_alphanumeric());
            if unit_len > 0 && ends_word {
                out.push('*');
                i += unit_len;
            } else {
                out.push_str(&number);
            }
            number.clear();
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.push_str(&number);
    out
}

/// `%16x` pads a short id with spaces (`Member  <id-a> added`): the
/// padding before a placeholder is collapsed to one space.
fn collapse_padding(text: &str) -> String {
    let mut s = text.to_string();
    while s.contains("  <") {
        s = s.replace("  <", " <");
    }
    s
}

/// Collapses the padding inside table lines (`+---+`, `| a   |`), which
/// follows the widest cell and so any masked value.
fn collapse_tables(text: &str) -> String {
    text.lines()
        .map(|line| {
            if !(line.starts_with('+') || line.starts_with('|')) {
                return line.to_string();
            }
            let mut out = String::new();
            for c in line.chars() {
                let repeat = matches!(c, ' ' | '-') && out.ends_with(c);
                if !repeat {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

/// Masks the cells at `columns` (0-based) of the rows whose first cell
/// passes `is_row`, in simple (`a, b, c`) and table (`| a | b |`) output.
fn mask_columns(text: &str, is_row: impl Fn(&str) -> bool, columns: &[usize]) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let newline = &line[body.len()..];
        if body.strip_prefix("| ").is_some_and(&is_row) {
            out.push_str(&mask_table_row(body, columns));
        } else if !body.starts_with('|') && is_row(body) {
            let cells: Vec<&str> = body.split(", ").collect();
            out.push_str(&mask_cells(&cells, columns).join(", "));
        } else {
            out.push_str(body);
        }
        out.push_str(newline);
    }
    out
}

/// Sorts the members in `ETCD_INITIAL_CLUSTER` (their order follows the
/// random id of the member just added).
fn sort_initial_cluster(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("ETCD_INITIAL_CLUSTER=") {
            Some(list) => {
                let mut items: Vec<&str> = list.trim_matches('"').split(',').collect();
                items.sort_unstable();
                format!("ETCD_INITIAL_CLUSTER=\"{}\"", items.join(","))
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Sorts `member list` entries by their placeholder (the list follows
/// member ids, and the learner's id is random): rows in simple and table
/// output, blank-line separated blocks in fields output, and the objects
/// of the json `members` array.
fn sort_members(text: &str) -> String {
    if let Some(start) = text.find("\"members\":[{") {
        let open = start + "\"members\":[".len();
        let Some(len) = text[open..].find("}]") else {
            return text.to_string();
        };
        let inner = &text[open + 1..open + len];
        let mut members: Vec<&str> = inner.split("},{").collect();
        members.sort_unstable();
        return format!(
            "{}{{{}}}{}",
            &text[..open],
            members.join("},{"),
            &text[open + len + 1..]
        );
    }
    let mut lines: Vec<&str> = text.lines().collect();
    let rows: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("<") || lines[i].starts_with("| <"))
        .collect();
    let mut sorted: Vec<&str> = rows.iter().map(|&i| lines[i]).collect();
    sorted.sort_unstable();
    for (&i, row) in rows.iter().zip(sorted) {
        lines[i] = row;
    }
    let text = lines.join("\n") + "\n";
    // fields: `"ID" : ...` blocks after the header, each ending in a blank line.
    let Some(first) = text.find("\"ID\" : ") else {
        return text;
    };
    let Some(end) = text.rfind("\n\n") else {
        return text;
    };
    let mut blocks: Vec<&str> = text[first..end + 2].split_inclusive("\n\n").collect();
    blocks.sort_unstable();
    format!("{}{}{}", &text[..first], blocks.concat(), &text[end + 2..])
}

/// Runs commands and keeps a masked transcript of each.
struct Session<'a> {
    endpoints: String,
    masker: &'a Masker,
    extra: Vec<(String, String)>,
    transcript: String,
}

impl<'a> Session<'a> {
    fn new(endpoints: String, masker: &'a Masker) -> Self {
        Session {
            endpoints,
            masker,
            extra: Vec::new(),
            transcript: String::new(),
        }
    }

    /// Runs one command without recording it.
    async fn exec(&self, args: &[&str], stdin: Option<&str>) -> Result<CtlOutput> {
        tests::ceteractl::run(&self.endpoints, args, stdin, &[]).await
    }

    /// Records one command's output, masked, then passed through `post`.
    fn record(&mut self, args: &[&str], out: &CtlOutput, post: impl Fn(&str) -> String) {
        let mut text = format!(
            "$ ceteractl {}\n{}{}[exit {}]\n\n",
            args.join(" "),
            out.stdout,
            if out.stderr.is_empty() {
                String::new()
            } else {
                format!("[stderr]\n{}", out.stderr)
            },
            out.status
                .code()
                .map_or("signal".to_string(), |c| c.to_string()),
        );
        for (from, to) in &self.extra {
            text = text.replace(from.as_str(), to);
        }
        self.transcript.push_str(&post(&self.masker.apply(&text)));
    }

    /// Runs one command and records it; returns its raw output.
    async fn run(&mut self, args: &[&str], stdin: Option<&str>) -> Result<CtlOutput> {
        self.run_masked(args, stdin, str::to_string).await
    }

    /// Runs one command and records it with `post` applied.
    async fn run_masked(
        &mut self,
        args: &[&str],
        stdin: Option<&str>,
        post: impl Fn(&str) -> String,
    ) -> Result<CtlOutput> {
        let out = self.exec(args, stdin).await?;
        self.record(args, &out, post);
        Ok(out)
    }

    /// Runs a command in each listed format, with `post` applied.
    async fn run_formats_masked(
        &mut self,
        args: &[&str],
        formats: &[&str],
        post: impl Fn(&str) -> String,
    ) -> Result<()> {
        for w in formats {
            let mut all = args.to_vec();
            all.extend(["-w", w]);
            self.run_masked(&all, None, &post).await?;
        }
        Ok(())
    }

    async fn run_formats(&mut self, args: &[&str], formats: &[&str]) -> Result<()> {
        self.run_formats_masked(args, formats, str::to_string).await
    }

    /// Masks a 64-bit id (hex as printed, zero-padded hex, decimal) as
    /// `token` in every later transcript.
    fn mask_id(&mut self, hex: &str, token: &str) -> Result<()> {
        let id = u64::from_str_radix(hex.trim(), 16)
            .with_context(|| format!("{hex:?} is not a hex id"))?;
        for form in [
            format!("{id:016x}"),
            format!("{id:x}"),
            id.to_string(),
            (id as i64).to_string(),
        ] {
            self.extra.push((form, token.to_string()));
        }
        Ok(())
    }

    fn mask(&mut self, from: &str, to: &str) {
        self.extra.push((from.to_string(), to.to_string()));
    }

    fn take(&mut self) -> String {
        std::mem::take(&mut self.transcript)
    }
}

const ALL: &[&str] = &["simple", "json", "fields"];
const WITH_TABLE: &[&str] = &["simple", "json", "fields", "table"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_formats_on_a_three_member_cetera_cluster() -> Result<()> {
    // A longer election timeout than the harness's default keeps a loaded
    // machine from electing another leader mid-sequence (who leads shows
    // in `endpoint status`).
    let cluster = TestCluster::builder(Flavor::Cetera, 3)
        .heartbeat_ms(100)
        .election_ms(2000)
        .start()
        .await?;
    let (masker, order) = Masker::for_cluster(&cluster).await?;
    let ids = ids_in_order(&cluster, &order).await?;
    let all_eps = order
        .iter()
        .map(|&i| cluster.client_url(i))
        .collect::<Vec<_>>()
        .join(",");
    // The member with the lowest id leads, so `IS LEADER` and `leader`
    // land on the same placeholder every run.
    if cluster.leader_index().await? != order[0] {
        let moved = tests::ceteractl::run(
            &all_eps,
            &["move-leader", &format!("{:x}", ids[0])],
            None,
            &[],
        )
        .await?;
        ensure!(moved.success(), "{moved:?}");
    }
    ensure!(
        cluster.leader_index().await? == order[0],
        "leadership did not move"
    );

    let mut s = Session::new(cluster.client_url(order[0]), &masker);
    kv_sequence(&mut s).await?;
    insta::assert_snapshot!("kv", s.take());
    lease_sequence(&mut s).await?;
    insta::assert_snapshot!("lease", s.take());
    bulk_and_snapshot_sequence(&mut s).await?;
    insta::assert_snapshot!("bulk_and_snapshot", s.take());

    let mut s = Session::new(all_eps, &masker);
    endpoint_sequence(&mut s).await?;
    insta::assert_snapshot!("endpoint", s.take());
    maintenance_sequence(&mut s, &ids).await?;
    insta::assert_snapshot!("maintenance", s.take());
    member_sequence(&mut s).await?;
    insta::assert_snapshot!("member", s.take());
    Ok(())
}

async fn ids_in_order(cluster: &TestCluster, order: &[usize]) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for &i in order {
        ids.push(cluster.status(i).await?.header.context("header")?.member_id);
    }
    Ok(ids)
}

/// put, get, del, txn and compaction in every format they print.
async fn kv_sequence(s: &mut Session<'_>) -> Result<()> {
    s.run(&["put", "foo", "bar"], None).await?;
    for w in ALL {
        s.run(
            &["put", "foo", &format!("bar-{w}"), "--prev-kv", "-w", w],
            None,
        )
        .await?;
    }
    s.run(&["put", "bin", "\u{1}\u{2}\u{ff}"], None).await?;
    s.run(&["put", "empty", ""], None).await?;
    for (k, v) in [("dir/1", "one"), ("dir/2", "two"), ("dir/3", "three")] {
        s.run(&["put", k, v], None).await?;
    }
    s.run(&["put", "stdin"], Some("from stdin\n")).await?;
    s.run_formats(&["get", "foo"], ALL).await?;
    s.run_formats(&["get", "dir/", "--prefix"], ALL).await?;
    s.run_formats(&["get", "dir/", "--prefix", "--limit=2"], ALL)
        .await?;
    s.run_formats(
        &[
            "get",
            "dir/",
            "--prefix",
            "--sort-by=value",
            "--order=descend",
        ],
        &["simple", "json"],
    )
    .await?;
    s.run_formats(&["get", "dir/", "--prefix", "--count-only"], ALL)
        .await?;
    s.run_formats(&["get", "bin"], ALL).await?;
    s.run_formats(&["get", "bin", "--hex"], ALL).await?;
    s.run_formats(&["get", "empty"], ALL).await?;
    s.run_formats(&["get", "missing"], ALL).await?;
    s.run_formats(&["get", "foo", "--rev=2"], ALL).await?;
    s.run(&["get", "dir/", "--prefix", "--keys-only"], None)
        .await?;
    s.run(&["get", "", "--prefix", "--print-value-only"], None)
        .await?;
    s.run(&["get", "foo", "-w", "table"], None).await?;
    for (w, key) in ALL.iter().zip(["dir/1", "dir/2", "dir/3"]) {
        s.run(&["del", key, "--prev-kv", "-w", w], None).await?;
    }
    s.run_formats(&["del", "nothing"], ALL).await?;
    let txn = "value(\"foo\") = \"bar-fields\"\n\nput t1 a\nget foo\ndel stdin\n\nput t2 b\n\n";
    let failing = "mod(\"foo\") < \"3\"\n\nput t1 a\n\nget foo --keys-only\nput t3 c --prev-kv\n\n";
    for w in ALL {
        s.run(&["txn", "-w", w], Some(txn)).await?;
        s.run(&["txn", "-w", w], Some(failing)).await?;
    }
    s.run(&["compaction", "3"], None).await?;
    s.run(&["compaction", "4", "--physical"], None).await?;
    s.run(&["get", "foo", "--rev=2"], None).await?;
    Ok(())
}

/// lease grant, timetolive, list, keep-alive --once and revoke.
async fn lease_sequence(s: &mut Session<'_>) -> Result<()> {
    let remaining = |text: &str| -> String {
        let mut t = text.to_string();
        for marker in ["remaining(", "\"ttl\":", "\"TTL\" : "] {
            t = mask_number_after(&t, marker);
        }
        t
    };
    let args = ["lease", "grant", "600"];
    let grant = s.exec(&args, None).await?;
    let id = grant
        .stdout
        .split_whitespace()
        .nth(1)
        .context("lease grant printed no id")?
        .to_string();
    s.mask_id(&id, "<lease>")?;
    s.record(&args, &grant, str::to_string);
    s.run(&["put", "leased", "v", &format!("--lease={id}")], None)
        .await?;
    s.run(&["put", "leased2", "v", &format!("--lease={id}")], None)
        .await?;
    for w in ALL {
        // Lease ids in json and fields are masked as numbers.
        let args = ["lease", "grant", "300", "-w", w];
        let out = s.exec(&args, None).await?;
        if *w == "simple" {
            let other = out.stdout.split_whitespace().nth(1).context("no id")?;
            s.mask_id(other, "<other-lease>")?;
        }
        s.record(&args, &out, str::to_string);
    }
    s.run_formats_masked(&["lease", "timetolive", &id], ALL, remaining)
        .await?;
    s.run_formats_masked(&["lease", "timetolive", &id, "--keys"], ALL, remaining)
        .await?;
    s.run_formats(&["lease", "keep-alive", "--once", &id], ALL)
        .await?;
    s.run(&["lease", "revoke", &id, "-w", "json"], None).await?;
    s.run_formats_masked(&["lease", "timetolive", &id], ALL, remaining)
        .await?;
    s.run(&["get", "leased", "--prefix", "--count-only"], None)
        .await?;
    s.run(&["lease", "revoke", &id], None).await?;
    Ok(())
}

/// import and export (summaries and NDJSON), snapshot save and status.
/// `snapshot status` reads etcd's bbolt files only, so its formats are
/// shown on a snapshot of a real etcd member.
async fn bulk_and_snapshot_sequence(s: &mut Session<'_>) -> Result<()> {
    let timing = |text: &str| mask_number_after(text, " (");
    let ndjson: String = (0..300)
        .map(|i| format!("{{\"key\":\"imp/{i:03}\",\"value\":\"v{i}\"}}\n"))
        .collect();
    s.run_masked(&["import", "-"], Some(&ndjson), timing)
        .await?;
    s.run_masked(&["import", "-", "--skip-existing"], Some(&ndjson), timing)
        .await?;
    s.run_masked(
        &["import", "-"],
        Some("{\"obj/a\": \"1\", \"obj/b\": \"2\"}"),
        timing,
    )
    .await?;
    s.run(
        &["import", "-"],
        Some("{\"key\":\"bad/1\",\"value\":\"x\"}\n{\"key\":\"bad/2\",\"value\":}\n"),
    )
    .await?;
    s.run(&["export", "--prefix", "obj/"], None).await?;
    s.run(
        &["get", "imp/", "--prefix", "--count-only", "-w", "json"],
        None,
    )
    .await?;
    s.run(&["get", "bad/", "--prefix", "--count-only"], None)
        .await?;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("snap.db").to_string_lossy().to_string();
    s.mask(&path, "<snapshot-file>");
    s.run(&["snapshot", "save", &path], None).await?;
    let etcd = TestCluster::start(Flavor::Etcd, 1).await?;
    for i in 0..5 {
        etcd.etcdctl_ok(&["put", &format!("k{i}"), "v"]).await?;
    }
    let etcd_path = dir.path().join("etcd.db").to_string_lossy().to_string();
    s.mask(&etcd_path, "<etcd-snapshot-file>");
    let mut on_etcd = Session::new(etcd.endpoints(), s.masker);
    on_etcd.extra = s.extra.clone();
    on_etcd.run(&["snapshot", "save", &etcd_path], None).await?;
    // hash and total size vary with the file's layout; revision and key
    // count do not.
    let sizes = |text: &str| {
        let mut t = text.to_string();
        for marker in ["\"hash\":", "\"Hash\" : ", "\"Size\" : "] {
            t = mask_number_after(&t, marker);
        }
        // Rows (simple and table), not the table's header.
        let row =
            |line: &str| !line.starts_with("HASH") && (line.contains(", ") || line.contains(" | "));
        mask_columns(&t, row, &[0, 3])
    };
    on_etcd
        .run_formats_masked(&["snapshot", "status", &etcd_path], WITH_TABLE, sizes)
        .await?;
    s.transcript.push_str(&on_etcd.take());
    Ok(())
}

/// Masks the cells at `columns` of one (collapsed) table row `| a | b | |`.
fn mask_table_row(row: &str, columns: &[usize]) -> String {
    let inner = row.trim_start_matches('|').trim_end_matches('|');
    let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
    let masked: Vec<String> = mask_cells(&cells, columns)
        .into_iter()
        .map(|c| {
            if c.is_empty() {
                " ".to_string()
            } else {
                format!(" {c} ")
            }
        })
        .collect();
    format!("|{}|", masked.join("|"))
}

fn mask_cells(cells: &[&str], columns: &[usize]) -> Vec<String> {
    cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if columns.contains(&i) && !c.is_empty() {
                "*".to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// endpoint status, health and hashkv, with and without --cluster.
async fn endpoint_sequence(s: &mut Session<'_>) -> Result<()> {
    // DB size, raft term, raft index, raft applied index.
    let endpoint_row = |line: &str| line.starts_with("<client-");
    let status = |text: &str| mask_columns(text, endpoint_row, &[3, 6, 7, 8]);
    let hash = |text: &str| mask_columns(text, endpoint_row, &[1]);
    for cluster in [false, true] {
        let flag = if cluster {
            "--cluster"
        } else {
            "--cluster=false"
        };
        s.run_formats_masked(&["endpoint", "status", flag], WITH_TABLE, status)
            .await?;
        s.run_formats(&["endpoint", "health", flag], WITH_TABLE)
            .await?;
        s.run_formats_masked(&["endpoint", "hashkv", flag], WITH_TABLE, hash)
            .await?;
    }
    Ok(())
}

/// alarm list, version, defrag and move-leader. (`check perf` is left
/// out: its verdict depends on the machine's load.)
async fn maintenance_sequence(s: &mut Session<'_>, ids: &[u64]) -> Result<()> {
    s.run_formats(&["alarm", "list"], WITH_TABLE).await?;
    s.run(&["alarm", "disarm"], None).await?;
    s.run(&["version"], None).await?;
    s.run(&["defrag"], None).await?;
    s.run(&["defrag", "--cluster"], None).await?;
    s.run(&["move-leader", &format!("{:x}", ids[1])], None)
        .await?;
    s.run(&["move-leader", &format!("{:x}", ids[0])], None)
        .await?;
    s.run(&["move-leader", "1"], None).await?;
    Ok(())
}

/// member list, add (learner), update, promote and remove.
async fn member_sequence(s: &mut Session<'_>) -> Result<()> {
    s.run_formats(&["member", "list"], WITH_TABLE).await?;
    let args = [
        "member",
        "add",
        "learner",
        "--learner",
        "--peer-urls=http://learner.invalid:2380",
    ];
    let added = s.exec(&args, None).await?;
    let id = added
        .stdout
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("member add printed no id: {added:?}"))?
        .to_string();
    s.mask_id(&id, "<learner-id>")?;
    s.record(&args, &added, sort_initial_cluster);
    s.run_formats_masked(&["member", "list"], WITH_TABLE, sort_members)
        .await?;
    s.run(
        &[
            "member",
            "update",
            &id,
            "--peer-urls=http://learner.invalid:2381",
        ],
        None,
    )
    .await?;
    s.run(&["member", "promote", &id], None).await?;
    s.run(&["member", "remove", &id], None).await?;
    s.run(&["member", "remove", &id], None).await?;
    s.run(&["member", "list", "-w", "json"], None).await?;
    Ok(())
}

/// Users, roles and permissions in every format their commands print
/// (`table` is refused, as etcdctl refuses it), then the same with auth
/// enabled, as root.
async fn auth_output_formats(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let (masker, _) = Masker::for_cluster(&cluster).await?;
    let mut s = Session::new(cluster.endpoints(), &masker);
    for w in WITH_TABLE {
        let (role, user) = (format!("role-{w}"), format!("user-{w}"));
        let with_password = format!("{user}:pw");
        let steps: &[&[&str]] = &[
            &["role", "add", &role],
            &["user", "add", &with_password],
            &["user", "grant-role", &user, &role],
            &["role", "grant-permission", &role, "readwrite", "app/config"],
            &[
                "role",
                "grant-permission",
                &role,
                "read",
                "--prefix",
                "app/",
            ],
            &[
                "role",
                "grant-permission",
                &role,
                "write",
                "logs/a",
                "logs/z",
            ],
            &[
                "role",
                "grant-permission",
                &role,
                "read",
                "--from-key",
                "zz",
            ],
        ];
        for args in steps {
            let mut all = args.to_vec();
            all.extend(["-w", w]);
            s.run(&all, None).await?;
        }
    }
    s.run_formats(&["role", "get", "role-json"], WITH_TABLE)
        .await?;
    s.run_formats(&["user", "get", "user-json"], WITH_TABLE)
        .await?;
    s.run_formats(&["user", "get", "user-json", "--detail"], WITH_TABLE)
        .await?;
    s.run_formats(&["user", "list"], WITH_TABLE).await?;
    s.run_formats(&["role", "list"], WITH_TABLE).await?;
    for w in WITH_TABLE {
        let (role, user) = (format!("role-{w}"), format!("user-{w}"));
        let steps: &[&[&str]] = &[
            &["role", "revoke-permission", &role, "app/config"],
            &["role", "revoke-permission", &role, "--prefix", "app/"],
            &["role", "revoke-permission", &role, "logs/a", "logs/z"],
            &["role", "revoke-permission", &role, "--from-key", "zz"],
            &["user", "revoke-role", &user, &role],
            &["user", "delete", &user],
            &["role", "delete", &role],
        ];
        for args in steps {
            let mut all = args.to_vec();
            all.extend(["-w", w]);
            s.run(&all, None).await?;
        }
    }
    s.run(&["user", "add", "root:rootpw"], None).await?;
    s.run(&["auth", "enable", "-w", "json"], None).await?;
    s.run(&["user", "list"], None).await?;
    s.run(
        &["--user=root:rootpw", "user", "get", "root", "--detail"],
        None,
    )
    .await?;
    s.run(&["--user=root:wrong", "user", "list"], None).await?;
    s.run(&["--user=root:rootpw", "auth", "disable"], None)
        .await?;
    insta::assert_snapshot!("auth", s.take());
    Ok(())
}

//! `snapshot save|status|restore`.
//!
//! `save` streams Maintenance.Snapshot from one endpoint into `<file>.part`,
//! fsyncs it and renames it into place, as etcdctl does. `status` reads an
//! etcd (bbolt) snapshot file: etcd's CRC-32C hash over every bucket name,
//! key and value, the latest revision in the `key` bucket, the number of
//! keys and the file's size. `restore` verifies a cetera snapshot's
//! trailing SHA-256 while staging it, then builds a new member's data dir
//! from it (an etcd bbolt file cannot be restored into cetera). Save and
//! restore show a progress bar on a terminal.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use cetera::proto::etcdserverpb::SnapshotRequest;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_stream::StreamExt as _;

use crate::cli::Ctx;
use crate::client;
use crate::error::{CtlError, CtlResult, EXIT_INTERRUPTED};
use crate::printer::{DbStatus, out};

#[derive(Subcommand, Debug)]
pub(crate) enum SnapshotCommand {
    /// Stores an etcd node backend snapshot to a given file
    Save {
        /// <filename>
        args: Vec<String>,
    },
    /// Restores a snapshot into a new member's data directory (the member
    /// then bootstraps a new cluster with its own --initial-cluster)
    Restore {
        /// <filename>
        args: Vec<String>,
        #[arg(long = "data-dir", default_value = "")]
        data_dir: String,
        #[arg(long = "wal-dir", default_value = "")]
        wal_dir: String,
        #[arg(
            long = "initial-cluster",
            default_value = "default=http://localhost:2380"
        )]
        initial_cluster: String,
        #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
        initial_cluster_token: String,
        #[arg(
            long = "initial-advertise-peer-urls",
            default_value = "http://localhost:2380"
        )]
        initial_advertise_peer_urls: String,
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long = "skip-hash-check", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = crate::cli::parse_go_bool, action = clap::ArgAction::Set)]
        skip_hash_check: bool,
    },
    /// Gets backend snapshot status of a given file
    Status {
        /// <filename>
        args: Vec<String>,
    },
}

pub(crate) async fn run(ctx: &Ctx, cmd: SnapshotCommand) -> CtlResult<()> {
    match cmd {
        SnapshotCommand::Save { args } => {
            if args.len() != 1 {
                return Err(CtlError::bad_args("snapshot save expects one argument"));
            }
            save(ctx, &args[0])
                .await
                .map_err(|e| e.with_code(EXIT_INTERRUPTED))?;
            out(format!("Snapshot saved at {}\n", args[0]));
            Ok(())
        }
        SnapshotCommand::Status { args } => {
            if args.len() != 1 {
                return Err(CtlError::bad_args(
                    "snapshot status requires exactly one argument",
                ));
            }
            let printer = ctx.printer()?;
            let bytes = std::fs::read(&args[0])
                .map_err(|e| CtlError::error(crate::gofmt::io_error("stat", &args[0], &e)))?;
            let status = bolt_status(&bytes).map_err(CtlError::error)?;
            printer.db_status(&status)
        }
        SnapshotCommand::Restore {
            args,
            data_dir,
            name,
            skip_hash_check,
            ..
        } => {
            if args.len() != 1 {
                return Err(CtlError::bad_args(
                    "snapshot restore requires exactly one argument",
                ));
            }
            let data_dir = if data_dir.is_empty() {
                format!("{name}.cetera")
            } else {
                data_dir
            };
            restore(&args[0], &data_dir, skip_hash_check)
        }
    }
}

async fn save(ctx: &Ctx, path: &str) -> CtlResult<()> {
    let cfg = ctx.config()?;
    if cfg.endpoints.len() != 1 {
        return Err(CtlError::error(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            cfg.endpoints.join(" ")
        )));
    }
    let with_timeout = cfg.command_timeout_set;
    let c = ctx.client()?;
    let part = format!("{path}.part");
    let result = async {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)
            .map_err(|e| CtlError::error(format!("could not open {part} ({e})")))?;
        let deadline = c.command_deadline();
        let fetch = async {
            let ch = c.channel(deadline).await?;
            let mut stream = client::maintenance(ch)
                .snapshot(c.request(SnapshotRequest {}))
                .await
                .map_err(CtlError::from)?
                .into_inner();
            let bar = byte_bar(0, "receiving");
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(CtlError::from)?;
                file.write_all(&chunk.blob)?;
                bar.inc(chunk.blob.len() as u64);
                // Each response says how much is still to come.
                bar.set_length(bar.position() + chunk.remaining_bytes);
            }
            file.sync_all()?;
            bar.finish_and_clear();
            Ok::<(), CtlError>(())
        };
        if with_timeout {
            tokio::time::timeout_at(deadline, fetch)
                .await
                .map_err(|_| CtlError::error(crate::error::DEADLINE_EXCEEDED))??;
        } else {
            fetch.await?;
        }
        std::fs::rename(&part, path)
            .map_err(|e| CtlError::error(format!("could not rename {part} to {path} ({e})")))
    }
    .await;
    let _ = std::fs::remove_file(&part);
    result
}

/// One key and value of a bucket.
type Entry<'a> = (&'a [u8], &'a [u8]);

/// A read-only view of a bbolt database file, enough to walk its buckets.
struct Bolt<'a> {
    data: &'a [u8],
    page_size: usize,
}

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const BUCKET_LEAF_FLAG: u32 = 0x01;
const PAGE_HEADER: usize = 16;

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| "snapshot file is truncated".to_string())
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| "snapshot file is truncated".to_string())
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| "snapshot file is truncated".to_string())
}

fn slice(b: &[u8], at: usize, len: usize) -> Result<&[u8], String> {
    b.get(at..at.checked_add(len).ok_or("bad length")?)
        .ok_or_else(|| "snapshot file is truncated".to_string())
}

impl<'a> Bolt<'a> {
    /// The bytes of page `id` (the page header and everything after it).
    fn page(&self, id: u64) -> Result<&'a [u8], String> {
        let at = (id as usize)
            .checked_mul(self.page_size)
            .ok_or("bad page id")?;
        self.data
            .get(at..)
            .ok_or_else(|| format!("page {id} is outside the file"))
    }

    /// Calls `f(key, value, is_bucket)` for every entry under the B+tree
    /// rooted at `page` (a page id) or in `inline` (an inline bucket page),
    /// in key order.
    fn walk(
        &self,
        root: u64,
        inline: Option<&'a [u8]>,
        depth: usize,
        f: &mut dyn FnMut(&'a [u8], &'a [u8], bool) -> Result<(), String>,
    ) -> Result<(), String> {
        if depth > 64 {
            return Err("snapshot file has a cycle in its pages".into());
        }
        let page = match inline {
            Some(p) => p,
            None => self.page(root)?,
        };
        let flags = u16_at(page, 8)?;
        let count = u16_at(page, 10)? as usize;
        for i in 0..count {
            let elem = PAGE_HEADER + i * 16;
            if flags & BRANCH_PAGE != 0 {
                let child = u64_at(page, elem + 8)?;
                self.walk(child, None, depth + 1, f)?;
            } else if flags & LEAF_PAGE != 0 {
                let eflags = u32_at(page, elem)?;
                let pos = u32_at(page, elem + 4)? as usize;
                let ksize = u32_at(page, elem + 8)? as usize;
                let vsize = u32_at(page, elem + 12)? as usize;
                let key = slice(page, elem + pos, ksize)?;
                let value = slice(page, elem + pos + ksize, vsize)?;
                f(key, value, eflags & BUCKET_LEAF_FLAG != 0)?;
            } else {
                return Err(format!("unexpected page flags {flags:#x}"));
            }
        }
        Ok(())
    }

    /// Every entry of the bucket whose header is `value` (root page id and
    /// sequence, followed by the inline page when the root is 0).
    fn bucket_entries(&self, value: &'a [u8]) -> Result<Vec<Entry<'a>>, String> {
        let root = u64_at(value, 0)?;
        let inline = if root == 0 { Some(&value[16..]) } else { None };
        let mut entries = Vec::new();
        self.walk(root, inline, 0, &mut |k, v, is_bucket| {
            entries.push((k, if is_bucket { &[][..] } else { v }));
            Ok(())
        })?;
        Ok(entries)
    }
}

/// etcd's `snapshot.Status` of a bbolt file.
fn bolt_status(data: &[u8]) -> Result<DbStatus, String> {
    const MAGIC: u32 = 0xED0C_DAED;
    // Both meta pages; the valid one with the highest txid wins.
    let mut best: Option<(u64, usize, u64, u64)> = None; // (txid, page size, root, high water)
    let first_size = u32_at(data, PAGE_HEADER + 8)? as usize;
    for page in 0..2usize {
        let base = page * first_size.max(1024);
        let meta = base + PAGE_HEADER;
        if u32_at(data, meta).ok() != Some(MAGIC) {
            continue;
        }
        let page_size = u32_at(data, meta + 8)? as usize;
        let root = u64_at(data, meta + 16)?;
        let high_water = u64_at(data, meta + 40)?;
        let txid = u64_at(data, meta + 48)?;
        let checksum = u64_at(data, meta + 56)?;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in slice(data, meta, 56)? {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        if hash != checksum {
            continue;
        }
        if best.is_none_or(|(t, ..)| txid > t) {
            best = Some((txid, page_size, root, high_water));
        }
    }
    let Some((_, page_size, root, high_water)) = best else {
        return Err("invalid database".into());
    };
    if page_size < 512 {
        return Err("invalid database".into());
    }
    let bolt = Bolt { data, page_size };
    let mut top: Vec<(&[u8], &[u8])> = Vec::new();
    bolt.walk(root, None, 0, &mut |k, v, is_bucket| {
        if !is_bucket {
            return Err(format!(
                "cannot get hash of bucket {}",
                String::from_utf8_lossy(k)
            ));
        }
        top.push((k, v));
        Ok(())
    })?;
    let mut hasher = crc32c::Hasher::new();
    let mut status = DbStatus {
        total_size: (high_water as i64).saturating_mul(page_size as i64),
        ..Default::default()
    };
    for (name, header) in top {
        hasher.update(name);
        let is_key_bucket = name == b"key";
        for (k, v) in bolt.bucket_entries(header)? {
            hasher.update(k);
            hasher.update(v);
            if is_key_bucket && k.len() >= 8 {
                // etcd's revision keys: big-endian main revision first.
                let mut main = [0u8; 8];
                main.copy_from_slice(&k[..8]);
                status.revision = u64::from_be_bytes(main) as i64;
            }
            status.total_key += 1;
        }
    }
    status.hash = hasher.finish();
    Ok(status)
}

/// CRC-32C (Castagnoli), as Go's `crc32.MakeTable(crc32.Castagnoli)`.
mod crc32c {
    const POLY: u32 = 0x82F6_3B78;

    fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *slot = c;
        }
        t
    }

    pub(super) struct Hasher {
        table: [u32; 256],
        crc: u32,
    }

    impl Hasher {
        pub(super) fn new() -> Self {
            Hasher {
                table: table(),
                crc: 0,
            }
        }

        pub(super) fn update(&mut self, bytes: &[u8]) {
            let mut c = !self.crc;
            for b in bytes {
                c = self.table[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8);
            }
            self.crc = !c;
        }

        pub(super) fn finish(&self) -> u32 {
            self.crc
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn matches_the_castagnoli_check_value() {
            let mut h = super::Hasher::new();
            h.update(b"1234");
            h.update(b"56789");
            assert_eq!(h.finish(), 0xE306_9283);
        }
    }
}

/// A progress bar over `total` bytes (0: not known yet) on stderr, drawn
/// only when stderr is a terminal.
fn byte_bar(total: u64, verb: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} {{bar:40}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Restores a snapshot file saved by `snapshot save` (cetera's or
/// etcdctl's, which ends in the SHA-256 of the database) into `data_dir`.
fn restore(path: &str, data_dir: &str, skip_hash_check: bool) -> CtlResult<()> {
    let open_error = |e: std::io::Error| CtlError::error(crate::gofmt::io_error("open", path, &e));
    let size = std::fs::metadata(path).map_err(open_error)?.len();
    // etcd's rule: a trailing hash makes the size 32 more than a multiple of 512.
    let has_hash = size % 512 == 32;
    if !has_hash && !skip_hash_check {
        return Err(CtlError::error(
            "snapshot missing hash but --skip-hash-check=false",
        ));
    }
    let database_len = if has_hash { size - 32 } else { size };
    let staged = std::path::Path::new(data_dir).with_extension("restore.partial");
    let staging = stage(path, &staged, database_len, has_hash && !skip_hash_check);
    let restored = staging.and_then(|()| {
        let checking = ProgressBar::new_spinner().with_message("checking the database");
        checking.enable_steady_tick(std::time::Duration::from_millis(100));
        let restored = cetera::raft::restore_backup(&staged, std::path::Path::new(data_dir))
            .map_err(|e| CtlError::error(format!("restoring {path}: {e}")));
        checking.finish_and_clear();
        restored
    });
    let _ = std::fs::remove_file(&staged);
    restored?;
    println!(
        "restored snapshot {path} into {data_dir}; start the member with its --initial-cluster to bootstrap a new cluster"
    );
    Ok(())
}

/// Copies the first `database_len` bytes of `path` to `staged`, checking
/// them against the file's trailing SHA-256 when `verify` is set.
fn stage(path: &str, staged: &std::path::Path, database_len: u64, verify: bool) -> CtlResult<()> {
    use sha2::{Digest, Sha256};
    use std::io::Read as _;
    let io =
        |op: &str, at: &str, e: std::io::Error| CtlError::error(crate::gofmt::io_error(op, at, &e));
    let staged_name = staged.to_string_lossy().to_string();
    let mut input = std::fs::File::open(path).map_err(|e| io("open", path, e))?;
    let mut output = std::fs::File::create(staged).map_err(|e| io("open", &staged_name, e))?;
    let mut hasher = Sha256::new();
    let bar = byte_bar(database_len, "restoring");
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = database_len;
    while left > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = input
            .read(&mut buffer[..want])
            .map_err(|e| io("read", path, e))?;
        if read == 0 {
            return Err(CtlError::error(format!("{path}: unexpected end of file")));
        }
        hasher.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .map_err(|e| io("write", &staged_name, e))?;
        left -= read as u64;
        bar.inc(read as u64);
    }
    bar.finish_and_clear();
    if verify {
        let mut expected = [0u8; 32];
        input
            .read_exact(&mut expected)
            .map_err(|e| io("read", path, e))?;
        if hasher.finalize().as_slice() != expected {
            return Err(CtlError::error(
                "expected sha256 [...], got [...]: snapshot file is corrupt",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(bolt_status(b"").is_err());
        assert!(bolt_status(&[0u8; 10_000]).is_err());
        let mut bad = vec![0u8; 8192];
        bad[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
        bad[24..28].copy_from_slice(&4096u32.to_le_bytes());
        assert!(bolt_status(&bad).is_err());
    }
}

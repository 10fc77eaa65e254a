//! Cluster and maintenance requests answered from this member's state:
//! the member list, consistency hashes and defragmentation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{Node, ServerError};
use crate::mvcc::{KvRead, MvccError};
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashResponse, Member, MemberListResponse, SnapshotResponse,
};
use crate::raft::{Command, MemberAttributes, MemberId};
use crate::storage::Meta;

impl Node {
    /// `Cluster.MemberList`: Raft's membership, with the names and client
    /// URLs members published once they started (empty until then).
    pub async fn member_list(&self) -> Result<MemberListResponse, ServerError> {
        let attributes: BTreeMap<MemberId, MemberAttributes> = self
            .db
            .read(|tx| Ok(Meta(tx).value(Meta::MEMBER_ATTRIBUTES)?.unwrap_or_default()))
            .await?;
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let learners: BTreeSet<MemberId> = membership.learner_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let published = attributes.get(id);
                Member {
                    id: *id,
                    name: published.map_or_else(|| node.name.clone(), |a| a.name.clone()),
                    peer_ur_ls: node.peer_urls.clone(),
                    client_ur_ls: published.map(|a| a.client_urls.clone()).unwrap_or_default(),
                    is_learner: learners.contains(id),
                }
            })
            .collect();
        Ok(MemberListResponse {
            // etcd answers the member list locally; its header has no revision.
            header: Some(self.header(0)),
            members,
        })
    }

    /// `Maintenance.HashKV`: a hash of every version up to `revision`
    /// (0: the current one); equal on every member at the same revision.
    pub async fn hash_kv(&self, req: HashKvRequest) -> Result<HashKvResponse, ServerError> {
        let (current, compacted, hash) = self
            .db
            .read_kv(move |kv| {
                let revisions = kv.revisions()?;
                let upto = if req.revision <= 0 {
                    revisions.current
                } else {
                    req.revision
                };
                if upto > revisions.current {
                    return Ok(Err(MvccError::FutureRevision));
                }
                if upto < revisions.compacted {
                    return Ok(Err(MvccError::Compacted));
                }
                let hash = kv.hash_versions(upto)?;
                Ok(Ok((revisions.current, revisions.compacted, hash)))
            })
            .await??;
        Ok(HashKvResponse {
            header: Some(self.header(current)),
            hash,
            compact_revision: compacted,
        })
    }

    /// `Maintenance.Hash`: a hash of the whole keyspace state.
    pub async fn hash(&self) -> Result<HashResponse, ServerError> {
        let (current, hash) = self
            .db
            .read_kv(|kv| {
                let current = kv.revisions()?.current;
                Ok((current, kv.hash_versions(current)?))
            })
            .await?;
        Ok(HashResponse {
            header: Some(self.header(current)),
            hash,
        })
    }

    /// The active alarms.
    pub(crate) async fn active_alarms(&self) -> Result<Vec<AlarmMember>, ServerError> {
        let active = self.db.read(crate::raft::alarms).await?;
        Ok(active
            .into_iter()
            .map(|(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect())
    }

    /// `Maintenance.Alarm`: list, raise or clear alarms (through Raft, so
    /// every member agrees).
    pub async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse, ServerError> {
        let action = req.action();
        if action == AlarmAction::Get {
            self.linearizable_barrier().await?;
            // etcd 3.4 answers alarm calls without a header. An alarm type
            // other than NONE lists only the alarms of that type.
            let mut alarms = self.active_alarms().await?;
            if req.alarm != AlarmType::None as i32 {
                alarms.retain(|a| a.alarm == req.alarm);
            }
            return Ok(AlarmResponse {
                header: None,
                alarms,
            });
        }
        let before = self.active_alarms().await?;
        self.propose(Command::Alarm {
            member_id: req.member_id,
            alarm: req.alarm,
            activate: action == AlarmAction::Activate,
        })
        .await?;
        let touched = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        // etcd answers with the alarms the request changed.
        let changed = match action {
            AlarmAction::Deactivate if !before.contains(&touched) => Vec::new(),
            _ => vec![touched],
        };
        Ok(AlarmResponse {
            header: None,
            alarms: changed,
        })
    }

    /// Refuses a command that would grow the database past the quota, and
    /// raises the space alarm (once) so every member refuses them too.
    pub(crate) async fn check_quota(&self) -> Result<(), ServerError> {
        if self.db.recent_size_on_disk() <= self.config.quota_backend_bytes {
            return Ok(());
        }
        let nospace = AlarmMember {
            member_id: self.identity.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if !self.active_alarms().await?.contains(&nospace) {
            tracing::warn!(
                quota = self.config.quota_backend_bytes,
                size = self.db.size_on_disk(),
                "database space exceeded; raising the NOSPACE alarm"
            );
            self.propose(Command::Alarm {
                member_id: nospace.member_id,
                alarm: nospace.alarm,
                activate: true,
            })
            .await?;
        }
        Err(MvccError::NoSpace.into())
    }

    /// `Maintenance.Snapshot`: a consistent copy of the keyspace, streamed
    /// in 32 KiB pieces and closed by its SHA-256 (as etcd does; `etcdctl
    /// snapshot save` checks it). The copy lives in the data dir only
    /// while it streams.
    pub async fn snapshot(&self) -> Result<SnapshotStream, ServerError> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self
            .config
            .data_dir
            .join("member")
            .join(format!("{BACKUP_PREFIX}{nanos}{BACKUP_SUFFIX}"));
        crate::raft::write_backup(&self.db, path.clone()).await?;
        let file = tokio::fs::File::open(&path).await.map_err(io_error)?;
        let size = file.metadata().await.map_err(io_error)?.len();
        let state = BackupReader {
            file: Some(file),
            path,
            remaining: size,
            hasher: Sha256::new(),
        };
        Ok(Box::pin(futures::stream::unfold(state, BackupReader::next)))
    }

    /// `Maintenance.Defragment`: rewrites this member's database compactly.
    pub async fn defragment(&self) -> Result<DefragmentResponse, ServerError> {
        self.db.vacuum().await?;
        // etcd 3.4 answers `{}`: no header.
        Ok(DefragmentResponse { header: None })
    }
}

/// The pieces of a `Maintenance.Snapshot` stream.
pub type SnapshotStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<SnapshotResponse, ServerError>> + Send>>;

/// How the copies a `Maintenance.Snapshot` streams are named in
/// `member/`.
const BACKUP_PREFIX: &str = "backup-";
const BACKUP_SUFFIX: &str = ".partial";

/// Removes snapshot copies a crash left in `member_dir` (a running stream
/// removes its own when it ends, however it ends).
pub(crate) fn remove_stale_backups(member_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(member_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(BACKUP_PREFIX) && name.ends_with(BACKUP_SUFFIX) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %name, "removed a snapshot copy left by a crash"),
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "cannot remove a stale snapshot copy")
                }
            }
        }
    }
}

/// Size of one snapshot piece, as etcd sends them.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

fn io_error(e: std::io::Error) -> ServerError {
    ServerError::Internal(format!("snapshot file: {e}"))
}

/// Reads the backup file piece by piece, then sends its hash; deletes the
/// file when done.
struct BackupReader {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    remaining: u64,
    hasher: Sha256,
}

/// A stream cut short (the client went away, the member stops) still
/// removes its copy.
impl Drop for BackupReader {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl BackupReader {
    async fn next(mut self) -> Option<(Result<SnapshotResponse, ServerError>, Self)> {
        let mut file = self.file.take()?;
        let mut chunk = vec![0u8; SNAPSHOT_CHUNK];
        let read = match file.read(&mut chunk).await {
            Ok(read) => read,
            Err(e) => {
                let _ = tokio::fs::remove_file(&self.path).await;
                return Some((Err(io_error(e)), self));
            }
        };
        if read == 0 {
            // The end: the hash of everything sent, then nothing more.
            let _ = tokio::fs::remove_file(&self.path).await;
            let digest = std::mem::take(&mut self.hasher).finalize().to_vec();
            let last = SnapshotResponse {
                header: None,
                remaining_bytes: 0,
                blob: digest,
            };
            return Some((Ok(last), self));
        }
        chunk.truncate(read);
        self.hasher.update(&chunk);
        self.remaining = self.remaining.saturating_sub(read as u64);
        // etcd 3.4's pieces carry no header.
        let piece = SnapshotResponse {
            header: None,
            remaining_bytes: self.remaining,
            blob: chunk,
        };
        self.file = Some(file);
        Some((Ok(piece), self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_snapshot_copies_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "backup-17.partial",
            "cetera.db",
            "backup-17",
            "incoming.partial",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_stale_backups(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["backup-17", "cetera.db", "incoming.partial"]);
    }

    #[tokio::test]
    async fn a_stream_cut_short_removes_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup-1.partial");
        std::fs::write(&path, vec![7u8; 3 * SNAPSHOT_CHUNK]).unwrap();
        let reader = BackupReader {
            file: Some(tokio::fs::File::open(&path).await.unwrap()),
            path: path.clone(),
            remaining: 3 * SNAPSHOT_CHUNK as u64,
            hasher: Sha256::new(),
        };
        let mut stream = Box::pin(futures::stream::unfold(reader, BackupReader::next));
        let first = futures::StreamExt::next(&mut stream)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.remaining_bytes, 2 * SNAPSHOT_CHUNK as u64);
        assert!(path.exists());
        drop(stream);
        assert!(!path.exists(), "the copy outlived its stream");
    }
}

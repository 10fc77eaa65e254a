//! The periodic consistency check (`--experimental-corrupt-check-time`):
//! the leader computes its HashKV at its current revision and asks every
//! other member for theirs at the same revision. A member whose hash
//! differs while its compaction revision is the same holds different data
//! for the same history: the leader raises a CORRUPT alarm naming it, which
//! freezes the keyspace on every member (writes fail with `etcdserver:
//! corrupt cluster`, reads go on) until an operator investigates and
//! disarms it, as with etcd.
//!
//! A member that has not applied up to the revision yet, or is
//! unreachable, is skipped until the next round; it never raises an alarm.

use serde::{Deserialize, Serialize};

use super::{Node, ServerError};
use crate::proto::etcdserverpb::{AlarmType, HashKvRequest};
use crate::raft::{Command, MemberId, PeerError, paths};

/// A member's HashKV at a revision, as the peer protocol carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerHash {
    pub(crate) hash: u32,
    pub(crate) compact_revision: i64,
}

impl Node {
    /// One round of the check; does nothing unless this member leads.
    pub(crate) async fn check_corruption(&self) -> Result<(), ServerError> {
        let me = self.identity.member_id;
        if self.leader() != Some(me) {
            return Ok(());
        }
        let mine = self.hash_kv(HashKvRequest { revision: 0 }).await?;
        let revision = mine.header.as_ref().map_or(0, |h| h.revision);
        let members: Vec<MemberId> = self
            .metrics()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != me)
            .collect();
        for member in members {
            let Some(theirs) = self.peer_hash(member, revision).await else {
                continue;
            };
            if theirs.compact_revision == mine.compact_revision && theirs.hash != mine.hash {
                tracing::error!(
                    member = %format!("{member:x}"),
                    revision,
                    leader_hash = mine.hash,
                    member_hash = theirs.hash,
                    "found data inconsistency with a member; raising the CORRUPT alarm"
                );
                self.propose(Command::Alarm {
                    member_id: member,
                    alarm: AlarmType::Corrupt as i32,
                    activate: true,
                })
                .await?;
            }
        }
        Ok(())
    }

    /// `member`'s hash at `revision`, if it could tell.
    async fn peer_hash(&self, member: MemberId, revision: i64) -> Option<PeerHash> {
        let url = self.peer_url_of(member)?;
        let answer: Result<Option<PeerHash>, PeerError> = self
            .peers
            .call(
                &url,
                paths::HASH_KV,
                &revision,
                self.config.request_timeout(),
            )
            .await;
        match answer {
            Ok(hash) => hash,
            Err(e) => {
                tracing::debug!(member = %format!("{member:x}"), error = %e, "no hash from member");
                None
            }
        }
    }

    /// Serves a leader's hash request: `None` when this member cannot hash
    /// at `revision` (not applied yet, or compacted past it).
    pub(crate) async fn hash_for_peer(&self, revision: i64) -> Option<PeerHash> {
        let answer = self.hash_kv(HashKvRequest { revision }).await.ok()?;
        Some(PeerHash {
            hash: answer.hash,
            compact_revision: answer.compact_revision,
        })
    }
}

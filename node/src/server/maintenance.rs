//! Cluster and maintenance requests answered from this member's state:
//! the member list, consistency hashes and defragmentation.

use std::collections::{BTreeMap, BTreeSet};

use super::{Node, ServerError};
use crate::mvcc::{KvRead, MvccError};
use crate::proto::etcdserverpb::{
    DefragmentResponse, HashKvRequest, HashKvResponse, HashResponse, Member, MemberListResponse,
};
use crate::raft::{MemberAttributes, MemberId};
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
            .read(move |tx| {
                let kv = crate::storage::SqliteKv::new(tx);
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
            .read(|tx| {
                let kv = crate::storage::SqliteKv::new(tx);
                let current = kv.revisions()?.current;
                Ok((current, kv.hash_versions(current)?))
            })
            .await?;
        Ok(HashResponse {
            header: Some(self.header(current)),
            hash,
        })
    }

    /// `Maintenance.Defragment`: rewrites this member's database compactly.
    pub async fn defragment(&self) -> Result<DefragmentResponse, ServerError> {
        self.db.vacuum().await?;
        Ok(DefragmentResponse {
            header: Some(self.header(self.hub.revision())),
        })
    }
}

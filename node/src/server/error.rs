//! What the node's request paths can fail with, before translation to gRPC
//! or HTTP at the edge.

use crate::mvcc::MvccError;
use crate::storage::StorageError;

/// A failed request. `Display` is etcd's message without the `etcdserver: `
/// prefix, which the edge adds where etcd does.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error("request is too large")]
    RequestTooLarge,
    #[error(transparent)]
    Membership(#[from] super::membership::MembershipError),
    #[error(transparent)]
    Leadership(#[from] super::leadership::LeadershipError),
    #[error(transparent)]
    Auth(#[from] super::auth::AuthError),
    /// An auth refusal etcd passes on without translating it (the admin
    /// maintenance calls): code Unknown, message `auth: ...`.
    #[error("auth: {0}")]
    AuthUnmapped(super::auth::AuthError),
    #[error("no leader")]
    NoLeader,
    #[error("request timed out")]
    Timeout,
    #[error("server stopped")]
    Stopped,
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("internal error: {0}")]
    Internal(String),
    /// The v2 keyspace refused the request (etcd's v2 error codes).
    #[error(transparent)]
    V2(#[from] crate::v2store::V2Error),
}

/// Why a leader refused work forwarded by a peer; travels over the peer
/// protocol.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub(crate) enum PeerRefusal {
    #[error("not the leader")]
    NotLeader,
    #[error("server stopped")]
    Stopped,
    #[error("request timed out")]
    Timeout,
}

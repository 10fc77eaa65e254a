//! The client side of peer traffic: Raft RPCs and node-to-node requests,
//! as postcard-encoded HTTP POSTs to the peer URL.
//!
//! One pooled HTTP/1.1 client serves every peer (keep-alive connections
//! are reused), over TLS for `https://` peer URLs (`connector`). Every
//! request names the cluster it belongs to, so a member of
//! another cluster is refused instead of corrupting this one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use openraft::EntryPayload;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use super::connector::PeerConnector;
use super::log_store::Durability;
use super::{Entry, MemberId, MemberNode, TypeConfig};
use crate::server::PeerStats;

/// The header that carries the sender's cluster id (hex).
pub const CLUSTER_ID_HEADER: &str = "x-cetera-cluster-id";
/// The header that carries the sender's member id (hex).
pub const MEMBER_ID_HEADER: &str = "x-cetera-member-id";

/// Peer request paths, shared with the peer server.
pub mod paths {
    pub const APPEND: &str = "raft/append";
    pub const VOTE: &str = "raft/vote";
    pub const SNAPSHOT: &str = "raft/snapshot";
    pub const PROPOSE: &str = "cetera/propose";
    pub const READ_INDEX: &str = "cetera/read-index";
    pub const IDENTITY: &str = "cetera/identity";
    pub const LEASE_CLOCK: &str = "cetera/lease-clock";
    pub const MEMBER_CHANGE: &str = "cetera/member-change";
    /// The leader asks a member to start an election now (leadership
    /// transfer).
    pub const CAMPAIGN: &str = "cetera/campaign";
    /// The leader's corruption check asks a member for its HashKV.
    pub const HASH_KV: &str = "cetera/hash-kv";
    /// Read-only and open to members of no cluster yet (joining members).
    pub const MEMBERS: &str = "cetera/members";
}

/// Why a peer request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("peer {url} unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("peer {url} timed out")]
    Timeout { url: String },
    #[error("peer {url} refused the request ({status}): {detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("peer {url} sent an undecodable answer: {detail}")]
    Decode { url: String, detail: String },
}

/// A pooled HTTP client for peer requests.
#[derive(Clone)]
pub struct PeerClient {
    http: Client<PeerConnector, Full<Bytes>>,
    cluster_id: u64,
    member_id: u64,
}

impl PeerClient {
    /// A client of no cluster yet (a joining member asking who it is);
    /// `tls` serves every `https://` peer URL.
    pub fn new(tls: TlsConnector) -> Self {
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(PeerConnector::new(tls));
        Self {
            http,
            cluster_id: 0,
            member_id: 0,
        }
    }

    /// The same connections, with requests naming the sending member.
    pub fn for_member(&self, cluster_id: u64, member_id: u64) -> Self {
        Self {
            http: self.http.clone(),
            cluster_id,
            member_id,
        }
    }

    /// POSTs `body` to `<base>/<path>` and decodes the answer.
    pub async fn call<Req, Resp>(
        &self,
        base: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let url = format!("{}/{path}", base.trim_end_matches('/'));
        let bytes = postcard::to_stdvec(body).map_err(|e| PeerError::Decode {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let request = http::Request::post(url.as_str())
            .header(CLUSTER_ID_HEADER, format!("{:x}", self.cluster_id))
            .header(MEMBER_ID_HEADER, format!("{:x}", self.member_id))
            // Explicit even when zero: the peer server requires a length.
            .header(http::header::CONTENT_LENGTH, bytes.len())
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| unreachable(&url, &e))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(&url, &e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(&url, &e))?
                .to_bytes();
            Ok::<_, PeerError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| PeerError::Timeout { url: url.clone() })??;
        if !status.is_success() {
            return Err(PeerError::Refused {
                url,
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        postcard::from_bytes(&body).map_err(|e| PeerError::Decode {
            url,
            detail: e.to_string(),
        })
    }
}

/// The error with its causes: the outer ones only say "client error
/// (Connect)", the cause says which (refused, or the certificate's fault).
fn unreachable(url: &str, e: &(dyn std::error::Error + 'static)) -> PeerError {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    PeerError::Unreachable {
        url: url.to_string(),
        detail,
    }
}

/// openraft's connection factory: one [`PeerConnection`] per target.
#[derive(Clone)]
pub struct PeerNetwork {
    client: PeerClient,
    stats: Arc<PeerStats>,
    durability: Durability,
}

impl PeerNetwork {
    /// `durability` is this member's log's: replication never runs ahead of
    /// it (see `log_store`).
    pub fn new(client: PeerClient, stats: Arc<PeerStats>, durability: Durability) -> Self {
        Self {
            client,
            stats,
            durability,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: MemberId, node: &MemberNode) -> PeerConnection {
        PeerConnection {
            client: self.client.clone(),
            stats: self.stats.clone(),
            durability: self.durability.clone(),
            target,
            url: node.peer_urls.first().cloned().unwrap_or_default(),
        }
    }
}

/// Raft RPCs to one member.
pub struct PeerConnection {
    client: PeerClient,
    stats: Arc<PeerStats>,
    durability: Durability,
    target: MemberId,
    url: String,
}

type RpcResult<T, E> = Result<T, RPCError<MemberId, MemberNode, E>>;

impl PeerConnection {
    /// Waits until this member's log is on disk up to `index`; a failed disk
    /// fails the RPC (and, through the state machine, stops the member).
    async fn wait_until_durable<E>(&self, index: u64) -> RpcResult<(), E>
    where
        E: std::error::Error,
    {
        self.durability
            .wait_for(index)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, E> = self
            .client
            .call(&self.url, path, req, option.hard_ttl())
            .await
            .map_err(|e| {
                if matches!(&e, PeerError::Refused { status: 410, .. }) {
                    self.stats.mark_removed();
                }
                RPCError::Unreachable(Unreachable::new(&e))
            })?;
        self.stats.record_contact(self.target);
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Bytes of entries in one AppendEntries at most. openraft bounds each
/// append RPC by the heartbeat interval, so a follower far behind must be
/// fed in pieces it can take and fsync in time (a single larger entry still
/// goes alone).
const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// `None` when `entries` fit in `limit` bytes (or are a single entry);
/// otherwise how many of them do (at least one).
fn entries_within(entries: &[Entry], limit: usize) -> Option<u64> {
    let mut total = 0;
    for (i, entry) in entries.iter().enumerate() {
        total += match &entry.payload {
            EntryPayload::Normal(command) => command.approx_size(),
            _ => 256,
        };
        if total > limit && entries.len() > 1 {
            return Some(i.max(1) as u64);
        }
    }
    None
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<MemberId>, RaftError<MemberId>> {
        if let Some(fits) = entries_within(&rpc.entries, MAX_APPEND_BYTES) {
            // openraft retries at once with at most `fits` entries.
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fits),
            ));
        }
        // The leader's own entries may not be on its disk yet (log_store):
        // never announce a commit index beyond them...
        let commit = rpc.leader_commit.map_or(0, |c| c.index);
        self.wait_until_durable(commit).await?;
        let sent_up_to = rpc.entries.last().map(|e| e.log_id.index);
        self.stats.count_sent_append();
        let started = std::time::Instant::now();
        let answer = self.rpc(paths::APPEND, &rpc, &option).await;
        self.stats
            .record_append(self.target, started.elapsed(), answer.is_ok());
        // ...and count a follower's copy towards the commit only once the
        // leader's is durable too.
        let matched = match &answer {
            Ok(AppendEntriesResponse::Success) => sent_up_to,
            Ok(AppendEntriesResponse::PartialSuccess(matching)) => matching.map(|m| m.index),
            _ => None,
        };
        if let Some(index) = matched {
            self.wait_until_durable(index).await?;
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<MemberId>, RaftError<MemberId, InstallSnapshotError>>
    {
        self.rpc(paths::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<MemberId>, RaftError<MemberId>> {
        self.rpc(paths::VOTE, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;
    use crate::raft::Command;

    fn put_of(bytes: usize) -> Entry {
        Entry {
            log_id: Default::default(),
            payload: EntryPayload::Normal(Command::Put(PutRequest {
                key: b"k".to_vec(),
                value: vec![0; bytes],
                ..Default::default()
            })),
        }
    }

    #[test]
    fn appends_are_cut_to_what_fits_but_never_to_nothing() {
        let small: Vec<Entry> = (0..10).map(|_| put_of(1000)).collect();
        assert_eq!(entries_within(&small, MAX_APPEND_BYTES), None);
        let big: Vec<Entry> = (0..5).map(|_| put_of(400_000)).collect();
        assert_eq!(entries_within(&big, MAX_APPEND_BYTES), Some(2));
        let huge = vec![put_of(3_000_000), put_of(10)];
        assert_eq!(entries_within(&huge, MAX_APPEND_BYTES), Some(1));
        assert_eq!(entries_within(&huge[..1], MAX_APPEND_BYTES), None);
    }
}

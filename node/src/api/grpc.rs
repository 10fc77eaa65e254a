//! etcd's gRPC services, each method a translation to one [`Node`] call.

use std::sync::Arc;

use futures::StreamExt;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use super::to_status;
use crate::proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use crate::proto::etcdserverpb::kv_server::{Kv, KvServer};
use crate::proto::etcdserverpb::lease_server::{Lease, LeaseServer};
use crate::proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use crate::proto::etcdserverpb::watch_server::{Watch, WatchServer};
use crate::proto::etcdserverpb::*;
use crate::server::{Node, ServerError};

/// The gRPC services served on the client URL.
pub(super) fn routes(node: Arc<Node>) -> Routes {
    let max_recv = node.config().grpc_max_recv_bytes();
    Routes::new(
        KvServer::new(KvApi(node.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        WatchServer::new(WatchApi(node.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        LeaseServer::new(LeaseApi(node.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(super::concurrency::lock_service(node.clone(), max_recv))
    .add_service(super::concurrency::election_service(node.clone(), max_recv))
    .add_service(
        ClusterServer::new(ClusterApi(node.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        MaintenanceServer::new(MaintenanceApi(node))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .prepare()
}

fn answer<T>(result: Result<T, ServerError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(to_status)
}

/// `etcdserverpb.KV`.
struct KvApi(Arc<Node>);

#[tonic::async_trait]
impl Kv for KvApi {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        answer(self.0.range(request.into_inner()).await)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        answer(self.0.put(request.into_inner()).await)
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        answer(self.0.delete_range(request.into_inner()).await)
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        answer(self.0.txn(request.into_inner()).await)
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        answer(self.0.compact(request.into_inner()).await)
    }
}

/// `etcdserverpb.Cluster`.
struct ClusterApi(Arc<Node>);

#[tonic::async_trait]
impl Cluster for ClusterApi {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        answer(self.0.member_add(request.into_inner()).await)
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        answer(self.0.member_remove(request.into_inner()).await)
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        answer(self.0.member_update(request.into_inner()).await)
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        answer(self.0.member_list().await)
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        answer(self.0.member_promote(request.into_inner()).await)
    }
}

/// A server-streaming response.
type ResponseStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `etcdserverpb.Watch`.
struct WatchApi(Arc<Node>);

#[tonic::async_trait]
impl Watch for WatchApi {
    type WatchStream = ResponseStream<WatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut inbound = request.into_inner();
        let (mut stream, messages) = self.0.watch_stream();
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                if let Err(e) = stream.handle(request).await {
                    tracing::warn!(error = %e, "watch request failed");
                    break;
                }
            }
            // A client that half-closes still receives events; the watches
            // end when it stops reading.
            stream.closed().await;
        });
        let node = self.0.clone();
        let max_bytes = node.config().max_request_bytes;
        let outbound =
            tokio_stream::wrappers::ReceiverStream::new(messages).flat_map(move |message| {
                let responses =
                    crate::watch::responses(message, |revision| node.header(revision), max_bytes);
                futures::stream::iter(responses.into_iter().map(Ok))
            });
        Ok(Response::new(Box::pin(outbound)))
    }
}

/// `etcdserverpb.Lease`.
struct LeaseApi(Arc<Node>);

#[tonic::async_trait]
impl Lease for LeaseApi {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        answer(self.0.lease_grant(request.into_inner()).await)
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        answer(self.0.lease_revoke(request.into_inner()).await)
    }

    type LeaseKeepAliveStream = ResponseStream<LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let node = self.0.clone();
        let inbound = request.into_inner();
        // One answer per request, in order.
        let outbound = inbound.then(move |request| {
            let node = node.clone();
            async move {
                let request = request?;
                node.lease_keep_alive(request.id).await.map_err(to_status)
            }
        });
        Ok(Response::new(Box::pin(outbound)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        answer(self.0.lease_time_to_live(request.into_inner()).await)
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        answer(self.0.lease_leases().await)
    }
}

/// `etcdserverpb.Maintenance`: `Status` today; the rest arrive with the
/// cluster-operations work and say so until then.
struct MaintenanceApi(Arc<Node>);

fn not_yet(method: &str) -> Status {
    Status::unimplemented(format!(
        "etcdserver: Maintenance.{method} is not supported by this cetera version yet"
    ))
}

type SnapshotStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl Maintenance for MaintenanceApi {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        answer(self.0.alarm(request.into_inner()).await)
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        answer(self.0.status().await)
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        answer(self.0.defragment().await)
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        answer(self.0.hash().await)
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        answer(self.0.hash_kv(request.into_inner()).await)
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let pieces = self.0.snapshot().await.map_err(to_status)?;
        Ok(Response::new(Box::pin(
            pieces.map(|piece| piece.map_err(to_status)),
        )))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(not_yet("MoveLeader"))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("Downgrade"))
    }
}

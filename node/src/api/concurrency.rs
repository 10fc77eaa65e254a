//! `v3lockpb.Lock` and `v3electionpb.Election`, each method a translation
//! to one [`crate::concurrency`] call.
//!
//! etcd serves these services through its own client library, so every
//! failure reaches the caller as gRPC code Unknown (2) with etcd's message:
//! `etcdserver: requested lease not found`, `election: no leader`, ...
//! (measured on etcd 3.4). That mapping lives here.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::grpc::{ResponseStream, until_stopped};
use super::to_status;
use crate::concurrency::{self, ConcurrencyError};
use crate::proto::v3electionpb::election_server::{Election, ElectionServer};
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::proto::v3lockpb::lock_server::{Lock, LockServer};
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::server::Node;

/// The `v3lockpb.Lock` service.
pub(super) fn lock_service(node: Arc<Node>, max_recv: usize) -> LockServer<LockApi> {
    LockServer::new(LockApi(node))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX)
}

/// The `v3electionpb.Election` service.
pub(super) fn election_service(node: Arc<Node>, max_recv: usize) -> ElectionServer<ElectionApi> {
    ElectionServer::new(ElectionApi(node))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX)
}

/// etcd's status for a failed lock or election request.
fn status(error: ConcurrencyError) -> Status {
    match error {
        ConcurrencyError::Server(e) => Status::unknown(to_status(e).message()),
        other => Status::unknown(other.to_string()),
    }
}

fn answer<T>(result: concurrency::Result<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(status)
}

/// `call`'s answer, or `Unavailable: etcdserver: server stopped` once the
/// member starts to stop: `Lock` and `Campaign` wait for other clients for
/// as long as they hold on, and must not hold a stopping member up. A wait
/// given up this way cleans up after itself as when its caller leaves.
async fn or_stopped<T>(
    node: &Node,
    call: impl std::future::Future<Output = Result<Response<T>, Status>>,
) -> Result<Response<T>, Status> {
    tokio::select! {
        biased;
        answer = call => answer,
        () = node.stopping() => Err(to_status(crate::server::ServerError::Stopped)),
    }
}

/// `v3lockpb.Lock`.
pub(super) struct LockApi(Arc<Node>);

#[tonic::async_trait]
impl Lock for LockApi {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let caller = super::grpc::caller(&self.0, &request).await?;
        let lock = concurrency::lock(&self.0, &caller, request.into_inner());
        or_stopped(&self.0, async { answer(lock.await) }).await
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let caller = super::grpc::caller(&self.0, &request).await?;
        answer(concurrency::unlock(&self.0, &caller, request.into_inner()).await)
    }
}

/// `v3electionpb.Election`.
pub(super) struct ElectionApi(Arc<Node>);

#[tonic::async_trait]
impl Election for ElectionApi {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let caller = super::grpc::caller(&self.0, &request).await?;
        let campaign = concurrency::campaign(&self.0, &caller, request.into_inner());
        or_stopped(&self.0, async { answer(campaign.await) }).await
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let caller = super::grpc::caller(&self.0, &request).await?;
        answer(concurrency::proclaim(&self.0, &caller, request.into_inner()).await)
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let caller = super::grpc::caller(&self.0, &request).await?;
        answer(concurrency::leader(&self.0, &caller, request.into_inner()).await)
    }

    type ObserveStream = ResponseStream<LeaderResponse>;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let caller = super::grpc::caller(&self.0, &request).await?;
        let updates = concurrency::observe(self.0.clone(), caller, request.into_inner());
        let stream = futures::StreamExt::map(
            tokio_stream::wrappers::ReceiverStream::new(updates),
            Ok::<_, Status>,
        );
        Ok(Response::new(until_stopped(self.0.stopping(), stream)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let caller = super::grpc::caller(&self.0, &request).await?;
        answer(concurrency::resign(&self.0, &caller, request.into_inner()).await)
    }
}

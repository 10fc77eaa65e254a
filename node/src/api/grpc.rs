//! etcd's gRPC services, each method a translation to one [`Node`] call.

use std::sync::Arc;

use futures::StreamExt;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use super::to_status;
use crate::auth::Caller;
use crate::proto::etcdserverpb::auth_server::{Auth, AuthServer};
use crate::proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use crate::proto::etcdserverpb::kv_server::{Kv, KvServer};
use crate::proto::etcdserverpb::lease_server::{Lease, LeaseServer};
use crate::proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::{Watch, WatchServer};
use crate::proto::etcdserverpb::*;
use crate::server::{Credentials, Node, ServerError};

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
        MaintenanceServer::new(MaintenanceApi(node.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        AuthServer::new(AuthApi(node))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .prepare()
}

fn answer<T>(result: Result<T, ServerError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(to_status)
}

/// The auth token a request carries: the `token` metadata, or the
/// `authorization` the gateway forwards its header as.
pub(super) fn token(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    metadata
        .get("token")
        .or_else(|| metadata.get("authorization"))
        .and_then(|value| value.to_str().ok())
}

/// Refuses a member change unless the caller may administer (etcd checks
/// these as it checks the Auth service's calls).
async fn admin<T>(node: &Node, request: &Request<T>) -> Result<(), Status> {
    let caller = caller(node, request).await?;
    node.check_admin(&caller).map_err(to_status)
}

/// Refuses hash, defragment and snapshot unless the caller may
/// administer (etcd's maintenance gate, with its own error wording).
async fn maintenance_admin<T>(node: &Node, request: &Request<T>) -> Result<(), Status> {
    let caller = caller(node, request).await?;
    node.check_maintenance_admin(&caller).map_err(to_status)
}

/// The common name of the client certificate a request's connection
/// presented, under `--client-cert-auth` (set by the connection's service).
#[derive(Debug, Clone)]
pub(super) struct CertCommonName(pub Arc<str>);

/// What a request says about who sends it: its token, else its client
/// certificate's common name.
fn credentials<T>(request: &Request<T>) -> Credentials {
    Credentials {
        token: token(request.metadata()).map(str::to_string),
        cert_name: request
            .extensions()
            .get::<CertCommonName>()
            .map(|name| name.0.clone()),
    }
}

/// Who a request comes from, by its token or its certificate.
pub(super) async fn caller<T>(node: &Node, request: &Request<T>) -> Result<Caller, Status> {
    node.caller(&credentials(request)).await.map_err(to_status)
}

/// `etcdserverpb.KV`.
struct KvApi(Arc<Node>);

#[tonic::async_trait]
impl Kv for KvApi {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.range(request.into_inner(), &caller).await)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.put(request.into_inner(), &caller).await)
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.delete_range(request.into_inner(), &caller).await)
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.txn(request.into_inner(), &caller).await)
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // Not checked against the auth store, but a bad token is refused.
        caller(&self.0, &request).await?;
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
        admin(&self.0, &request).await?;
        answer(self.0.member_add(request.into_inner()).await)
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        admin(&self.0, &request).await?;
        answer(self.0.member_remove(request.into_inner()).await)
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        admin(&self.0, &request).await?;
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
        admin(&self.0, &request).await?;
        answer(self.0.member_promote(request.into_inner()).await)
    }
}

/// A server-streaming response.
pub(super) type ResponseStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `responses` until `stopping` (the member's
/// [`Node::stopping`]) resolves, then `Unavailable:
/// etcdserver: server stopped` and the end. Clients (clientv3, etcdctl,
/// ceteractl) treat that as a lost connection and resume on another
/// member; a watcher resumes from the last revision it received, so
/// responses not sent here are not lost. Nothing is sent once stopping:
/// the stop wins over a response that is ready at the same moment.
pub(super) fn until_stopped<T, S>(
    stopping: impl Future<Output = ()> + Send + 'static,
    responses: S,
) -> ResponseStream<T>
where
    T: Send + 'static,
    S: futures::Stream<Item = Result<T, Status>> + Send + 'static,
{
    let stopping = Box::pin(stopping);
    let responses = Box::pin(responses);
    Box::pin(futures::stream::unfold(
        Some((responses, stopping)),
        |state| async move {
            let (mut responses, mut stopping) = state?;
            tokio::select! {
                biased;
                () = &mut stopping => Some((Err(to_status(ServerError::Stopped)), None)),
                next = responses.next() => {
                    next.map(|response| (response, Some((responses, stopping))))
                }
            }
        },
    ))
}

/// `etcdserverpb.Watch`.
struct WatchApi(Arc<Node>);

#[tonic::async_trait]
impl Watch for WatchApi {
    type WatchStream = ResponseStream<WatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let credentials = credentials(&request);
        let mut inbound = request.into_inner();
        let (mut stream, messages) = self.0.watch_stream();
        let node = self.0.clone();
        tokio::spawn(async move {
            loop {
                // Once the responses are gone (the client left, or the
                // member is stopping) the requests are not read on, so the
                // call ends and its connection can close.
                let request = tokio::select! {
                    () = stream.closed() => return,
                    request = inbound.message() => request,
                };
                let Ok(Some(request)) = request else { break };
                if let Some(RequestUnion::CreateRequest(create)) = &request.request_union
                    && let Err(refused) = node.check_watch(&credentials, create).await
                {
                    // etcd words the reason as Go prints a gRPC error.
                    let status = to_status(refused);
                    let reason = format!(
                        "rpc error: code = {:?} desc = {}",
                        status.code(),
                        status.message()
                    );
                    stream.refuse(reason).await;
                    continue;
                }
                stream.handle(request).await;
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
        Ok(Response::new(until_stopped(self.0.stopping(), outbound)))
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
        caller(&self.0, &request).await?;
        answer(self.0.lease_grant(request.into_inner()).await)
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.lease_revoke(request.into_inner(), &caller).await)
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
        Ok(Response::new(until_stopped(self.0.stopping(), outbound)))
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
        caller(&self.0, &request).await?;
        answer(self.0.alarm(request.into_inner()).await)
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        answer(self.0.status().await)
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        maintenance_admin(&self.0, &request).await?;
        answer(self.0.defragment().await)
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        maintenance_admin(&self.0, &request).await?;
        answer(self.0.hash().await)
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        maintenance_admin(&self.0, &request).await?;
        answer(self.0.hash_kv(request.into_inner()).await)
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        maintenance_admin(&self.0, &request).await?;
        let pieces = self.0.snapshot().await.map_err(to_status)?;
        // A stopping member ends the download at once (the client tries
        // another member) instead of holding its shutdown.
        Ok(Response::new(until_stopped(
            self.0.stopping(),
            pieces.map(|piece| piece.map_err(to_status)),
        )))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        answer(self.0.move_leader(request.into_inner()).await)
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("Downgrade"))
    }
}

/// `etcdserverpb.Auth`: see `server::auth`.
struct AuthApi(Arc<Node>);

#[tonic::async_trait]
impl Auth for AuthApi {
    async fn auth_status(
        &self,
        _: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        answer(self.0.auth_status().await)
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        answer(self.0.authenticate(request.into_inner()).await)
    }

    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_enable(&caller).await)
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_disable(&caller).await)
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_user_add(&caller, request.into_inner()).await)
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_user_get(&caller, request.into_inner()).await)
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_user_list(&caller).await)
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_user_delete(&caller, request.into_inner()).await)
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(
            self.0
                .auth_user_change_password(&caller, request.into_inner())
                .await,
        )
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(
            self.0
                .auth_user_grant_role(&caller, request.into_inner())
                .await,
        )
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(
            self.0
                .auth_user_revoke_role(&caller, request.into_inner())
                .await,
        )
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_role_add(&caller, request.into_inner()).await)
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_role_get(&caller, request.into_inner()).await)
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_role_list(&caller).await)
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(self.0.auth_role_delete(&caller, request.into_inner()).await)
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(
            self.0
                .auth_role_grant_permission(&caller, request.into_inner())
                .await,
        )
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let caller = caller(&self.0, &request).await?;
        answer(
            self.0
                .auth_role_revoke_permission(&caller, request.into_inner())
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::sync::oneshot;
    use tonic::{Code, Status};

    use super::until_stopped;

    fn stop_signal() -> (
        oneshot::Sender<()>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (stop, stopped) = oneshot::channel::<()>();
        (stop, async move {
            let _ = stopped.await;
        })
    }

    #[tokio::test]
    async fn responses_pass_until_the_stop_then_server_stopped_ends_the_stream() {
        let (stop, stopping) = stop_signal();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, Status>>(4);
        let mut stream = until_stopped(stopping, tokio_stream::wrappers::ReceiverStream::new(rx));
        tx.send(Ok(1)).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap(), 1);
        stop.send(()).unwrap();
        // A response ready at the same moment loses to the stop.
        tx.send(Ok(2)).await.unwrap();
        let status = stream.next().await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "etcdserver: server stopped");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_stream_that_ends_by_itself_ends_without_an_error() {
        let (_stop, stopping) = stop_signal();
        let responses = futures::stream::iter([Ok::<_, Status>(1), Err(Status::not_found("x"))]);
        let seen: Vec<_> = until_stopped(stopping, responses).collect().await;
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].as_ref().unwrap_err().code(), Code::NotFound);
    }
}

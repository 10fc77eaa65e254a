//! The client URL: etcd's gRPC services and its HTTP endpoints on one port.
//!
//! Requests with `content-type: application/grpc` go to the tonic
//! services, everything else to the warp routes (the v3 gateway, etcd's v2
//! API, health, version, metrics), over HTTP/1.1 or h2c alike, as etcd
//! does. On an `https://` client URL, TLS terminates here (set up by [`crate::tls`]) before
//! that split, so gRPC and HTTP see the same requests either way. This
//! layer only translates between the wire and
//! [`Node`](crate::server::Node): no request is interpreted here, and every
//! error is mapped to etcd's code and message in one place (`status`).

mod coalesce;
mod concurrency;
pub mod gateway;
mod go_mux;
mod grpc;
mod grpc_metrics;
mod h2_authority;
mod http;
mod status;
mod v2;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use status::to_status;

use crate::server::Node;

fn is_grpc(req: &::http::Request<Incoming>) -> bool {
    req.headers()
        .get(::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Serves one client listener until `stop` turns true, then lets open
/// connections finish. With `tls`, every connection is a TLS one.
pub async fn serve_client(
    listener: TcpListener,
    node: Arc<Node>,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let grpc = grpc::routes(node.clone());
    let http = warp::service(http::routes(node.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(None)
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .adaptive_window(true);
    let graceful = GracefulShutdown::new();
    // etcd's `--client-cert-auth`: a gRPC request without a token acts as
    // its certificate's common name.
    let cert_auth = node
        .config()
        .client_tls
        .as_ref()
        .is_some_and(|tls| tls.client_cert_auth);
    let stopped = crate::server::wait_for_stop(stop);
    tokio::pin!(stopped);
    while let Some((stream, peer)) =
        crate::tls::next_connection(&listener, &mut stopped, "client").await
    {
        let service = ClientService {
            grpc: grpc.clone(),
            http: http.clone(),
            counters: node.grpc_counters(),
        };
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        // The handshake runs in the connection's own task, so a slow or
        // silent client never holds up the accept loop.
        tokio::spawn(async move {
            let result = match tls {
                None => serve_connection(&builder, watcher, stream, service.serve(None)).await,
                Some(acceptor) => {
                    match crate::tls::handshake(&acceptor, stream).await {
                        Ok(stream) => {
                            let name = cert_auth
                                .then(|| crate::tls::client_common_name(&stream))
                                .flatten()
                                .map(|name| grpc::CertCommonName(name.into()));
                            serve_connection(&builder, watcher, stream, service.serve(name)).await
                        }
                        // A scanner or a client with the wrong CA is not
                        // the server's problem.
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

/// What answers a client connection's requests: gRPC by content type,
/// everything else over HTTP.
#[derive(Clone)]
struct ClientService<H> {
    grpc: tonic::service::Routes,
    http: H,
    counters: Arc<crate::server::GrpcCounters>,
}

impl<H, B> ClientService<H>
where
    H: tower::Service<
            ::http::Request<Incoming>,
            Response = ::http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    H::Future: Send,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// The service for one connection; `cert_name` (its client
    /// certificate's common name, under `--client-cert-auth`) goes with
    /// each gRPC request. The JSON gateway's calls never carry it, as in
    /// etcd.
    fn serve(
        self,
        cert_name: Option<grpc::CertCommonName>,
    ) -> impl hyper::service::Service<
        ::http::Request<Incoming>,
        Response = ::http::Response<tonic::body::Body>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Send
    + 'static {
        hyper::service::service_fn(move |mut req: ::http::Request<Incoming>| {
            let (grpc, http, counters) =
                (self.grpc.clone(), self.http.clone(), self.counters.clone());
            if let Some(name) = &cert_name {
                req.extensions_mut().insert(name.clone());
            }
            // Boxed: hyper moves each request's future into a task of its
            // own, and unboxed this state machine is kilobytes to copy.
            Box::pin(async move {
                let response = if is_grpc(&req) {
                    let method = grpc_metrics::method_of(req.uri().path());
                    if let Some(method) = &method {
                        counters.started(method);
                    }
                    let response = grpc.oneshot(req).await?.map(tonic::body::Body::new);
                    match method {
                        Some(method) => grpc_metrics::count(counters, method, response),
                        None => response,
                    }
                } else {
                    http.oneshot(req).await?.map(tonic::body::Body::new)
                };
                Ok::<_, Infallible>(response)
            })
        })
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one (plain or TLS) connection.
async fn serve_connection<S, Svc>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    stream: S,
    service: Svc,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<
            ::http::Request<Incoming>,
            Response = ::http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    let connection = builder
        .serve_connection_with_upgrades(
            TokioIo::new(h2_authority::AuthorityFix::new(
                coalesce::WriteCoalescer::new(stream),
            )),
            service,
        )
        .into_owned();
    watcher.watch(connection).await
}

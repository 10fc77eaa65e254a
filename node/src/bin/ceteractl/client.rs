//! The connection to the cluster, with etcdctl's timeouts and retries.
//!
//! Like etcd's Go client, connecting is part of the first request: a
//! request's deadline (`--command-timeout`) covers finding a reachable
//! endpoint (each attempt bounded by `--dial-timeout`) and the call itself.
//! Endpoints are tried in order; when one fails at the transport level the
//! next is used. Reads and other repeatable requests are also retried on
//! `Unavailable` answers until the deadline, as the Go client's retry
//! interceptor does. A request that runs out of time fails with
//! `context deadline exceeded`.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use cetera::proto::etcdserverpb::auth_client::AuthClient;
use cetera::proto::etcdserverpb::cluster_client::ClusterClient;
use cetera::proto::etcdserverpb::kv_client::KvClient;
use cetera::proto::etcdserverpb::lease_client::LeaseClient;
use cetera::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cetera::proto::etcdserverpb::watch_client::WatchClient;
use cetera::proto::etcdserverpb::{MemberListRequest, StatusRequest};
use tokio::time::{Instant, sleep, timeout_at};
use tonic::transport::{Channel, Endpoint};

use crate::error::{CtlError, CtlResult, DEADLINE_EXCEEDED, EXIT_BAD_CONNECTION, status_message};
use cetera::client_auth::{AuthSession, Credentials, must_reauthenticate};
use cetera::client_tls::{ClientTls, TlsFlags, Transport};

/// Largest message either side may send (etcd's client allows any size).
const MAX_MESSAGE: usize = i32::MAX as usize;

/// Connection settings from the global flags.
#[derive(Clone, Debug)]
pub(crate) struct ClientConfig {
    pub(crate) endpoints: Vec<String>,
    pub(crate) dial_timeout: Duration,
    pub(crate) command_timeout: Duration,
    /// Whether `--command-timeout` was given (snapshot save has no
    /// deadline otherwise).
    pub(crate) command_timeout_set: bool,
    pub(crate) keepalive_time: Duration,
    pub(crate) keepalive_timeout: Duration,
    /// `--user` / `--password`.
    pub(crate) auth: Option<Credentials>,
    /// `--cacert`, `--cert`, `--key` and the insecure-* flags.
    pub(crate) tls: TlsFlags,
}

/// A connected (or lazily connecting) client.
pub(crate) struct Client {
    cfg: ClientConfig,
    /// Set when any endpoint may need TLS.
    tls: Option<ClientTls>,
    /// The auth token every request carries (see `cetera::client_auth`).
    auth: AuthSession,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Index of the endpoint in use and its channel.
    channel: Option<(usize, Channel)>,
    /// Where to start looking for a reachable endpoint.
    next: usize,
}

/// `host:port` or a URL, as the `http://` URL tonic is given (TLS, when
/// the endpoint uses it, is added by our own connector underneath).
pub(crate) fn endpoint_url(endpoint: &str) -> CtlResult<String> {
    if let Some(rest) = endpoint.strip_prefix("https://") {
        Ok(format!("http://{rest}"))
    } else if endpoint.contains("://") {
        Ok(endpoint.to_string())
    } else {
        Ok(format!("http://{endpoint}"))
    }
}

fn deadline_exceeded() -> CtlError {
    CtlError::error(DEADLINE_EXCEEDED)
}

/// Whether a failed call may be retried on another endpoint: transport
/// failures always (nothing reached the server or the connection broke),
/// `Unavailable` server answers only for repeatable requests. A connection
/// that broke under a request (tonic's `Unknown: transport error` or
/// `Cancelled: operation was canceled`, e.g. a TLS 1.3 server refusing
/// the client's certificate after the handshake) is retried only for
/// repeatable requests: a write may have been applied.
fn retryable(status: &tonic::Status, repeatable: bool) -> bool {
    match status.code() {
        tonic::Code::Unavailable => {
            let server_said = status.message().starts_with("etcdserver:");
            repeatable || !server_said
        }
        tonic::Code::Unknown => repeatable && status.message() == "transport error",
        tonic::Code::Cancelled => repeatable && status.message() == "operation was canceled",
        _ => false,
    }
}

impl Client {
    pub(crate) fn new(cfg: ClientConfig) -> CtlResult<Client> {
        if cfg.endpoints.is_empty() {
            return Err(CtlError::error("no available endpoints"));
        }
        for ep in &cfg.endpoints {
            let url = endpoint_url(ep)?;
            Endpoint::from_shared(url)
                .map_err(|e| CtlError::bad_args(format!("invalid endpoint {ep:?}: {e}")))?;
        }
        let any_https = cfg.endpoints.iter().any(|e| e.starts_with("https://"));
        let tls = ClientTls::from_flags(&cfg.tls, any_https)?;
        let auth = AuthSession::new(cfg.auth.clone());
        Ok(Client {
            cfg,
            tls,
            auth,
            state: Mutex::new(State::default()),
        })
    }

    /// A client on one endpoint only (for per-endpoint maintenance calls).
    pub(crate) fn for_endpoint(&self, ep: &str) -> CtlResult<Client> {
        let mut cfg = self.cfg.clone();
        cfg.endpoints = vec![ep.to_string()];
        Client::new(cfg)
    }

    /// This client with the leader's endpoint first, for bulk writes that a
    /// follower would only forward to the leader. Every endpoint is asked
    /// for its status at once, each within `--dial-timeout`; when none
    /// says it leads, the order stays as given. The other endpoints stay
    /// behind it for fail-over.
    pub(crate) async fn leader_first(&self) -> CtlResult<Client> {
        let mut cfg = self.cfg.clone();
        if cfg.endpoints.len() > 1 {
            let deadline = Instant::now() + cfg.dial_timeout;
            let asked = cfg.endpoints.iter().map(|ep| self.leads(ep, deadline));
            let leads = futures::future::join_all(asked).await;
            if let Some(i) = leads.iter().position(|&leads| leads) {
                let leader = cfg.endpoints.remove(i);
                cfg.endpoints.insert(0, leader);
            }
        }
        Client::new(cfg)
    }

    /// Whether `ep` answers, by `deadline`, that it is the leader.
    async fn leads(&self, ep: &str, deadline: Instant) -> bool {
        let Ok(one) = self.for_endpoint(ep) else {
            return false;
        };
        let status = one
            .unary_until(deadline, true, |ch| {
                let r = one.request(StatusRequest {});
                async move { maintenance(ch).status(r).await }
            })
            .await;
        status.is_ok_and(|s| s.leader != 0 && s.header.is_some_and(|h| h.member_id == s.leader))
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub(crate) fn endpoints(&self) -> &[String] {
        &self.cfg.endpoints
    }

    /// The deadline of a request that starts now.
    pub(crate) fn command_deadline(&self) -> Instant {
        Instant::now() + self.cfg.command_timeout
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn endpoint(&self, ep: &str, dial: Duration) -> CtlResult<Endpoint> {
        let url = endpoint_url(ep)?;
        Ok(Endpoint::from_shared(url)
            .map_err(|e| CtlError::bad_args(format!("invalid endpoint {ep:?}: {e}")))?
            .connect_timeout(dial)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.cfg.keepalive_time)
            .keep_alive_timeout(self.cfg.keepalive_timeout)
            .keep_alive_while_idle(true))
    }

    /// Connects `endpoint` (made from `ep`), through TLS when `ep` uses it.
    async fn connect(
        &self,
        ep: &str,
        endpoint: Endpoint,
        dial: Duration,
    ) -> Result<Channel, tonic::transport::Error> {
        let tls = match (ClientTls::transport(self.tls.as_ref(), ep), &self.tls) {
            (Transport::Tls, Some(tls)) => tls.clone(),
            _ => return endpoint.connect().await,
        };
        let connector = tls.connector(endpoint.uri(), dial);
        endpoint.connect_with_connector(connector).await
    }

    /// The channel in use, connecting to the first reachable endpoint
    /// (starting after the last one that failed) if there is none, with a
    /// token if the client authenticates.
    pub(crate) async fn channel(&self, deadline: Instant) -> CtlResult<Channel> {
        let ch = self.connected(deadline).await?;
        self.authenticate(ch.clone(), deadline, false).await?;
        Ok(ch)
    }

    /// [`Client::channel`] for a stream opened again: `Err(None)` when no
    /// endpoint answered in time, `Err(Some(status))` when authenticating
    /// failed (the caller tells a refusal from a member not ready yet).
    pub(crate) async fn stream_channel(
        &self,
        deadline: Instant,
    ) -> Result<Channel, Option<tonic::Status>> {
        let ch = self.connected(deadline).await.map_err(|_| None)?;
        match timeout_at(deadline, self.auth.ensure_token(ch.clone())).await {
            Ok(Ok(())) => Ok(ch),
            Ok(Err(status)) => Err(Some(status)),
            Err(_) => Err(None),
        }
    }

    /// The channel in use, or one to the first reachable endpoint.
    async fn connected(&self, deadline: Instant) -> CtlResult<Channel> {
        let current = self.state().channel.as_ref().map(|(_, ch)| ch.clone());
        if let Some(ch) = current {
            return Ok(ch);
        }
        let n = self.cfg.endpoints.len();
        let mut attempt = 0usize;
        loop {
            let start = { self.state().next };
            for k in 0..n {
                let i = (start + k) % n;
                let now = Instant::now();
                if now >= deadline {
                    return Err(deadline_exceeded());
                }
                let dial = self.cfg.dial_timeout.min(deadline - now);
                let ep = &self.cfg.endpoints[i];
                let endpoint = self.endpoint(ep, dial)?;
                if let Ok(Ok(ch)) = timeout_at(deadline, self.connect(ep, endpoint, dial)).await {
                    let mut state = self.state();
                    state.channel = Some((i, ch.clone()));
                    state.next = i;
                    return Ok(ch);
                }
            }
            attempt += 1;
            let pause = Duration::from_millis((25 * attempt as u64).min(500));
            if Instant::now() + pause >= deadline {
                sleep(deadline.saturating_duration_since(Instant::now())).await;
                return Err(deadline_exceeded());
            }
            sleep(pause).await;
        }
    }

    /// Forgets the channel in use so that the next call tries the next endpoint.
    pub(crate) fn fail_over(&self) {
        let mut state = self.state();
        if let Some((i, _)) = state.channel.take() {
            state.next = (i + 1) % self.cfg.endpoints.len();
        }
    }

    /// Gets a token on `ch` if the client has credentials and no token yet
    /// (or, with `again`, in place of one the server refused). A refusal
    /// ends the command as etcdctl's failed client creation does (exit 2).
    async fn authenticate(&self, ch: Channel, deadline: Instant, again: bool) -> CtlResult<()> {
        let call = async {
            if again {
                self.auth.reauthenticate(ch).await
            } else {
                self.auth.ensure_token(ch).await
            }
        };
        timeout_at(deadline, call)
            .await
            .map_err(|_| deadline_exceeded())?
            .map_err(|status| CtlError::from(status).with_code(EXIT_BAD_CONNECTION))
    }

    /// Whether requests carry a token (`--user` with a password).
    pub(crate) fn authenticates(&self) -> bool {
        self.auth.enabled()
    }

    /// Replaces the token the server refused, on `ch`: for a stream whose
    /// opening or creation was refused (unary calls renew by themselves).
    pub(crate) async fn renew_token(&self, ch: Channel) -> Result<(), tonic::Status> {
        self.auth.reauthenticate(ch).await
    }

    /// A request carrying the auth token, if any.
    pub(crate) fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        self.auth.attach(&mut req);
        req
    }

    /// Runs one unary call with a deadline of `--command-timeout`.
    pub(crate) async fn unary<T, F, Fut>(&self, repeatable: bool, call: F) -> CtlResult<T>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.unary_until(self.command_deadline(), repeatable, call)
            .await
    }

    /// Runs one unary call that must finish by `deadline`, retrying on
    /// another endpoint where that is safe.
    pub(crate) async fn unary_until<T, F, Fut>(
        &self,
        deadline: Instant,
        repeatable: bool,
        call: F,
    ) -> CtlResult<T>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut reauthenticated = false;
        let mut attempt = 0u64;
        loop {
            let ch = self.channel(deadline).await?;
            let result = timeout_at(deadline, call(ch.clone()))
                .await
                .map_err(|_| deadline_exceeded())?;
            match result {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status)
                    if must_reauthenticate(&status) && self.auth.enabled() && !reauthenticated =>
                {
                    reauthenticated = true;
                    self.authenticate(ch, deadline, true).await?;
                }
                Err(status) if retryable(&status, repeatable) => {
                    self.fail_over();
                    attempt += 1;
                    let pause = Duration::from_millis((25 * attempt).min(500));
                    if Instant::now() + pause >= deadline {
                        sleep(deadline.saturating_duration_since(Instant::now())).await;
                        return Err(deadline_exceeded());
                    }
                    sleep(pause).await;
                }
                Err(status) => return Err(CtlError::error(status_message(&status))),
            }
        }
    }

    /// The client URLs of every member (`--cluster`), from MemberList.
    pub(crate) async fn cluster_endpoints(&self) -> CtlResult<Vec<String>> {
        let resp = self
            .unary(true, |ch| {
                let req = self.request(MemberListRequest::default());
                async move { cluster(ch).member_list(req).await }
            })
            .await
            .map_err(|e| {
                e.wrap(|m| format!("failed to fetch endpoints from etcd cluster member list: {m}"))
            })?;
        Ok(resp
            .members
            .into_iter()
            .flat_map(|m| m.client_ur_ls)
            .collect())
    }
}

pub(crate) fn kv(ch: Channel) -> KvClient<Channel> {
    KvClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

pub(crate) fn lease(ch: Channel) -> LeaseClient<Channel> {
    LeaseClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

pub(crate) fn watch(ch: Channel) -> WatchClient<Channel> {
    WatchClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

pub(crate) fn cluster(ch: Channel) -> ClusterClient<Channel> {
    ClusterClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

pub(crate) fn auth(ch: Channel) -> AuthClient<Channel> {
    AuthClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

pub(crate) fn maintenance(ch: Channel) -> MaintenanceClient<Channel> {
    MaintenanceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(endpoint_url("http://h:1").unwrap(), "http://h:1");
        assert_eq!(endpoint_url("https://h:1").unwrap(), "http://h:1");
    }

    #[test]
    fn only_safe_failures_are_retried() {
        let conn = tonic::Status::unavailable("tcp connect error");
        let server = tonic::Status::unavailable("etcdserver: request timed out");
        let other = tonic::Status::invalid_argument("etcdserver: key is not provided");
        assert!(retryable(&conn, false));
        assert!(!retryable(&server, false));
        assert!(retryable(&server, true));
        assert!(!retryable(&other, true));
    }
}

//! gRPC connections: opening channels (plain or TLS), spreading them over
//! the endpoints, authenticating once for all of them, and finding the
//! leader with Maintenance.Status.
//!
//! TLS and the token are the shared client modules' (`client_tls`,
//! `client_auth`); this module only decides which endpoint is dialled how
//! and when the session authenticates (once, before anything is measured).

use std::time::Duration;

use crate::client_auth::AuthSession;
use crate::client_tls::{ClientTls, Transport};
use crate::proto::etcdserverpb::StatusRequest;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;

use super::BenchError;
use tonic::transport::{Channel, Endpoint};

/// How long to wait for a TCP connection (and its TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the load generator reaches the cluster: TLS for the endpoints that
/// use it, and the auth session whose token every request carries.
#[derive(Clone, Debug, Default)]
pub struct Dialer {
    tls: Option<ClientTls>,
    auth: AuthSession,
}

/// The open connections of a run and the session their requests
/// authenticate with.
#[derive(Clone, Debug)]
pub struct Connections {
    pub channels: Vec<Channel>,
    pub auth: AuthSession,
}

/// `host:port` or a URL, as the `http://` URL tonic is given (TLS, when
/// the endpoint uses it, is the connector's business underneath).
fn endpoint_url(endpoint: &str) -> String {
    if let Some(rest) = endpoint.strip_prefix("https://") {
        format!("http://{rest}")
    } else if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

impl Dialer {
    /// Plain connections for `http://` and bare endpoints, `tls` for those
    /// [`ClientTls::transport`] says use it; requests carry `auth`'s token.
    pub fn new(tls: Option<ClientTls>, auth: AuthSession) -> Dialer {
        Dialer { tls, auth }
    }

    /// The session requests authenticate with.
    pub fn auth(&self) -> &AuthSession {
        &self.auth
    }

    /// Opens one HTTP/2 connection to `endpoint`.
    pub async fn connect(&self, endpoint: &str) -> Result<Channel, BenchError> {
        let url = endpoint_url(endpoint);
        let builder = Endpoint::from_shared(url.clone())
            .map_err(|source| BenchError::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let (connected, shown) = match ClientTls::transport(self.tls.as_ref(), endpoint) {
            Transport::Plain => (builder.connect().await, url),
            Transport::Tls => {
                let tls = self.tls.as_ref().ok_or_else(|| BenchError::NoTls {
                    endpoint: endpoint.to_string(),
                })?;
                let connector = tls.connector(builder.uri(), CONNECT_TIMEOUT);
                let shown = url.replacen("http://", "https://", 1);
                (builder.connect_with_connector(connector).await, shown)
            }
        };
        connected.map_err(|source| BenchError::Connect { url: shown, source })
    }

    /// Opens `conns` connections, the i-th to `endpoints[i % endpoints.len()]`,
    /// and authenticates on the first (a failure ends the run before
    /// anything is measured).
    pub async fn open(&self, endpoints: &[String], conns: u32) -> Result<Connections, BenchError> {
        if endpoints.is_empty() {
            return Err(BenchError::NoEndpoint);
        }
        let mut channels = Vec::with_capacity(conns as usize);
        for i in 0..conns as usize {
            channels.push(self.connect(&endpoints[i % endpoints.len()]).await?);
        }
        self.authenticate(&channels[0]).await?;
        Ok(Connections {
            channels,
            auth: self.auth.clone(),
        })
    }

    /// Gets the session a token unless it holds one.
    async fn authenticate(&self, channel: &Channel) -> Result<(), BenchError> {
        self.auth
            .ensure_token(channel.clone())
            .await
            .map_err(|source| BenchError::Authenticate {
                user: self.auth.user().unwrap_or_default().to_string(),
                source,
            })
    }

    /// The endpoint of the member that reports itself as the leader.
    pub async fn find_leader(
        &self,
        endpoints: &[String],
        timeout: Duration,
    ) -> Result<String, BenchError> {
        let mut problems = Vec::new();
        for endpoint in endpoints {
            match tokio::time::timeout(timeout, self.member_status(endpoint)).await {
                Ok(Ok((member, leader))) if member != 0 && member == leader => {
                    return Ok(endpoint.clone());
                }
                Ok(Ok(_)) => {}
                Ok(Err(e @ BenchError::Authenticate { .. })) => return Err(e),
                Ok(Err(e)) => problems.push(format!("{endpoint}: {e:#}")),
                Err(_) => problems.push(format!("{endpoint}: Status timed out")),
            }
        }
        if problems.is_empty() {
            return Err(BenchError::NoLeader(String::new()));
        }
        Err(BenchError::NoLeader(format!(" ({})", problems.join("; "))))
    }

    /// `(member_id, leader)` as reported by Maintenance.Status on `endpoint`.
    async fn member_status(&self, endpoint: &str) -> Result<(u64, u64), BenchError> {
        let channel = self.connect(endpoint).await?;
        self.authenticate(&channel).await?;
        let mut request = tonic::Request::new(StatusRequest {});
        self.auth.attach(&mut request);
        let status = MaintenanceClient::new(channel)
            .status(request)
            .await
            .map_err(|source| BenchError::Setup {
                what: format!("Status on {endpoint}"),
                source,
            })?
            .into_inner();
        let member = status.header.map_or(0, |h| h.member_id);
        Ok((member, status.leader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_urls_tonic_dials() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://h:1"), "http://h:1");
        // TLS is added by the connector, under an http:// URL.
        assert_eq!(endpoint_url("https://h:1"), "http://h:1");
    }

    #[tokio::test]
    async fn a_tls_endpoint_without_tls_is_refused_not_dialled_in_the_clear() {
        let dialer = Dialer::default();
        let refused = dialer.connect("https://127.0.0.1:1").await.unwrap_err();
        assert!(matches!(refused, BenchError::NoTls { .. }), "{refused:?}");
    }
}

//! gRPC connections: opening channels, spreading them over the endpoints, and
//! finding the leader with Maintenance.Status.

use std::time::Duration;

use crate::proto::etcdserverpb::StatusRequest;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;

use super::BenchError;
use tonic::transport::{Channel, Endpoint};

/// How long to wait for a TCP connection to an endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `host:port` or a full URL, as a URL tonic accepts.
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Opens one HTTP/2 connection to `endpoint`.
pub async fn connect(endpoint: &str) -> Result<Channel, BenchError> {
    let url = endpoint_url(endpoint);
    Endpoint::from_shared(url.clone())
        .map_err(|source| BenchError::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            source,
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| BenchError::Connect { url, source })
}

/// Opens `conns` connections, the i-th to `endpoints[i % endpoints.len()]`.
pub async fn open(endpoints: &[String], conns: u32) -> Result<Vec<Channel>, BenchError> {
    if endpoints.is_empty() {
        return Err(BenchError::NoEndpoint);
    }
    let mut channels = Vec::with_capacity(conns as usize);
    for i in 0..conns as usize {
        channels.push(connect(&endpoints[i % endpoints.len()]).await?);
    }
    Ok(channels)
}

/// The endpoint of the member that reports itself as the leader.
pub async fn find_leader(endpoints: &[String], timeout: Duration) -> Result<String, BenchError> {
    let mut problems = Vec::new();
    for endpoint in endpoints {
        match tokio::time::timeout(timeout, member_status(endpoint)).await {
            Ok(Ok((member, leader))) if member != 0 && member == leader => {
                return Ok(endpoint.clone());
            }
            Ok(Ok(_)) => {}
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
async fn member_status(endpoint: &str) -> Result<(u64, u64), BenchError> {
    let mut client = MaintenanceClient::new(connect(endpoint).await?);
    let status = client
        .status(StatusRequest {})
        .await
        .map_err(|source| BenchError::Setup {
            what: format!("Status on {endpoint}"),
            source,
        })?
        .into_inner();
    let member = status.header.map_or(0, |h| h.member_id);
    Ok((member, status.leader))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://h:1"), "http://h:1");
    }
}

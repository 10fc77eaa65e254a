//! The node side of discovery bootstrap: etcd 3.4's v2 discovery protocol,
//! spoken to a discovery service (`cetera-discovery`, discovery.etcd.io, or
//! a directory in an etcd v2 keys API).
//!
//! This module owns the conversation with the service: reading the token's
//! size, registering this member as `<member id hex>` = `<name>=<peer URLs>`,
//! waiting (long polls) until `size` members have registered, and turning the
//! first `size` registrations, by `createdIndex`, into the initial cluster.
//! While the service is unreachable or answers 5xx it retries with etcd's
//! backoff (2, 4, … 256 s), logging each retry, and gives up after a bounded
//! number of retries. It also asks a service for a new token
//! ([`new_token`], for `ceteractl discovery new`).
//!
//! It must never touch the data dir, Raft or the command line: start-up
//! decides whether discovery runs (only for a member with an empty data dir)
//! and what the discovered cluster means. Errors carry etcd's messages
//! (`discovery: cluster is full`, …) so operators and scripts see the same
//! words as with etcd.

use std::time::Duration;

use serde::Deserialize;

use crate::cluster::InitialCluster;
use crate::raft::MemberId;

/// etcd's v2 client deadline for one short request (not for long polls).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// etcd's discovery transport dial timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Keepalive probes notice a discovery service that vanished under a long
/// poll (which has no deadline, as in etcd).
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// The key under a token that holds its size (`_config/size`).
const CONFIG_KEY: &str = "_config";
/// v2 error codes the protocol reacts to.
const CODE_KEY_NOT_FOUND: u64 = 100;
const CODE_NODE_EXIST: u64 = 105;
const CODE_EVENT_INDEX_CLEARED: u64 = 401;

/// Why discovery failed. The messages are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The token already has `size` members and this one is not among the
    /// first `size`.
    #[error("discovery: cluster is full")]
    FullCluster { size: usize },
    /// A member with this id registered before: this member started once
    /// with the token and lost its data dir, or the token is reused.
    #[error("discovery: found duplicate id")]
    DuplicateId,
    /// Two registrations carry the same name.
    #[error("discovery: found duplicate name")]
    DuplicateName,
    /// The token does not exist (or lost its size).
    #[error("discovery: size key not found")]
    SizeNotFound,
    #[error("discovery: size key is bad")]
    BadSizeKey,
    /// A registration is not a `name=url,...` list.
    #[error("discovery: invalid URL")]
    InvalidUrl,
    #[error("discovery cluster {0} has duplicate url")]
    DuplicateUrl(String),
    /// The service stayed unreachable through the whole retry budget.
    #[error("discovery: too many retries (last error: {last})")]
    TooManyRetries { last: String },
    /// The URL does not lead to a discovery service.
    #[error("discovery: bad discovery endpoint ({detail})")]
    BadEndpoint { detail: String },
    /// Any other v2 error, written as etcd's client writes it.
    #[error("{code}: {message} ({cause}) [{index}]")]
    Service {
        code: u64,
        message: String,
        cause: String,
        index: u64,
    },
    /// `new_token` could not reach the service.
    #[error("cannot reach the discovery service: {0}")]
    Unreachable(String),
    /// `new_token` got something other than a URL.
    #[error("the discovery service answered {status}: {body}")]
    Refused { status: u16, body: String },
}

/// How often and how long to wait while the service is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries before giving up with [`DiscoveryError::TooManyRetries`],
    /// counted over the whole bootstrap (as etcd counts them).
    pub max_retries: u32,
    /// Retry `n` (from 1) waits `unit × 2^min(n, max_doublings)`.
    pub unit: Duration,
    pub max_doublings: u32,
}

impl RetryPolicy {
    /// etcd's schedule: 2 s, 4 s, … doubling up to 256 s, then 256 s each.
    /// etcd retries 2^32 − 1 times, i.e. forever; cetera stops after 16
    /// retries (about 43 minutes), so a wrong URL or a dead service ends
    /// start-up with an error instead of a silent hang.
    pub const ETCD: RetryPolicy = RetryPolicy {
        max_retries: 16,
        unit: Duration::from_secs(1),
        max_doublings: 8,
    };

    fn backoff(&self, retry: u32) -> Duration {
        self.unit * 2u32.pow(retry.min(self.max_doublings))
    }
}

/// Registers this member under the discovery URL and waits until the
/// token's cluster is complete; returns that cluster.
///
/// `registration` is this member's own `name=url,...` entry, `member_id`
/// its id derived with the discovery URL as token.
pub async fn join_cluster(
    url: &str,
    member_id: MemberId,
    registration: &str,
    policy: RetryPolicy,
) -> Result<InitialCluster, DiscoveryError> {
    let mut discovery = Discovery::new(url, member_id, policy)?;
    // Fast path: a full token is refused before registering.
    discovery.check_cluster().await?;
    let created = discovery.register(registration).await?;
    discovery.confirm_registered(created).await?;
    loop {
        let snapshot = discovery.check_cluster().await?;
        match discovery.wait_for_members(snapshot).await {
            Ok((values, size)) => return cluster_from_registrations(&values, size),
            Err(Failure::Unavailable(why)) => {
                discovery.back_off("waiting for other members", why).await?;
            }
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
}

/// Asks the service at `endpoint` for a new token of `size` members
/// (`GET <endpoint>/new?size=N`); returns the discovery URL it hands out.
pub async fn new_token(endpoint: &str, size: u64) -> Result<String, DiscoveryError> {
    let http = http_client()?;
    let url = format!("{}/new?size={size}", endpoint.trim_end_matches('/'));
    let response = http
        .get(&url)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| DiscoveryError::Unreachable(describe(&url, &e)))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| DiscoveryError::Unreachable(describe(&url, &e)))?;
    if !status.is_success() {
        return Err(match serde_json::from_str::<V2Error>(&body) {
            Ok(e) => e.into(),
            Err(_) => DiscoveryError::Refused {
                status: status.as_u16(),
                body: body.trim().to_string(),
            },
        });
    }
    let token_url = body.trim();
    if !(token_url.starts_with("http://") || token_url.starts_with("https://")) {
        return Err(DiscoveryError::Refused {
            status: status.as_u16(),
            body: token_url.to_string(),
        });
    }
    Ok(token_url.to_string())
}

// ---------------------------------------------------------------------------
// The protocol

/// One member's conversation with the service.
struct Discovery {
    http: reqwest::Client,
    /// The discovery URL as given, for logs.
    url: String,
    /// The token's base: the URL without a trailing slash.
    base: String,
    /// This member's key under the token: its id in hex.
    self_key: String,
    policy: RetryPolicy,
    retries: u32,
}

/// The token's registrations at one index.
struct Snapshot {
    /// Registrations by `createdIndex`, `_config` left out.
    members: Vec<Registration>,
    size: usize,
    /// `X-Etcd-Index` of the listing: waiting resumes after it.
    index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Registration {
    /// The last path segment of the key (a member id in hex).
    name: String,
    value: String,
    created_index: u64,
}

/// How a step failed: worth retrying after a backoff, or final.
enum Failure {
    Unavailable(String),
    Fatal(DiscoveryError),
}

impl From<DiscoveryError> for Failure {
    fn from(e: DiscoveryError) -> Self {
        Failure::Fatal(e)
    }
}

impl Discovery {
    fn new(url: &str, member_id: MemberId, policy: RetryPolicy) -> Result<Self, DiscoveryError> {
        Ok(Self {
            http: http_client()?,
            url: url.to_string(),
            base: url.trim_end_matches('/').to_string(),
            self_key: format!("{member_id:x}"),
            policy,
            retries: 0,
        })
    }

    /// Waits before the next attempt, or gives up once the budget is spent.
    async fn back_off(&mut self, step: &str, why: String) -> Result<(), DiscoveryError> {
        if self.retries >= self.policy.max_retries {
            return Err(DiscoveryError::TooManyRetries { last: why });
        }
        self.retries += 1;
        let backoff = self.policy.backoff(self.retries);
        tracing::warn!(
            url = %self.url,
            step,
            error = %why,
            retry = self.retries,
            max_retries = self.policy.max_retries,
            backoff = ?backoff,
            "discovery service unavailable; retrying"
        );
        tokio::time::sleep(backoff).await;
        Ok(())
    }

    /// The token's size and registrations; fails with `FullCluster` when
    /// this member is not among the first `size`. Retries while the service
    /// is unavailable.
    async fn check_cluster(&mut self) -> Result<Snapshot, DiscoveryError> {
        loop {
            match self.try_check_cluster().await {
                Ok(snapshot) => return Ok(snapshot),
                Err(Failure::Unavailable(why)) => {
                    self.back_off("cluster status check", why).await?
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    async fn try_check_cluster(&self) -> Result<Snapshot, Failure> {
        let size_url = format!(
            "{}/{CONFIG_KEY}/size?quorum=false&recursive=false&sorted=false",
            self.base
        );
        let size = match self.get(&size_url, Some(REQUEST_TIMEOUT)).await {
            Ok(reply) => parse_size(reply.node()?.value.as_deref())?,
            Err(Http::Refused(e)) if e.code == CODE_KEY_NOT_FOUND => {
                return Err(DiscoveryError::SizeNotFound.into());
            }
            Err(e) => return Err(e.into()),
        };
        let list_url = format!("{}?quorum=false&recursive=false&sorted=false", self.base);
        let reply = self.get(&list_url, Some(REQUEST_TIMEOUT)).await?;
        let index = reply.index;
        let mut members: Vec<Registration> = reply
            .node()?
            .nodes
            .iter()
            .filter_map(Registration::from_node)
            .collect();
        members.sort_by_key(|m| m.created_index);
        if is_full(&members, size, &self.self_key) {
            return Err(DiscoveryError::FullCluster { size }.into());
        }
        Ok(Snapshot {
            members,
            size,
            index,
        })
    }

    /// Creates this member's key; returns its `createdIndex`.
    async fn register(&mut self, value: &str) -> Result<u64, DiscoveryError> {
        let url = format!("{}/{}?prevExist=false", self.base, self.self_key);
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("value", value)
            .finish();
        // Set once an attempt failed without an answer: it may have
        // created the key, so finding the key is not yet a duplicate.
        let mut maybe_created = false;
        loop {
            match self.put(&url, form.clone()).await {
                Ok(reply) => return Ok(reply.node()?.created_index),
                Err(Http::Refused(e)) if e.code == CODE_NODE_EXIST => {
                    if maybe_created && let Some(created) = self.own_registration(value).await {
                        return Ok(created);
                    }
                    return Err(DiscoveryError::DuplicateId);
                }
                Err(e) => match Failure::from(e) {
                    Failure::Unavailable(why) => {
                        maybe_created = true;
                        self.back_off("registering", why).await?;
                    }
                    Failure::Fatal(e) => return Err(e),
                },
            }
        }
    }

    /// The `createdIndex` of our key if it holds exactly `value`.
    async fn own_registration(&self, value: &str) -> Option<u64> {
        let url = format!("{}/{}?quorum=false", self.base, self.self_key);
        let reply = self.get(&url, Some(REQUEST_TIMEOUT)).await.ok()?;
        let node = reply.node().ok()?;
        (node.value.as_deref() == Some(value)).then_some(node.created_index)
    }

    /// Waits until the service shows our registration (etcd does this so a
    /// service with several endpoints has it everywhere it reads from).
    async fn confirm_registered(&mut self, created_index: u64) -> Result<(), DiscoveryError> {
        let url = format!(
            "{}/{}?recursive=false&wait=true&waitIndex={created_index}",
            self.base, self.self_key
        );
        loop {
            match self.get(&url, None).await {
                Ok(reply) if reply.body.is_some() => return Ok(()),
                Ok(_) => {}
                Err(e) => match Failure::from(e) {
                    Failure::Unavailable(why) => {
                        self.back_off("confirming registration", why).await?;
                    }
                    Failure::Fatal(e) => return Err(e),
                },
            }
        }
    }

    /// Long-polls for registrations until `size` are known; returns their
    /// values in `createdIndex` order.
    async fn wait_for_members(&self, snapshot: Snapshot) -> Result<(Vec<String>, usize), Failure> {
        let Snapshot {
            mut members,
            size,
            index,
        } = snapshot;
        members.truncate(size);
        for member in &members {
            let who = if member.name == self.self_key {
                "self"
            } else {
                "peer"
            };
            tracing::info!(url = %self.url, member = %member.name, who, "found a member in the discovery token");
        }
        let mut wait_index = index + 1;
        while members.len() < size {
            tracing::info!(
                url = %self.url,
                found = members.len(),
                needed = size - members.len(),
                "waiting for more members to register"
            );
            let url = format!(
                "{}?recursive=true&wait=true&waitIndex={wait_index}",
                self.base
            );
            let event = match self.get(&url, None).await {
                Ok(reply) => reply,
                Err(Http::Refused(e)) if e.code == CODE_EVENT_INDEX_CLEARED => {
                    // Too far behind the token's history: list it again.
                    return Err(Failure::Unavailable(DiscoveryError::from(e).to_string()));
                }
                Err(e) => return Err(e.into()),
            };
            // A long poll that ended without an event is simply renewed.
            let Some(response) = event.body else { continue };
            wait_index = wait_index.max(response.node.modified_index + 1);
            let Some(member) = Registration::from_node(&response.node) else {
                continue;
            };
            if response.action == "create" && !members.iter().any(|m| m.name == member.name) {
                tracing::info!(url = %self.url, member = %member.name, "a member registered");
                members.push(member);
            }
        }
        tracing::info!(url = %self.url, members = members.len(), "found every member");
        Ok((members.into_iter().map(|m| m.value).collect(), size))
    }

    async fn get(&self, url: &str, timeout: Option<Duration>) -> Result<Reply, Http> {
        let mut request = self.http.get(url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        Reply::read(url, request.send().await).await
    }

    async fn put(&self, url: &str, form: String) -> Result<Reply, Http> {
        let request = self
            .http
            .put(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .timeout(REQUEST_TIMEOUT);
        Reply::read(url, request.send().await).await
    }
}

/// Whether the first `size` registrations leave this member out (etcd's
/// check: it is neither among them nor is there room after them).
fn is_full(members: &[Registration], size: usize, self_key: &str) -> bool {
    let position = members.iter().position(|m| m.name == self_key);
    match position {
        Some(at) => at >= size,
        None => members.len() >= size,
    }
}

fn parse_size(value: Option<&str>) -> Result<usize, DiscoveryError> {
    match value.map(str::trim).and_then(|v| v.parse::<usize>().ok()) {
        Some(size) if size > 0 => Ok(size),
        _ => Err(DiscoveryError::BadSizeKey),
    }
}

/// The initial cluster from the first `size` registrations' values.
fn cluster_from_registrations(
    values: &[String],
    size: usize,
) -> Result<InitialCluster, DiscoveryError> {
    let joined = values.join(",");
    let urls_ok = joined.split(',').all(|entry| {
        entry
            .split_once('=')
            .is_some_and(|(_, url)| url.starts_with("http://") || url.starts_with("https://"))
    });
    if !urls_ok {
        return Err(DiscoveryError::InvalidUrl);
    }
    let cluster = InitialCluster::parse(&joined).map_err(|e| match e {
        crate::cluster::ClusterError::DuplicateUrl(_) => {
            DiscoveryError::DuplicateUrl(joined.clone())
        }
        _ => DiscoveryError::InvalidUrl,
    })?;
    if cluster.len() != size {
        return Err(DiscoveryError::DuplicateName);
    }
    Ok(cluster)
}

fn http_client() -> Result<reqwest::Client, DiscoveryError> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE)
        .build()
        .map_err(|e| DiscoveryError::Unreachable(format!("building the HTTP client: {e}")))
}

/// A reqwest error with its causes (its own text is only "error sending
/// request").
fn describe(url: &str, e: &reqwest::Error) -> String {
    let mut text = format!("{url}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------
// The v2 wire format

/// A v2 keys response (`{"action":..,"node":{..}}`).
#[derive(Debug, Deserialize)]
struct V2Response {
    #[serde(default)]
    action: String,
    node: V2Node,
}

#[derive(Debug, Deserialize)]
struct V2Node {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    nodes: Vec<V2Node>,
    #[serde(rename = "createdIndex", default)]
    created_index: u64,
    #[serde(rename = "modifiedIndex", default)]
    modified_index: u64,
}

/// A v2 error body.
#[derive(Debug, Deserialize)]
struct V2Error {
    #[serde(rename = "errorCode")]
    code: u64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    index: u64,
}

impl From<V2Error> for DiscoveryError {
    fn from(e: V2Error) -> Self {
        DiscoveryError::Service {
            code: e.code,
            message: e.message,
            cause: e.cause,
            index: e.index,
        }
    }
}

impl Registration {
    /// A member's registration, or `None` for `_config` and directories.
    fn from_node(node: &V2Node) -> Option<Registration> {
        let name = node.key.trim_end_matches('/').rsplit('/').next()?;
        if name == CONFIG_KEY || node.key.contains(&format!("/{CONFIG_KEY}/")) {
            return None;
        }
        Some(Registration {
            name: name.to_string(),
            value: node.value.clone()?,
            created_index: node.created_index,
        })
    }
}

/// How one HTTP exchange failed.
enum Http {
    /// No answer, or a 5xx: the service may come back.
    Unavailable(String),
    /// A v2 error body.
    Refused(V2Error),
    /// Not the v2 API.
    Undecodable(String),
}

impl From<Http> for Failure {
    fn from(e: Http) -> Self {
        match e {
            Http::Unavailable(why) => Failure::Unavailable(why),
            Http::Refused(e) => Failure::Fatal(e.into()),
            Http::Undecodable(detail) => Failure::Fatal(DiscoveryError::BadEndpoint { detail }),
        }
    }
}

/// A successful answer: `X-Etcd-Index`, and the body unless it was empty
/// (a long poll that ended without an event).
struct Reply {
    index: u64,
    body: Option<V2Response>,
}

impl Reply {
    async fn read(
        url: &str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Reply, Http> {
        let response = sent.map_err(|e| Http::Unavailable(describe(url, &e)))?;
        let status = response.status();
        let index = response
            .headers()
            .get("x-etcd-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .bytes()
            .await
            .map_err(|e| Http::Unavailable(describe(url, &e)))?;
        if status.is_server_error() {
            return Err(Http::Unavailable(format!(
                "{url}: the service answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        if !status.is_success() {
            return Err(match serde_json::from_slice::<V2Error>(&body) {
                Ok(e) => Http::Refused(e),
                Err(_) => Http::Undecodable(format!("{url} answered {status}")),
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Reply {
                index: index.unwrap_or(0),
                body: None,
            });
        }
        let parsed: V2Response = serde_json::from_slice(&body).map_err(|e| {
            Http::Undecodable(format!("{url} answered something else than v2 JSON: {e}"))
        })?;
        let index = index
            .ok_or_else(|| Http::Undecodable(format!("{url} answered without X-Etcd-Index")))?;
        Ok(Reply {
            index,
            body: Some(parsed),
        })
    }

    /// The answer's node; an empty answer where one was due is not v2.
    fn node(&self) -> Result<&V2Node, DiscoveryError> {
        self.body
            .as_ref()
            .map(|b| &b.node)
            .ok_or_else(|| DiscoveryError::BadEndpoint {
                detail: "empty answer".into(),
            })
    }
}

#[cfg(test)]
mod tests;

//! A watch on a member that is cut off from the leader keeps its events in
//! order and resumes: the member that serves the watch either loses its
//! leader (the leader is frozen with SIGSTOP while writes go on through the
//! two others) or is itself frozen while the majority keeps writing (so it
//! must catch up, by snapshot on a short log), and then resumes.
//!
//! Afterwards the watcher must have received exactly the history of its
//! prefix from its start on, in revision order: no gap, no duplicate. The
//! reference history comes from a second watch opened afterwards on another
//! member with a past start revision. Every body runs on etcd and cetera.
//!
//! A member stopped with SIGTERM ends its watch and keep-alive streams at
//! once with `Unavailable`, as etcd does (it closes its client connections
//! within milliseconds), and the watcher that resumes from its last
//! revision + 1 on another member misses nothing and sees nothing twice.
//! cetera also answers a unary request in flight before it exits (etcd
//! drops it with the connection).

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use cetera::proto::etcdserverpb::lease_client::LeaseClient;
use cetera::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, PutRequest,
    WatchCreateRequest, WatchResponse,
};
use cetera::proto::v3electionpb::election_client::ElectionClient;
use cetera::proto::v3electionpb::{CampaignRequest, LeaderRequest};
use cetera::proto::v3lockpb::LockRequest;
use cetera::proto::v3lockpb::lock_client::LockClient;
use tests::kv::{Kv, prefix_end, range_prefix, rev};
use tests::watch::WatchSession;
use tests::{Flavor, TestCluster, flavor_tests};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};
use tonic::Code;

flavor_tests!(
    a_watch_keeps_order_while_its_leader_is_frozen,
    a_frozen_watch_member_catches_up_in_order,
    a_stopping_member_ends_its_streams_at_once,
    a_stopping_member_ends_every_wait_at_once,
);

/// Deadline of one put; a put that takes longer is retried elsewhere.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per put before the test gives up (a liveness bound).
const WRITE_ATTEMPTS: usize = 40;

/// One event as compared: revision, key, event type.
type Seen = (i64, String, i32);

fn watch_prefix(prefix: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: prefix.into(),
        range_end: prefix_end(prefix.as_bytes()),
        ..Default::default()
    }
}

/// Puts `count` keys `<prefix><first + i>` through `clients`, moving to the
/// next client whenever a put fails or times out (a retried put may have
/// been applied too; the history comparison covers that). Returns the
/// acknowledged revisions.
async fn write(clients: &[Kv], prefix: &str, first: usize, count: usize) -> Result<Vec<i64>> {
    let mut acknowledged = Vec::with_capacity(count);
    let mut member = 0;
    for i in first..first + count {
        let request = PutRequest {
            key: format!("{prefix}{i:05}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut client = clients[member % clients.len()].clone();
            match timeout(WRITE_TIMEOUT, client.put(request.clone())).await {
                Ok(Ok(response)) => {
                    acknowledged.push(rev(&response.into_inner().header));
                    break;
                }
                _ => {
                    ensure!(
                        attempts < WRITE_ATTEMPTS,
                        "put #{i} failed {attempts} times"
                    );
                    member += 1;
                    sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    Ok(acknowledged)
}

/// The events of one watch response, which must not be a cancellation.
fn events_of(response: &WatchResponse) -> Result<Vec<Seen>> {
    ensure!(!response.canceled, "the watch was canceled: {response:?}");
    Ok(response
        .events
        .iter()
        .map(|event| {
            let kv = event.kv.clone().unwrap_or_default();
            (
                kv.mod_revision,
                String::from_utf8_lossy(&kv.key).into_owned(),
                event.r#type,
            )
        })
        .collect())
}

/// Reads events until one at `last` or later arrives; returns them all.
async fn events_through(session: &mut WatchSession, last: i64) -> Result<Vec<Seen>> {
    let mut seen: Vec<Seen> = Vec::new();
    while seen.last().is_none_or(|(revision, _, _)| *revision < last) {
        let response = session.next().await.with_context(|| {
            format!("waiting for revision {last}; {} events so far", seen.len())
        })?;
        seen.extend(events_of(&response)?);
    }
    Ok(seen)
}

/// Watches `prefix` on `member` from revision `start` and reads through
/// `last`: the history a resumed or replaying watcher must see.
async fn events_from(
    cluster: &TestCluster,
    member: usize,
    prefix: &str,
    start: i64,
    last: i64,
) -> Result<Vec<Seen>> {
    let (mut session, _) = WatchSession::open(
        cluster.grpc_channel(member)?,
        WatchCreateRequest {
            start_revision: start,
            ..watch_prefix(prefix)
        },
    )
    .await?;
    events_through(&mut session, last).await
}

/// Checks the watcher's events against the prefix's history from
/// `start` to `last`, read by a new watch on member `reference`.
async fn check_history(
    cluster: &TestCluster,
    reference: usize,
    prefix: &str,
    start: i64,
    last: i64,
    seen: &[Seen],
    acknowledged: &[i64],
) -> Result<()> {
    let revisions: Vec<i64> = seen.iter().map(|(r, _, _)| *r).collect();
    ensure!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "events out of order or repeated: {revisions:?}"
    );
    for revision in acknowledged {
        ensure!(
            revisions.binary_search(revision).is_ok(),
            "acknowledged revision {revision} was never delivered"
        );
    }
    let history = events_from(cluster, reference, prefix, start, last).await?;
    ensure!(
        seen == history.as_slice(),
        "the watcher's events differ from the history: {} seen, {} in history; first difference at {:?}",
        seen.len(),
        history.len(),
        seen.iter().zip(&history).position(|(a, b)| a != b)
    );
    Ok(())
}

async fn a_watch_keeps_order_while_its_leader_is_frozen(flavor: Flavor) -> Result<()> {
    const PREFIX: &str = "cut/";
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let watched = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let (mut session, created) =
        WatchSession::open(cluster.grpc_channel(watched)?, watch_prefix(PREFIX)).await?;
    let start = rev(&created.header) + 1;
    // Writes never go to the member that will be frozen.
    let clients = [cluster.kv(watched)?, cluster.kv(other)?];

    let mut acknowledged = write(&clients, PREFIX, 0, 50).await?;
    cluster.member(leader).freeze()?;
    let during = write(&clients, PREFIX, 50, 100).await;
    cluster.member(leader).resume()?;
    acknowledged.extend(during?);
    acknowledged.extend(write(&clients, PREFIX, 150, 50).await?);

    let last = *acknowledged.last().context("no write acknowledged")?;
    let seen = events_through(&mut session, last).await?;
    check_history(&cluster, other, PREFIX, start, last, &seen, &acknowledged).await
}

async fn a_frozen_watch_member_catches_up_in_order(flavor: Flavor) -> Result<()> {
    const PREFIX: &str = "frozen/";
    // A short log, so the frozen member falls behind the leader's log and
    // must catch up from a snapshot.
    let cluster = TestCluster::builder(flavor, 3)
        .args(["--snapshot-count", "100"])
        .start()
        .await?;
    let leader = cluster.leader_index().await?;
    let watched = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let (mut session, created) =
        WatchSession::open(cluster.grpc_channel(watched)?, watch_prefix(PREFIX)).await?;
    let start = rev(&created.header) + 1;
    let clients = [cluster.kv(leader)?, cluster.kv(other)?];

    let mut acknowledged = write(&clients, PREFIX, 0, 20).await?;
    cluster.member(watched).freeze()?;
    let during = write(&clients, PREFIX, 20, 600).await;
    cluster.member(watched).resume()?;
    acknowledged.extend(during?);
    acknowledged.extend(write(&clients, PREFIX, 620, 20).await?);

    let last = *acknowledged.last().context("no write acknowledged")?;
    let seen = events_through(&mut session, last).await?;
    check_history(&cluster, other, PREFIX, start, last, &seen, &acknowledged).await
}

/// Liveness bound for a stopped member's exit; never a speed threshold.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// A request to the JSON gateway, sent up to its body and held there, so it
/// is in flight on the member while the test stops it.
struct HeldRequest {
    connection: BufReader<TcpStream>,
    body: &'static str,
}

impl HeldRequest {
    /// Sends `POST path` with `Expect: 100-continue` and waits for the
    /// `100 Continue`: the member has then started on the request and is
    /// reading its body.
    async fn start(client_url: &str, path: &str, body: &'static str) -> Result<HeldRequest> {
        let address = client_url
            .strip_prefix("http://")
            .context("a plain-HTTP client URL")?;
        let mut connection = BufReader::new(TcpStream::connect(address).await?);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        );
        connection.get_mut().write_all(head.as_bytes()).await?;
        let mut line = String::new();
        timeout(EXIT_WAIT, connection.read_line(&mut line))
            .await
            .context("no 100 Continue")??;
        ensure!(
            line.starts_with("HTTP/1.1 100"),
            "expected 100 Continue, got {line:?}"
        );
        timeout(EXIT_WAIT, connection.read_line(&mut line))
            .await
            .context("no end of the 100 Continue")??;
        Ok(HeldRequest { connection, body })
    }

    /// Sends the body and reads the whole answer (the server closes the
    /// connection after it, as a stopping server must); `None` if the
    /// connection ended without an answer.
    async fn finish(mut self) -> Result<Option<String>> {
        // A write to a closed connection is an answer too: none.
        if self
            .connection
            .get_mut()
            .write_all(self.body.as_bytes())
            .await
            .is_err()
        {
            return Ok(None);
        }
        let mut answer = String::new();
        match timeout(EXIT_WAIT, self.connection.read_to_string(&mut answer)).await {
            Err(_) => bail!("no answer and no end of the connection; so far: {answer:?}"),
            Ok(Err(_)) | Ok(Ok(_)) if answer.is_empty() => Ok(None),
            Ok(_) => Ok(Some(answer)),
        }
    }
}

/// An open keep-alive stream: the answers, and the sender of requests,
/// kept so the request stream stays open (a half-closed one would give the
/// server another reason to end it).
type KeepAlive = (
    tonic::Streaming<LeaseKeepAliveResponse>,
    mpsc::Sender<LeaseKeepAliveRequest>,
);

/// Opens a keep-alive stream for a new lease on `channel` and checks that it
/// answers.
async fn keep_alive_stream(channel: tonic::transport::Channel) -> Result<KeepAlive> {
    let mut leases = LeaseClient::new(channel);
    let lease = leases
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await?
        .into_inner();
    let (requests, outgoing) = mpsc::channel(4);
    requests
        .send(LeaseKeepAliveRequest { id: lease.id })
        .await
        .context("queueing a keep-alive")?;
    let mut answers = leases
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    let first = timeout(EXIT_WAIT, answers.message())
        .await
        .context("no keep-alive answer")??
        .context("the keep-alive stream ended at once")?;
    ensure!(
        first.id == lease.id && first.ttl > 0,
        "keep-alive answered {first:?}"
    );
    Ok((answers, requests))
}

/// Reads `stream` until it fails and returns the status it failed with.
async fn status_at_end<T>(stream: &mut tonic::Streaming<T>, what: &str) -> Result<tonic::Status> {
    loop {
        match timeout(EXIT_WAIT, stream.message()).await? {
            Ok(Some(_)) => continue,
            Ok(None) => bail!("{what} ended without a status"),
            Err(status) => return Ok(status),
        }
    }
}

/// Checks how a stream or a waiting call on a stopping member ended. etcd drops the
/// connection (tonic reports the broken connection as `Unknown`: `h2
/// protocol error` on a stream, `transport error` on a unary call; grpc-go
/// and Python clients as `Unavailable`); cetera ends the stream with
/// `Unavailable: etcdserver: server stopped`. Clients resume elsewhere on
/// either.
fn check_stopped_stream(flavor: Flavor, stream: &str, status: &tonic::Status) -> Result<()> {
    let expected = match flavor {
        Flavor::Etcd => {
            // A status tonic made of a transport error carries its source;
            // one the server sent does not.
            status.code() == Code::Unavailable
                || (status.code() == Code::Unknown && std::error::Error::source(status).is_some())
        }
        Flavor::Cetera => {
            status.code() == Code::Unavailable && status.message() == "etcdserver: server stopped"
        }
    };
    ensure!(expected, "{stream} ended with {status:?}");
    Ok(())
}

/// Reads the watch until its stream fails; the events seen and the status.
async fn events_until_failure(session: &mut WatchSession) -> Result<(Vec<Seen>, tonic::Status)> {
    let mut seen = Vec::new();
    loop {
        match session.next_or_end().await? {
            Ok(Some(response)) => {
                seen.extend(events_of(&response)?);
            }
            Ok(None) => bail!("the watch stream ended without a status"),
            Err(status) => return Ok((seen, status)),
        }
    }
}

/// The member with an open watch and an open keep-alive stream is stopped
/// with SIGTERM while writes go on through the others: both streams fail
/// with `Unavailable` (clients resume elsewhere on it), a unary request in
/// flight is answered first on cetera, the member exits cleanly, and a
/// watch resumed on another member from the last revision seen + 1 gets
/// every event exactly once.
async fn a_stopping_member_ends_its_streams_at_once(flavor: Flavor) -> Result<()> {
    const PREFIX: &str = "stop/";
    // `stop/inflight` = "v", as the gateway takes bytes: base64.
    const HELD_PUT: &str = r#"{"key":"c3RvcC9pbmZsaWdodA==","value":"dg=="}"#;
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let stopped = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let (mut session, created) =
        WatchSession::open(cluster.grpc_channel(stopped)?, watch_prefix(PREFIX)).await?;
    let start = rev(&created.header) + 1;
    let (mut keep_alive, _keep_alive_requests) =
        keep_alive_stream(cluster.grpc_channel(stopped)?).await?;
    let clients = [cluster.kv(leader)?, cluster.kv(other)?];
    let mut acknowledged = write(&clients, PREFIX, 0, 20).await?;
    let before = events_through(&mut session, *acknowledged.last().context("no write")?).await?;

    let held = HeldRequest::start(&cluster.client_url(stopped), "/v3/kv/put", HELD_PUT).await?;
    let writing = tokio::spawn({
        let clients = clients.clone();
        async move { write(&clients, PREFIX, 20, 100).await }
    });
    cluster.member(stopped).terminate()?;

    let (during, watch_status) = events_until_failure(&mut session).await?;
    check_stopped_stream(flavor, "the watch stream", &watch_status)?;
    let keep_alive_status = status_at_end(&mut keep_alive, "the keep-alive stream").await?;
    check_stopped_stream(flavor, "the keep-alive stream", &keep_alive_status)?;

    if let Some(revision) = exits_after_answering(&cluster, stopped, held).await? {
        acknowledged.push(revision);
    }

    acknowledged.extend(writing.await??);
    acknowledged.extend(write(&clients, PREFIX, 120, 20).await?);
    let last = *acknowledged.iter().max().context("no write")?;
    let resume_from = during
        .last()
        .or(before.last())
        .map_or(start, |seen| seen.0 + 1);
    let after = events_from(&cluster, other, PREFIX, resume_from, last).await?;
    let seen: Vec<Seen> = before.into_iter().chain(during).chain(after).collect();
    check_history(&cluster, other, PREFIX, start, last, &seen, &acknowledged).await
}

/// After the streams ended: on cetera, the member is still up (the held
/// request keeps it so, hence the streams did not end with the process),
/// answers the held put, exits with status 0 and logs no connection that
/// outlived the stop; returns the put's revision. etcd drops the request
/// with its connection and dies by the SIGTERM it re-raises.
async fn exits_after_answering(
    cluster: &TestCluster,
    stopped: usize,
    held: HeldRequest,
) -> Result<Option<i64>> {
    let member = cluster.member(stopped);
    match cluster.flavor() {
        Flavor::Cetera => {
            ensure!(
                member.is_running(),
                "the member exited before it answered a request in flight"
            );
            let answer = held
                .finish()
                .await?
                .context("the request in flight got no answer")?;
            ensure!(
                answer.starts_with("HTTP/1.1 200"),
                "the request in flight got {answer:?}"
            );
            let body: serde_json::Value = serde_json::from_str(
                answer
                    .split("\r\n\r\n")
                    .nth(1)
                    .context("an answer without a body")?,
            )?;
            let revision = body["header"]["revision"]
                .as_str()
                .context("the answer has no revision")?
                .parse::<i64>()?;
            let exit = member.wait_for_exit(EXIT_WAIT).await?;
            ensure!(exit.code() == Some(0), "cetera exited with {exit:?}");
            let log = std::fs::read_to_string(member.log_path())?;
            ensure!(
                !log.contains("did not close"),
                "connections outlived the stop:\n{}",
                member.log_tail(20)
            );
            Ok(Some(revision))
        }
        Flavor::Etcd => {
            let exit = member.wait_for_exit(EXIT_WAIT).await?;
            ensure!(
                held.finish().await?.is_none(),
                "etcd answered a request in flight"
            );
            use std::os::unix::process::ExitStatusExt;
            ensure!(exit.signal() == Some(15), "etcd exited with {exit:?}");
            Ok(None)
        }
    }
}

/// The other long waits on a stopping member end at once too: an
/// Election.Observe stream, a Lock call waiting behind another holder, the
/// gateway's streaming watch, and a v2 `?wait=true` long poll.
async fn a_stopping_member_ends_every_wait_at_once(flavor: Flavor) -> Result<()> {
    const HELD_PUT: &str = r#"{"key":"aGVsZA==","value":"dg=="}"#;
    let cluster = TestCluster::builder(flavor, 3).enable_v2().start().await?;
    let leader = cluster.leader_index().await?;
    let stopped = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let channel = cluster.grpc_channel(stopped)?;
    let mut leases = LeaseClient::new(channel.clone());
    let mut grant = async || -> Result<i64> {
        let grant = LeaseGrantRequest { ttl: 60, id: 0 };
        Ok(leases.lease_grant(grant).await?.into_inner().id)
    };
    let (first, second) = (grant().await?, grant().await?);

    let mut election = ElectionClient::new(channel.clone());
    election
        .campaign(CampaignRequest {
            name: b"stop-election".to_vec(),
            lease: first,
            value: b"one".to_vec(),
        })
        .await?;
    let mut observed = election
        .observe(LeaderRequest {
            name: b"stop-election".to_vec(),
        })
        .await?
        .into_inner();
    timeout(EXIT_WAIT, observed.message())
        .await
        .context("Observe sent nothing")??
        .context("Observe ended at once")?;

    let mut lock = LockClient::new(channel);
    let lock_request = |lease| LockRequest {
        name: b"stop-lock".to_vec(),
        lease,
    };
    lock.lock(lock_request(first)).await?;
    let waiting = tokio::spawn({
        let mut lock = lock.clone();
        async move { lock.lock(lock_request(second)).await }
    });
    // The second caller waits once its key is in line.
    let mut kv = cluster.kv(other)?;
    while range_prefix(&mut kv, "stop-lock/", false).await?.count < 2 {
        ensure!(!waiting.is_finished(), "the second Lock did not wait");
        sleep(Duration::from_millis(20)).await;
    }

    let http = reqwest::Client::new();
    let url = cluster.client_url(stopped);
    let mut gateway_watch = http
        .post(format!("{url}/v3/watch"))
        .body(r#"{"create_request":{"key":"Z3c="}}"#)
        .send()
        .await?;
    let created = timeout(EXIT_WAIT, gateway_watch.chunk())
        .await
        .context("the gateway watch sent nothing")??
        .context("the gateway watch ended at once")?;
    ensure!(
        String::from_utf8_lossy(&created).contains(r#""created":true"#),
        "the gateway watch began with {created:?}"
    );
    let v2_wait = http
        .get(format!("{url}/v2/keys/stop-v2?wait=true"))
        .send()
        .await?;
    ensure!(v2_wait.status() == 200, "the v2 wait answered {v2_wait:?}");

    let held = HeldRequest::start(&url, "/v3/kv/put", HELD_PUT).await?;
    cluster.member(stopped).terminate()?;

    let observe_status = status_at_end(&mut observed, "the Observe stream").await?;
    check_stopped_stream(flavor, "the Observe stream", &observe_status)?;
    match timeout(EXIT_WAIT, waiting).await?? {
        Ok(answer) => bail!("the waiting Lock was granted: {answer:?}"),
        Err(status) => check_stopped_stream(flavor, "the waiting Lock", &status)?,
    }
    let mut rest = Vec::new();
    let gateway_end = loop {
        match timeout(EXIT_WAIT, gateway_watch.chunk()).await? {
            Ok(Some(chunk)) => rest.extend_from_slice(&chunk),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let rest = String::from_utf8_lossy(&rest);
    let v2_end = timeout(EXIT_WAIT, v2_wait.text()).await?;
    // Both end the gateway's stream with an error chunk. etcd's gateway
    // says what its loopback client saw first: `14 transport is closing`
    // or `1 grpc: the client connection is closing`; cetera's says `14
    // etcdserver: server stopped`.
    let error_chunk = match flavor {
        Flavor::Etcd => rest.contains(r#""grpc_code":14,"#) || rest.contains(r#""grpc_code":1,"#),
        Flavor::Cetera => {
            rest.contains(r#""grpc_code":14,"#) && rest.contains("etcdserver: server stopped")
        }
    };
    ensure!(
        gateway_end.is_none() && error_chunk && !rest.contains("result"),
        "the gateway watch ended with {rest:?} ({gateway_end:?})"
    );
    // etcd cuts the chunked body off; cetera ends it empty, as at the
    // wait's timeout, which v2 clients answer by waiting again (elsewhere,
    // since this member no longer accepts connections).
    let v2_ended = match flavor {
        Flavor::Etcd => v2_end.as_ref().is_err(),
        Flavor::Cetera => v2_end.as_ref().is_ok_and(String::is_empty),
    };
    ensure!(v2_ended, "the v2 wait ended with {v2_end:?}");
    exits_after_answering(&cluster, stopped, held).await?;
    Ok(())
}

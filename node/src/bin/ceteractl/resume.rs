//! Watches that outlive their stream, as etcd's Go client keeps them
//! (`watch`, and the waits of `lock` and `elect`).
//!
//! A watch stream breaks when its member restarts or goes away, and a
//! member that restarted has forgotten every token, so the watch created
//! again is refused with `invalid auth token` (as it is once the token has
//! expired). [`ResumedWatch`] opens the stream again (on the next endpoint)
//! after a connection-level failure, and renews the token once when a
//! creation is refused for it, then creates the watch again from the
//! revision after the last event it delivered: no event is lost or
//! repeated, and the caller sees one `created` response.
//!
//! As in clientv3 3.4, the server's own refusals end the watch (a
//! compaction, a permission denied, `no leader` on a stream that was
//! working); so does finding no member to connect to at the start, which
//! the caller reports as before. This module never prints.

use std::time::Duration;

use cetera::client_auth::{must_reauthenticate, watch_refused_token};
use cetera::proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse, watch_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::client::{self, Client};
use crate::error::{CtlError, CtlResult};

/// Longest pause between two attempts to open a broken stream again.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// etcd's answer on a watch stream whose member lost its leader.
const NO_LEADER: &str = "etcdserver: no leader";

/// One watch, opened again whenever its stream breaks.
pub(crate) struct ResumedWatch<'c> {
    client: &'c Client,
    /// What the next stream creates; its start revision follows the
    /// events delivered.
    create: WatchCreateRequest,
    /// `clientv3.WithRequireLeader`: the member ends the stream when it
    /// has no leader.
    require_leader: bool,
    stream: Option<OpenStream>,
    /// Whether the caller has had the `created` response.
    created_seen: bool,
    /// Whether the token was renewed since the watch was last created, so
    /// a new token that is refused too ends the watch instead of looping.
    renewed: bool,
    /// Failed attempts in a row, for the pause before the next one.
    failures: u32,
    /// Progress requests to pass on to the stream (interactive watch).
    progress: Option<mpsc::UnboundedReceiver<()>>,
}

/// One stream of the watch.
struct OpenStream {
    channel: Channel,
    requests: mpsc::UnboundedSender<WatchRequest>,
    responses: Streaming<WatchResponse>,
    /// Whether this stream's watch was created.
    created: bool,
}

/// What a stream that stopped short calls for.
enum Next {
    /// Open the stream again.
    Reopen,
    /// Renew the token, then open the stream again.
    Renew,
    /// The watch is over.
    End,
}

/// What becomes of one response.
enum Taken {
    /// The caller's.
    Deliver(WatchResponse),
    /// Not for the caller: the creation of a resumed watch.
    Skip,
    /// A creation refused for its token: renew it and watch again.
    RenewToken,
}

/// Whether a failed stream is a connection-level failure (and the server
/// back soon) rather than the server's answer, clientv3's `isHaltErr`:
/// `Unavailable` and `Internal`, and the transport errors tonic reports
/// under other codes (nothing the server says starts that way).
fn transient(status: &Status) -> bool {
    let server_said = status.message().starts_with("etcdserver:");
    match status.code() {
        Code::Unavailable | Code::Internal => true,
        Code::Unknown | Code::Cancelled => !server_said,
        _ => false,
    }
}

impl<'c> ResumedWatch<'c> {
    /// The watch, before its first stream.
    fn new(client: &'c Client, create: WatchCreateRequest, require_leader: bool) -> Self {
        ResumedWatch {
            client,
            create,
            require_leader,
            stream: None,
            created_seen: false,
            renewed: false,
            failures: 0,
            progress: None,
        }
    }

    /// Opens the first stream. A client that cannot reach any member ends
    /// the command, as before; a stream that fails at the transport level
    /// once connected (a member that went away since the client last used
    /// it) is opened again by [`ResumedWatch::next`], as clientv3 never
    /// fails a watch for that.
    pub(crate) async fn open(
        client: &'c Client,
        create: WatchCreateRequest,
        require_leader: bool,
    ) -> CtlResult<ResumedWatch<'c>> {
        let mut watch = ResumedWatch::new(client, create, require_leader);
        let deadline = tokio::time::Instant::now()
            + client
                .config()
                .dial_timeout
                .max(client.config().command_timeout);
        let channel = client
            .channel(deadline)
            .await
            .map_err(|e| e.with_code(crate::error::EXIT_BAD_CONNECTION))?;
        match watch.start(channel).await {
            Ok(stream) => watch.stream = Some(stream),
            Err(status) if transient(&status) => {}
            Err(status) => return Err(CtlError::from(status)),
        }
        Ok(watch)
    }

    /// Passes every `()` received on `progress` to the stream as a
    /// progress request.
    pub(crate) fn with_progress(mut self, progress: mpsc::UnboundedReceiver<()>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Opens a stream on `channel` and sends the create request.
    async fn start(&self, channel: Channel) -> Result<OpenStream, Status> {
        let (requests, outgoing) = mpsc::unbounded_channel();
        let _ = requests.send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                self.create.clone(),
            )),
        });
        let mut request = self.client.request(UnboundedReceiverStream::new(outgoing));
        if self.require_leader {
            request
                .metadata_mut()
                .insert("hasleader", MetadataValue::from_static("true"));
        }
        let responses = client::watch(channel.clone())
            .watch(request)
            .await?
            .into_inner();
        Ok(OpenStream {
            channel,
            requests,
            responses,
            created: false,
        })
    }

    /// Opens the stream again (after a pause that grows with each failed
    /// attempt), on the next endpoint; a failure to reach a member leaves
    /// it closed for the next attempt, a refused authentication (a changed
    /// password) ends the watch.
    async fn reopen(&mut self) -> Result<(), Status> {
        self.client.fail_over();
        let pause = Duration::from_millis(25 * u64::from(self.failures)).min(MAX_PAUSE);
        self.failures = self.failures.saturating_add(1);
        tokio::time::sleep(pause).await;
        let deadline = tokio::time::Instant::now() + self.client.config().dial_timeout;
        let channel = match self.client.stream_channel(deadline).await {
            Ok(channel) => channel,
            Err(Some(refused)) if !transient(&refused) => return Err(refused),
            Err(_) => return Ok(()),
        };
        if let Ok(stream) = self.start(channel).await {
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// The next response for the caller: `Ok(None)` when the server ended
    /// the stream, `Err` when it refused the watch for good.
    pub(crate) async fn next(&mut self) -> Result<Option<WatchResponse>, Status> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.reopen().await?;
                continue;
            };
            let received = tokio::select! {
                wanted = next_progress(&mut self.progress) => {
                    match wanted {
                        Some(()) => {
                            let _ = stream.requests.send(progress_request());
                        }
                        None => self.progress = None,
                    }
                    continue;
                }
                received = stream.responses.message() => received,
            };
            let next = match received {
                Ok(Some(response)) => match self.take(response) {
                    Taken::Deliver(response) => return Ok(Some(response)),
                    Taken::Skip => continue,
                    Taken::RenewToken => Next::Renew,
                },
                Ok(None) => return Ok(None),
                Err(status) => {
                    let established = stream.created;
                    match self.after_failure(&status, established) {
                        Next::End => return Err(status),
                        next => next,
                    }
                }
            };
            let Some(stream) = self.stream.take() else {
                continue;
            };
            if let Next::Renew = next {
                self.renewed = true;
                // A member still starting up: the token is then renewed
                // when the stream is opened again.
                if let Err(status) = self.client.renew_token(stream.channel).await
                    && !transient(&status)
                {
                    return Err(status);
                }
            }
        }
    }

    /// Bookkeeping of one response.
    fn take(&mut self, response: WatchResponse) -> Taken {
        let refused_token =
            response.created && response.canceled && watch_refused_token(&response.cancel_reason);
        if refused_token && self.client.authenticates() && !self.renewed {
            return Taken::RenewToken;
        }
        if response.created && !response.canceled {
            if let Some(stream) = self.stream.as_mut() {
                stream.created = true;
            }
            self.renewed = false;
            self.failures = 0;
            if self.create.start_revision == 0 {
                let revision = response.header.as_ref().map_or(0, |h| h.revision);
                self.create.start_revision = revision + 1;
            }
            if self.created_seen {
                return Taken::Skip;
            }
            self.created_seen = true;
        }
        if let Some(last) = response.events.last().and_then(|e| e.kv.as_ref()) {
            self.create.start_revision = last.mod_revision + 1;
        }
        Taken::Deliver(response)
    }

    /// What a stream that failed with `status` calls for; `established`
    /// when its watch had been created.
    fn after_failure(&self, status: &Status, established: bool) -> Next {
        if must_reauthenticate(status) && self.client.authenticates() && !self.renewed {
            return Next::Renew;
        }
        if established && status.message() == NO_LEADER {
            return Next::End;
        }
        if transient(status) {
            Next::Reopen
        } else {
            Next::End
        }
    }
}

/// The next progress request wanted, or never without a source.
async fn next_progress(progress: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match progress {
        Some(wanted) => wanted.recv().await,
        None => std::future::pending().await,
    }
}

fn progress_request() -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use cetera::client_auth::{Credentials, INVALID_TOKEN};
    use cetera::client_tls::TlsFlags;
    use cetera::proto::etcdserverpb::ResponseHeader;
    use cetera::proto::mvccpb::{Event, KeyValue};

    fn client(with_user: bool) -> Client {
        let second = Duration::from_secs(1);
        Client::new(ClientConfig {
            endpoints: vec!["127.0.0.1:1".into()],
            dial_timeout: second,
            command_timeout: second,
            command_timeout_set: false,
            keepalive_time: second,
            keepalive_timeout: second,
            auth: with_user.then(|| Credentials {
                name: "alice".into(),
                password: "pw".into(),
            }),
            tls: TlsFlags::etcdctl_defaults(),
        })
        .unwrap()
    }

    fn created(revision: i64) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                revision,
                ..Default::default()
            }),
            created: true,
            ..Default::default()
        }
    }

    fn events(revisions: &[i64]) -> WatchResponse {
        let events = revisions
            .iter()
            .map(|&mod_revision| Event {
                kv: Some(KeyValue {
                    key: b"k".to_vec(),
                    mod_revision,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        WatchResponse {
            events,
            ..Default::default()
        }
    }

    fn refused_token() -> WatchResponse {
        WatchResponse {
            created: true,
            canceled: true,
            cancel_reason: format!("rpc error: code = Unauthenticated desc = {INVALID_TOKEN}"),
            ..Default::default()
        }
    }

    #[test]
    fn a_watch_resumes_after_its_last_event_and_is_created_once_for_the_caller() {
        let c = client(false);
        let mut watch = ResumedWatch::new(&c, WatchCreateRequest::default(), true);
        assert!(matches!(watch.take(created(10)), Taken::Deliver(_)));
        assert_eq!(watch.create.start_revision, 11, "after the creation");
        assert!(matches!(
            watch.take(events(&[12, 12, 14])),
            Taken::Deliver(_)
        ));
        assert_eq!(watch.create.start_revision, 15);
        // Created again on a new stream: from 15, whatever its header says.
        assert!(matches!(watch.take(created(20)), Taken::Skip));
        assert_eq!(watch.create.start_revision, 15);
        // A watch from a given revision starts there, not at the header.
        let from = WatchCreateRequest {
            start_revision: 3,
            ..Default::default()
        };
        let mut watch = ResumedWatch::new(&c, from, true);
        assert!(matches!(watch.take(created(10)), Taken::Deliver(_)));
        assert_eq!(watch.create.start_revision, 3);
    }

    #[test]
    fn a_creation_refused_for_its_token_renews_it_once() {
        let with_user = client(true);
        let mut watch = ResumedWatch::new(&with_user, WatchCreateRequest::default(), true);
        assert!(matches!(watch.take(refused_token()), Taken::RenewToken));
        watch.renewed = true;
        // Refused again with the new token: the caller hears of it.
        assert!(matches!(watch.take(refused_token()), Taken::Deliver(_)));
        // Once created, a later refusal renews again.
        assert!(matches!(watch.take(created(1)), Taken::Deliver(_)));
        assert!(matches!(watch.take(refused_token()), Taken::RenewToken));
        // Without credentials there is nothing to renew.
        let anonymous = client(false);
        let mut watch = ResumedWatch::new(&anonymous, WatchCreateRequest::default(), true);
        assert!(matches!(watch.take(refused_token()), Taken::Deliver(_)));
    }

    #[test]
    fn broken_streams_reopen_and_refusals_end_the_watch() {
        let c = client(true);
        let watch = ResumedWatch::new(&c, WatchCreateRequest::default(), true);
        let reopen = |status: Status, established| {
            matches!(watch.after_failure(&status, established), Next::Reopen)
        };
        assert!(reopen(Status::unknown("transport error"), true));
        assert!(reopen(Status::unavailable(NO_LEADER), false));
        assert!(matches!(
            watch.after_failure(&Status::unavailable(NO_LEADER), true),
            Next::End
        ));
        assert!(matches!(
            watch.after_failure(&Status::unauthenticated(INVALID_TOKEN), true),
            Next::Renew
        ));
        assert!(matches!(
            watch.after_failure(
                &Status::permission_denied("etcdserver: permission denied"),
                false
            ),
            Next::End
        ));
    }

    #[test]
    fn only_connection_failures_reopen_a_stream() {
        assert!(transient(&Status::unavailable("tcp connect error")));
        assert!(transient(&Status::unavailable(NO_LEADER)));
        assert!(transient(&Status::internal("h2 protocol error")));
        assert!(transient(&Status::unknown("transport error")));
        assert!(transient(&Status::cancelled("operation was canceled")));
        assert!(!transient(&Status::unknown("etcdserver: corrupt cluster")));
        assert!(!transient(&Status::permission_denied(
            "etcdserver: permission denied"
        )));
        assert!(!transient(&Status::invalid_argument(
            "etcdserver: user name is empty"
        )));
    }
}

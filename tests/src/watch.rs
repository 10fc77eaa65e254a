//! A small Watch client for tests: one bidirectional stream, with helpers
//! to create watches and collect what arrives, always with time limits.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use cetera::proto::etcdserverpb::watch_client::WatchClient;
use cetera::proto::etcdserverpb::watch_request::RequestUnion;
use cetera::proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use cetera::proto::mvccpb::Event;
use tokio::sync::mpsc;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long a test waits for one watch response before failing.
pub const RESPONSE_WAIT: Duration = Duration::from_secs(15);

/// One open Watch stream.
pub struct WatchSession {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl WatchSession {
    /// Opens a stream on `channel` with a first watch, returning the
    /// session and that watch's `created` response. (The first request is
    /// queued before the call starts: grpc-go servers send a stream's
    /// headers only with its first response.)
    pub async fn open(
        channel: Channel,
        first: WatchCreateRequest,
    ) -> Result<(Self, WatchResponse)> {
        let (requests, outgoing) = mpsc::channel(64);
        requests
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(first)),
            })
            .await
            .context("queueing the first watch")?;
        let responses = WatchClient::new(channel)
            .watch(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        let mut session = Self {
            requests,
            responses,
        };
        let created = session.next().await?;
        if !created.created {
            bail!("expected a created response, got {created:?}");
        }
        Ok((session, created))
    }

    async fn send(&self, request: RequestUnion) -> Result<()> {
        self.requests
            .send(WatchRequest {
                request_union: Some(request),
            })
            .await
            .context("watch stream closed")
    }

    /// Sends a create request and returns the `created` response.
    pub async fn create(&mut self, create: WatchCreateRequest) -> Result<WatchResponse> {
        self.send(RequestUnion::CreateRequest(create)).await?;
        let response = self.next().await?;
        if !response.created {
            bail!("expected a created response, got {response:?}");
        }
        Ok(response)
    }

    /// Sends every create request while reading their `created`
    /// responses, and returns those responses in order (a stream answers
    /// creates in the order it got them).
    pub async fn create_many(
        &mut self,
        creates: Vec<WatchCreateRequest>,
    ) -> Result<Vec<WatchResponse>> {
        let count = creates.len();
        let requests = self.requests.clone();
        let sending = async move {
            for create in creates {
                requests
                    .send(WatchRequest {
                        request_union: Some(RequestUnion::CreateRequest(create)),
                    })
                    .await
                    .context("watch stream closed")?;
            }
            anyhow::Ok(())
        };
        let receiving = async {
            let mut created = Vec::with_capacity(count);
            while created.len() < count {
                let response = self.next().await?;
                if !response.created {
                    bail!("expected a created response, got {response:?}");
                }
                created.push(response);
            }
            anyhow::Ok(created)
        };
        let (sent, created) = tokio::join!(sending, receiving);
        sent?;
        created
    }

    pub async fn cancel(&self, watch_id: i64) -> Result<()> {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }))
            .await
    }

    pub async fn request_progress(&self) -> Result<()> {
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
            .await
    }

    /// The next response, failing after [`RESPONSE_WAIT`].
    pub async fn next(&mut self) -> Result<WatchResponse> {
        self.next_within(RESPONSE_WAIT)
            .await?
            .context("no watch response in time")
    }

    /// The next response, or `None` if none arrives within `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Result<Option<WatchResponse>> {
        match tokio::time::timeout(limit, self.responses.message()).await {
            Err(_) => Ok(None),
            Ok(Ok(Some(response))) => Ok(Some(response)),
            Ok(Ok(None)) => bail!("watch stream ended"),
            Ok(Err(status)) => bail!("watch stream failed: {status}"),
        }
    }

    /// The next response, the end of the stream (`Ok(None)`) or the status
    /// it failed with, failing after [`RESPONSE_WAIT`].
    pub async fn next_or_end(&mut self) -> Result<Result<Option<WatchResponse>, tonic::Status>> {
        tokio::time::timeout(RESPONSE_WAIT, self.responses.message())
            .await
            .context("no watch response in time")
    }

    /// Collects event responses until `count` events have arrived.
    pub async fn events(&mut self, count: usize) -> Result<Vec<WatchResponse>> {
        let mut responses = Vec::new();
        let mut seen = 0;
        while seen < count {
            let response = self.next().await?;
            seen += response.events.len();
            responses.push(response);
        }
        Ok(responses)
    }
}

/// The `(revision, key)` of every event, in order.
pub fn event_keys(responses: &[WatchResponse]) -> Vec<(i64, String)> {
    responses
        .iter()
        .flat_map(|r| r.events.iter())
        .map(event_key)
        .collect()
}

/// The `(revision, key)` of one event.
pub fn event_key(event: &Event) -> (i64, String) {
    let kv = event.kv.clone().unwrap_or_default();
    (
        kv.mod_revision,
        String::from_utf8_lossy(&kv.key).into_owned(),
    )
}

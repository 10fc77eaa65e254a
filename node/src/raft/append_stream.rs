//! AppendEntries over long-lived connections to each follower.
//!
//! Each AppendEntries as its own HTTP request cost both members more CPU in
//! HTTP than in Raft (a put is two of them per follower: the entry, then
//! the commit index). Like etcd's peer streams, the leader instead
//! upgrades one peer-URL connection per follower (`POST
//! /raft/append-stream` with `Upgrade: cetera-append/1`, so it shares the
//! peer listener, its TLS and its cluster checks) and then exchanges
//! length-prefixed postcard frames on it: a request, then its answer, in
//! turn. (`network` keeps such streams in a pool per member: replication
//! uses one, and leadership checks that overlap it another.)
//!
//! This module owns the wire format and both ends' loops; it never decides
//! whether a member may append (the peer server's closure does) nor how a
//! failure counts for Raft (`network` does).

use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::connector::PeerConnector;
use super::network::with_causes;
use super::{MemberId, TypeConfig};

/// The `Upgrade` token that asks the peer server for an append stream.
pub const PROTOCOL: &str = "cetera-append/1";

/// The largest frame either end accepts (appends are cut to 1 MiB of
/// entries, but a single entry can be as large as a request may be).
pub(super) const MAX_FRAME: usize = 64 * 1024 * 1024;

/// What the follower's Raft answers to one AppendEntries.
pub type AppendOutcome = Result<AppendEntriesResponse<MemberId>, RaftError<MemberId>>;

/// One frame from the follower: Raft's answer, or the peer server's
/// refusal (with the HTTP status the same refusal has on a single request,
/// e.g. 410 for a removed member).
#[derive(Debug, Serialize, Deserialize)]
pub enum StreamAnswer {
    Answer(AppendOutcome),
    Refused { status: u16, detail: String },
}

/// Why an exchange on the stream failed; the stream is unusable after it.
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    #[error("connecting: {0}")]
    Connect(String),
    /// The peer server answered the upgrade request with this status.
    #[error("refused ({status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("undecodable frame: {0}")]
    Decode(String),
}

/// Writes `value` as one frame: its postcard length (4 bytes, big endian),
/// then its bytes, in a single write.
pub(super) async fn write_frame<W, T>(out: &mut W, value: &T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let mut frame = postcard::to_extend(value, vec![0u8; 4]).map_err(io::Error::other)?;
    let len = u32::try_from(frame.len() - 4)
        .ok()
        .filter(|&len| len as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    out.write_all(&frame).await?;
    out.flush().await
}

/// Reads one frame; `None` when the other end closed the stream between
/// frames.
pub(super) async fn read_frame<R>(input: &mut R) -> io::Result<Option<Vec<u8>>>
where
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match input.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut frame = vec![0u8; len];
    input.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

type Upgraded = BufReader<TokioIo<hyper::upgrade::Upgraded>>;

/// The leader's end of one follower's append stream.
pub(super) struct AppendStream {
    io: Upgraded,
}

impl AppendStream {
    /// Connects to `base` (a peer URL) and upgrades the connection, naming
    /// this member and its cluster as every peer request does.
    pub(super) async fn open(
        connector: &PeerConnector,
        base: &str,
        headers: [(&'static str, String); 2],
    ) -> Result<Self, StreamError> {
        let url = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            super::paths::APPEND_STREAM
        );
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| StreamError::Connect(e.to_string()))?;
        let io = tower::Service::call(&mut connector.clone(), uri.clone())
            .await
            .map_err(|e| StreamError::Connect(with_causes(&*e)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| StreamError::Connect(with_causes(&e)))?;
        tokio::spawn(async move {
            // Ends once the connection is handed over (or fails).
            let _ = connection.with_upgrades().await;
        });
        let mut request = http::Request::post(uri.clone())
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, PROTOCOL);
        if let Some(host) = uri.authority() {
            request = request.header(http::header::HOST, host.as_str());
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| StreamError::Connect(with_causes(&e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| StreamError::Connect(with_causes(&e)))?;
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let detail = body.map_or_else(
                |e| e.to_string(),
                |b| String::from_utf8_lossy(&b).into_owned(),
            );
            return Err(StreamError::Refused { status, detail });
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| StreamError::Connect(with_causes(&e)))?;
        Ok(Self {
            io: BufReader::new(TokioIo::new(upgraded)),
        })
    }

    /// Sends one AppendEntries and reads its answer.
    pub(super) async fn call(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<StreamAnswer, StreamError> {
        write_frame(&mut self.io, rpc).await?;
        let frame = read_frame(&mut self.io).await?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the stream")
        })?;
        postcard::from_bytes(&frame).map_err(|e| StreamError::Decode(e.to_string()))
    }
}

/// The follower's end: answers each AppendEntries read from `io` with
/// `answer`, in order, until the leader closes the stream, the stream
/// fails, or `stop` resolves.
pub async fn serve<S, F, Fut>(io: S, mut answer: F, stop: impl std::future::Future<Output = ()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(Result<AppendEntriesRequest<TypeConfig>, String>) -> Fut,
    Fut: std::future::Future<Output = StreamAnswer>,
{
    let mut io = BufReader::new(io);
    tokio::pin!(stop);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut io) => frame,
            () = &mut stop => return,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "append stream ended");
                return;
            }
        };
        let request = postcard::from_bytes(&frame).map_err(|e| e.to_string());
        let undecodable = request.is_err();
        let reply = answer(request).await;
        if let Err(e) = write_frame(io.get_mut(), &reply).await {
            tracing::debug!(error = %e, "append stream ended");
            return;
        }
        if undecodable || matches!(reply, StreamAnswer::Refused { .. }) {
            // A refused member gets its answer, then the stream ends.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId, Vote};
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;

    fn append(prev: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), prev)),
            leader_commit: None,
            entries: Vec::new(),
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_a_clean_close_ends_the_stream() {
        let (mut near, mut far) = duplex(1 << 16);
        write_frame(&mut near, &append(7)).await.unwrap();
        write_frame(
            &mut near,
            &StreamAnswer::Answer(Ok(AppendEntriesResponse::Success)),
        )
        .await
        .unwrap();
        drop(near);
        let first = read_frame(&mut far).await.unwrap().unwrap();
        let first: AppendEntriesRequest<TypeConfig> = postcard::from_bytes(&first).unwrap();
        assert_eq!(first.prev_log_id.map(|id| id.index), Some(7));
        let second = read_frame(&mut far).await.unwrap().unwrap();
        assert!(matches!(
            postcard::from_bytes(&second).unwrap(),
            StreamAnswer::Answer(Ok(AppendEntriesResponse::Success))
        ));
        assert!(read_frame(&mut far).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_oversized_or_cut_frame_is_an_error_not_a_panic() {
        let (mut near, mut far) = duplex(1 << 16);
        near.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let err = read_frame(&mut far).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let (mut near, mut far) = duplex(1 << 16);
        near.write_all(&10u32.to_be_bytes()).await.unwrap();
        near.write_all(b"abc").await.unwrap();
        drop(near);
        let err = read_frame(&mut far).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn the_follower_answers_in_order_and_hangs_up_after_a_refusal() {
        let (mut leader, follower) = duplex(1 << 16);
        let server = tokio::spawn(serve(
            follower,
            |request: Result<AppendEntriesRequest<TypeConfig>, String>| async move {
                match request.map(|rpc| rpc.prev_log_id.map_or(0, |id| id.index)) {
                    Ok(prev) if prev < 3 => {
                        StreamAnswer::Answer(Ok(AppendEntriesResponse::PartialSuccess(Some(
                            LogId::new(CommittedLeaderId::new(2, 1), prev),
                        ))))
                    }
                    _ => StreamAnswer::Refused {
                        status: 410,
                        detail: "removed".into(),
                    },
                }
            },
            std::future::pending(),
        ));
        for prev in 0..3 {
            write_frame(&mut leader, &append(prev)).await.unwrap();
            let answer = read_frame(&mut leader).await.unwrap().unwrap();
            match postcard::from_bytes(&answer).unwrap() {
                StreamAnswer::Answer(Ok(AppendEntriesResponse::PartialSuccess(Some(id)))) => {
                    assert_eq!(id.index, prev)
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
        write_frame(&mut leader, &append(3)).await.unwrap();
        let answer = read_frame(&mut leader).await.unwrap().unwrap();
        assert!(matches!(
            postcard::from_bytes(&answer).unwrap(),
            StreamAnswer::Refused { status: 410, .. }
        ));
        server.await.unwrap();
        assert!(read_frame(&mut leader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn garbage_gets_a_refusal_and_the_stream_ends() {
        let (mut leader, follower) = duplex(1 << 16);
        let server = tokio::spawn(serve(
            follower,
            |request: Result<AppendEntriesRequest<TypeConfig>, String>| async move {
                match request {
                    Ok(_) => StreamAnswer::Answer(Ok(AppendEntriesResponse::Success)),
                    Err(detail) => StreamAnswer::Refused {
                        status: 400,
                        detail,
                    },
                }
            },
            std::future::pending(),
        ));
        leader.write_all(&3u32.to_be_bytes()).await.unwrap();
        leader.write_all(&[0xff, 0xff, 0xff]).await.unwrap();
        let answer = read_frame(&mut leader).await.unwrap().unwrap();
        assert!(matches!(
            postcard::from_bytes(&answer).unwrap(),
            StreamAnswer::Refused { status: 400, .. }
        ));
        server.await.unwrap();
    }
}

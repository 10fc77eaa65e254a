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

use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connector::PeerConnector;
use super::stream::{
    Frame, Reply, StreamError, Upgraded, expect_frame, open_upgraded, serve_frames, write_frame,
};
use super::{MemberId, TypeConfig};

/// The `Upgrade` token that asks the peer server for an append stream.
pub const PROTOCOL: &str = "cetera-append/1";

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
        let io = open_upgraded(
            connector,
            base,
            super::paths::APPEND_STREAM,
            PROTOCOL,
            headers,
        )
        .await?;
        Ok(Self { io })
    }

    /// Sends one AppendEntries and reads its answer.
    pub(super) async fn call(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<StreamAnswer, StreamError> {
        write_frame(&mut self.io, rpc).await?;
        let frame = expect_frame(&mut self.io).await?;
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
    let answer_frame = |frame: Vec<u8>| {
        let request = postcard::from_bytes(&frame).map_err(|e| e.to_string());
        let undecodable = request.is_err();
        let reply = answer(request);
        async move {
            let reply = reply.await;
            Reply {
                // A refused member gets its answer, then the stream ends.
                last: undecodable || matches!(reply, StreamAnswer::Refused { .. }),
                frame: Frame::of(&reply),
            }
        }
    };
    serve_frames("append", io, answer_frame, stop).await;
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId, Vote};
    use tokio::io::{AsyncWriteExt, duplex};

    use super::super::stream::read_frame;
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

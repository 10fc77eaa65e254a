//! Member-to-member calls (forwarded proposals, read-index questions, lease
//! renewals) over long-lived connections.
//!
//! A follower forwards every write its clients send it, and asks the leader
//! for a read index for every round of linearizable reads: as one HTTP
//! request each, that cost both members more than the write or the read
//! did. A call stream is a peer-URL connection upgraded once (`POST
//! /cetera/call-stream` with `Upgrade: cetera-call/1`, admitted like any
//! peer request) that then carries calls in turn: a frame with the call's
//! path and postcard body, answered by a frame with the HTTP status the
//! same call would have had and its body. Concurrent calls use streams of
//! their own (`network` keeps a pool per member), so a slow call never
//! holds up another.
//!
//! Frames (inside `stream`'s length prefix):
//! - call: path length (2 bytes, big endian), path (UTF-8), body;
//! - answer: status (2 bytes, big endian), body.
//!
//! This module owns the frames and both ends' loops; it never decides
//! whether a member may call (the peer server does) nor what a call means.

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::connector::PeerConnector;
use super::stream::{
    Frame, Reply, StreamError, Upgraded, expect_frame, is_dead, open_upgraded, serve_frames,
    write_frame_of,
};

/// The `Upgrade` token that asks the peer server for a call stream.
pub const PROTOCOL: &str = "cetera-call/1";

/// The status answered to a call frame that cannot be read.
const BAD_REQUEST: u16 = 400;

/// One call as the server reads it.
#[derive(Debug, PartialEq)]
pub struct Call {
    pub path: String,
    pub body: Bytes,
}

/// The answer to a call: an HTTP status and the body.
#[derive(Debug, PartialEq)]
pub struct CallAnswer {
    pub status: u16,
    pub body: Bytes,
}

fn decode_call(mut frame: Vec<u8>) -> Result<Call, String> {
    let Some((len, _)) = frame.split_first_chunk::<2>() else {
        return Err("a call frame shorter than its path length".into());
    };
    let path_end = 2 + u16::from_be_bytes(*len) as usize;
    if frame.len() < path_end {
        return Err("a call frame shorter than its path".into());
    }
    let body = Bytes::from(frame.split_off(path_end));
    let path = String::from_utf8(frame.split_off(2)).map_err(|_| "a path that is not UTF-8")?;
    Ok(Call { path, body })
}

fn decode_answer(mut frame: Vec<u8>) -> Result<CallAnswer, StreamError> {
    let Some((status, _)) = frame.split_first_chunk::<2>() else {
        return Err(StreamError::Decode("an answer frame without status".into()));
    };
    let status = u16::from_be_bytes(*status);
    Ok(CallAnswer {
        status,
        body: Bytes::from(frame.split_off(2)),
    })
}

/// The calling end of one call stream.
pub(super) struct CallStream {
    io: Upgraded,
}

impl CallStream {
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
            super::paths::CALL_STREAM,
            PROTOCOL,
            headers,
        )
        .await?;
        Ok(Self { io })
    }

    /// Makes one call and reads its answer.
    pub(super) async fn call(
        &mut self,
        path: &str,
        body: &[u8],
    ) -> Result<CallAnswer, StreamError> {
        let path_len = u16::try_from(path.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path too long"))?;
        write_frame_of(
            &mut self.io,
            &[&path_len.to_be_bytes(), path.as_bytes(), body],
        )
        .await?;
        decode_answer(expect_frame(&mut self.io).await?)
    }

    /// True when this idle stream can no longer carry a call (see
    /// [`is_dead`]): checked before reuse, since a call that may have
    /// reached the member is never sent twice.
    pub(super) fn is_dead(&mut self) -> bool {
        is_dead(&mut self.io)
    }
}

/// The answering end: answers each call read from `io` with `answer`, in
/// order, until the caller closes the stream, the stream fails, or `stop`
/// resolves. An unreadable call gets a 400 and the stream ends.
pub async fn serve<S, F, Fut>(io: S, mut answer: F, stop: impl std::future::Future<Output = ()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(Call) -> Fut,
    Fut: std::future::Future<Output = CallAnswer>,
{
    let answer_frame = |frame: Vec<u8>| {
        let call = decode_call(frame).map(&mut answer);
        async move {
            let (reply, undecodable) = match call {
                Ok(reply) => (reply.await, false),
                Err(detail) => (
                    CallAnswer {
                        status: BAD_REQUEST,
                        body: Bytes::from(detail),
                    },
                    true,
                ),
            };
            Reply {
                frame: Ok(Frame::of_parts(&[&reply.status.to_be_bytes(), &reply.body])),
                last: undecodable,
            }
        }
    };
    serve_frames("call", io, answer_frame, stop).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt, duplex};

    use super::super::stream::{read_frame, write_frame_of};
    use super::*;

    async fn echo(call: Call) -> CallAnswer {
        let status = if call.path == "missing" { 404 } else { 200 };
        let mut body = call.path.into_bytes();
        body.push(b':');
        body.extend_from_slice(&call.body);
        CallAnswer {
            status,
            body: Bytes::from(body),
        }
    }

    fn ask(path: &str, body: &[u8]) -> Vec<u8> {
        let mut frame = (path.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(path.as_bytes());
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn calls_and_answers_decode_what_was_encoded() {
        assert_eq!(
            decode_call(ask("cetera/propose", b"\x01\x02")),
            Ok(Call {
                path: "cetera/propose".into(),
                body: Bytes::from_static(b"\x01\x02"),
            })
        );
        assert_eq!(
            decode_call(ask("", b"")),
            Ok(Call {
                path: String::new(),
                body: Bytes::new(),
            })
        );
        let answer = decode_answer(vec![0x01, 0x9a, b'o', b'k']).unwrap();
        assert_eq!((answer.status, &answer.body[..]), (410, &b"ok"[..]));
    }

    #[test]
    fn short_or_garbled_frames_are_errors_not_panics() {
        assert!(decode_call(vec![]).is_err());
        assert!(decode_call(vec![0]).is_err());
        assert!(decode_call(vec![0, 5, b'a']).is_err());
        assert!(decode_call(vec![0, 2, 0xff, 0xfe]).is_err());
        assert!(decode_answer(vec![7]).is_err());
    }

    #[tokio::test]
    async fn calls_are_answered_in_turn_and_garbage_ends_the_stream() {
        let (mut caller, callee) = duplex(1 << 16);
        let server = tokio::spawn(serve(callee, echo, std::future::pending()));
        for (path, body, status) in [
            ("a", &b"1"[..], 200),
            ("missing", b"", 404),
            ("b", b"22", 200),
        ] {
            write_frame_of(&mut caller, &[&ask(path, body)])
                .await
                .unwrap();
            let answer = decode_answer(expect_frame(&mut caller).await.unwrap()).unwrap();
            assert_eq!(answer.status, status);
            assert_eq!(answer.body, [path.as_bytes(), b":", body].concat());
        }
        caller.write_all(&1u32.to_be_bytes()).await.unwrap();
        caller.write_all(&[9]).await.unwrap();
        let answer = decode_answer(expect_frame(&mut caller).await.unwrap()).unwrap();
        assert_eq!(answer.status, BAD_REQUEST);
        server.await.unwrap();
        assert!(read_frame(&mut caller).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_caller_closing_ends_the_stream() {
        let (caller, callee) = duplex(1 << 16);
        let server = tokio::spawn(serve(callee, echo, std::future::pending()));
        drop(caller);
        server.await.unwrap();
    }
}

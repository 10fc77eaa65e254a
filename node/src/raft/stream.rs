//! What the peer streams share: upgrading a peer-URL connection, and
//! length-prefixed frames on it.
//!
//! A peer stream is a connection to a member's peer URL, upgraded from a
//! `POST` that the peer server admits like any peer request (same listener,
//! same TLS, same cluster and removed-member checks), then carrying frames:
//! a 4-byte big-endian length, then that many bytes. `append_stream` and
//! `call_stream` give the frames their meaning.
//!
//! This module never decides what a frame means nor whether a member may
//! send it.

use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::connector::PeerConnector;
use super::network::with_causes;

/// The largest frame either end accepts (appends are cut to 1 MiB of
/// entries, but a single entry can be as large as a request may be).
pub(super) const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Why an exchange on a stream failed; the stream is unusable after it.
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

/// An upgraded peer connection, read through a buffer.
pub(super) type Upgraded = BufReader<TokioIo<hyper::upgrade::Upgraded>>;

/// Connects to `base` (a peer URL), asks for `path` with `Upgrade:
/// protocol` and the sender's `headers`, and returns the upgraded
/// connection.
pub(super) async fn open_upgraded(
    connector: &PeerConnector,
    base: &str,
    path: &str,
    protocol: &'static str,
    headers: [(&'static str, String); 2],
) -> Result<Upgraded, StreamError> {
    let url = format!("{}/{path}", base.trim_end_matches('/'));
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
        .header(http::header::UPGRADE, protocol);
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
    Ok(BufReader::new(TokioIo::new(upgraded)))
}

/// One frame ready to send, built with room for its length in front.
pub(super) struct Frame(Vec<u8>);

impl Frame {
    /// `value`, postcard-encoded.
    pub(super) fn of<T: Serialize>(value: &T) -> io::Result<Self> {
        postcard::to_extend(value, vec![0u8; 4])
            .map(Self)
            .map_err(io::Error::other)
    }

    /// `parts`, one after the other.
    pub(super) fn of_parts(parts: &[&[u8]]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut frame = Vec::with_capacity(4 + len);
        frame.extend_from_slice(&[0; 4]);
        for part in parts {
            frame.extend_from_slice(part);
        }
        Self(frame)
    }

    /// Fills in the length and writes the frame in a single write.
    pub(super) async fn send<W: AsyncWrite + Unpin>(self, out: &mut W) -> io::Result<()> {
        let mut frame = self.0;
        let len = u32::try_from(frame.len() - 4)
            .ok()
            .filter(|&len| len as usize <= MAX_FRAME)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        out.write_all(&frame).await?;
        out.flush().await
    }
}

/// Writes `value` as one postcard frame.
pub(super) async fn write_frame<W, T>(out: &mut W, value: &T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    Frame::of(value)?.send(out).await
}

/// Writes `parts`, one after the other, as one frame.
pub(super) async fn write_frame_of<W>(out: &mut W, parts: &[&[u8]]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    Frame::of_parts(parts).send(out).await
}

/// The answering end's reply to one frame.
pub(super) struct Reply {
    pub(super) frame: io::Result<Frame>,
    /// The stream ends once this reply is sent (a refusal, or a frame
    /// that could not be read: the two ends may be out of step).
    pub(super) last: bool,
}

/// The answering end of a stream (`kind` names it in logs): answers each
/// frame read from `io` with `answer`, in order, until the other end closes
/// the stream, the stream fails, a reply is the last, or `stop` resolves.
pub(super) async fn serve_frames<S, F, Fut>(
    kind: &'static str,
    io: S,
    mut answer: F,
    stop: impl std::future::Future<Output = ()>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Reply>,
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
                tracing::debug!(error = %e, stream = kind, "peer stream ended");
                return;
            }
        };
        let reply = answer(frame).await;
        let sent = match reply.frame {
            Ok(frame) => frame.send(io.get_mut()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, stream = kind, "peer stream ended");
            return;
        }
        if reply.last {
            return;
        }
    }
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

/// Reads one frame that must come: the other end closing first is an
/// error.
pub(super) async fn expect_frame<R>(input: &mut R) -> io::Result<Vec<u8>>
where
    R: AsyncRead + Unpin,
{
    read_frame(input)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the stream"))
}

/// True when an idle stream can no longer be used: the other end closed
/// it, failed, or sent something unasked (it is out of step). Never waits.
pub(super) fn is_dead<R: AsyncRead + Unpin>(input: &mut R) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut byte);
    !std::pin::Pin::new(input)
        .poll_read(&mut cx, &mut buf)
        .is_pending()
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;

    #[tokio::test]
    async fn frames_of_parts_read_back_whole() {
        let (mut near, mut far) = duplex(1 << 16);
        write_frame_of(&mut near, &[b"ab", b"", b"cde"])
            .await
            .unwrap();
        assert_eq!(expect_frame(&mut far).await.unwrap(), b"abcde");
        drop(near);
        let err = expect_frame(&mut far).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
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
    async fn an_idle_stream_is_dead_once_closed_or_out_of_step() {
        let (near, mut far) = duplex(1 << 16);
        assert!(!is_dead(&mut far), "open and quiet");
        drop(near);
        assert!(is_dead(&mut far), "closed by the other end");

        let (mut near, mut far) = duplex(1 << 16);
        near.write_all(b"x").await.unwrap();
        assert!(is_dead(&mut far), "something came that nobody asked for");
    }
}

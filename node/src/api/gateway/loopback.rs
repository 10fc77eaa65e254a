//! The gateway's gRPC client: it calls the member's own gRPC services in
//! process, as etcd's gateway calls its server over a loopback connection,
//! so the JSON and gRPC APIs run exactly the same handlers.

use std::convert::Infallible;
use std::pin::Pin;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tonic::service::Routes;
use tonic::{Code, Status};
use tower::ServiceExt;
use warp::http::{HeaderMap, HeaderValue, Method, Request, header};

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// One message in gRPC's length-prefixed framing (uncompressed).
fn frame(message: Vec<u8>) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    buf.extend_from_slice(&message);
    buf.freeze()
}

/// Calls `method` (`package.Service/Method`) with `requests` (encoded
/// messages) and `metadata`; yields the encoded responses, then the call's
/// error if it failed.
pub(super) async fn call(
    services: Routes,
    method: String,
    metadata: HeaderMap,
    requests: BoxStream<Vec<u8>>,
) -> BoxStream<Result<Vec<u8>, Status>> {
    let frames = requests.map(|message| Ok::<_, Infallible>(Frame::data(frame(message))));
    let mut request = Request::new(tonic::body::Body::new(StreamBody::new(frames)));
    *request.method_mut() = Method::POST;
    match format!("/{method}").parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return failed(Status::internal(format!("bad gRPC method {method}"))),
    }
    let headers = request.headers_mut();
    headers.extend(metadata);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    let response = match services.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    // A trailers-only response: the status is in the headers.
    if let Some(status) = Status::from_header_map(&parts.headers) {
        return if status.code() == Code::Ok {
            Box::pin(futures::stream::empty())
        } else {
            failed(status)
        };
    }
    Box::pin(futures::stream::unfold(
        Some((body, BytesMut::new())),
        |state| async move {
            let (mut body, mut buf) = state?;
            loop {
                match take_message(&mut buf) {
                    Some(Ok(message)) => return Some((Ok(message), Some((body, buf)))),
                    Some(Err(status)) => return Some((Err(status), None)),
                    None => {}
                }
                match body.frame().await {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => buf.extend_from_slice(&data),
                        Err(frame) => {
                            let status = frame
                                .into_trailers()
                                .ok()
                                .and_then(|trailers| Status::from_header_map(&trailers))
                                .filter(|status| status.code() != Code::Ok)?;
                            return Some((Err(status), None));
                        }
                    },
                    Some(Err(status)) => return Some((Err(status), None)),
                    None if buf.is_empty() => return None,
                    None => {
                        let status = Status::internal("gRPC response ended inside a message");
                        return Some((Err(status), None));
                    }
                }
            }
        },
    ))
}

fn failed(status: Status) -> BoxStream<Result<Vec<u8>, Status>> {
    Box::pin(futures::stream::once(async move { Err(status) }))
}

/// The next complete message in `buf`, if any.
fn take_message(buf: &mut BytesMut) -> Option<Result<Vec<u8>, Status>> {
    if buf.len() < 5 {
        return None;
    }
    if buf[0] != 0 {
        return Some(Err(Status::internal("compressed gRPC response")));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    Some(Ok(buf.split_to(len).to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame(b"abc".to_vec()));
        buf.extend_from_slice(&frame(Vec::new()));
        buf.extend_from_slice(&frame(b"de".to_vec())[..4]);
        assert_eq!(take_message(&mut buf).unwrap().unwrap(), b"abc");
        assert_eq!(take_message(&mut buf).unwrap().unwrap(), b"");
        assert!(take_message(&mut buf).is_none());
        buf.extend_from_slice(&[2, b'd', b'e']);
        assert_eq!(take_message(&mut buf).unwrap().unwrap(), b"de");
    }
}

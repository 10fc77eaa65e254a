//! Fewer, larger writes on client connections.
//!
//! hyper's HTTP/2 server flushes whenever its connection task runs out of
//! frames to send, and with two worker threads it often runs while a
//! response is still being produced on the other: a unary gRPC answer then
//! leaves as two `writev`s, headers and data first and the 10-byte
//! trailers after, and under load every response pays its own syscall and
//! loopback delivery. [`WriteCoalescer`] holds what is written until a
//! flush, and lets the first flush of a burst yield to the scheduler once,
//! so responses (and trailers) that are ready by then leave in the same
//! write. With nothing else runnable the task is polled again at once, so
//! a lone request waits one scheduler turn, not a timer.
//!
//! It must never hold data across a flush beyond that one yield, nor
//! reorder or drop bytes: it only changes how the stream is cut into
//! syscalls.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Beyond this many buffered bytes a write is passed on without waiting
/// for the flush (h2's own write buffer is of this order).
const MAX_BUFFERED: usize = 64 * 1024;

/// A stream whose writes are gathered until the flush after a yield.
pub(super) struct WriteCoalescer<S> {
    inner: S,
    buffer: Vec<u8>,
    /// How much of `buffer` was already written.
    written: usize,
    /// The pending yield of the current flush, once it was deferred.
    yielding: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// True once this burst's flush has yielded: the next attempt writes.
    yielded: bool,
}

impl<S> WriteCoalescer<S> {
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            buffer: Vec::new(),
            written: 0,
            yielding: None,
            yielded: false,
        }
    }
}

impl<S: AsyncWrite + Unpin> WriteCoalescer<S> {
    /// Writes out everything buffered.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buffer.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buffer[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buffer.clear();
        self.written = 0;
        self.yielded = false;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `incoming` more bytes, writing out first if the
    /// buffer would grow past its bound.
    fn poll_room_for(&mut self, cx: &mut Context<'_>, incoming: usize) -> Poll<io::Result<()>> {
        if !self.buffer.is_empty() && self.buffer.len() + incoming > MAX_BUFFERED {
            ready!(self.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteCoalescer<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteCoalescer<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_room_for(cx, data.len()))?;
        if data.len() >= MAX_BUFFERED {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buffer.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        ready!(this.poll_room_for(cx, total))?;
        if total >= MAX_BUFFERED {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for buf in bufs {
            this.buffer.extend_from_slice(buf);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.buffer.is_empty() && !this.yielded {
            // The caller comes back after the other runnable tasks, writes
            // what they produced meanwhile, and flushes everything at once.
            let yielding = this
                .yielding
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            ready!(yielding.as_mut().poll(cx));
            this.yielding = None;
            this.yielded = true;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Records each write it is given, as one syscall would be.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Recorder {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0.lock().unwrap().clone()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writes_before_a_flush_leave_together_and_in_order() {
        let recorder = Recorder::default();
        let mut io = WriteCoalescer::new(recorder.clone());
        io.write_all(b"headers+data").await.unwrap();
        let slices = [io::IoSlice::new(b"|"), io::IoSlice::new(b"trailers")];
        assert_eq!(io.write_vectored(&slices).await.unwrap(), 9);
        assert!(
            recorder.writes().is_empty(),
            "nothing leaves before a flush"
        );
        io.flush().await.unwrap();
        assert_eq!(recorder.writes(), vec![b"headers+data|trailers".to_vec()]);
        io.write_all(b"next").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(recorder.writes().len(), 2, "each flush ends its burst");
    }

    #[tokio::test]
    async fn a_flush_yields_once_so_later_writes_join_the_burst() {
        let recorder = Recorder::default();
        let mut io = WriteCoalescer::new(recorder.clone());
        io.write_all(b"first").await.unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_pending());
        // What another task produced while the flush yielded.
        io.write_all(b"+second").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(recorder.writes(), vec![b"first+second".to_vec()]);
    }

    #[tokio::test]
    async fn shutdown_writes_out_what_is_buffered() {
        let recorder = Recorder::default();
        let mut io = WriteCoalescer::new(recorder.clone());
        io.write_all(b"last words").await.unwrap();
        io.shutdown().await.unwrap();
        assert_eq!(recorder.writes(), vec![b"last words".to_vec()]);
    }

    #[tokio::test]
    async fn a_large_write_is_passed_on_after_what_was_buffered() {
        let recorder = Recorder::default();
        let mut io = WriteCoalescer::new(recorder.clone());
        io.write_all(b"small").await.unwrap();
        let big = vec![7u8; MAX_BUFFERED];
        io.write_all(&big).await.unwrap();
        assert_eq!(recorder.writes(), vec![b"small".to_vec(), big]);
    }

    #[tokio::test]
    async fn reads_pass_through() {
        use tokio::io::AsyncReadExt;
        let (client, mut server) = tokio::io::duplex(64);
        let mut io = WriteCoalescer::new(client);
        server.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        io.write_all(b"pong").await.unwrap();
        io.flush().await.unwrap();
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }
}

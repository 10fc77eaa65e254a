//! Normalises the HTTP/2 `:authority` of requests on the client port, and
//! nothing else.
//!
//! etcdctl 3.4 (and other clients built on grpc-go's old balancer) dials
//! each endpoint given with a scheme, e.g. `--endpoints=http://127.0.0.1:2379`
//! or every member in `endpoint status --cluster`, with the whole URL as the
//! `:authority` pseudo-header. grpc-go servers (real etcd) accept that; the
//! `h2` crate under hyper rejects it as a malformed authority and resets the
//! stream with PROTOCOL_ERROR, so those commands fail against cetera.
//!
//! [`AuthorityFix`] wraps each accepted connection before hyper sees it.
//! Writes pass straight through. On the read side, a connection that does
//! not open with the HTTP/2 preface (HTTP/1.1) passes through untouched.
//! On an HTTP/2 connection every frame passes through unchanged except
//! HEADERS and its CONTINUATIONs: each header block is reassembled,
//! HPACK-decoded with a decoder that follows the client's dynamic table,
//! its `:authority` normalised (see [`normalize_authority`]), and re-encoded
//! with literal fields that never touch the dynamic table, so the server's
//! decoder table stays empty and in sync. Padding is dropped, priority data
//! and the END_STREAM flag kept, and the block re-split at 16384 bytes, the
//! smallest SETTINGS_MAX_FRAME_SIZE any peer accepts.
//!
//! What it must never do: interpret anything else. It does not validate
//! frames, streams, settings or headers beyond what it needs to rewrite a
//! block; anything it cannot handle (a malformed or oversized header block,
//! a CONTINUATION out of place, an HPACK error) makes it forward that block
//! and the rest of the connection byte for byte, so h2 decides about it
//! exactly as it would have without this layer. Header names, values other
//! than an invalid `:authority`, their order and their never-indexed marks
//! are forwarded as received.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;

/// Largest frame payload emitted: the initial SETTINGS_MAX_FRAME_SIZE, which
/// no peer may set lower, and what hyper advertises.
const OUT_FRAME_MAX: usize = 16_384;

/// Most bytes (frame headers included) of one incoming header block that
/// are buffered; a larger block is forwarded as received. hyper's limit on
/// a decoded header list is 16 KiB, so no acceptable request comes near.
const MAX_BLOCK_IN: usize = 1 << 20;

/// Most bytes one re-encoded header block may take (the decoded list can be
/// far larger than its encoding through indexed fields).
const MAX_BLOCK_OUT: usize = 1 << 20;

/// SETTINGS_HEADER_TABLE_SIZE the server advertises (h2's default of 4096,
/// which hyper keeps unless `header_table_size` is configured): the largest
/// dynamic table the client's encoder may use.
const HEADER_TABLE_SIZE: usize = 4096;

/// Initial size of the read buffer of an HTTP/2 connection.
const READ_CHUNK: usize = 16 * 1024;

/// A connection wrapper that normalises the HTTP/2 `:authority` the client
/// sends; see the module documentation.
pub(crate) struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
}

enum Mode {
    /// Seen this many bytes, all matching the preface so far (they were
    /// already handed to the reader).
    Detect(usize),
    /// An HTTP/2 connection whose header blocks are rewritten.
    Rewrite(Box<Rewriter>),
    /// Everything passes through.
    Raw,
}

impl<S> AuthorityFix<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            mode: Mode::Detect(0),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.mode {
            Mode::Raw => Pin::new(&mut this.inner).poll_read(cx, buf),
            Mode::Detect(seen) => {
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                let seen = *seen;
                // Read straight into the caller's buffer, never past the
                // preface, so that whatever follows it can be parsed.
                let want = (PREFACE.len() - seen).min(buf.remaining());
                let (n, matched) = {
                    let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
                    let got = limited.filled();
                    (got.len(), got == &PREFACE[seen..seen + got.len()])
                };
                buf.advance(n);
                this.mode = if n == 0 || !matched {
                    Mode::Raw
                } else if seen + n == PREFACE.len() {
                    Mode::Rewrite(Box::default())
                } else {
                    Mode::Detect(seen + n)
                };
                Poll::Ready(Ok(()))
            }
            Mode::Rewrite(rewriter) => rewriter.poll_read(&mut this.inner, cx, buf),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The read side of an HTTP/2 connection after the preface.
struct Rewriter {
    /// Bytes read and not yet handed on: `rx[start..end]`.
    rx: Vec<u8>,
    start: usize,
    end: usize,
    /// Rewritten frames not yet handed on: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes, from `rx` and then from the socket, that pass through as they
    /// are (the rest of a frame that is not a header block).
    passthrough: usize,
    /// Gave up rewriting: everything from `rx[start..]` on passes through.
    raw: bool,
    /// The socket reported end of file.
    eof: bool,
    /// Offset from `start` of the next frame of a header block being
    /// gathered.
    scan: usize,
    hpack: Decoder,
    /// Holds a header block spread over several frames.
    fragments: Vec<u8>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self {
            rx: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            out: Vec::new(),
            out_pos: 0,
            passthrough: 0,
            raw: false,
            eof: false,
            scan: 0,
            hpack: Decoder::default(),
            fragments: Vec::new(),
        }
    }
}

/// What [`Rewriter::step`] did.
enum Step {
    /// Something was queued (output, pass-through, or the raw fallback).
    Progress,
    /// `rx` holds no complete unit to work on.
    NeedMore,
}

/// A frame header.
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(b: &[u8]) -> FrameHead {
        FrameHead {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        }
    }
}

fn put_frame_head(out: &mut [u8], len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len < 1 << 24);
    out[0] = (len >> 16) as u8;
    out[1] = (len >> 8) as u8;
    out[2] = len as u8;
    out[3] = kind;
    out[4] = flags;
    out[5..9].copy_from_slice(&stream.to_be_bytes());
}

impl Rewriter {
    fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.out_pos < self.out.len() {
                let n = (self.out.len() - self.out_pos).min(buf.remaining());
                buf.put_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                if self.out_pos == self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if self.raw || self.passthrough > 0 {
                let limit = if self.raw {
                    usize::MAX
                } else {
                    self.passthrough
                };
                if self.end > self.start {
                    let n = limit.min(self.end - self.start).min(buf.remaining());
                    buf.put_slice(&self.rx[self.start..self.start + n]);
                    self.start += n;
                    if !self.raw {
                        self.passthrough -= n;
                    }
                    return Poll::Ready(Ok(()));
                }
                if self.raw {
                    self.rx = Vec::new();
                    return Pin::new(inner).poll_read(cx, buf);
                }
                // The rest of a pass-through frame: straight into the
                // caller's buffer.
                let want = self.passthrough.min(buf.remaining());
                let n = {
                    let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
                    ready!(Pin::new(&mut *inner).poll_read(cx, &mut limited))?;
                    limited.filled().len()
                };
                buf.advance(n);
                self.passthrough -= n;
                return Poll::Ready(Ok(()));
            }
            match self.step() {
                Step::Progress => continue,
                Step::NeedMore if self.eof => {
                    if self.end == self.start {
                        return Poll::Ready(Ok(()));
                    }
                    // A truncated frame: hand it on as it is.
                    self.raw = true;
                }
                Step::NeedMore => {
                    self.make_room();
                    let n = {
                        let mut space = ReadBuf::new(&mut self.rx[self.end..]);
                        ready!(Pin::new(&mut *inner).poll_read(cx, &mut space))?;
                        space.filled().len()
                    };
                    if n == 0 {
                        self.eof = true;
                    }
                    self.end += n;
                }
            }
        }
    }

    /// Frees space at the end of `rx` for the next read.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.rx.len() - self.end >= READ_CHUNK / 4 {
            return;
        }
        if self.start > 0 {
            self.rx.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.rx.len() - self.end < READ_CHUNK / 4 {
            // Only a header block being gathered outgrows the buffer, and
            // that is bounded by MAX_BLOCK_IN.
            let len = self.rx.len();
            self.rx.resize(len * 2, 0);
        }
    }

    /// Gives up rewriting this connection: the pending bytes and all that
    /// follow pass through unchanged.
    fn give_up(&mut self, why: &str) -> Step {
        tracing::debug!(
            reason = why,
            "h2 authority fix: forwarding the connection unchanged"
        );
        self.raw = true;
        self.scan = 0;
        Step::Progress
    }

    /// Works on the frame at the start of `rx`.
    fn step(&mut self) -> Step {
        let pending = &self.rx[self.start..self.end];
        if pending.len() < FRAME_HEADER_LEN {
            return Step::NeedMore;
        }
        let head = FrameHead::parse(pending);
        match head.kind {
            TYPE_HEADERS => self.gather_block(),
            TYPE_CONTINUATION => self.give_up("CONTINUATION outside a header block"),
            _ => {
                self.passthrough = FRAME_HEADER_LEN + head.len;
                Step::Progress
            }
        }
    }

    /// Waits for a whole header block (HEADERS and its CONTINUATIONs) in
    /// `rx`, then rewrites it.
    fn gather_block(&mut self) -> Step {
        let pending = &self.rx[self.start..self.end];
        let stream = FrameHead::parse(pending).stream;
        loop {
            let at = self.scan;
            if pending.len() < at + FRAME_HEADER_LEN {
                return Step::NeedMore;
            }
            let head = FrameHead::parse(&pending[at..]);
            if at > 0 && (head.kind != TYPE_CONTINUATION || head.stream != stream) {
                return self.give_up("header block interrupted");
            }
            let next = at + FRAME_HEADER_LEN + head.len;
            if next > MAX_BLOCK_IN {
                return self.give_up("header block too large");
            }
            if pending.len() < next {
                return Step::NeedMore;
            }
            self.scan = next;
            if head.flags & FLAG_END_HEADERS != 0 {
                self.scan = 0;
                return match self.rewrite_block(next) {
                    Ok(()) => {
                        self.start += next;
                        Step::Progress
                    }
                    Err(why) => {
                        self.out.clear();
                        self.give_up(why)
                    }
                };
            }
        }
    }

    /// Rewrites the header block held in `rx[start..start + len]` into
    /// `out`.
    fn rewrite_block(&mut self, len: usize) -> Result<(), &'static str> {
        let frames = &self.rx[self.start..self.start + len];
        let head = FrameHead::parse(frames);
        let mut payload = &frames[FRAME_HEADER_LEN..FRAME_HEADER_LEN + head.len];
        let mut pad = 0;
        if head.flags & FLAG_PADDED != 0 {
            let (&n, rest) = payload.split_first().ok_or("PADDED without a pad length")?;
            pad = usize::from(n);
            payload = rest;
        }
        let mut priority: &[u8] = &[];
        if head.flags & FLAG_PRIORITY != 0 {
            if payload.len() < PRIORITY_LEN {
                return Err("PRIORITY without priority data");
            }
            (priority, payload) = payload.split_at(PRIORITY_LEN);
        }
        if pad > payload.len() {
            return Err("padding exceeds the frame");
        }
        let first_fragment = &payload[..payload.len() - pad];
        let block = if FRAME_HEADER_LEN + head.len == len {
            first_fragment
        } else {
            self.fragments.clear();
            self.fragments.extend_from_slice(first_fragment);
            let mut at = FRAME_HEADER_LEN + head.len;
            while at < len {
                let cont = FrameHead::parse(&frames[at..]);
                let body = at + FRAME_HEADER_LEN;
                self.fragments
                    .extend_from_slice(&frames[body..body + cont.len]);
                at = body + cont.len;
            }
            &self.fragments[..]
        };

        let out = &mut self.out;
        debug_assert!(out.is_empty());
        out.resize(FRAME_HEADER_LEN, 0);
        out.extend_from_slice(priority);
        let block_start = out.len();
        self.hpack
            .transcode(block, out, MAX_BLOCK_OUT)
            .map_err(|e| e.0)?;

        let block_len = out.len() - block_start;
        let first_room = OUT_FRAME_MAX - priority.len();
        let keep = head.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
        if block_len <= first_room {
            let len = priority.len() + block_len;
            put_frame_head(out, len, TYPE_HEADERS, keep | FLAG_END_HEADERS, head.stream);
        } else {
            put_frame_head(out, OUT_FRAME_MAX, TYPE_HEADERS, keep, head.stream);
            let rest = out.split_off(block_start + first_room);
            let mut chunks = rest.chunks(OUT_FRAME_MAX).peekable();
            while let Some(chunk) = chunks.next() {
                let flags = if chunks.peek().is_none() {
                    FLAG_END_HEADERS
                } else {
                    0
                };
                let at = out.len();
                out.resize(at + FRAME_HEADER_LEN, 0);
                put_frame_head(
                    &mut out[at..],
                    chunk.len(),
                    TYPE_CONTINUATION,
                    flags,
                    head.stream,
                );
                out.extend_from_slice(chunk);
            }
        }
        Ok(())
    }
}

/// Returns the `:authority` to forward for `value`: a valid authority as it
/// is; `scheme://host:port/anything` as `host:port`, if that is a valid
/// authority; anything else as it is (for h2 to reject as before).
fn normalize_authority(value: &[u8]) -> &[u8] {
    // A valid authority has no '/', and a URL always has one.
    if !value.contains(&b'/') {
        return value;
    }
    let Some(colon) = value.windows(3).position(|w| w == b"://") else {
        return value;
    };
    if !is_scheme(&value[..colon]) {
        return value;
    }
    let rest = &value[colon + 3..];
    let host = match rest.iter().position(|&b| b == b'/') {
        Some(slash) => &rest[..slash],
        None => rest,
    };
    if !host.is_empty() && http::uri::Authority::try_from(host).is_ok() {
        host
    } else {
        value
    }
}

/// RFC 3986 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------
// HPACK (RFC 7541): a decoder that follows the client's dynamic table and
// writes every field back out as a literal that leaves the server's table
// alone.

/// Why a header block could not be decoded.
#[derive(Debug, PartialEq, Eq)]
struct HpackError(&'static str);

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// A header field: name and value.
type Field = (Box<[u8]>, Box<[u8]>);

/// The client encoder's dynamic table (RFC 7541 §2.3.2, §4).
struct DynamicTable {
    /// Newest first.
    entries: VecDeque<Field>,
    /// Sum of entry sizes (name + value + 32).
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        if let Some(&(name, value)) = index.checked_sub(1).and_then(|i| STATIC_TABLE.get(i)) {
            return Ok((name, value));
        }
        index
            .checked_sub(STATIC_TABLE.len() + 1)
            .and_then(|i| self.entries.get(i))
            .map(|(name, value)| (&name[..], &value[..]))
            .ok_or(HpackError("index out of range"))
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front((name.into(), value.into()));
        self.size += size;
    }

    fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + 32,
                None => self.size = 0,
            }
        }
    }
}

/// Decodes the client's header blocks in order, keeping its dynamic table.
struct Decoder {
    table: DynamicTable,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            table: DynamicTable {
                entries: VecDeque::new(),
                size: 0,
                max_size: HEADER_TABLE_SIZE,
            },
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }
}

impl Decoder {
    /// Decodes the header block `src` and appends each field to `out` as a
    /// literal without indexing (never-indexed ones stay never-indexed),
    /// normalising `:authority`. Errors if the output would pass `limit`
    /// bytes. On error the table may be part-way updated: the caller stops
    /// decoding this connection.
    fn transcode(
        &mut self,
        mut src: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), HpackError> {
        let out_limit = out.len().saturating_add(limit);
        let mut at_start = true;
        while let Some(&first) = src.first() {
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = take_int(&mut src, 7)?;
                let (name, value) = self.table.get(index)?;
                write_literal(out, 0x00, name, value);
            } else if first & 0x40 != 0 {
                // Literal with incremental indexing (§6.2.1).
                let index = take_int(&mut src, 6)?;
                let name = match index {
                    0 => take_string(&mut src, &mut self.name_buf)?,
                    _ => self.table.get(index)?.0,
                };
                let value = take_string(&mut src, &mut self.value_buf)?;
                write_literal(out, 0x00, name, value);
                let (name, value) = (name.to_vec(), value.to_vec());
                self.table.insert(&name, &value);
            } else if first & 0x20 != 0 {
                // Dynamic table size update (§6.3): only before the first
                // field, never above what the server advertised.
                if !at_start {
                    return Err(HpackError("table size update after a field"));
                }
                let size = take_int(&mut src, 5)?;
                if size > HEADER_TABLE_SIZE {
                    return Err(HpackError("table size update above the limit"));
                }
                self.table.set_max_size(size);
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001)
                // (§6.2.2, §6.2.3).
                let never_indexed = first & 0x10;
                let index = take_int(&mut src, 4)?;
                let name = match index {
                    0 => take_string(&mut src, &mut self.name_buf)?,
                    _ => self.table.get(index)?.0,
                };
                let value = take_string(&mut src, &mut self.value_buf)?;
                write_literal(out, never_indexed, name, value);
            }
            at_start = false;
            if out.len() > out_limit {
                return Err(HpackError("decoded header block too large"));
            }
        }
        Ok(())
    }
}

/// Writes a literal field with a literal name, no Huffman coding, under the
/// representation `kind` (0x00 without indexing, 0x10 never indexed).
fn write_literal(out: &mut Vec<u8>, kind: u8, name: &[u8], value: &[u8]) {
    let value = if name == b":authority" {
        normalize_authority(value)
    } else {
        value
    };
    out.push(kind);
    put_int(out, name.len(), 7, 0);
    out.extend_from_slice(name);
    put_int(out, value.len(), 7, 0);
    out.extend_from_slice(value);
}

/// Writes `value` as an HPACK integer with an `n`-bit prefix (§5.1), the
/// first octet's higher bits set to `high`.
fn put_int(out: &mut Vec<u8>, mut value: usize, n: u32, high: u8) {
    let max_prefix = (1usize << n) - 1;
    if value < max_prefix {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an HPACK integer with an `n`-bit prefix (§5.1). Values need at
/// most four continuation octets (up to 2^28 + 126), far beyond any size or
/// index a bounded header block can hold.
fn take_int(src: &mut &[u8], n: u32) -> Result<usize, HpackError> {
    let (&first, rest) = src.split_first().ok_or(HpackError("truncated integer"))?;
    *src = rest;
    let max_prefix = (1usize << n) - 1;
    let mut value = usize::from(first) & max_prefix;
    if value < max_prefix {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let (&octet, rest) = src.split_first().ok_or(HpackError("truncated integer"))?;
        *src = rest;
        if shift > 21 {
            return Err(HpackError("integer too large"));
        }
        value += usize::from(octet & 0x7f) << shift;
        if octet & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

/// Reads a string literal (§5.2), Huffman-decoding it into `buf` if need be.
fn take_string<'r, 's: 'r, 'b: 'r>(
    src: &mut &'s [u8],
    buf: &'b mut Vec<u8>,
) -> Result<&'r [u8], HpackError> {
    let huffman = src.first().is_some_and(|b| b & 0x80 != 0);
    let len = take_int(src, 7)?;
    if len > src.len() {
        return Err(HpackError("truncated string"));
    }
    let (raw, rest) = src.split_at(len);
    *src = rest;
    if huffman {
        buf.clear();
        huffman_decode(raw, buf)?;
        Ok(&buf[..])
    } else {
        Ok(raw)
    }
}

/// Code lengths of the HPACK Huffman code (RFC 7541 Appendix B) for symbols
/// 0..=255 and EOS (256). The code is canonical: codes of one length are
/// consecutive in symbol order, shorter before longer, so the lengths
/// determine every code.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
    30, // EOS
];

const HUFFMAN_MAX_LEN: usize = 30;
const EOS: u16 = 256;

/// Canonical decoding tables, per code length `l`: the first code of that
/// length, how many codes have it, and where their symbols start in
/// `symbols` (sorted by length, then symbol).
struct Canonical {
    first: [u32; HUFFMAN_MAX_LEN + 1],
    count: [u32; HUFFMAN_MAX_LEN + 1],
    offset: [u16; HUFFMAN_MAX_LEN + 1],
    symbols: [u16; 257],
}

static HUFFMAN: Canonical = {
    let mut count = [0u32; HUFFMAN_MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[HUFFMAN_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut first = [0u32; HUFFMAN_MAX_LEN + 1];
    let mut offset = [0u16; HUFFMAN_MAX_LEN + 1];
    let (mut code, mut at) = (0u32, 0u16);
    let mut len = 1;
    while len <= HUFFMAN_MAX_LEN {
        first[len] = code;
        offset[len] = at;
        code = (code + count[len]) << 1;
        at += count[len] as u16;
        len += 1;
    }
    let mut next = offset;
    let mut symbols = [0u16; 257];
    s = 0;
    while s < 257 {
        let len = HUFFMAN_LENGTHS[s] as usize;
        symbols[next[len] as usize] = s as u16;
        next[len] += 1;
        s += 1;
    }
    Canonical {
        first,
        count,
        offset,
        symbols,
    }
};

/// Decodes a Huffman-coded string (§5.2) onto `out`, rejecting EOS in the
/// data and padding that is longer than 7 bits or not EOS's leading ones.
fn huffman_decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in src {
        for bit in (0..8).rev() {
            code = code << 1 | u32::from(byte >> bit & 1);
            len += 1;
            let index = code.wrapping_sub(HUFFMAN.first[len]);
            if index < HUFFMAN.count[len] {
                let symbol = HUFFMAN.symbols[usize::from(HUFFMAN.offset[len]) + index as usize];
                if symbol == EOS {
                    return Err(HpackError("EOS in a Huffman string"));
                }
                out.push(symbol as u8);
                (code, len) = (0, 0);
            } else if len == HUFFMAN_MAX_LEN {
                return Err(HpackError("invalid Huffman code"));
            }
        }
    }
    if len > 7 || code != (1 << len) - 1 {
        return Err(HpackError("invalid Huffman padding"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The code of `symbol`, rebuilt from the canonical tables.
    fn huffman_code(symbol: usize) -> (u32, usize) {
        let len = usize::from(HUFFMAN_LENGTHS[symbol]);
        let start = usize::from(HUFFMAN.offset[len]);
        let rank = HUFFMAN.symbols[start..]
            .iter()
            .position(|&s| usize::from(s) == symbol)
            .unwrap();
        (HUFFMAN.first[len] + rank as u32, len)
    }

    fn huffman_encode(s: &[u8]) -> Vec<u8> {
        let (mut acc, mut bits, mut out) = (0u64, 0usize, Vec::new());
        for &b in s {
            let (code, len) = huffman_code(usize::from(b));
            acc = acc << len | u64::from(code);
            bits += len;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits) | (0xff >> bits)) as u8);
        }
        out
    }

    /// A Huffman-coded string literal.
    fn huff_lit(s: &str) -> Vec<u8> {
        let coded = huffman_encode(s.as_bytes());
        let mut out = Vec::new();
        put_int(&mut out, coded.len(), 7, 0x80);
        out.extend(coded);
        out
    }

    /// A plain string literal.
    fn lit(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, s.len(), 7, 0);
        out.extend_from_slice(s.as_bytes());
        out
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0; FRAME_HEADER_LEN];
        put_frame_head(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    type Headers = Vec<(Vec<u8>, Vec<u8>)>;

    fn headers(list: &[(&str, &str)]) -> Headers {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Parses a re-encoded block, insisting on what the rewriter promises:
    /// only literals with literal names, no Huffman, no table use.
    fn parse_plain_block(mut src: &[u8]) -> Headers {
        let mut list = Vec::new();
        while let Some(&first) = src.first() {
            assert!(
                first == 0x00 || first == 0x10,
                "unexpected representation {first:#x}"
            );
            src = &src[1..];
            assert_eq!(src[0] & 0x80, 0, "Huffman-coded name");
            let mut unused = Vec::new();
            let name = take_string(&mut src, &mut unused).unwrap().to_vec();
            assert_eq!(src[0] & 0x80, 0, "Huffman-coded value");
            let value = take_string(&mut src, &mut unused).unwrap().to_vec();
            list.push((name, value));
        }
        list
    }

    struct Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    fn split_frames(mut src: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !src.is_empty() {
            let head = FrameHead::parse(src);
            let payload = src[FRAME_HEADER_LEN..FRAME_HEADER_LEN + head.len].to_vec();
            src = &src[FRAME_HEADER_LEN + head.len..];
            frames.push(Frame {
                kind: head.kind,
                flags: head.flags,
                stream: head.stream,
                payload,
            });
        }
        frames
    }

    /// Yields its input `chunk` bytes per read; swallows writes.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self
                .chunk
                .min(self.data.len() - self.pos)
                .min(buf.remaining());
            let pos = self.pos;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// Runs `input` through the wrapper with reads of `chunk` bytes from
    /// the socket and of `read_size` bytes by the reader.
    async fn run(input: &[u8], chunk: usize, read_size: usize) -> Vec<u8> {
        let mut fix = AuthorityFix::new(Trickle {
            data: input.to_vec(),
            pos: 0,
            chunk,
        });
        let mut out = Vec::new();
        let mut buf = vec![0; read_size];
        loop {
            let n = fix.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Output for every combination of socket and reader chunking, which
    /// must all agree.
    async fn run_all(input: &[u8]) -> Vec<u8> {
        let expected = run(input, usize::MAX, 1 << 16).await;
        for (chunk, read_size) in [(1, 1 << 16), (1, 1), (7, 3), (4096, 5), (1 << 16, 1)] {
            assert_eq!(
                run(input, chunk, read_size).await,
                expected,
                "chunk {chunk} read {read_size}"
            );
        }
        expected
    }

    fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        for f in frames {
            bytes.extend_from_slice(f);
        }
        bytes
    }

    #[test]
    fn huffman_table_matches_rfc_codes() {
        // Spot checks against RFC 7541 Appendix B.
        assert_eq!(huffman_code(0), (0x1ff8, 13));
        assert_eq!(huffman_code(usize::from(b' ')), (0x14, 6));
        assert_eq!(huffman_code(usize::from(b'0')), (0x0, 5));
        assert_eq!(huffman_code(usize::from(b'a')), (0x3, 5));
        assert_eq!(huffman_code(usize::from(b'X')), (0xfc, 8));
        assert_eq!(huffman_code(usize::from(b'\\')), (0x7fff0, 19));
        assert_eq!(huffman_code(10), (0x3ffffffc, 30));
        assert_eq!(huffman_code(128), (0xfffe6, 20));
        assert_eq!(huffman_code(255), (0x3ffffee, 26));
        assert_eq!(huffman_code(256), (0x3fffffff, 30));
    }

    #[test]
    fn huffman_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        huffman_decode(&huffman_encode(&all), &mut out).unwrap();
        assert_eq!(out, all);
        for s in ["", "a", "http://127.0.0.1:2379", "custom-value"] {
            out.clear();
            huffman_decode(&huffman_encode(s.as_bytes()), &mut out).unwrap();
            assert_eq!(out, s.as_bytes());
        }
    }

    #[test]
    fn huffman_rejects_bad_padding_and_eos() {
        let mut out = Vec::new();
        // "a" (00011) padded with zeros instead of ones.
        assert!(huffman_decode(&[0b0001_1000], &mut out).is_err());
        // A whole byte of padding.
        assert!(huffman_decode(&[0b0001_1111, 0xff], &mut out).is_err());
        // EOS itself.
        assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut out).is_err());
    }

    /// RFC 7541 C.4: three requests with Huffman coding and a shared dynamic
    /// table, re-encoded as plain literals.
    #[test]
    fn decodes_rfc_requests_with_huffman_and_dynamic_table() {
        let mut decoder = Decoder::default();
        let requests = [
            (
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                headers(&[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "www.example.com"),
                ]),
            ),
            (
                "8286 84be 5886 a8eb 1064 9cbf",
                headers(&[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "www.example.com"),
                    ("cache-control", "no-cache"),
                ]),
            ),
            (
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                headers(&[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":path", "/index.html"),
                    (":authority", "www.example.com"),
                    ("custom-key", "custom-value"),
                ]),
            ),
        ];
        for (block, expected) in requests {
            let mut out = Vec::new();
            decoder
                .transcode(&hex(block), &mut out, MAX_BLOCK_OUT)
                .unwrap();
            assert_eq!(parse_plain_block(&out), expected);
        }
        // RFC 7541 C.4.3: the table now holds three entries, 164 octets.
        assert_eq!(decoder.table.entries.len(), 3);
        assert_eq!(decoder.table.size, 164);
    }

    #[test]
    fn table_evicts_and_size_updates_apply() {
        let mut decoder = Decoder::default();
        let mut block = vec![0x40];
        block.extend(lit("k"));
        block.extend(lit("v"));
        let mut out = Vec::new();
        decoder.transcode(&block, &mut out, MAX_BLOCK_OUT).unwrap();
        assert_eq!(decoder.table.get(62).unwrap(), (&b"k"[..], &b"v"[..]));
        // Shrinking to zero evicts; index 62 is then gone.
        out.clear();
        decoder
            .transcode(&[0x20, 0x82], &mut out, MAX_BLOCK_OUT)
            .unwrap();
        assert!(decoder.table.entries.is_empty());
        assert!(decoder.transcode(&[0xbe], &mut out, MAX_BLOCK_OUT).is_err());
        // Above the advertised limit, or after a field: refused.
        let mut over = vec![];
        put_int(&mut over, HEADER_TABLE_SIZE + 1, 5, 0x20);
        assert!(
            Decoder::default()
                .transcode(&over, &mut out, MAX_BLOCK_OUT)
                .is_err()
        );
        assert!(
            Decoder::default()
                .transcode(&[0x82, 0x20], &mut out, MAX_BLOCK_OUT)
                .is_err()
        );
        // Entries larger than the table empty it.
        let mut decoder = Decoder::default();
        decoder.transcode(&block, &mut out, MAX_BLOCK_OUT).unwrap();
        let mut big = vec![0x40];
        big.extend(lit("big"));
        big.extend(lit(&"x".repeat(HEADER_TABLE_SIZE)));
        decoder.transcode(&big, &mut out, MAX_BLOCK_OUT).unwrap();
        assert!(decoder.table.entries.is_empty());
        assert_eq!(decoder.table.size, 0);
    }

    #[test]
    fn decoding_is_bounded() {
        // A 4 KiB entry referenced many times would decode to far more than
        // its encoding: refused past the limit.
        let mut block = vec![0x40];
        block.extend(lit("k"));
        block.extend(lit(&"v".repeat(4000)));
        block.extend(std::iter::repeat_n(0xbe, 10_000));
        let mut out = Vec::new();
        let err = Decoder::default().transcode(&block, &mut out, MAX_BLOCK_OUT);
        assert_eq!(err, Err(HpackError("decoded header block too large")));
        // Overlong integers and truncated input are errors, not panics.
        let mut out = Vec::new();
        for bad in [
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
            &[0xff],
            &[0x40, 0x05, b'a'],
        ] {
            assert!(
                Decoder::default()
                    .transcode(bad, &mut out, MAX_BLOCK_OUT)
                    .is_err()
            );
        }
    }

    #[test]
    fn normalizes_only_invalid_authorities() {
        let cases = [
            ("127.0.0.1:2379", "127.0.0.1:2379"),
            ("localhost", "localhost"),
            ("[::1]:2379", "[::1]:2379"),
            ("http://127.0.0.1:2379", "127.0.0.1:2379"),
            ("https://node-1.example:2379/", "node-1.example:2379"),
            ("http://127.0.0.1:2379/some/path", "127.0.0.1:2379"),
            ("unix://localhost:2379", "localhost:2379"),
            ("127.0.0.1:2379/x", "127.0.0.1:2379/x"),
            ("http://", "http://"),
            ("unix:///tmp/sock", "unix:///tmp/sock"),
            ("1http://a", "1http://a"),
        ];
        for (given, expected) in cases {
            let got = normalize_authority(given.as_bytes());
            assert_eq!(std::str::from_utf8(got).unwrap(), expected, "{given}");
        }
    }

    #[tokio::test]
    async fn http1_passes_through_byte_identical() {
        let request = b"GET /version HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n".to_vec();
        assert_eq!(run_all(&request).await, request);
        // Starts like the preface, then differs.
        let tricky = b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\nmore bytes after".to_vec();
        assert_eq!(run_all(&tricky).await, tricky);
        // A truncated preface, then end of file.
        assert_eq!(run_all(&PREFACE[..10]).await, &PREFACE[..10]);
        assert_eq!(run_all(b"").await, b"");
    }

    /// Two gRPC-style requests as etcdctl 3.4 sends them: the URL as a
    /// Huffman-coded `:authority` entered into the dynamic table, then
    /// reused by index; other frames in between stay as they are.
    #[tokio::test]
    async fn rewrites_authority_across_requests() {
        let mut first = vec![0x83, 0x86]; // POST, http
        first.push(0x44); // :path, incremental indexing
        first.extend(huff_lit("/etcdserverpb.Maintenance/Status"));
        first.push(0x41); // :authority, incremental indexing
        first.extend(huff_lit("http://127.0.0.1:2379"));
        first.push(0x5f); // content-type, incremental indexing
        first.extend(lit("application/grpc"));
        first.push(0x00); // a new name, without indexing
        first.extend(lit("te"));
        first.extend(huff_lit("trailers"));
        first.push(0x10); // never indexed
        first.extend(lit("token"));
        first.extend(lit("secret"));
        // Dynamic table: 62 content-type, 63 :authority, 64 :path.
        let second = [0x83, 0x86, 0xc0, 0xbf, 0xbe];

        let data = frame(0x0, 0x1, 1, b"\0\0\0\0\x05hello");
        let window = frame(0x8, 0, 0, &[0, 0, 0x10, 0]);
        let ping = frame(0x6, 0, 0, b"12345678");
        let input = connection(&[
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &first),
            data.clone(),
            window.clone(),
            frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &second),
            ping.clone(),
        ]);
        let output = run_all(&input).await;

        assert!(output.starts_with(PREFACE));
        let frames = split_frames(&output[PREFACE.len()..]);
        let kinds: Vec<_> = frames.iter().map(|f| (f.kind, f.flags, f.stream)).collect();
        assert_eq!(
            kinds,
            [
                (0x4, 0, 0),
                (TYPE_HEADERS, FLAG_END_HEADERS, 1),
                (0x0, 0x1, 1),
                (0x8, 0, 0),
                (TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3),
                (0x6, 0, 0),
            ]
        );
        let common = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Maintenance/Status"),
            (":authority", "127.0.0.1:2379"),
            ("content-type", "application/grpc"),
        ];
        let mut expected = headers(&common);
        expected.extend(headers(&[("te", "trailers"), ("token", "secret")]));
        assert_eq!(parse_plain_block(&frames[1].payload), expected);
        assert!(
            frames[1].payload.windows(7).any(|w| w == b"\x10\x05token"),
            "never-indexed kept"
        );
        assert_eq!(parse_plain_block(&frames[4].payload), headers(&common));
        assert_eq!(frames[2].payload, data[FRAME_HEADER_LEN..]);
        assert_eq!(frames[3].payload, window[FRAME_HEADER_LEN..]);
        assert_eq!(frames[5].payload, ping[FRAME_HEADER_LEN..]);
    }

    #[tokio::test]
    async fn reassembles_continuations_and_drops_padding() {
        let mut block = vec![0x83, 0x86, 0x84, 0x41];
        block.extend(huff_lit("http://10.0.0.1:2379"));
        block.push(0x00);
        block.extend(lit("x-filler"));
        block.extend(lit(&"f".repeat(300)));
        // HEADERS with padding and priority, then two CONTINUATIONs.
        let mut payload = vec![4]; // pad length
        payload.extend([0x80, 0, 0, 1, 200]); // exclusive, depends on 1, weight
        payload.extend_from_slice(&block[..3]);
        payload.extend([0; 4]);
        let input = connection(&[
            frame(
                TYPE_HEADERS,
                FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
                5,
                &payload,
            ),
            frame(TYPE_CONTINUATION, 0, 5, &block[3..10]),
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, &block[10..]),
        ]);
        let output = run_all(&input).await;
        let frames = split_frames(&output[PREFACE.len()..]);
        assert_eq!(frames.len(), 2);
        let headers_frame = &frames[1];
        assert_eq!(headers_frame.kind, TYPE_HEADERS);
        assert_eq!(
            headers_frame.flags,
            FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS
        );
        assert_eq!(headers_frame.stream, 5);
        assert_eq!(headers_frame.payload[..PRIORITY_LEN], [0x80, 0, 0, 1, 200]);
        assert_eq!(
            parse_plain_block(&headers_frame.payload[PRIORITY_LEN..]),
            headers(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "10.0.0.1:2379"),
                ("x-filler", &"f".repeat(300)),
            ])
        );
    }

    #[tokio::test]
    async fn splits_large_blocks_into_continuations() {
        let big = "v".repeat(40_000);
        let mut block = vec![0x83, 0x86, 0x84, 0x00];
        block.extend(lit("x-big"));
        block.extend(lit(&big));
        let mut frames_in = Vec::new();
        let chunks: Vec<_> = block.chunks(OUT_FRAME_MAX).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let kind = if i == 0 {
                TYPE_HEADERS
            } else {
                TYPE_CONTINUATION
            };
            let mut flags = if i + 1 == chunks.len() {
                FLAG_END_HEADERS
            } else {
                0
            };
            if i == 0 {
                flags |= FLAG_END_STREAM;
            }
            frames_in.push(frame(kind, flags, 7, chunk));
        }
        let output = run_all(&connection(&frames_in)).await;
        let frames = split_frames(&output[PREFACE.len()..]);
        let shape: Vec<_> = frames[1..]
            .iter()
            .map(|f| (f.kind, f.flags, f.payload.len()))
            .collect();
        let total: usize = shape.iter().map(|s| s.2).sum();
        assert_eq!(
            shape,
            [
                (TYPE_HEADERS, FLAG_END_STREAM, OUT_FRAME_MAX),
                (TYPE_CONTINUATION, 0, OUT_FRAME_MAX),
                (
                    TYPE_CONTINUATION,
                    FLAG_END_HEADERS,
                    total - 2 * OUT_FRAME_MAX
                ),
            ]
        );
        let joined: Vec<u8> = frames[1..].iter().flat_map(|f| f.payload.clone()).collect();
        assert_eq!(
            parse_plain_block(&joined),
            headers(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/"),
                ("x-big", &big)
            ])
        );
    }

    /// What h2 should judge itself is forwarded byte for byte.
    #[tokio::test]
    async fn forwards_what_it_cannot_handle() {
        let good = frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x82, 0x86, 0x84]);
        let cases = [
            // HPACK error (index out of range).
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &[0xff, 0x10]),
            // CONTINUATION without HEADERS.
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x82]),
            // Padding longer than the frame.
            frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 3, &[9, 0x82]),
            // Header block interrupted by another frame.
            [
                frame(TYPE_HEADERS, 0, 3, &[0x82]),
                frame(0x6, 0, 0, b"12345678"),
            ]
            .concat(),
            // Truncated by end of file (nothing may follow).
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &[0x82, 0x86, 0x84])[..11].to_vec(),
        ];
        for (i, bad) in cases.into_iter().enumerate() {
            let after = if i == 4 {
                Vec::new()
            } else {
                frame(0x0, 0, 3, b"data")
            };
            let input = connection(&[good.clone(), bad.clone(), after.clone()]);
            let output = run_all(&input).await;
            let rewritten = connection(&[frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS,
                1,
                &[
                    &[0u8, 7][..],
                    b":method",
                    &[3],
                    b"GET",
                    &[0, 7],
                    b":scheme",
                    &[4],
                    b"http",
                    &[0, 5],
                    b":path",
                    &[1],
                    b"/",
                ]
                .concat(),
            )]);
            assert_eq!(output, [rewritten, bad, after].concat());
        }
    }

    #[tokio::test]
    async fn survives_garbage() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let mut frames = Vec::new();
            for _ in 0..(next() % 6) {
                let len = (next() % 40) as usize;
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                let kind = [TYPE_HEADERS, TYPE_CONTINUATION, 0x0, 0x4][(next() % 4) as usize];
                frames.push(frame(kind, next() as u8, (next() % 4) as u32, &payload));
            }
            let mut input = connection(&frames);
            input.truncate(input.len() - (next() % 5) as usize);
            let _ = run(
                &input,
                1 + (next() % 9) as usize,
                1 + (next() % 50) as usize,
            )
            .await;
        }
    }

    /// Through hyper's HTTP/2 server: the URL authority that h2 rejects on
    /// its own arrives normalised, for a Huffman literal and a table index.
    #[tokio::test]
    async fn hyper_accepts_rewritten_requests() {
        use hyper::body::Incoming;
        use hyper_util::rt::{TokioExecutor, TokioIo};

        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let service = hyper::service::service_fn(move |req: ::http::Request<Incoming>| {
            let seen_tx = seen_tx.clone();
            async move {
                let _ = seen_tx.send(req.uri().clone());
                Ok::<_, std::convert::Infallible>(::http::Response::new(String::new()))
            }
        });
        tokio::spawn(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(AuthorityFix::new(server)), service),
        );

        let mut first = vec![0x82, 0x86, 0x84, 0x41];
        first.extend(huff_lit("http://127.0.0.1:2379"));
        let second = [0x82, 0x86, 0x84, 0xbe];
        let input = connection(&[
            frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &first),
            frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &second),
        ]);
        client.write_all(&input).await.unwrap();
        let drain = tokio::spawn(async move {
            let mut sink = vec![0; 4096];
            while client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        for _ in 0..2 {
            let uri = seen.recv().await.unwrap();
            assert_eq!(uri.authority().unwrap().as_str(), "127.0.0.1:2379");
            assert_eq!(uri.path(), "/");
        }
        drain.abort();
    }
}

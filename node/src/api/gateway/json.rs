//! Go's `encoding/json`, as far as etcd's gateway exposes it.
//!
//! etcd's gateway reads requests with Go's `json.Decoder` and `jsonpb`, and
//! every syntax or type error it hits reaches the client verbatim
//! (`invalid character 'x' looking for beginning of value`, `unexpected
//! EOF`, `illegal base64 data at input byte 4`...). To answer byte for byte
//! like etcd, this module ports the parts of Go 1.19's `encoding/json`,
//! `encoding/base64` and `strconv` that produce those messages:
//!
//! - [`Scanner`]: the JSON state machine of `encoding/json/scanner.go`,
//!   with its error messages;
//! - [`Decoder`]: `json.Decoder` over a body that arrives in chunks and may
//!   hold several JSON values in a row;
//! - [`check_valid`], [`kind`], [`members`], [`elements`], [`unquote`]: the
//!   raw-value helpers `jsonpb` builds on;
//! - [`base64_decode`]: `base64.StdEncoding.Decode` with its error offsets;
//! - [`write_string`]: `json.Marshal` of a string (HTML-safe escaping).
//!
//! Everything here works on untrusted bytes and never panics.

use std::fmt::Write as _;

/// What a scanner step reports (Go's `scan*` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Continue,
    SkipSpace,
    EndObject,
    EndArray,
    End,
    Error,
}

/// The scanner's next-byte function (Go's `state*` functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU,
    InStringEscU1,
    InStringEscU12,
    InStringEscU123,
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    T,
    Tr,
    Tru,
    F,
    Fa,
    Fal,
    Fals,
    N,
    Nu,
    Nul,
    Error,
}

/// What the scanner is inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// Go's `maxNestingDepth`.
const MAX_NESTING_DEPTH: usize = 10_000;

/// Go's JSON scanner: fed one byte at a time, it validates one JSON value.
#[derive(Debug)]
pub(crate) struct Scanner {
    state: State,
    parse: Vec<Parse>,
    err: Option<String>,
    end_top: bool,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    pub(crate) fn new() -> Self {
        Scanner {
            state: State::BeginValue,
            parse: Vec::new(),
            err: None,
            end_top: false,
        }
    }

    fn reset(&mut self) {
        *self = Scanner::new();
    }

    fn error(&mut self, c: u8, context: &str) -> Op {
        self.state = State::Error;
        self.err = Some(format!("invalid character {} {context}", quote_char(c)));
        Op::Error
    }

    fn push(&mut self, c: u8, parse: Parse) -> Op {
        self.parse.push(parse);
        if self.parse.len() <= MAX_NESTING_DEPTH {
            Op::Continue
        } else {
            self.error(c, "exceeded max depth")
        }
    }

    fn pop(&mut self) {
        self.parse.pop();
        if self.parse.is_empty() {
            self.state = State::EndTop;
            self.end_top = true;
        } else {
            self.state = State::EndValue;
        }
    }

    /// Called at the end of the input (Go's `scanner.eof`).
    fn eof(&mut self) -> Op {
        if self.err.is_some() {
            return Op::Error;
        }
        if self.end_top {
            return Op::End;
        }
        self.step(b' ');
        if self.end_top {
            return Op::End;
        }
        if self.err.is_none() {
            self.err = Some("unexpected end of JSON input".to_string());
        }
        Op::Error
    }

    fn begin_value(&mut self, c: u8) -> Op {
        if is_space(c) {
            return Op::SkipSpace;
        }
        let next = match c {
            b'{' => {
                self.state = State::BeginStringOrEmpty;
                return self.push(c, Parse::ObjectKey);
            }
            b'[' => {
                self.state = State::BeginValueOrEmpty;
                return self.push(c, Parse::ArrayValue);
            }
            b'"' => State::InString,
            b'-' => State::Neg,
            b'0' => State::Zero,
            b't' => State::T,
            b'f' => State::F,
            b'n' => State::N,
            b'1'..=b'9' => State::One,
            _ => return self.error(c, "looking for beginning of value"),
        };
        self.state = next;
        Op::Continue
    }

    fn begin_string(&mut self, c: u8) -> Op {
        if is_space(c) {
            return Op::SkipSpace;
        }
        if c == b'"' {
            self.state = State::InString;
            return Op::Continue;
        }
        self.error(c, "looking for beginning of object key string")
    }

    fn end_value(&mut self, c: u8) -> Op {
        let Some(&top) = self.parse.last() else {
            self.state = State::EndTop;
            self.end_top = true;
            return self.end_top(c);
        };
        if is_space(c) {
            self.state = State::EndValue;
            return Op::SkipSpace;
        }
        let n = self.parse.len() - 1;
        match top {
            Parse::ObjectKey => {
                if c == b':' {
                    self.parse[n] = Parse::ObjectValue;
                    self.state = State::BeginValue;
                    return Op::Continue;
                }
                self.error(c, "after object key")
            }
            Parse::ObjectValue => {
                if c == b',' {
                    self.parse[n] = Parse::ObjectKey;
                    self.state = State::BeginString;
                    return Op::Continue;
                }
                if c == b'}' {
                    self.pop();
                    return Op::EndObject;
                }
                self.error(c, "after object key:value pair")
            }
            Parse::ArrayValue => {
                if c == b',' {
                    self.state = State::BeginValue;
                    return Op::Continue;
                }
                if c == b']' {
                    self.pop();
                    return Op::EndArray;
                }
                self.error(c, "after array element")
            }
        }
    }

    fn end_top(&mut self, c: u8) -> Op {
        if !is_space(c) {
            // Go complains about the byte on the next call.
            self.error(c, "after top-level value");
        }
        Op::End
    }

    fn zero(&mut self, c: u8) -> Op {
        match c {
            b'.' => self.go(State::Dot),
            b'e' | b'E' => self.go(State::E),
            _ => self.end_value(c),
        }
    }

    fn e_sign(&mut self, c: u8) -> Op {
        if c.is_ascii_digit() {
            return self.go(State::E0);
        }
        self.error(c, "in exponent of numeric literal")
    }

    fn go(&mut self, state: State) -> Op {
        self.state = state;
        Op::Continue
    }

    fn literal(&mut self, c: u8, want: u8, next: State, context: &str) -> Op {
        if c == want {
            return self.go(next);
        }
        self.error(c, context)
    }

    fn step(&mut self, c: u8) -> Op {
        match self.state {
            State::BeginValue => self.begin_value(c),
            State::BeginValueOrEmpty => {
                if is_space(c) {
                    return Op::SkipSpace;
                }
                if c == b']' {
                    return self.end_value(c);
                }
                self.begin_value(c)
            }
            State::BeginStringOrEmpty => {
                if is_space(c) {
                    return Op::SkipSpace;
                }
                if c == b'}' {
                    if let Some(top) = self.parse.last_mut() {
                        *top = Parse::ObjectValue;
                    }
                    return self.end_value(c);
                }
                self.begin_string(c)
            }
            State::BeginString => self.begin_string(c),
            State::EndValue => self.end_value(c),
            State::EndTop => self.end_top(c),
            State::InString => match c {
                b'"' => self.go(State::EndValue),
                b'\\' => self.go(State::InStringEsc),
                0..=0x1f => self.error(c, "in string literal"),
                _ => Op::Continue,
            },
            State::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.go(State::InString),
                b'u' => self.go(State::InStringEscU),
                _ => self.error(c, "in string escape code"),
            },
            State::InStringEscU
            | State::InStringEscU1
            | State::InStringEscU12
            | State::InStringEscU123 => {
                if !c.is_ascii_hexdigit() {
                    return self.error(c, "in \\u hexadecimal character escape");
                }
                self.go(match self.state {
                    State::InStringEscU => State::InStringEscU1,
                    State::InStringEscU1 => State::InStringEscU12,
                    State::InStringEscU12 => State::InStringEscU123,
                    _ => State::InString,
                })
            }
            State::Neg => match c {
                b'0' => self.go(State::Zero),
                b'1'..=b'9' => self.go(State::One),
                _ => self.error(c, "in numeric literal"),
            },
            State::One => {
                if c.is_ascii_digit() {
                    return Op::Continue;
                }
                self.zero(c)
            }
            State::Zero => self.zero(c),
            State::Dot => {
                if c.is_ascii_digit() {
                    return self.go(State::Dot0);
                }
                self.error(c, "after decimal point in numeric literal")
            }
            State::Dot0 => match c {
                b'0'..=b'9' => Op::Continue,
                b'e' | b'E' => self.go(State::E),
                _ => self.end_value(c),
            },
            State::E => {
                if c == b'+' || c == b'-' {
                    return self.go(State::ESign);
                }
                self.e_sign(c)
            }
            State::ESign => self.e_sign(c),
            State::E0 => {
                if c.is_ascii_digit() {
                    return Op::Continue;
                }
                self.end_value(c)
            }
            State::T => self.literal(c, b'r', State::Tr, "in literal true (expecting 'r')"),
            State::Tr => self.literal(c, b'u', State::Tru, "in literal true (expecting 'u')"),
            State::Tru => self.literal(c, b'e', State::EndValue, "in literal true (expecting 'e')"),
            State::F => self.literal(c, b'a', State::Fa, "in literal false (expecting 'a')"),
            State::Fa => self.literal(c, b'l', State::Fal, "in literal false (expecting 'l')"),
            State::Fal => self.literal(c, b's', State::Fals, "in literal false (expecting 's')"),
            State::Fals => {
                self.literal(c, b'e', State::EndValue, "in literal false (expecting 'e')")
            }
            State::N => self.literal(c, b'u', State::Nu, "in literal null (expecting 'u')"),
            State::Nu => self.literal(c, b'l', State::Nul, "in literal null (expecting 'l')"),
            State::Nul => self.literal(c, b'l', State::EndValue, "in literal null (expecting 'l')"),
            State::Error => Op::Error,
        }
    }
}

/// Go's `checkValid`: `data` must be exactly one JSON value.
pub(crate) fn check_valid(data: &[u8]) -> Result<(), String> {
    let mut scanner = Scanner::new();
    for &c in data {
        if scanner.step(c) == Op::Error {
            return Err(scanner.err.unwrap_or_default());
        }
    }
    if scanner.eof() == Op::Error {
        return Err(scanner.err.unwrap_or_default());
    }
    Ok(())
}

/// One read from a [`Decoder`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// A complete value (leading white space removed).
    Value(Vec<u8>),
    /// The value is incomplete; feed more input.
    NeedMore,
    /// The input ended cleanly between values (Go's `io.EOF`).
    End,
}

/// Go's `json.Decoder` reading raw values from a body that arrives in
/// chunks: each `next` returns the next complete value, as `Decode` into a
/// `json.RawMessage` would, with the same errors.
#[derive(Debug)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    /// How far the current value has been scanned.
    scanned: usize,
    scanner: Scanner,
    err: Option<String>,
}

impl Decoder {
    pub(crate) fn new() -> Self {
        Decoder {
            buf: Vec::new(),
            scanned: 0,
            scanner: Scanner::new(),
            err: None,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held for the value being read.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next value; `eof` says that no more input will come. Errors
    /// are sticky, as in Go.
    pub(crate) fn next(&mut self, eof: bool) -> Result<Read, String> {
        if let Some(err) = &self.err {
            return Err(err.clone());
        }
        let mut end = None;
        while self.scanned < self.buf.len() {
            let c = self.buf[self.scanned];
            match self.scanner.step(c) {
                // The byte after the value ended it; it is not consumed.
                Op::End => {
                    end = Some(self.scanned);
                    break;
                }
                // The end of an object or array may end the value: Go asks
                // with an invented space rather than wait for another byte.
                Op::EndObject | Op::EndArray => {
                    if self.scanner.end_value(b' ') == Op::End {
                        end = Some(self.scanned + 1);
                        break;
                    }
                }
                Op::Error => {
                    let err = self.scanner.err.clone().unwrap_or_default();
                    self.err = Some(err.clone());
                    return Err(err);
                }
                Op::Continue | Op::SkipSpace => {}
            }
            self.scanned += 1;
        }
        if end.is_none() && eof {
            if self.scanner.step(b' ') == Op::End {
                end = Some(self.buf.len());
            } else if self.buf.iter().any(|&c| !is_space(c)) {
                self.err = Some("unexpected EOF".to_string());
                return Err("unexpected EOF".to_string());
            } else {
                return Ok(Read::End);
            }
        }
        let Some(end) = end else {
            return Ok(Read::NeedMore);
        };
        let value: Vec<u8> = self.buf[..end]
            .iter()
            .copied()
            .skip_while(|&c| is_space(c))
            .collect();
        self.buf.drain(..end);
        self.scanned = 0;
        self.scanner.reset();
        Ok(Read::Value(value))
    }
}

/// The kind of a valid JSON value, as Go names it in `UnmarshalTypeError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

fn trim(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|&c| !is_space(c)).unwrap_or(raw.len());
    let end = raw
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |i| i + 1);
    &raw[start..end.max(start)]
}

/// The kind of a valid JSON value.
pub(crate) fn kind(raw: &[u8]) -> Kind {
    match trim(raw).first() {
        Some(b'n') | None => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        Some(_) => Kind::Number,
    }
}

/// The literal text of a valid JSON value, without surrounding space.
pub(crate) fn literal(raw: &[u8]) -> &[u8] {
    trim(raw)
}

/// The end of the valid JSON value that starts at or after `pos`.
fn skip_value(raw: &[u8], pos: usize) -> usize {
    let mut pos = skip_space(raw, pos);
    match raw.get(pos) {
        None => pos,
        Some(b'"') => skip_string(raw, pos),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            while pos < raw.len() {
                match raw[pos] {
                    b'"' => {
                        pos = skip_string(raw, pos);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return pos + 1;
                        }
                    }
                    _ => {}
                }
                pos += 1;
            }
            pos
        }
        Some(_) => {
            while pos < raw.len()
                && !matches!(raw[pos], b',' | b':' | b'}' | b']')
                && !is_space(raw[pos])
            {
                pos += 1;
            }
            pos
        }
    }
}

/// The end of the string literal that starts at `pos` (on its quote).
fn skip_string(raw: &[u8], mut pos: usize) -> usize {
    pos += 1;
    while pos < raw.len() {
        match raw[pos] {
            b'\\' => pos += 2,
            b'"' => return pos + 1,
            _ => pos += 1,
        }
    }
    raw.len()
}

fn skip_space(raw: &[u8], mut pos: usize) -> usize {
    while pos < raw.len() && is_space(raw[pos]) {
        pos += 1;
    }
    pos
}

/// The members of a valid JSON object, in order (keys unquoted).
pub(crate) fn members(raw: &[u8]) -> Vec<(Vec<u8>, &[u8])> {
    let raw = trim(raw);
    let mut out = Vec::new();
    let mut pos = 1; // after '{'
    loop {
        pos = skip_space(raw, pos);
        if pos >= raw.len() || raw[pos] != b'"' {
            return out;
        }
        let key_end = skip_value(raw, pos);
        let key = unquote(&raw[pos..key_end]);
        pos = skip_space(raw, key_end) + 1; // ':'
        let value_start = skip_space(raw, pos);
        let value_end = skip_value(raw, value_start);
        out.push((key, &raw[value_start.min(value_end)..value_end]));
        pos = skip_space(raw, value_end) + 1; // ',' or '}'
    }
}

/// The elements of a valid JSON array, in order.
pub(crate) fn elements(raw: &[u8]) -> Vec<&[u8]> {
    let raw = trim(raw);
    let mut out = Vec::new();
    let mut pos = skip_space(raw, 1); // after '['
    if raw.get(pos) == Some(&b']') {
        return out;
    }
    while pos < raw.len() {
        let start = skip_space(raw, pos);
        let end = skip_value(raw, start);
        if end <= start {
            break;
        }
        out.push(&raw[start..end]);
        pos = skip_space(raw, end) + 1; // ',' or ']'
    }
    out
}

/// One UTF-8 sequence at the start of `s`, as Go's `utf8.DecodeRune` reads
/// it: `None` for an invalid byte (which Go turns into U+FFFD).
fn decode_rune(s: &[u8]) -> Option<(char, usize)> {
    let len = s.len().min(4);
    let valid = match std::str::from_utf8(&s[..len]) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&s[..e.valid_up_to()]).unwrap_or(""),
    };
    valid.chars().next().map(|c| (c, c.len_utf8()))
}

fn hex4(s: &[u8]) -> Option<u32> {
    let digits = s.get(..4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// The bytes of a valid JSON string literal (quotes included), decoded as
/// Go does: escapes resolved, invalid UTF-8 and lone surrogates replaced
/// by U+FFFD. The result is always valid UTF-8.
pub(crate) fn unquote(raw: &[u8]) -> Vec<u8> {
    let raw = trim(raw);
    let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or(&[]);
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c == b'\\' {
            let Some(&e) = inner.get(i + 1) else { break };
            i += 2;
            match e {
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let Some(first) = hex4(&inner[i..]) else {
                        break;
                    };
                    i += 4;
                    if (0xd800..0xe000).contains(&first) {
                        let second = if inner[i..].starts_with(b"\\u") {
                            hex4(&inner[i + 2..])
                        } else {
                            None
                        };
                        let pair = second
                            .filter(|s| (0xdc00..0xe000).contains(s))
                            .and_then(|s| {
                                (first < 0xdc00)
                                    .then(|| 0x10000 + ((first - 0xd800) << 10) + (s - 0xdc00))
                            });
                        match pair.and_then(char::from_u32) {
                            Some(ch) => {
                                out.push(ch);
                                i += 6;
                            }
                            None => out.push('\u{fffd}'),
                        }
                    } else {
                        out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
                    }
                }
                other => out.push(other as char),
            }
            continue;
        }
        match decode_rune(&inner[i..]) {
            Some((ch, len)) => {
                out.push(ch);
                i += len;
            }
            None => {
                out.push('\u{fffd}');
                i += 1;
            }
        }
    }
    out.into_bytes()
}

/// Go's `strconv.IsPrint`, closely enough for error messages.
fn is_print(c: char) -> bool {
    match c as u32 {
        0x20..=0x7e => true,
        0..=0xa0 | 0xad => false,
        0xa1..=0xff => true,
        _ => {
            !c.is_control()
                && !c.is_whitespace()
                && !matches!(c as u32, 0x200b..=0x200f | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff)
        }
    }
}

fn escape_rune(out: &mut String, c: char, quote: char) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `strconv.Quote` (what `%q` prints).
pub(crate) fn go_quote(s: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut i = 0;
    while i < s.len() {
        match decode_rune(&s[i..]) {
            Some((c, len)) => {
                escape_rune(&mut out, c, '"');
                i += len;
            }
            None => {
                let _ = write!(out, "\\x{:02x}", s[i]);
                i += 1;
            }
        }
    }
    out.push('"');
    out
}

/// Go's `quoteChar`: how the scanner shows an offending byte.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            // Go converts the byte to a rune (Latin-1) before quoting it.
            let mut out = String::from("'");
            escape_rune(&mut out, char::from(c), '"');
            out.push('\'');
            out
        }
    }
}

/// Go's `base64.StdEncoding.Decode`, with its error messages.
pub(crate) fn base64_decode(src: &[u8]) -> Result<Vec<u8>, String> {
    fn value(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        // Go's decodeQuantum.
        let mut quantum = [0u8; 4];
        let mut dlen = 4;
        let mut trailing_garbage = None;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // Standard encoding requires padding.
                return Err(corrupt(si - j));
            }
            let c = src[si];
            si += 1;
            if let Some(v) = value(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(corrupt(si - 1));
            }
            // Padding: the end of the data.
            match j {
                0 | 1 => return Err(corrupt(si - 1)),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(corrupt(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(corrupt(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                trailing_garbage = Some(si);
            }
            dlen = j;
            break;
        }
        let val = (u32::from(quantum[0]) << 18)
            | (u32::from(quantum[1]) << 12)
            | (u32::from(quantum[2]) << 6)
            | u32::from(quantum[3]);
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(at) = trailing_garbage {
            return Err(corrupt(at));
        }
        if dlen < 4 {
            break;
        }
    }
    Ok(out)
}

/// Padded standard base64 (Go's `json.Marshal` of `[]byte`).
pub(crate) fn base64_encode(out: &mut String, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// Go's `json.Marshal` of a string: quoted, with `<`, `>`, `&`, U+2028 and
/// U+2029 escaped and control characters as `\u00XX` (Go 1.19 has no
/// short forms for `\b` and `\f`).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(input: &[u8]) -> Result<Read, String> {
        let mut d = Decoder::new();
        d.push(input);
        match d.next(false)? {
            Read::NeedMore => d.next(true),
            other => Ok(other),
        }
    }

    #[test]
    fn syntax_errors_are_worded_as_go() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"xyz",
                "invalid character 'x' looking for beginning of value",
            ),
            (
                b"{\"key\":\"Zm9v\",}",
                "invalid character '}' looking for beginning of object key string",
            ),
            (b"{\"key\":", "unexpected EOF"),
            (b"1.5e+", "unexpected EOF"),
            (b"nul", "unexpected EOF"),
            (
                b"nulx",
                "invalid character 'x' in literal null (expecting 'l')",
            ),
            (b"-x", "invalid character 'x' in numeric literal"),
            (
                b"1.e",
                "invalid character 'e' after decimal point in numeric literal",
            ),
            (b"\"\\q\"", "invalid character 'q' in string escape code"),
            (
                b"\"\\u12\"",
                "invalid character '\"' in \\u hexadecimal character escape",
            ),
            (b"[1 2]", "invalid character '2' after array element"),
            (
                b"{\"key\" \"x\"}",
                "invalid character '\"' after object key",
            ),
            (
                b"{\"key\":\"a\" \"x\"}",
                "invalid character '\"' after object key:value pair",
            ),
            (b"\"a\x01\"", "invalid character '\\x01' in string literal"),
            (
                b"'",
                "invalid character '\\'' looking for beginning of value",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(
                decode_one(input),
                Err(message.to_string()),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn check_valid_reports_end_of_input_like_go() {
        assert_eq!(check_valid(b""), Err("unexpected end of JSON input".into()));
        assert_eq!(
            check_valid(b"-"),
            Err("invalid character ' ' in numeric literal".into())
        );
        assert_eq!(
            check_valid(b"tru"),
            Err("invalid character ' ' in literal true (expecting 'e')".into())
        );
        assert_eq!(
            check_valid(b"1 2"),
            Err("invalid character '2' after top-level value".into())
        );
        assert_eq!(check_valid(b" 12 "), Ok(()));
    }

    #[test]
    fn decoder_reads_values_in_a_row_across_chunks() {
        let mut d = Decoder::new();
        d.push(b" {\"a\":1} {\"b\"");
        assert_eq!(d.next(false), Ok(Read::Value(b"{\"a\":1}".to_vec())));
        assert_eq!(d.next(false), Ok(Read::NeedMore));
        d.push(b":[2]}7");
        assert_eq!(d.next(false), Ok(Read::Value(b"{\"b\":[2]}".to_vec())));
        // A number needs the byte after it, or the end of the input.
        assert_eq!(d.next(false), Ok(Read::NeedMore));
        assert_eq!(d.next(true), Ok(Read::Value(b"7".to_vec())));
        assert_eq!(d.next(true), Ok(Read::End));

        let mut d = Decoder::new();
        d.push(b"  \n");
        assert_eq!(d.next(true), Ok(Read::End));

        let mut d = Decoder::new();
        d.push(b"{} ,");
        assert_eq!(d.next(true), Ok(Read::Value(b"{}".to_vec())));
        let err = Err("invalid character ',' looking for beginning of value".to_string());
        assert_eq!(d.next(true), err);
        assert_eq!(d.next(true), err, "errors are sticky");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let input = vec![b'['; MAX_NESTING_DEPTH + 1];
        assert_eq!(
            decode_one(&input),
            Err("invalid character '[' exceeded max depth".into())
        );
    }

    #[test]
    fn members_and_elements_split_valid_values() {
        let raw = br#" { "a" : [1, {"x":"}"}] , "b\"c":"d", "e":null } "#;
        let m = members(raw);
        let keys: Vec<_> = m.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, [b"a".to_vec(), b"b\"c".to_vec(), b"e".to_vec()]);
        assert_eq!(m[0].1, br#"[1, {"x":"}"}]"#);
        assert_eq!(m[1].1, br#""d""#);
        assert_eq!(m[2].1, b"null");
        assert_eq!(elements(m[0].1), [&b"1"[..], br#"{"x":"}"}"#]);
        assert!(elements(b"[ ]").is_empty());
        assert!(members(b"{ }").is_empty());
        assert_eq!(kind(b" -1"), Kind::Number);
    }

    #[test]
    fn unquote_follows_go() {
        assert_eq!(
            unquote(br#""a\n\u00e9\ud83d\ude00\/""#),
            "a\né😀/".as_bytes()
        );
        assert_eq!(unquote(br#""\ud800x""#), "\u{fffd}x".as_bytes());
        assert_eq!(
            unquote(b"\"\xff\xe2\x82\""),
            "\u{fffd}\u{fffd}\u{fffd}".as_bytes()
        );
    }

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64_decode(b"Zm9v"), Ok(b"foo".to_vec()));
        assert_eq!(base64_decode(b"Zm9vYg=="), Ok(b"foob".to_vec()));
        assert_eq!(base64_decode(b"Zm9vYmE="), Ok(b"fooba".to_vec()));
        assert_eq!(base64_decode(b""), Ok(Vec::new()));
        assert_eq!(base64_decode(b"Zm\r\n9v"), Ok(b"foo".to_vec()));
        let err = |n: usize| Err(format!("illegal base64 data at input byte {n}"));
        assert_eq!(base64_decode(b"Zm9v!"), err(4));
        assert_eq!(base64_decode(b"Zm9"), err(0));
        assert_eq!(base64_decode(b"Zm9vY"), err(4));
        assert_eq!(base64_decode(b"Zg="), err(3));
        assert_eq!(base64_decode(b"Zg==Zg=="), err(4));
        assert_eq!(base64_decode(b"Z==="), err(1));
        assert_eq!(base64_decode("\u{fffd}".as_bytes()), err(0));
        let mut out = String::new();
        base64_encode(&mut out, b"fooba");
        assert_eq!(out, "Zm9vYmE=");
    }

    #[test]
    fn strings_are_escaped_like_go() {
        let mut out = String::new();
        write_string(&mut out, "a\"\\<>&\u{1}\u{8}\n\u{2028}é");
        assert_eq!(out, r#""a\"\\\u003c\u003e\u0026\u0001\u0008\n\u2028é""#);
        assert_eq!(go_quote(br#"A\"B"#), r#""A\\\"B""#);
        assert_eq!(go_quote(b"\xffa\x01"), r#""\xffa\x01""#);
    }
}

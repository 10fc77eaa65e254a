//! Form and URL decoding exactly as Go's `net/url` and `strconv` do it,
//! since etcd's v2 errors quote their messages: `url.ParseQuery`,
//! `url.PathUnescape`, `strconv.ParseBool`, `strconv.ParseUint` and
//! `strconv.Quote`.

/// Form values in arrival order (Go's `url.Values`, keeping order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Values(Vec<(String, String)>);

impl Values {
    /// The first value of `key`, if it is present at all.
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Go's `FormValue`: the first value, or empty.
    pub(crate) fn value(&self, key: &str) -> &str {
        self.first(key).unwrap_or_default()
    }

    pub(crate) fn append(&mut self, other: Values) {
        self.0.extend(other.0);
    }
}

/// Go's `url.ParseQuery`: `&`-separated `key=value` pairs, each unescaped.
/// Pairs that cannot be decoded are skipped; the error reported is the
/// first unescape error, or the last semicolon error (as Go does).
pub(crate) fn parse_query(query: &[u8]) -> (Values, Option<String>) {
    let mut values = Values::default();
    let mut error = None;
    for pair in query.split(|&b| b == b'&') {
        if pair.contains(&b';') {
            error = Some("invalid semicolon separator in query".to_string());
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        match (unescape(key, true), unescape(value, true)) {
            (Ok(key), Ok(value)) => values.0.push((lossy(key), lossy(value))),
            (Err(e), _) | (Ok(_), Err(e)) => {
                error.get_or_insert(e);
            }
        }
    }
    (values, error)
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Go's `url.PathUnescape` (no `+` to space), as its server decodes a
/// request path.
pub(crate) fn unescape_path(path: &[u8]) -> Result<String, String> {
    unescape(path, false).map(lossy)
}

/// Go's `unescape`: `%XX` escapes (and `+` as space in a query) decoded;
/// a malformed escape is an `invalid URL escape` error quoting it.
fn unescape(s: &[u8], query: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let escape = s.get(i + 1..i + 3).and_then(|hex| {
                    let high = (hex[0] as char).to_digit(16)?;
                    let low = (hex[1] as char).to_digit(16)?;
                    Some((high * 16 + low) as u8)
                });
                match escape {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        let bad = &s[i..s.len().min(i + 3)];
                        return Err(format!("invalid URL escape {}", go_quote(bad)));
                    }
                }
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Go's `strconv.Quote` for short byte strings: printable text as is,
/// the usual escapes, `\xNN` for bytes that are not valid UTF-8.
pub(crate) fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`: decimal digits only.
pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `mime.ParseMediaType`, reduced to what decides form parsing: the
/// lower-cased media type, or an error for a malformed header.
pub(crate) fn media_type(content_type: &str) -> Result<String, String> {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b) || b == b'/')
    };
    if !token(&media) {
        return Err("mime: no media type".into());
    }
    for parameter in parts {
        let parameter = parameter.trim();
        if parameter.is_empty() {
            continue;
        }
        match parameter.split_once('=') {
            Some((name, _)) if token(name.trim()) => {}
            _ => return Err("mime: invalid media parameter".into()),
        }
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_query_matches_go() {
        let (values, error) = parse_query(b"value=a+b%21&x&&ttl=&value=second");
        assert_eq!(error, None);
        assert_eq!(values.first("value"), Some("a b!"));
        assert_eq!(values.first("x"), Some(""));
        assert_eq!(values.first("ttl"), Some(""));
        assert_eq!(values.first("nope"), None);
        assert_eq!(
            parse_query(b"value=%zz&a=1").1.as_deref(),
            Some(r#"invalid URL escape "%zz""#)
        );
        assert_eq!(
            parse_query(b"a=%").1.as_deref(),
            Some(r#"invalid URL escape "%""#)
        );
        assert_eq!(
            parse_query(b"a=%4").1.as_deref(),
            Some(r#"invalid URL escape "%4""#)
        );
        // A semicolon error replaces an earlier one; the rest is kept.
        let (values, error) = parse_query(b"a=%zz&a;b=1&c=2");
        assert_eq!(
            error.as_deref(),
            Some("invalid semicolon separator in query")
        );
        assert_eq!(values.first("c"), Some("2"));
    }

    #[test]
    fn quoting_and_numbers_match_go() {
        assert_eq!(go_quote(b"%\xff\n\""), r#""%\xff\n\"""#);
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_uint("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_uint("18446744073709551616"), None);
        assert_eq!(parse_uint("+1"), None);
        assert_eq!(parse_uint(""), None);
        assert_eq!(unescape_path(b"/a%2Fb+c"), Ok("/a/b+c".into()));
    }

    #[test]
    fn media_types() {
        assert_eq!(
            media_type("application/x-www-form-urlencoded; charset=utf-8"),
            Ok("application/x-www-form-urlencoded".into())
        );
        assert_eq!(media_type("Text/Plain"), Ok("text/plain".into()));
        assert!(media_type("").is_err());
        assert!(media_type("a/b; =x").is_err());
    }
}

//! Go's formatting rules, reproduced where etcdctl's output depends on them:
//! `%q` quoting, `time.Duration` printing and parsing, `strconv` integer and
//! bool parsing, go-humanize's byte sizes, `encoding/json` strings, and the
//! tablewriter tables etcdctl draws for `-w table`.

use std::fmt::Write as _;
use std::time::Duration;

use unicode_width::UnicodeWidthStr;

/// Go's `strconv.Quote` (what `%q` prints for a string or byte slice):
/// printable characters as they are, the usual escapes, `\xNN` for bytes
/// that are not UTF-8, `\uNNNN`/`\UNNNNNNNN` for other non-printables.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if is_print(c) => out.push(c),
                c if (c as u32) < 0x80 => {
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
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: letters, marks, numbers,
/// punctuation, symbols and the ASCII space.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Rust's Debug escaping marks unassigned and format characters.
    let mut escaped = c.escape_debug();
    escaped.next() == Some(c) && escaped.next().is_none()
}

/// Unquotes one Go double-quoted string literal (as `fmt.Sscanf("%q")`
/// reads it); returns the value and the rest of the input after it.
pub(crate) fn unquote_prefix(s: &str) -> Option<(Vec<u8>, &str)> {
    let s = s.trim_start();
    let body = s.strip_prefix('"')?;
    let mut out = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    '\'' => out.push(b'\''),
                    'x' => {
                        let h: String = (0..2).filter_map(|_| chars.next().map(|x| x.1)).collect();
                        out.push(u8::from_str_radix(&h, 16).ok()?);
                    }
                    'u' | 'U' => {
                        let n = if e == 'u' { 4 } else { 8 };
                        let h: String = (0..n).filter_map(|_| chars.next().map(|x| x.1)).collect();
                        let c = char::from_u32(u32::from_str_radix(&h, 16).ok()?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    '0'..='7' => {
                        let mut h = String::from(e);
                        for _ in 0..2 {
                            h.push(chars.next()?.1);
                        }
                        out.push(u8::from_str_radix(&h, 8).ok()?);
                    }
                    _ => return None,
                }
            }
            '\n' => return None,
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

/// Go's `time.Duration.String()`: `1.5s`, `2m3.1s`, `1h0m0s`, `850µs`, `0s`.
pub(crate) fn duration_string(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        // Sub-second: the largest unit that keeps the integer part non-zero.
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1u128)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let mut out = String::new();
    let total_secs = nanos / 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs / 60) % 60;
    let secs_nanos = nanos % 60_000_000_000;
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{}s", fraction(secs_nanos, 1_000_000_000));
    out
}

/// `value / scale` printed with the fractional digits Go keeps (trailing
/// zeros removed).
fn fraction(value: u128, scale: u128) -> String {
    let int = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return int.to_string();
    }
    let digits = scale.to_string().len() - 1;
    let frac = format!("{frac:0digits$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// Go's `time.ParseDuration` for non-negative durations: a sequence of
/// decimal numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {}", quote(s.as_bytes()));
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        rest = &rest[1..];
        if rest.chars().all(|c| c == '0' || c == '.') && !rest.is_empty() {
            return Ok(Duration::ZERO);
        }
        return Err(format!("negative duration {s} is not supported"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    quote(s.as_bytes())
                ));
            }
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit.as_bytes()),
                    quote(s.as_bytes())
                ));
            }
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Go's `strconv.ParseInt(s, 0, 64)` (what pflag's int flags use): an
/// optional sign and a `0x`, `0o`, `0b` or leading-`0` (octal) prefix, `_`
/// separators allowed only with a prefix.
pub(crate) fn parse_int_base0(s: &str) -> Result<i64, String> {
    let syntax = || {
        format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            quote(s.as_bytes())
        )
    };
    let range = || {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            quote(s.as_bytes())
        )
    };
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if digits.is_empty() || (!prefixed && digits.contains('_')) {
        return Err(syntax());
    }
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_digit(radix)) {
        return Err(syntax());
    }
    let magnitude = u128::from_str_radix(&cleaned, radix).map_err(|_| range())?;
    let value = if negative {
        -(i128::try_from(magnitude).map_err(|_| range())?)
    } else {
        i128::try_from(magnitude).map_err(|_| range())?
    };
    i64::try_from(value).map_err(|_| range())
}

/// Go's `strconv.ParseInt(s, 10, 64)` with its error text.
pub(crate) fn parse_int10(s: &str) -> Result<i64, String> {
    let valid = !s.is_empty()
        && s.strip_prefix(['+', '-'])
            .unwrap_or(s)
            .chars()
            .all(|c| c.is_ascii_digit())
        && s.len() > usize::from(s.starts_with(['+', '-']));
    if !valid {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            quote(s.as_bytes())
        ));
    }
    s.parse::<i64>().map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            quote(s.as_bytes())
        )
    })
}

/// Go's `strconv.ParseInt(s, 16, 64)` with its error text.
pub(crate) fn parse_hex_i64(s: &str) -> Result<i64, String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            quote(s.as_bytes())
        ));
    }
    let magnitude = u128::from_str_radix(body, 16).unwrap_or(u128::MAX);
    let value = if s.starts_with('-') {
        -(magnitude.min(i128::MAX as u128) as i128)
    } else {
        magnitude.min(i128::MAX as u128) as i128
    };
    i64::try_from(value).map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            quote(s.as_bytes())
        )
    })
}

/// Go's `strconv.ParseUint(s, 16, 64)` with its error text.
pub(crate) fn parse_hex_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            quote(s.as_bytes())
        ));
    }
    u64::from_str_radix(s, 16).map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            quote(s.as_bytes())
        )
    })
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            quote(s.as_bytes())
        )),
    }
}

/// go-humanize's `Bytes` (SI units): `20 kB`, `1.2 MB`, `7 B`.
pub(crate) fn humanize_bytes(size: u64) -> String {
    if size < 10 {
        return format!("{size} B");
    }
    const SUFFIXES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let s = size as f64;
    let e = (s.ln() / 1000f64.ln()).floor();
    let suffix = SUFFIXES[(e as usize).min(SUFFIXES.len() - 1)];
    let val = (s / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// A string as Go's `encoding/json` writes it (HTML-safe escapes, invalid
/// UTF-8 replaced by U+FFFD).
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Bytes as Go's `encoding/json` writes a `[]byte`: standard base64.
pub(crate) fn json_bytes(out: &mut String, bytes: &[u8]) {
    use base64::Engine as _;
    out.push('"');
    out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
    out.push('"');
}

/// The olekukonko/tablewriter table etcdctl prints for `-w table`: headers
/// upper-cased and centred, cells right-aligned, words wrapped at 30
/// columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    const MAX_WIDTH: usize = 30;
    let cols = header.len();
    let mut widths: Vec<usize> = header
        .iter()
        .map(|h| display_width(h).min(MAX_WIDTH))
        .collect();
    let mut cells: Vec<Vec<Vec<String>>> = Vec::new();
    for row in rows {
        let mut line = Vec::new();
        for (i, cell) in row.iter().enumerate().take(cols) {
            let w = display_width(cell).min(MAX_WIDTH);
            if widths[i] < w || widths[i] == 0 {
                widths[i] = w;
            }
            let wrapped = wrap_string(cell, widths[i]);
            let max = wrapped.iter().map(|l| display_width(l)).max().unwrap_or(0);
            if max > widths[i] {
                widths[i] = max;
            }
            line.push(wrapped);
        }
        cells.push(line);
    }
    let mut out = String::new();
    let rule = |out: &mut String| {
        out.push('+');
        for w in &widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('+');
        }
        out.push('\n');
    };
    rule(&mut out);
    out.push('|');
    for (i, h) in header.iter().enumerate() {
        let title = h.replace(['_', '.'], " ").trim().to_uppercase();
        let gap = widths[i].saturating_sub(display_width(&title));
        let left = gap / 2;
        let _ = write!(
            out,
            " {}{}{} |",
            " ".repeat(left),
            title,
            " ".repeat(gap - left)
        );
    }
    out.push('\n');
    rule(&mut out);
    for line in &cells {
        let height = line.iter().map(Vec::len).max().unwrap_or(0);
        for x in 0..height {
            out.push('|');
            for (y, col) in line.iter().enumerate() {
                let s = col.get(x).map(String::as_str).unwrap_or("  ");
                let gap = widths[y].saturating_sub(display_width(s));
                let _ = write!(out, " {}{} |", " ".repeat(gap), s);
            }
            out.push('\n');
        }
    }
    rule(&mut out);
    out
}

fn display_width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// tablewriter's `WrapString`: splits on spaces and breaks lines to
/// minimise the squared slack (with a penalty for over-long lines).
fn wrap_string(s: &str, limit: usize) -> Vec<String> {
    let replaced = s.replace('\n', " ");
    let words: Vec<&str> = replaced.split(' ').collect();
    let mut lim = limit;
    for w in &words {
        if w.len() > lim {
            lim = w.len();
        }
    }
    let n = words.len();
    let counts: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
    // length(i, j) = width of words[i..=j] joined by single spaces.
    let length = |i: usize, j: usize| -> usize { counts[i..=j].iter().sum::<usize>() + (j - i) };
    let mut nbrk = vec![0usize; n];
    let mut cost = vec![i64::from(i32::MAX); n];
    const PENALTY: i64 = 100_000;
    for i in (0..n).rev() {
        if length(i, n - 1) <= lim {
            cost[i] = 0;
            nbrk[i] = n;
        } else {
            for j in i + 1..n {
                let len = length(i, j - 1);
                let d = lim as i64 - len as i64;
                let mut c = d * d + cost[j];
                if len > lim {
                    c += PENALTY;
                }
                if c < cost[i] {
                    cost[i] = c;
                    nbrk[i] = j;
                }
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        let next = nbrk[i].max(i + 1);
        lines.push(words[i..next].join(" "));
        i = next;
    }
    lines
}

/// An I/O error as Go's `os` package words it: `open /x: no such file or directory`.
pub(crate) fn io_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let msg = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().collect::<String>() + chars.as_str(),
                None => text,
            }
        }
    };
    format!("{op} {path}: {msg}")
}

/// Local wall-clock time as capnslog prints it: `2006-01-02 15:04:05.000000`
/// (UTC: this binary does not read time zones).
pub(crate) fn log_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote(b"abc"), r#""abc""#);
        assert_eq!(quote(b"a\"b\\c\n\t"), r#""a\"b\\c\n\t""#);
        assert_eq!(quote(b"\x00\x7f"), r#""\x00\x7f""#);
        assert_eq!(quote(b"\xff"), r#""\xff""#);
        assert_eq!(quote("héllo ✓".as_bytes()), "\"héllo ✓\"");
    }

    #[test]
    fn unquotes_like_sscanf() {
        let (v, rest) = unquote_prefix(r#" "a\"b\x41" rest"#).unwrap();
        assert_eq!(v, b"a\"bA");
        assert_eq!(rest, " rest");
        assert!(unquote_prefix("abc").is_none());
        assert!(unquote_prefix("\"open").is_none());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(duration_string(Duration::ZERO), "0s");
        assert_eq!(duration_string(Duration::from_nanos(800)), "800ns");
        assert_eq!(duration_string(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(
            duration_string(Duration::from_nanos(1_223_525)),
            "1.223525ms"
        );
        assert_eq!(duration_string(Duration::from_millis(2500)), "2.5s");
        assert_eq!(duration_string(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration_string(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn integers_parse_like_strconv() {
        assert_eq!(parse_int_base0("10"), Ok(10));
        assert_eq!(parse_int_base0("0x10"), Ok(16));
        assert_eq!(parse_int_base0("010"), Ok(8));
        assert_eq!(parse_int_base0("-5"), Ok(-5));
        assert!(parse_int_base0("abc").is_err());
        assert_eq!(parse_hex_i64("ff"), Ok(255));
        assert_eq!(
            parse_hex_i64("zz").unwrap_err(),
            "strconv.ParseInt: parsing \"zz\": invalid syntax"
        );
        assert_eq!(parse_hex_u64("2e1259d415f2a040"), Ok(0x2e12_59d4_15f2_a040));
        assert_eq!(parse_int10("12"), Ok(12));
        assert!(parse_int10("1x").is_err());
        assert!(parse_int10("-").is_err());
    }

    #[test]
    fn humanizes_like_go_humanize() {
        assert_eq!(humanize_bytes(7), "7 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(humanize_bytes(999), "999 B");
    }

    #[test]
    fn json_strings_escape_like_go() {
        let mut s = String::new();
        json_string(&mut s, "a<b>&\"\n\u{1}");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\n\u0001""#);
    }

    #[test]
    fn tables_match_tablewriter() {
        let t = table(
            &["endpoint", "health", "took", "error"],
            &[vec![
                "127.0.0.1:23790".into(),
                "true".into(),
                "1.339573ms".into(),
                String::new(),
            ]],
        );
        let expected = "\
+-----------------+--------+------------+-------+
|    ENDPOINT     | HEALTH |    TOOK    | ERROR |
+-----------------+--------+------------+-------+
| 127.0.0.1:23790 |   true | 1.339573ms |       |
+-----------------+--------+------------+-------+
";
        assert_eq!(t, expected);
    }

    #[test]
    fn long_cells_wrap_at_thirty_columns() {
        let lines = wrap_string(
            "rpc error: code = Unavailable desc = connection refused",
            30,
        );
        assert!(lines.iter().all(|l| l.len() <= 30), "{lines:?}");
        assert_eq!(
            lines.join(" "),
            "rpc error: code = Unavailable desc = connection refused"
        );
    }

    #[test]
    fn timestamps_have_capnslog_shape() {
        let ts = log_timestamp();
        assert_eq!(ts.len(), 26, "{ts}");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }
}

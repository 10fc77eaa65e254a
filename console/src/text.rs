//! Text helpers shared by the views: value rendering (JSON pretty-print,
//! hex for binary), line diffs, sizes, durations.

use std::time::Duration;

/// How a value is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueText {
    /// "JSON", "text", "binary", "empty".
    pub kind: &'static str,
    /// Lines to show.
    pub lines: Vec<String>,
}

/// Renders a value: JSON pretty-printed, UTF-8 text as is, anything else
/// as a hex dump.
pub fn format_value(value: &[u8]) -> ValueText {
    if value.is_empty() {
        return ValueText {
            kind: "empty",
            lines: Vec::new(),
        };
    }
    if let Ok(text) = std::str::from_utf8(value) {
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(text)
            && let Ok(pretty) = serde_json::to_string_pretty(&json)
        {
            return ValueText {
                kind: "JSON",
                lines: pretty.lines().map(str::to_string).collect(),
            };
        }
        if !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return ValueText {
                kind: "text",
                lines: text.lines().map(|l| l.replace('\t', "    ")).collect(),
            };
        }
    }
    ValueText {
        kind: "binary",
        lines: hex_dump(value),
    }
}

fn hex_dump(value: &[u8]) -> Vec<String> {
    value
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  {ascii}", i * 16, hex.join(" "))
        })
        .collect()
}

/// A one-line preview of a value: text with whitespace runs collapsed,
/// or a byte count for binary values.
pub fn preview(value: &[u8], width: usize) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) => ellipsize(
            &text.split_whitespace().collect::<Vec<_>>().join(" "),
            width,
        ),
        _ => format!("({} bytes of binary)", value.len()),
    }
}

/// One line of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffLine {
    /// In both.
    Same(String),
    /// Only in the old text.
    Removed(String),
    /// Only in the new text.
    Added(String),
}

/// Line diff of `old` -> `new` (longest common subsequence; inputs past
/// 2000 lines are compared as wholes).
pub fn diff_lines(old: &[String], new: &[String]) -> Vec<DiffLine> {
    if old.len() > 2000 || new.len() > 2000 {
        let mut out: Vec<DiffLine> = old.iter().cloned().map(DiffLine::Removed).collect();
        out.extend(new.iter().cloned().map(DiffLine::Added));
        return out;
    }
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push(DiffLine::Same(old[i].clone()));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals first, as in a unified diff: old line, then its replacement.
            out.push(DiffLine::Removed(old[i].clone()));
            i += 1;
        } else {
            out.push(DiffLine::Added(new[j].clone()));
            j += 1;
        }
    }
    out
}

/// "20 kB" style sizes, as etcdctl prints them (SI units).
pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// Compact durations: "12s", "3m04s", "2h05m", "4d03h".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// "1.5/s" style rates.
pub fn human_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}/s")
    } else {
        format!("{r:.1}/s")
    }
}

/// Truncates to `width` characters with an ellipsis.
pub fn ellipsize(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_printed() {
        let v = format_value(br#"{"a":1,"b":[true]}"#);
        assert_eq!(v.kind, "JSON");
        assert_eq!(
            v.lines,
            ["{", "  \"a\": 1,", "  \"b\": [", "    true", "  ]", "}"]
        );
    }

    #[test]
    fn text_and_binary() {
        assert_eq!(format_value(b"hello\nworld").lines, ["hello", "world"]);
        assert_eq!(format_value(b"{not json").kind, "text");
        let bin = format_value(&[0, 1, 0xff, b'a']);
        assert_eq!(bin.kind, "binary");
        assert!(bin.lines[0].starts_with("00000000  00 01 ff 61"));
        assert!(bin.lines[0].ends_with("...a"));
        assert_eq!(format_value(b"").kind, "empty");
    }

    #[test]
    fn diffs_lines() {
        let old: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let new: Vec<String> = ["a", "x", "c"].map(String::from).to_vec();
        assert_eq!(
            diff_lines(&old, &new),
            [
                DiffLine::Same("a".into()),
                DiffLine::Removed("b".into()),
                DiffLine::Added("x".into()),
                DiffLine::Same("c".into()),
            ]
        );
        let grown: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(
            diff_lines(&old, &grown).last(),
            Some(&DiffLine::Added("d".into()))
        );
        assert_eq!(
            diff_lines(&grown, &old).last(),
            Some(&DiffLine::Removed("d".into()))
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_duration(Duration::from_secs(12)), "12s");
        assert_eq!(human_duration(Duration::from_secs(184)), "3m04s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h05m");
        assert_eq!(ellipsize("abcdef", 4), "abc…");
    }
}

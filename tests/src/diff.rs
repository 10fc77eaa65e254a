//! Readable line diffs for differential tests (expected vs actual
//! transcripts). A plain LCS diff: transcripts are small.

/// A unified-style diff of `expected` and `actual`: lines only in
/// `expected` start with `-`, lines only in `actual` with `+`, common lines
/// with two spaces. Runs of more than `2 * CONTEXT` common lines are elided.
pub fn line_diff(expected: &str, actual: &str) -> String {
    const CONTEXT: usize = 3;
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j] = length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let near_change = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = String::new();
    let mut elided = false;
    for (k, (tag, line)) in lines.iter().enumerate() {
        if *tag == ' ' && !near_change(k) {
            if !elided {
                out.push_str("  ...\n");
                elided = true;
            }
            continue;
        }
        elided = false;
        out.push(*tag);
        out.push(' ');
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_changed_lines_and_elides_far_context() {
        let expected = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj";
        let actual = "a\nb\nc\nd\ne\nF\ng\nh\ni\nj";
        let diff = line_diff(expected, actual);
        assert!(diff.contains("- f\n+ F\n"), "{diff}");
        assert!(diff.starts_with("  ...\n  c\n"), "{diff}");
        assert!(diff.ends_with("  i\n  ...\n"), "{diff}");
    }

    #[test]
    fn equal_texts_have_no_changes() {
        let diff = line_diff("x\ny", "x\ny");
        assert!(!diff.contains("\n+") && !diff.contains("\n-"), "{diff}");
    }
}

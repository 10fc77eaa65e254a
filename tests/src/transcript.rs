//! Helpers for differential transcripts (the same requests sent to real
//! etcd and to the flavor under test, answers compared as text).

/// Replaces the value of every `"key":` in `body` with `"*"` (for values
/// that legitimately differ between two clusters: ids, terms, times).
pub fn mask(body: &str, keys: &[&str]) -> String {
    let mut out = body.to_string();
    for key in keys {
        let pattern = format!("\"{key}\":");
        let mut masked = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&pattern) {
            let (head, tail) = rest.split_at(at + pattern.len());
            masked.push_str(head);
            masked.push_str("\"*\"");
            rest = &tail[value_end(tail)..];
        }
        masked.push_str(rest);
        out = masked;
    }
    out
}

/// The end of the JSON value starting at `text[0]` (a string, a number, a
/// literal, an array or an object).
fn value_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    in_string = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth == 0 => return i,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_strings_and_numbers() {
        assert_eq!(
            mask(r#"{"a":"x","b":12,"c":[1],"a":"y"}"#, &["a", "b"]),
            r#"{"a":"*","b":"*","c":[1],"a":"*"}"#
        );
        assert_eq!(
            mask(
                r#"{"m":[{"x":1},{"y":"a,b"}],"n":{"z":[]},"o":2}"#,
                &["m", "n"]
            ),
            r#"{"m":"*","n":"*","o":2}"#
        );
    }
}

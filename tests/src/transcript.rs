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
            let end = if let Some(string) = tail.strip_prefix('"') {
                string.find('"').map_or(tail.len(), |i| i + 2)
            } else {
                tail.find([',', '}', ']']).unwrap_or(tail.len())
            };
            rest = &tail[end..];
        }
        masked.push_str(rest);
        out = masked;
    }
    out
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
    }
}

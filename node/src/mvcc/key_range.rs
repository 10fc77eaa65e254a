//! etcd's `(key, range_end)` pair turned into an explicit interval.

/// The keys a request names.
///
/// etcd encodes a range as `key` plus `range_end`: an empty end means the
/// single key, `"\0"` means every key `>= key`, and anything else is the
/// half-open interval `[key, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key.
    Single(Vec<u8>),
    /// `[start, end)`; `end == None` means unbounded.
    Interval {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    /// Interprets etcd's wire encoding.
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Interval {
                start: key.to_vec(),
                end: None,
            },
            end => KeyRange::Interval {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    /// The range of every key that starts with `prefix` (what `--prefix` sends).
    pub fn prefix(prefix: &[u8]) -> Self {
        let end = prefix_end(prefix);
        Self::new(prefix, &end)
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_slice() == key,
            KeyRange::Interval { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|e| key < e.as_slice())
            }
        }
    }

    /// Whether no key can lie in the range (`range_end <= key`).
    pub fn is_empty(&self) -> bool {
        match self {
            KeyRange::Single(_) => false,
            KeyRange::Interval { start, end } => end.as_ref().is_some_and(|e| e <= start),
        }
    }

    /// Whether two ranges share at least one key.
    pub fn intersects(&self, other: &KeyRange) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        match (self, other) {
            (KeyRange::Single(k), r) | (r, KeyRange::Single(k)) => r.contains(k),
            (
                KeyRange::Interval { start: s1, end: e1 },
                KeyRange::Interval { start: s2, end: e2 },
            ) => {
                let a_before_b_ends = e2.as_ref().is_none_or(|e| s1 < e);
                let b_before_a_ends = e1.as_ref().is_none_or(|e| s2 < e);
                a_before_b_ends && b_before_a_ends
            }
        }
    }
}

/// The smallest key greater than every key with this prefix: the last byte
/// plus one, after dropping trailing `0xff` bytes; `"\0"` (everything) when
/// the prefix is all `0xff` or empty.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_encodings() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a".to_vec()));
        assert!(KeyRange::new(b"a", b"\0").contains(b"zzzz"));
        assert!(!KeyRange::new(b"b", b"\0").contains(b"a"));
        let r = KeyRange::new(b"a", b"c");
        assert!(r.contains(b"a") && r.contains(b"bzz") && !r.contains(b"c"));
        assert!(KeyRange::new(b"c", b"a").is_empty());
        assert!(KeyRange::new(b"c", b"c").is_empty());
    }

    #[test]
    fn prefix_end_drops_trailing_ff() {
        assert_eq!(prefix_end(b"foo"), b"fop".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
        assert!(KeyRange::prefix(b"/a/").contains(b"/a/x"));
        assert!(!KeyRange::prefix(b"/a/").contains(b"/b"));
    }

    #[test]
    fn intersections() {
        let point = KeyRange::Single(b"k".to_vec());
        assert!(point.intersects(&KeyRange::new(b"a", b"z")));
        assert!(!point.intersects(&KeyRange::new(b"a", b"k")));
        assert!(KeyRange::new(b"a", b"c").intersects(&KeyRange::new(b"b", b"\0")));
        assert!(!KeyRange::new(b"a", b"b").intersects(&KeyRange::new(b"b", b"c")));
        assert!(!KeyRange::new(b"c", b"a").intersects(&KeyRange::new(b"a", b"\0")));
    }
}

//! Whether granted key ranges cover a requested one, in etcd's range
//! notation: an empty end means the key alone, `[0]` every key from the
//! start on, anything else the half-open `[key, end)`.

/// The end of a half-open byte interval; `None` is unbounded.
type End = Option<Vec<u8>>;

/// `[key, range_end)` as a half-open interval (`key` alone is
/// `[key, key\0)`, its only member).
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, End) {
    match range_end {
        [] => (key.to_vec(), Some(successor(key))),
        [0] => (key.to_vec(), None),
        end if end <= key => (key.to_vec(), Some(successor(key))),
        end => (key.to_vec(), Some(end.to_vec())),
    }
}

fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Whether the union of `granted` ranges contains every key of the
/// requested `[key, range_end)`. An inverted request range is checked as
/// its first key alone.
pub fn covers<'a>(
    granted: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let mut granted: Vec<(Vec<u8>, End)> = granted
        .into_iter()
        .map(|(start, end)| interval(start, end))
        .collect();
    granted.sort();
    let (mut covered_to, wanted_end) = interval(key, range_end);
    // Sweep forward from the request's start, extending over every granted
    // interval that begins at or before the point reached so far.
    for (start, end) in granted {
        if start > covered_to {
            break;
        }
        match end {
            None => return true,
            Some(end) if end > covered_to => covered_to = end,
            Some(_) => {}
        }
        if wanted_end
            .as_ref()
            .is_some_and(|wanted| covered_to >= *wanted)
        {
            return true;
        }
    }
    wanted_end.is_some_and(|wanted| covered_to >= wanted)
}

#[cfg(test)]
mod tests {
    use super::covers;

    fn check(granted: &[(&str, &str)], key: &str, end: &str) -> bool {
        covers(
            granted.iter().map(|(k, e)| (k.as_bytes(), e.as_bytes())),
            key.as_bytes(),
            end.as_bytes(),
        )
    }

    #[test]
    fn single_keys_are_covered_by_a_range_or_an_equal_key() {
        assert!(check(&[("/a", "/c")], "/b", ""));
        assert!(check(&[("/a", "/c")], "/a", ""));
        assert!(!check(&[("/a", "/c")], "/c", ""));
        assert!(check(&[("k", "")], "k", ""));
        assert!(!check(&[("k", "")], "k0", ""));
        assert!(!check(&[], "k", ""));
    }

    #[test]
    fn ranges_need_the_union_of_grants_to_cover_them() {
        assert!(check(&[("/a", "/c")], "/a", "/c"));
        assert!(!check(&[("/a", "/c")], "/a", "/d"));
        assert!(check(&[("/a", "/b"), ("/b", "/d")], "/a", "/d"));
        assert!(check(&[("/b", "/d"), ("/a", "/b")], "/a", "/c"));
        assert!(!check(&[("/a", "/b"), ("/b0", "/d")], "/a", "/c"));
        // A single-key grant bridges exactly its key.
        assert!(check(
            &[("/a", "/b"), ("/b", ""), ("/b\0", "/d")],
            "/a",
            "/d"
        ));
    }

    #[test]
    fn from_key_grants_and_requests_are_unbounded() {
        assert!(check(&[("/z", "\0")], "/z", "\0"));
        assert!(check(&[("/z", "\0")], "/zzz", ""));
        assert!(!check(&[("/z", "\0")], "/y", "\0"));
        assert!(!check(&[("/a", "/c")], "/a", "\0"));
        assert!(check(&[("\0", "\0")], "\0", "\0"));
    }

    #[test]
    fn an_inverted_request_range_is_its_first_key() {
        assert!(check(&[("/b", "")], "/b", "/a"));
        assert!(!check(&[("/c", "")], "/b", "/a"));
    }
}

//! The key browser's listing: children of a prefix built page by page from
//! keys-only prefix ranges. No I/O.
//!
//! In tree mode a key under the current prefix is shown as its next segment:
//! the part up to and including the first `/` or `:` is a directory, a
//! remainder without separator is a key. Keys arrive in byte order, so all
//! keys of one directory are contiguous; when a page ends inside a
//! directory, the next page starts past that whole directory
//! (`prefix_end(dir)`), so listing the children of a prefix costs about one
//! page per child even when a child holds millions of keys.

/// Separators that split keys into tree levels.
pub const SEPARATORS: &[u8] = b"/:";

/// What a listing row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A group of keys sharing the row's name as prefix.
    Dir,
    /// One key.
    Key,
}

/// One row of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Dir or key.
    pub kind: EntryKind,
    /// Name relative to the listing's prefix (dirs end with a separator; in
    /// flat mode the full key).
    pub name: Vec<u8>,
    /// The full key (for a dir, the full prefix).
    pub full: Vec<u8>,
    /// Keys seen under a dir.
    pub count: usize,
    /// Whether the dir holds more keys than were counted (its tail was skipped).
    pub partial: bool,
}

impl Entry {
    /// The name as text (invalid UTF-8 escaped).
    pub fn display(&self) -> String {
        let name = display_key(&self.name);
        if name.is_empty() && self.kind == EntryKind::Key {
            "(the prefix itself)".to_string()
        } else {
            name
        }
    }
}

/// The rows under one prefix, as far as pages have been read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The prefix listed.
    pub prefix: Vec<u8>,
    /// Flat mode: every key in full, no grouping.
    pub flat: bool,
    /// Rows in key order.
    pub entries: Vec<Entry>,
    /// Where the next page starts, if there is one.
    pub next: Option<Vec<u8>>,
    /// Keys read so far.
    pub keys_read: usize,
    /// Pages read so far.
    pub pages: usize,
    /// Store revision of the last page.
    pub revision: i64,
}

impl Listing {
    /// An empty listing of `prefix` whose first page starts at the prefix.
    pub fn new(prefix: Vec<u8>, flat: bool) -> Self {
        Self {
            next: Some(prefix.clone()),
            prefix,
            flat,
            ..Self::default()
        }
    }

    /// Adds one page read from `self.next`.
    pub fn absorb(&mut self, keys: &[Vec<u8>], more: bool, revision: i64) {
        self.pages += 1;
        self.revision = revision;
        self.keys_read += keys.len();
        let mut last_dir_end = None;
        for key in keys {
            if !key.starts_with(&self.prefix) {
                continue;
            }
            let rest = &key[self.prefix.len()..];
            let sep = if self.flat {
                None
            } else {
                rest.iter().position(|b| SEPARATORS.contains(b))
            };
            match sep {
                Some(i) => {
                    let name = rest[..=i].to_vec();
                    match self.entries.last_mut() {
                        Some(e) if e.kind == EntryKind::Dir && e.name == name => e.count += 1,
                        _ => {
                            let mut full = self.prefix.clone();
                            full.extend_from_slice(&name);
                            self.entries.push(Entry {
                                kind: EntryKind::Dir,
                                name,
                                full,
                                count: 1,
                                partial: false,
                            });
                        }
                    }
                    last_dir_end = Some(());
                }
                None => {
                    let name = if self.flat {
                        key.clone()
                    } else {
                        rest.to_vec()
                    };
                    self.entries.push(Entry {
                        kind: EntryKind::Key,
                        name,
                        full: key.clone(),
                        count: 1,
                        partial: false,
                    });
                    last_dir_end = None;
                }
            }
        }
        self.next = match (more, keys.last()) {
            (true, Some(last)) => {
                if last_dir_end.is_some()
                    && let Some(dir) = self.entries.last_mut()
                {
                    // Skip the rest of this directory: its children are
                    // listed when the user opens it.
                    dir.partial = true;
                    let end = prefix_end(&dir.full);
                    if end == [0] { None } else { Some(end) }
                } else {
                    let mut after = last.clone();
                    after.push(0);
                    Some(after)
                }
            }
            _ => None,
        };
    }

    /// Whether more pages can be read.
    pub fn has_more(&self) -> bool {
        self.next.is_some()
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's
/// `range_end` for a prefix); `[0]` means "to the end of the keyspace".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// The parent prefix of `prefix` in tree mode ("a/b/" -> "a/", "a/" -> "").
pub fn parent(prefix: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        return Vec::new();
    }
    let body = &prefix[..prefix.len() - 1];
    match body.iter().rposition(|b| SEPARATORS.contains(b)) {
        Some(i) => prefix[..=i].to_vec(),
        None => Vec::new(),
    }
}

/// A key as text: UTF-8 as is, other bytes as `\xNN`, control characters escaped.
pub fn display_key(key: &[u8]) -> String {
    let mut out = String::new();
    for chunk in key.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.push_str(&c.escape_default().to_string());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    fn names(l: &Listing) -> Vec<String> {
        l.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::Dir => format!(
                    "{} ({}{})",
                    e.display(),
                    e.count,
                    if e.partial { "+" } else { "" }
                ),
                EntryKind::Key => e.display(),
            })
            .collect()
    }

    #[test]
    fn groups_by_slash_and_colon() {
        let mut l = Listing::new(Vec::new(), false);
        l.absorb(
            &keys(&[
                "/registry/a",
                "/registry/b",
                "a",
                "user:1:name",
                "user:2",
                "zeta",
            ]),
            false,
            9,
        );
        assert_eq!(names(&l), ["/ (2)", "a", "user: (2)", "zeta"]);
        assert_eq!(l.next, None);
        assert_eq!(l.revision, 9);
    }

    #[test]
    fn lists_children_below_a_prefix() {
        let mut l = Listing::new(b"/registry/".to_vec(), false);
        l.absorb(
            &keys(&[
                "/registry/",
                "/registry/pods/a",
                "/registry/pods/b",
                "/registry/x",
            ]),
            false,
            3,
        );
        assert_eq!(names(&l), ["(the prefix itself)", "pods/ (2)", "x"]);
        assert_eq!(l.entries[1].full, b"/registry/pods/");
    }

    #[test]
    fn a_page_ending_inside_a_dir_skips_the_rest_of_it() {
        let mut l = Listing::new(Vec::new(), false);
        l.absorb(&keys(&["a", "big/1", "big/2"]), true, 5);
        assert_eq!(names(&l), ["a", "big/ (2+)"]);
        assert_eq!(l.next.as_deref(), Some(&b"big0"[..]));
        l.absorb(&keys(&["c"]), false, 5);
        assert_eq!(names(&l), ["a", "big/ (2+)", "c"]);
        assert!(!l.has_more());
        assert_eq!(l.pages, 2);
    }

    #[test]
    fn a_page_ending_on_a_key_continues_right_after_it() {
        let mut l = Listing::new(Vec::new(), false);
        l.absorb(&keys(&["a", "b"]), true, 5);
        assert_eq!(l.next.as_deref(), Some(&b"b\0"[..]));
    }

    #[test]
    fn flat_mode_shows_full_keys() {
        let mut l = Listing::new(b"user".to_vec(), true);
        l.absorb(&keys(&["user:1:name", "user:2"]), true, 5);
        assert_eq!(names(&l), ["user:1:name", "user:2"]);
        assert_eq!(l.next.as_deref(), Some(&b"user:2\0"[..]));
    }

    #[test]
    fn prefix_end_and_parent() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
        assert_eq!(prefix_end(b""), [0]);
        assert_eq!(parent(b"/registry/pods/"), b"/registry/");
        assert_eq!(parent(b"/registry/"), b"/");
        assert_eq!(parent(b"/"), b"");
        assert_eq!(parent(b"user:1:"), b"user:");
        assert_eq!(parent(b""), b"");
    }

    #[test]
    fn binary_keys_are_escaped() {
        assert_eq!(display_key(b"a\xffb\n"), "a\\xffb\\n");
    }
}

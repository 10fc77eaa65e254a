//! v2 paths: always absolute and clean, `/` is the root.

/// The clean absolute form of `path` (Go's `path.Clean(path.Join("/", p))`):
/// empty and `.` components dropped, `..` resolved (never above the root),
/// no trailing slash except for the root itself.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return "/".into();
    }
    let mut out = String::with_capacity(path.len() + 1);
    for part in parts {
        out.push('/');
        out.push_str(part);
    }
    out
}

/// The parent directory of a clean path (`/` for top-level nodes).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(at) => &path[..at],
    }
}

/// `dir/name` for a clean directory path.
pub(super) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The paths from the top down to `path`, excluding the root: `/a/b` gives
/// `/a`, `/a/b`.
pub(super) fn ancestors_and_self(path: &str) -> Vec<&str> {
    path.char_indices()
        .filter(|(i, c)| *c == '/' && *i > 0)
        .map(|(i, _)| &path[..i])
        .chain((path != "/").then_some(path))
        .collect()
}

/// Whether a node is hidden from listings: its name starts with `_`.
pub(super) fn is_hidden_name(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|n| n.starts_with('_'))
}

/// Whether a change at `key` is hidden from a watcher at `watched` (an
/// ancestor of it): some component below the watched path starts with `_`.
/// A path below `key` (a deleted directory's child) is never hidden.
pub(super) fn is_hidden_below(watched: &str, key: &str) -> bool {
    if watched.len() > key.len() {
        return false;
    }
    let below = key.get(watched.len()..).unwrap_or_default();
    clean(below).contains("/_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_path_clean_under_root() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("a", "/a"),
            ("/a/", "/a"),
            ("//a//b/", "/a/b"),
            ("/a/./b/../c", "/a/c"),
            ("/../../x", "/x"),
            ("/a/..", "/"),
            ("/.hidden/_x", "/.hidden/_x"),
        ] {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn parents_joins_and_ancestors() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
        assert_eq!(ancestors_and_self("/a/b/c"), vec!["/a", "/a/b", "/a/b/c"]);
        assert_eq!(ancestors_and_self("/"), Vec::<&str>::new());
    }

    #[test]
    fn hidden_rules() {
        assert!(is_hidden_name("/a/_b"));
        assert!(!is_hidden_name("/_a/b"));
        assert!(is_hidden_below("/", "/_a"));
        assert!(is_hidden_below("/a", "/a/_b/c"));
        assert!(!is_hidden_below("/a/_b", "/a/_b/c"));
        assert!(!is_hidden_below("/a/b/c", "/a/b"));
    }
}

//! v2 bodies byte for byte as etcd writes them with Go's `encoding/json`:
//! struct field order, `omitempty` fields left out, HTML-safe string
//! escapes, times in RFC 3339 with trailing zeros of the fraction dropped.

use std::time::{Duration, UNIX_EPOCH};

use crate::v2store::{Action, Event, NodeView, UnixNanos, V2Error};

/// Go's `json.Marshal` of a string (HTML escaping on).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            // What a lossy decode put in place of invalid UTF-8 (Go writes
            // the same replacement character, escaped).
            '\u{fffd}' => out.push_str("\\ufffd"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `time.Time` in JSON: RFC 3339 in UTC with nanoseconds, trailing
/// zeros (and a bare dot) dropped.
pub(crate) fn rfc3339_nano(at: UnixNanos) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(at.max(0) as u64);
    let text = humantime::format_rfc3339_nanos(time).to_string();
    // `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`
    let Some((whole, fraction)) = text.trim_end_matches('Z').split_once('.') else {
        return text;
    };
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{whole}Z")
    } else {
        format!("{whole}.{fraction}Z")
    }
}

fn write_node(out: &mut String, node: &NodeView) {
    out.push('{');
    let mut first = true;
    let mut field = |out: &mut String, name: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
    };
    // The root's key is etcd's namespace, which it strips to nothing.
    if node.key != "/" {
        field(out, "key");
        write_string(out, &node.key);
    }
    if let Some(value) = &node.value {
        field(out, "value");
        write_string(out, value);
    }
    if node.dir {
        field(out, "dir");
        out.push_str("true");
    }
    if let Some(expiration) = node.expiration {
        field(out, "expiration");
        write_string(out, &rfc3339_nano(expiration));
    }
    if node.ttl != 0 {
        field(out, "ttl");
        out.push_str(&node.ttl.to_string());
    }
    if let Some(nodes) = node.nodes.as_ref().filter(|n| !n.is_empty()) {
        field(out, "nodes");
        out.push('[');
        for (i, child) in nodes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_node(out, child);
        }
        out.push(']');
    }
    if node.modified_index != 0 {
        field(out, "modifiedIndex");
        out.push_str(&node.modified_index.to_string());
    }
    if node.created_index != 0 {
        field(out, "createdIndex");
        out.push_str(&node.created_index.to_string());
    }
    out.push('}');
}

/// An event as etcd writes it, with the newline of Go's `json.Encoder`.
/// With `no_value_on_success`, a write's nodes are left out.
pub(crate) fn event_body(event: &Event, no_value_on_success: bool) -> String {
    let mut out = String::from("{\"action\":");
    write_string(&mut out, event.action.as_str());
    let hide = no_value_on_success
        && matches!(
            event.action,
            Action::Set | Action::CompareAndSwap | Action::Create | Action::Update
        );
    if !hide {
        out.push_str(",\"node\":");
        write_node(&mut out, &event.node);
        if let Some(prev) = &event.prev_node {
            out.push_str(",\"prevNode\":");
            write_node(&mut out, prev);
        }
    }
    out.push_str("}\n");
    out
}

/// A v2 error as etcd writes it (`fmt.Fprintln`, so a newline ends it).
pub(crate) fn error_body(error: &V2Error) -> String {
    let mut out = format!("{{\"errorCode\":{},\"message\":", error.code.number());
    write_string(&mut out, error.code.message());
    if !error.cause.is_empty() {
        out.push_str(",\"cause\":");
        write_string(&mut out, &error.cause);
    }
    out.push_str(&format!(",\"index\":{}}}\n", error.index));
    out
}

/// `{"message":...}`, the body of etcd's other v2 HTTP errors.
pub(crate) fn message_body(message: &str) -> String {
    let mut out = String::from("{\"message\":");
    write_string(&mut out, message);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2store::ErrorCode;

    #[test]
    fn events_render_as_etcd_writes_them() {
        let node = NodeView {
            key: "/nosql/foo".into(),
            value: Some("baz".into()),
            modified_index: 5,
            created_index: 5,
            ..Default::default()
        };
        let prev = NodeView {
            value: Some("bar".into()),
            modified_index: 4,
            created_index: 4,
            expiration: Some(1_795_313_924_927_250_480),
            ttl: 100,
            ..node.clone()
        };
        let event = Event {
            action: Action::Set,
            node,
            prev_node: Some(prev),
            etcd_index: 5,
            refresh: false,
        };
        assert_eq!(
            event_body(&event, false),
            "{\"action\":\"set\",\"node\":{\"key\":\"/nosql/foo\",\"value\":\"baz\",\"modifiedIndex\":5,\"createdIndex\":5},\
             \"prevNode\":{\"key\":\"/nosql/foo\",\"value\":\"bar\",\"expiration\":\"2026-11-22T02:18:44.92725048Z\",\"ttl\":100,\"modifiedIndex\":4,\"createdIndex\":4}}\n"
        );
        assert_eq!(event_body(&event, true), "{\"action\":\"set\"}\n");
        let root = NodeView {
            key: "/".into(),
            dir: true,
            nodes: Some(vec![NodeView {
                key: "/d".into(),
                dir: true,
                nodes: Some(Vec::new()),
                modified_index: 1,
                created_index: 1,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let get = Event {
            action: Action::Get,
            node: root,
            prev_node: None,
            etcd_index: 1,
            refresh: false,
        };
        assert_eq!(
            event_body(&get, false),
            "{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/d\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}]}}\n"
        );
    }

    #[test]
    fn errors_and_strings_render_as_go_does() {
        let error = V2Error::new(ErrorCode::TestFailed, "[two != one]", 7);
        assert_eq!(
            error_body(&error),
            "{\"errorCode\":101,\"message\":\"Compare failed\",\"cause\":\"[two != one]\",\"index\":7}\n"
        );
        let no_cause = V2Error::new(ErrorCode::NotFile, "", 3);
        assert_eq!(
            error_body(&no_cause),
            "{\"errorCode\":102,\"message\":\"Not a file\",\"index\":3}\n"
        );
        let mut out = String::new();
        write_string(&mut out, "a\"\\<>&\u{1}\u{8}\n\u{2028}é\u{fffd}");
        assert_eq!(
            out,
            r#""a\"\\\u003c\u003e\u0026\u0001\u0008\n\u2028é\ufffd""#
        );
        assert_eq!(
            rfc3339_nano(1_795_305_600_000_000_000),
            "2026-11-22T00:00:00Z"
        );
        assert_eq!(
            rfc3339_nano(1_795_305_600_500_000_000),
            "2026-11-22T00:00:00.5Z"
        );
    }
}

//! etcd's v2 keys API wire format: response bodies and error bodies, and the
//! one place where store errors become v2 error codes and HTTP statuses.

use http::StatusCode;
use serde::Serialize;

use crate::store::{Event, Node, StoreError};

/// A v2 error code with etcd's fixed message and HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    KeyNotFound,
    NotFile,
    NodeExist,
    IndexNaN,
    InvalidField,
    InvalidForm,
    RaftInternal,
    EventIndexCleared,
}

impl Code {
    pub fn number(self) -> u32 {
        match self {
            Code::KeyNotFound => 100,
            Code::NotFile => 102,
            Code::NodeExist => 105,
            Code::IndexNaN => 203,
            Code::InvalidField => 209,
            Code::InvalidForm => 210,
            Code::RaftInternal => 300,
            Code::EventIndexCleared => 401,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Code::KeyNotFound => "Key not found",
            Code::NotFile => "Not a file",
            Code::NodeExist => "Key already exists",
            Code::IndexNaN => "The given index in POST form is not a number",
            Code::InvalidField => "Invalid field",
            Code::InvalidForm => "Invalid POST form",
            Code::RaftInternal => "Raft Internal Error",
            Code::EventIndexCleared => "The event in requested index is outdated and cleared",
        }
    }

    /// etcd's HTTP status for the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::KeyNotFound => StatusCode::NOT_FOUND,
            Code::NotFile => StatusCode::FORBIDDEN,
            Code::NodeExist => StatusCode::PRECONDITION_FAILED,
            Code::IndexNaN | Code::InvalidField | Code::InvalidForm | Code::EventIndexCleared => {
                StatusCode::BAD_REQUEST
            }
            Code::RaftInternal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A v2 error: `{"errorCode","message","cause","index"}` with a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub cause: String,
    pub index: u64,
    pub status: StatusCode,
}

impl Error {
    pub fn new(code: Code, cause: impl Into<String>, index: u64) -> Error {
        Error {
            code,
            cause: cause.into(),
            index,
            status: code.status(),
        }
    }

    /// The same error answered with another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Error {
        self.status = status;
        self
    }

    /// The JSON body, newline-terminated as etcd writes it.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "errorCode")]
            error_code: u32,
            message: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            cause: &'a str,
            index: u64,
        }
        to_line(&Wire {
            error_code: self.code.number(),
            message: self.code.message(),
            cause: &self.cause,
            index: self.index,
        })
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::NotFound { key, index } => Error::new(Code::KeyNotFound, key, index),
            StoreError::AlreadyExists { key, index } => Error::new(Code::NodeExist, key, index),
            StoreError::NotAFile { key, index } => Error::new(Code::NotFile, key, index),
            StoreError::ReadOnly { ref key, index } => {
                Error::new(Code::InvalidField, format!("{key} is read-only"), index)
            }
            StoreError::HistoryCleared { index, .. } => {
                Error::new(Code::EventIndexCleared, e.to_string(), index)
            }
            StoreError::BadSize { .. } => Error::new(
                Code::InvalidField,
                format!("invalid value for \"size\": {e}"),
                0,
            ),
            StoreError::TooManyMembers { index, .. } => {
                Error::new(Code::InvalidField, e.to_string(), index)
            }
            StoreError::TooManyTokens { .. } | StoreError::TooManyWaiters { .. } => {
                // 503: etcd's client backs off and retries.
                Error::new(Code::RaftInternal, e.to_string(), 0)
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            StoreError::NewerSchema { .. }
            | StoreError::Sqlite(_)
            | StoreError::Corrupt(_)
            | StoreError::Closed
            | StoreError::DataDir { .. } => Error::new(Code::RaftInternal, "storage error", 0),
        }
    }
}

#[derive(Serialize)]
struct WireNode<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    dir: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<WireNode<'a>>,
    #[serde(rename = "modifiedIndex")]
    modified_index: u64,
    #[serde(rename = "createdIndex")]
    created_index: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl<'a> WireNode<'a> {
    fn from_node(node: &'a Node) -> WireNode<'a> {
        WireNode {
            key: &node.key,
            value: node.value.as_deref(),
            dir: node.dir,
            nodes: node.nodes.iter().map(WireNode::from_node).collect(),
            modified_index: node.modified_index,
            created_index: node.created_index,
        }
    }
}

/// The JSON body of a successful v2 response, newline-terminated.
pub fn event_body(event: &Event) -> Vec<u8> {
    #[derive(Serialize)]
    struct Wire<'a> {
        action: &'a str,
        node: WireNode<'a>,
        #[serde(rename = "prevNode", skip_serializing_if = "Option::is_none")]
        prev_node: Option<WireNode<'a>>,
    }
    to_line(&Wire {
        action: event.action.as_str(),
        node: WireNode::from_node(&event.node),
        prev_node: event.prev_node.as_ref().map(WireNode::from_node),
    })
}

fn to_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Action;

    fn node(key: &str, value: Option<&str>, created: u64, modified: u64) -> Node {
        Node {
            key: key.into(),
            value: value.map(Into::into),
            dir: false,
            nodes: Vec::new(),
            created_index: created,
            modified_index: modified,
        }
    }

    #[test]
    fn bodies_look_like_etcds() {
        let create = Event {
            action: Action::Create,
            node: node("/t/a1", Some("n1=http://127.0.0.1:2380"), 2, 2),
            prev_node: None,
        };
        assert_eq!(
            String::from_utf8(event_body(&create)).unwrap(),
            "{\"action\":\"create\",\"node\":{\"key\":\"/t/a1\",\"value\":\"n1=http://127.0.0.1:2380\",\
             \"modifiedIndex\":2,\"createdIndex\":2}}\n"
        );
        let listing = Event {
            action: Action::Get,
            node: Node {
                key: "/t".into(),
                value: None,
                dir: true,
                nodes: vec![node("/t/a1", Some("x"), 2, 2)],
                created_index: 1,
                modified_index: 1,
            },
            prev_node: None,
        };
        assert_eq!(
            String::from_utf8(event_body(&listing)).unwrap(),
            "{\"action\":\"get\",\"node\":{\"key\":\"/t\",\"dir\":true,\"nodes\":[{\"key\":\"/t/a1\",\
             \"value\":\"x\",\"modifiedIndex\":2,\"createdIndex\":2}],\"modifiedIndex\":1,\
             \"createdIndex\":1}}\n"
        );
        let delete = Event {
            action: Action::Delete,
            node: node("/t/a1", None, 2, 3),
            prev_node: Some(node("/t/a1", Some("x"), 2, 2)),
        };
        let json: serde_json::Value = serde_json::from_slice(&event_body(&delete)).unwrap();
        assert_eq!(json["node"].get("value"), None);
        assert_eq!(json["prevNode"]["value"], "x");
    }

    #[test]
    fn errors_look_like_etcds() {
        let e = Error::from(StoreError::AlreadyExists {
            key: "/t/a1".into(),
            index: 7,
        });
        assert_eq!(e.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(
            String::from_utf8(e.body()).unwrap(),
            "{\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":\"/t/a1\",\"index\":7}\n"
        );
        let e = Error::from(StoreError::HistoryCleared {
            start: 77,
            requested: 5,
            index: 1100,
        });
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code.number(), 401);
        assert_eq!(e.cause, "the requested history has been cleared [77/5]");
        let e = Error::from(StoreError::NotFound {
            key: "/t".into(),
            index: 0,
        });
        assert_eq!((e.status, e.code.number()), (StatusCode::NOT_FOUND, 100));
        let e = Error::from(StoreError::TooManyWaiters { max: 1 });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        let e = Error::from(StoreError::Closed);
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.cause, "storage error");
    }
}

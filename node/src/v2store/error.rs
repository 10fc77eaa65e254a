//! etcd's v2 error codes, with their messages and HTTP statuses.

use serde::{Deserialize, Serialize};

/// A v2 error code (etcd's `Ecode*`): the ones etcd 3.4's keys API can
/// answer, plus 110 and 301, which are in etcd's table (clients map them)
/// but which neither etcd 3.4 nor this server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    KeyNotFound,
    TestFailed,
    NotFile,
    NotDir,
    NodeExist,
    RootReadOnly,
    DirNotEmpty,
    /// Needs v2 auth, which is never enabled here (as by default in etcd).
    Unauthorized,
    PrevValueRequired,
    TtlNaN,
    IndexNaN,
    InvalidField,
    InvalidForm,
    RefreshValue,
    RefreshTtlRequired,
    /// A request that could not be committed (no leader, timeout).
    RaftInternal,
    /// In etcd's table; etcd 3.4 answers 300 when there is no leader, and
    /// so does this server.
    LeaderElect,
    /// A wait ended because a snapshot replaced this member's store.
    WatcherCleared,
    EventIndexCleared,
}

impl ErrorCode {
    /// The number in `"errorCode"`.
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::KeyNotFound => 100,
            ErrorCode::TestFailed => 101,
            ErrorCode::NotFile => 102,
            ErrorCode::NotDir => 104,
            ErrorCode::NodeExist => 105,
            ErrorCode::RootReadOnly => 107,
            ErrorCode::DirNotEmpty => 108,
            ErrorCode::Unauthorized => 110,
            ErrorCode::PrevValueRequired => 201,
            ErrorCode::TtlNaN => 202,
            ErrorCode::IndexNaN => 203,
            ErrorCode::InvalidField => 209,
            ErrorCode::InvalidForm => 210,
            ErrorCode::RefreshValue => 211,
            ErrorCode::RefreshTtlRequired => 212,
            ErrorCode::RaftInternal => 300,
            ErrorCode::LeaderElect => 301,
            ErrorCode::WatcherCleared => 400,
            ErrorCode::EventIndexCleared => 401,
        }
    }

    /// etcd's message for the code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::KeyNotFound => "Key not found",
            ErrorCode::TestFailed => "Compare failed",
            ErrorCode::NotFile => "Not a file",
            ErrorCode::NotDir => "Not a directory",
            ErrorCode::NodeExist => "Key already exists",
            ErrorCode::RootReadOnly => "Root is read only",
            ErrorCode::DirNotEmpty => "Directory not empty",
            ErrorCode::Unauthorized => "The request requires user authentication",
            ErrorCode::PrevValueRequired => "PrevValue is Required in POST form",
            ErrorCode::TtlNaN => "The given TTL in POST form is not a number",
            ErrorCode::IndexNaN => "The given index in POST form is not a number",
            ErrorCode::InvalidField => "Invalid field",
            ErrorCode::InvalidForm => "Invalid POST form",
            ErrorCode::RefreshValue => "Value provided on refresh",
            ErrorCode::RefreshTtlRequired => "A TTL must be provided on refresh",
            ErrorCode::RaftInternal => "Raft Internal Error",
            ErrorCode::LeaderElect => "During Leader Election",
            ErrorCode::WatcherCleared => "watcher is cleared due to etcd recovery",
            ErrorCode::EventIndexCleared => "The event in requested index is outdated and cleared",
        }
    }

    /// The HTTP status etcd answers the code with (400 unless listed).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::KeyNotFound => 404,
            ErrorCode::NotFile | ErrorCode::DirNotEmpty => 403,
            ErrorCode::Unauthorized => 401,
            ErrorCode::TestFailed | ErrorCode::NodeExist => 412,
            ErrorCode::RaftInternal | ErrorCode::LeaderElect => 500,
            _ => 400,
        }
    }
}

/// A v2 error as etcd answers it: `{"errorCode","message","cause","index"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{} ({}): {cause} [{index}]", .code.message(), .code.number())]
pub struct V2Error {
    pub code: ErrorCode,
    /// What the error is about (often a path); omitted when empty.
    pub cause: String,
    /// The store's index when the error happened (0 for malformed
    /// requests, which never reach the store).
    pub index: u64,
}

impl V2Error {
    pub fn new(code: ErrorCode, cause: impl Into<String>, index: u64) -> V2Error {
        V2Error {
            code,
            cause: cause.into(),
            index,
        }
    }

    /// An error about a malformed request (index 0).
    pub fn request(code: ErrorCode, cause: impl Into<String>) -> V2Error {
        V2Error::new(code, cause, 0)
    }

    /// An error about `path`. The root's path is left out, as etcd leaves
    /// out its namespace prefix.
    pub(crate) fn at_path(code: ErrorCode, path: &str, index: u64) -> V2Error {
        let cause = if path == "/" { "" } else { path };
        V2Error::new(code, cause, index)
    }
}

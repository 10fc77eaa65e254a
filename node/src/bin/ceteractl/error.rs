//! etcdctl's exit codes and error lines (`Error: <message>` on stderr).

use std::fmt;

/// Exit codes, as etcdctl numbers them (`etcdctl/ctlv3/command/error.go`).
pub(crate) const EXIT_ERROR: i32 = 1;
pub(crate) const EXIT_BAD_CONNECTION: i32 = 2;
pub(crate) const EXIT_INVALID_INPUT: i32 = 3;
pub(crate) const EXIT_BAD_FEATURE: i32 = 4;
pub(crate) const EXIT_INTERRUPTED: i32 = 5;
pub(crate) const EXIT_BAD_ARGS: i32 = 128;

/// A failure that ends the command: printed as `Error: <message>` (unless
/// `silent`) and turned into the exit code.
#[derive(Debug, Clone)]
pub(crate) struct CtlError {
    pub(crate) code: i32,
    pub(crate) message: String,
    /// Exit with `code` without printing anything (the command already
    /// reported the problem its own way).
    pub(crate) silent: bool,
}

/// The TLS flags could not be used (a file missing, not PEM, a certificate
/// without its key): a bad-arguments exit, with the shared module's text.
impl From<cetera::client_tls::ClientTlsError> for CtlError {
    fn from(e: cetera::client_tls::ClientTlsError) -> Self {
        CtlError::bad_args(e.to_string())
    }
}

impl CtlError {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        CtlError {
            code,
            message: message.into(),
            silent: false,
        }
    }

    /// Exit with `code`, printing nothing more.
    pub(crate) fn exit(code: i32) -> Self {
        CtlError {
            code,
            message: String::new(),
            silent: true,
        }
    }

    pub(crate) fn bad_args(message: impl Into<String>) -> Self {
        Self::new(EXIT_BAD_ARGS, message)
    }

    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self::new(EXIT_ERROR, message)
    }

    /// The same error with another exit code.
    pub(crate) fn with_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    /// The same error with its message wrapped, e.g. `failed to grant lease (%v)`.
    pub(crate) fn wrap(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CtlError {}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> Self {
        CtlError::error(e.to_string())
    }
}

pub(crate) type CtlResult<T> = Result<T, CtlError>;

/// The message of a client-side deadline, as Go's context package words it.
pub(crate) const DEADLINE_EXCEEDED: &str = "context deadline exceeded";

/// The message etcd's Go client shows for a gRPC status: etcd's own errors
/// (`etcdserver: ...`, the table in `rpctypes/error.go`) by their text,
/// anything else as grpc-go formats a status.
pub(crate) fn status_message(status: &tonic::Status) -> String {
    let message = status.message();
    if KNOWN_SERVER_ERRORS.contains(&message) {
        return message.to_string();
    }
    if status.code() == tonic::Code::DeadlineExceeded && message.is_empty() {
        return DEADLINE_EXCEEDED.to_string();
    }
    format!(
        "rpc error: code = {} desc = {}",
        code_name(status.code()),
        message
    )
}

/// grpc-go's names for status codes.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

impl From<tonic::Status> for CtlError {
    fn from(status: tonic::Status) -> Self {
        CtlError::error(status_message(&status))
    }
}

/// Every error text etcd's Go client recognises as a server error and
/// shows bare (etcd 3.4 `etcdserver/api/v3rpc/rpctypes/error.go`).
const KNOWN_SERVER_ERRORS: &[&str] = &[
    "etcdserver: key is not provided",
    "etcdserver: key not found",
    "etcdserver: value is provided",
    "etcdserver: lease is provided",
    "etcdserver: too many operations in txn request",
    "etcdserver: duplicate key given in txn request",
    "etcdserver: mvcc: required revision has been compacted",
    "etcdserver: mvcc: required revision is a future revision",
    "etcdserver: mvcc: database space exceeded",
    "etcdserver: requested lease not found",
    "etcdserver: lease already exists",
    "etcdserver: too large lease TTL",
    "etcdserver: member ID already exist",
    "etcdserver: Peer URLs already exists",
    "etcdserver: re-configuration failed due to not enough started members",
    "etcdserver: given member URLs are invalid",
    "etcdserver: member not found",
    "etcdserver: can only promote a learner member",
    "etcdserver: can only promote a learner member which is in sync with leader",
    "etcdserver: too many learner members in cluster",
    "etcdserver: request is too large",
    "etcdserver: too many requests",
    "etcdserver: root user does not exist",
    "etcdserver: root user does not have root role",
    "etcdserver: user name already exists",
    "etcdserver: user name is empty",
    "etcdserver: user name not found",
    "etcdserver: role name already exists",
    "etcdserver: role name not found",
    "etcdserver: role name is empty",
    "etcdserver: authentication failed, invalid user ID or password",
    "etcdserver: permission denied",
    "etcdserver: role is not granted to the user",
    "etcdserver: permission is not granted to the role",
    "etcdserver: authentication is not enabled",
    "etcdserver: invalid auth token",
    "etcdserver: invalid auth management",
    "etcdserver: revision of auth store is old",
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: not capable",
    "etcdserver: server stopped",
    "etcdserver: request timed out",
    "etcdserver: request timed out, possibly due to previous leader failure",
    "etcdserver: request timed out, possibly due to connection lost",
    "etcdserver: request timed out, waiting for the applied index took too long",
    "etcdserver: unhealthy cluster",
    "etcdserver: corrupt cluster",
    "etcdserver: rpc not supported for learner",
    "etcdserver: bad leader transferee",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_print_bare_and_others_like_grpc_go() {
        let known = tonic::Status::invalid_argument("etcdserver: key is not provided");
        assert_eq!(status_message(&known), "etcdserver: key is not provided");
        let other = tonic::Status::unimplemented("unknown service etcdserverpb.Lease");
        assert_eq!(
            status_message(&other),
            "rpc error: code = Unimplemented desc = unknown service etcdserverpb.Lease"
        );
    }
}

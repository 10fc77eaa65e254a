//! The one mapping from node errors to etcd's gRPC status codes and
//! messages (clients match on both).

use tonic::{Code, Status};

use crate::mvcc::MvccError;
use crate::server::{AuthError, LeadershipError, MembershipError, ServerError};

/// etcd's status for a failed request.
pub fn to_status(error: ServerError) -> Status {
    let code = match &error {
        ServerError::Mvcc(e) => match e {
            MvccError::Compacted | MvccError::FutureRevision => Code::OutOfRange,
            MvccError::LeaseNotFound => Code::NotFound,
            MvccError::LeaseExists => Code::FailedPrecondition,
            MvccError::LeaseTtlTooLarge => Code::OutOfRange,
            MvccError::NoSpace => Code::ResourceExhausted,
            MvccError::Corrupt => Code::DataLoss,
            MvccError::KeyNotProvided
            | MvccError::KeyNotFound
            | MvccError::ValueProvided
            | MvccError::LeaseProvided
            | MvccError::TooManyOps
            | MvccError::DuplicateKey => Code::InvalidArgument,
            MvccError::Backend(_) => Code::Unknown,
        },
        ServerError::RequestTooLarge => Code::InvalidArgument,
        ServerError::Membership(e) => match e {
            MembershipError::NotFound => Code::NotFound,
            MembershipError::BadUrls => Code::InvalidArgument,
            MembershipError::NotLeader => Code::Unavailable,
            MembershipError::Failed(_) => Code::Unknown,
            _ => Code::FailedPrecondition,
        },
        ServerError::Leadership(e) => match e {
            LeadershipError::NotLeader | LeadershipError::BadTransferee => Code::FailedPrecondition,
            LeadershipError::TransferTimeout => Code::Unavailable,
        },
        ServerError::Auth(e) => match e {
            AuthError::UserEmpty
            | AuthError::RoleEmpty
            | AuthError::AuthFailed
            | AuthError::InvalidAuthMgmt
            | AuthError::AuthOldRevision
            | AuthError::PermissionNotGiven => Code::InvalidArgument,
            AuthError::PermissionDenied => Code::PermissionDenied,
            AuthError::InvalidAuthToken => Code::Unauthenticated,
            _ => Code::FailedPrecondition,
        },
        // etcd hands these on untranslated: no `etcdserver: ` prefix.
        ServerError::AuthUnmapped(_) => return Status::new(Code::Unknown, error.to_string()),
        ServerError::NoLeader | ServerError::Timeout | ServerError::Stopped => Code::Unavailable,
        ServerError::Storage(_) | ServerError::Internal(_) => Code::Unknown,
        // Only the v2 keys API makes these, and it answers them itself.
        ServerError::V2(_) => Code::InvalidArgument,
    };
    if code == Code::Unknown {
        tracing::error!(%error, "request failed");
    }
    Status::new(code, format!("etcdserver: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes_are_etcds() {
        let s = to_status(MvccError::Compacted.into());
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = to_status(ServerError::RequestTooLarge);
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: request is too large")
        );
        let s = to_status(MvccError::LeaseNotFound.into());
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );
        let s = to_status(ServerError::NoLeader);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let s = to_status(AuthError::NotEnabled.into());
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::FailedPrecondition,
                "etcdserver: authentication is not enabled"
            )
        );
        let s = to_status(AuthError::UserEmpty.into());
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: user name is empty")
        );
        let s = to_status(AuthError::InvalidAuthToken.into());
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unauthenticated, "etcdserver: invalid auth token")
        );
        let s = to_status(AuthError::PermissionDenied.into());
        assert_eq!(
            (s.code(), s.message()),
            (Code::PermissionDenied, "etcdserver: permission denied")
        );
        let s = to_status(AuthError::AuthOldRevision.into());
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old"
            )
        );
        let s = to_status(AuthError::PermissionNotGiven.into());
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: permission not given")
        );
        let s = to_status(ServerError::AuthUnmapped(AuthError::PermissionDenied));
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unknown, "auth: permission denied")
        );
        let s = to_status(MvccError::DuplicateKey.into());
        assert_eq!(
            s.message(),
            "etcdserver: duplicate key given in txn request"
        );
    }
}

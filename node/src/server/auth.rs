//! etcd's `Auth` service, answered from the only state cetera's auth can be
//! in today: authentication disabled, no users, no roles.
//!
//! cetera has no auth store yet. Every call that etcd 3.4 answers from an
//! empty, disabled store without changing it gets etcd's answer: the lists
//! are empty, names are not found, `Authenticate` says authentication is
//! not enabled, `AuthEnable` that there is no root user, `AuthDisable` is a
//! no-op. The two calls that would create state (`UserAdd`, `RoleAdd`)
//! answer [`AuthError::NotSupported`], which is what keeps the store empty:
//! nothing here may ever pretend a user or role was created.
//!
//! Answers come after a linearizable barrier, as etcd serves auth calls
//! through Raft (so a member without a leader fails them alike).

use super::{Node, ServerError};
use crate::proto::etcdserverpb::{AuthDisableResponse, AuthRoleListResponse, AuthUserListResponse};

/// Why an auth call failed. `Display` is etcd's message without the
/// `etcdserver: ` prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication is not enabled")]
    NotEnabled,
    #[error("root user does not exist")]
    RootUserNotExist,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name not found")]
    RoleNotFound,
    #[error("user name is empty")]
    UserEmpty,
    #[error("role name is empty")]
    RoleEmpty,
    /// The call needs an auth store, which cetera does not have yet.
    #[error("Auth.{0} is not supported by this cetera version yet")]
    NotSupported(&'static str),
}

impl Node {
    /// `Auth.AuthEnable`: refused, since the root user cannot exist.
    pub async fn auth_enable<T>(&self) -> Result<T, ServerError> {
        self.linearizable_barrier().await?;
        Err(AuthError::RootUserNotExist.into())
    }

    /// `Auth.AuthDisable`: authentication is already disabled.
    pub async fn auth_disable(&self) -> Result<AuthDisableResponse, ServerError> {
        self.linearizable_barrier().await?;
        Ok(AuthDisableResponse {
            header: Some(self.header(self.hub.revision())),
        })
    }

    /// `Auth.Authenticate`: no token is handed out while auth is disabled.
    pub async fn authenticate<T>(&self) -> Result<T, ServerError> {
        self.linearizable_barrier().await?;
        Err(AuthError::NotEnabled.into())
    }

    /// `Auth.UserList`: no users.
    pub async fn auth_user_list(&self) -> Result<AuthUserListResponse, ServerError> {
        self.linearizable_barrier().await?;
        Ok(AuthUserListResponse {
            header: Some(self.header(self.hub.revision())),
            users: Vec::new(),
        })
    }

    /// `Auth.RoleList`: no roles.
    pub async fn auth_role_list(&self) -> Result<AuthRoleListResponse, ServerError> {
        self.linearizable_barrier().await?;
        Ok(AuthRoleListResponse {
            header: Some(self.header(self.hub.revision())),
            roles: Vec::new(),
        })
    }

    /// `UserGet`, `UserDelete`, `UserChangePassword`, `UserGrantRole` and
    /// `UserRevokeRole`: each names a user, and none exists.
    pub async fn auth_user_call<T>(&self) -> Result<T, ServerError> {
        self.linearizable_barrier().await?;
        Err(AuthError::UserNotFound.into())
    }

    /// `RoleGet`, `RoleDelete`, `RoleGrantPermission` and
    /// `RoleRevokePermission`: each names a role, and none exists.
    pub async fn auth_role_call<T>(&self) -> Result<T, ServerError> {
        self.linearizable_barrier().await?;
        Err(AuthError::RoleNotFound.into())
    }

    /// `Auth.UserAdd`: an empty name is refused as etcd refuses it; any
    /// other would need the auth store.
    pub async fn auth_user_add<T>(&self, name: &str) -> Result<T, ServerError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty.into());
        }
        Err(AuthError::NotSupported("UserAdd").into())
    }

    /// `Auth.RoleAdd`: as [`Node::auth_user_add`], for roles.
    pub async fn auth_role_add<T>(&self, name: &str) -> Result<T, ServerError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty.into());
        }
        Err(AuthError::NotSupported("RoleAdd").into())
    }
}

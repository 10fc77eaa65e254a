//! etcd's v3 authentication and authorization rules: users, roles, key
//! permissions, the enabled flag and the auth revision.
//!
//! [`AuthStore`] is the whole replicated auth state as a plain value.
//! [`AuthStore::apply`] is what every member runs for a committed auth
//! change ([`AuthOp`]): which checks, in which order, with which error,
//! exactly as etcd 3.4 orders them. The permission checks a request must
//! pass ([`AuthStore::check_key`], [`AuthStore::check_admin`]) and the
//! check at apply time ([`AuthStore::admit`]) live here too.
//!
//! This module never touches SQLite, the network, a clock or a random
//! generator: passwords arrive already hashed (the receiving member hashes
//! them before proposing, so applying is deterministic) and tokens arrive
//! with their random part chosen. Storage loads and saves an `AuthStore`
//! through `storage::SqliteAuth`; the server keeps the tokens.
//!
//! **Invariant:** every successful change bumps `revision` by one; a
//! request checked against an older revision than the one current when it
//! is applied fails with `revision of auth store is old`.

mod range;
mod requests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::proto::authpb::{Permission, permission};

pub use range::covers;

/// The user and role that are allowed everything while auth is enabled.
pub const ROOT: &str = "root";

/// Why an auth call or an authorization check failed. `Display` is etcd's
/// message without the `etcdserver: ` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AuthError {
    #[error("authentication is not enabled")]
    NotEnabled,
    #[error("root user does not exist")]
    RootUserNotExist,
    #[error("root user does not have root role")]
    RootRoleNotExist,
    #[error("user name already exists")]
    UserAlreadyExists,
    #[error("user name is empty")]
    UserEmpty,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name already exists")]
    RoleAlreadyExists,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role name is empty")]
    RoleEmpty,
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("permission denied")]
    PermissionDenied,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    #[error("invalid auth token")]
    InvalidAuthToken,
    #[error("invalid auth management")]
    InvalidAuthMgmt,
    #[error("revision of auth store is old")]
    AuthOldRevision,
    /// A RoleGrantPermission without its permission (etcd 3.5's answer;
    /// 3.4 dereferenced the missing field).
    #[error("permission not given")]
    PermissionNotGiven,
}

/// A stored user. `password_hash` is a bcrypt hash; `None` for a user
/// added with `no_password` (who can never authenticate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub password_hash: Option<String>,
    pub roles: BTreeSet<String>,
}

/// A stored role: its key permissions, sorted by key as etcd keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub perms: Vec<KeyPermission>,
}

/// What a role may do on `[key, range_end)` (`range_end` empty: the key
/// alone; `[0]`: every key from `key` on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPermission {
    pub access: Access,
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

/// etcd's `Permission.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    /// etcd's wire value; unknown values read as READ (Go's zero value).
    pub fn from_wire(value: i32) -> Access {
        match permission::Type::try_from(value) {
            Ok(permission::Type::Write) => Access::Write,
            Ok(permission::Type::Readwrite) => Access::ReadWrite,
            _ => Access::Read,
        }
    }

    pub fn to_wire(self) -> i32 {
        match self {
            Access::Read => permission::Type::Read as i32,
            Access::Write => permission::Type::Write as i32,
            Access::ReadWrite => permission::Type::Readwrite as i32,
        }
    }

    /// Whether a permission of this kind allows `wanted` (READ or WRITE).
    fn allows(self, wanted: Access) -> bool {
        self == Access::ReadWrite || self == wanted
    }
}

impl KeyPermission {
    pub fn from_wire(perm: &Permission) -> Self {
        KeyPermission {
            access: Access::from_wire(perm.perm_type),
            key: perm.key.clone(),
            range_end: perm.range_end.clone(),
        }
    }

    pub fn to_wire(&self) -> Permission {
        Permission {
            perm_type: self.access.to_wire(),
            key: self.key.clone(),
            range_end: self.range_end.clone(),
        }
    }
}

/// A replicated change to the auth store (or an authentication, which
/// changes no stored state but hands out a token on every member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthOp {
    Enable,
    Disable,
    /// The password is hashed before proposing; `None` for `no_password`.
    UserAdd {
        name: String,
        password_hash: Option<String>,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        password_hash: Option<String>,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        name: String,
        role: String,
    },
    RoleAdd {
        name: String,
    },
    RoleDelete {
        role: String,
    },
    RoleGrantPermission {
        name: String,
        perm: KeyPermission,
    },
    RoleRevokePermission {
        role: String,
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
    /// The password was checked by the member that received the request;
    /// the token's random part was chosen there too.
    Authenticate {
        name: String,
        token_prefix: String,
    },
}

impl AuthOp {
    /// Whether only a user with the root role may ask for it while auth is
    /// enabled (everything but authenticating).
    pub fn needs_admin(&self) -> bool {
        !matches!(self, AuthOp::Authenticate { .. })
    }
}

/// What applying an [`AuthOp`] did besides changing the store, for the
/// members' token stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenEffect {
    None,
    /// A token now names `user`.
    Assign {
        token: String,
        user: String,
    },
    /// Every token of `user` is void (deleted, or a new password).
    InvalidateUser(String),
    /// Every token is void (auth disabled).
    InvalidateAll,
}

/// Who a request comes from, as its token said when it was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// `None`: the request carried no token.
    pub user: Option<String>,
    /// The auth revision the request was checked against (0 without a
    /// token).
    pub revision: u64,
}

/// The whole replicated auth state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStore {
    pub enabled: bool,
    pub revision: u64,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

impl AuthStore {
    /// Applies a committed change. `index` is the log index of its entry
    /// (the numeric part of a simple token). A refused change leaves the
    /// store as it was.
    pub fn apply(&mut self, op: &AuthOp, index: u64) -> Result<TokenEffect, AuthError> {
        let mut effect = TokenEffect::None;
        let changed = match op {
            AuthOp::Enable => self.enable()?,
            AuthOp::Disable => {
                let was = std::mem::replace(&mut self.enabled, false);
                if was {
                    effect = TokenEffect::InvalidateAll;
                }
                was
            }
            AuthOp::UserAdd {
                name,
                password_hash,
            } => self.user_add(name, password_hash)?,
            AuthOp::UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
                effect = TokenEffect::InvalidateUser(name.clone());
                true
            }
            AuthOp::UserChangePassword {
                name,
                password_hash,
            } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                user.password_hash = password_hash.clone();
                effect = TokenEffect::InvalidateUser(name.clone());
                true
            }
            AuthOp::UserGrantRole { user, role } => self.grant_role(user, role)?,
            AuthOp::UserRevokeRole { name, role } => self.revoke_role(name, role)?,
            AuthOp::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExists);
                }
                let role = Role {
                    name: name.clone(),
                    perms: Vec::new(),
                };
                self.roles.insert(name.clone(), role);
                true
            }
            AuthOp::RoleDelete { role } => self.role_delete(role)?,
            AuthOp::RoleGrantPermission { name, perm } => self.grant_permission(name, perm)?,
            AuthOp::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                let stored = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let at = stored
                    .perms
                    .iter()
                    .position(|p| p.key == *key && p.range_end == *range_end)
                    .ok_or(AuthError::PermissionNotGranted)?;
                stored.perms.remove(at);
                true
            }
            AuthOp::Authenticate { name, token_prefix } => {
                self.authenticate(name)?;
                effect = TokenEffect::Assign {
                    token: format!("{token_prefix}.{index}"),
                    user: name.clone(),
                };
                false
            }
        };
        if changed {
            self.revision += 1;
        }
        Ok(effect)
    }

    /// Returns whether the flag changed (enabling twice is a no-op).
    fn enable(&mut self) -> Result<bool, AuthError> {
        if self.enabled {
            return Ok(false);
        }
        let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
        if !root.roles.contains(ROOT) {
            return Err(AuthError::RootRoleNotExist);
        }
        self.enabled = true;
        Ok(true)
    }

    fn user_add(&mut self, name: &str, password_hash: &Option<String>) -> Result<bool, AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(AuthError::UserAlreadyExists);
        }
        let user = User {
            name: name.to_string(),
            password_hash: password_hash.clone(),
            roles: BTreeSet::new(),
        };
        self.users.insert(name.to_string(), user);
        Ok(true)
    }

    /// Granting a role twice is ignored, as etcd ignores it. The root role
    /// need not exist as a role to be granted.
    fn grant_role(&mut self, user: &str, role: &str) -> Result<bool, AuthError> {
        if !self.users.contains_key(user) {
            return Err(AuthError::UserNotFound);
        }
        if role != ROOT && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let stored = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
        Ok(stored.roles.insert(role.to_string()))
    }

    fn revoke_role(&mut self, name: &str, role: &str) -> Result<bool, AuthError> {
        if self.enabled && name == ROOT && role == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        if !user.roles.remove(role) {
            return Err(AuthError::RoleNotGranted);
        }
        Ok(true)
    }

    /// Deleting a role also takes it away from every user holding it.
    fn role_delete(&mut self, role: &str) -> Result<bool, AuthError> {
        if self.enabled && role == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.roles.remove(role).ok_or(AuthError::RoleNotFound)?;
        for user in self.users.values_mut() {
            user.roles.remove(role);
        }
        Ok(true)
    }

    /// A permission for the same `[key, range_end)` replaces the old one's
    /// type; any other is inserted in key order.
    fn grant_permission(&mut self, name: &str, perm: &KeyPermission) -> Result<bool, AuthError> {
        let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
        let at = role.perms.partition_point(|p| p.key < perm.key);
        match role.perms.get_mut(at) {
            Some(existing) if existing.key == perm.key && existing.range_end == perm.range_end => {
                existing.access = perm.access;
            }
            _ => role.perms.insert(at, perm.clone()),
        }
        Ok(true)
    }

    /// What is checked again at apply (the password was checked before).
    fn authenticate(&self, name: &str) -> Result<(), AuthError> {
        if !self.enabled {
            return Err(AuthError::NotEnabled);
        }
        match self.users.get(name) {
            Some(user) if user.password_hash.is_some() => Ok(()),
            _ => Err(AuthError::AuthFailed),
        }
    }

    /// The stored hash `password` must match to authenticate as `name`:
    /// what the receiving member checks before proposing.
    pub fn password_hash_of(&self, name: &str) -> Result<&str, AuthError> {
        if !self.enabled {
            return Err(AuthError::NotEnabled);
        }
        self.users
            .get(name)
            .and_then(|user| user.password_hash.as_deref())
            .ok_or(AuthError::AuthFailed)
    }

    fn has_root_role(&self, name: &str) -> bool {
        self.users
            .get(name)
            .is_some_and(|user| user.roles.contains(ROOT))
    }

    /// Whether `caller` may make an auth management call (or another
    /// admin-only call such as a member change).
    pub fn check_admin(&self, caller: &Caller) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let name = caller.user.as_deref().ok_or(AuthError::UserEmpty)?;
        if !self.users.contains_key(name) {
            return Err(AuthError::UserNotFound);
        }
        if !self.has_root_role(name) {
            return Err(AuthError::PermissionDenied);
        }
        Ok(())
    }

    /// Whether `caller` may read (or write) every key of `[key, range_end)`.
    pub fn check_key(
        &self,
        caller: &Caller,
        key: &[u8],
        range_end: &[u8],
        wanted: Access,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let name = caller.user.as_deref().ok_or(AuthError::UserEmpty)?;
        if caller.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        let user = self.users.get(name).ok_or(AuthError::PermissionDenied)?;
        if user.roles.contains(ROOT) {
            return Ok(());
        }
        let granted = user
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .flat_map(|role| &role.perms)
            .filter(|perm| perm.access.allows(wanted))
            .map(|perm| (perm.key.as_slice(), perm.range_end.as_slice()));
        if covers(granted, key, range_end) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// The check at apply time for a request checked on its member as
    /// `caller` (`None`: a request proposed without any auth check, i.e.
    /// while auth was disabled there). Auth changes are checked for the
    /// root role again; other requests must have been checked against the
    /// current revision.
    pub fn admit(&self, caller: Option<&Caller>, admin_call: bool) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(caller) = caller else {
            return Err(AuthError::UserEmpty);
        };
        if admin_call {
            return self.check_admin(caller);
        }
        if caller.user.is_none() {
            return Err(AuthError::UserEmpty);
        }
        if caller.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

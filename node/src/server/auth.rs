//! etcd's `Auth` service and the auth gate every request passes.
//!
//! [`AuthGate`] holds this member's view of the replicated auth store
//! (replaced by the apply path after every auth change, so a request
//! answered after a change sees it) and the simple tokens handed out
//! (in memory only, as in etcd: every member learns a token by applying
//! the authentication that made it, and a restart forgets them all), or,
//! with `--auth-token jwt,...`, the keys that sign and verify JWT tokens
//! instead (`crate::jwt`: nothing to remember, nothing to replicate).
//!
//! The request side: a token becomes a [`Caller`]; the rules in
//! `crate::auth` decide what the caller may do; a write checked while auth
//! is enabled is proposed wrapped with its caller, so the state machine
//! refuses it if the auth store changed in between. Passwords are hashed
//! (and checked) here, on the member that received the request, never
//! while applying.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use std::time::Instant;

use super::{Node, ServerError};
use crate::auth::{AuthOp, AuthStore, Caller, KeyPermission, TokenEffect};
use crate::jwt::JwtTokens;
use crate::proto::etcdserverpb::*;
use crate::raft::{Command, CommandResult};

pub use crate::auth::AuthError;

/// Letters a simple token's random part is drawn from.
const TOKEN_LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const TOKEN_PREFIX_LEN: usize = 16;
/// How often an authentication is redone because the auth store changed
/// between the password check and the token's apply.
const AUTHENTICATE_ATTEMPTS: usize = 5;

/// This member's auth store and its tokens.
pub(crate) struct AuthGate {
    store: RwLock<Arc<AuthStore>>,
    tokens: Mutex<HashMap<String, Issued>>,
    ttl: Duration,
    /// Set with `--auth-token jwt,...`: tokens are JWTs, never simple.
    jwt: Option<JwtTokens>,
}

/// A token: whose it is, and when it lapses unless used again.
struct Issued {
    user: String,
    lapses: Instant,
}

impl AuthGate {
    pub(crate) fn new(store: AuthStore, ttl: Duration, jwt: Option<JwtTokens>) -> Self {
        AuthGate {
            store: RwLock::new(Arc::new(store)),
            tokens: Mutex::new(HashMap::new()),
            ttl,
            jwt,
        }
    }

    /// The auth store as of the last applied change.
    pub(crate) fn store(&self) -> Arc<AuthStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes in an applied auth change (from the apply path).
    pub(crate) fn applied(&self, store: Arc<AuthStore>, effect: TokenEffect) {
        self.applied_at(store, effect, Instant::now());
    }

    fn applied_at(&self, store: Arc<AuthStore>, effect: TokenEffect, now: Instant) {
        let enabled = store.enabled;
        *self.store.write().unwrap_or_else(|p| p.into_inner()) = store;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match effect {
            TokenEffect::Assign { token, user } if enabled => {
                tokens.retain(|_, issued| issued.lapses > now);
                let lapses = now + self.ttl;
                tokens.insert(token, Issued { user, lapses });
            }
            TokenEffect::InvalidateUser(user) => tokens.retain(|_, issued| issued.user != user),
            _ => {}
        }
        // No token stays valid while auth is disabled.
        if !enabled {
            tokens.clear();
        }
    }

    /// Who a request comes from. A token must be one this member handed
    /// out and not lapsed (using it extends it), whether or not auth is
    /// enabled, as etcd checks it.
    pub(crate) fn caller(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        self.caller_at(token, Instant::now())
    }

    fn caller_at(&self, token: Option<&str>, now: Instant) -> Result<Caller, AuthError> {
        let Some(token) = token else {
            return Ok(Caller::default());
        };
        if let Some(jwt) = &self.jwt {
            return jwt.verify(token);
        }
        let revision = self.store().revision;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match tokens.get_mut(token) {
            Some(issued) if issued.lapses > now => {
                issued.lapses = now + self.ttl;
                Ok(Caller {
                    user: Some(issued.user.clone()),
                    revision,
                })
            }
            _ => Err(AuthError::InvalidAuthToken),
        }
    }
}

/// What a request brings to say who sends it.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Its `token` (or `authorization`) metadata.
    pub token: Option<String>,
    /// Its client certificate's common name, under `--client-cert-auth`
    /// (gRPC only: the JSON gateway's requests never carry one).
    pub cert_name: Option<Arc<str>>,
}

/// A request that passed its auth check, as `Some(caller)` while auth is
/// enabled.
pub(crate) struct Checked(Option<Caller>);

impl Checked {
    /// The command to propose: wrapped with its caller while auth is
    /// enabled, so the apply refuses it if the auth store changed since.
    pub(crate) fn command(self, command: Command) -> Command {
        match self.0 {
            Some(caller) => Command::Authorized {
                caller,
                command: Box::new(command),
            },
            None => command,
        }
    }
}

/// The log index a simple token names (`<letters>.<index>`).
fn token_index(token: &str) -> Option<u64> {
    token.rsplit_once('.')?.1.parse().ok()
}

/// A new token's random part: 16 letters.
fn token_prefix() -> String {
    let mut rng = rand::rng();
    (0..TOKEN_PREFIX_LEN)
        .map(|_| TOKEN_LETTERS[rng.random_range(0..TOKEN_LETTERS.len())] as char)
        .collect()
}

impl Node {
    /// The caller behind a request's credentials: its token if it has one
    /// (see [`Node::caller_by_token`]), else, under `--client-cert-auth`,
    /// the user its certificate's common name names, at the current auth
    /// revision (etcd's rule); else nobody.
    pub async fn caller(&self, credentials: &Credentials) -> Result<Caller, ServerError> {
        match (&credentials.token, &credentials.cert_name) {
            (Some(token), _) => self.caller_by_token(Some(token)).await,
            (None, Some(name)) => Ok(Caller {
                user: Some(name.to_string()),
                revision: self.auth.store().revision,
            }),
            (None, None) => Ok(Caller::default()),
        }
    }

    /// The caller behind a request's token (`None`: no token). A token
    /// names the log index of the authentication that made it: a member
    /// that has not applied that far yet waits for it (as etcd does), so a
    /// token works on every member as soon as it is handed out.
    pub async fn caller_by_token(&self, token: Option<&str>) -> Result<Caller, ServerError> {
        match self.auth.caller(token) {
            Err(AuthError::InvalidAuthToken) if self.auth.jwt.is_none() => {
                let index = token
                    .and_then(token_index)
                    .ok_or(AuthError::InvalidAuthToken)?;
                let applied = self.metrics.borrow().last_applied.map_or(0, |l| l.index);
                if index <= applied || self.wait_applied(index).await.is_err() {
                    return Err(AuthError::InvalidAuthToken.into());
                }
                Ok(self.auth.caller(token)?)
            }
            other => Ok(other?),
        }
    }

    /// Runs `check` against the auth store; the answer says how to propose
    /// the checked request.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        check: impl FnOnce(&AuthStore) -> Result<(), AuthError>,
    ) -> Result<Checked, ServerError> {
        let store = self.auth.store();
        check(&store)?;
        Ok(Checked(store.enabled.then(|| caller.clone())))
    }

    /// Checks a read (which is not proposed) against the auth store.
    pub(crate) fn check_read(
        &self,
        check: impl FnOnce(&AuthStore) -> Result<(), AuthError>,
    ) -> Result<(), ServerError> {
        Ok(check(&self.auth.store())?)
    }

    /// Whether the client behind `token` may watch what `req` asks for
    /// (READ on its range). The refusal is etcd's: `invalid auth token`
    /// for a token this member does not know (clients renew it and watch
    /// again), `user name is empty` without one, `revision of auth store
    /// is old`, or `permission denied`.
    pub async fn check_watch(
        &self,
        credentials: &Credentials,
        req: &WatchCreateRequest,
    ) -> Result<(), ServerError> {
        let caller = self.caller(credentials).await?;
        let store = self.auth.store();
        Ok(store.check_key(&caller, &req.key, &req.range_end, crate::auth::Access::Read)?)
    }

    /// Whether auth is enabled (as of the last applied change).
    pub fn auth_enabled(&self) -> bool {
        self.auth.store().enabled
    }

    /// Admin-only calls outside the Auth service (member changes).
    pub fn check_admin(&self, caller: &Caller) -> Result<(), ServerError> {
        Ok(self.auth.store().check_admin(caller)?)
    }

    /// Admin-only maintenance calls (hash, defragment, snapshot), which
    /// etcd refuses with the auth package's bare error (code Unknown).
    pub fn check_maintenance_admin(&self, caller: &Caller) -> Result<(), ServerError> {
        self.auth
            .store()
            .check_admin(caller)
            .map_err(ServerError::AuthUnmapped)
    }

    /// Proposes an auth change as `caller`, after the same admin check
    /// the apply repeats; returns the token for an authentication.
    async fn propose_auth(
        &self,
        caller: &Caller,
        op: AuthOp,
    ) -> Result<Option<String>, ServerError> {
        let checked = self.authorize(caller, |store| {
            if op.needs_admin() {
                store.check_admin(caller)
            } else {
                Ok(())
            }
        })?;
        match self.propose(checked.command(Command::Auth(op))).await? {
            CommandResult::Auth(result) => Ok(result?),
            other => Err(super::unexpected(other)),
        }
    }

    fn auth_header(&self) -> Option<ResponseHeader> {
        Some(self.header(self.hub.revision()))
    }

    /// Hashes a password with bcrypt at `--bcrypt-cost`, off the runtime.
    async fn hash_password(&self, password: String) -> Result<String, ServerError> {
        let cost = self.config.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .map_err(|e| ServerError::Internal(format!("hashing a password: {e}")))
    }

    /// The stored hash for a new or changed password: `hashed_password`
    /// when the client sent one (etcd 3.5), else the password hashed here.
    async fn password_hash(
        &self,
        password: String,
        hashed_password: String,
    ) -> Result<String, ServerError> {
        if hashed_password.is_empty() {
            self.hash_password(password).await
        } else {
            Ok(hashed_password)
        }
    }

    /// `Auth.AuthEnable`.
    pub async fn auth_enable(&self, caller: &Caller) -> Result<AuthEnableResponse, ServerError> {
        self.propose_auth(caller, AuthOp::Enable).await?;
        Ok(AuthEnableResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.AuthDisable`.
    pub async fn auth_disable(&self, caller: &Caller) -> Result<AuthDisableResponse, ServerError> {
        self.propose_auth(caller, AuthOp::Disable).await?;
        Ok(AuthDisableResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.AuthStatus` (etcd 3.5's): the enabled flag and the revision.
    pub async fn auth_status(&self) -> Result<AuthStatusResponse, ServerError> {
        self.linearizable_barrier().await?;
        let store = self.auth.store();
        Ok(AuthStatusResponse {
            header: self.auth_header(),
            enabled: store.enabled,
            auth_revision: store.revision,
        })
    }

    /// `Auth.Authenticate`: the password is checked here, then the token is
    /// proposed so every member knows it. As in etcd, a check made against
    /// an auth store that changed before the token was applied is redone.
    pub async fn authenticate(
        &self,
        req: AuthenticateRequest,
    ) -> Result<AuthenticateResponse, ServerError> {
        self.linearizable_barrier().await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let store = self.auth.store();
            let hash = store.password_hash_of(&req.name)?.to_string();
            let password = req.password.clone();
            let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                .await
                .map_err(|e| ServerError::Internal(e.to_string()))?;
            if !matches.unwrap_or(false) {
                return Err(AuthError::AuthFailed.into());
            }
            if let Some(jwt) = &self.auth.jwt {
                // Checked against `store`, so issued at its revision.
                let token = jwt.sign(&req.name, store.revision).ok_or_else(|| {
                    ServerError::Internal(
                        "this member only verifies JWT tokens: give it --auth-token priv-key to issue them".into(),
                    )
                })?;
                return Ok(AuthenticateResponse {
                    header: self.auth_header(),
                    token,
                });
            }
            let op = AuthOp::Authenticate {
                name: req.name.clone(),
                token_prefix: token_prefix(),
            };
            let token = self.propose_auth(&Caller::default(), op).await?;
            if self.auth.store().revision != store.revision && attempts < AUTHENTICATE_ATTEMPTS {
                continue;
            }
            let token = token.ok_or_else(|| {
                ServerError::Internal("an authentication applied without a token".into())
            })?;
            return Ok(AuthenticateResponse {
                header: self.auth_header(),
                token,
            });
        }
    }

    /// `Auth.UserAdd`.
    pub async fn auth_user_add(
        &self,
        caller: &Caller,
        req: AuthUserAddRequest,
    ) -> Result<AuthUserAddResponse, ServerError> {
        self.auth.store().check_admin(caller)?;
        if req.name.is_empty() {
            return Err(AuthError::UserEmpty.into());
        }
        let no_password = req.options.as_ref().is_some_and(|o| o.no_password);
        let password_hash = if no_password {
            None
        } else {
            Some(
                self.password_hash(req.password, req.hashed_password)
                    .await?,
            )
        };
        let op = AuthOp::UserAdd {
            name: req.name,
            password_hash,
        };
        self.propose_auth(caller, op).await?;
        Ok(AuthUserAddResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.UserGet`: a user may read their own entry; others need root.
    pub async fn auth_user_get(
        &self,
        caller: &Caller,
        req: AuthUserGetRequest,
    ) -> Result<AuthUserGetResponse, ServerError> {
        self.linearizable_barrier().await?;
        let store = self.auth.store();
        // A request without a token asks as the user named "" (etcd's
        // empty user name), so it may "read itself" and find no user.
        if caller.user.as_deref().unwrap_or_default() != req.name {
            store.check_admin(caller)?;
        }
        let user = store.users.get(&req.name).ok_or(AuthError::UserNotFound)?;
        Ok(AuthUserGetResponse {
            header: self.auth_header(),
            roles: user.roles.iter().cloned().collect(),
        })
    }

    /// `Auth.UserList`: names in order.
    pub async fn auth_user_list(
        &self,
        caller: &Caller,
    ) -> Result<AuthUserListResponse, ServerError> {
        self.linearizable_barrier().await?;
        let store = self.auth.store();
        store.check_admin(caller)?;
        Ok(AuthUserListResponse {
            header: self.auth_header(),
            users: store.users.keys().cloned().collect(),
        })
    }

    /// `Auth.UserDelete`.
    pub async fn auth_user_delete(
        &self,
        caller: &Caller,
        req: AuthUserDeleteRequest,
    ) -> Result<AuthUserDeleteResponse, ServerError> {
        self.propose_auth(caller, AuthOp::UserDelete { name: req.name })
            .await?;
        Ok(AuthUserDeleteResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.UserChangePassword`.
    pub async fn auth_user_change_password(
        &self,
        caller: &Caller,
        req: AuthUserChangePasswordRequest,
    ) -> Result<AuthUserChangePasswordResponse, ServerError> {
        self.auth.store().check_admin(caller)?;
        let password_hash = Some(
            self.password_hash(req.password, req.hashed_password)
                .await?,
        );
        let op = AuthOp::UserChangePassword {
            name: req.name,
            password_hash,
        };
        self.propose_auth(caller, op).await?;
        Ok(AuthUserChangePasswordResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.UserGrantRole`.
    pub async fn auth_user_grant_role(
        &self,
        caller: &Caller,
        req: AuthUserGrantRoleRequest,
    ) -> Result<AuthUserGrantRoleResponse, ServerError> {
        let op = AuthOp::UserGrantRole {
            user: req.user,
            role: req.role,
        };
        self.propose_auth(caller, op).await?;
        Ok(AuthUserGrantRoleResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.UserRevokeRole`.
    pub async fn auth_user_revoke_role(
        &self,
        caller: &Caller,
        req: AuthUserRevokeRoleRequest,
    ) -> Result<AuthUserRevokeRoleResponse, ServerError> {
        let op = AuthOp::UserRevokeRole {
            name: req.name,
            role: req.role,
        };
        self.propose_auth(caller, op).await?;
        Ok(AuthUserRevokeRoleResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.RoleAdd`.
    pub async fn auth_role_add(
        &self,
        caller: &Caller,
        req: AuthRoleAddRequest,
    ) -> Result<AuthRoleAddResponse, ServerError> {
        self.propose_auth(caller, AuthOp::RoleAdd { name: req.name })
            .await?;
        Ok(AuthRoleAddResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.RoleGet`: a user may read the roles they hold; others need
    /// root.
    pub async fn auth_role_get(
        &self,
        caller: &Caller,
        req: AuthRoleGetRequest,
    ) -> Result<AuthRoleGetResponse, ServerError> {
        self.linearizable_barrier().await?;
        let store = self.auth.store();
        let holds_role = caller
            .user
            .as_ref()
            .and_then(|name| store.users.get(name))
            .is_some_and(|user| user.roles.contains(&req.role));
        if !holds_role {
            store.check_admin(caller)?;
        }
        let role = store.roles.get(&req.role).ok_or(AuthError::RoleNotFound)?;
        Ok(AuthRoleGetResponse {
            header: self.auth_header(),
            perm: role.perms.iter().map(KeyPermission::to_wire).collect(),
        })
    }

    /// `Auth.RoleList`: names in order.
    pub async fn auth_role_list(
        &self,
        caller: &Caller,
    ) -> Result<AuthRoleListResponse, ServerError> {
        self.linearizable_barrier().await?;
        let store = self.auth.store();
        store.check_admin(caller)?;
        Ok(AuthRoleListResponse {
            header: self.auth_header(),
            roles: store.roles.keys().cloned().collect(),
        })
    }

    /// `Auth.RoleDelete`.
    pub async fn auth_role_delete(
        &self,
        caller: &Caller,
        req: AuthRoleDeleteRequest,
    ) -> Result<AuthRoleDeleteResponse, ServerError> {
        self.propose_auth(caller, AuthOp::RoleDelete { role: req.role })
            .await?;
        Ok(AuthRoleDeleteResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.RoleGrantPermission`.
    pub async fn auth_role_grant_permission(
        &self,
        caller: &Caller,
        req: AuthRoleGrantPermissionRequest,
    ) -> Result<AuthRoleGrantPermissionResponse, ServerError> {
        let perm = req
            .perm
            .as_ref()
            .map(KeyPermission::from_wire)
            .ok_or(AuthError::PermissionNotGiven)?;
        let op = AuthOp::RoleGrantPermission {
            name: req.name,
            perm,
        };
        self.propose_auth(caller, op).await?;
        Ok(AuthRoleGrantPermissionResponse {
            header: self.auth_header(),
        })
    }

    /// `Auth.RoleRevokePermission`.
    pub async fn auth_role_revoke_permission(
        &self,
        caller: &Caller,
        req: AuthRoleRevokePermissionRequest,
    ) -> Result<AuthRoleRevokePermissionResponse, ServerError> {
        let op = AuthOp::RoleRevokePermission {
            role: req.role,
            key: req.key,
            range_end: req.range_end,
        };
        self.propose_auth(caller, op).await?;
        Ok(AuthRoleRevokePermissionResponse {
            header: self.auth_header(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;

    const TTL: Duration = Duration::from_secs(300);

    fn store(enabled: bool) -> Arc<AuthStore> {
        let mut store = AuthStore {
            enabled,
            revision: 4,
            ..AuthStore::default()
        };
        let bob = User {
            name: "bob".into(),
            password_hash: Some("h".into()),
            roles: Default::default(),
        };
        store.users.insert("bob".into(), bob);
        Arc::new(store)
    }

    fn assign(token: &str, user: &str) -> TokenEffect {
        TokenEffect::Assign {
            token: token.into(),
            user: user.into(),
        }
    }

    #[test]
    fn tokens_lapse_after_the_ttl_unless_used() {
        let gate = AuthGate::new(AuthStore::default(), TTL, None);
        let start = Instant::now();
        gate.applied_at(store(true), assign("t.1", "bob"), start);
        let bob = gate.caller_at(Some("t.1"), start + TTL / 2).unwrap();
        assert_eq!(bob.user.as_deref(), Some("bob"));
        assert_eq!(bob.revision, 4);
        // Used at half the TTL, so still valid past the first deadline.
        assert!(gate.caller_at(Some("t.1"), start + TTL + TTL / 4).is_ok());
        let idle_too_long = start + 3 * TTL;
        assert_eq!(
            gate.caller_at(Some("t.1"), idle_too_long),
            Err(AuthError::InvalidAuthToken)
        );
        assert_eq!(
            gate.caller_at(Some("other.1"), start),
            Err(AuthError::InvalidAuthToken)
        );
        assert_eq!(gate.caller_at(None, start), Ok(Caller::default()));
    }

    #[test]
    fn tokens_are_dropped_with_their_user_or_when_auth_is_disabled() {
        let gate = AuthGate::new(AuthStore::default(), TTL, None);
        let now = Instant::now();
        gate.applied_at(store(true), assign("b.1", "bob"), now);
        gate.applied_at(store(true), assign("r.2", "root"), now);
        gate.applied_at(store(true), TokenEffect::InvalidateUser("bob".into()), now);
        assert!(gate.caller_at(Some("b.1"), now).is_err());
        assert!(gate.caller_at(Some("r.2"), now).is_ok());
        gate.applied_at(store(false), TokenEffect::InvalidateAll, now);
        assert!(gate.caller_at(Some("r.2"), now).is_err());
        // No token is handed out while auth is disabled.
        gate.applied_at(store(false), assign("n.3", "bob"), now);
        assert!(gate.caller_at(Some("n.3"), now).is_err());
    }

    #[test]
    fn token_prefixes_are_sixteen_letters_and_indexes_parse() {
        let prefix = token_prefix();
        assert_eq!(prefix.len(), 16);
        assert!(prefix.chars().all(|c| c.is_ascii_alphabetic()));
        assert_eq!(token_index("abc.42"), Some(42));
        assert_eq!(token_index("abc"), None);
        assert_eq!(token_index("abc.x"), None);
    }
}

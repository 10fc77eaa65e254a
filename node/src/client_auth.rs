//! The client side of etcd's authentication, shared by `ceteractl` and
//! `cetera-console`: etcdctl's `--user`/`--password` rules, the terminal
//! prompt for a missing password, and the token every call carries.
//!
//! As etcd's Go client does, a client with credentials calls `Authenticate`
//! once (on the first endpoint that answers), then sends the token as the
//! gRPC metadata `token` on every request ([`AuthSession::interceptor`] or
//! [`AuthSession::attach`]). When the server answers `invalid auth token`
//! (the token expired or the member restarted) or `revision of auth store
//! is old` (users or roles changed since the token was issued), the caller
//! authenticates again, once, and retries ([`must_reauthenticate`],
//! [`AuthSession::reauthenticate`]).
//!
//! A watch whose creation is refused for the same reasons comes back
//! created and canceled, with the refusal worded as Go prints a gRPC error
//! in `cancel_reason` ([`watch_refused_token`]); clients renew the token and
//! open the watch again, as etcd's Go client does.
//!
//! The token costs no lock on the hot path: a [`TokenCache`] (one per
//! client task, or inside a [`TokenInterceptor`]) keeps its own copy of the
//! token and looks at the shared one only when its generation moved, i.e.
//! after a renewal.
//!
//! This module owns the credentials' rules, the password prompt, the token
//! and the Authenticate call. It never parses a command line, prints an
//! error or decides exit codes: callers word [`tonic::Status`] errors
//! their own way.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::proto::etcdserverpb::AuthenticateRequest;
use crate::proto::etcdserverpb::auth_client::AuthClient;

/// The gRPC metadata key etcd reads the token from.
pub const TOKEN_METADATA: &str = "token";

/// The server's answer to a token that no longer authenticates anyone.
pub const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
/// The server's answer to a token older than the last user or role change.
pub const OLD_REVISION: &str = "etcdserver: revision of auth store is old";
/// The server's answer to Authenticate while its auth is disabled.
pub const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";

/// A user name and password to authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What `--user` and `--password` (or `ETCDCTL_USER`/`ETCDCTL_PASSWORD`)
/// ask for, before any prompting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserFlags {
    /// No `--user`: the client does not authenticate.
    Anonymous,
    /// A user and its password.
    Complete(Credentials),
    /// `--user name` without a password anywhere: ask on the terminal.
    PasswordMissing { name: String },
}

impl UserFlags {
    /// etcdctl 3.4's rules: no (or an empty) `--user` means no
    /// authentication; with `--password` the whole `--user` value is the
    /// name; otherwise `name:password` splits at the first colon, and a
    /// name alone leaves the password to be asked for.
    pub fn from_flags(user: Option<&str>, password: Option<&str>) -> UserFlags {
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return UserFlags::Anonymous;
        };
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            return UserFlags::Complete(Credentials {
                name: user.to_string(),
                password: password.to_string(),
            });
        }
        match user.split_once(':') {
            Some((name, password)) => UserFlags::Complete(Credentials {
                name: name.to_string(),
                password: password.to_string(),
            }),
            None => UserFlags::PasswordMissing {
                name: user.to_string(),
            },
        }
    }

    /// The credentials, asking `ask` for a missing password.
    pub fn resolve(
        self,
        ask: impl FnOnce(&str) -> std::io::Result<String>,
    ) -> std::io::Result<Option<Credentials>> {
        Ok(match self {
            UserFlags::Anonymous => None,
            UserFlags::Complete(c) => Some(c),
            UserFlags::PasswordMissing { name } => {
                let password = ask(&name)?;
                Some(Credentials { name, password })
            }
        })
    }
}

/// Asks for a password as etcdctl does: the prompt on stdout, the answer
/// read from stdin without echo when stdin is a terminal (one line as
/// typed otherwise, so scripts can pipe it), then a newline on stdout.
pub fn ask_password(prompt: &str) -> std::io::Result<String> {
    let mut stdout = std::io::stdout();
    stdout.write_all(prompt.as_bytes())?;
    stdout.flush()?;
    let password = if std::io::stdin().is_terminal() {
        rpassword::read_password()?
    } else {
        read_line(&mut std::io::stdin().lock())?
    };
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(password)
}

/// One line without its line ending (empty at the end of the input).
pub fn read_line(input: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let trimmed = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(trimmed);
    Ok(line)
}

/// Whether a failed call should be retried after authenticating again.
pub fn must_reauthenticate(status: &tonic::Status) -> bool {
    matches!(status.message(), INVALID_TOKEN | OLD_REVISION)
}

/// Whether a watch was refused (created and canceled with this reason)
/// because of its token: etcd words the reason as Go prints a gRPC error
/// (`rpc error: code = Unauthenticated desc = etcdserver: invalid auth
/// token`), and etcd's Go client renews the token and retries on exactly
/// these two.
pub fn watch_refused_token(cancel_reason: &str) -> bool {
    cancel_reason
        .rsplit_once(" desc = ")
        .is_some_and(|(code, message)| {
            code.starts_with("rpc error: code = ")
                && matches!(message, INVALID_TOKEN | OLD_REVISION)
        })
}

/// The credentials and the current token of one client, cheap to clone
/// (clones share the token).
#[derive(Clone, Default)]
pub struct AuthSession {
    credentials: Option<Arc<Credentials>>,
    token: Arc<RwLock<Token>>,
    /// Moves each time the token changes, so a [`TokenCache`] knows when
    /// its copy is stale without taking the lock.
    generation: Arc<AtomicU64>,
    /// Held while authenticating, so that concurrent calls needing a token
    /// make one Authenticate call, not one each.
    authenticating: Arc<tokio::sync::Mutex<()>>,
}

/// Where the session stands with the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Token {
    /// Not authenticated yet (or the last token was refused).
    #[default]
    Missing,
    /// The token to send.
    Held(MetadataValue<Ascii>),
    /// The server's auth is disabled: requests go without a token, as
    /// etcd's Go client sends them after `authentication is not enabled`.
    NotNeeded,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("credentials", &self.credentials)
            .field("token", &!matches!(self.token(), Token::Missing))
            .finish()
    }
}

impl AuthSession {
    /// A session for these credentials. As etcd's Go client, it only
    /// authenticates when both the name and the password are non-empty;
    /// otherwise requests go without a token.
    pub fn new(credentials: Option<Credentials>) -> AuthSession {
        let credentials = credentials
            .filter(|c| !c.name.is_empty() && !c.password.is_empty())
            .map(Arc::new);
        AuthSession {
            credentials,
            ..AuthSession::default()
        }
    }

    /// Whether requests need a token.
    pub fn enabled(&self) -> bool {
        self.credentials.is_some()
    }

    /// The user name, when authenticating.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_deref().map(|c| c.name.as_str())
    }

    fn token(&self) -> Token {
        self.token.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_token(&self, token: Token) {
        let mut held = self.token.write().unwrap_or_else(|e| e.into_inner());
        *held = token;
        // Under the lock, so a reader sees a token and its generation
        // together.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The token and its generation, read together.
    fn token_and_generation(&self) -> (Token, u64) {
        let held = self.token.read().unwrap_or_else(|e| e.into_inner());
        (held.clone(), self.generation.load(Ordering::Acquire))
    }

    /// Whether a call made now would need an Authenticate first.
    pub fn needs_token(&self) -> bool {
        self.enabled() && self.token() == Token::Missing
    }

    /// Authenticates on `channel` unless a token is already held.
    pub async fn ensure_token(&self, channel: Channel) -> Result<(), tonic::Status> {
        if !self.needs_token() {
            return Ok(());
        }
        let _guard = self.authenticating.lock().await;
        if !self.needs_token() {
            return Ok(());
        }
        self.authenticate(channel).await
    }

    /// Replaces a token the server refused ([`must_reauthenticate`]) with a
    /// new one, unless a concurrent call already did.
    pub async fn reauthenticate(&self, channel: Channel) -> Result<(), tonic::Status> {
        let refused = self.generation.load(Ordering::Acquire);
        self.renew(channel, refused).await
    }

    /// Replaces the token of generation `refused` with a new one, unless it
    /// was already replaced (by a concurrent call, or by a renewal that
    /// failed: then this one authenticates).
    async fn renew(&self, channel: Channel, refused: u64) -> Result<(), tonic::Status> {
        let _guard = self.authenticating.lock().await;
        let (token, generation) = self.token_and_generation();
        if generation != refused && token != Token::Missing {
            return Ok(());
        }
        self.set_token(Token::Missing);
        self.authenticate(channel).await
    }

    async fn authenticate(&self, channel: Channel) -> Result<(), tonic::Status> {
        let Some(credentials) = self.credentials.as_deref() else {
            return Ok(());
        };
        let answer = AuthClient::new(channel)
            .authenticate(AuthenticateRequest {
                name: credentials.name.clone(),
                password: credentials.password.clone(),
            })
            .await;
        let response = match answer {
            Ok(response) => response.into_inner(),
            Err(status) if status.message() == AUTH_NOT_ENABLED => {
                self.set_token(Token::NotNeeded);
                return Ok(());
            }
            Err(status) => return Err(status),
        };
        let token = MetadataValue::try_from(response.token.as_str()).map_err(|_| {
            tonic::Status::internal("the server issued a token that is not valid metadata")
        })?;
        self.set_token(Token::Held(token));
        Ok(())
    }

    /// Adds the current token, if any, to a request.
    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        if let Token::Held(token) = self.token() {
            request.metadata_mut().insert(TOKEN_METADATA, token);
        }
    }

    /// An interceptor adding the current token to every request of a
    /// channel (`InterceptedService::new(channel, session.interceptor())`).
    pub fn interceptor(&self) -> TokenInterceptor {
        TokenInterceptor {
            cache: self.cache(),
        }
    }

    /// A copy of the token for one task that sends many requests.
    pub fn cache(&self) -> TokenCache {
        TokenCache {
            session: self.clone(),
            generation: None,
            token: None,
        }
    }
}

/// One task's copy of its session's token: attaching it to a request
/// costs an atomic load and a reference count, no lock and no allocation,
/// until the session's token changes.
#[derive(Clone, Debug)]
pub struct TokenCache {
    session: AuthSession,
    /// The session's generation `token` was copied at (`None`: never).
    generation: Option<u64>,
    token: Option<MetadataValue<Ascii>>,
}

impl TokenCache {
    /// Adds the session's current token, if any, to a request.
    pub fn attach<T>(&mut self, request: &mut tonic::Request<T>) {
        let current = self.session.generation.load(Ordering::Acquire);
        if self.generation != Some(current) {
            self.refresh();
        }
        if let Some(token) = &self.token {
            request.metadata_mut().insert(TOKEN_METADATA, token.clone());
        }
    }

    fn refresh(&mut self) {
        let (token, generation) = self.session.token_and_generation();
        // A copy of our own, so the clone per request touches a reference
        // count no other task shares.
        self.token = match token {
            Token::Held(token) => MetadataValue::try_from(token.as_bytes()).ok(),
            Token::Missing | Token::NotNeeded => None,
        };
        self.generation = Some(generation);
    }

    /// The session this cache copies from.
    pub fn session(&self) -> &AuthSession {
        &self.session
    }

    /// Replaces the token the server refused (the one this cache last
    /// attached) with a new one, unless that was already done elsewhere.
    pub async fn reauthenticate(&mut self, channel: Channel) -> Result<(), tonic::Status> {
        let refused = self
            .generation
            .unwrap_or_else(|| self.session.generation.load(Ordering::Acquire));
        self.session.renew(channel, refused).await
    }
}

/// Adds the session's current token to each request it sees.
#[derive(Clone, Debug)]
pub struct TokenInterceptor {
    cache: TokenCache,
}

impl Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        self.cache.attach(&mut request);
        Ok(request)
    }
}

/// A channel whose requests carry the session's token.
pub type AuthChannel = tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>;

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(name: &str, password: &str) -> UserFlags {
        UserFlags::Complete(Credentials {
            name: name.into(),
            password: password.into(),
        })
    }

    #[test]
    fn user_flags_follow_etcdctl() {
        assert_eq!(
            UserFlags::from_flags(None, Some("pw")),
            UserFlags::Anonymous
        );
        assert_eq!(UserFlags::from_flags(Some(""), None), UserFlags::Anonymous);
        assert_eq!(
            UserFlags::from_flags(Some("root:pw"), None),
            creds("root", "pw")
        );
        assert_eq!(
            UserFlags::from_flags(Some("root:pw:x"), None),
            creds("root", "pw:x"),
            "split at the first colon"
        );
        assert_eq!(
            UserFlags::from_flags(Some("root:pw"), Some("other")),
            creds("root:pw", "other"),
            "with --password the whole --user is the name"
        );
        assert_eq!(
            UserFlags::from_flags(Some("root"), Some("")),
            UserFlags::PasswordMissing {
                name: "root".into()
            }
        );
    }

    #[test]
    fn a_missing_password_is_asked_for() {
        let flags = UserFlags::from_flags(Some("root"), None);
        let resolved = flags.resolve(|name| Ok(format!("{name}-pw"))).unwrap();
        assert_eq!(
            resolved,
            Some(Credentials {
                name: "root".into(),
                password: "root-pw".into()
            })
        );
        let none = UserFlags::Anonymous
            .resolve(|_| panic!("nothing to ask"))
            .unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn empty_names_or_passwords_do_not_authenticate() {
        let session = |name: &str, password: &str| {
            AuthSession::new(Some(Credentials {
                name: name.into(),
                password: password.into(),
            }))
        };
        assert!(session("root", "pw").enabled());
        assert!(!session("", "pw").enabled());
        assert!(!session("root", "").enabled());
        assert!(!AuthSession::new(None).needs_token());
    }

    #[test]
    fn lines_lose_their_endings() {
        let mut input = std::io::Cursor::new("secret\r\nnext\n");
        assert_eq!(read_line(&mut input).unwrap(), "secret");
        assert_eq!(read_line(&mut input).unwrap(), "next");
        assert_eq!(read_line(&mut input).unwrap(), "");
    }

    #[test]
    fn refused_tokens_are_recognised() {
        assert!(must_reauthenticate(&tonic::Status::unauthenticated(
            INVALID_TOKEN
        )));
        assert!(must_reauthenticate(&tonic::Status::failed_precondition(
            OLD_REVISION
        )));
        assert!(!must_reauthenticate(&tonic::Status::permission_denied(
            "etcdserver: permission denied"
        )));
    }

    #[test]
    fn the_token_travels_as_metadata() {
        let session = AuthSession::new(None);
        session.set_token(Token::Held(MetadataValue::from_static("abc.1")));
        let mut request = tonic::Request::new(());
        session.attach(&mut request);
        assert_eq!(
            request.metadata().get(TOKEN_METADATA).unwrap(),
            &MetadataValue::from_static("abc.1")
        );
        let mut interceptor = session.interceptor();
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get(TOKEN_METADATA).is_some());
    }

    #[test]
    fn a_cache_follows_renewals_and_forgets_refused_tokens() {
        let session = AuthSession::new(None);
        let mut cache = session.cache();
        let sent = |cache: &mut TokenCache| {
            let mut request = tonic::Request::new(());
            cache.attach(&mut request);
            request.metadata().get(TOKEN_METADATA).cloned()
        };
        assert_eq!(sent(&mut cache), None);
        session.set_token(Token::Held(MetadataValue::from_static("first.1")));
        assert_eq!(
            sent(&mut cache),
            Some(MetadataValue::from_static("first.1"))
        );
        session.set_token(Token::Held(MetadataValue::from_static("second.2")));
        assert_eq!(
            sent(&mut cache),
            Some(MetadataValue::from_static("second.2"))
        );
        session.set_token(Token::Missing);
        assert_eq!(sent(&mut cache), None);
        session.set_token(Token::NotNeeded);
        assert_eq!(sent(&mut cache), None);
    }

    #[test]
    fn watches_refused_for_their_token_are_recognised() {
        // etcd 3.4's cancel reasons, as captured from a real server.
        assert!(watch_refused_token(
            "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
        ));
        assert!(watch_refused_token(
            "rpc error: code = InvalidArgument desc = etcdserver: revision of auth store is old"
        ));
        assert!(!watch_refused_token(
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        ));
        assert!(!watch_refused_token(
            "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
        ));
        assert!(!watch_refused_token(INVALID_TOKEN));
        assert!(!watch_refused_token(""));
    }
}

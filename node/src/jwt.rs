//! etcd's JWT auth tokens (`--auth-token jwt,pub-key=…,priv-key=…,
//! sign-method=…,ttl=…`): signed and self-contained, so any member holding
//! the key verifies a token another member issued without having seen it
//! issued, and a restart forgets nothing.
//!
//! This module owns the options' meaning, the keys, and signing and
//! verifying the claims etcd puts in its tokens (`username`, `revision`,
//! `exp`). It never decides what a caller may do: a verified token becomes
//! a [`Caller`] whose revision is the auth revision the token was issued
//! at, and the auth rules refuse it with `revision of auth store is old`
//! once the auth store has moved on, as etcd does.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, Caller};

/// etcd's default lifetime of a JWT token.
const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The options after `jwt,` in `--auth-token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOptions {
    pub sign_method: Algorithm,
    pub pub_key: Option<PathBuf>,
    pub priv_key: Option<PathBuf>,
    pub ttl: Duration,
}

/// Why `--auth-token jwt,...` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error(
        "--auth-token jwt: unknown option {0:?} (expected pub-key, priv-key, sign-method or ttl)"
    )]
    UnknownOption(String),
    #[error("--auth-token jwt: sign-method is required")]
    NoSignMethod,
    #[error(
        "--auth-token jwt: unsupported sign-method {0:?} (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA)"
    )]
    BadSignMethod(String),
    #[error("--auth-token jwt: invalid ttl {0:?}")]
    BadTtl(String),
    #[error("--auth-token jwt: sign-method {0:?} needs {1}")]
    MissingKey(&'static str, &'static str),
    #[error("--auth-token jwt: cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--auth-token jwt: {path} is not a {method} key: {source}")]
    BadKey {
        path: PathBuf,
        method: &'static str,
        source: jsonwebtoken::errors::Error,
    },
}

impl JwtOptions {
    /// Parses what follows `jwt,` (comma-separated `name=value` pairs).
    pub fn parse(options: &str) -> Result<Self, JwtError> {
        let mut sign_method = None;
        let mut pub_key = None;
        let mut priv_key = None;
        let mut ttl = DEFAULT_TTL;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            match name {
                "sign-method" => sign_method = Some(algorithm(value)?),
                "pub-key" => pub_key = Some(PathBuf::from(value)),
                "priv-key" => priv_key = Some(PathBuf::from(value)),
                "ttl" => {
                    ttl = humantime::parse_duration(value)
                        .ok()
                        .filter(|ttl| !ttl.is_zero())
                        .ok_or_else(|| JwtError::BadTtl(value.to_string()))?
                }
                _ => return Err(JwtError::UnknownOption(option.to_string())),
            }
        }
        let sign_method = sign_method.ok_or(JwtError::NoSignMethod)?;
        let needed = if is_hmac(sign_method) {
            priv_key.is_none().then_some("priv-key (the HMAC secret)")
        } else {
            pub_key.is_none().then_some("pub-key")
        };
        if let Some(key) = needed {
            return Err(JwtError::MissingKey(name_of(sign_method), key));
        }
        Ok(JwtOptions {
            sign_method,
            pub_key,
            priv_key,
            ttl,
        })
    }
}

const METHODS: [(&str, Algorithm); 12] = [
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

fn algorithm(name: &str) -> Result<Algorithm, JwtError> {
    METHODS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .ok_or_else(|| JwtError::BadSignMethod(name.to_string()))
}

fn name_of(method: Algorithm) -> &'static str {
    METHODS
        .iter()
        .find(|(_, a)| *a == method)
        .map_or("?", |(n, _)| n)
}

fn is_hmac(method: Algorithm) -> bool {
    matches!(KeyFamily::of(method), KeyFamily::Hmac)
}

/// The kind of key a sign method takes, and how its file is read.
#[derive(Debug, Clone, Copy)]
enum KeyFamily {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl KeyFamily {
    fn of(method: Algorithm) -> Self {
        match method {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
            Algorithm::ES256 | Algorithm::ES384 => KeyFamily::Ec,
            Algorithm::EdDSA => KeyFamily::Ed,
            _ => KeyFamily::Rsa,
        }
    }

    /// The signing key in `file` (PEM, or the raw HMAC secret).
    fn signing(self, file: &[u8]) -> jsonwebtoken::errors::Result<EncodingKey> {
        match self {
            KeyFamily::Hmac => Ok(EncodingKey::from_secret(file)),
            KeyFamily::Rsa => EncodingKey::from_rsa_pem(file),
            KeyFamily::Ec => EncodingKey::from_ec_pem(file),
            KeyFamily::Ed => EncodingKey::from_ed_pem(file),
        }
    }

    /// The verifying key in `file` (PEM, or the raw HMAC secret).
    fn verifying(self, file: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
        match self {
            KeyFamily::Hmac => Ok(DecodingKey::from_secret(file)),
            KeyFamily::Rsa => DecodingKey::from_rsa_pem(file),
            KeyFamily::Ec => DecodingKey::from_ec_pem(file),
            KeyFamily::Ed => DecodingKey::from_ed_pem(file),
        }
    }
}

/// What a token says, with etcd's claim names.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// The loaded keys: what signs (absent on a verify-only member, which has
/// no private key) and what verifies.
pub struct JwtTokens {
    method: Algorithm,
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

impl JwtTokens {
    /// Reads and parses the key files.
    pub fn load(options: &JwtOptions) -> Result<Self, JwtError> {
        let method = options.sign_method;
        let family = KeyFamily::of(method);
        let bad_key = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JwtError::BadKey {
                path,
                method: name_of(method),
                source,
            }
        };
        let signing = match options.priv_key.as_deref() {
            None => None,
            Some(path) => Some(family.signing(&read(path)?).map_err(bad_key(path))?),
        };
        // HMAC verifies with the secret it signs with.
        let (verify_with, flag) = match family {
            KeyFamily::Hmac => (options.priv_key.as_deref(), "priv-key"),
            _ => (options.pub_key.as_deref(), "pub-key"),
        };
        let path = verify_with.ok_or(JwtError::MissingKey(name_of(method), flag))?;
        let verifying = family.verifying(&read(path)?).map_err(bad_key(path))?;
        Ok(JwtTokens {
            method,
            signing,
            verifying,
            ttl: options.ttl,
        })
    }

    /// A token for `user`, issued at auth revision `revision`; `None` on a
    /// member that only verifies.
    pub fn sign(&self, user: &str, revision: u64) -> Option<String> {
        let key = self.signing.as_ref()?;
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp: (unix_now() + self.ttl).as_secs(),
        };
        // Signing with a key that loaded cannot fail but for a bug in the
        // key's encoding; such a member issues no token rather than panic.
        jsonwebtoken::encode(&Header::new(self.method), &claims, key).ok()
    }

    /// The caller a token names, if its signature holds and it has not
    /// expired.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let mut validation = Validation::new(self.method);
        // etcd checks `exp` to the second, with no grace.
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.verifying, &validation)
            .map_err(|_| AuthError::InvalidAuthToken)?;
        Ok(Caller {
            user: Some(data.claims.username),
            revision: data.claims.revision,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, JwtError> {
    std::fs::read(path).map_err(|source| JwtError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn tokens(options: &str) -> JwtTokens {
        JwtTokens::load(&JwtOptions::parse(options).unwrap()).unwrap()
    }

    #[test]
    fn options_parse_as_etcd_writes_them() {
        let options =
            JwtOptions::parse("pub-key=a.pub,priv-key=a.key,sign-method=RS256,ttl=10m").unwrap();
        assert_eq!(options.sign_method, Algorithm::RS256);
        assert_eq!(options.pub_key.as_deref(), Some(Path::new("a.pub")));
        assert_eq!(options.priv_key.as_deref(), Some(Path::new("a.key")));
        assert_eq!(options.ttl, Duration::from_secs(600));
        let hmac = JwtOptions::parse("sign-method=HS256,priv-key=secret").unwrap();
        assert_eq!(hmac.ttl, DEFAULT_TTL);

        let error = |text| JwtOptions::parse(text).unwrap_err().to_string();
        assert!(error("pub-key=a.pub").contains("sign-method is required"));
        assert!(error("sign-method=RS256").contains("needs pub-key"));
        assert!(error("sign-method=HS256").contains("needs priv-key"));
        assert!(error("sign-method=XX1,pub-key=a").contains("unsupported sign-method \"XX1\""));
        assert!(error("sign-method=HS256,priv-key=s,ttl=soon").contains("invalid ttl"));
        assert!(error("sign-method=HS256,priv-key=s,colour=red").contains("unknown option"));
    }

    #[test]
    fn a_token_verifies_on_another_member_with_the_public_key_only() {
        let (public, private) = (fixture("jwt-rsa.pub"), fixture("jwt-rsa.key"));
        let issuer = tokens(&format!(
            "sign-method=RS256,pub-key={public},priv-key={private}"
        ));
        let verifier = tokens(&format!("sign-method=RS256,pub-key={public}"));
        let token = issuer.sign("alice", 7).unwrap();
        assert_eq!(
            verifier.verify(&token),
            Ok(Caller {
                user: Some("alice".into()),
                revision: 7
            })
        );
        assert_eq!(verifier.sign("alice", 7), None, "no private key, no token");

        let mut forged = token.clone();
        forged.insert(forged.rfind('.').unwrap() + 1, 'x');
        assert_eq!(verifier.verify(&forged), Err(AuthError::InvalidAuthToken));
        assert_eq!(
            verifier.verify("abcdefghijklmnop.12"),
            Err(AuthError::InvalidAuthToken),
            "a simple token is no JWT"
        );
    }

    #[test]
    fn ec_and_hmac_keys_sign_and_verify() {
        let es = tokens(&format!(
            "sign-method=ES256,pub-key={},priv-key={}",
            fixture("jwt-ec.pub"),
            fixture("jwt-ec.key")
        ));
        let token = es.sign("bob", 3).unwrap();
        assert_eq!(es.verify(&token).unwrap().user.as_deref(), Some("bob"));

        let hs = tokens(&format!(
            "sign-method=HS256,priv-key={}",
            fixture("jwt-rsa.key")
        ));
        let token = hs.sign("carol", 1).unwrap();
        assert_eq!(hs.verify(&token).unwrap().revision, 1);
        assert_eq!(es.verify(&token), Err(AuthError::InvalidAuthToken));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let hs = tokens(&format!(
            "sign-method=HS256,priv-key={}",
            fixture("jwt-rsa.key")
        ));
        let claims = Claims {
            username: "dave".into(),
            revision: 1,
            exp: unix_now().as_secs() - 1,
        };
        let key = hs.signing.as_ref().unwrap();
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key).unwrap();
        assert_eq!(hs.verify(&token), Err(AuthError::InvalidAuthToken));
    }

    #[test]
    fn a_key_file_of_the_wrong_kind_is_a_clear_error() {
        let options = JwtOptions::parse(&format!(
            "sign-method=RS256,pub-key={}",
            fixture("jwt-ec.pub")
        ))
        .unwrap();
        let error = JwtTokens::load(&options).err().unwrap().to_string();
        assert!(error.contains("is not a RS256 key"), "{error}");
        let options = JwtOptions::parse("sign-method=RS256,pub-key=/nonexistent.pub").unwrap();
        let error = JwtTokens::load(&options).err().unwrap().to_string();
        assert!(error.contains("cannot read /nonexistent.pub"), "{error}");
    }
}

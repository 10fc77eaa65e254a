//! Reading a request: the route from the path, v2 parameters from the query
//! and the form body (body first, as Go's `Request.Form` orders them), and
//! etcd's rules for boolean and index parameters.

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use http::StatusCode;
use percent_encoding::percent_decode_str;

use crate::store::{Key, MemberName};
use crate::v2::{Code, Error};

/// Largest request body read (a form with `value=`).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest value a key may hold.
pub(crate) const MAX_VALUE_BYTES: usize = 4096;

/// Parameters the discovery service does not implement; refused rather than
/// silently ignored, because each would change the meaning of a write.
const UNSUPPORTED_VALUES: [&str; 3] = ["ttl", "prevValue", "prevIndex"];
const UNSUPPORTED_FLAGS: [&str; 4] = ["dir", "refresh", "stream", "noValueOnSuccess"];

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    New,
    Health,
    Metrics,
    /// A key under a token.
    Keys {
        token: String,
        target: Target,
    },
    /// `/` or a path deeper than any key (`cause` is the v2 key asked for).
    NoSuchKey {
        key: String,
    },
}

/// The key a token path names, before the name is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Dir,
    Size,
    Member(String),
}

impl Target {
    /// The store key for a read: a name that cannot exist is simply not found.
    pub(crate) fn read_key(&self, token: &str) -> Result<Key, Error> {
        match self {
            Target::Dir => Ok(Key::Dir),
            Target::Size => Ok(Key::Size),
            Target::Member(name) => MemberName::parse(name)
                .map(Key::Member)
                .map_err(|_| Error::new(Code::KeyNotFound, format!("/{token}/{name}"), 0)),
        }
    }

    /// The store key for a write: a bad name is bad input.
    pub(crate) fn write_key(&self) -> Result<Key, Error> {
        match self {
            Target::Dir => Ok(Key::Dir),
            Target::Size => Ok(Key::Size),
            Target::Member(name) => MemberName::parse(name)
                .map(Key::Member)
                .map_err(|e| Error::new(Code::InvalidField, e.to_string(), 0)),
        }
    }
}

/// Splits and percent-decodes the path. Empty segments are dropped, so
/// `/t/` is `/t` (etcd's client cleans paths the same way).
pub(crate) fn route(path: &str) -> Result<Route, Error> {
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| Error::new(Code::InvalidField, "the path is not valid UTF-8", 0))
        })
        .collect::<Result<Vec<String>, Error>>()?;
    let strs: Vec<&str> = segments.iter().map(String::as_str).collect();
    Ok(match strs.as_slice() {
        ["new"] => Route::New,
        ["health"] => Route::Health,
        ["metrics"] => Route::Metrics,
        [token] => Route::Keys {
            token: (*token).to_string(),
            target: Target::Dir,
        },
        [token, "_config", "size"] => Route::Keys {
            token: (*token).to_string(),
            target: Target::Size,
        },
        [token, name] => Route::Keys {
            token: (*token).to_string(),
            target: Target::Member((*name).to_string()),
        },
        _ => Route::NoSuchKey {
            key: format!("/{}", segments.join("/")),
        },
    })
}

/// The request's parameters: form body pairs first, then query pairs; a
/// lookup takes the first value, as etcd does.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(query: &str, form: &[u8]) -> Params {
        let pairs = form_urlencoded::parse(form)
            .chain(form_urlencoded::parse(query.as_bytes()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Params { pairs }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean flag (absent is false); bad values are etcd's 209.
    pub(crate) fn flag(&self, key: &str) -> Result<bool, Error> {
        Ok(self
            .opt_bool(key, || format!("invalid value for {key:?}"))?
            .unwrap_or(false))
    }

    /// `prevExist`: absent, true or false.
    pub(crate) fn prev_exist(&self) -> Result<Option<bool>, Error> {
        self.opt_bool("prevExist", || "invalid value for prevExist".into())
    }

    fn opt_bool(&self, key: &str, cause: impl Fn() -> String) -> Result<Option<bool>, Error> {
        self.get(key)
            .map(|v| parse_go_bool(v).ok_or_else(|| Error::new(Code::InvalidField, cause(), 0)))
            .transpose()
    }

    /// `waitIndex`: absent, or a decimal u64 (etcd's 203 otherwise).
    pub(crate) fn wait_index(&self) -> Result<Option<u64>, Error> {
        self.get("waitIndex")
            .map(|v| {
                parse_decimal(v)
                    .ok_or_else(|| Error::new(Code::IndexNaN, "invalid value for \"waitIndex\"", 0))
            })
            .transpose()
    }

    /// `size` for `/new`: default 3.
    pub(crate) fn size(&self) -> Result<u64, Error> {
        match self.get("size") {
            None => Ok(3),
            Some(v) => parse_decimal(v).ok_or_else(|| {
                Error::new(
                    Code::InvalidField,
                    format!("invalid value for \"size\": {v:?} is not a positive integer"),
                    0,
                )
            }),
        }
    }

    /// `value` for a write (absent is the empty string, as in etcd).
    pub(crate) fn value(&self) -> Result<String, Error> {
        let value = self.get("value").unwrap_or_default();
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::new(
                Code::InvalidField,
                format!("the value is longer than {MAX_VALUE_BYTES} bytes"),
                0,
            ));
        }
        Ok(value.to_string())
    }

    /// Refuses the v2 options this service does not implement.
    pub(crate) fn refuse_unsupported(&self) -> Result<(), Error> {
        let unsupported = |key: &str| {
            Error::new(
                Code::InvalidField,
                format!("{key:?} is not supported by the discovery service"),
                0,
            )
        };
        for key in UNSUPPORTED_VALUES {
            if self.get(key).is_some_and(|v| !v.is_empty()) {
                return Err(unsupported(key));
            }
        }
        for key in UNSUPPORTED_FLAGS {
            if self.flag(key)? {
                return Err(unsupported(key));
            }
        }
        Ok(())
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(v, 10, 64)`: digits only, no sign, no overflow.
fn parse_decimal(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Whether a `Content-Type` is a URL-encoded form.
pub(crate) fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_body<S, B, E>(body: S) -> Result<Vec<u8>, Error>
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|_| Error::new(Code::InvalidForm, "reading the request body failed", 0))?;
        if out.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(Error::new(
                Code::InvalidForm,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                0,
            )
            .with_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/new").unwrap(), Route::New);
        assert_eq!(route("/health").unwrap(), Route::Health);
        assert_eq!(route("/metrics").unwrap(), Route::Metrics);
        let keys = |token: &str, target| Route::Keys {
            token: token.into(),
            target,
        };
        assert_eq!(route("/abc").unwrap(), keys("abc", Target::Dir));
        assert_eq!(route("/abc/").unwrap(), keys("abc", Target::Dir));
        assert_eq!(
            route("//abc//m1").unwrap(),
            keys("abc", Target::Member("m1".into()))
        );
        assert_eq!(
            route("/abc/_config/size").unwrap(),
            keys("abc", Target::Size)
        );
        assert_eq!(
            route("/abc/a%20b").unwrap(),
            keys("abc", Target::Member("a b".into()))
        );
        assert_eq!(
            route("/abc/a%2Fb").unwrap(),
            keys("abc", Target::Member("a/b".into()))
        );
        assert_eq!(route("/").unwrap(), Route::NoSuchKey { key: "/".into() });
        assert_eq!(
            route("/abc/x/y").unwrap(),
            Route::NoSuchKey {
                key: "/abc/x/y".into()
            }
        );
        assert_eq!(route("/abc/%ff").unwrap_err().code, Code::InvalidField);
    }

    #[test]
    fn member_names_are_checked_per_use() {
        let slash = Target::Member("a/b".into());
        assert_eq!(slash.read_key("t").unwrap_err().code, Code::KeyNotFound);
        assert_eq!(slash.write_key().unwrap_err().code, Code::InvalidField);
        let hidden = Target::Member("_x".into());
        assert_eq!(hidden.read_key("t").unwrap_err().cause, "/t/_x");
        assert_eq!(hidden.write_key().unwrap_err().code, Code::InvalidField);
    }

    #[test]
    fn body_pairs_come_before_query_pairs() {
        let p = Params::parse("value=q&prevExist=false", b"value=b%3D1");
        assert_eq!(p.get("value"), Some("b=1"));
        assert_eq!(p.prev_exist().unwrap(), Some(false));
        assert_eq!(Params::parse("", b"").prev_exist().unwrap(), None);
        assert_eq!(Params::parse("", b"").value().unwrap(), "");
    }

    #[test]
    fn booleans_follow_go() {
        for (text, want) in [
            ("true", true),
            ("1", true),
            ("T", true),
            ("False", false),
            ("0", false),
        ] {
            let p = Params::parse(&format!("wait={text}"), b"");
            assert_eq!(p.flag("wait").unwrap(), want, "{text}");
        }
        for bad in ["", "yes", "tRue", "2"] {
            let e = Params::parse(&format!("recursive={bad}"), b"")
                .flag("recursive")
                .unwrap_err();
            assert_eq!(e.code, Code::InvalidField);
            assert_eq!(e.cause, "invalid value for \"recursive\"");
        }
        let e = Params::parse("prevExist=maybe", b"")
            .prev_exist()
            .unwrap_err();
        assert_eq!(e.cause, "invalid value for prevExist");
        assert!(!Params::parse("", b"").flag("wait").unwrap());
    }

    #[test]
    fn indexes_follow_go() {
        assert_eq!(
            Params::parse("waitIndex=42", b"").wait_index().unwrap(),
            Some(42)
        );
        assert_eq!(Params::parse("", b"").wait_index().unwrap(), None);
        for bad in ["", "+1", "-1", "1.0", "x", "18446744073709551616"] {
            let e = Params::parse(&format!("waitIndex={bad}"), b"")
                .wait_index()
                .unwrap_err();
            assert_eq!(e.code, Code::IndexNaN, "{bad:?}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn size_and_value() {
        assert_eq!(Params::parse("", b"").size().unwrap(), 3);
        assert_eq!(Params::parse("size=5", b"").size().unwrap(), 5);
        assert!(Params::parse("size=five", b"").size().is_err());
        let long = format!("value={}", "x".repeat(MAX_VALUE_BYTES + 1));
        assert!(Params::parse(&long, b"").value().is_err());
    }

    #[test]
    fn unsupported_options_are_refused() {
        assert!(
            Params::parse("prevExist=false&quorum=false", b"")
                .refuse_unsupported()
                .is_ok()
        );
        assert!(
            Params::parse("dir=false&ttl=", b"")
                .refuse_unsupported()
                .is_ok()
        );
        for bad in [
            "ttl=5",
            "prevValue=x",
            "prevIndex=3",
            "dir=true",
            "stream=true",
        ] {
            assert!(
                Params::parse(bad, b"").refuse_unsupported().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn form_content_types() {
        assert!(is_form(Some("application/x-www-form-urlencoded")));
        assert!(is_form(Some(
            "Application/X-WWW-Form-Urlencoded; charset=utf-8"
        )));
        assert!(!is_form(Some("application/json")));
        assert!(!is_form(None));
    }

    #[tokio::test]
    async fn bodies_are_limited() {
        let chunks =
            |n: usize| {
                futures::stream::iter((0..n).map(|_| {
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from(vec![b'a'; 1024]))
                }))
            };
        assert_eq!(read_body(chunks(64)).await.unwrap().len(), MAX_BODY_BYTES);
        let e = read_body(chunks(65)).await.unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}

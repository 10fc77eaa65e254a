//! Decoding a `/v2/keys` request: the form (query string, and for PUT and
//! POST a urlencoded body) checked field by field in etcd's order, so a
//! malformed request gets the error etcd gives it.

use super::form::{self, Values};
use crate::v2store::{ErrorCode, V2Error};

/// Go's limit on a form body.
pub(crate) const MAX_FORM_BYTES: usize = 10 << 20;

/// The methods the keys API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMethod {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl KeyMethod {
    pub(crate) fn parse(method: &str) -> Option<KeyMethod> {
        Some(match method {
            "GET" => KeyMethod::Get,
            "HEAD" => KeyMethod::Head,
            "PUT" => KeyMethod::Put,
            "POST" => KeyMethod::Post,
            "DELETE" => KeyMethod::Delete,
            _ => return None,
        })
    }

    /// Only these read a form body (Go's `ParseForm`).
    fn has_form_body(self) -> bool {
        matches!(self, KeyMethod::Put | KeyMethod::Post)
    }
}

/// A decoded keys request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyRequest {
    /// The path below `/v2/keys`, not yet cleaned.
    pub(crate) path: String,
    pub(crate) value: String,
    pub(crate) dir: bool,
    pub(crate) prev_value: String,
    pub(crate) prev_index: u64,
    pub(crate) prev_exist: Option<bool>,
    pub(crate) wait: bool,
    pub(crate) wait_index: u64,
    pub(crate) recursive: bool,
    pub(crate) sorted: bool,
    pub(crate) quorum: bool,
    pub(crate) stream: bool,
    pub(crate) refresh: Option<bool>,
    pub(crate) ttl: Option<u64>,
    pub(crate) no_value_on_success: bool,
}

/// The raw parts of a request the decoder reads.
pub(crate) struct RawRequest<'a> {
    pub(crate) method: KeyMethod,
    /// The decoded path after `/v2/keys`.
    pub(crate) path: &'a str,
    pub(crate) query: &'a [u8],
    pub(crate) content_type: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

fn invalid(code: ErrorCode, cause: &str) -> V2Error {
    V2Error::request(code, cause)
}

/// The request's form: the body's values first, then the query's (Go's
/// `Request.ParseForm`). A body error wins over a query error.
fn parse_form(raw: &RawRequest<'_>) -> Result<Values, V2Error> {
    let mut values = Values::default();
    let mut error = None;
    if raw.method.has_form_body() {
        // Go treats a missing or empty content type as
        // application/octet-stream.
        let content_type = raw.content_type.filter(|c| !c.is_empty());
        match form::media_type(content_type.unwrap_or("application/octet-stream")) {
            Ok(media) if media == "application/x-www-form-urlencoded" => {
                if raw.body.len() > MAX_FORM_BYTES {
                    error = Some("http: POST too large".to_string());
                } else {
                    let (body, body_error) = form::parse_query(raw.body);
                    values = body;
                    error = body_error;
                }
            }
            Ok(_) => {}
            Err(e) => error = Some(e),
        }
    }
    let (query, query_error) = form::parse_query(raw.query);
    values.append(query);
    match error.or(query_error) {
        Some(e) => Err(invalid(ErrorCode::InvalidForm, &e)),
        None => Ok(values),
    }
}

fn uint_field(values: &Values, key: &str, code: ErrorCode) -> Result<u64, V2Error> {
    match values.first(key) {
        None => Ok(0),
        Some(v) => form::parse_uint(v)
            .ok_or_else(|| invalid(code, &format!("invalid value for \"{key}\""))),
    }
}

fn bool_field(values: &Values, key: &str) -> Result<bool, V2Error> {
    match values.first(key) {
        None => Ok(false),
        Some(v) => form::parse_bool(v).ok_or_else(|| {
            invalid(
                ErrorCode::InvalidField,
                &format!("invalid value for \"{key}\""),
            )
        }),
    }
}

/// A nullable bool: absent is `None`; etcd words its error without quotes.
fn optional_bool(values: &Values, key: &str) -> Result<Option<bool>, V2Error> {
    values
        .first(key)
        .map(|v| {
            form::parse_bool(v).ok_or_else(|| {
                invalid(ErrorCode::InvalidField, &format!("invalid value for {key}"))
            })
        })
        .transpose()
}

/// Decodes a keys request, checking the fields in the order etcd does.
pub(crate) fn decode(raw: &RawRequest<'_>) -> Result<KeyRequest, V2Error> {
    let values = parse_form(raw)?;
    let prev_index = uint_field(&values, "prevIndex", ErrorCode::IndexNaN)?;
    let wait_index = uint_field(&values, "waitIndex", ErrorCode::IndexNaN)?;
    let recursive = bool_field(&values, "recursive")?;
    let sorted = bool_field(&values, "sorted")?;
    let wait = bool_field(&values, "wait")?;
    let dir = bool_field(&values, "dir")?;
    let quorum = bool_field(&values, "quorum")?;
    let stream = bool_field(&values, "stream")?;
    if wait && raw.method != KeyMethod::Get {
        return Err(invalid(
            ErrorCode::InvalidField,
            "\"wait\" can only be used with GET requests",
        ));
    }
    let prev_value = values.value("prevValue");
    if values.first("prevValue") == Some("") {
        return Err(invalid(
            ErrorCode::PrevValueRequired,
            "\"prevValue\" cannot be empty",
        ));
    }
    let no_value_on_success = bool_field(&values, "noValueOnSuccess")?;
    let ttl = match values.value("ttl") {
        "" => None,
        _ => Some(uint_field(&values, "ttl", ErrorCode::TtlNaN)?),
    };
    let prev_exist = optional_bool(&values, "prevExist")?;
    let refresh = optional_bool(&values, "refresh")?;
    if refresh == Some(true) {
        if !values.value("value").is_empty() {
            return Err(invalid(
                ErrorCode::RefreshValue,
                "A value was provided on a refresh",
            ));
        }
        if ttl.is_none() {
            return Err(invalid(ErrorCode::RefreshTtlRequired, "No TTL value set"));
        }
    }
    Ok(KeyRequest {
        path: raw.path.to_string(),
        value: values.value("value").to_string(),
        dir,
        prev_value: prev_value.to_string(),
        prev_index,
        prev_exist,
        wait,
        wait_index,
        recursive,
        sorted,
        quorum,
        stream,
        refresh,
        ttl,
        no_value_on_success,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn request(method: KeyMethod, query: &str, body: &str) -> Result<KeyRequest, V2Error> {
        decode(&RawRequest {
            method,
            path: "/k",
            query: query.as_bytes(),
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.as_bytes(),
        })
    }

    fn refused(method: KeyMethod, query: &str, body: &str) -> (u32, String) {
        let e = request(method, query, body).expect_err("refused");
        assert_eq!(e.index, 0);
        (e.code.number(), e.cause)
    }

    #[test]
    fn well_formed_requests() {
        let put = request(KeyMethod::Put, "ttl=5&prevExist=false", "value=a+b&dir=0").unwrap();
        assert_eq!(put.value, "a b");
        assert_eq!(
            (put.ttl, put.prev_exist, put.dir),
            (Some(5), Some(false), false)
        );
        // The body's value comes before the query's.
        let both = request(KeyMethod::Put, "value=query", "value=body").unwrap();
        assert_eq!(both.value, "body");
        // GET and DELETE ignore a body, as Go does.
        let get = request(KeyMethod::Get, "wait=true&waitIndex=7", "value=x").unwrap();
        assert_eq!(
            (get.wait, get.wait_index, get.value.as_str()),
            (true, 7, "")
        );
        let empty_ttl = request(KeyMethod::Put, "ttl=", "").unwrap();
        assert_eq!(empty_ttl.ttl, None);
    }

    #[test]
    fn malformed_requests_get_etcds_errors() {
        use KeyMethod::*;
        let cases: &[(KeyMethod, &str, &str, u32, &str)] = &[
            (Put, "", "value=%zz", 210, r#"invalid URL escape "%zz""#),
            (
                Put,
                "a;b=1",
                "value=1",
                210,
                "invalid semicolon separator in query",
            ),
            (
                Put,
                "prevIndex=abc&ttl=x",
                "",
                203,
                r#"invalid value for "prevIndex""#,
            ),
            (
                Get,
                "waitIndex=-1",
                "",
                203,
                r#"invalid value for "waitIndex""#,
            ),
            (
                Get,
                "recursive=maybe",
                "",
                209,
                r#"invalid value for "recursive""#,
            ),
            (Put, "dir=", "", 209, r#"invalid value for "dir""#),
            (
                Put,
                "wait=true",
                "value=1",
                209,
                r#""wait" can only be used with GET requests"#,
            ),
            (
                Put,
                "prevValue=",
                "value=1",
                201,
                r#""prevValue" cannot be empty"#,
            ),
            (
                Put,
                "noValueOnSuccess=2",
                "",
                209,
                r#"invalid value for "noValueOnSuccess""#,
            ),
            (Put, "ttl=abc", "value=1", 202, r#"invalid value for "ttl""#),
            (Put, "ttl=-1", "value=1", 202, r#"invalid value for "ttl""#),
            (
                Put,
                "prevExist=maybe",
                "",
                209,
                "invalid value for prevExist",
            ),
            (Put, "refresh=x", "", 209, "invalid value for refresh"),
            (
                Put,
                "refresh=true&ttl=5",
                "value=4",
                211,
                "A value was provided on a refresh",
            ),
            (Put, "refresh=true", "", 212, "No TTL value set"),
        ];
        for (method, query, body, code, cause) in cases {
            assert_eq!(
                refused(*method, query, body),
                (*code, cause.to_string()),
                "{method:?} ?{query} {body}"
            );
        }
    }

    #[test]
    fn content_types_decide_whether_the_body_counts() {
        let with = |content_type| {
            decode(&RawRequest {
                method: KeyMethod::Put,
                path: "/k",
                query: b"",
                content_type,
                body: b"value=1",
            })
        };
        assert_eq!(with(None).unwrap().value, "");
        assert_eq!(with(Some("text/plain")).unwrap().value, "");
        assert_eq!(
            with(Some("application/x-www-form-urlencoded; charset=utf-8"))
                .unwrap()
                .value,
            "1"
        );
        assert_eq!(with(Some("")).unwrap().value, "");
        assert_eq!(
            with(Some("a/b; =x")).unwrap_err().cause,
            "mime: invalid media parameter"
        );
    }

    fn method() -> impl Strategy<Value = KeyMethod> {
        prop_oneof![
            Just(KeyMethod::Get),
            Just(KeyMethod::Head),
            Just(KeyMethod::Put),
            Just(KeyMethod::Post),
            Just(KeyMethod::Delete),
        ]
    }

    /// Query strings made of the fields etcd knows, with good and bad
    /// values, escapes and separators.
    fn query() -> impl Strategy<Value = String> {
        let known = proptest::sample::select(vec![
            "value",
            "ttl",
            "prevIndex",
            "waitIndex",
            "prevValue",
            "prevExist",
            "refresh",
            "dir",
            "wait",
            "recursive",
            "sorted",
            "quorum",
            "stream",
            "noValueOnSuccess",
        ])
        .prop_map(str::to_string);
        let key = prop_oneof![known, "[a-z%;+=]{0,4}"];
        let value = prop_oneof![
            Just("true".to_string()),
            Just("false".to_string()),
            "[0-9]{1,21}",
            "[-+%a-zA-Z0-9;&=]{0,8}",
        ];
        proptest::collection::vec((key, value), 0..6).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    proptest! {
        /// Any bytes at all: the decoder answers, never panics, and a
        /// refusal is always one of the request error codes with index 0.
        #[test]
        fn arbitrary_input_never_panics(
            method in method(),
            query in proptest::collection::vec(any::<u8>(), 0..64),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            content_type in proptest::option::of("[ -~]{0,40}"),
        ) {
            let raw = RawRequest {
                method,
                path: "/k",
                query: &query,
                content_type: content_type.as_deref(),
                body: &body,
            };
            if let Err(e) = decode(&raw) {
                prop_assert_eq!(e.index, 0);
                prop_assert!(matches!(e.code.number(), 201..=212));
            }
        }

        /// Structured queries: a decoded request is consistent with what
        /// etcd would have accepted.
        #[test]
        fn decoded_requests_respect_etcds_rules(method in method(), query in query()) {
            let raw = RawRequest {
                method,
                path: "/k",
                query: query.as_bytes(),
                content_type: None,
                body: b"",
            };
            if let Ok(req) = decode(&raw) {
                prop_assert!(!req.wait || method == KeyMethod::Get);
                if req.refresh == Some(true) {
                    prop_assert!(req.ttl.is_some() && req.value.is_empty());
                }
                let (values, _) = form::parse_query(query.as_bytes());
                prop_assert_eq!(values.value("value"), req.value.as_str());
                prop_assert_eq!(values.first("prevValue") == Some(""), false);
            }
        }
    }
}

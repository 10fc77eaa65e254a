//! Property tests of the gateway's request decoding: whatever arrives in a
//! body, reading it never panics and either yields a message the gRPC
//! services can decode or one of Go's own error messages; how the body is
//! split into chunks never changes the outcome; and every request message
//! survives JSON and back unchanged.

use std::future::Future;

use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;
use prost::Message;
use tonic::Code;

use super::codec::{from_json, to_json};
use super::json::{Decoder, Read};
use super::schema::Schema;
use super::{ROUTES, read_request};
use crate::proto::etcdserverpb::{
    AlarmRequest, CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest,
    LeaseKeepAliveRequest, LeaseTimeToLiveRequest, MemberAddRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, compare, request_op, watch_request,
};
use crate::proto::v3electionpb::{CampaignRequest, LeaderKey, ProclaimRequest};
use crate::proto::v3lockpb::LockRequest;

/// How every error the decoders report begins: Go's `encoding/json`,
/// `encoding/base64` and `jsonpb` messages, which etcd passes on verbatim.
const GO_ERRORS: &[&str] = &[
    "invalid character ",
    "unexpected end of JSON input",
    "unexpected EOF",
    "json: cannot unmarshal ",
    "illegal base64 data at input byte ",
    "unknown value ",
    "failed to decode Protobuf message: recursion limit reached",
];

fn is_go_error(message: &str) -> bool {
    GO_ERRORS.iter().any(|prefix| message.starts_with(prefix))
}

/// The request message of every gateway route.
fn request_types() -> Vec<String> {
    let schema = Schema::get();
    let mut names: Vec<String> = ROUTES
        .iter()
        .filter_map(|(_, method)| schema.method(method).map(|m| m.input.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Decodes one JSON value as every request type and checks the outcome.
fn check_value(raw: &[u8]) -> Result<(), TestCaseError> {
    for name in request_types() {
        match from_json(Schema::get(), &name, raw) {
            // The services read this wire; the schema must read it back too.
            Ok(wire) => prop_assert!(
                to_json(Schema::get(), &name, &wire).is_ok(),
                "{name}: {:?} decoded to unreadable wire",
                String::from_utf8_lossy(raw)
            ),
            Err(message) => prop_assert!(
                is_go_error(&message),
                "{name}: {:?} gave {message:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }
    Ok(())
}

/// Every value a body holds, as the decoder reads it from `chunks`, then
/// the error or end that stops it.
fn read_all(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut decoder = Decoder::new();
    let mut values = Vec::new();
    let mut next_chunk = 0;
    loop {
        let eof = next_chunk == chunks.len();
        match decoder.next(eof) {
            Ok(Read::Value(raw)) => values.push(raw),
            Ok(Read::End) => return (values, None),
            Ok(Read::NeedMore) if eof => return (values, Some("stalled at the end".into())),
            Ok(Read::NeedMore) => {
                decoder.push(chunks[next_chunk]);
                next_chunk += 1;
            }
            Err(e) => return (values, Some(e)),
        }
    }
}

/// `body` cut at `cuts` (positions, in any order).
fn split<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in at {
        pieces.push(&body[start..end]);
        start = end;
    }
    pieces.push(&body[start..]);
    pieces
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// JSON-looking bytes: fragments of etcd requests and JSON syntax in any
/// order, which reach much deeper into the decoders than random bytes.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    const FRAGMENTS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\"",
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "1e3",
        "\"7\"",
        "\"-9\"",
        "18446744073709551616",
        "\"key\"",
        "\"range_end\"",
        "\"rangeEnd\"",
        "\"limit\"",
        "\"sort_order\"",
        "\"DESCEND\"",
        "\"value\"",
        "\"lease\"",
        "\"ID\"",
        "\"TTL\"",
        "\"compare\"",
        "\"success\"",
        "\"request_put\"",
        "\"request_txn\"",
        "\"target\"",
        "\"CREATE\"",
        "\"create_revision\"",
        "\"create_request\"",
        "\"cancel_request\"",
        "\"progress_request\"",
        "\"filters\"",
        "\"NOPUT\"",
        "\"watch_id\"",
        "\"peerURLs\"",
        "\"Zm9v\"",
        "\"Zm9\"",
        "\"YQ==\"",
        "\"\\u00e9\"",
        "\"\\ud800\"",
        "\\",
        "\u{feff}",
        "\u{0}",
    ];
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40)
        .prop_map(|parts| parts.concat().into_bytes())
}

/// Any JSON value, with member names that etcd's requests use.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    const NAMES: &[&str] = &[
        "key",
        "range_end",
        "rangeEnd",
        "limit",
        "revision",
        "sort_order",
        "sort_target",
        "serializable",
        "keys_only",
        "count_only",
        "min_mod_revision",
        "value",
        "lease",
        "prev_kv",
        "ignore_value",
        "compare",
        "success",
        "failure",
        "request_range",
        "request_put",
        "request_delete_range",
        "request_txn",
        "result",
        "target",
        "version",
        "create_revision",
        "mod_revision",
        "create_request",
        "cancel_request",
        "progress_request",
        "watch_id",
        "filters",
        "start_revision",
        "fragment",
        "ID",
        "TTL",
        "keys",
        "physical",
        "action",
        "alarm",
        "memberID",
        "peerURLs",
        "isLearner",
        "name",
        "leader",
        "rev",
        "password",
        "role",
        "perm",
        "permType",
        "bogus",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e30f64..1e30).prop_map(serde_json::Value::from),
        "[A-Za-z0-9+/=_ -]{0,12}".prop_map(serde_json::Value::from),
        prop::sample::select(
            &[
                "EQUAL", "VALUE", "NOSPACE", "ACTIVATE", "DESCEND", "NODELETE"
            ][..]
        )
        .prop_map(serde_json::Value::from),
        any::<i32>().prop_map(|n| serde_json::Value::from(n.to_string())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec((prop::sample::select(NAMES), inner), 0..6).prop_map(|members| {
                serde_json::Value::Object(
                    members
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), value))
                        .collect(),
                )
            }),
        ]
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..12)
}

fn compare() -> impl Strategy<Value = Compare> {
    let target_union = prop_oneof![
        Just(None),
        any::<i64>().prop_map(|v| Some(compare::TargetUnion::Version(v))),
        any::<i64>().prop_map(|v| Some(compare::TargetUnion::CreateRevision(v))),
        any::<i64>().prop_map(|v| Some(compare::TargetUnion::ModRevision(v))),
        bytes().prop_map(|v| Some(compare::TargetUnion::Value(v))),
        any::<i64>().prop_map(|v| Some(compare::TargetUnion::Lease(v))),
    ];
    (-1i32..5, -1i32..6, bytes(), bytes(), target_union).prop_map(
        |(result, target, key, range_end, target_union)| Compare {
            result,
            target,
            key,
            range_end,
            target_union,
        },
    )
}

fn range_request() -> impl Strategy<Value = RangeRequest> {
    (
        (
            bytes(),
            bytes(),
            any::<i64>(),
            any::<i64>(),
            -2i32..4,
            -2i32..6,
        ),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |(
                (key, range_end, limit, revision, sort_order, sort_target),
                (serializable, keys_only, count_only),
                (min_mod_revision, max_mod_revision, min_create_revision, max_create_revision),
            )| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                serializable,
                keys_only,
                count_only,
                min_mod_revision,
                max_mod_revision,
                min_create_revision,
                max_create_revision,
            },
        )
}

fn put_request() -> impl Strategy<Value = PutRequest> {
    (
        bytes(),
        bytes(),
        any::<i64>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(key, value, lease, prev_kv, ignore_value, ignore_lease)| PutRequest {
                key,
                value,
                lease,
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
}

fn delete_range_request() -> impl Strategy<Value = DeleteRangeRequest> {
    (bytes(), bytes(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn txn_request() -> impl Strategy<Value = TxnRequest> {
    let leaf_op = prop_oneof![
        Just(RequestOp { request: None }),
        range_request().prop_map(|r| RequestOp {
            request: Some(request_op::Request::RequestRange(r))
        }),
        put_request().prop_map(|r| RequestOp {
            request: Some(request_op::Request::RequestPut(r))
        }),
        delete_range_request().prop_map(|r| RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(r))
        }),
    ];
    let txn = |ops: BoxedStrategy<RequestOp>| {
        (
            prop::collection::vec(compare(), 0..3),
            prop::collection::vec(ops.clone(), 0..3),
            prop::collection::vec(ops, 0..3),
        )
            .prop_map(|(compare, success, failure)| TxnRequest {
                compare,
                success,
                failure,
            })
    };
    let nested_op = prop_oneof![
        leaf_op.clone(),
        txn(leaf_op.clone().boxed()).prop_map(|t| RequestOp {
            request: Some(request_op::Request::RequestTxn(t))
        }),
    ];
    txn(nested_op.boxed())
}

fn watch_request() -> impl Strategy<Value = WatchRequest> {
    let create = (
        (bytes(), bytes(), any::<i64>(), any::<bool>()),
        (
            prop::collection::vec(-1i32..3, 0..3),
            any::<bool>(),
            any::<i64>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (key, range_end, start_revision, progress_notify),
                (filters, prev_kv, watch_id, fragment),
            )| {
                watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                    key,
                    range_end,
                    start_revision,
                    progress_notify,
                    filters,
                    prev_kv,
                    watch_id,
                    fragment,
                })
            },
        );
    prop_oneof![
        Just(None),
        create.prop_map(Some),
        any::<i64>().prop_map(|watch_id| Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id }
        ))),
        Just(Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {}
        ))),
    ]
    .prop_map(|request_union| WatchRequest { request_union })
}

fn member_add_request() -> impl Strategy<Value = MemberAddRequest> {
    (prop::collection::vec("[ -~é]{0,12}", 0..3), any::<bool>()).prop_map(
        |(peer_ur_ls, is_learner)| MemberAddRequest {
            peer_ur_ls,
            is_learner,
        },
    )
}

fn leader_key() -> impl Strategy<Value = LeaderKey> {
    (bytes(), bytes(), any::<i64>(), any::<i64>()).prop_map(|(name, key, rev, lease)| LeaderKey {
        name,
        key,
        rev,
        lease,
    })
}

/// `message` as the gateway writes it, read back by the gateway.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(
    name: &str,
    message: &M,
) -> Result<(), TestCaseError> {
    let json = to_json(Schema::get(), name, &message.encode_to_vec())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let wire = from_json(Schema::get(), name, json.as_bytes())
        .map_err(|e| TestCaseError::fail(format!("{name}: {json}: {e}")))?;
    let back = M::decode(wire.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, message, "{} via {}", name, json);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random bytes, whole or in pieces: the same values and the same end.
    #[test]
    fn any_bytes_decode_or_fail_like_go(
        body in prop::collection::vec(any::<u8>(), 0..256),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let whole = read_all(&[&body]);
        let pieces = read_all(&split(&body, &cuts));
        prop_assert_eq!(&whole, &pieces);
        if let Some(error) = &whole.1 {
            prop_assert!(is_go_error(error), "{:?}", error);
        }
        for value in &whole.0 {
            check_value(value)?;
        }
    }

    #[test]
    fn json_like_bytes_decode_or_fail_like_go(
        body in jsonish(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let whole = read_all(&[&body]);
        prop_assert_eq!(&whole, &read_all(&split(&body, &cuts)));
        if let Some(error) = &whole.1 {
            prop_assert!(is_go_error(error), "{:?}", error);
        }
        for value in &whole.0 {
            check_value(value)?;
        }
    }

    /// Any JSON value is a request of every type or Go's type error.
    #[test]
    fn any_json_value_decodes_or_fails_like_go(value in json_value()) {
        let text = serde_json::to_string(&value).expect("a value serializes");
        check_value(text.as_bytes())?;
    }

    /// The unary body reader: any body in any chunks gives the same answer,
    /// which is a request or a 400 (InvalidArgument) with Go's message.
    #[test]
    fn unary_bodies_read_the_same_in_any_chunks(
        body in prop_oneof![jsonish(), prop::collection::vec(any::<u8>(), 0..128)],
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let read = |chunks: Vec<Bytes>| {
            block_on(async move {
                let mut stream: super::loopback::BoxStream<Result<Bytes, String>> =
                    Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)));
                let result = read_request(&mut stream, "etcdserverpb.TxnRequest", 1 << 20).await;
                // The reader stops at the first value, as Go's decoder does.
                let _ = stream.next().await;
                result.map_err(|status| (status.code(), status.message().to_string()))
            })
        };
        let whole = read(vec![Bytes::from(body.clone())]);
        let pieces = read(split(&body, &cuts).into_iter().map(Bytes::copy_from_slice).collect());
        prop_assert_eq!(&whole, &pieces);
        match whole {
            Ok(wire) => prop_assert!(TxnRequest::decode(wire.as_slice()).is_ok()),
            Err((code, message)) => {
                prop_assert_eq!(code, Code::InvalidArgument);
                prop_assert!(is_go_error(&message), "{:?}", message);
            }
        }
    }

    #[test]
    fn kv_requests_round_trip(
        range in range_request(),
        put in put_request(),
        delete in delete_range_request(),
        compaction in (any::<i64>(), any::<bool>())
            .prop_map(|(revision, physical)| CompactionRequest { revision, physical }),
    ) {
        round_trip("etcdserverpb.RangeRequest", &range)?;
        round_trip("etcdserverpb.PutRequest", &put)?;
        round_trip("etcdserverpb.DeleteRangeRequest", &delete)?;
        round_trip("etcdserverpb.CompactionRequest", &compaction)?;
    }

    #[test]
    fn txn_requests_round_trip(txn in txn_request()) {
        round_trip("etcdserverpb.TxnRequest", &txn)?;
    }

    #[test]
    fn watch_lease_and_cluster_requests_round_trip(
        watch in watch_request(),
        (id, ttl, keys) in (any::<i64>(), any::<i64>(), any::<bool>()),
        alarm in (-1i32..4, any::<u64>(), -1i32..4)
            .prop_map(|(action, member_id, alarm)| AlarmRequest { action, member_id, alarm }),
        member in member_add_request(),
    ) {
        round_trip("etcdserverpb.WatchRequest", &watch)?;
        round_trip("etcdserverpb.LeaseGrantRequest", &LeaseGrantRequest { ttl, id })?;
        round_trip("etcdserverpb.LeaseKeepAliveRequest", &LeaseKeepAliveRequest { id })?;
        round_trip("etcdserverpb.LeaseTimeToLiveRequest", &LeaseTimeToLiveRequest { id, keys })?;
        round_trip("etcdserverpb.AlarmRequest", &alarm)?;
        round_trip("etcdserverpb.MemberAddRequest", &member)?;
    }

    #[test]
    fn lock_and_election_requests_round_trip(
        (name, value, lease) in (bytes(), bytes(), any::<i64>()),
        leader in prop::option::of(leader_key()),
    ) {
        round_trip("v3lockpb.LockRequest", &LockRequest { name: name.clone(), lease })?;
        round_trip(
            "v3electionpb.CampaignRequest",
            &CampaignRequest { name, lease, value: value.clone() },
        )?;
        round_trip("v3electionpb.ProclaimRequest", &ProclaimRequest { leader, value })?;
    }
}

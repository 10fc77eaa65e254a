//! The MVCC rules against the in-memory backend, one etcd behaviour a test.

use super::*;
use crate::mvcc::{KvRead, MemoryBackend, range};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};

fn put(b: &mut MemoryBackend, key: &str, value: &str) -> PutResponse {
    let req = PutRequest {
        key: key.into(),
        value: value.into(),
        prev_kv: true,
        ..Default::default()
    };
    apply_put(b, &req).expect("put").response
}

fn get_at(b: &MemoryBackend, key: &str, revision: i64) -> Result<RangeResponse, MvccError> {
    range(
        b,
        &RangeRequest {
            key: key.into(),
            revision,
            ..Default::default()
        },
    )
}

fn get(b: &MemoryBackend, key: &str) -> Option<KeyValue> {
    get_at(b, key, 0).unwrap().kvs.into_iter().next()
}

fn delete(b: &mut MemoryBackend, key: &str, end: &str) -> DeleteRangeResponse {
    let req = DeleteRangeRequest {
        key: key.into(),
        range_end: end.into(),
        prev_kv: true,
    };
    apply_delete_range(b, &req).expect("delete").response
}

fn revision(b: &MemoryBackend) -> i64 {
    b.revisions().unwrap().current
}

fn compare_value(key: &str, result: CompareResult, value: &str) -> Compare {
    Compare {
        result: result as i32,
        target: CompareTarget::Value as i32,
        key: key.into(),
        target_union: Some(TargetUnion::Value(value.into())),
        ..Default::default()
    }
}

fn compare_int(key: &str, target: CompareTarget, result: CompareResult, v: i64) -> Compare {
    let union = match target {
        CompareTarget::Version => TargetUnion::Version(v),
        CompareTarget::Create => TargetUnion::CreateRevision(v),
        CompareTarget::Mod => TargetUnion::ModRevision(v),
        CompareTarget::Lease => TargetUnion::Lease(v),
        CompareTarget::Value => unreachable!("use compare_value"),
    };
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        target_union: Some(union),
        ..Default::default()
    }
}

fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

fn op_get(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

#[test]
fn a_fresh_store_is_at_revision_one_and_each_put_adds_one() {
    let mut b = MemoryBackend::default();
    assert_eq!(revision(&b), 1);
    assert_eq!(put(&mut b, "a", "1").header.unwrap().revision, 2);
    assert_eq!(put(&mut b, "a", "1").header.unwrap().revision, 3);
    let kv = get(&b, "a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
}

#[test]
fn delete_resets_version_and_recreate_gets_new_create_revision() {
    let mut b = MemoryBackend::default();
    put(&mut b, "a", "1");
    put(&mut b, "a", "2");
    let resp = delete(&mut b, "a", "");
    assert_eq!(resp.deleted, 1);
    assert_eq!(resp.prev_kvs[0].value, b"2");
    assert_eq!(resp.header.unwrap().revision, 4);
    assert!(get(&b, "a").is_none());
    put(&mut b, "a", "3");
    let kv = get(&b, "a").unwrap();
    assert_eq!((kv.create_revision, kv.version), (5, 1));
}

#[test]
fn a_delete_of_nothing_leaves_the_revision_alone() {
    let mut b = MemoryBackend::default();
    put(&mut b, "a", "1");
    let resp = delete(&mut b, "zz", "");
    assert_eq!((resp.deleted, resp.header.unwrap().revision), (0, 2));
    assert_eq!(revision(&b), 2);
}

#[test]
fn put_returns_prev_kv_and_honours_ignore_flags() {
    let mut b = MemoryBackend::default();
    assert!(put(&mut b, "a", "1").prev_kv.is_none());
    assert_eq!(put(&mut b, "a", "2").prev_kv.unwrap().value, b"1");
    let keep_value = PutRequest {
        key: b"a".to_vec(),
        ignore_value: true,
        ..Default::default()
    };
    apply_put(&mut b, &keep_value).unwrap();
    assert_eq!(get(&b, "a").unwrap().value, b"2");
    let missing = PutRequest {
        key: b"nope".to_vec(),
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(apply_put(&mut b, &missing), Err(MvccError::KeyNotFound));
}

#[test]
fn put_with_an_unknown_lease_fails_and_a_granted_one_attaches() {
    let mut b = MemoryBackend::default();
    let req = PutRequest {
        key: b"a".to_vec(),
        lease: 42,
        ..Default::default()
    };
    assert_eq!(apply_put(&mut b, &req), Err(MvccError::LeaseNotFound));
    assert_eq!(revision(&b), 1);
    crate::mvcc::apply_lease_grant(&mut b, 42, 60).unwrap();
    apply_put(&mut b, &req).unwrap();
    assert_eq!(get(&b, "a").unwrap().lease, 42);
}

#[test]
fn historical_reads_and_their_errors() {
    let mut b = MemoryBackend::default();
    put(&mut b, "a", "1");
    put(&mut b, "a", "2");
    assert_eq!(get_at(&b, "a", 2).unwrap().kvs[0].value, b"1");
    assert_eq!(get_at(&b, "a", 2).unwrap().header.unwrap().revision, 3);
    assert!(get_at(&b, "a", 1).unwrap().kvs.is_empty());
    assert_eq!(get_at(&b, "a", 4), Err(MvccError::FutureRevision));
}

#[test]
fn compaction_keeps_what_reads_at_or_after_it_can_see() {
    let mut b = MemoryBackend::default();
    put(&mut b, "a", "1"); // 2
    put(&mut b, "a", "2"); // 3
    put(&mut b, "b", "1"); // 4
    delete(&mut b, "b", ""); // 5
    put(&mut b, "a", "3"); // 6
    let compact = |b: &mut MemoryBackend, revision| {
        apply_compaction(
            b,
            &CompactionRequest {
                revision,
                physical: false,
            },
        )
    };
    compact(&mut b, 5).unwrap();
    assert_eq!(get_at(&b, "a", 4), Err(MvccError::Compacted));
    assert_eq!(get_at(&b, "a", 5).unwrap().kvs[0].value, b"2");
    assert_eq!(get(&b, "a").unwrap().value, b"3");
    assert!(get_at(&b, "b", 5).unwrap().kvs.is_empty());
    // a@3 (visible at 5), a@6; b's tombstone and older versions are gone.
    assert_eq!(b.stored_versions(), 2);
    assert_eq!(compact(&mut b, 5), Err(MvccError::Compacted));
    assert_eq!(compact(&mut b, 7), Err(MvccError::FutureRevision));
    assert_eq!(revision(&b), 6, "compaction adds no revision");
}

#[test]
fn range_limit_sort_count_and_filters() {
    let mut b = MemoryBackend::default();
    for (k, v) in [("k1", "c"), ("k2", "a"), ("k3", "b")] {
        put(&mut b, k, v);
    }
    put(&mut b, "k2", "a2");
    let base = RangeRequest {
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        ..Default::default()
    };
    let limited = range(
        &b,
        &RangeRequest {
            limit: 2,
            ..base.clone()
        },
    )
    .unwrap();
    assert_eq!(
        (limited.kvs.len(), limited.more, limited.count),
        (2, true, 3)
    );

    let by_value_desc = RangeRequest {
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Value as i32,
        ..base.clone()
    };
    let keys: Vec<_> = range(&b, &by_value_desc)
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k3".to_vec(), b"k2".to_vec()]);

    // A target without an order sorts ascending.
    let by_mod = RangeRequest {
        sort_target: SortTarget::Mod as i32,
        ..base.clone()
    };
    let last = range(&b, &by_mod).unwrap().kvs.pop().unwrap();
    assert_eq!(last.key, b"k2");

    let filtered = RangeRequest {
        min_create_revision: 3,
        limit: 1,
        ..base.clone()
    };
    let resp = range(&b, &filtered).unwrap();
    assert_eq!(
        (resp.kvs[0].key.as_slice(), resp.more, resp.count),
        (&b"k2"[..], true, 3)
    );

    let counted = range(
        &b,
        &RangeRequest {
            count_only: true,
            ..base.clone()
        },
    )
    .unwrap();
    assert_eq!((counted.count, counted.kvs.len()), (3, 0));
    let keys_only = range(
        &b,
        &RangeRequest {
            keys_only: true,
            ..base
        },
    )
    .unwrap();
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
}

#[test]
fn txn_compares_choose_the_branch() {
    let mut b = MemoryBackend::default();
    put(&mut b, "a", "1");
    let t = TxnRequest {
        compare: vec![compare_value("a", CompareResult::Equal, "1")],
        success: vec![op_put("b", "yes")],
        failure: vec![op_put("b", "no")],
    };
    let resp = apply_txn(&mut b, &t).unwrap().response;
    assert!(resp.succeeded);
    assert_eq!(get(&b, "b").unwrap().value, b"yes");

    let absent = TxnRequest {
        compare: vec![compare_int(
            "zz",
            CompareTarget::Create,
            CompareResult::Equal,
            0,
        )],
        success: vec![op_put("zz", "created")],
        failure: vec![],
    };
    assert!(apply_txn(&mut b, &absent).unwrap().response.succeeded);
    assert!(!apply_txn(&mut b, &absent).unwrap().response.succeeded);

    let value_of_missing = TxnRequest {
        compare: vec![compare_value("missing", CompareResult::NotEqual, "x")],
        ..Default::default()
    };
    assert!(
        !apply_txn(&mut b, &value_of_missing)
            .unwrap()
            .response
            .succeeded
    );
}

#[test]
fn txn_writes_share_one_revision_and_later_ops_see_earlier_ones() {
    let mut b = MemoryBackend::default();
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_put("a", "1"), op_get("a"), op_put("b", "2")],
        failure: vec![],
    };
    let resp = apply_txn(&mut b, &t).unwrap().response;
    assert_eq!(resp.header.unwrap().revision, 2);
    let Some(Response::ResponseRange(seen)) = &resp.responses[1].response else {
        panic!("expected a range response");
    };
    assert_eq!(seen.kvs[0].value, b"1");
    assert_eq!(get(&b, "b").unwrap().mod_revision, 2);
    assert_eq!(revision(&b), 2);
}

#[test]
fn a_read_only_txn_keeps_the_revision() {
    let mut b = MemoryBackend::default();
    put(&mut b, "a", "1");
    let t = TxnRequest {
        success: vec![op_get("a")],
        ..Default::default()
    };
    assert_eq!(
        apply_txn(&mut b, &t)
            .unwrap()
            .response
            .header
            .unwrap()
            .revision,
        2
    );
    assert_eq!(revision(&b), 2);
}

#[test]
fn nested_compares_see_the_state_before_the_txn() {
    let mut b = MemoryBackend::default();
    let inner = TxnRequest {
        compare: vec![compare_int(
            "a",
            CompareTarget::Version,
            CompareResult::Equal,
            0,
        )],
        success: vec![op_put("inner", "saw-no-a")],
        failure: vec![op_put("inner", "saw-a")],
    };
    let outer = TxnRequest {
        compare: vec![],
        success: vec![
            op_put("a", "1"),
            RequestOp {
                request: Some(Request::RequestTxn(inner)),
            },
        ],
        failure: vec![],
    };
    apply_txn(&mut b, &outer).unwrap();
    assert_eq!(get(&b, "inner").unwrap().value, b"saw-no-a");
}

#[test]
fn a_failing_put_rejects_the_whole_txn() {
    let mut b = MemoryBackend::default();
    let leased = RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: b"b".to_vec(),
            lease: 9,
            ..Default::default()
        })),
    };
    let t = TxnRequest {
        success: vec![op_put("a", "1"), leased],
        ..Default::default()
    };
    assert_eq!(apply_txn(&mut b, &t), Err(MvccError::LeaseNotFound));
    assert!(get(&b, "a").is_none());
    assert_eq!(revision(&b), 1);
}

#[test]
fn compares_over_a_range_need_every_key_to_match() {
    let mut b = MemoryBackend::default();
    put(&mut b, "p/1", "x");
    put(&mut b, "p/2", "y");
    let mut all_x = compare_value("p/", CompareResult::Equal, "x");
    all_x.range_end = b"p0".to_vec();
    let t = TxnRequest {
        compare: vec![all_x],
        ..Default::default()
    };
    assert!(!apply_txn(&mut b, &t).unwrap().response.succeeded);
}

#[test]
fn without_prev_values_events_leave_them_out_but_responses_keep_them() {
    let mut full = MemoryBackend::default();
    let mut lean = MemoryBackend::default().without_prev_values();
    for b in [&mut full, &mut lean] {
        put(b, "a", "1");
        put(b, "b", "1");
    }
    let plain = PutRequest {
        key: "a".into(),
        value: "2".into(),
        ..Default::default()
    };
    let asked = PutRequest {
        key: "b".into(),
        value: "2".into(),
        prev_kv: true,
        ..Default::default()
    };
    let kept = PutRequest {
        key: "a".into(),
        ignore_value: true,
        ..Default::default()
    };
    for req in [&plain, &asked, &kept] {
        let (f, l) = (
            apply_put(&mut full, req).unwrap(),
            apply_put(&mut lean, req).unwrap(),
        );
        assert_eq!(f.response, l.response, "{req:?}");
        assert_eq!(f.events[0].kv, l.events[0].kv, "{req:?}");
        assert!(f.events[0].prev_kv.is_some());
        assert_eq!(l.events[0].prev_kv, None, "{req:?}");
    }
    assert_eq!(
        get(&lean, "a").unwrap().value,
        b"2",
        "ignore_value kept the value"
    );
    let all = DeleteRangeRequest {
        key: "a".into(),
        range_end: "c".into(),
        prev_kv: false,
    };
    let (f, l) = (
        apply_delete_range(&mut full, &all).unwrap(),
        apply_delete_range(&mut lean, &all).unwrap(),
    );
    assert_eq!(f.response, l.response);
    assert_eq!(l.events.len(), 2);
    assert!(l.events.iter().all(|e| e.prev_kv.is_none()));
    assert!(f.events.iter().all(|e| e.prev_kv.is_some()));
    assert_eq!(delete(&mut lean, "a", "c").deleted, 0);
}

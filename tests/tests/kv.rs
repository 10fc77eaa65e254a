//! KV API behaviour over gRPC: Range, Put, DeleteRange, Txn and Compact,
//! their revision rules and their errors, on 1-node and 3-node clusters.
//!
//! Every body runs against real etcd (`on_etcd_*` modules, the oracle) and
//! against cetera (`on_cetera_*` modules). Requests go to member 0, which in a
//! 3-node cluster may be the leader or a follower; the follower-specific
//! test picks followers explicitly.

use anyhow::{Result, ensure};
use cetera::proto::etcdserverpb::compare::{CompareResult, TargetUnion};
use cetera::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cetera::proto::etcdserverpb::response_op::Response;
use cetera::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, TxnResponse,
};
use tests::kv::{
    compare, current_revision, del_op, expect_status, get, get_op, get_value, keys, pairs,
    prefix_end, put, put_op, range, range_prefix, rev,
};
use tests::{Flavor, TestCluster, flavor_tests};
use tonic::Code;

flavor_tests!(sizes;
    fresh_store_is_at_revision_1_and_each_write_adds_one,
    put_then_get_tracks_version_and_revisions,
    range_honours_prefix_limit_sort_keys_only_and_count_only,
    reads_at_past_revisions_see_old_values,
    delete_reports_deleted_count_and_prev_kvs,
    txn_compares_pick_the_success_or_failure_branch,
    compaction_makes_old_revisions_unreadable,
    invalid_requests_fail_with_etcd_errors,
);

flavor_tests!(writes_and_linearizable_reads_work_through_followers);

async fn fresh_store_is_at_revision_1_and_each_write_adds_one(
    flavor: Flavor,
    nodes: usize,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;

    let everything = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let empty = range(&mut kv, everything).await?;
    assert_eq!(rev(&empty.header), 1, "fresh store revision");
    assert_eq!(empty.count, 0);

    assert_eq!(rev(&put(&mut kv, "a", "1").await?.header), 2);
    assert_eq!(rev(&put(&mut kv, "b", "1").await?.header), 3);
    // Rewriting the same value is still a write.
    assert_eq!(rev(&put(&mut kv, "b", "1").await?.header), 4);

    // Deleting nothing changes nothing.
    let noop = kv
        .delete_range(DeleteRangeRequest {
            key: b"missing".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(noop.deleted, 0);
    assert_eq!(
        rev(&noop.header),
        4,
        "no-op delete must not bump the revision"
    );
    assert_eq!(current_revision(&mut kv).await?, 4);

    let deleted = kv
        .delete_range(DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!((deleted.deleted, rev(&deleted.header)), (1, 5));

    // A txn with several writes is one revision; all its writes share it.
    let txn = kv
        .txn(TxnRequest {
            success: vec![put_op("c", "1"), put_op("d", "1"), del_op("b")],
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(txn.succeeded);
    assert_eq!(rev(&txn.header), 6);
    let c = get(&mut kv, "c").await?.expect("c exists");
    let d = get(&mut kv, "d").await?.expect("d exists");
    assert_eq!((c.mod_revision, d.mod_revision), (6, 6));
    assert_eq!(get(&mut kv, "b").await?, None);

    // Read-only and failed txns do not write.
    let read_only = kv
        .txn(TxnRequest {
            success: vec![get_op("c")],
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(rev(&read_only.header), 6);
    let failed = kv
        .txn(TxnRequest {
            compare: vec![compare(
                "c",
                CompareResult::Equal,
                TargetUnion::Value(b"other".to_vec()),
            )],
            success: vec![put_op("e", "1")],
            failure: vec![],
        })
        .await?
        .into_inner();
    assert!(!failed.succeeded);
    assert_eq!(rev(&failed.header), 6);
    assert_eq!(current_revision(&mut kv).await?, 6);
    Ok(())
}

async fn put_then_get_tracks_version_and_revisions(flavor: Flavor, nodes: usize) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;

    let first = put(&mut kv, "k", "v1").await?;
    let r1 = rev(&first.header);
    assert_eq!(first.prev_kv, None, "prev_kv only when asked for");
    let kv1 = get(&mut kv, "k").await?.expect("k exists");
    assert_eq!(kv1.key, b"k");
    assert_eq!(kv1.value, b"v1");
    assert_eq!(
        (
            kv1.create_revision,
            kv1.mod_revision,
            kv1.version,
            kv1.lease
        ),
        (r1, r1, 1, 0)
    );

    let second = kv
        .put(PutRequest {
            key: b"k".to_vec(),
            value: b"v2".to_vec(),
            prev_kv: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let r2 = rev(&second.header);
    assert_eq!(r2, r1 + 1);
    assert_eq!(second.prev_kv, Some(kv1.clone()), "prev_kv is the old kv");
    let kv2 = get(&mut kv, "k").await?.expect("k exists");
    assert_eq!(
        (kv2.create_revision, kv2.mod_revision, kv2.version),
        (r1, r2, 2)
    );
    assert_eq!(kv2.value, b"v2");

    // prev_kv of a new key is absent.
    let fresh = kv
        .put(PutRequest {
            key: b"new".to_vec(),
            value: b"x".to_vec(),
            prev_kv: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(fresh.prev_kv, None);

    // Delete then re-create: a new generation starts at version 1.
    kv.delete_range(DeleteRangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    })
    .await?;
    assert_eq!(get(&mut kv, "k").await?, None);
    let again = put(&mut kv, "k", "v3").await?;
    let kv3 = get(&mut kv, "k").await?.expect("k exists");
    let r3 = rev(&again.header);
    assert_eq!(
        (kv3.create_revision, kv3.mod_revision, kv3.version),
        (r3, r3, 1)
    );

    // Empty values are values.
    put(&mut kv, "empty", "").await?;
    let empty = get(&mut kv, "empty").await?.expect("empty exists");
    assert_eq!((empty.value.len(), empty.version), (0, 1));
    Ok(())
}

async fn range_honours_prefix_limit_sort_keys_only_and_count_only(
    flavor: Flavor,
    nodes: usize,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;

    // Written in an order that differs from key order; values sort in
    // reverse key order; p/c is updated twice so versions differ.
    for (key, value) in [
        ("p/c", "3"),
        ("p/a", "5"),
        ("p/e", "1"),
        ("p/b", "4"),
        ("p/d", "2"),
        ("o", "x"),
        ("p0", "y"),
    ] {
        put(&mut kv, key, value).await?;
    }
    put(&mut kv, "p/c", "3").await?;
    put(&mut kv, "p/c", "3").await?;

    let all = range_prefix(&mut kv, "p/", false).await?;
    assert_eq!(keys(&all.kvs), ["p/a", "p/b", "p/c", "p/d", "p/e"]);
    assert_eq!((all.count, all.more), (5, false));
    assert_eq!(
        pairs(&all.kvs)[0],
        ("p/a".to_string(), "5".to_string()),
        "values come back"
    );

    let prefix = |limit, sort_target: SortTarget, sort_order: SortOrder| RangeRequest {
        key: b"p/".to_vec(),
        range_end: prefix_end(b"p/"),
        limit,
        sort_target: sort_target as i32,
        sort_order: sort_order as i32,
        ..Default::default()
    };

    let limited = range(&mut kv, prefix(2, SortTarget::Key, SortOrder::None)).await?;
    assert_eq!(keys(&limited.kvs), ["p/a", "p/b"]);
    assert_eq!((limited.count, limited.more), (5, true));
    let exact = range(&mut kv, prefix(5, SortTarget::Key, SortOrder::None)).await?;
    assert_eq!((exact.kvs.len(), exact.more), (5, false));

    let desc = range(&mut kv, prefix(0, SortTarget::Key, SortOrder::Descend)).await?;
    assert_eq!(keys(&desc.kvs), ["p/e", "p/d", "p/c", "p/b", "p/a"]);
    let by_value = range(&mut kv, prefix(0, SortTarget::Value, SortOrder::Ascend)).await?;
    assert_eq!(keys(&by_value.kvs), ["p/e", "p/d", "p/c", "p/b", "p/a"]);
    // The limit applies after sorting.
    let top_values = range(&mut kv, prefix(2, SortTarget::Value, SortOrder::Descend)).await?;
    assert_eq!(keys(&top_values.kvs), ["p/a", "p/b"]);
    assert_eq!((top_values.count, top_values.more), (5, true));
    let by_create = range(&mut kv, prefix(0, SortTarget::Create, SortOrder::Ascend)).await?;
    assert_eq!(keys(&by_create.kvs), ["p/c", "p/a", "p/e", "p/b", "p/d"]);
    let by_mod = range(&mut kv, prefix(0, SortTarget::Mod, SortOrder::Descend)).await?;
    assert_eq!(keys(&by_mod.kvs), ["p/c", "p/d", "p/b", "p/e", "p/a"]);
    let by_version = range(&mut kv, prefix(1, SortTarget::Version, SortOrder::Descend)).await?;
    assert_eq!(keys(&by_version.kvs), ["p/c"]);
    assert_eq!(by_version.kvs[0].version, 3);

    // An explicit [start, end) interval, and "from key" with range_end "\0".
    let interval = range(
        &mut kv,
        RangeRequest {
            key: b"p/b".to_vec(),
            range_end: b"p/d".to_vec(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(keys(&interval.kvs), ["p/b", "p/c"]);
    let from_key = range(
        &mut kv,
        RangeRequest {
            key: b"p/d".to_vec(),
            range_end: vec![0],
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(keys(&from_key.kvs), ["p/d", "p/e", "p0"]);

    let keys_only = range(
        &mut kv,
        RangeRequest {
            keys_only: true,
            ..prefix(0, SortTarget::Key, SortOrder::None)
        },
    )
    .await?;
    assert_eq!(keys(&keys_only.kvs), ["p/a", "p/b", "p/c", "p/d", "p/e"]);
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(keys_only.kvs[2].version, 3, "keys_only keeps metadata");

    let count_only = range(
        &mut kv,
        RangeRequest {
            count_only: true,
            ..prefix(0, SortTarget::Key, SortOrder::None)
        },
    )
    .await?;
    assert!(count_only.kvs.is_empty());
    assert_eq!(count_only.count, 5);

    // Serializable reads answer the same once the member has applied.
    let serial = range_prefix(&mut kv, "p/", true).await?;
    assert_eq!(keys(&serial.kvs).len(), 5);
    Ok(())
}

async fn reads_at_past_revisions_see_old_values(flavor: Flavor, nodes: usize) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;

    let r1 = rev(&put(&mut kv, "k", "v1").await?.header);
    let r2 = rev(&put(&mut kv, "k", "v2").await?.header);
    let r3 = rev(&kv
        .delete_range(DeleteRangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .header);
    let r4 = rev(&put(&mut kv, "other", "x").await?.header);

    let at = |revision| RangeRequest {
        key: b"k".to_vec(),
        revision,
        ..Default::default()
    };
    let before = range(&mut kv, at(r1 - 1)).await?;
    assert!(before.kvs.is_empty(), "k did not exist before r1");
    let v1 = range(&mut kv, at(r1)).await?;
    assert_eq!(pairs(&v1.kvs), [("k".to_string(), "v1".to_string())]);
    assert_eq!(
        rev(&v1.header),
        r4,
        "header carries the current revision, not the requested one"
    );
    let v2 = range(&mut kv, at(r2)).await?;
    assert_eq!(v2.kvs[0].value, b"v2");
    assert_eq!(v2.kvs[0].version, 2);
    assert!(range(&mut kv, at(r3)).await?.kvs.is_empty());
    assert!(range(&mut kv, at(r4)).await?.kvs.is_empty());

    expect_status(
        kv.range(at(r4 + 10)).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    )?;
    Ok(())
}

async fn delete_reports_deleted_count_and_prev_kvs(flavor: Flavor, nodes: usize) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;
    for key in ["d/1", "d/2", "d/3", "d/4", "e"] {
        put(&mut kv, key, &format!("value of {key}")).await?;
    }

    let one = kv
        .delete_range(DeleteRangeRequest {
            key: b"d/1".to_vec(),
            prev_kv: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(one.deleted, 1);
    assert_eq!(
        pairs(&one.prev_kvs),
        [("d/1".to_string(), "value of d/1".to_string())]
    );

    let without_prev = kv
        .delete_range(DeleteRangeRequest {
            key: b"d/2".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(without_prev.deleted, 1);
    assert!(without_prev.prev_kvs.is_empty());

    let rest = kv
        .delete_range(DeleteRangeRequest {
            key: b"d/".to_vec(),
            range_end: prefix_end(b"d/"),
            prev_kv: true,
        })
        .await?
        .into_inner();
    assert_eq!(rest.deleted, 2);
    assert_eq!(keys(&rest.prev_kvs), ["d/3", "d/4"]);
    let revision = rev(&rest.header);

    let nothing = kv
        .delete_range(DeleteRangeRequest {
            key: b"d/".to_vec(),
            range_end: prefix_end(b"d/"),
            prev_kv: true,
        })
        .await?
        .into_inner();
    assert_eq!((nothing.deleted, nothing.prev_kvs.len()), (0, 0));
    assert_eq!(rev(&nothing.header), revision);

    assert!(range_prefix(&mut kv, "d/", false).await?.kvs.is_empty());
    assert_eq!(
        get_value(&mut kv, "e").await?.as_deref(),
        Some("value of e")
    );
    Ok(())
}

async fn txn_compares_pick_the_success_or_failure_branch(
    flavor: Flavor,
    nodes: usize,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;
    let created = rev(&put(&mut kv, "k", "v1").await?.header);
    let modified = rev(&put(&mut kv, "k", "v2").await?.header);

    async fn check(
        kv: &mut tests::kv::Kv,
        cmp: cetera::proto::etcdserverpb::Compare,
        expected: bool,
    ) -> Result<TxnResponse> {
        let what = format!("{cmp:?}");
        let resp = kv
            .txn(TxnRequest {
                compare: vec![cmp],
                success: vec![get_op("k")],
                failure: vec![get_op("nothing"), get_op("nothing")],
            })
            .await?
            .into_inner();
        ensure!(
            resp.succeeded == expected,
            "compare {what}: expected succeeded={expected}"
        );
        let branch_len = if expected { 1 } else { 2 };
        ensure!(
            resp.responses.len() == branch_len,
            "compare {what}: ran the wrong branch: {:?}",
            resp.responses
        );
        Ok(resp)
    }
    use CompareResult::{Equal, Greater, Less, NotEqual};
    use TargetUnion::{CreateRevision, ModRevision, Value, Version};

    check(&mut kv, compare("k", Equal, Value(b"v2".to_vec())), true).await?;
    check(&mut kv, compare("k", Equal, Value(b"v1".to_vec())), false).await?;
    check(&mut kv, compare("k", NotEqual, Value(b"v1".to_vec())), true).await?;
    check(&mut kv, compare("k", Greater, Value(b"v1".to_vec())), true).await?;
    check(&mut kv, compare("k", Less, Value(b"v1".to_vec())), false).await?;
    check(&mut kv, compare("k", Equal, Version(2)), true).await?;
    check(&mut kv, compare("k", Greater, Version(2)), false).await?;
    check(&mut kv, compare("k", Less, Version(3)), true).await?;
    check(&mut kv, compare("k", Equal, CreateRevision(created)), true).await?;
    check(
        &mut kv,
        compare("k", NotEqual, CreateRevision(created)),
        false,
    )
    .await?;
    check(&mut kv, compare("k", Equal, ModRevision(modified)), true).await?;
    check(&mut kv, compare("k", Less, ModRevision(modified)), false).await?;
    check(&mut kv, compare("k", Greater, ModRevision(created)), true).await?;
    // A missing key has version 0 and create revision 0; value compares fail.
    check(&mut kv, compare("missing", Equal, Version(0)), true).await?;
    check(&mut kv, compare("missing", Equal, CreateRevision(0)), true).await?;
    check(&mut kv, compare("missing", Equal, Value(Vec::new())), false).await?;

    // The success branch's responses, in order, and its writes.
    let resp = kv
        .txn(TxnRequest {
            compare: vec![
                compare("k", Equal, Value(b"v2".to_vec())),
                compare("k", Equal, Version(2)),
            ],
            success: vec![put_op("k", "v3"), get_op("k"), del_op("gone")],
            failure: vec![put_op("failed", "yes")],
        })
        .await?
        .into_inner();
    assert!(resp.succeeded);
    let txn_rev = rev(&resp.header);
    assert_eq!(txn_rev, modified + 1);
    match &resp.responses[..] {
        [put_resp, get_resp, del_resp] => {
            let Some(Response::ResponsePut(p)) = &put_resp.response else {
                panic!("expected a put response, got {put_resp:?}");
            };
            assert_eq!(rev(&p.header), txn_rev);
            let Some(Response::ResponseRange(r)) = &get_resp.response else {
                panic!("expected a range response, got {get_resp:?}");
            };
            // Reads inside a txn see the txn's earlier writes.
            assert_eq!(pairs(&r.kvs), [("k".to_string(), "v3".to_string())]);
            assert_eq!(r.kvs[0].mod_revision, txn_rev);
            let Some(Response::ResponseDeleteRange(d)) = &del_resp.response else {
                panic!("expected a delete response, got {del_resp:?}");
            };
            assert_eq!(d.deleted, 0);
        }
        other => panic!("expected 3 responses, got {other:?}"),
    }
    assert_eq!(get(&mut kv, "failed").await?, None);

    // One false compare among several sends the txn to the failure branch.
    let resp = kv
        .txn(TxnRequest {
            compare: vec![
                compare("k", Equal, Value(b"v3".to_vec())),
                compare("k", Equal, Version(99)),
            ],
            success: vec![put_op("succeeded", "yes")],
            failure: vec![put_op("failed", "yes")],
        })
        .await?
        .into_inner();
    assert!(!resp.succeeded);
    assert_eq!(rev(&resp.header), txn_rev + 1);
    assert_eq!(get_value(&mut kv, "failed").await?.as_deref(), Some("yes"));
    assert_eq!(get(&mut kv, "succeeded").await?, None);
    Ok(())
}

async fn compaction_makes_old_revisions_unreadable(flavor: Flavor, nodes: usize) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;
    let mut revs = Vec::new();
    for i in 1..=5 {
        revs.push(rev(&put(&mut kv, "k", &format!("v{i}")).await?.header));
    }
    assert_eq!(revs, [2, 3, 4, 5, 6]);

    let compacted = kv
        .compact(CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await?
        .into_inner();
    assert_eq!(rev(&compacted.header), 6, "compaction is not a write");

    let at = |revision| RangeRequest {
        key: b"k".to_vec(),
        revision,
        ..Default::default()
    };
    const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
    const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";
    expect_status(kv.range(at(3)).await, Code::OutOfRange, COMPACTED)?;
    expect_status(kv.range(at(2)).await, Code::OutOfRange, COMPACTED)?;
    // The compaction revision itself stays readable, and so does the present.
    assert_eq!(range(&mut kv, at(4)).await?.kvs[0].value, b"v3");
    assert_eq!(range(&mut kv, at(0)).await?.kvs[0].value, b"v5");

    let again = |revision| CompactionRequest {
        revision,
        physical: false,
    };
    expect_status(kv.compact(again(4)).await, Code::OutOfRange, COMPACTED)?;
    expect_status(kv.compact(again(3)).await, Code::OutOfRange, COMPACTED)?;
    expect_status(kv.compact(again(100)).await, Code::OutOfRange, FUTURE)?;

    // Every member compacted.
    for i in 0..cluster.size() {
        let mut member = cluster.kv(i)?;
        expect_status(member.range(at(3)).await, Code::OutOfRange, COMPACTED)?;
    }
    Ok(())
}

async fn invalid_requests_fail_with_etcd_errors(flavor: Flavor, nodes: usize) -> Result<()> {
    let cluster = TestCluster::start(flavor, nodes).await?;
    let mut kv = cluster.kv(0)?;
    const NO_KEY: &str = "etcdserver: key is not provided";

    expect_status(
        kv.put(PutRequest {
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        NO_KEY,
    )?;
    expect_status(
        kv.range(RangeRequest::default()).await,
        Code::InvalidArgument,
        NO_KEY,
    )?;
    expect_status(
        kv.delete_range(DeleteRangeRequest::default()).await,
        Code::InvalidArgument,
        NO_KEY,
    )?;

    // etcd's default --max-request-bytes is 1.5 MiB.
    let big = vec![b'x'; 1_600 * 1024];
    expect_status(
        kv.put(PutRequest {
            key: b"big".to_vec(),
            value: big,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    )?;

    // etcd's default --max-txn-ops is 128.
    let ops = |n: usize| (0..n).map(|i| put_op(&format!("t/{i}"), "v")).collect();
    expect_status(
        kv.txn(TxnRequest {
            success: ops(129),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    )?;
    const DUPLICATE: &str = "etcdserver: duplicate key given in txn request";
    expect_status(
        kv.txn(TxnRequest {
            success: vec![put_op("dup", "1"), put_op("dup", "2")],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        DUPLICATE,
    )?;
    expect_status(
        kv.txn(TxnRequest {
            failure: vec![put_op("dup", "1"), del_op("dup")],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        DUPLICATE,
    )?;

    // Nothing above was written.
    assert_eq!(current_revision(&mut kv).await?, 1);

    // The limits are inclusive, and reading a key twice is not a duplicate.
    let max = kv
        .txn(TxnRequest {
            success: ops(128),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(max.succeeded);
    assert_eq!(rev(&max.header), 2);
    assert_eq!(range_prefix(&mut kv, "t/", false).await?.count, 128);
    let reads = kv
        .txn(TxnRequest {
            success: vec![get_op("t/1"), get_op("t/1"), put_op("t/2", "w")],
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(reads.responses.len(), 3);
    Ok(())
}

async fn writes_and_linearizable_reads_work_through_followers(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let followers = cluster.follower_indices().await?;
    assert_eq!(followers.len(), 2);
    let (f1, f2) = (followers[0], followers[1]);
    let mut via_f1 = cluster.kv(f1)?;
    let mut via_f2 = cluster.kv(f2)?;
    let mut via_leader = cluster.kv(leader)?;

    // A write through one follower is immediately visible to a
    // linearizable read through the other follower and the leader.
    let written = rev(&put(&mut via_f1, "f/one", "1").await?.header);
    for kv in [&mut via_f2, &mut via_leader] {
        let got = get(kv, "f/one").await?.expect("f/one visible");
        assert_eq!(
            (got.value.as_slice(), got.mod_revision),
            (&b"1"[..], written)
        );
    }

    // And the other way round, for puts, txns and deletes.
    put(&mut via_leader, "f/two", "2").await?;
    assert_eq!(get_value(&mut via_f1, "f/two").await?.as_deref(), Some("2"));
    let txn = via_f2
        .txn(TxnRequest {
            compare: vec![compare(
                "f/two",
                CompareResult::Equal,
                TargetUnion::Value(b"2".to_vec()),
            )],
            success: vec![put_op("f/three", "3")],
            failure: vec![],
        })
        .await?
        .into_inner();
    assert!(txn.succeeded);
    assert_eq!(
        get_value(&mut via_f1, "f/three").await?.as_deref(),
        Some("3")
    );
    let deleted = via_f1
        .delete_range(DeleteRangeRequest {
            key: b"f/one".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(deleted.deleted, 1);
    assert_eq!(get(&mut via_f2, "f/one").await?, None);

    // All members agree on the revision and contents.
    let mut seen = Vec::new();
    for i in 0..3 {
        let mut kv = cluster.kv(i)?;
        let resp = range_prefix(&mut kv, "f/", false).await?;
        seen.push((rev(&resp.header), pairs(&resp.kvs)));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
    assert_eq!(
        seen[0].1,
        [
            ("f/three".to_string(), "3".to_string()),
            ("f/two".to_string(), "2".to_string())
        ]
    );
    Ok(())
}

/// cetera batches writes that arrive together into shared log entries
/// (etcd logs one entry per write, so cetera only): a burst of concurrent
/// puts advances the Raft index by fewer entries than it has puts, and
/// every put still gets a revision of its own.
#[tokio::test]
async fn concurrent_writes_share_log_entries_but_not_revisions() -> Result<()> {
    let cluster = TestCluster::start(Flavor::Cetera, 3).await?;
    let leader = cluster.leader_index().await?;
    let mut kv = cluster.kv(leader)?;
    put(&mut kv, "warm", "up").await?;
    let index_before = cluster.status(leader).await?.raft_index;
    let revision_before = current_revision(&mut kv).await?;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..64 {
        let mut kv = kv.clone();
        writes.spawn(async move {
            kv.put(PutRequest {
                key: format!("burst/{i:02}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().header.map_or(0, |h| h.revision))
        });
    }
    let mut revisions = Vec::new();
    while let Some(written) = writes.join_next().await {
        revisions.push(written??);
    }
    revisions.sort_unstable();
    revisions.dedup();
    ensure!(revisions.len() == 64, "revisions shared: {revisions:?}");
    ensure!(*revisions.first().unwrap_or(&0) > revision_before);
    let entries = cluster.status(leader).await?.raft_index - index_before;
    ensure!(
        entries < 64,
        "64 concurrent puts took {entries} log entries: none were batched"
    );
    Ok(())
}

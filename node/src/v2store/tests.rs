//! The v2 rules against the in-memory tables, with the answers real etcd
//! 3.4 gives (captured with `--enable-v2`; indexes are relative to an
//! empty store here).

use std::sync::Arc;

use super::memory::MemoryTables;
use super::*;

const SECOND: i64 = 1_000_000_000;
/// 2026-11-22T00:00:00Z.
const T0: UnixNanos = 1_795_305_600 * SECOND;

fn write(tables: &mut MemoryTables, op: V2Op) -> Result<Event, V2Error> {
    write_at(tables, T0, op).reply.expect("a client operation")
}

fn write_at(tables: &mut MemoryTables, now: UnixNanos, op: V2Op) -> Applied {
    apply(tables, &V2Write { now, op }).expect("memory tables never fail")
}

fn set(path: &str, value: &str) -> V2Op {
    V2Op::for_put(PutRequest {
        path: path.into(),
        value: value.into(),
        ..Default::default()
    })
}

fn set_dir(path: &str) -> V2Op {
    V2Op::for_put(PutRequest {
        path: path.into(),
        dir: true,
        ..Default::default()
    })
}

fn read(tables: &MemoryTables, path: &str, recursive: bool) -> Result<Event, V2Error> {
    get(tables, path, recursive, T0).expect("memory tables never fail")
}

fn code(result: Result<Event, V2Error>) -> (u32, String, u64) {
    let e = result.expect_err("an error");
    (e.code.number(), e.cause, e.index)
}

fn keys(view: &NodeView) -> Vec<String> {
    view.nodes.iter().flatten().map(|n| n.key.clone()).collect()
}

#[test]
fn set_creates_then_replaces_with_a_new_created_index() {
    let mut t = MemoryTables::default();
    let first = write(&mut t, set("/nosql/foo", "bar")).unwrap();
    assert_eq!(first.action, Action::Set);
    assert!(first.is_created());
    assert_eq!(
        (first.node.modified_index, first.node.created_index),
        (1, 1)
    );
    assert_eq!(first.node.value.as_deref(), Some("bar"));
    let second = write(&mut t, set("nosql//foo/", "baz")).unwrap();
    assert!(!second.is_created());
    assert_eq!(second.node.key, "/nosql/foo");
    assert_eq!(second.node.created_index, 2);
    assert_eq!(second.prev_node.unwrap().value.as_deref(), Some("bar"));
    let dir = read(&t, "/nosql", false).unwrap();
    assert!(dir.node.dir);
    // The parent was created with the first write's index.
    assert_eq!(dir.node.created_index, 1);
    assert_eq!(keys(&dir.node), ["/nosql/foo"]);
    assert_eq!(dir.etcd_index, 2);
    let root = read(&t, "/", false).unwrap();
    assert_eq!(root.node.key, "/");
    assert_eq!(root.node.modified_index, 0);
    assert_eq!(root.node.nodes.as_ref().unwrap()[0].nodes, None);
}

#[test]
fn directories_and_files_do_not_replace_each_other_freely() {
    let mut t = MemoryTables::default();
    write(&mut t, set_dir("/dir1")).unwrap();
    assert_eq!(
        code(write(&mut t, set_dir("/dir1"))),
        (102, "/dir1".into(), 1)
    );
    assert_eq!(
        code(write(&mut t, set("/dir1", "x"))),
        (102, "/dir1".into(), 1)
    );
    write(&mut t, set("/dir1/a", "1")).unwrap();
    // A directory may replace a file.
    let replaced = write(&mut t, set_dir("/dir1/a")).unwrap();
    assert!(replaced.node.dir && replaced.node.value.is_none());
    assert_eq!(replaced.prev_node.unwrap().value.as_deref(), Some("1"));
    write(&mut t, set("/dir1/a/b", "1")).unwrap();
    let delete = |dir, recursive| V2Op::for_delete("/dir1".into(), dir, recursive, "".into(), 0);
    assert_eq!(
        code(write(&mut t, delete(false, false))),
        (102, "/dir1".into(), 4)
    );
    assert_eq!(
        code(write(&mut t, delete(true, false))),
        (108, "/dir1".into(), 4)
    );
    let applied = write_at(&mut t, T0, delete(false, true));
    let gone = applied.reply.unwrap().unwrap();
    assert_eq!(gone.action, Action::Delete);
    assert_eq!(
        (
            gone.node.dir,
            gone.node.modified_index,
            gone.node.created_index
        ),
        (true, 5, 1)
    );
    assert_eq!(gone.prev_node.unwrap().nodes, None);
    assert_eq!(
        applied.notifications[0].removed,
        ["/dir1/a/b", "/dir1/a", "/dir1"]
    );
    assert_eq!(code(read(&t, "/dir1/a", false)), (100, "/dir1".into(), 5));
}

#[test]
fn a_file_on_the_way_is_not_a_directory() {
    let mut t = MemoryTables::default();
    write(&mut t, set("/h/vis", "2")).unwrap();
    assert_eq!(
        code(read(&t, "/h/vis/deeper", false)),
        (104, "/h/vis".into(), 1)
    );
    assert_eq!(code(read(&t, "/a/b/c", false)), (100, "/a".into(), 1));
    let applied = write_at(&mut t, T0, set("/h/vis/deeper", "1"));
    assert_eq!(code(applied.reply.unwrap()), (104, "/h/vis".into(), 1));
    // etcd counts the failed walk as a failed set on top of the create's
    // own failure.
    let created = write_at(
        &mut t,
        T0,
        V2Op::for_post("/h/vis/q".into(), false, "x".into(), None),
    );
    assert_eq!(created.counted, [Counter::SetFail, Counter::CreateFail]);
}

#[test]
fn the_root_is_read_only() {
    let mut t = MemoryTables::default();
    let delete = V2Op::for_delete("/".into(), false, true, "".into(), 0);
    assert_eq!(code(write(&mut t, delete)), (107, "/".into(), 0));
    assert_eq!(code(write(&mut t, set("/", "1"))), (107, "/".into(), 0));
    // A compare-and-delete of the root finds a directory; etcd's cause is
    // the root's (empty) key.
    let cad = V2Op::for_delete("/".into(), false, false, "3".into(), 0);
    assert_eq!(code(write(&mut t, cad)), (102, "".into(), 0));
    // POST at the root creates an in-order key there.
    let posted = write(&mut t, V2Op::for_post("/".into(), false, "j".into(), None)).unwrap();
    assert_eq!(posted.node.key, "/00000000000000000001");
}

#[test]
fn compare_and_swap_reports_what_differed() {
    let mut t = MemoryTables::default();
    write(&mut t, set("/k", "one")).unwrap();
    let cas = |prev_value: &str, prev_index| {
        V2Op::for_put(PutRequest {
            path: "/k".into(),
            value: "three".into(),
            prev_value: prev_value.into(),
            prev_index,
            ..Default::default()
        })
    };
    assert_eq!(
        code(write(&mut t, cas("two", 0))),
        (101, "[two != one]".into(), 1)
    );
    assert_eq!(code(write(&mut t, cas("", 7))), (101, "[7 != 1]".into(), 1));
    assert_eq!(
        code(write(&mut t, cas("two", 7))),
        (101, "[two != one] [7 != 1]".into(), 1)
    );
    let swapped = write(&mut t, cas("one", 1)).unwrap();
    assert_eq!(swapped.action, Action::CompareAndSwap);
    assert_eq!(
        (swapped.node.modified_index, swapped.node.created_index),
        (2, 1)
    );
    write(&mut t, set_dir("/d")).unwrap();
    let on_dir = V2Op::CompareAndSwap {
        path: "/d".into(),
        prev_value: "x".into(),
        prev_index: 0,
        value: "y".into(),
        ttl: None,
        refresh: false,
    };
    assert_eq!(code(write(&mut t, on_dir)), (102, "/d".into(), 3));
    let cad = V2Op::for_delete("/k".into(), false, false, "three".into(), 0);
    let deleted = write(&mut t, cad).unwrap();
    assert_eq!(deleted.action, Action::CompareAndDelete);
    assert_eq!(deleted.node.value, None);
}

#[test]
fn prev_exist_makes_create_and_update() {
    let mut t = MemoryTables::default();
    let put = |prev_exist, value: &str| {
        V2Op::for_put(PutRequest {
            path: "/t".into(),
            value: value.into(),
            prev_exist: Some(prev_exist),
            ..Default::default()
        })
    };
    assert_eq!(code(write(&mut t, put(true, "2"))), (100, "/t".into(), 0));
    let created = write(&mut t, put(false, "2")).unwrap();
    assert_eq!(created.action, Action::Create);
    assert!(created.is_created());
    assert_eq!(code(write(&mut t, put(false, "2"))), (105, "/t".into(), 1));
    let updated = write(&mut t, put(true, "3")).unwrap();
    assert_eq!(updated.action, Action::Update);
    assert_eq!(
        (updated.node.modified_index, updated.node.created_index),
        (2, 1)
    );
    // An update of a directory changes its TTL only, never its value.
    write(&mut t, set_dir("/d")).unwrap();
    let update_dir = |value: &str| V2Op::Update {
        path: "/d".into(),
        value: value.into(),
        ttl: Some(10),
        refresh: false,
    };
    assert_eq!(code(write(&mut t, update_dir("x"))), (102, "/d".into(), 3));
    let dir = write(&mut t, update_dir("")).unwrap();
    assert!(dir.node.dir);
    assert_eq!((dir.node.modified_index, dir.node.ttl), (4, 10));
    assert_eq!(read(&t, "/d", false).unwrap().node.modified_index, 3);
}

#[test]
fn hidden_nodes_are_left_out_of_listings_only() {
    let mut t = MemoryTables::default();
    write(&mut t, set("/h/_hid", "1")).unwrap();
    write(&mut t, set("/h/vis", "2")).unwrap();
    write(&mut t, set("/h/sub/_x", "3")).unwrap();
    let listed = read(&t, "/h", true).unwrap();
    assert_eq!(keys(&listed.node), ["/h/sub", "/h/vis"]);
    assert_eq!(listed.node.nodes.unwrap()[0].nodes, Some(Vec::new()));
    assert_eq!(
        read(&t, "/h/_hid", false).unwrap().node.value.as_deref(),
        Some("1")
    );
}

#[test]
fn ttls_expire_through_the_sweep_only() {
    let mut t = MemoryTables::default();
    let with_ttl = |path: &str, ttl| {
        V2Op::for_put(PutRequest {
            path: path.into(),
            value: "v".into(),
            ttl: Some(ttl),
            ..Default::default()
        })
    };
    let set = write(&mut t, with_ttl("/t1", 5)).unwrap();
    assert_eq!(set.node.ttl, 5);
    assert_eq!(set.node.expiration, Some(T0 + 5 * SECOND));
    write(&mut t, with_ttl("/t2", 100)).unwrap();
    // Shown TTLs round up, from the reader's clock.
    let later = get(&t, "/t1", false, T0 + 1_500_000_000).unwrap().unwrap();
    assert_eq!(later.node.ttl, 4);
    // Nothing expires before the sweep runs, nor before its time.
    let early = write_at(&mut t, T0 + 4 * SECOND, V2Op::ExpireKeys);
    assert!(early.notifications.is_empty() && early.reply.is_none());
    let swept = write_at(&mut t, T0 + 5 * SECOND, V2Op::ExpireKeys);
    assert_eq!(swept.counted, [Counter::ExpireCount]);
    let expired = &swept.notifications[0].event;
    assert_eq!(expired.action, Action::Expire);
    assert_eq!(
        (expired.node.modified_index, expired.node.created_index),
        (3, 1)
    );
    let prev = expired.prev_node.as_ref().unwrap();
    assert_eq!((prev.ttl, prev.expiration), (0, Some(T0 + 5 * SECOND)));
    assert_eq!(code(read(&t, "/t1", false)), (100, "/t1".into(), 3));
    // A directory's TTL takes its subtree with it, in one event.
    write(
        &mut t,
        V2Op::Set {
            path: "/d".into(),
            dir: true,
            value: String::new(),
            ttl: Some(1),
            refresh: false,
        },
    )
    .unwrap();
    write(&mut t, with_ttl("/d/inner", 1)).unwrap();
    let swept = write_at(&mut t, T0 + 200 * SECOND, V2Op::ExpireKeys);
    let expired: Vec<&str> = swept
        .notifications
        .iter()
        .map(|n| n.event.node.key.as_str())
        .collect();
    assert_eq!(expired, ["/d", "/t2"]);
    assert_eq!(swept.notifications[0].removed, ["/d/inner", "/d"]);
    assert_eq!(t.current_index().unwrap(), 7);
}

#[test]
fn refresh_renews_the_ttl_silently() {
    let mut t = MemoryTables::default();
    write(&mut t, set("/r", "keep")).unwrap();
    let refresh = |prev_exist| {
        V2Op::for_put(PutRequest {
            path: "/r".into(),
            ttl: Some(5),
            refresh: true,
            prev_exist,
            ..Default::default()
        })
    };
    let applied = write_at(&mut t, T0, refresh(None));
    let event = applied.reply.unwrap().unwrap();
    assert!(event.refresh && applied.notifications.is_empty());
    // A refresh through set makes a new node, as in etcd.
    assert_eq!(
        (event.node.value.as_deref(), event.node.created_index),
        (Some("keep"), 2)
    );
    let update = write(&mut t, refresh(Some(true))).unwrap();
    assert_eq!(update.action, Action::Update);
    assert_eq!(update.node.created_index, 2);
    // Refreshes never answer a wait from the history.
    let start = begin_watch(&t, "/r", false, 2).unwrap().unwrap();
    assert_eq!(start.found, None);
    let missing = V2Op::for_put(PutRequest {
        path: "/nope".into(),
        ttl: Some(5),
        refresh: true,
        ..Default::default()
    });
    assert_eq!(code(write(&mut t, missing)), (100, "/nope".into(), 3));
}

#[test]
fn expiry_arithmetic_matches_go() {
    assert_eq!(expiry(T0, None), None);
    assert_eq!(expiry(T0, Some(0)), Some(T0));
    assert_eq!(expiry(T0, Some(u64::MAX)), Some(T0 - SECOND));
    // Wrapping far into the past means permanent.
    assert_eq!(expiry(T0, Some(10_000_000_000)), None);
    assert_eq!(ttl_at(T0 + SECOND, T0), 1);
    assert_eq!(ttl_at(T0 + SECOND + 1, T0), 2);
    assert_eq!(ttl_at(T0 - 300_000_000, T0), 0);
    assert_eq!(ttl_at(T0 - 1_300_000_000, T0), -1);
}

#[test]
fn waits_are_answered_from_the_history() {
    let mut t = MemoryTables::default();
    write(&mut t, set("/w", "1")).unwrap();
    write(&mut t, set("/dir/x", "1")).unwrap();
    write(&mut t, set("/w", "2")).unwrap();
    let start = begin_watch(&t, "/w", false, 1).unwrap().unwrap();
    assert_eq!((start.start_index, start.since), (3, 1));
    let found = start.found.unwrap();
    assert_eq!((found.index(), found.etcd_index), (1, 3));
    assert_eq!(
        begin_watch(&t, "/w", false, 2)
            .unwrap()
            .unwrap()
            .found
            .unwrap()
            .index(),
        3
    );
    assert_eq!(
        begin_watch(&t, "/dir", false, 1).unwrap().unwrap().found,
        None
    );
    assert_eq!(
        begin_watch(&t, "/dir", true, 1)
            .unwrap()
            .unwrap()
            .found
            .unwrap()
            .index(),
        2
    );
    // The deletion of a directory answers waits on paths under it.
    write(
        &mut t,
        V2Op::for_delete("/dir".into(), true, true, "".into(), 0),
    )
    .unwrap();
    let under = begin_watch(&t, "/dir/x/y", false, 4).unwrap().unwrap();
    assert_eq!(under.found.unwrap().action, Action::Delete);
    let next = begin_watch(&t, "/w", false, 0).unwrap().unwrap();
    assert_eq!((next.since, next.found), (5, None));

    for i in 0..HISTORY_CAPACITY {
        write(&mut t, set("/bulk", &i.to_string())).unwrap();
    }
    let cleared = begin_watch(&t, "/w", false, 4).unwrap().unwrap_err();
    assert_eq!(cleared.code, ErrorCode::EventIndexCleared);
    assert_eq!(
        cleared.cause,
        "the requested history has been cleared [5/4]"
    );
    assert_eq!(cleared.index, 1004);
}

fn notification(t: &mut MemoryTables, op: V2Op) -> Notification {
    write_at(t, T0, op).notifications.remove(0)
}

fn try_next(watch: &mut Watch) -> Option<WatchSignal> {
    use futures::FutureExt;
    watch.next().now_or_never().flatten()
}

fn live_watch(hub: &Arc<WatcherHub>, t: &MemoryTables, key: &str, recursive: bool) -> Watch {
    let registration = hub.register(&clean(key), recursive, 0);
    Watch::new(
        begin_watch(t, key, recursive, 0).unwrap().unwrap(),
        registration,
    )
}

#[test]
fn live_waiters_hear_of_their_paths() {
    let mut t = MemoryTables::default();
    let hub = WatcherHub::new();
    let mut exact = live_watch(&hub, &t, "/a", false);
    let mut recursive = live_watch(&hub, &t, "/", true);
    let mut child = live_watch(&hub, &t, "/a/b/c", false);
    let mut missing = live_watch(&hub, &t, "/a/b/zz", false);
    assert_eq!(hub.count(), 4);

    let n = notification(&mut t, set("/a/b/c", "1"));
    hub.notify(&n);
    assert_eq!(try_next(&mut exact), None, "not below a non-recursive wait");
    assert_eq!(
        try_next(&mut recursive),
        Some(WatchSignal::Event(n.event.clone()))
    );
    assert_eq!(
        try_next(&mut child),
        Some(WatchSignal::Event(n.event.clone()))
    );
    // Hidden changes are not reported below the watched path.
    hub.notify(&notification(&mut t, set("/_h", "1")));
    assert_eq!(try_next(&mut recursive), None);
    // Deleting a directory reaches waiters on the nodes it removed.
    let n = notification(
        &mut t,
        V2Op::for_delete("/a".into(), true, true, "".into(), 0),
    );
    hub.notify(&n);
    assert_eq!(
        try_next(&mut child),
        Some(WatchSignal::Event(n.event.clone()))
    );
    assert_eq!(
        try_next(&mut exact),
        Some(WatchSignal::Event(n.event.clone()))
    );
    assert_eq!(try_next(&mut missing), None, "never existed, as in etcd");
    drop((exact, recursive, child));
    assert_eq!(hub.count(), 1);
    hub.clear();
    assert_eq!(try_next(&mut missing), Some(WatchSignal::Cleared));
    assert_eq!(hub.count(), 0);
}

#[test]
fn a_wait_ignores_events_its_start_already_saw() {
    let mut t = MemoryTables::default();
    let hub = WatcherHub::new();
    // Registered first, then an event commits, then the start is read.
    let registration = hub.register("/k", false, 0);
    let early = notification(&mut t, set("/k", "1"));
    hub.notify(&early);
    let start = begin_watch(&t, "/k", false, 0).unwrap().unwrap();
    let mut watch = Watch::new(start, registration);
    assert_eq!(watch.start_index(), 1);
    assert_eq!(try_next(&mut watch), None);
    let late = notification(&mut t, set("/k", "2"));
    hub.notify(&late);
    assert_eq!(try_next(&mut watch), Some(WatchSignal::Event(late.event)));
}

#[test]
fn a_waiter_that_falls_behind_is_dropped() {
    let mut t = MemoryTables::default();
    let hub = WatcherHub::new();
    let mut watch = live_watch(&hub, &t, "/", true);
    for i in 0..=100 {
        hub.notify(&notification(&mut t, set("/k", &i.to_string())));
    }
    assert_eq!(hub.count(), 0);
    let mut delivered = 0;
    while let Some(WatchSignal::Event(_)) = try_next(&mut watch) {
        delivered += 1;
    }
    assert_eq!(delivered, 100);
}

#[test]
fn counters_follow_etcds_store() {
    let mut t = MemoryTables::default();
    let counted = |t: &mut MemoryTables, op| write_at(t, T0, op).counted;
    assert_eq!(counted(&mut t, set("/f", "1")), [Counter::SetSuccess]);
    assert_eq!(counted(&mut t, set("/f/x", "1")), [Counter::SetFail]);
    // etcd counts some refusals as successes: a compare-and-delete whose
    // compare fails, an update of a directory's value, anything at the
    // read-only root.
    let cad = V2Op::for_delete("/f".into(), false, false, "nope".into(), 0);
    assert_eq!(counted(&mut t, cad), [Counter::CompareAndDeleteSuccess]);
    let cad_missing = V2Op::for_delete("/g".into(), false, false, "nope".into(), 0);
    assert_eq!(
        counted(&mut t, cad_missing),
        [Counter::CompareAndDeleteFail]
    );
    let root = V2Op::for_delete("/".into(), true, true, "".into(), 0);
    assert_eq!(counted(&mut t, root), [Counter::DeleteSuccess]);
    let missing = V2Op::for_delete("/g".into(), false, false, "".into(), 0);
    assert_eq!(counted(&mut t, missing), [Counter::DeleteFail]);
    write(&mut t, set_dir("/d")).unwrap();
    let update_dir = V2Op::Update {
        path: "/d".into(),
        value: "x".into(),
        ttl: None,
        refresh: false,
    };
    assert_eq!(counted(&mut t, update_dir), [Counter::UpdateSuccess]);
    let cas = V2Op::for_put(PutRequest {
        path: "/f".into(),
        value: "2".into(),
        prev_value: "nope".into(),
        ..Default::default()
    });
    assert_eq!(counted(&mut t, cas), [Counter::CompareAndSwapFail]);
}

//! Store semantics: indexes, create/set/update/delete, listings, waits,
//! history, expiry and limits.

use std::sync::atomic::AtomicI64;

use super::*;

const T0: i64 = 1_700_000_000_000;
const TTL: Duration = Duration::from_secs(60);

struct Fixture {
    store: Store,
    clock: Arc<AtomicI64>,
    metrics: Arc<Metrics>,
}

async fn fixture_with(options: Options) -> Fixture {
    let conn = tokio_rusqlite::Connection::open_in_memory().await.unwrap();
    let (clock, handle) = Clock::manual(T0);
    let metrics = Arc::new(Metrics::default());
    let store = Store::with_connection(conn, options, metrics.clone(), clock)
        .await
        .unwrap();
    Fixture {
        store,
        clock: handle,
        metrics,
    }
}

fn options() -> Options {
    Options {
        token_ttl: TTL,
        max_size: 9,
        max_tokens: 100,
        max_waiters: 2,
    }
}

async fn fixture() -> Fixture {
    fixture_with(options()).await
}

fn member(name: &str) -> Key {
    Key::Member(MemberName::parse(name).unwrap())
}

impl Fixture {
    fn advance(&self, by: Duration) {
        self.clock
            .fetch_add(i64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }

    async fn create(&self, token: &str, name: &str, value: &str) -> Outcome {
        self.store
            .set(token, member(name), value.into(), Some(false))
            .await
            .unwrap()
    }

    async fn names(&self, token: &str, order: Order) -> Vec<String> {
        let listing = self.store.get(token, Key::Dir, order).await.unwrap();
        listing
            .event
            .node
            .nodes
            .iter()
            .map(|n| n.key.rsplit('/').next().unwrap().to_string())
            .collect()
    }
}

#[tokio::test]
async fn new_token_has_size_at_index_one() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    assert_eq!(token.len(), 32);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(token, f.store.create_token(3).await.unwrap());

    let size = f
        .store
        .get(&token, Key::Size, Order::Created)
        .await
        .unwrap();
    assert_eq!(size.index, 1);
    assert_eq!(size.event.action, Action::Get);
    assert_eq!(size.event.node.key, format!("/{token}/_config/size"));
    assert_eq!(size.event.node.value.as_deref(), Some("3"));
    assert_eq!(
        (
            size.event.node.created_index,
            size.event.node.modified_index
        ),
        (1, 1)
    );

    // The directory hides _config and has no children yet.
    let dir = f.store.get(&token, Key::Dir, Order::Created).await.unwrap();
    assert!(dir.event.node.dir);
    assert_eq!(dir.event.node.key, format!("/{token}"));
    assert!(dir.event.node.nodes.is_empty());
    assert_eq!(dir.index, 1);
}

#[tokio::test]
async fn size_must_be_in_range() {
    let f = fixture().await;
    for size in [0, 10] {
        assert!(matches!(
            f.store.create_token(size).await,
            Err(StoreError::BadSize { max: 9, .. })
        ));
    }
    assert!(f.store.create_token(9).await.is_ok());
    assert!(f.store.create_token(1).await.is_ok());
}

#[tokio::test]
async fn create_then_duplicate_is_refused_with_the_current_index() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    let first = f.create(&token, "a1", "n1=http://1").await;
    assert_eq!(first.event.action, Action::Create);
    assert!(first.created);
    assert_eq!(first.index, 2);
    assert_eq!(
        (
            first.event.node.created_index,
            first.event.node.modified_index
        ),
        (2, 2)
    );
    assert!(first.event.prev_node.is_none());

    let err = f
        .store
        .set(&token, member("a1"), "other".into(), Some(false))
        .await
        .unwrap_err();
    match err {
        StoreError::AlreadyExists { key, index } => {
            assert_eq!(key, format!("/{token}/a1"));
            assert_eq!(index, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The failed create changed nothing.
    let got = f
        .store
        .get(&token, member("a1"), Order::Created)
        .await
        .unwrap();
    assert_eq!(got.event.node.value.as_deref(), Some("n1=http://1"));
    assert_eq!(got.index, 2);
}

#[tokio::test]
async fn set_replaces_with_a_new_created_index_and_update_keeps_it() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    let set = f
        .store
        .set(&token, member("m"), "v1".into(), None)
        .await
        .unwrap();
    assert_eq!(set.event.action, Action::Set);
    assert!(set.created);

    let replaced = f
        .store
        .set(&token, member("m"), "v2".into(), None)
        .await
        .unwrap();
    assert!(!replaced.created);
    assert_eq!(replaced.event.node.created_index, 3);
    assert_eq!(
        replaced.event.prev_node.as_ref().unwrap().value.as_deref(),
        Some("v1")
    );

    let updated = f
        .store
        .set(&token, member("m"), "v3".into(), Some(true))
        .await
        .unwrap();
    assert_eq!(updated.event.action, Action::Update);
    assert_eq!(
        (
            updated.event.node.created_index,
            updated.event.node.modified_index
        ),
        (3, 4)
    );

    assert!(matches!(
        f.store
            .set(&token, member("nope"), "x".into(), Some(true))
            .await,
        Err(StoreError::NotFound { index: 4, .. })
    ));
}

#[tokio::test]
async fn listing_is_in_registration_order_and_hides_underscore_keys() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    for name in ["c", "a", "b"] {
        f.create(&token, name, name).await;
    }
    assert_eq!(f.names(&token, Order::Created).await, ["c", "a", "b"]);
    assert_eq!(f.names(&token, Order::Key).await, ["a", "b", "c"]);
    // A replace moves the key to the end (new createdIndex).
    f.store
        .set(&token, member("c"), "c2".into(), None)
        .await
        .unwrap();
    assert_eq!(f.names(&token, Order::Created).await, ["a", "b", "c"]);
    let listing = f.store.get(&token, Key::Dir, Order::Created).await.unwrap();
    assert_eq!(listing.index, 5);
}

#[tokio::test]
async fn delete_records_the_previous_node() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    f.create(&token, "m", "v").await;
    let deleted = f.store.delete(&token, member("m")).await.unwrap();
    assert_eq!(deleted.event.action, Action::Delete);
    assert_eq!(deleted.event.node.value, None);
    assert_eq!(
        (
            deleted.event.node.created_index,
            deleted.event.node.modified_index
        ),
        (2, 3)
    );
    assert_eq!(deleted.event.prev_node.unwrap().value.as_deref(), Some("v"));
    assert!(matches!(
        f.store.delete(&token, member("m")).await,
        Err(StoreError::NotFound { index: 3, .. })
    ));
    assert!(f.names(&token, Order::Created).await.is_empty());
}

#[tokio::test]
async fn directory_and_size_are_not_writable() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    assert!(matches!(
        f.store
            .set(&token, Key::Dir, String::new(), Some(false))
            .await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        f.store.set(&token, Key::Dir, String::new(), None).await,
        Err(StoreError::NotAFile { .. })
    ));
    assert!(matches!(
        f.store.delete(&token, Key::Dir).await,
        Err(StoreError::NotAFile { .. })
    ));
    assert!(matches!(
        f.store.set(&token, Key::Size, "5".into(), None).await,
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(matches!(
        f.store.delete(&token, Key::Size).await,
        Err(StoreError::ReadOnly { .. })
    ));
}

#[tokio::test]
async fn unknown_tokens_are_not_found() {
    let f = fixture().await;
    for result in [
        f.store.get("nope", Key::Dir, Order::Created).await,
        f.store.get("nope", Key::Size, Order::Created).await,
        f.store
            .set("nope", member("m"), "v".into(), Some(false))
            .await,
        f.store.delete("nope", member("m")).await,
    ] {
        match result {
            Err(StoreError::NotFound { key, index: 0 }) => assert_eq!(key, "/nope"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(
        f.store.watch("nope", Key::Dir, true, None).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn wait_on_a_past_index_answers_from_history() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    f.create(&token, "a", "1").await;
    f.create(&token, "b", "2").await;
    // What etcd's client does to confirm its own registration.
    let Watch::Ready { index, event } = f
        .store
        .watch(&token, member("b"), false, Some(3))
        .await
        .unwrap()
    else {
        panic!("expected a ready event")
    };
    assert_eq!(index, 3);
    assert_eq!(event.action, Action::Create);
    assert_eq!(event.node.key, format!("/{token}/b"));
    assert_eq!(event.node.created_index, 3);

    // A recursive wait on the directory from index 1 skips _config/size.
    let Watch::Ready { event, .. } = f
        .store
        .watch(&token, Key::Dir, true, Some(1))
        .await
        .unwrap()
    else {
        panic!("expected a ready event")
    };
    assert_eq!(event.node.key, format!("/{token}/a"));
    // A wait on the size key itself sees it.
    let Watch::Ready { event, .. } = f
        .store
        .watch(&token, Key::Size, false, Some(1))
        .await
        .unwrap()
    else {
        panic!("expected a ready event")
    };
    assert_eq!(event.action, Action::Set);
}

#[tokio::test]
async fn recursive_wait_blocks_until_the_next_registration() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    f.create(&token, "a", "1").await;
    let listing = f.store.get(&token, Key::Dir, Order::Created).await.unwrap();
    let Watch::Pending(pending) = f
        .store
        .watch(&token, Key::Dir, true, Some(listing.index + 1))
        .await
        .unwrap()
    else {
        panic!("nothing should be ready yet")
    };
    assert_eq!(pending.index(), 2);
    assert_eq!(f.store.gauges().await.unwrap().waits, 1);
    let waiter = tokio::spawn(pending.wait(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(20)).await;
    f.create(&token, "b", "2").await;
    let event = waiter.await.unwrap().unwrap().expect("an event");
    assert_eq!(event.action, Action::Create);
    assert_eq!(event.node.key, format!("/{token}/b"));
    assert_eq!(event.node.modified_index, 3);
    assert_eq!(f.store.gauges().await.unwrap().waits, 0);
}

#[tokio::test]
async fn waits_without_index_start_after_the_current_one() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    f.create(&token, "a", "1").await;
    for wait_index in [None, Some(0)] {
        let Watch::Pending(pending) = f
            .store
            .watch(&token, Key::Dir, true, wait_index)
            .await
            .unwrap()
        else {
            panic!("the past must not count")
        };
        assert_eq!(pending.wait(Duration::from_millis(10)).await.unwrap(), None);
    }
}

#[tokio::test]
async fn single_key_wait_ignores_other_keys() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    let Watch::Pending(pending) = f
        .store
        .watch(&token, member("b"), false, None)
        .await
        .unwrap()
    else {
        panic!("nothing should be ready yet")
    };
    let waiter = tokio::spawn(pending.wait(Duration::from_secs(10)));
    f.create(&token, "a", "1").await;
    f.create(&token, "b", "2").await;
    let event = waiter.await.unwrap().unwrap().expect("an event");
    assert_eq!(event.node.key, format!("/{token}/b"));
}

#[tokio::test]
async fn too_many_waiters_are_refused_and_slots_come_back() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        match f.store.watch(&token, Key::Dir, true, None).await.unwrap() {
            Watch::Pending(p) => held.push(p),
            Watch::Ready { .. } => panic!("nothing should be ready"),
        }
    }
    assert!(matches!(
        f.store.watch(&token, Key::Dir, true, None).await,
        Err(StoreError::TooManyWaiters { max: 2 })
    ));
    // A wait answered from history needs no slot.
    assert!(matches!(
        f.store.watch(&token, Key::Size, false, Some(1)).await,
        Ok(Watch::Ready { .. })
    ));
    drop(held.pop());
    assert!(f.store.watch(&token, Key::Dir, true, None).await.is_ok());
    assert_eq!(
        f.metrics
            .waits_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn old_history_is_cleared() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    for i in 0..HISTORY_LEN + 4 {
        f.store
            .set(&token, member("m"), i.to_string(), None)
            .await
            .unwrap();
    }
    // Index is now HISTORY_LEN + 5; the oldest kept event is 6.
    match f.store.watch(&token, Key::Dir, true, Some(5)).await {
        Err(StoreError::HistoryCleared {
            start,
            requested,
            index,
        }) => {
            assert_eq!((start, requested, index), (6, 5, HISTORY_LEN + 5));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        f.store.watch(&token, Key::Dir, true, Some(6)).await,
        Ok(Watch::Ready { .. })
    ));
}

#[tokio::test]
async fn tokens_expire_and_are_collected() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    f.create(&token, "a", "1").await;
    let Watch::Pending(pending) = f.store.watch(&token, Key::Dir, true, None).await.unwrap() else {
        panic!("nothing should be ready")
    };
    let waiter = tokio::spawn(pending.wait(Duration::from_secs(10)));
    assert_eq!(
        f.store.gauges().await.unwrap(),
        Gauges {
            tokens: 1,
            registrations: 1,
            waits: 1
        }
    );
    f.advance(TTL);
    // Expired tokens are gone at once, before the collector runs.
    assert!(matches!(
        f.store.get(&token, Key::Dir, Order::Created).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(f.store.gauges().await.unwrap().tokens, 0);
    assert_eq!(f.store.collect_expired().await.unwrap(), 1);
    // Its long poll ends without an event.
    assert_eq!(waiter.await.unwrap().unwrap(), None);
    assert_eq!(f.store.collect_expired().await.unwrap(), 0);
    assert_eq!(
        f.metrics
            .tokens_expired
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn token_count_is_limited_to_live_tokens() {
    let f = fixture_with(Options {
        max_tokens: 2,
        ..options()
    })
    .await;
    f.store.create_token(3).await.unwrap();
    f.store.create_token(3).await.unwrap();
    assert!(matches!(
        f.store.create_token(3).await,
        Err(StoreError::TooManyTokens { max: 2 })
    ));
    f.advance(TTL);
    f.store.create_token(3).await.unwrap();
}

#[tokio::test]
async fn members_per_token_are_limited() {
    let f = fixture().await;
    let token = f.store.create_token(3).await.unwrap();
    for i in 0..MAX_MEMBERS_PER_TOKEN {
        f.create(&token, &format!("m{i}"), "v").await;
    }
    assert!(matches!(
        f.store
            .set(&token, member("extra"), "v".into(), Some(false))
            .await,
        Err(StoreError::TooManyMembers { .. })
    ));
    // Replacing an existing member is still fine.
    f.store
        .set(&token, member("m0"), "w".into(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let token = {
        let store = Store::open(dir.path(), options(), metrics.clone())
            .await
            .unwrap();
        let token = store.create_token(3).await.unwrap();
        store
            .set(&token, member("a"), "n1=http://1".into(), Some(false))
            .await
            .unwrap();
        token
    };
    let store = Store::open(dir.path(), options(), metrics).await.unwrap();
    let listing = store.get(&token, Key::Dir, Order::Created).await.unwrap();
    assert_eq!(listing.index, 2);
    assert_eq!(listing.event.node.nodes.len(), 1);
    let next = store
        .set(&token, member("b"), "n2=http://2".into(), Some(false))
        .await
        .unwrap();
    assert_eq!(next.index, 3);
}

#[test]
fn member_names() {
    assert!(MemberName::parse("8e9e05c52164694d").is_ok());
    assert!(MemberName::parse("a.b-c~d").is_ok());
    assert_eq!(MemberName::parse(""), Err(NameError::Empty));
    assert_eq!(MemberName::parse("_config"), Err(NameError::Reserved));
    assert_eq!(MemberName::parse("a/b"), Err(NameError::BadCharacter));
    assert_eq!(MemberName::parse(".."), Err(NameError::BadCharacter));
    assert_eq!(MemberName::parse("a\nb"), Err(NameError::BadCharacter));
    assert_eq!(
        MemberName::parse(&"x".repeat(MAX_NAME_BYTES + 1)),
        Err(NameError::TooLong)
    );
    assert!(MemberName::parse(&"x".repeat(MAX_NAME_BYTES)).is_ok());
}

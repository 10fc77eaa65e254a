//! The Python `etcd3gw` client (which speaks only the JSON gateway) against
//! real etcd and cetera: KV and prefixes, watches, leases, locks.
//!
//! Each test runs a script through `tests::python` (the virtualenv that
//! `scripts/test` creates); the script's assertions are the test. The
//! client discovers the API prefix from `GET /version` first, as it does
//! against any server.

use anyhow::Result;
use tests::kv::get;
use tests::python;
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    etcd3gw_put_get_prefix_and_delete,
    etcd3gw_watch_and_watch_prefix,
    etcd3gw_lease_grant_refresh_revoke,
    etcd3gw_lock_excludes_a_second_holder,
);

/// Imports, a client on the member, and `take(events, n)`, which reads `n`
/// watch events or fails after a deadline instead of blocking forever.
const PRELUDE: &str = r#"
import queue, sys, threading, time
import etcd3gw
import etcd3gw.exceptions
client = etcd3gw.client(host=sys.argv[1], port=int(sys.argv[2]), timeout=10)

class Events:
    def __init__(self, iterator):
        self.queue = queue.Queue()
        def pump():
            for event in iterator:
                self.queue.put(event)
        threading.Thread(target=pump, daemon=True).start()

    def take(self, n, seconds=10):
        return [self.queue.get(timeout=seconds) for _ in range(n)]

    def quiet(self, seconds=0.5):
        try:
            event = self.queue.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError('unexpected event %r' % (event,))
"#;

async fn etcd3gw(cluster: &TestCluster, i: usize, body: &str, extra: &[&str]) -> Result<()> {
    python::run(cluster, i, &format!("{PRELUDE}{body}"), extra)
        .await
        .map(drop)
}

async fn etcd3gw_put_get_prefix_and_delete(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    etcd3gw(
        &cluster,
        0,
        r#"
assert client.api_path == '/v3/', client.api_path
assert client.put('gw/a', '1') and client.put('gw/b', '2')
assert client.put('gw/c', b'\x00\xff') and client.put('gx', 'outside')
assert client.get('gw/a') == [b'1']
assert client.get('gw/none') == []
pairs = client.get_prefix('gw/')
assert [v for v, _ in pairs] == [b'1', b'2', b'\x00\xff'], pairs
assert [m['key'] for _, m in pairs] == [b'gw/a', b'gw/b', b'gw/c'], pairs
first = pairs[0][1]
assert first['version'] == '1' and first['create_revision'] == first['mod_revision'], first
newest = client.get_prefix('gw/', sort_order='descend', sort_target='mod')
assert [m['key'] for _, m in newest] == [b'gw/c', b'gw/b', b'gw/a'], newest
assert sorted(m['key'] for _, m in client.get_all()) == [b'gw/a', b'gw/b', b'gw/c', b'gx']
# Transactions: create-if-absent and compare-and-swap.
assert client.create('gw/a', 'again') is False
assert client.create('gw/new', 'n') is True
assert client.replace('gw/a', '1', 'one') is True
assert client.replace('gw/a', '1', 'uno') is False
assert client.get('gw/a') == [b'one']
value, meta = client.get('gw/a', metadata=True)[0]
assert value == b'one' and meta['version'] == '2', meta
assert client.delete('gw/a') is True
assert client.delete('gw/a') is False
assert client.get('gw/a') == []
assert client.delete_prefix('gw/') is True
assert client.get_prefix('gw/') == []
assert client.get('gx') == [b'outside']
# Errors come back as the client's exceptions.
try:
    client.put('', 'no key')
    raise SystemExit('an empty key was accepted')
except etcd3gw.exceptions.Etcd3Exception as e:
    assert 'key is not provided' in e.detail_text, e.detail_text
    assert str(e) == 'Bad Request', e
assert len(client.members()) == 1
assert 'leader' in client.status()
"#,
        &[],
    )
    .await
}

async fn etcd3gw_watch_and_watch_prefix(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    etcd3gw(
        &cluster,
        0,
        r#"
# The watch exists once the call returns (the gateway answers with its
# created response first), so writes after it are seen.
events, cancel = client.watch('gw/w')
key_events = Events(events)
prefix_events, cancel_prefix = client.watch_prefix('gw/p/')
prefix_events = Events(prefix_events)
client.put('gw/w', 'a')
client.put('gw/other', 'x')
client.put('gw/p/1', 'one')
client.put('gw/w', 'b')
client.put('gw/q', 'not in the prefix')
client.put('gw/p/2', 'two')
client.delete('gw/w')
seen = key_events.take(3)
assert [e.get('type', 'PUT') for e in seen] == ['PUT', 'PUT', 'DELETE'], seen
assert [e['kv']['key'] for e in seen] == [b'gw/w'] * 3, seen
assert [e['kv'].get('value') for e in seen[:2]] == [b'a', b'b'], seen
assert int(seen[0]['kv']['mod_revision']) < int(seen[1]['kv']['mod_revision'])
key_events.quiet()
seen = prefix_events.take(2)
assert [(e['kv']['key'], e['kv']['value']) for e in seen] == [
    (b'gw/p/1', b'one'), (b'gw/p/2', b'two')], seen
prefix_events.quiet()
cancel()
cancel_prefix()
# A watch from a past revision replays the history first.
first = int(client.get('gw/p/1', metadata=True)[0][1]['mod_revision'])
replay, cancel_replay = client.watch_prefix('gw/p/', start_revision=first)
replay = Events(replay)
seen = replay.take(2)
assert [e['kv']['key'] for e in seen] == [b'gw/p/1', b'gw/p/2'], seen
cancel_replay()
"#,
        &[],
    )
    .await
}

async fn etcd3gw_lease_grant_refresh_revoke(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    etcd3gw(
        &cluster,
        0,
        r#"
lease = client.lease(ttl=30)
assert lease.id > 0
assert client.put('gw/leased', 'v', lease=lease)
meta = client.get('gw/leased', metadata=True)[0][1]
assert int(meta['lease']) == lease.id, meta
assert 0 < lease.ttl() <= 30
assert lease.keys() == [b'gw/leased'], lease.keys()
assert lease.refresh() == 30
assert lease.revoke() is True
assert client.get('gw/leased') == []
assert lease.ttl() == -1, 'a revoked lease has no time left'
assert lease.refresh() == -1, 'refreshing a revoked lease gives no TTL'

# Refreshes keep a short lease (and its key) alive past its TTL; without
# them it expires and takes the key along.
short = client.lease(ttl=3)
client.put('gw/short', 'v', lease=short)
for _ in range(5):
    time.sleep(1)
    assert short.refresh() == 3
assert client.get('gw/short') == [b'v'], 'refreshes kept the key'
deadline = time.time() + 15
while client.get('gw/short'):
    assert time.time() < deadline, 'the key outlived its lease'
    time.sleep(0.2)
"#,
        &[],
    )
    .await
}

async fn etcd3gw_lock_excludes_a_second_holder(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let other = cluster.client_url(2);
    let other_port = other.rsplit(':').next().unwrap_or_default().to_string();
    etcd3gw(
        &cluster,
        0,
        r#"
# Two clients on two members contend for one lock.
rival = etcd3gw.client(host=sys.argv[1], port=int(sys.argv[3]), timeout=10)
mine = client.lock('job', ttl=30)
theirs = rival.lock('job', ttl=30)
assert mine.acquire() is True
assert mine.is_acquired()
assert theirs.acquire() is False, 'a held lock was acquired twice'
assert not theirs.is_acquired()
assert theirs.release() is False, 'the loser released the holder'
assert mine.is_acquired()
assert mine.refresh() == 30
assert mine.release() is True
assert not mine.is_acquired()
assert theirs.acquire() is True, 'a released lock stays free'
assert theirs.is_acquired() and not mine.is_acquired()
assert mine.acquire() is False
assert theirs.release() is True
# The context manager form.
with client.lock('ctx', ttl=30) as held:
    assert held.is_acquired()
    assert rival.lock('ctx', ttl=30).acquire() is False
assert rival.lock('ctx', ttl=30).acquire() is True
"#,
        &[&other_port],
    )
    .await?;
    assert!(get(&mut cluster.kv(1)?, "/locks/job").await?.is_none());
    Ok(())
}

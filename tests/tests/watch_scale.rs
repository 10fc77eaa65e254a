//! Watch at scale: ten thousand watchers on one member, spread over
//! streams, all receive the event of one write.

use anyhow::{Result, ensure};
use cetera::proto::etcdserverpb::WatchCreateRequest;
use tests::kv::{prefix_end, put};
use tests::watch::WatchSession;
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(ten_thousand_watchers_all_see_a_write);

const STREAMS: usize = 20;
const WATCHES_PER_STREAM: usize = 500;

async fn ten_thousand_watchers_all_see_a_write(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let watch = || WatchCreateRequest {
        key: b"scale/".to_vec(),
        range_end: prefix_end(b"scale/"),
        ..Default::default()
    };
    let mut sessions = Vec::new();
    for _ in 0..STREAMS {
        let (mut session, _) = WatchSession::open(cluster.grpc_channel(0)?, watch()).await?;
        for _ in 1..WATCHES_PER_STREAM {
            session.create(watch()).await?;
        }
        sessions.push(session);
    }
    put(&mut cluster.kv(0)?, "scale/key", "v").await?;
    for session in &mut sessions {
        for _ in 0..WATCHES_PER_STREAM {
            let response = session.next().await?;
            ensure!(
                response.events.len() == 1,
                "one event per watch: {response:?}"
            );
        }
    }
    Ok(())
}

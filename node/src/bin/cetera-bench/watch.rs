//! The watch workloads.
//!
//! - [`delivery`]: watchers on one prefix (spread over streams and
//!   connections) while one writer puts `--total` keys under it. Each put's
//!   send time is stored before it is sent; a watcher that receives the
//!   event computes the latency from that send to the event's arrival (so
//!   the latency includes the write itself: replication, fsync, apply,
//!   then delivery). Delivered events/s is every event received divided by
//!   the time from the first put's send to the last event's arrival.
//! - [`idle`]: watches that never fire, each on its own key, and the
//!   server's resident memory before and after opening them.
//!
//! Both speak only etcd's Watch API, so they run unchanged against etcd.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use cetera::proto::etcdserverpb::kv_client::KvClient;
use cetera::proto::etcdserverpb::watch_client::WatchClient;
use cetera::proto::etcdserverpb::watch_request::RequestUnion;
use cetera::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::cli::{DEFAULT_MAX_DURATION, DEFAULT_TOTAL, IdleArgs, Opts, WatchArgs};
use cetera::bench::Dialer;
use cetera::bench::stats::round3;
use cetera::bench::{KeySpace, Stats};

/// How long watchers keep listening after the writer has finished when
/// some events are still missing (an event that takes longer is lost).
const STRAGGLER_GRACE: Duration = Duration::from_secs(3);

/// Pause after a failed put, so a cluster in trouble is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// One open Watch stream whose watches were all created.
struct OpenStream {
    /// Kept so the stream stays open: dropping it half-closes the stream.
    _requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

/// Opens a Watch stream on `channel` and creates `creates` on it, waiting
/// for every `created` answer. The requests are queued before the call
/// starts: grpc-go servers send a stream's headers only with its first
/// response.
async fn open_stream(
    channel: Channel,
    creates: Vec<WatchCreateRequest>,
    limit: Duration,
) -> Result<OpenStream> {
    let count = creates.len();
    let (requests, outgoing) = mpsc::channel(count.max(1));
    for create in creates {
        requests
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            })
            .await
            .context("queueing a watch create")?;
    }
    let opened = async {
        let mut responses = WatchClient::new(channel)
            .watch(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await
            .context("opening a watch stream")?
            .into_inner();
        let mut created = 0;
        while created < count {
            let response = responses
                .message()
                .await
                .context("watch stream failed while creating watches")?
                .context("watch stream ended while creating watches")?;
            if response.canceled {
                bail!("a watch create was refused: {:?}", response.cancel_reason);
            }
            if response.created {
                created += 1;
            }
        }
        anyhow::Ok(responses)
    };
    let responses = tokio::time::timeout(limit, opened)
        .await
        .context("creating the watches timed out")??;
    Ok(OpenStream {
        _requests: requests,
        responses,
    })
}

/// Opens `streams` streams over `channels` (stream *s* on channel *s* mod
/// the count) and spreads `creates` over them (create *i* on stream *i* mod
/// `streams`). Returns the streams and how many watches each carries.
async fn open_streams(
    channels: &[Channel],
    streams: usize,
    creates: Vec<WatchCreateRequest>,
    limit: Duration,
) -> Result<Vec<(OpenStream, usize)>> {
    let mut shares: Vec<Vec<WatchCreateRequest>> = vec![Vec::new(); streams];
    for (i, create) in creates.into_iter().enumerate() {
        shares[i % streams].push(create);
    }
    let mut opening = JoinSet::new();
    for (s, share) in shares.into_iter().enumerate() {
        let channel = channels[s % channels.len()].clone();
        opening.spawn(async move {
            let watches = share.len();
            open_stream(channel, share, limit)
                .await
                .map(|stream| (stream, watches))
        });
    }
    opening.join_all().await.into_iter().collect()
}

/// `prefix` followed by each key of `keys`.
fn prefixed_keys(prefix: &str, keys: &KeySpace) -> Vec<Bytes> {
    (0..keys.len())
        .map(|i| Bytes::from([prefix.as_bytes(), keys.key(i)].concat()))
        .collect()
}

/// The index a key written by [`delivery`] encodes, if it is one.
fn key_index(key: &[u8], prefix: &[u8]) -> Option<usize> {
    let digits = key.strip_prefix(prefix)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

// ------------------------------------------------------------------ delivery

/// What the delivery workload measured.
#[derive(Debug)]
pub(crate) struct DeliveryReport {
    watchers: usize,
    streams: usize,
    conns: u32,
    writers: usize,
    puts: Stats,
    /// Wall time of the writer.
    put_elapsed: Duration,
    /// Latency of every delivered event, from its put's send to arrival.
    events: Stats,
    /// Events that arrived out of revision order or twice for one watch.
    anomalies: u64,
    /// From the first put's send to the last event's arrival.
    elapsed: Duration,
}

impl DeliveryReport {
    /// Whether the run delivered something (the exit status).
    pub(crate) fn succeeded(&self) -> bool {
        self.events.ok() > 0
    }

    fn expected_events(&self) -> u64 {
        self.puts.ok() * self.watchers as u64
    }

    fn missing_events(&self) -> u64 {
        self.expected_events().saturating_sub(self.events.ok())
    }

    fn events_per_s(&self) -> f64 {
        per_second(self.events.ok(), self.elapsed)
    }

    pub(crate) fn human(&self) -> String {
        let e = &self.events;
        let mut line = format!(
            "watch    watchers={} streams={} puts={} put_errors={} events={}/{}",
            self.watchers,
            self.streams,
            self.puts.ok(),
            self.puts.errors(),
            e.ok(),
            self.expected_events(),
        );
        if self.anomalies > 0 {
            line += &format!(" ANOMALIES={}", self.anomalies);
        }
        line += &format!(
            " events/s={:.0} latency(put sent->event) p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms put_qps={:.0} elapsed={:.2}s",
            self.events_per_s(),
            e.quantile_ms(0.5),
            e.quantile_ms(0.9),
            e.quantile_ms(0.99),
            e.max_ms(),
            per_second(self.puts.ok(), self.put_elapsed),
            self.elapsed.as_secs_f64(),
        );
        line
    }

    pub(crate) fn json(&self) -> Value {
        let e = &self.events;
        json!({
            "workload": "watch",
            "watchers": self.watchers,
            "streams": self.streams,
            "conns": self.conns,
            "writers": self.writers,
            "puts": self.puts.ok(),
            "put_errors": self.puts.errors(),
            "put_qps": round3(per_second(self.puts.ok(), self.put_elapsed)),
            "put_p99_ms": round3(self.puts.quantile_ms(0.99)),
            "events": e.ok(),
            "expected_events": self.expected_events(),
            "missing_events": self.missing_events(),
            "anomalies": self.anomalies,
            "elapsed_s": round3(self.elapsed.as_secs_f64()),
            "events_per_s": round3(self.events_per_s()),
            "latency_from": "put-sent",
            "mean_ms": round3(e.mean_ms()),
            "p50_ms": round3(e.quantile_ms(0.5)),
            "p90_ms": round3(e.quantile_ms(0.9)),
            "p99_ms": round3(e.quantile_ms(0.99)),
            "max_ms": round3(e.max_ms()),
        })
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// When each put was sent, as nanoseconds after a common base (+1, so 0
/// means "not sent").
struct SendTimes {
    base: Instant,
    nanos: Vec<AtomicU64>,
}

impl SendTimes {
    fn new(count: usize) -> Self {
        Self {
            base: Instant::now(),
            nanos: (0..count).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn mark(&self, index: usize) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.nanos[index].store(nanos + 1, Ordering::Release);
    }

    fn sent(&self, index: usize) -> Option<Instant> {
        match self.nanos.get(index)?.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }
}

/// Runs the delivery workload.
pub(crate) async fn delivery(opts: &Opts, args: &WatchArgs) -> Result<DeliveryReport> {
    let total = opts.total.unwrap_or(DEFAULT_TOTAL);
    let space = KeySpace::new("", total, opts.key_size as usize, opts.val_size as usize)?;
    let keys = Arc::new(prefixed_keys(&args.prefix, &space));
    let value = space.value().clone();
    let watchers = args.watchers as usize;
    let streams = args.streams.map_or(watchers, |s| s as usize).min(watchers);
    let writers = opts.clients as usize;
    let max_duration = opts.duration.unwrap_or(DEFAULT_MAX_DURATION);

    // Plain connections, no auth: the servers this tool measures.
    let dialer = Dialer::default();
    let writer_endpoint = if opts.target_leader {
        dialer.find_leader(&opts.endpoints, opts.timeout).await?
    } else {
        opts.endpoints.first().context("no endpoint given")?.clone()
    };
    let writer_channel = dialer.connect(&writer_endpoint).await?;
    let channels = dialer.open(&opts.endpoints, opts.conns).await?.channels;
    let prefix = args.prefix.as_bytes().to_vec();
    let watch = WatchCreateRequest {
        key: prefix.clone(),
        range_end: prefix_end(&prefix),
        ..Default::default()
    };
    let opened = open_streams(&channels, streams, vec![watch; watchers], opts.timeout).await?;

    let sends = Arc::new(SendTimes::new(keys.len()));
    let start = Instant::now();
    let deadline = start + max_duration;
    let (writers_done, done) = watch::channel(false);
    let mut readers = JoinSet::new();
    for (stream, watches) in opened {
        let reader = Reader {
            responses: stream.responses,
            prefix: prefix.clone(),
            sends: sends.clone(),
            expected: watches as u64 * keys.len() as u64,
        };
        let done = done.clone();
        readers.spawn(async move {
            let _keep_open = stream._requests;
            reader.read(deadline, done).await
        });
    }

    let next = Arc::new(AtomicUsize::new(0));
    let mut writing = JoinSet::new();
    for _ in 0..writers {
        let writer = Writer {
            kv: KvClient::new(writer_channel.clone()),
            keys: keys.clone(),
            value: value.clone(),
            sends: sends.clone(),
            next: next.clone(),
            timeout: opts.timeout,
        };
        writing.spawn(writer.write(deadline));
    }
    let mut puts = Stats::new();
    for stats in writing.join_all().await {
        puts.merge(&stats);
    }
    let put_elapsed = start.elapsed();
    // Receivers may all be gone already; that is fine.
    let _ = writers_done.send(true);

    let mut events = Stats::new();
    let mut anomalies = 0;
    let mut last_arrival = start;
    for read in readers.join_all().await {
        let read = read?;
        events.merge(&read.latencies);
        anomalies += read.anomalies;
        last_arrival = last_arrival.max(read.last_arrival.unwrap_or(start));
    }
    Ok(DeliveryReport {
        watchers,
        streams,
        conns: opts.conns,
        writers,
        puts,
        put_elapsed,
        events,
        anomalies,
        elapsed: last_arrival - start,
    })
}

/// The end of the range that holds exactly the keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// One writer: puts the next unwritten key until every key is written.
struct Writer {
    kv: KvClient<Channel>,
    keys: Arc<Vec<Bytes>>,
    value: Bytes,
    sends: Arc<SendTimes>,
    next: Arc<AtomicUsize>,
    timeout: Duration,
}

impl Writer {
    async fn write(mut self, deadline: Instant) -> Stats {
        let mut stats = Stats::new();
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.keys.len() || Instant::now() >= deadline {
                return stats;
            }
            let request = PutRequest {
                key: self.keys[index].to_vec(),
                value: self.value.to_vec(),
                ..Default::default()
            };
            // Marked before sending: the event may arrive before the answer.
            self.sends.mark(index);
            let sent = Instant::now();
            match tokio::time::timeout(self.timeout, self.kv.put(request)).await {
                Ok(Ok(_)) => stats.record_ok(sent.elapsed()),
                Ok(Err(status)) => {
                    stats.record_error(status.code());
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
                Err(_) => stats.record_error(tonic::Code::DeadlineExceeded),
            }
        }
    }
}

/// One watch stream's reader.
struct Reader {
    responses: Streaming<WatchResponse>,
    prefix: Vec<u8>,
    sends: Arc<SendTimes>,
    /// Events this stream's watches should receive in all.
    expected: u64,
}

/// What one reader saw.
struct Read {
    latencies: Stats,
    anomalies: u64,
    last_arrival: Option<Instant>,
}

impl Reader {
    /// Reads until every expected event arrived, the deadline passed, or
    /// the writer finished and nothing came for [`STRAGGLER_GRACE`].
    async fn read(mut self, deadline: Instant, mut done: watch::Receiver<bool>) -> Result<Read> {
        let mut read = Read {
            latencies: Stats::new(),
            anomalies: 0,
            last_arrival: None,
        };
        let mut last_revision: HashMap<i64, i64> = HashMap::new();
        while read.latencies.ok() < self.expected {
            let writer_done = *done.borrow();
            let wait = if writer_done {
                STRAGGLER_GRACE
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            tokio::select! {
                message = self.responses.message() => {
                    let response = message
                        .context("watch stream failed")?
                        .context("watch stream ended")?;
                    let arrived = Instant::now();
                    self.record(&response, arrived, &mut last_revision, &mut read);
                }
                _ = tokio::time::sleep(wait) => {
                    if writer_done || Instant::now() >= deadline {
                        break;
                    }
                }
                _ = done.changed(), if !writer_done => {}
            }
        }
        Ok(read)
    }

    fn record(
        &self,
        response: &WatchResponse,
        arrived: Instant,
        last_revision: &mut HashMap<i64, i64>,
        read: &mut Read,
    ) {
        for event in &response.events {
            let Some(kv) = &event.kv else { continue };
            let Some(sent) =
                key_index(&kv.key, &self.prefix).and_then(|index| self.sends.sent(index))
            else {
                continue;
            };
            read.latencies
                .record_ok(arrived.saturating_duration_since(sent));
            read.last_arrival = Some(arrived);
            let last = last_revision.entry(response.watch_id).or_insert(0);
            if kv.mod_revision <= *last {
                read.anomalies += 1;
            }
            *last = (*last).max(kv.mod_revision);
        }
    }
}

// ---------------------------------------------------------------------- idle

/// What the idle workload measured.
#[derive(Debug)]
pub(crate) struct IdleReport {
    watchers: usize,
    streams: usize,
    conns: u32,
    create_elapsed: Duration,
    /// The server's VmRSS in KiB before and after, when a pid was given.
    rss_kib: Option<(u64, u64)>,
}

impl IdleReport {
    fn growth_kib(&self) -> Option<i64> {
        self.rss_kib
            .map(|(before, after)| after as i64 - before as i64)
    }

    fn bytes_per_watch(&self) -> Option<f64> {
        self.growth_kib()
            .map(|kib| kib as f64 * 1024.0 / self.watchers as f64)
    }

    pub(crate) fn human(&self) -> String {
        let mut line = format!(
            "watch-idle watchers={} streams={} created_in={:.2}s creates/s={:.0}",
            self.watchers,
            self.streams,
            self.create_elapsed.as_secs_f64(),
            per_second(self.watchers as u64, self.create_elapsed),
        );
        if let (Some((before, after)), Some(per_watch)) = (self.rss_kib, self.bytes_per_watch()) {
            line += &format!(
                " rss_before={:.1}MiB rss_after={:.1}MiB growth={:.1}MiB per_watch={:.0}B",
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                (after as f64 - before as f64) / 1024.0,
                per_watch,
            );
        }
        line
    }

    pub(crate) fn json(&self) -> Value {
        let mib = |kib: u64| round3(kib as f64 / 1024.0);
        json!({
            "workload": "watch-idle",
            "watchers": self.watchers,
            "streams": self.streams,
            "conns": self.conns,
            "create_s": round3(self.create_elapsed.as_secs_f64()),
            "creates_per_s": round3(per_second(self.watchers as u64, self.create_elapsed)),
            "rss_before_mib": self.rss_kib.map(|(b, _)| mib(b)),
            "rss_after_mib": self.rss_kib.map(|(_, a)| mib(a)),
            "rss_growth_mib": self.growth_kib().map(|g| round3(g as f64 / 1024.0)),
            "bytes_per_watch": self.bytes_per_watch().map(|b| b.round()),
        })
    }
}

/// Runs the idle workload: opens the watches, waits `--settle`, reads the
/// server's memory, then closes everything.
pub(crate) async fn idle(opts: &Opts, args: &IdleArgs) -> Result<IdleReport> {
    let watchers = args.watchers as usize;
    let streams = (args.streams as usize).min(watchers);
    let space = KeySpace::new("", watchers as u64, opts.key_size as usize, 0)?;
    let creates: Vec<WatchCreateRequest> = prefixed_keys(&args.prefix, &space)
        .into_iter()
        .map(|key| WatchCreateRequest {
            key: key.to_vec(),
            ..Default::default()
        })
        .collect();
    let channels = Dialer::default()
        .open(&opts.endpoints, opts.conns)
        .await?
        .channels;
    let before = args.rss_pid.map(rss_kib).transpose()?;

    let start = Instant::now();
    let limit = opts.duration.unwrap_or(DEFAULT_MAX_DURATION);
    let opened = open_streams(&channels, streams, creates, limit).await?;
    let create_elapsed = start.elapsed();
    let opened_watches: usize = opened.iter().map(|(_, n)| n).sum();
    ensure!(
        opened_watches == watchers,
        "opened {opened_watches} of {watchers} watches"
    );

    tokio::time::sleep(args.settle).await;
    let after = args.rss_pid.map(rss_kib).transpose()?;
    drop(opened);
    Ok(IdleReport {
        watchers,
        streams,
        conns: opts.conns,
        create_elapsed,
        rss_kib: before.zip(after),
    })
}

/// VmRSS of process `pid` in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// The `VmRSS:   1234 kB` value of a `/proc/<pid>/status` text.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_index() {
        let space = KeySpace::new("", 20, 4, 0).unwrap();
        let keys = prefixed_keys("w/", &space);
        assert_eq!(keys[7].as_ref(), b"w/0007");
        assert_eq!(key_index(&keys[7], b"w/"), Some(7));
        assert_eq!(key_index(b"other/0007", b"w/"), None);
        assert_eq!(key_index(b"w/x", b"w/"), None);
    }

    #[test]
    fn send_times_are_unset_until_marked() {
        let sends = SendTimes::new(2);
        assert!(sends.sent(0).is_none());
        sends.mark(0);
        let sent = sends.sent(0).expect("marked");
        assert!(sent <= Instant::now());
        assert!(sends.sent(1).is_none());
        assert!(sends.sent(5).is_none());
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tetcd\nVmPeak:\t  999 kB\nVmRSS:\t   52344 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(52344));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn prefix_ends_bound_the_prefix() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}

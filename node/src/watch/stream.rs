//! One client's Watch stream: its watch ids, creates, cancels and progress
//! requests, and the responses etcd sends for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prost::Message;
use tokio::sync::mpsc;

use super::WatchMessage;
use super::hub::{WatchHub, Watcher, WatcherId};
use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};

/// Messages a stream may have queued before its watchers count as slow.
const STREAM_BUFFER: usize = 1024;

/// etcd's refusal for a watch id already in use on the stream.
const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

struct Registered {
    id: WatcherId,
    canceled: Arc<AtomicBool>,
}

/// One client stream. Dropping it cancels all its watches.
pub struct WatchStream {
    hub: Arc<WatchHub>,
    out: mpsc::Sender<WatchMessage>,
    watches: HashMap<i64, Registered>,
    next_watch_id: i64,
}

impl WatchStream {
    /// A new stream and the receiver of what it sends.
    pub fn new(hub: Arc<WatchHub>) -> (Self, mpsc::Receiver<WatchMessage>) {
        let (out, messages) = mpsc::channel(STREAM_BUFFER);
        hub.counts().streams.fetch_add(1, Ordering::Relaxed);
        let stream = Self {
            hub,
            out,
            watches: HashMap::new(),
            next_watch_id: 0,
        };
        (stream, messages)
    }

    /// Resolves when the client has stopped reading (the receiver is gone).
    pub async fn closed(&self) {
        self.out.closed().await
    }

    /// Handles one request from the client.
    pub async fn handle(&mut self, request: WatchRequest) {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => self.cancel(cancel.watch_id).await,
            Some(RequestUnion::ProgressRequest(_)) => {
                let ids: Vec<WatcherId> = self.watches.values().map(|w| w.id).collect();
                self.hub.notify_progress(&ids, &self.out);
            }
            None => {}
        }
    }

    /// Refuses a create request (etcd's answer to a watch the caller may
    /// not read: created and canceled at once, with `reason`).
    pub async fn refuse(&self, reason: String) {
        let revision = self.hub.revision();
        self.send(WatchMessage::Canceled {
            watch_id: -1,
            revision,
            reason,
        })
        .await;
    }

    fn allocate_watch_id(&mut self) -> i64 {
        while self.watches.contains_key(&self.next_watch_id) {
            self.next_watch_id += 1;
        }
        let id = self.next_watch_id;
        self.next_watch_id += 1;
        id
    }

    async fn send(&self, message: WatchMessage) {
        // A closed receiver means the client is gone; the stream ends soon.
        let _ = self.out.send(message).await;
    }

    /// Answers `created`, then registers the watch. A start revision that
    /// compaction removed is found by the hub's catch-up, which reads the
    /// compaction point in the same read as the history and then sends
    /// `Compacted` (after `created`, as etcd does), so creating a watch
    /// never touches storage.
    async fn create(&mut self, req: WatchCreateRequest) {
        let watch_id = if req.watch_id != 0 {
            if self.watches.contains_key(&req.watch_id) {
                let revision = self.hub.revision();
                self.send(WatchMessage::Canceled {
                    watch_id: -1,
                    revision,
                    reason: DUPLICATE_WATCH_ID.to_string(),
                })
                .await;
                return;
            }
            req.watch_id
        } else {
            self.allocate_watch_id()
        };
        let current = self.hub.revision();
        self.send(WatchMessage::Created {
            watch_id,
            revision: current,
        })
        .await;
        let has = |filter: FilterType| req.filters.contains(&(filter as i32));
        let canceled = Arc::new(AtomicBool::new(false));
        let watcher = Watcher {
            watch_id,
            range: KeyRange::new(&req.key, &req.range_end),
            prev_kv: req.prev_kv,
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
            progress_notify: req.progress_notify,
            fragment: req.fragment,
            stream: self.out.clone(),
            canceled: canceled.clone(),
        };
        let next = if req.start_revision == 0 {
            current + 1
        } else {
            req.start_revision
        };
        let id = self.hub.register(watcher, next);
        self.watches.insert(watch_id, Registered { id, canceled });
        self.hub.counts().watches.fetch_add(1, Ordering::Relaxed);
    }

    async fn cancel(&mut self, watch_id: i64) {
        // etcd does not answer a cancel of an unknown id.
        let Some(registered) = self.watches.remove(&watch_id) else {
            return;
        };
        registered.canceled.store(true, Ordering::Relaxed);
        self.hub.unregister(registered.id);
        self.hub.counts().watches.fetch_sub(1, Ordering::Relaxed);
        let revision = self.hub.revision();
        self.send(WatchMessage::Canceled {
            watch_id,
            revision,
            reason: String::new(),
        })
        .await;
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        for registered in self.watches.values() {
            registered.canceled.store(true, Ordering::Relaxed);
            self.hub.unregister(registered.id);
        }
        let counts = self.hub.counts();
        counts
            .watches
            .fetch_sub(self.watches.len(), Ordering::Relaxed);
        counts.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The wire responses for one message. `header` builds etcd's header for
/// a revision; events larger than `max_bytes` are split into fragments when
/// the watch asked for it.
pub fn responses(
    message: WatchMessage,
    header: impl Fn(i64) -> ResponseHeader,
    max_bytes: usize,
) -> Vec<WatchResponse> {
    match message {
        WatchMessage::Created { watch_id, revision } => vec![WatchResponse {
            header: Some(header(revision)),
            watch_id,
            created: true,
            ..Default::default()
        }],
        WatchMessage::Canceled {
            watch_id,
            revision,
            reason,
        } => vec![WatchResponse {
            header: Some(header(revision)),
            watch_id,
            // A refused create is reported as created and canceled at once.
            created: watch_id == -1,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        }],
        WatchMessage::Compacted {
            watch_id,
            compact_revision,
        } => vec![WatchResponse {
            header: Some(header(0)),
            watch_id,
            canceled: true,
            compact_revision,
            ..Default::default()
        }],
        WatchMessage::Progress { watch_id, revision } => vec![WatchResponse {
            header: Some(header(revision)),
            watch_id,
            ..Default::default()
        }],
        WatchMessage::Events {
            watch_id,
            revision,
            events,
            fragment,
        } => {
            let whole = WatchResponse {
                header: Some(header(revision)),
                watch_id,
                events,
                ..Default::default()
            };
            if fragment && whole.events.len() > 1 && whole.encoded_len() > max_bytes {
                fragments(whole, max_bytes)
            } else {
                vec![whole]
            }
        }
    }
}

/// Splits a response into pieces under `max_bytes` (at least one event
/// each); all but the last carry `fragment: true`.
fn fragments(whole: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    let mut pieces = Vec::new();
    let mut current = WatchResponse {
        events: Vec::new(),
        ..whole.clone()
    };
    for event in whole.events {
        let size = event.encoded_len();
        if !current.events.is_empty() && current.encoded_len() + size > max_bytes {
            let next = WatchResponse {
                events: Vec::new(),
                ..current.clone()
            };
            pieces.push(std::mem::replace(&mut current, next));
        }
        current.events.push(event);
    }
    pieces.push(current);
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter_mut().enumerate() {
        piece.fragment = i < last;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::{Event, KeyValue};

    fn event(key: &str, bytes: usize) -> Event {
        Event {
            kv: Some(KeyValue {
                key: key.into(),
                value: vec![b'x'; bytes],
                mod_revision: 5,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn large_responses_fragment_only_when_asked() {
        let message = |fragment| WatchMessage::Events {
            watch_id: 3,
            revision: 5,
            events: (0..4).map(|i| event(&format!("k{i}"), 1000)).collect(),
            fragment,
        };
        let header = |revision| ResponseHeader {
            revision,
            ..Default::default()
        };
        let whole = responses(message(false), header, 1500);
        assert_eq!(whole.len(), 1);
        let pieces = responses(message(true), header, 1500);
        assert_eq!(pieces.len(), 4);
        assert!(pieces[..3].iter().all(|p| p.fragment));
        assert!(!pieces[3].fragment);
        assert_eq!(pieces.iter().map(|p| p.events.len()).sum::<usize>(), 4);
    }
}

//! etcd's Watch: every watcher on this member, and the per-stream protocol.
//!
//! The hub ([`WatchHub`]) owns delivery and its guarantees (ordered, no
//! gaps, no duplicates, one revision never split unless fragmented); a
//! [`WatchStream`] owns one client stream's watch ids and turns requests
//! into hub registrations. Events come only from the state machine's
//! committed batches (through the apply observer) or from the revision
//! table; this module never writes.

mod hub;
mod stream;

pub use hub::WatchHub;
pub use stream::{WatchStream, responses};

use crate::proto::mvccpb::Event;

/// What a stream tells its client, before header and encoding details.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchMessage {
    Created {
        watch_id: i64,
        revision: i64,
    },
    /// The watch ended: canceled by the client, or refused with a reason.
    Canceled {
        watch_id: i64,
        revision: i64,
        reason: String,
    },
    /// The watch needed history that compaction removed; it is canceled.
    Compacted {
        watch_id: i64,
        compact_revision: i64,
    },
    /// The events of one revision for one watch; `fragment` when the
    /// watch accepts oversized responses split in pieces.
    Events {
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
        fragment: bool,
    },
    /// Every event up to `revision` was delivered (`watch_id` -1: the whole
    /// stream).
    Progress {
        watch_id: i64,
        revision: i64,
    },
}

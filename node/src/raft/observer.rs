//! How the rest of the node learns what the state machine applied: the
//! watch hub needs every event, the lessor every lease grant and revoke,
//! the v2 waiters and store counters every v2 write, the auth gate every
//! auth change.

use crate::proto::mvccpb::Event;
use crate::v2store::{Counter, Notification};

/// A change applied by one committed entry that other parts of the node
/// react to.
#[derive(Debug, Clone, PartialEq)]
pub enum AppliedChange {
    /// The events of one write revision, in sub-revision order.
    Events {
        revision: i64,
        events: Vec<Event>,
    },
    LeaseGranted {
        id: i64,
        ttl: i64,
    },
    LeaseRevoked {
        id: i64,
    },
    /// A v2 write: the events for the v2 waiters and the store counters it
    /// moved (refused writes are counted too).
    V2 {
        notifications: Vec<Notification>,
        counted: Vec<Counter>,
    },
    /// The auth store after a change (or after a snapshot replaced it), and
    /// what happened to tokens.
    Auth {
        store: std::sync::Arc<crate::auth::AuthStore>,
        tokens: crate::auth::TokenEffect,
    },
}

/// Listens to the state machine. Calls arrive in commit order, after the
/// changes are committed to SQLite, so a reader that sees a notification
/// can also read its data. Implementations must be quick: they run on the
/// apply path.
pub trait ApplyObserver: Send + Sync + 'static {
    /// The changes of one committed batch.
    fn applied(&self, changes: Vec<AppliedChange>);

    /// Whether the events of the next batch must carry the values of the
    /// versions they replace. When false they may come without `prev_kv`
    /// (asked before each batch; an observer that answered false and
    /// then needs them reads them from the revision table).
    fn wants_prev_values(&self) -> bool {
        true
    }

    /// A snapshot replaced the whole state: the store is now at
    /// `revision` with these leases (id, TTL); derived state is rebuilt.
    fn restored(&self, revision: i64, leases: Vec<(i64, i64)>);
}

/// An observer that ignores everything (storage tests).
pub struct IgnoreApplied;

impl ApplyObserver for IgnoreApplied {
    fn applied(&self, _: Vec<AppliedChange>) {}
    fn restored(&self, _: i64, _: Vec<(i64, i64)>) {}
}

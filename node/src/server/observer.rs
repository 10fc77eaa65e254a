//! Fans the state machine's applied changes out to the watch hub, the
//! lessor, the v2 waiters and store counters, and the auth gate.

use std::sync::Arc;

use super::auth::AuthGate;
use super::lessor::Lessor;
use crate::raft::{AppliedChange, ApplyObserver};
use crate::v2store::{StoreStats, WatcherHub};
use crate::watch::WatchHub;

pub(crate) struct Observers {
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) lessor: Arc<Lessor>,
    pub(crate) v2_waiters: Arc<WatcherHub>,
    pub(crate) v2_stats: Arc<StoreStats>,
    pub(crate) auth: Arc<AuthGate>,
}

impl ApplyObserver for Observers {
    fn applied(&self, changes: Vec<AppliedChange>) {
        for change in changes {
            match change {
                AppliedChange::Events { revision, events } => self.hub.publish(revision, &events),
                AppliedChange::LeaseGranted { id, ttl } => self.lessor.granted(id, ttl),
                AppliedChange::LeaseRevoked { id } => self.lessor.revoked(id),
                AppliedChange::V2 {
                    notifications,
                    counted,
                } => {
                    for counter in counted {
                        self.v2_stats.count(counter);
                    }
                    for notification in &notifications {
                        self.v2_waiters.notify(notification);
                    }
                }
                AppliedChange::Auth { store, tokens } => self.auth.applied(store, tokens),
            }
        }
    }

    fn wants_prev_values(&self) -> bool {
        self.hub.wants_prev_values()
    }

    fn restored(&self, revision: i64, leases: Vec<(i64, i64)>) {
        self.hub.restored(revision);
        self.lessor.reload(leases);
        // Waits cannot tell which v2 events the snapshot skipped.
        self.v2_waiters.clear();
    }
}

//! Fans the state machine's applied changes out to the watch hub and the
//! lessor.

use std::sync::Arc;

use super::lessor::Lessor;
use crate::raft::{AppliedChange, ApplyObserver};
use crate::watch::WatchHub;

pub(crate) struct Observers {
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) lessor: Arc<Lessor>,
}

impl ApplyObserver for Observers {
    fn applied(&self, changes: Vec<AppliedChange>) {
        for change in changes {
            match change {
                AppliedChange::Events { revision, events } => self.hub.publish(revision, &events),
                AppliedChange::LeaseGranted { id, ttl } => self.lessor.granted(id, ttl),
                AppliedChange::LeaseRevoked { id } => self.lessor.revoked(id),
            }
        }
    }

    fn restored(&self, revision: i64, leases: Vec<(i64, i64)>) {
        self.hub.restored(revision);
        self.lessor.reload(leases);
    }
}

//! When leases expire: the leader's clocks.
//!
//! Every member tracks the granted leases (from the state machine's
//! notifications), but only the leader runs their clocks: keep-alives renew
//! them there, and an expired lease becomes a revoke proposal, so every
//! member deletes its keys at the same revision. When a member becomes
//! leader it restarts every clock at the full TTL plus an election timeout,
//! as etcd does, so a leader change never expires a lease early.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an expired lease waits before its revoke is proposed again if
/// the first proposal did not take effect.
const REVOKE_RETRY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
struct Clock {
    ttl: i64,
    expires: Instant,
}

#[derive(Default)]
struct State {
    leases: HashMap<i64, Clock>,
    leading: bool,
}

/// The lease clocks of this member.
pub(crate) struct Lessor {
    state: Mutex<State>,
    /// Added to every TTL when this member becomes leader.
    promotion_grace: Duration,
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

impl Lessor {
    pub(crate) fn new(leases: Vec<(i64, i64)>, promotion_grace: Duration) -> Self {
        let lessor = Self {
            state: Mutex::new(State::default()),
            promotion_grace,
        };
        lessor.reload(leases);
        lessor
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces every lease (start-up, or after a snapshot install).
    pub(crate) fn reload(&self, leases: Vec<(i64, i64)>) {
        let now = Instant::now();
        let mut state = self.lock();
        let grace = if state.leading {
            self.promotion_grace
        } else {
            Duration::ZERO
        };
        state.leases = leases
            .into_iter()
            .map(|(id, ttl)| {
                let expires = now + ttl_duration(ttl) + grace;
                (id, Clock { ttl, expires })
            })
            .collect();
    }

    pub(crate) fn granted(&self, id: i64, ttl: i64) {
        let expires = Instant::now() + ttl_duration(ttl);
        self.lock().leases.insert(id, Clock { ttl, expires });
    }

    pub(crate) fn revoked(&self, id: i64) {
        self.lock().leases.remove(&id);
    }

    /// Starts or stops running the clocks; becoming leader restarts them.
    pub(crate) fn set_leading(&self, leading: bool) {
        let mut state = self.lock();
        if leading && !state.leading {
            let now = Instant::now();
            for clock in state.leases.values_mut() {
                clock.expires = now + ttl_duration(clock.ttl) + self.promotion_grace;
            }
        }
        state.leading = leading;
    }

    /// Renews a lease for its full TTL; `None` if it is unknown.
    pub(crate) fn renew(&self, id: i64) -> Option<i64> {
        let mut state = self.lock();
        let clock = state.leases.get_mut(&id)?;
        clock.expires = Instant::now() + ttl_duration(clock.ttl);
        Some(clock.ttl)
    }

    /// Whole seconds left before the lease expires; `None` if unknown.
    pub(crate) fn remaining(&self, id: i64) -> Option<i64> {
        let state = self.lock();
        let clock = state.leases.get(&id)?;
        let left = clock.expires.saturating_duration_since(Instant::now());
        Some(left.as_secs() as i64)
    }

    /// The leases whose time is up (only while leading). Each is reported
    /// again only after a retry interval, while its revoke is in flight.
    pub(crate) fn take_expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let mut state = self.lock();
        if !state.leading {
            return Vec::new();
        }
        let mut expired = Vec::new();
        for (id, clock) in state.leases.iter_mut() {
            if clock.expires <= now {
                expired.push(*id);
                clock.expires = now + REVOKE_RETRY;
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_leader_expires_leases() {
        let lessor = Lessor::new(vec![(1, 0)], Duration::ZERO);
        assert!(lessor.take_expired().is_empty());
        lessor.set_leading(true);
        assert_eq!(lessor.take_expired(), vec![1]);
        assert!(
            lessor.take_expired().is_empty(),
            "not reported again at once"
        );
    }

    #[test]
    fn promotion_restarts_clocks_with_grace() {
        let lessor = Lessor::new(vec![(1, 10)], Duration::from_secs(1));
        lessor.set_leading(true);
        assert!(lessor.remaining(1).unwrap() >= 10);
        assert!(lessor.take_expired().is_empty());
    }

    #[test]
    fn renewal_and_revocation() {
        let lessor = Lessor::new(Vec::new(), Duration::ZERO);
        assert_eq!(lessor.renew(5), None);
        lessor.granted(5, 30);
        assert_eq!(lessor.renew(5), Some(30));
        assert!(lessor.remaining(5).unwrap() >= 29);
        lessor.revoked(5);
        assert_eq!(lessor.remaining(5), None);
    }
}

//! Wake-ups for long polls: one `watch` channel per token that has waiters.
//!
//! A waiter subscribes *before* it looks for an event, so a write committed
//! after that look always wakes it; it then looks again. The channel only
//! says "something changed under this token"; the events themselves are
//! read from the database.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

#[derive(Debug, Default)]
pub(super) struct Hub {
    senders: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Hub {
    fn senders(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver that sees every [`Hub::notify`] for `token` from now on.
    pub(super) fn subscribe(&self, token: &str) -> watch::Receiver<u64> {
        let mut senders = self.senders();
        match senders.get(token) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(0);
                senders.insert(token.to_string(), sender);
                receiver
            }
        }
    }

    /// Wakes every waiter of `token` (after a committed change at `index`).
    pub(super) fn notify(&self, token: &str, index: u64) {
        let mut senders = self.senders();
        if let Some(sender) = senders.get(token) {
            if sender.receiver_count() == 0 {
                senders.remove(token);
            } else {
                sender.send_replace(index);
            }
        }
    }

    /// Forgets `token`'s channel if nobody listens to it any more.
    pub(super) fn release(&self, token: &str) {
        let mut senders = self.senders();
        if senders.get(token).is_some_and(|s| s.receiver_count() == 0) {
            senders.remove(token);
        }
    }

    /// Forgets channels nobody listens to any more.
    pub(super) fn sweep(&self) {
        self.senders()
            .retain(|_, sender| sender.receiver_count() > 0);
    }

    #[cfg(test)]
    pub(super) fn channels(&self) -> usize {
        self.senders().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_wakes_subscribers_of_that_token_only() {
        let hub = Hub::default();
        let mut a = hub.subscribe("a");
        let b = hub.subscribe("b");
        hub.notify("a", 7);
        assert!(a.has_changed().unwrap());
        assert_eq!(*a.borrow_and_update(), 7);
        assert!(!b.has_changed().unwrap());
        drop(a);
        drop(b);
        hub.notify("a", 8); // no receivers left: the channel goes
        assert_eq!(hub.channels(), 1);
        hub.sweep();
        assert_eq!(hub.channels(), 0);
    }
}

//! [`Fresh`]: data together with how fresh it is. Every panel that shows
//! polled data keeps it in one, so it can say its age and never show the
//! last good data of a failed refresh as current.

use std::time::Instant;

/// Data with its freshness: the last good value, when it was read, and the
/// last error since then.
#[derive(Clone, Debug)]
pub struct Fresh<T> {
    /// Last good data.
    pub data: Option<T>,
    /// When the last good data was read.
    pub at: Option<Instant>,
    /// The error of the last attempt, if it failed.
    pub error: Option<String>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Latest request id whose answer is awaited or accepted.
    pub req: u64,
    /// Whether a request is in flight.
    pub loading: bool,
}

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Self {
            data: None,
            at: None,
            error: None,
            failures: 0,
            req: 0,
            loading: false,
        }
    }
}

impl<T> Fresh<T> {
    /// Whether the data shown is older than the last attempt (which failed).
    pub fn stale(&self) -> bool {
        self.data.is_some() && self.error.is_some()
    }

    /// A good answer read at `at`.
    pub fn ok(&mut self, at: Instant, data: T) {
        self.data = Some(data);
        self.at = Some(at);
        self.error = None;
        self.failures = 0;
        self.loading = false;
    }

    /// A failed attempt: the last good data stays, now stale.
    pub fn fail(&mut self, error: String) {
        self.error = Some(error);
        self.failures += 1;
        self.loading = false;
    }

    /// Marks request `req` as awaited; answers to older requests are ignored.
    pub fn request(&mut self, req: u64) {
        self.req = req;
        self.loading = true;
    }
}

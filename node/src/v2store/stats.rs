//! The store counters `/v2/stats/store` reports. Like etcd's, they live in
//! each member's memory: writes are counted by every member as it applies
//! them, reads by the member that served them, and a restart resets them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// One counter, in the order etcd reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Counter {
    GetSuccess,
    GetFail,
    SetSuccess,
    SetFail,
    DeleteSuccess,
    DeleteFail,
    UpdateSuccess,
    UpdateFail,
    CreateSuccess,
    CreateFail,
    CompareAndSwapSuccess,
    CompareAndSwapFail,
    CompareAndDeleteSuccess,
    CompareAndDeleteFail,
    ExpireCount,
}

impl Counter {
    const ALL: [Counter; 15] = [
        Counter::GetSuccess,
        Counter::GetFail,
        Counter::SetSuccess,
        Counter::SetFail,
        Counter::DeleteSuccess,
        Counter::DeleteFail,
        Counter::UpdateSuccess,
        Counter::UpdateFail,
        Counter::CreateSuccess,
        Counter::CreateFail,
        Counter::CompareAndSwapSuccess,
        Counter::CompareAndSwapFail,
        Counter::CompareAndDeleteSuccess,
        Counter::CompareAndDeleteFail,
        Counter::ExpireCount,
    ];

    /// etcd's JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Counter::GetSuccess => "getsSuccess",
            Counter::GetFail => "getsFail",
            Counter::SetSuccess => "setsSuccess",
            Counter::SetFail => "setsFail",
            Counter::DeleteSuccess => "deleteSuccess",
            Counter::DeleteFail => "deleteFail",
            Counter::UpdateSuccess => "updateSuccess",
            Counter::UpdateFail => "updateFail",
            Counter::CreateSuccess => "createSuccess",
            Counter::CreateFail => "createFail",
            Counter::CompareAndSwapSuccess => "compareAndSwapSuccess",
            Counter::CompareAndSwapFail => "compareAndSwapFail",
            Counter::CompareAndDeleteSuccess => "compareAndDeleteSuccess",
            Counter::CompareAndDeleteFail => "compareAndDeleteFail",
            Counter::ExpireCount => "expireCount",
        }
    }

    /// The counter a get moves.
    pub fn for_get(success: bool) -> Counter {
        if success {
            Counter::GetSuccess
        } else {
            Counter::GetFail
        }
    }
}

/// This member's store counters.
#[derive(Debug, Default)]
pub struct StoreStats {
    counts: [AtomicU64; Counter::ALL.len()],
}

impl StoreStats {
    pub fn count(&self, counter: Counter) {
        self.counts[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.counts[counter as usize].load(Ordering::Relaxed)
    }

    /// etcd's `/v2/stats/store` body, with `watchers` waiting right now.
    pub fn json(&self, watchers: u64) -> String {
        let mut out = String::from("{");
        for counter in Counter::ALL {
            out.push_str(&format!("\"{}\":{},", counter.name(), self.get(counter)));
        }
        out.push_str(&format!("\"watchers\":{watchers}}}"));
        out
    }
}

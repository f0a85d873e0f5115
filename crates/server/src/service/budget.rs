//! The memory budget for decoded audio: every request in flight holds a
//! reservation for its 16 kHz samples, grown while it decodes. When the
//! budget is spent, decoding stops with `busy` instead of the server
//! running out of memory (a 2 MB FLAC can hold hours of silence).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct AudioBudget {
    used: AtomicU64,
}

impl AudioBudget {
    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }
}

/// One request's share; released when dropped.
pub struct Reservation {
    budget: Arc<AudioBudget>,
    /// None: unlimited.
    limit: Option<u64>,
    bytes: u64,
}

impl Reservation {
    pub fn new(budget: Arc<AudioBudget>, limit: Option<u64>) -> Reservation {
        Reservation {
            budget,
            limit,
            bytes: 0,
        }
    }

    /// Grows the reservation to `bytes`; false when the budget cannot.
    pub fn grow_to(&mut self, bytes: u64) -> bool {
        let Some(more) = bytes.checked_sub(self.bytes).filter(|m| *m > 0) else {
            return true;
        };
        let granted = self
            .budget
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                let next = used + more;
                self.limit.is_none_or(|l| next <= l).then_some(next)
            })
            .is_ok();
        if granted {
            self.bytes = bytes;
        }
        granted
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

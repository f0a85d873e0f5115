//! A lease pins a loaded model: while any lease on it is held (a request in
//! flight, a live session between utterances, a running job), the idle
//! reaper leaves the model loaded. Dropping the lease releases the pin and
//! counts as a use.

use std::sync::Arc;

use super::Registry;
use crate::scheduler::Scheduler;

pub struct Lease {
    registry: Arc<Registry>,
    model: String,
    generation: u64,
    scheduler: Arc<Scheduler>,
}

impl Lease {
    pub(super) fn new(
        registry: Arc<Registry>,
        model: &str,
        generation: u64,
        scheduler: Arc<Scheduler>,
    ) -> Lease {
        Lease {
            registry,
            model: model.to_string(),
            generation,
            scheduler,
        }
    }

    /// The leased model's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Where the model's work is queued.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.registry.release(&self.model, self.generation);
    }
}

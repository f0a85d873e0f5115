//! Limits on live sessions: how many are open per model and per caller (an
//! API key, or a client address), and waiting for all of them to close
//! (shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::ServiceError;

/// Counts of open sessions per model and per caller, with their limits.
#[derive(Default)]
pub struct SessionSlots {
    counts: Mutex<Counts>,
    all_closed: Notify,
}

#[derive(Default)]
struct Counts {
    per_model: HashMap<String, usize>,
    per_caller: HashMap<String, usize>,
    open: usize,
}

/// One open session's place; released when dropped.
pub struct SessionSlot {
    slots: Arc<SessionSlots>,
    model: String,
    caller: String,
}

impl SessionSlots {
    /// A place for a session of `model` by `caller`, or `session_limit`
    /// (with a retry delay) when either limit is reached.
    pub fn take(
        self: &Arc<Self>,
        model: &str,
        caller: &str,
        per_model: usize,
        per_caller: usize,
    ) -> Result<SessionSlot, ServiceError> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let m = counts.per_model.get(model).copied().unwrap_or(0);
        let c = counts.per_caller.get(caller).copied().unwrap_or(0);
        if m >= per_model || c >= per_caller {
            let which = if m >= per_model {
                "this model"
            } else {
                "this API key or address"
            };
            return Err(ServiceError::unavailable(
                "session_limit",
                format!("too many live sessions for {which}; retry later"),
            )
            .retry_after(Duration::from_secs(5)));
        }
        *counts.per_model.entry(model.to_string()).or_default() += 1;
        *counts.per_caller.entry(caller.to_string()).or_default() += 1;
        counts.open += 1;
        Ok(SessionSlot {
            slots: self.clone(),
            model: model.to_string(),
            caller: caller.to_string(),
        })
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).open
    }

    /// Waits until no session is open.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut guard = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        let counts = &mut *guard;
        for (map, key) in [
            (&mut counts.per_model, &self.model),
            (&mut counts.per_caller, &self.caller),
        ] {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
        counts.open -= 1;
        if counts.open == 0 {
            self.slots.all_closed.notify_waiters();
        }
    }
}

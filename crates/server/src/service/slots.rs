//! Limits on live sessions: how many are open per model and per caller (an
//! API key, or a client address), and waiting for all of them to close
//! (shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::usage::Usage;
use crate::error::ServiceError;

/// Counts of open sessions per model and per caller, with their limits.
#[derive(Default)]
pub struct SessionSlots {
    counts: Mutex<Counts>,
    all_closed: Notify,
    /// Where a key's session time is counted.
    usage: Arc<Usage>,
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
    opened: Instant,
}

impl SessionSlots {
    /// Slots that count each key's session time into `usage`.
    pub fn counting(usage: Arc<Usage>) -> SessionSlots {
        SessionSlots {
            usage,
            ..Default::default()
        }
    }

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
            opened: Instant::now(),
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

impl SessionSlot {
    /// The model this place counts against.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Moves this place to `model` (a session reconfigured to another
    /// model), or `session_limit` when that model has `per_model` open.
    pub fn move_to(&mut self, model: &str, per_model: usize) -> Result<(), ServiceError> {
        if model == self.model {
            return Ok(());
        }
        let mut counts = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.per_model.get(model).copied().unwrap_or(0) >= per_model {
            return Err(ServiceError::unavailable(
                "session_limit",
                format!("too many live sessions for model {model:?}; retry later"),
            )
            .retry_after(Duration::from_secs(5)));
        }
        *counts.per_model.entry(model.to_string()).or_default() += 1;
        if let Some(n) = counts.per_model.get_mut(&self.model) {
            *n -= 1;
            if *n == 0 {
                counts.per_model.remove(&self.model);
            }
        }
        self.model = model.to_string();
        Ok(())
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        // Accounting per API key (client addresses are too many to label).
        if let Some(key) = self.caller.strip_prefix("key:") {
            let seconds = self.opened.elapsed().as_secs_f64();
            metrics::counter!("glagol_key_live_session_seconds_total", "key" => key.to_string())
                .increment(seconds as u64);
            self.slots.usage.add(key, seconds);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_moves_to_another_model_only_under_its_limit() {
        let slots = Arc::new(SessionSlots::default());
        let _full = slots.take("b", "k1", 1, 9).unwrap();
        let mut moving = slots.take("a", "k2", 1, 9).unwrap();
        let e = moving.move_to("b", 1).expect_err("b is full");
        assert_eq!(e.code, "session_limit");
        assert_eq!(moving.model(), "a");
        moving.move_to("c", 1).unwrap();
        // Its old model's place is free again; the new one's is taken.
        drop(slots.take("a", "k3", 1, 9).unwrap());
        assert!(slots.take("c", "k3", 1, 9).is_err());
        drop(moving);
        assert_eq!(slots.open(), 1);
        drop(slots.take("c", "k3", 1, 9).unwrap());
    }
}

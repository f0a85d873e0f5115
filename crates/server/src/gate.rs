//! Admission to one model's workers: a fixed number of permits, a bounded
//! queue, and an order that keeps short requests from starving behind long
//! files.
//!
//! Waiting requests are served by *virtual arrival*: arrival time plus the
//! request's audio length (seconds for seconds). A 5 s clip that arrives
//! while a 10 min file waits goes first; the file still goes before
//! anything that arrives more than 10 min after it, so nothing waits
//! forever.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use tokio::sync::oneshot;

use crate::error::ApiError;

pub struct Gate {
    inner: Mutex<Inner>,
    workers: usize,
    queue_depth: usize,
    epoch: Instant,
}

struct Inner {
    free: usize,
    waiting: BinaryHeap<Waiter>,
    next_seq: u64,
}

struct Waiter {
    /// Virtual arrival, seconds since the gate's epoch.
    key: f64,
    seq: u64,
    tx: oneshot::Sender<Permit>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// Reversed, so the max-heap pops the earliest virtual arrival.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .key
            .total_cmp(&self.key)
            .then(other.seq.cmp(&self.seq))
    }
}

/// A worker slot; dropping it hands the slot to the next waiter.
pub struct Permit {
    gate: Option<Arc<Gate>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

impl Gate {
    pub fn new(workers: usize, queue_depth: usize) -> Arc<Gate> {
        Arc::new(Gate {
            inner: Mutex::new(Inner {
                free: workers,
                waiting: BinaryHeap::new(),
                next_seq: 0,
            }),
            workers,
            queue_depth,
            epoch: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker slot for a request with `audio_seconds` of audio, waiting
    /// in the queue if needed; 503 `busy` when the queue is full. Dropping
    /// the future (client gone) leaves the queue.
    pub async fn enter(self: &Arc<Self>, audio_seconds: f64) -> Result<Permit, ApiError> {
        let rx = {
            let mut inner = self.lock();
            if inner.free > 0 {
                inner.free -= 1;
                return Ok(Permit {
                    gate: Some(self.clone()),
                });
            }
            inner.waiting.retain(|w| !w.tx.is_closed());
            if inner.waiting.len() >= self.queue_depth {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "all workers are busy and the queue is full; retry shortly",
                )
                .retry_after(1));
            }
            let (tx, rx) = oneshot::channel();
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.waiting.push(Waiter {
                key: self.epoch.elapsed().as_secs_f64() + audio_seconds.max(0.0),
                seq,
                tx,
            });
            rx
        };
        rx.await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            )
        })
    }

    fn release(self: &Arc<Self>) {
        let mut inner = self.lock();
        while let Some(waiter) = inner.waiting.pop() {
            let permit = Permit {
                gate: Some(self.clone()),
            };
            match waiter.tx.send(permit) {
                Ok(()) => return,
                // That waiter left; disarm the permit and try the next.
                Err(mut permit) => permit.gate = None,
            }
        }
        inner.free += 1;
    }

    /// Requests waiting for a worker.
    pub fn queued(&self) -> usize {
        self.lock()
            .waiting
            .iter()
            .filter(|w| !w.tx.is_closed())
            .count()
    }

    pub fn idle(&self) -> bool {
        let inner = self.lock();
        inner.free == self.workers && inner.waiting.is_empty()
    }

    pub fn saturated(&self) -> bool {
        let inner = self.lock();
        inner.free == 0 && inner.waiting.len() >= self.queue_depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn short_requests_overtake_long_ones_and_full_queues_refuse() {
        let gate = Gate::new(1, 3);
        let running = gate.enter(60.0).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, seconds) in [("long", 600.0), ("medium", 30.0), ("short", 2.0)] {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.enter(seconds).await.unwrap();
                order.lock().unwrap().push(name);
            }));
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(gate.queued(), 3);
        assert_eq!(gate.enter(1.0).await.err().unwrap().code, "busy");
        drop(running);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["short", "medium", "long"]);
        assert!(gate.idle());
    }

    #[tokio::test]
    async fn a_waiter_that_left_does_not_swallow_the_slot() {
        let gate = Gate::new(1, 4);
        let running = gate.enter(1.0).await.unwrap();
        let left = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(0.5).await.map(|_| ()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        left.abort();
        let _ = left.await;
        let next = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(5.0).await.map(|_| ()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        drop(running);
        next.await.unwrap().unwrap();
        assert!(gate.idle());
    }
}

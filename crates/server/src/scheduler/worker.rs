//! A worker thread: take the next item (and, for engines that gain from
//! it, more to batch with), run it, deliver the results.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Instant;

use glagol_core::engine::{Engine, Request, Transcript};
use glagol_core::pipeline;

use super::{finish_rejected, Shared, WorkItem};
use crate::error::{ErrorKind, ServiceError};

pub(super) fn run(shared: &Shared, engine: &dyn Engine) {
    while let Some(batch) = next_batch(shared) {
        shared.busy.fetch_add(1, Ordering::SeqCst);
        execute(shared, engine, batch);
        shared.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Blocks for the next batch; None once the scheduler stopped (the last
/// waiting items are failed on the way out).
fn next_batch(shared: &Shared) -> Option<Vec<WorkItem>> {
    let mut queue = shared.lock();
    let first = loop {
        if shared.stopped.load(Ordering::SeqCst) {
            let rest = queue.drain();
            drop(queue);
            for item in rest {
                item.reject(shared.unloaded());
            }
            return None;
        }
        let gone = queue.prune(Instant::now());
        if !gone.is_empty() {
            drop(queue);
            finish_rejected(gone);
            queue = shared.lock();
            continue;
        }
        if let Some(item) = queue.pop() {
            break item;
        }
        queue = shared
            .arrived
            .wait(queue)
            .unwrap_or_else(|p| p.into_inner());
    };
    let max = shared.config.max_batch;
    let mut batch = vec![first];
    if max > 1 && batch[0].vad.is_none() {
        let until = Instant::now() + shared.config.max_wait;
        let kind = batch[0].class.batch_kind();
        let mut lengths = Lengths::of(&batch[0]);
        loop {
            while batch.len() < max {
                let fits = |i: &WorkItem| {
                    i.vad.is_none()
                        && !i.options.is_cancelled()
                        && i.class.batch_kind() == kind
                        && lengths.admits(i)
                };
                match queue.pop_where(fits) {
                    Some(item) => {
                        lengths = lengths.with(&item);
                        batch.push(item);
                    }
                    None => break,
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if batch.len() >= max || left.is_zero() || shared.stopped.load(Ordering::SeqCst) {
                break;
            }
            queue = shared
                .arrived
                .wait_timeout(queue, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
    Some(batch)
}

/// The spread of audio lengths in a batch. The engine pads every item to
/// the longest, so items far shorter than it would cost more padded than
/// batching saves (on 2 cores, 1 s items gain ~1.5× from a batch of 8 and
/// 3 s items ~1.3×).
#[derive(Clone, Copy)]
struct Lengths {
    shortest: f64,
    longest: f64,
}

impl Lengths {
    /// Longest over shortest audio in one batch at most.
    const MAX_RATIO: f64 = 1.25;
    /// Shorter items count as this long (a partial's audio grows before it runs).
    const FLOOR_S: f64 = 0.25;

    fn of(item: &WorkItem) -> Self {
        let s = item.audio_seconds().max(Self::FLOOR_S);
        Lengths {
            shortest: s,
            longest: s,
        }
    }

    fn with(self, item: &WorkItem) -> Self {
        let s = Self::of(item);
        Lengths {
            shortest: self.shortest.min(s.shortest),
            longest: self.longest.max(s.longest),
        }
    }

    fn admits(self, item: &WorkItem) -> bool {
        let l = self.with(item);
        l.longest <= l.shortest * Self::MAX_RATIO
    }
}

fn execute(shared: &Shared, engine: &dyn Engine, batch: Vec<WorkItem>) {
    let mut batch = refreshed(batch);
    if batch.is_empty() {
        return;
    }
    metrics::histogram!("glagol_batch_size", "model" => shared.model.clone())
        .record(batch.len() as f64);
    for item in &mut batch {
        if let Some(started) = item.started.take() {
            started();
        }
    }
    let panicked =
        || ServiceError::internal("recognition failed unexpectedly (the engine panicked)");
    if batch.len() == 1 && batch[0].vad.is_some() {
        let item = batch.remove(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let vad = item.vad.as_ref().map(|(m, c)| (m, *c));
            pipeline::transcribe(engine, &item.audio, &item.options, vad)
        }));
        let result = match result {
            Ok(r) => r.map_err(ServiceError::from),
            Err(_) => Err(panicked()),
        };
        (item.done)(result);
        return;
    }
    let results: Vec<Result<Transcript, ServiceError>> = {
        let requests: Vec<Request<'_>> = batch
            .iter()
            .map(|i| Request {
                audio: &i.audio,
                options: &i.options,
            })
            .collect();
        match catch_unwind(AssertUnwindSafe(|| engine.transcribe_batch(&requests))) {
            Ok(results) if results.len() == requests.len() => results
                .into_iter()
                .map(|r| r.map_err(ServiceError::from))
                .collect(),
            Ok(_) => requests
                .iter()
                .map(|_| {
                    Err(ServiceError::internal(
                        "the engine returned the wrong number of results",
                    ))
                })
                .collect(),
            Err(_) => requests.iter().map(|_| Err(panicked())).collect(),
        }
    };
    for (item, result) in batch.into_iter().zip(results) {
        (item.done)(result);
    }
}

/// Gives items that want it their newest audio; drops those no longer wanted.
fn refreshed(batch: Vec<WorkItem>) -> Vec<WorkItem> {
    let mut kept = Vec::with_capacity(batch.len());
    for mut item in batch {
        let Some(refresh) = item.refresh.take() else {
            kept.push(item);
            continue;
        };
        match refresh.take() {
            Some(audio) => {
                item.audio = audio;
                kept.push(item);
            }
            None => item.reject(ServiceError::new(
                ErrorKind::Conflict,
                "partial_superseded",
                "the utterance ended before its partial ran",
            )),
        }
    }
    kept
}

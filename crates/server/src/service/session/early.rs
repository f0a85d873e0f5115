//! Early finals: an utterance's final recognised while the silence that
//! ends it is still being confirmed, adopted when the utterance ends where
//! it was announced to, withdrawn when the speaker goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use glagol_core::engine::Transcript;

use super::{Done, LiveSession};
use crate::error::ServiceError;
use crate::scheduler::Class;

/// A final started early: the utterance ends at `end` if the silence lasts.
pub(super) struct EarlyFinal {
    utterance: u64,
    end: usize,
    /// Withdraws the work when speech resumes.
    cancel: Arc<AtomicBool>,
    result: Option<Result<Transcript, ServiceError>>,
}

impl EarlyFinal {
    /// Stops its work (the session is gone).
    pub(super) fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

impl LiveSession {
    /// Starts recognising utterance `id` as if it ended at `end`.
    pub(super) fn start_early(&mut self, id: u64, end: usize, audio: Vec<f32>) {
        self.withdraw_early(None);
        let cancel = Arc::new(AtomicBool::new(false));
        self.early = Some(EarlyFinal {
            utterance: id,
            end,
            cancel: cancel.clone(),
            result: None,
        });
        let tx = self.tx.clone();
        self.submit(
            audio,
            Class::LiveFinal,
            Some(cancel),
            None,
            move |result| Done::Early {
                utterance: id,
                end,
                result,
            },
            tx,
        );
    }

    /// Utterance `id` ended at `end` (at `ended`): true when its early final
    /// is that, and is now its final.
    pub(super) fn adopt_early(&mut self, id: u64, end: usize, ended: Instant) -> bool {
        let Some(early) = self.early.take_if(|e| e.utterance == id && e.end == end) else {
            return false;
        };
        match early.result {
            Some(result) => self.adopt(id, ended, result),
            None => {
                self.adopted.insert(id, (end, ended));
            }
        }
        true
    }

    /// Withdraws the early final (of utterance `only`, when given).
    pub(super) fn withdraw_early(&mut self, only: Option<u64>) {
        if let Some(early) = self
            .early
            .take_if(|e| only.is_none_or(|id| id == e.utterance))
        {
            early.cancel();
            metrics::counter!("glagol_early_finals_total", "model" => self.model.clone(), "outcome" => "withdrawn").increment(1);
        }
    }

    /// An early final's result arrived.
    pub(super) fn finish_early(
        &mut self,
        utterance: u64,
        end: usize,
        result: Result<Transcript, ServiceError>,
    ) {
        if self.adopted.get(&utterance).is_some_and(|(e, _)| *e == end) {
            if let Some((_, ended)) = self.adopted.remove(&utterance) {
                self.adopt(utterance, ended, result);
            }
        } else if let Some(early) = self
            .early
            .as_mut()
            .filter(|e| e.utterance == utterance && e.end == end)
        {
            early.result = Some(result);
        }
    }

    /// An early final's result, now its ended utterance's final.
    fn adopt(&mut self, utterance: u64, ended: Instant, result: Result<Transcript, ServiceError>) {
        metrics::counter!("glagol_early_finals_total", "model" => self.model.clone(), "outcome" => "used").increment(1);
        metrics::histogram!("glagol_final_latency_seconds", "model" => self.model.clone())
            .record(ended.elapsed().as_secs_f64());
        self.finished.insert(utterance, result);
        self.release_finals();
    }
}

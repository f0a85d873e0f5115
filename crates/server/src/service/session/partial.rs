//! Partials: recognised on the session's newest audio, over a window that
//! stays short however long the utterance grows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glagol_core::audio::SAMPLE_RATE;
use glagol_core::engine::{Transcript, Word};

use super::{ingest, seconds, Done, LiveSession, Partial, SessionEvent};
use crate::error::ServiceError;
use crate::scheduler::{Class, Fresh};

/// The open utterance's audio so far.
pub(super) struct LiveAudio {
    pub(super) utterance: u64,
    pub(super) start: usize,
    pub(super) samples: Vec<f32>,
    /// When the newest samples arrived.
    pub(super) arrived: Instant,
}

pub(super) type SharedAudio = Arc<Mutex<Option<LiveAudio>>>;

impl LiveSession {
    /// Sends a partial of utterance `id` (`audio` covers `start..end`) to
    /// the scheduler, unless one is still in flight.
    pub(super) fn start_partial(&mut self, id: u64, start: usize, end: usize, audio: Vec<f32>) {
        // A held partial is shown first: its delta must reach the client.
        let ready = |u: &&super::Utterance| !u.partial_in_flight && u.held.is_none();
        let Some(u) = self.utterances.get(&id).filter(ready) else {
            // Backs off under load: never two partials of one stream.
            ingest::lock(&self.ingest).detector.defer_partial();
            metrics::counter!("glagol_partials_skipped_total", "model" => self.model.clone())
                .increment(1);
            return;
        };
        let from = (start + samples(u.stabilizer.window_start(seconds(end - start)))).min(end);
        let longest = [false, true].map(|loaded| samples(u.stabilizer.longest_window(loaded)));
        if let Some(u) = self.utterances.get_mut(&id) {
            u.partial_in_flight = true;
        }
        let tx = self.tx.clone();
        let submitted = Instant::now();
        // The audio the partial ran on: it grows while the partial waits.
        let covered = Arc::new(Covered {
            from: AtomicUsize::new(from),
            end: AtomicUsize::new(end),
            arrived: Mutex::new(submitted),
        });
        let refresh = Box::new(NewestAudio {
            live: self.live.clone(),
            id,
            longest,
            submitted,
            covered: covered.clone(),
        });
        self.submit(
            audio[from - start..].to_vec(),
            if ingest::lock(&self.ingest).detector.has_shown(id) {
                Class::LivePartial
            } else {
                Class::LiveFirstPartial
            },
            None,
            Some(refresh),
            move |result| Done::Partial {
                utterance: id,
                from: covered.from.load(Ordering::SeqCst),
                end: covered.end.load(Ordering::SeqCst),
                submitted,
                arrived: *covered.arrived.lock().unwrap_or_else(|p| p.into_inner()),
                result,
            },
            tx,
        );
    }

    pub(super) fn finish_partial(
        &mut self,
        utterance: u64,
        from: usize,
        end: usize,
        (submitted, arrived): (Instant, Instant),
        result: Result<Transcript, ServiceError>,
    ) {
        let Some(u) = self.utterances.get_mut(&utterance) else {
            return;
        };
        u.partial_in_flight = false;
        let transcript = match result {
            Ok(t) => t,
            Err(e) if e.code == "partial_superseded" => {
                metrics::counter!("glagol_partials_dropped_total", "model" => self.model.clone())
                    .increment(1);
                return;
            }
            Err(_) => return,
        };
        // Too late: the final is on its way, or a newer one was shown.
        if u.end.is_some() || end < u.shown_until {
            return;
        }
        metrics::histogram!("glagol_partial_latency_seconds", "model" => self.model.clone())
            .record(submitted.elapsed().as_secs_f64());
        u.shown_until = end;
        if !transcript.text.trim().is_empty() {
            ingest::lock(&self.ingest).detector.partial_shown(utterance);
        }
        let heard: Vec<Word> = transcript
            .segments
            .iter()
            .flat_map(|s| s.words.iter().cloned())
            .collect();
        let (shown, shown_words) = u.stabilizer.update_window(
            &transcript.text,
            &heard,
            seconds(from - u.start),
            seconds(end - u.start),
        );
        let offset = seconds(u.start);
        let partial = Partial {
            utterance,
            text: shown.text,
            committed: shown.committed,
            delta: shown.delta,
            retracted: shown.retracted,
            words: shown_words
                .into_iter()
                .map(|w| Word {
                    start: offset + w.start,
                    end: offset + w.end,
                    ..w
                })
                .collect(),
            start: offset,
            end: seconds(end),
            delay: Duration::ZERO,
        };
        if u.announced {
            self.show_partial(partial, arrived);
        } else {
            u.held = Some((partial, arrived));
        }
    }

    /// Hands a partial out; `arrived`: when the newest audio it heard did.
    pub(super) fn show_partial(&mut self, mut partial: Partial, arrived: Instant) {
        // What its user sees: how old the newest audio it heard is.
        partial.delay = arrived.elapsed();
        metrics::histogram!("glagol_partial_lag_seconds", "model" => self.model.clone())
            .record(partial.delay.as_secs_f64());
        self.out.push_back(SessionEvent::Partial(partial));
    }
}

fn samples(seconds: f64) -> usize {
    (seconds * SAMPLE_RATE as f64) as usize
}

/// Where the audio a partial ran on starts and ends, in session samples,
/// and when its newest samples arrived.
struct Covered {
    from: AtomicUsize,
    end: AtomicUsize,
    arrived: Mutex<Instant>,
}

/// How long a partial may wait for a worker before it counts as a sign of
/// load (unloaded, a partial seldom waits at all; one engine call on a
/// short window takes about this long, so a longer wait means others ran).
const LOADED_WAIT: Duration = Duration::from_millis(100);

/// The newest audio of utterance `id` from `covered.from` on, at most
/// `longest[loaded]` samples of it (a partial submitted at `submitted` that
/// waited long is a sign of load), while the utterance is open; records in
/// `covered` the audio it gives.
struct NewestAudio {
    live: SharedAudio,
    id: u64,
    longest: [usize; 2],
    submitted: Instant,
    covered: Arc<Covered>,
}

impl NewestAudio {
    fn open<T>(&self, f: impl FnOnce(&LiveAudio) -> T) -> Option<T> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.as_ref().filter(|l| l.utterance == self.id).map(f)
    }
}

impl Fresh for NewestAudio {
    fn arrived(&self) -> Option<Instant> {
        self.open(|l| l.arrived)
    }

    fn take(self: Box<Self>) -> Option<Vec<f32>> {
        self.open(|l| {
            let end = l.start + l.samples.len();
            let longest = self.longest[usize::from(self.submitted.elapsed() > LOADED_WAIT)];
            let covered = &self.covered;
            let from = covered
                .from
                .load(Ordering::SeqCst)
                .max(end.saturating_sub(longest));
            covered.from.store(from, Ordering::SeqCst);
            covered.end.store(end, Ordering::SeqCst);
            *covered.arrived.lock().unwrap_or_else(|p| p.into_inner()) = l.arrived;
            let skip = from.saturating_sub(l.start).min(l.samples.len());
            l.samples[skip..].to_vec()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use glagol_core::stream::partials::{LOADED_WINDOW_S, MAX_WINDOW_S};

    const SR: usize = SAMPLE_RATE as usize;

    fn newest(live: &SharedAudio, waited: Duration, from: usize) -> (Vec<f32>, usize) {
        let covered = Arc::new(Covered {
            from: AtomicUsize::new(from),
            end: AtomicUsize::new(0),
            arrived: Mutex::new(Instant::now()),
        });
        let audio = Box::new(NewestAudio {
            live: live.clone(),
            id: 7,
            longest: [MAX_WINDOW_S, LOADED_WINDOW_S].map(samples),
            submitted: Instant::now() - waited,
            covered: covered.clone(),
        })
        .take()
        .unwrap();
        (audio, covered.from.load(Ordering::SeqCst))
    }

    #[test]
    fn a_partial_that_waited_for_a_worker_hears_only_the_loaded_window() {
        let start = SR;
        let live: SharedAudio = Arc::new(Mutex::new(Some(LiveAudio {
            utterance: 7,
            start,
            samples: (0..5 * SR).map(|i| i as f32).collect(),
            arrived: Instant::now(),
        })));
        let end = start + 5 * SR;
        // Ran at once: the whole utterance from the stabiliser's start.
        let (audio, from) = newest(&live, Duration::ZERO, start);
        assert_eq!((audio.len(), from), (5 * SR, start));
        // Waited behind other work: the newest 2 s only, and says so.
        let (audio, from) = newest(&live, Duration::from_millis(150), start);
        assert_eq!((audio.len(), from), (2 * SR, end - 2 * SR));
        assert_eq!(audio[0], (3 * SR) as f32);
        // A later start than the window's stays.
        let later = end - SR;
        let (audio, from) = newest(&live, Duration::from_secs(1), later);
        assert_eq!((audio.len(), from), (SR, later));
    }
}

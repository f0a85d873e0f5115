//! A live session: audio in as it arrives, utterance events out.
//!
//! The session holds a lease on its model for its whole life (the model
//! stays loaded between utterances), finds utterances with
//! [`glagol_core::stream::Utterances`], and sends their recognition to the
//! model's scheduler as work items of its stream: partials (at most one in
//! flight; a newer one replaces a queued one) and finals (the whole
//! utterance, once, like a file). Results come back on a channel; finals
//! are handed out in utterance order. Like sherpa-onnx's `Connection`, the
//! session is only state: the scheduler batches work across sessions.
//!
//! A partial runs on its stream's newest audio: the utterance's audio is
//! shared with the queued item, which takes it when a worker starts on it,
//! so time spent waiting in the queue does not make the partial stale. It
//! hears only the window after the words already committed (with some
//! context before them; see `stream::partials`), so its cost does not grow
//! with the utterance.
//!
//! A final is started early, while the silence that will end its utterance
//! is still being confirmed (`Ending`): it is the same audio, so the result
//! is the same, only sooner. Speech that resumes withdraws it.

mod early;
mod ingest;
mod partial;
mod speakers;
mod types;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glagol_core::audio::pcm::PcmInput;
use glagol_core::audio::SAMPLE_RATE;
use glagol_core::engine::{TranscribeOptions, Transcript, Word};
use glagol_core::stream::partials::Stabilizer;
use glagol_core::stream::{EndReason, UtteranceEvent, Utterances};
use tokio::sync::mpsc;

pub use types::{Final, Partial, SessionEvent, SessionOptions};

use super::Service;
use crate::error::ServiceError;
use crate::models::Lease;
use crate::scheduler::{Class, Refresh, WorkItem};
use early::EarlyFinal;
use ingest::{Ingest, SharedIngest};
use partial::SharedAudio;

/// Session keys for the scheduler (partials of one stream replace each other).
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

enum Done {
    Partial {
        utterance: u64,
        /// The audio it heard: `from..end`.
        from: usize,
        end: usize,
        submitted: Instant,
        /// When the newest audio it heard arrived.
        arrived: Instant,
        result: Result<Transcript, ServiceError>,
    },
    Final {
        utterance: u64,
        submitted: Instant,
        result: Result<Transcript, ServiceError>,
    },
    /// An ended utterance's voice, embedded (diarization).
    Speaker {
        utterance: u64,
        embedding: Option<Vec<f32>>,
        reliable: bool,
    },
    /// A final started before its utterance was known to end.
    Early {
        utterance: u64,
        end: usize,
        result: Result<Transcript, ServiceError>,
    },
}

struct Utterance {
    start: usize,
    end: Option<(usize, EndReason)>,
    /// When the audio at its end arrived (once it ended).
    end_arrived: Option<Instant>,
    stabilizer: Stabilizer,
    partial_in_flight: bool,
    /// The newest audio end a shown partial covered.
    shown_until: usize,
    /// Whether the client knows of it (a tentative utterance is not
    /// shown until its speech is confirmed).
    announced: bool,
    /// The newest partial of a tentative utterance, shown when it is
    /// announced, and when the newest audio it heard arrived.
    held: Option<(Partial, Instant)>,
}

pub struct LiveSession {
    model: String,
    stream: u64,
    options: TranscribeOptions,
    /// Conversion and utterance detection, run on the blocking pool.
    ingest: SharedIngest,
    utterances: BTreeMap<u64, Utterance>,
    /// Finals received but not yet handed out (an earlier one is pending).
    finished: BTreeMap<u64, Result<Transcript, ServiceError>>,
    out: VecDeque<SessionEvent>,
    tx: mpsc::UnboundedSender<Done>,
    rx: mpsc::UnboundedReceiver<Done>,
    /// Set when the session ends: its queued work is withdrawn.
    cancel: Arc<AtomicBool>,
    early: Option<EarlyFinal>,
    /// Ended utterances whose early final is still running: its end and
    /// when the utterance ended.
    adopted: BTreeMap<u64, (usize, Instant)>,
    /// Read by queued partials when they run.
    live: SharedAudio,
    /// Who speaks, when the session asked for speakers.
    speakers: Option<speakers::LiveSpeakers>,
    _lease: Lease,
}

impl Utterance {
    fn new(start: usize) -> Utterance {
        Utterance {
            start,
            end: None,
            end_arrived: None,
            stabilizer: Stabilizer::new(),
            partial_in_flight: false,
            shown_until: 0,
            announced: false,
            held: None,
        }
    }
}

fn seconds(samples: usize) -> f64 {
    samples as f64 / SAMPLE_RATE as f64
}

impl Service {
    /// Opens a session: resolves and leases its model, waiting for it to
    /// load (up to the inference timeout).
    pub async fn open_session(&self, options: SessionOptions) -> Result<LiveSession, ServiceError> {
        let config = self.config.get();
        options
            .stream
            .validate()
            .map_err(|e| ServiceError::invalid("invalid_configuration", e))?;
        let transcribe = TranscribeOptions {
            language: options.language.clone(),
            languages: options.languages.clone(),
            initial_prompt: options.prompt.clone(),
            word_timestamps: true,
            ..Default::default()
        };
        super::validate(&transcribe)?;
        let speakers = match options.diarize {
            true => {
                let (models, config) = (self.speakers.clone(), config.clone());
                let diarizer = tokio::task::spawn_blocking(move || models.get(&config))
                    .await
                    .map_err(|e| ServiceError::internal(format!("diarization load: {e}")))??;
                Some(speakers::LiveSpeakers::new(diarizer))
            }
            false => None,
        };
        let model = config.resolve_model(options.model.as_deref());
        let lease = self
            .registry
            .acquire(&model, Some(config.inference_timeout()))
            .await?;
        let mut stream = options.stream;
        stream
            .prefix_ms
            .get_or_insert(lease.scheduler().speech_prefix_ms());
        stream.first_partial_ms = lease.scheduler().first_partial_ms();
        let (tx, rx) = mpsc::unbounded_channel();
        let live = SharedAudio::default();
        let ingest = Ingest::new(Utterances::new(self.vad()?, stream), live.clone());
        metrics::gauge!("glagol_live_sessions", "model" => model.clone()).increment(1.0);
        Ok(LiveSession {
            ingest: Arc::new(std::sync::Mutex::new(ingest)),
            stream: NEXT_STREAM.fetch_add(1, Ordering::Relaxed),
            options: transcribe,
            model,
            utterances: BTreeMap::new(),
            finished: BTreeMap::new(),
            out: VecDeque::new(),
            tx,
            rx,
            cancel: Arc::new(AtomicBool::new(false)),
            early: None,
            adopted: BTreeMap::new(),
            live,
            speakers,
            _lease: lease,
        })
    }
}

impl LiveSession {
    /// The model recognising this session.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Audio before detected speech each utterance includes, in ms.
    pub fn prefix_ms(&self) -> u32 {
        ingest::lock(&self.ingest).detector.prefix_ms()
    }

    /// Session audio received, in seconds.
    pub fn clock(&self) -> f64 {
        seconds(ingest::lock(&self.ingest).detector.clock())
    }

    /// Feeds a piece of the client's audio, raw samples as `input` says
    /// (converted and run through the detector on the blocking pool).
    pub async fn push_pcm(&mut self, bytes: Vec<u8>, input: PcmInput) -> Result<(), ServiceError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let ingest = self.ingest.clone();
        let arrived = Instant::now();
        let events = tokio::task::spawn_blocking(move || {
            ingest::lock(&ingest).push_pcm(&bytes, input, arrived)
        })
        .await
        .map_err(|e| ServiceError::internal(format!("voice detection failed: {e}")))??;
        for event in events {
            self.handle(event);
        }
        Ok(())
    }

    /// Ends the open utterance now (`finalize`, `stop`, shutdown), after
    /// the audio the converter still holds; false when there was none.
    pub fn finalize(&mut self, reason: EndReason) -> bool {
        let events = ingest::lock(&self.ingest).finalize(reason);
        let ended = events
            .iter()
            .any(|e| matches!(e, UtteranceEvent::Ended { .. }));
        for event in events {
            self.handle(event);
        }
        ended
    }

    /// Seconds of audio in utterances that ended and wait for their finals:
    /// how far recognition is behind the client.
    pub fn backlog(&self) -> f64 {
        self.utterances
            .values()
            .filter_map(|u| u.end.map(|(end, _)| seconds(end.saturating_sub(u.start))))
            .sum()
    }

    /// Drops the open utterance without a result.
    pub fn clear(&mut self) {
        if let Some((&id, u)) = self.utterances.last_key_value() {
            if u.end.is_none() {
                self.utterances.remove(&id);
            }
        }
        self.withdraw_early(None);
        ingest::lock(&self.ingest).clear();
    }

    /// Whether an utterance's final is still to come.
    pub fn has_pending_finals(&self) -> bool {
        self.utterances.values().any(|u| u.end.is_some())
    }

    /// The next event; waits for recognition results when none is ready.
    /// Cancel-safe.
    pub async fn next(&mut self) -> SessionEvent {
        loop {
            if let Some(event) = self.out.pop_front() {
                return event;
            }
            // The session holds a sender itself, so this never ends.
            if let Some(done) = self.rx.recv().await {
                self.finish(done);
            }
        }
    }

    fn handle(&mut self, event: UtteranceEvent) {
        match event {
            UtteranceEvent::Tentative { id, start } => {
                self.utterances.insert(id, Utterance::new(start));
            }
            UtteranceEvent::Started { id, start } => {
                let u = self
                    .utterances
                    .entry(id)
                    .or_insert_with(|| Utterance::new(start));
                u.announced = true;
                let held = u.held.take();
                self.out.push_back(SessionEvent::SpeechStarted {
                    utterance: id,
                    start: seconds(start),
                });
                if let Some((partial, arrived)) = held {
                    self.show_partial(partial, arrived);
                }
            }
            UtteranceEvent::Dropped { id } => {
                self.utterances.remove(&id);
            }
            UtteranceEvent::Partial {
                id,
                start,
                end,
                audio,
            } => self.start_partial(id, start, end, audio),
            UtteranceEvent::Ending { id, end, audio, .. } => self.start_early(id, end, audio),
            UtteranceEvent::Resumed { id } => self.withdraw_early(Some(id)),
            UtteranceEvent::Ended {
                id,
                end,
                reason,
                audio,
                ..
            } => {
                if let Some(u) = self.utterances.get_mut(&id) {
                    u.end = Some((end, reason));
                    u.end_arrived = Some(ingest::lock(&self.ingest).arrived(end));
                }
                self.out.push_back(SessionEvent::SpeechStopped {
                    utterance: id,
                    end: seconds(end),
                });
                if let Some(speakers) = &self.speakers {
                    speakers.embed(id, audio.clone(), self.tx.clone());
                }
                let submitted = Instant::now();
                if self.adopt_early(id, end, submitted) {
                    return;
                }
                self.withdraw_early(None);
                let tx = self.tx.clone();
                self.submit(
                    audio,
                    Class::LiveFinal,
                    None,
                    None,
                    move |result| Done::Final {
                        utterance: id,
                        submitted,
                        result,
                    },
                    tx,
                );
            }
        }
    }

    fn submit(
        &self,
        audio: Vec<f32>,
        class: Class,
        cancel: Option<Arc<AtomicBool>>,
        refresh: Option<Refresh>,
        done: impl FnOnce(Result<Transcript, ServiceError>) -> Done + Send + 'static,
        tx: mpsc::UnboundedSender<Done>,
    ) {
        let options = TranscribeOptions {
            cancel: Some(cancel.unwrap_or_else(|| self.cancel.clone())),
            draft: class.is_partial(),
            // One utterance's fallback must not hold the session's finals.
            bounded_fallback: class == Class::LiveFinal,
            ..self.options.clone()
        };
        let item = WorkItem {
            audio,
            options,
            vad: None,
            class,
            stream: Some(self.stream),
            account: None,
            deadline: None,
            started: None,
            refresh,
            done: Box::new(move |result| {
                let _ = tx.send(done(result));
            }),
        };
        // A refused item has already reported its error through `done`.
        let _ = self._lease.scheduler().submit(item);
    }

    fn finish(&mut self, done: Done) {
        match done {
            Done::Partial {
                utterance,
                from,
                end,
                submitted,
                arrived,
                result,
            } => self.finish_partial(utterance, from, end, (submitted, arrived), result),
            Done::Early {
                utterance,
                end,
                result,
            } => self.finish_early(utterance, end, result),
            Done::Speaker {
                utterance,
                embedding,
                reliable,
            } => {
                if let Some(speakers) = &mut self.speakers {
                    speakers.arrived(utterance, embedding, reliable);
                }
                self.release_finals();
            }
            Done::Final {
                utterance,
                submitted,
                result,
            } => {
                metrics::histogram!("glagol_final_latency_seconds", "model" => self.model.clone())
                    .record(submitted.elapsed().as_secs_f64());
                self.finished.insert(utterance, result);
                self.release_finals();
            }
        }
    }

    /// Hands out finals in utterance order.
    fn release_finals(&mut self) {
        while let Some((&id, _)) = self.finished.first_key_value() {
            // An earlier utterance still waits for its final.
            if self.utterances.range(..id).any(|(_, u)| u.end.is_some()) {
                return;
            }
            // Its speaker is still being recognised.
            if self.speakers.as_ref().is_some_and(|s| !s.is_ready(id)) {
                return;
            }
            let speaker = self.speakers.as_mut().map(|s| s.assign(id));
            let Some(result) = self.finished.remove(&id) else {
                return;
            };
            let Some(u) = self.utterances.remove(&id) else {
                continue;
            };
            let (end, reason) = u.end.unwrap_or((u.start, EndReason::Stop));
            let delay = u.end_arrived.map_or(Duration::ZERO, |t| t.elapsed());
            let offset = seconds(u.start);
            self.out.push_back(match result {
                Ok(t) => SessionEvent::Final(Final {
                    utterance: id,
                    completion: u.stabilizer.completion(&t.text),
                    committed: u.stabilizer.committed_text(),
                    words: words(&t, offset),
                    logprobs: t.segments.iter().flat_map(|s| s.logprobs.clone()).collect(),
                    text: t.text,
                    start: offset,
                    end: seconds(end),
                    reason,
                    language: t.language,
                    delay,
                    speaker,
                }),
                Err(error) => SessionEvent::Error {
                    utterance: Some(id),
                    error,
                },
            });
        }
    }
}

/// A transcript's words on the session clock.
fn words(t: &Transcript, offset: f64) -> Vec<Word> {
    t.segments
        .iter()
        .flat_map(|s| s.words.iter())
        .map(|w| Word {
            speaker: None,
            word: w.word.clone(),
            start: offset + w.start,
            end: offset + w.end,
            probability: w.probability,
        })
        .collect()
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        if let Some(early) = &self.early {
            early.cancel();
        }
        metrics::gauge!("glagol_live_sessions", "model" => self.model.clone()).decrement(1.0);
    }
}

/// How long a closing session waits for its last finals.
pub const FINAL_GRACE: Duration = Duration::from_secs(30);

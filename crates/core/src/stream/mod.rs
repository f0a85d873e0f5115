//! Live audio into utterances, for every engine.
//!
//! [`Utterances`] takes a session's 16 kHz samples as they arrive and,
//! with the Silero VAD, says when speech starts, when a partial result is
//! due (on the session's audio clock: soon after speech starts, then at a
//! longer cadence), and when an utterance ends — after a configured silence,
//! at the quietest point once it reaches its maximum length, or when the
//! caller finalizes. An ended utterance carries its whole audio, so the
//! final is recognised once, like a file: finals have file quality.
//!
//! The final need not wait for the whole silence: once speech has been
//! quiet for all but `early_final_ms` of it, the detector already knows
//! where the utterance will end if the quiet lasts, and says so
//! ([`UtteranceEvent::Ending`]) with exactly the audio the final will
//! have. A caller that recognises it then has the final ready when the
//! silence is confirmed; if speech resumes instead
//! ([`UtteranceEvent::Resumed`]), that work is thrown away.
//!
//! The first partial need not wait for speech to be confirmed either: the
//! VAD hears speech at once but confirms it only after its minimum length
//! (so a click is not an utterance). In between the utterance is
//! tentative ([`UtteranceEvent::Tentative`]): its partials are due and may
//! be recognised, but nothing is shown before [`UtteranceEvent::Started`];
//! speech that stops too soon drops it ([`UtteranceEvent::Dropped`]), so
//! the first words can be on screen as the utterance is announced.
//!
//! [`partials`] makes a sequence of partial hypotheses stable for a
//! client: words agreed on by consecutive partials are committed and never
//! retracted, which is also what append-only deltas need.

mod config;
pub mod partials;

pub use config::{StreamConfig, DEFAULT_FIRST_PARTIAL_MS, DEFAULT_PREFIX_MS};

use std::sync::Arc;

use crate::audio::SAMPLE_RATE;
use crate::vad::{VadError, VadEvent, VadModel, VadStream, WINDOW};

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Silence after speech.
    Vad,
    /// It reached the maximum length.
    MaxLength,
    /// The client asked to end it now.
    Finalize,
    /// The client ended the session.
    Stop,
    /// The server is shutting down.
    Shutdown,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Vad => "vad",
            EndReason::MaxLength => "max_length",
            EndReason::Finalize => "finalize",
            EndReason::Stop => "stop",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// What the detector found. Positions are samples on the session clock.
#[derive(Debug, Clone, PartialEq)]
pub enum UtteranceEvent {
    /// Speech was heard but is not yet long enough to be an utterance:
    /// utterance `id` would begin at `start`. Its partials may be
    /// recognised, but are for showing only once it has
    /// [`UtteranceEvent::Started`].
    Tentative { id: u64, start: usize },
    /// Speech started (`start` includes the prefix); when it follows a
    /// [`UtteranceEvent::Tentative`] of the same id, the same `start`.
    Started { id: u64, start: usize },
    /// The speech of tentative utterance `id` stopped before it was
    /// confirmed: it never was an utterance.
    Dropped { id: u64 },
    /// A partial of utterance `id` is due: recognise `audio`, which covers
    /// `start..end`.
    Partial {
        id: u64,
        start: usize,
        end: usize,
        audio: Vec<f32>,
    },
    /// Utterance `id` will end at `end` if the silence lasts; `audio`
    /// (`start..end`) is what its final will recognise.
    Ending {
        id: u64,
        start: usize,
        end: usize,
        audio: Vec<f32>,
    },
    /// Speech resumed in utterance `id` after an [`UtteranceEvent::Ending`].
    Resumed { id: u64 },
    /// Utterance `id` ended; `audio` covers `start..end`.
    Ended {
        id: u64,
        start: usize,
        end: usize,
        reason: EndReason,
        audio: Vec<f32>,
    },
}

struct Current {
    id: u64,
    start: usize,
    /// Where speech itself was detected (after the prefix).
    speech: usize,
    next_partial: Option<usize>,
    /// A partial with words was shown (until then partials stay frequent).
    shown: bool,
    /// The end announced by the last [`UtteranceEvent::Ending`].
    ending: Option<usize>,
    /// Speech long enough to be an utterance ([`UtteranceEvent::Started`]).
    confirmed: bool,
}

/// Finds utterances in one live stream.
pub struct Utterances {
    config: StreamConfig,
    vad: VadStream,
    /// Samples from `base` on: the current utterance (and its prefix), or
    /// the last prefix's worth when there is none.
    buffer: Vec<f32>,
    base: usize,
    /// Samples received.
    clock: usize,
    /// Loudness of each VAD window of the buffer, to cut long utterances
    /// where it is quietest.
    energy: Vec<(usize, f32)>,
    current: Option<Current>,
    next_id: u64,
    /// Where the last utterance ended (the next prefix cannot reach before).
    last_end: usize,
    /// Without endpointing: whether the VAD heard any speech in the open
    /// utterance (one that holds none ends without a final).
    heard: bool,
}

fn ms(ms: u32) -> usize {
    ms as usize * SAMPLE_RATE as usize / 1000
}

impl Utterances {
    pub fn new(model: Arc<VadModel>, config: StreamConfig) -> Utterances {
        Utterances {
            vad: VadStream::new(model, config.vad()),
            config,
            buffer: Vec::new(),
            base: 0,
            clock: 0,
            energy: Vec::new(),
            current: None,
            next_id: 1,
            last_end: 0,
            heard: false,
        }
    }

    /// Samples received so far (the session clock).
    pub fn clock(&self) -> usize {
        self.clock
    }

    /// Audio before detected speech each utterance includes, in ms.
    pub fn prefix_ms(&self) -> u32 {
        self.config.prefix_ms()
    }

    /// The open utterance, tentative or not: its id and first sample.
    pub fn current(&self) -> Option<(u64, usize)> {
        self.current.as_ref().map(|c| (c.id, c.start))
    }

    /// Feeds samples; returns what they completed, in order.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<UtteranceEvent>, VadError> {
        let mut out = Vec::new();
        // Feed in VAD windows so each event is handled at its own time.
        for piece in samples.chunks(WINDOW) {
            let at = self.clock;
            self.buffer.extend_from_slice(piece);
            self.clock += piece.len();
            let rms = (piece.iter().map(|x| x * x).sum::<f32>() / piece.len() as f32).sqrt();
            self.energy.push((at, rms));
            if !self.config.endpointing {
                // The client decides where turns end; everything is part of
                // the turn, and the VAD only says whether it holds speech.
                if self.current.is_none() {
                    self.start(at + ms(self.config.prefix_ms()), true, &mut out);
                    self.heard = false;
                }
                self.vad.push(piece)?;
                self.heard |= self.vad.in_speech() || self.vad.unconfirmed().is_some();
                self.check_length(&mut out);
                self.trim();
                continue;
            }
            for event in self.vad.push(piece)? {
                match event {
                    VadEvent::SpeechStart { sample } => match &mut self.current {
                        None => self.start(sample, true, &mut out),
                        Some(c) if !c.confirmed => {
                            c.confirmed = true;
                            out.push(UtteranceEvent::Started {
                                id: c.id,
                                start: c.start,
                            });
                        }
                        Some(_) => {}
                    },
                    VadEvent::SpeechEnd { sample } => {
                        let end = sample.min(self.clock);
                        self.end(end, EndReason::Vad, &mut out);
                    }
                }
            }
            self.check_unconfirmed(&mut out);
            self.check_length(&mut out);
            self.check_ending(&mut out);
            self.trim();
        }
        // A partial covers everything received, not just up to the window
        // where it fell due.
        self.check_partial(&mut out);
        Ok(out)
    }

    /// Notes that a partial of utterance `id` had words: later partials
    /// may come at the longer interval.
    pub fn partial_shown(&mut self, id: u64) {
        if let Some(current) = self.current.as_mut().filter(|c| c.id == id) {
            current.shown = true;
        }
    }

    /// Whether a partial of the open utterance `id` has shown words.
    pub fn has_shown(&self, id: u64) -> bool {
        self.current.as_ref().is_some_and(|c| c.id == id && c.shown)
    }

    /// Ends the open utterance now (client `finalize`, `stop`, shutdown).
    pub fn finalize(&mut self, reason: EndReason) -> Option<UtteranceEvent> {
        let mut out = Vec::new();
        self.end(self.clock, reason, &mut out);
        // Speech that goes on starts a new utterance once the VAD hears it.
        self.vad.finish(self.clock);
        self.trim();
        out.pop()
    }

    /// Drops the open utterance without a result (the client cleared its
    /// buffer).
    pub fn clear(&mut self) {
        self.current = None;
        self.last_end = self.clock;
        self.vad.finish(self.clock);
        self.trim();
    }

    /// Opens a tentative utterance when the VAD hears speech it has not
    /// confirmed (only worth it for partials), and drops it when that
    /// speech stops unconfirmed.
    fn check_unconfirmed(&mut self, out: &mut Vec<UtteranceEvent>) {
        match (self.vad.unconfirmed(), &self.current) {
            (Some((speech, _)), None) if self.config.partials => self.start(speech, false, out),
            (None, Some(c)) if !c.confirmed => {
                out.push(UtteranceEvent::Dropped { id: c.id });
                self.current = None;
            }
            _ => {}
        }
    }

    fn start(&mut self, speech: usize, confirmed: bool, out: &mut Vec<UtteranceEvent>) {
        let start = speech
            .saturating_sub(ms(self.config.prefix_ms()))
            .max(self.last_end)
            .max(self.base);
        let id = self.next_id;
        self.next_id += 1;
        let next_partial = self
            .config
            .partials
            .then(|| speech + ms(self.config.first_partial_ms));
        self.current = Some(Current {
            id,
            start,
            speech,
            next_partial,
            shown: false,
            ending: None,
            confirmed,
        });
        out.push(if confirmed {
            UtteranceEvent::Started { id, start }
        } else {
            UtteranceEvent::Tentative { id, start }
        });
    }

    fn end(&mut self, end: usize, reason: EndReason, out: &mut Vec<UtteranceEvent>) {
        let Some(current) = self.current.take() else {
            return;
        };
        if !current.confirmed || (!self.config.endpointing && !self.heard) {
            out.push(UtteranceEvent::Dropped { id: current.id });
            return;
        }
        let end = end.max(current.start);
        out.push(UtteranceEvent::Ended {
            id: current.id,
            start: current.start,
            end,
            reason,
            audio: self.audio(current.start, end),
        });
        self.last_end = end;
    }

    /// Cuts an utterance at its maximum length, in the quietest window of
    /// its last quarter; the speech after the cut is a new utterance.
    fn check_length(&mut self, out: &mut Vec<UtteranceEvent>) {
        let max = (self.config.max_utterance_s * SAMPLE_RATE as f64) as usize;
        let Some(current) = self.current.as_ref().filter(|c| c.confirmed) else {
            return;
        };
        if self.clock - current.start < max {
            return;
        }
        let from = current.start + max * 3 / 4;
        let cut = self
            .energy
            .iter()
            .filter(|(at, _)| *at >= from)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(self.clock, |(at, _)| at + WINDOW / 2)
            .min(self.clock);
        self.end(cut, EndReason::MaxLength, out);
        self.heard = false;
        let id = self.next_id;
        self.next_id += 1;
        self.current = Some(Current {
            id,
            start: cut,
            speech: cut,
            next_partial: self
                .config
                .partials
                .then(|| cut + ms(self.config.first_partial_ms)),
            shown: false,
            ending: None,
            confirmed: true,
        });
        out.push(UtteranceEvent::Started { id, start: cut });
    }

    /// Announces where the open utterance will end once its silence is
    /// nearly long enough, and takes it back when speech resumes.
    fn check_ending(&mut self, out: &mut Vec<UtteranceEvent>) {
        let lead = ms(self.config.early_final_ms);
        let Some(current) = &mut self.current else {
            return;
        };
        let pending = self.vad.pending_end();
        match pending {
            Some((end, quiet)) if lead > 0 && quiet + lead >= ms(self.config.silence_ms) => {
                // The same end `push` gives the VAD's speech end.
                let end = end.min(self.clock).max(current.start);
                if current.ending != Some(end) {
                    current.ending = Some(end);
                    let (id, start) = (current.id, current.start);
                    out.push(UtteranceEvent::Ending {
                        id,
                        start,
                        end,
                        audio: self.audio(start, end),
                    });
                }
            }
            None if current.ending.is_some() => {
                current.ending = None;
                out.push(UtteranceEvent::Resumed { id: current.id });
            }
            _ => {}
        }
    }

    fn check_partial(&mut self, out: &mut Vec<UtteranceEvent>) {
        let clock = self.clock;
        let Some(current) = &mut self.current else {
            return;
        };
        // Until a partial has shown words, keep them coming at the short cadence.
        let interval = ms(if current.shown {
            self.config.partial_interval_ms
        } else {
            self.config.first_partial_ms
        });
        // A tentative utterance's partial waits while its speech is quiet
        // (it may be a click about to be dropped); none is due while the
        // final is made early (the audio since is silence, and it would
        // only wait behind the final).
        let hearing = current.confirmed || self.vad.unconfirmed().is_some_and(|(_, now)| now);
        let wanted = hearing && current.ending.is_none();
        match current.next_partial {
            Some(due) if clock >= due && clock > current.speech && wanted => {
                current.next_partial = Some(clock + interval);
                let (id, start) = (current.id, current.start);
                out.push(UtteranceEvent::Partial {
                    id,
                    start,
                    end: clock,
                    audio: self.audio(start, clock),
                });
            }
            _ => {}
        }
    }

    /// Moves a partial later (the caller is still busy with the last one).
    pub fn defer_partial(&mut self) {
        let interval = ms(self.config.partial_interval_ms) / 2;
        if let Some(current) = &mut self.current {
            if let Some(due) = &mut current.next_partial {
                *due = (*due).max(self.clock + interval);
            }
        }
    }

    /// The audio of `start..end` still held (the open utterance, or the
    /// last prefix's worth when there is none).
    pub fn audio(&self, start: usize, end: usize) -> Vec<f32> {
        let (a, b) = (
            start.saturating_sub(self.base),
            end.saturating_sub(self.base),
        );
        self.buffer[a.min(self.buffer.len())..b.min(self.buffer.len())].to_vec()
    }

    /// Drops audio no utterance can need: before the open utterance, or
    /// older than a prefix when there is none.
    fn trim(&mut self) {
        let keep_from = match &self.current {
            Some(c) => c.start,
            // Speech is confirmed ~250 ms after it starts; keep that and the prefix.
            None => self.clock.saturating_sub(ms(self.config.prefix_ms() + 500)),
        };
        if keep_from > self.base {
            let n = (keep_from - self.base).min(self.buffer.len());
            self.buffer.drain(..n);
            self.base += n;
            self.energy.retain(|(at, _)| *at >= keep_from);
        }
    }
}

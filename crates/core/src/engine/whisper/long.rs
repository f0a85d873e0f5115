//! Audio longer than the encoder's window, in chunks of speech recognised
//! side by side.
//!
//! Given more than 30 s, whisper.cpp slides its full window along the audio
//! on one state, each window conditioned on the text before it, so the
//! work is serial and silence costs as much as speech. Instead the VAD's
//! speech is packed into chunks of up to [`CHUNK_S`], cut at pauses
//! ([`chunk::plan`]; long pauses always cut); each chunk is encoded over
//! its own length with the pauses inside it shortened ([`super::pauses`]),
//! silence between chunks is skipped, and chunks run at once, each on its
//! own whisper.cpp state.
//! A chunk is conditioned only on the caller's prompt, never on the text
//! of the chunk before it (as in faster-whisper's batched pipeline), so
//! the transcript does not depend on how many chunks run at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::pauses::{self, Condensed};
use super::{Piece, WhisperEngine};
use crate::audio::SAMPLE_RATE;
use crate::engine::chunk::{self, Chunk, Pauses};
use crate::engine::{EngineError, Segment, SegmentEmitter, TranscribeOptions, ENGINE_STACK_BYTES};
use crate::vad::VadConfig;

/// Longest chunk, in seconds. Whisper recognises a sentence better with
/// its neighbours in the window (it was trained on 30 s windows of running
/// speech), but a longer window costs more than its share: on the 5-minute
/// Golos recordings of `scripts/bench/long_audio_wer.py` (q8_0, 2 threads),
/// chunks of up to 10 / 15 / 20 / 28 s gave 51.8 / 48.0 / 47.5 / 46.4 % WER
/// and took 15.8 / 16.9 / 18.3 / 21.2 s (one chunk per sentence, as cutting
/// at every 1 s pause gives: 52.0 % in 15.8 s).
pub const CHUNK_S: f64 = 20.0;
/// Only a pause of 3 s or more ends a chunk that has room for more speech;
/// shorter pauses between sentences stay in, for the context they carry,
/// but only as much of each as [`pauses::KEPT_PAUSE_S`] (the rest is cut
/// out before the encoder hears it) counts toward the chunk's length.
fn pauses() -> Pauses {
    Pauses {
        split_s: 3.0,
        counted_s: pauses::KEPT_PAUSE_S,
    }
}
/// Most chunks recognised at once (each holds a whisper.cpp state).
const MAX_LANES: usize = 4;

/// How a request's threads are shared among chunks: chunks at once, and
/// threads for each. whisper.cpp's threads share one matrix product and
/// scale less than linearly, while chunks in parallel share nothing.
pub fn lanes(threads: usize, chunks: usize) -> (usize, usize) {
    let lanes = threads.clamp(1, MAX_LANES).min(chunks.max(1));
    (lanes, (threads / lanes).max(1))
}

/// One request's audio, language and settings, shared by its chunks.
pub(super) struct LongAudio<'a> {
    pub audio: &'a [f32],
    pub language: &'a str,
    pub threads: usize,
    pub prompt: Option<&'a str>,
    pub opts: &'a TranscribeOptions,
}

/// How to recognise one long audio: its chunks, and where the VAD heard
/// speech (seconds, padded).
pub(super) struct LongPlan {
    pub chunks: Vec<Chunk>,
    pub speech: Vec<(f64, f64)>,
}

/// Speech enough to tell a language by, in seconds: its detection window is
/// then 512 encoder frames, a third of the 30 s one whisper.cpp detects on.
const DETECT_HEAD_S: f64 = 8.9;

impl LongPlan {
    /// The audio's first [`DETECT_HEAD_S`] of speech, pauses shortened as
    /// the chunks have them, to detect its language from: the first 30 s
    /// may be music or silence, and cost a full encoder window.
    pub fn speech_head(&self, audio: &[f32]) -> Vec<f32> {
        let wanted = (DETECT_HEAD_S * SAMPLE_RATE as f64) as usize;
        let mut head = Vec::with_capacity(wanted);
        for chunk in &self.chunks {
            if head.len() >= wanted {
                break;
            }
            // Condensing no more than twice the head of a chunk bounds the
            // copy; a chunk with more pause than that gives less speech.
            let end = chunk.end.min(chunk.start + 2 * wanted);
            let condensed = Condensed::new(audio, chunk.start, end, &self.speech);
            head.extend_from_slice(
                &condensed.audio[..condensed.audio.len().min(wanted - head.len())],
            );
        }
        head
    }
}

/// Whisper times a segment from the end of the one before it, so in a chunk
/// that holds several sentences a segment after a pause starts in the pause.
/// The VAD knows better: a segment's start moves forward to its first
/// speech, and its end back to its last, where that speech lies within it.
fn fit_to_speech(segment: &mut Segment, speech: &[(f64, f64)]) {
    let (start, end) = (segment.start, segment.end);
    let within = |span: &&(f64, f64)| span.0 < end && span.1 > start;
    let (Some(first), Some(last)) = (speech.iter().find(within), speech.iter().rfind(within))
    else {
        return;
    };
    segment.start = start.max(first.0);
    segment.end = end.min(last.1);
}

impl WhisperEngine {
    /// How to recognise `audio` in chunks, or None when it fits one window,
    /// the reference behaviour was asked for, or the VAD is unavailable.
    pub(super) fn speech_chunks(
        &self,
        audio: &[f32],
        opts: &TranscribeOptions,
    ) -> Option<LongPlan> {
        let seconds = audio.len() as f64 / SAMPLE_RATE as f64;
        if self.full_window || opts.draft || super::encoder_window(seconds).is_some() {
            return None;
        }
        // Padding gives each chunk a little of the context around its speech.
        let config = VadConfig {
            speech_pad_ms: 200,
            ..Default::default()
        };
        let speech = self.speech(audio, config)?;
        let max = (CHUNK_S * SAMPLE_RATE as f64) as usize;
        let in_seconds = |samples: usize| samples as f64 / SAMPLE_RATE as f64;
        Some(LongPlan {
            chunks: chunk::plan(&speech, audio.len(), max, pauses()),
            speech: speech
                .iter()
                .map(|s| (in_seconds(s.start), in_seconds(s.end)))
                .collect(),
        })
    }

    /// Recognises `chunks`, several at once, and emits their segments in
    /// time order as soon as every earlier chunk is done.
    pub(super) fn run_chunks(
        &self,
        long: &LongAudio<'_>,
        plan: &LongPlan,
        emitter: &mut SegmentEmitter<'_>,
    ) -> Result<(), EngineError> {
        let chunks = &plan.chunks[..];
        let (lanes, threads) = lanes(long.threads, chunks.len());
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let duration = emitter.duration();
        let recognise = |i: usize| -> Result<Vec<Segment>, EngineError> {
            let chunk = &chunks[i];
            let condensed = Condensed::new(long.audio, chunk.start, chunk.end, &plan.speech);
            let piece = Piece {
                audio: &condensed.audio,
                offset: 0.0,
                language: long.language,
                threads,
                prompt: long.prompt,
                deadline: None,
                first_window: None,
            };
            let mut own = SegmentEmitter::new(None, duration);
            self.with_state(long.opts, |state| {
                self.full(state, piece, long.opts, &mut own)
            })?;
            let mut segments = own.into_segments();
            segments.iter_mut().for_each(|s| condensed.restore(s));
            Ok(segments)
        };
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            let mut spawned = 0;
            for lane in 0..lanes {
                let (tx, next, failed, recognise) = (tx.clone(), &next, &failed, &recognise);
                let worker = move || {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= chunks.len() {
                            break;
                        }
                        let result = recognise(i);
                        failed.fetch_or(result.is_err(), Ordering::Relaxed);
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                };
                let started = std::thread::Builder::new()
                    .name(format!("whisper-chunk-{lane}"))
                    .stack_size(ENGINE_STACK_BYTES)
                    .spawn_scoped(scope, worker);
                spawned += usize::from(started.is_ok());
            }
            drop(tx);
            if spawned == 0 {
                return Err(EngineError::Inference(
                    "cannot start threads for long audio".into(),
                ));
            }
            // Chunks finish out of order; segments go out in order.
            let mut finished = BTreeMap::new();
            let mut emitted = 0;
            for (i, result) in rx {
                finished.insert(i, result?);
                while let Some(segments) = finished.remove(&emitted) {
                    let chunk = &chunks[emitted];
                    for mut segment in segments {
                        let middle = (segment.start + segment.end) / 2.0;
                        if middle >= chunk.keep_from && middle < chunk.keep_to {
                            fit_to_speech(&mut segment, &plan.speech);
                            emitter.push(segment);
                        }
                    }
                    emitted += 1;
                    let seconds = chunk.end as f64 / SAMPLE_RATE as f64;
                    emitter.progress(emitted, Some(chunks.len()), seconds);
                }
            }
            if emitted < chunks.len() {
                return Err(EngineError::Inference(
                    "a chunk of long audio was not recognised".into(),
                ));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_fit_the_speech_they_hold() {
        let speech = [(0.4, 11.5), (12.5, 23.9), (26.0, 30.0)];
        let fitted = |start: f64, end: f64| {
            let mut s = Segment {
                speaker: None,
                id: 0,
                seek: 0,
                start,
                end,
                text: String::new(),
                tokens: vec![],
                token_times: vec![],
                temperature: 0.0,
                avg_logprob: 0.0,
                compression_ratio: 0.0,
                no_speech_prob: 0.0,
                words: vec![],
                logprobs: vec![],
            };
            fit_to_speech(&mut s, &speech);
            (s.start, s.end)
        };
        // Started in the pause before its speech.
        assert_eq!(fitted(11.6, 23.3), (12.5, 23.3));
        // Ran into the pause after it; spans two stretches of speech.
        assert_eq!(fitted(0.0, 25.0), (0.4, 23.9));
        // No speech inside: left as Whisper timed it.
        assert_eq!(fitted(24.0, 25.5), (24.0, 25.5));
    }

    #[test]
    fn threads_are_shared_among_chunks() {
        assert_eq!(lanes(1, 10), (1, 1));
        assert_eq!(lanes(2, 10), (2, 1));
        assert_eq!(lanes(8, 10), (4, 2));
        assert_eq!(lanes(8, 1), (1, 8));
        assert_eq!(lanes(3, 0), (1, 3));
        assert_eq!(lanes(0, 5), (1, 1));
    }
}

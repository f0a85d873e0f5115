//! Whisper through whisper.cpp (whisper-rs).
//!
//! One `WhisperContext` holds the weights; decoding state lives in a pool of
//! `WhisperState`s, so concurrent requests run in parallel without one
//! global lock and without reallocating the KV cache per request.
//!
//! The encoder costs nearly all of the time, and whisper.cpp runs it over a
//! fixed 30 s window whatever the audio's length. Audio shorter than that is
//! encoded over its own length plus a margin ([`encoder_window`]), unless
//! [`EngineConfig::whisper_full_window`] asks for the reference behaviour;
//! longer audio is recognised in chunks of speech, several at once
//! ([`long`]).

mod fallback;
mod guess;
mod header;
pub use header::languages;
mod language;
use language::{lang_code, Requested};
mod long;
mod pauses;
pub mod quantize;
mod segments;

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use self::segments::Collector;
use super::{
    chunk, Engine, EngineConfig, EngineError, Request, SegmentEmitter, Task, TranscribeOptions,
    Transcript,
};
use crate::audio::SAMPLE_RATE;
use crate::models::EngineKind;
use crate::vad::{SpeechSegment, VadConfig, VadModel};

const LANGS: &[&str] = &["*"];
/// Longest piece of audio given to one `whisper_full` call, in seconds.
pub const LONG_PIECE_S: f64 = 600.0;
/// Longest prompt handed to whisper.cpp, in characters (see [`bounded_prompt`]).
pub const MAX_PROMPT_CHARS: usize = 1000;

pub struct WhisperEngine {
    name: String,
    ctx: WhisperContext,
    /// States for decoding that never samples (see [`WhisperEngine::with_state`]).
    states: StatePool,
    /// States only language detection uses (see [`language`]).
    detect_states: language::DetectStates,
    /// The language this model detected last (-1: none yet), which the
    /// next clip is decoded in first (see [`guess`]).
    recent_language: AtomicI32,
    threads: usize,
    full_window: bool,
    /// Finds pauses to cut long audio at, loaded on first need.
    vad: OnceLock<Result<Arc<VadModel>, String>>,
}

fn inference(e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(e.to_string())
}

impl WhisperEngine {
    pub fn load(name: &str, path: &Path, config: &EngineConfig) -> Result<Self, EngineError> {
        header::check_header(path).map_err(|message| EngineError::Load {
            path: path.display().to_string(),
            message,
        })?;
        whisper_rs::install_logging_hooks();
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| EngineError::Load {
                path: path.display().to_string(),
                message: format!("{e} (is it a whisper.cpp ggml model?)"),
            })?;
        Ok(WhisperEngine {
            name: name.to_string(),
            ctx,
            states: StatePool::default(),
            detect_states: Default::default(),
            recent_language: AtomicI32::new(-1),
            threads: config.threads.max(1),
            full_window: config.whisper_full_window,
            vad: OnceLock::new(),
        })
    }

    fn run(&self, req: &Request<'_>) -> Result<Transcript, EngineError> {
        let opts = req.options;
        let audio = req.audio;
        let duration = audio.len() as f64 / SAMPLE_RATE as f64;
        let threads = if opts.threads > 0 {
            opts.threads
        } else {
            self.threads
        };
        if opts.task == Task::Translate && !self.ctx.is_multilingual() {
            return Err(EngineError::InvalidOptions(
                "this Whisper model is English-only and cannot translate".into(),
            ));
        }
        // whisper.cpp takes the prompt as a C string.
        if opts
            .initial_prompt
            .as_deref()
            .is_some_and(|p| p.contains('\0'))
        {
            return Err(EngineError::InvalidOptions(
                "the prompt must not contain NUL characters".into(),
            ));
        }
        let plan = self.speech_chunks(audio, opts);
        // Long audio is detected from its first speech (`speech_head`).
        let head = match &plan {
            Some(plan) => Cow::Owned(plan.speech_head(audio)),
            None => Cow::Borrowed(&audio[..audio.len().min(30 * SAMPLE_RATE as usize)]),
        };
        let mut emitter = SegmentEmitter::new(opts.events.as_ref(), duration);
        let (language, language_probability, decoded) = match self.requested_language(opts)? {
            Requested::Known(language) => (language, None, false),
            Requested::Detect(_) if head.is_empty() => {
                return Ok(Transcript::empty(duration, opts.task, None));
            }
            // A short clip is decoded in a guess first (see `guess`).
            Requested::Detect(candidates)
                if plan.is_none()
                    && head.len() == audio.len()
                    && opts.temperature <= 0.0
                    && !self.bounds_fallback(audio, opts) =>
            {
                let ((id, p), decoded) =
                    self.decode_in_guess(audio, opts, &candidates, threads, &mut emitter)?;
                (lang_code(id), Some(p), decoded)
            }
            Requested::Detect(candidates) => {
                let (id, p) = self.detect_language(&head, &candidates, threads)?;
                (lang_code(id), Some(p), false)
            }
        };
        match plan {
            _ if decoded => {}
            Some(plan) => {
                let long = long::LongAudio {
                    audio,
                    language: &language,
                    threads,
                    prompt: opts.initial_prompt.as_deref().map(bounded_prompt),
                    opts,
                };
                self.run_chunks(&long, &plan, &mut emitter)?;
            }
            None if self.bounds_fallback(audio, opts) => {
                self.bounded_fallback(audio, opts, &language, threads, &mut emitter)?
            }
            None => self.with_state(opts, |state| {
                self.run_pieces(state, audio, opts, &language, threads, &mut emitter)
            })?,
        }
        let mut transcript = Transcript {
            task: opts.task,
            language: Some(language),
            language_probability,
            duration,
            text: String::new(),
            segments: emitter.into_segments(),
        };
        transcript.rebuild_text();
        Ok(transcript)
    }

    /// Recognises `audio` the reference way: whisper.cpp slides its window
    /// along each piece, conditioned on the text before it.
    fn run_pieces(
        &self,
        state: &mut WhisperState,
        audio: &[f32],
        opts: &TranscribeOptions,
        language: &str,
        threads: usize,
        emitter: &mut SegmentEmitter<'_>,
    ) -> Result<(), EngineError> {
        let mut prompt = opts
            .initial_prompt
            .as_deref()
            .map(|p| bounded_prompt(p).to_string());
        for (start, end) in self.pieces(audio) {
            let before = emitter.segments().len();
            let piece = Piece {
                audio: &audio[start..end],
                offset: start as f64 / SAMPLE_RATE as f64,
                language,
                threads,
                prompt: prompt.as_deref(),
                deadline: None,
                first_window: None,
            };
            self.full(state, piece, opts, emitter)?;
            // The next piece is conditioned on this one's text, as
            // whisper.cpp conditions each window on the one before.
            let said = super::join_text(&emitter.segments()[before..]);
            if !said.is_empty() {
                prompt = Some(bounded_prompt(&said).to_string());
            }
        }
        Ok(())
    }

    /// Runs `f` on a decoding state: a pooled one when decoding is greedy,
    /// a new one when it may sample (a temperature above 0, or the
    /// fallback). whisper.cpp seeds its first decoder's random generator
    /// only when a state is created, so on a reused state a sampled
    /// transcript would depend on what that state decoded before; on a new
    /// one the same audio always gives the same text, whatever the server
    /// did earlier or how many chunks ran at once. A state costs about
    /// 20 ms to create for Whisper base.
    fn with_state<T>(
        &self,
        opts: &TranscribeOptions,
        f: impl FnOnce(&mut WhisperState) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let samples = opts.temperature > 0.0 || !(opts.no_fallback || opts.draft);
        if samples {
            f(&mut self.ctx.create_state().map_err(inference)?)
        } else {
            self.states.with(&self.ctx, f)
        }
    }

    /// Long audio in contiguous pieces of at most [`LONG_PIECE_S`], cut in
    /// pauses the VAD finds: whisper.cpp computes the mel spectrogram of its
    /// whole input at once, which for hours of audio is hundreds of MB.
    fn pieces(&self, audio: &[f32]) -> Vec<(usize, usize)> {
        let max = (LONG_PIECE_S * SAMPLE_RATE as f64) as usize;
        if audio.len() <= max {
            return vec![(0, audio.len())];
        }
        let speech = self.speech(audio, Default::default()).unwrap_or_default();
        chunk::contiguous(&speech, audio.len(), max, max / 10)
    }

    /// Where the VAD hears speech in `audio`; None when it cannot run.
    fn speech(&self, audio: &[f32], config: VadConfig) -> Option<Vec<SpeechSegment>> {
        let vad = self
            .vad
            .get_or_init(|| VadModel::embedded().map_err(|e| e.to_string()))
            .as_ref()
            .ok()?;
        crate::vad::speech_segments(vad, audio, config).ok()
    }

    /// Runs `whisper_full` on one piece, announcing its segments on the
    /// whole audio's timeline.
    fn full(
        &self,
        state: &mut WhisperState,
        piece: Piece<'_>,
        opts: &TranscribeOptions,
        emitter: &mut SegmentEmitter<'_>,
    ) -> Result<(), EngineError> {
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 5 });
        params.set_n_threads(piece.threads as i32);
        params.set_language(Some(piece.language));
        params.set_translate(opts.task == Task::Translate);
        params.set_token_timestamps(opts.word_timestamps);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        // OpenAI's decoder fallback: retry a window at a higher temperature
        // when its output is too repetitive (compression ratio, expressed
        // by whisper.cpp as token entropy), too improbable (average
        // log-probability), unless the window is judged silent.
        params.set_temperature(opts.temperature.max(0.0));
        params.set_temperature_inc(if opts.no_fallback || opts.draft {
            0.0
        } else {
            0.2
        });
        // Speech holds only so many tokens a second. Without a cap, a loop
        // ("60 60 60 …") runs to whisper.cpp's 220-token limit, and with the
        // fallback that is 6 temperatures × 5 sampled decoders of it: over a
        // minute for one second of noise.
        params.set_max_tokens(max_tokens(
            piece.audio.len() as f64 / SAMPLE_RATE as f64,
            opts.draft,
        ));
        // Drafts (live partials) always trade the full window for speed.
        if opts.draft || !self.full_window {
            if let Some(frames) = encoder_window(piece.audio.len() as f64 / SAMPLE_RATE as f64) {
                params.set_audio_ctx(frames);
            }
        }
        params.set_entropy_thold(2.4);
        params.set_logprob_thold(-1.0);
        params.set_no_speech_thold(0.6);
        if let Some(prompt) = piece.prompt.filter(|p| !p.is_empty()) {
            params.set_initial_prompt(prompt);
        }
        let mut collector = Collector::new(
            emitter,
            piece.offset,
            piece.audio.len() as f64 / SAMPLE_RATE as f64,
            opts.word_timestamps,
            opts.temperature,
            self.ctx.token_eot(),
        );
        let collector_ptr = &mut collector as *mut Collector<'_, '_> as *mut std::ffi::c_void;
        let abort = Abort {
            cancel: opts.cancel.clone(),
            deadline: piece.deadline,
        };
        // SAFETY: the callbacks receive `collector_ptr`, `abort` and the
        // first window; all outlive `full`, the only caller of the
        // callbacks, and nothing else touches them until `full` returns.
        unsafe {
            params.set_new_segment_callback(Some(segments::on_new_segment));
            params.set_new_segment_callback_user_data(collector_ptr);
            params.set_progress_callback(Some(segments::on_progress));
            params.set_progress_callback_user_data(collector_ptr);
            if let Some(window) = piece.first_window {
                params.set_start_encoder_callback(Some(guess::on_encoder_begin));
                params.set_start_encoder_callback_user_data(
                    window as *mut guess::FirstWindow as *mut std::ffi::c_void,
                );
            }
            if abort.cancel.is_some() || abort.deadline.is_some() {
                params.set_abort_callback(Some(should_abort));
                params
                    .set_abort_callback_user_data(&abort as *const Abort as *mut std::ffi::c_void);
            }
        }
        let result = state.full(params, piece.audio);
        drop(abort);
        if opts.is_cancelled() {
            return Err(EngineError::cancelled());
        }
        result.map_err(inference)?;
        if collector.panicked {
            return Err(EngineError::Inference(
                "reading whisper.cpp's segments failed".into(),
            ));
        }
        if collector.seen < state.full_n_segments() {
            return Err(EngineError::Inference(
                "whisper.cpp produced segments without announcing them".into(),
            ));
        }
        Ok(())
    }
}

/// Encoder frames per second of audio (10 ms mel frames, halved by the
/// encoder's strided convolution).
const ENCODER_FRAMES_PER_SECOND: f64 = 50.0;
/// The encoder's full window: 30 s.
const FULL_WINDOW: u32 = 1500;
/// Frames added after the audio's end (1.28 s of the padding the model saw
/// in training), and the step windows are rounded up to.
const WINDOW_MARGIN: u32 = 64;
const WINDOW_STEP: u32 = 64;

/// The encoder window for `seconds` of audio, in encoder frames; None when
/// that is the full window anyway (audio near or over 30 s, which
/// whisper.cpp slides its window over).
pub fn encoder_window(seconds: f64) -> Option<i32> {
    let needed = (seconds.max(0.0) * ENCODER_FRAMES_PER_SECOND).ceil() as u32 + WINDOW_MARGIN;
    let frames = needed.next_multiple_of(WINDOW_STEP);
    (frames < FULL_WINDOW).then_some(frames as i32)
}

/// The most tokens a segment of `seconds` of audio may decode: fast speech
/// is about 4 words, 8 tokens, a second (more in scripts with short
/// tokens). Drafts (live partials, no fallback) get less room.
fn max_tokens(seconds: f64, draft: bool) -> i32 {
    let (per_second, floor) = if draft { (10.0, 8) } else { (15.0, 16) };
    (seconds.max(0.0) * per_second).ceil() as i32 + floor
}

/// Reusable whisper.cpp states (each holds its KV caches and buffers).
#[derive(Default)]
struct StatePool(Mutex<Vec<WhisperState>>);

impl StatePool {
    /// Runs `f` on a pooled state, creating one when all are in use.
    fn with<T>(
        &self,
        ctx: &WhisperContext,
        f: impl FnOnce(&mut WhisperState) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let pooled = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut state = match pooled {
            Some(s) => s,
            None => ctx.create_state().map_err(inference)?,
        };
        let result = f(&mut state);
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(state);
        result
    }
}

/// One `whisper_full` call's input.
struct Piece<'a> {
    audio: &'a [f32],
    /// Where the piece starts in the whole audio, in seconds.
    offset: f64,
    language: &'a str,
    threads: usize,
    prompt: Option<&'a str>,
    /// Give up at this time (a bounded fallback).
    deadline: Option<Instant>,
    /// Read the language from the first encoder window (see [`guess`]).
    first_window: Option<&'a mut guess::FirstWindow>,
}

/// When whisper.cpp should stop a `whisper_full` call.
struct Abort {
    /// The request's cancel flag.
    cancel: Option<Arc<AtomicBool>>,
    deadline: Option<Instant>,
}

/// whisper.cpp's abort callback.
///
/// # Safety
/// `data` must be the call's [`Abort`], alive until `full` returns.
unsafe extern "C" fn should_abort(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: per the contract above.
    let abort = unsafe { &*(data as *const Abort) };
    abort
        .cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::Relaxed))
        || abort.deadline.is_some_and(|d| Instant::now() >= d)
}

/// The tail of a prompt that whisper.cpp can use: it keeps only the last
/// 224 tokens anyway, and its tokenizer's recursive regular expression
/// needs stack in proportion to a run of letters, so a user-sized prompt
/// is cut to its last [`MAX_PROMPT_CHARS`] characters first.
fn bounded_prompt(prompt: &str) -> &str {
    match prompt.char_indices().rev().nth(MAX_PROMPT_CHARS - 1) {
        Some((at, _)) => &prompt[at..],
        None => prompt,
    }
}

impl Engine for WhisperEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Whisper
    }

    fn languages(&self) -> &[&'static str] {
        LANGS
    }

    /// Whisper learned from 30 s windows in which speech seldom starts at
    /// the first frame, and it mishears an utterance cut 300 ms before its
    /// speech: streaming the Golos clips joined by pauses (silent or
    /// noisy), Whisper base's finals with 300 ms were 7–11 WER points
    /// behind the same clips as files, with 1 s at most 2. Much more
    /// (1.5 s, mostly silence) set off a repetition loop.
    fn speech_prefix_ms(&self) -> u32 {
        1000
    }

    /// A Whisper base partial takes ~250 ms on 2 cores: due at 150 ms its
    /// words came at p50 0.41 s after the speech began, at 200 ms 0.45 s.
    fn first_partial_ms(&self) -> u32 {
        150
    }

    fn transcribe_batch(&self, requests: &[Request<'_>]) -> Vec<Result<Transcript, EngineError>> {
        // whisper.cpp decodes one stream per state; items run in turn.
        requests.iter().map(|req| self.run(req)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_window_covers_the_audio_and_a_margin() {
        assert_eq!(encoder_window(0.0), Some(64));
        // A 2.4 s clip: 120 frames of audio, 184 with the margin.
        assert_eq!(encoder_window(2.4), Some(192));
        assert_eq!(encoder_window(11.0), Some(640));
        assert_eq!(encoder_window(28.0), Some(1472));
        // Near or over 30 s the full window is used.
        assert_eq!(encoder_window(29.0), None);
        assert_eq!(encoder_window(30.0), None);
        assert_eq!(encoder_window(600.0), None);
        for tenth in 0..=281 {
            let seconds = tenth as f64 / 10.0;
            let frames = encoder_window(seconds).unwrap() as u32;
            assert!(frames as f64 >= seconds * 50.0 + WINDOW_MARGIN as f64);
            assert_eq!(frames % WINDOW_STEP, 0);
        }
    }
}

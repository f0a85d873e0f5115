//! Segments out of whisper.cpp while `whisper_full` runs.
//!
//! whisper.cpp calls its new-segment callback after each decoded window
//! (without DTW, for every segment it adds), and its progress callback as
//! the window advances. glagol registers its own `extern "C"` callbacks with
//! a pointer to a [`Collector`] on the calling stack: whisper-rs 0.16's
//! closure setters leak their boxes (a closure holding a channel sender
//! then keeps the channel open for ever) and its abort setter passes a
//! pointer of the wrong type. The collector reads each new segment straight
//! from the state, so the transcript is built from exactly the segments
//! that were announced.

use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use whisper_rs::whisper_rs_sys as sys;

use crate::engine::{compression_ratio, Segment, SegmentEmitter, TokenLogprob, Word};

/// Per-call state the callbacks write into. Lives on the stack of the
/// thread that runs `full`, for the whole call.
pub(super) struct Collector<'e, 'a> {
    emitter: &'e mut SegmentEmitter<'a>,
    /// Where the piece starts in the whole audio, and its length (seconds).
    offset: f64,
    length: f64,
    word_timestamps: bool,
    temperature: f32,
    /// First special token id: tokens at or above it are not text.
    eot: i32,
    /// Segments of the state read so far (whisper.cpp's numbering).
    pub seen: i32,
    /// A callback panicked; the result cannot be trusted.
    pub panicked: bool,
}

impl<'e, 'a> Collector<'e, 'a> {
    pub fn new(
        emitter: &'e mut SegmentEmitter<'a>,
        offset: f64,
        length: f64,
        word_timestamps: bool,
        temperature: f32,
        eot: i32,
    ) -> Self {
        Collector {
            emitter,
            offset,
            length,
            word_timestamps,
            temperature,
            eot,
            seen: 0,
            panicked: false,
        }
    }

    /// Reads segments `seen..n` of the state.
    ///
    /// # Safety
    /// `ctx` and `state` must be the live pointers whisper.cpp passes to its
    /// callbacks, used on the thread that runs `whisper_full`.
    unsafe fn read_new(&mut self, ctx: *mut sys::whisper_context, state: *mut sys::whisper_state) {
        // SAFETY: the caller guarantees `state` is live.
        let n = unsafe { sys::whisper_full_n_segments_from_state(state) };
        while self.seen < n {
            // SAFETY: `seen < n`, a valid segment index of a live state.
            if let Some(segment) = unsafe { self.read(ctx, state, self.seen) } {
                self.emitter.push(segment);
            }
            self.seen += 1;
        }
        let seconds = self
            .emitter
            .segments()
            .last()
            .map_or(self.offset, |s| s.end);
        self.emitter
            .progress(self.emitter.segments().len(), None, seconds);
    }

    /// One segment, or None when it carries no words (whisper.cpp's
    /// `[BLANK_AUDIO]` style markers, empty text).
    ///
    /// # Safety
    /// As [`Collector::read_new`], and `i` must be a segment index of `state`.
    unsafe fn read(
        &self,
        ctx: *mut sys::whisper_context,
        state: *mut sys::whisper_state,
        i: c_int,
    ) -> Option<Segment> {
        // SAFETY (whole block): every call reads segment `i` or its tokens
        // from a live state; strings are NUL-terminated and owned by the state.
        unsafe {
            let text = cstr(sys::whisper_full_get_segment_text_from_state(state, i));
            if text.trim().is_empty() || is_annotation(text.trim()) {
                return None;
            }
            let at = |t: i64| self.offset + t as f64 / 100.0;
            let start = at(sys::whisper_full_get_segment_t0_from_state(state, i));
            let end = at(sys::whisper_full_get_segment_t1_from_state(state, i));
            let mut tokens = Vec::new();
            let mut logprobs = Vec::new();
            let mut logprob_sum = 0.0f32;
            let mut words = WordBuilder::default();
            for t in 0..sys::whisper_full_n_tokens_from_state(state, i) {
                let data = sys::whisper_full_get_token_data_from_state(state, i, t);
                if data.id >= self.eot {
                    continue; // special and timestamp tokens
                }
                tokens.push(data.id);
                logprob_sum += data.plog;
                // A byte-level BPE token may hold part of a character.
                let bytes = cbytes(sys::whisper_full_get_token_text_from_state(
                    ctx, state, i, t,
                ));
                let piece = String::from_utf8_lossy(&bytes).into_owned();
                if self.word_timestamps {
                    words.add(&piece, at(data.t0), at(data.t1), data.p);
                }
                logprobs.push(TokenLogprob {
                    token: piece,
                    bytes,
                    logprob: data.plog,
                });
            }
            let avg_logprob = if tokens.is_empty() {
                0.0
            } else {
                logprob_sum / tokens.len() as f32
            };
            Some(Segment {
                speaker: None,
                id: 0,
                seek: (start * 100.0) as usize,
                start,
                end,
                compression_ratio: compression_ratio(text.trim()),
                text,
                tokens,
                token_times: Vec::new(),
                temperature: self.temperature,
                avg_logprob,
                no_speech_prob: sys::whisper_full_get_segment_no_speech_prob_from_state(state, i),
                words: words.finish(),
                logprobs,
            })
        }
    }
}

/// A C string owned by whisper.cpp, as UTF-8 (invalid bytes replaced).
///
/// # Safety
/// `p` must be null or a NUL-terminated string alive for this call.
unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated per the contract above.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The bytes of a C string owned by whisper.cpp.
///
/// # Safety
/// As [`cstr`].
unsafe fn cbytes(p: *const std::ffi::c_char) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: non-null and NUL-terminated per the contract above.
    unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
}

/// whisper.cpp's new-segment callback.
///
/// # Safety
/// `user_data` must point to a live [`Collector`] used by no one else while
/// `whisper_full` runs (see `run` in the engine).
pub(super) unsafe extern "C" fn on_new_segment(
    ctx: *mut sys::whisper_context,
    state: *mut sys::whisper_state,
    _n_new: c_int,
    user_data: *mut c_void,
) {
    // SAFETY: per the contract, `user_data` is our exclusive Collector.
    let collector = unsafe { &mut *(user_data as *mut Collector<'_, '_>) };
    // A panic must not unwind into C.
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: pointers straight from whisper.cpp, on its thread.
        unsafe { collector.read_new(ctx, state) }
    }));
    if result.is_err() {
        collector.panicked = true;
    }
}

/// whisper.cpp's progress callback (percent of the audio decoded).
///
/// # Safety
/// As [`on_new_segment`].
pub(super) unsafe extern "C" fn on_progress(
    _ctx: *mut sys::whisper_context,
    _state: *mut sys::whisper_state,
    percent: c_int,
    user_data: *mut c_void,
) {
    // SAFETY: per the contract, `user_data` is our exclusive Collector.
    let collector = unsafe { &mut *(user_data as *mut Collector<'_, '_>) };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let seconds = collector.offset + percent.clamp(0, 100) as f64 / 100.0 * collector.length;
        let e = &collector.emitter;
        e.progress(e.segments().len(), None, seconds);
    }));
    if result.is_err() {
        collector.panicked = true;
    }
}

/// Groups token pieces into words: a piece that starts with a space starts
/// a word; a word's probability is the mean of its tokens'.
#[derive(Default)]
struct WordBuilder {
    words: Vec<Word>,
    probs: Vec<f32>,
}

impl WordBuilder {
    fn add(&mut self, piece: &str, t0: f64, t1: f64, p: f32) {
        let starts_word = piece.starts_with(' ') || self.words.is_empty();
        if starts_word && !piece.trim().is_empty() {
            self.close();
            self.words.push(Word {
                speaker: None,
                word: piece.to_string(),
                start: t0,
                end: t1,
                probability: 0.0,
            });
        } else if let Some(w) = self.words.last_mut() {
            w.word.push_str(piece);
            w.end = t1.max(w.end);
        } else {
            return;
        }
        self.probs.push(p);
    }

    fn close(&mut self) {
        if let Some(w) = self.words.last_mut() {
            if !self.probs.is_empty() {
                w.probability = self.probs.iter().sum::<f32>() / self.probs.len() as f32;
            }
            w.word = w.word.trim_start().to_string();
        }
        self.probs.clear();
    }

    fn finish(mut self) -> Vec<Word> {
        self.close();
        self.words.retain(|w| !w.word.trim().is_empty());
        self.words
    }
}

/// whisper.cpp's non-speech markers such as `[BLANK_AUDIO]`: not words
/// anyone said, so they never reach a transcript.
fn is_annotation(text: &str) -> bool {
    text.len() > 2
        && text.starts_with('[')
        && text.ends_with(']')
        && text[1..text.len() - 1]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c == ' ')
}

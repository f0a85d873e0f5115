//! Detecting a short clip's language from its own decoding.
//!
//! The encoder costs nearly all of a short clip's time, and detection needs
//! an encoder pass of its own before the language is known; whisper.cpp
//! cannot decode from a pass it did not make. So a clip whose language must
//! be detected is decoded *speculatively* in a guess (the language this
//! model detected last, else English), greedily, and the language is then
//! read from that same decoding's first encoder window with one decoder
//! step ([`FirstWindow`]). When the guess was right (the usual case: most
//! servers hear one language) and the greedy text passes whisper.cpp's
//! fallback rule, that text is the answer, exactly what decoding with the
//! language given produces, and detection cost one decoder step. Otherwise
//! the clip is decoded again in the detected language. Either way the
//! language is chosen from the clip's own encoder window, the one its
//! decoding uses, whatever the guess was.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use whisper_rs::whisper_rs_sys as sys;
use whisper_rs::WhisperContext;

use super::fallback::needs_fallback;
use super::language::{choose, lang_code, lang_id, Detected};
use super::{bounded_prompt, inference, Piece, WhisperEngine};
use crate::engine::{EngineError, SegmentEmitter, TranscribeOptions};

impl WhisperEngine {
    /// Decodes `audio` (one piece, at most 30 s) greedily in a guessed
    /// language and detects its language from the same encoder pass. The
    /// segments go to `emitter` only when the guess was right and the
    /// greedy text is final (it passes the fallback rule where `opts` has
    /// the fallback); the bool says whether they did.
    pub(super) fn decode_in_guess(
        &self,
        audio: &[f32],
        opts: &TranscribeOptions,
        candidates: &[i32],
        threads: usize,
        emitter: &mut SegmentEmitter<'_>,
    ) -> Result<(Detected, bool), EngineError> {
        let guess = match self.recent_language.load(Ordering::Relaxed) {
            id if id >= 0 && (candidates.is_empty() || candidates.contains(&id)) => id,
            _ => candidates
                .first()
                .copied()
                .map_or_else(|| lang_id("en"), Ok)?,
        };
        let greedy = TranscribeOptions {
            no_fallback: true,
            ..opts.clone()
        };
        let falls_back = !(opts.no_fallback || opts.draft);
        let code = lang_code(guess);
        let mut window = FirstWindow::new(&self.ctx, threads);
        let mut own = SegmentEmitter::new(None, emitter.duration());
        let (eot, beg) = (self.ctx.token_eot(), self.ctx.token_beg());
        let (probs, retry) = self.states.with(&self.ctx, |state| {
            let piece = Piece {
                audio,
                offset: 0.0,
                language: &code,
                threads,
                prompt: opts.initial_prompt.as_deref().map(bounded_prompt),
                deadline: None,
                first_window: Some(&mut window),
            };
            self.full(state, piece, &greedy, &mut own)?;
            let probs = match window.probs.take() {
                Some(probs) => probs,
                // One window: its encoding is still the state's.
                None => {
                    state
                        .decode(&[self.ctx.token_sot()], 0, threads)
                        .map_err(inference)?;
                    language_probs(state.get_logits().map_err(inference)?, window.sot)
                }
            };
            Ok((probs, falls_back && needs_fallback(state, eot, beg)))
        })?;
        if window.failed {
            return Err(EngineError::Inference(
                "reading the language from whisper.cpp's encoder window failed".into(),
            ));
        }
        let detected = choose(&probs, candidates);
        self.recent_language.store(detected.0, Ordering::Relaxed);
        let kept = detected.0 == guess && !retry;
        if kept {
            for segment in own.into_segments() {
                emitter.push(segment);
            }
            emitter.progress(emitter.segments().len(), None, emitter.duration());
        }
        Ok((detected, kept))
    }
}

/// Every language's probability from the logits after the start-of-
/// transcript token, as `whisper_lang_auto_detect` computes them: a
/// softmax over the language tokens, which follow that token.
fn language_probs(logits: &[f32], sot: i32) -> Vec<f32> {
    let count = (whisper_rs::get_lang_max_id() + 1) as usize;
    let first = sot as usize + 1;
    let Some(lang_logits) = logits.get(first..first + count) else {
        return vec![0.0; count];
    };
    let max = lang_logits
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = lang_logits
        .iter()
        .map(|&l| f64::from(l - max).exp())
        .collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}

/// Reads the language from a decoding's first encoder window. whisper.cpp
/// calls [`on_encoder_begin`] before each window's encoder pass; before
/// the second, the first window's decoding is done and its encoding is
/// still the state's, so one decoder step over the start-of-transcript
/// token gives the languages' logits. The next window's decoding clears
/// the decoder cache that step used. The decoding goes on even when the
/// guess was wrong: whisper.cpp logs a stop as an error.
pub(super) struct FirstWindow {
    sot: i32,
    threads: c_int,
    windows: u32,
    /// The first window's language probabilities, once read.
    probs: Option<Vec<f32>>,
    /// Reading them failed (or panicked).
    failed: bool,
}

impl FirstWindow {
    fn new(ctx: &WhisperContext, threads: usize) -> Self {
        FirstWindow {
            sot: ctx.token_sot(),
            threads: threads as c_int,
            windows: 0,
            probs: None,
            failed: false,
        }
    }
}

/// whisper.cpp's encoder-begin callback; it never stops the decoding.
///
/// # Safety
/// `user_data` must be the call's exclusive [`FirstWindow`], alive until
/// `whisper_full` returns; `ctx` and `state` are whisper.cpp's own.
pub(super) unsafe extern "C" fn on_encoder_begin(
    ctx: *mut sys::whisper_context,
    state: *mut sys::whisper_state,
    user_data: *mut c_void,
) -> bool {
    // SAFETY: per the contract, `user_data` is our exclusive FirstWindow.
    let window = unsafe { &mut *(user_data as *mut FirstWindow) };
    window.windows += 1;
    if window.windows != 2 {
        return true;
    }
    let read = catch_unwind(AssertUnwindSafe(|| {
        let sot = window.sot;
        // SAFETY: whisper.cpp is between windows of this state: nothing
        // else uses it, and the pointers are valid for the call.
        unsafe {
            if sys::whisper_decode_with_state(ctx, state, &sot, 1, 0, window.threads) != 0 {
                return None;
            }
            let logits = sys::whisper_get_logits_from_state(state);
            let n_vocab = sys::whisper_n_vocab(ctx);
            (!logits.is_null() && n_vocab > 0)
                .then(|| language_probs(std::slice::from_raw_parts(logits, n_vocab as usize), sot))
        }
    }));
    match read {
        Ok(Some(probs)) => window.probs = Some(probs),
        _ => window.failed = true,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_probabilities_are_a_softmax_over_the_language_tokens() {
        let count = (whisper_rs::get_lang_max_id() + 1) as usize;
        let sot = 10;
        let mut logits = vec![100.0f32; sot as usize + 1 + count + 5];
        let langs = &mut logits[sot as usize + 1..][..count];
        langs.fill(0.0);
        langs[3] = 2.0_f32.ln();
        let probs = language_probs(&logits, sot);
        assert_eq!(probs.len(), count);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(
            (probs[3] / probs[0] - 2.0).abs() < 1e-4,
            "{}",
            probs[3] / probs[0]
        );
        assert_eq!(
            language_probs(&logits[..sot as usize + 2], sot),
            vec![0.0; count]
        );
    }
}

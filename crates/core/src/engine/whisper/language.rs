//! Which language Whisper decodes in, and detecting it before decoding.
//!
//! A short clip's language is detected from its own decoding ([`super::guess`]).
//! Long audio is detected from its first speech before decoding, by
//! [`DetectStates`]; so is a clip decoded by sampling (a temperature above
//! 0) or with the time-bounded fallback, which a greedy guess cannot stand
//! in for.
//!
//! whisper.cpp's `whisper_lang_auto_detect` runs the encoder over the
//! state's window: the `audio_ctx` of that state's last `whisper_full`, or
//! the full 30 s on a state that never ran one. A 3 s clip would pay for
//! 30 s of encoder, three times what recognising it costs. Only
//! `whisper_full` sets a state's window, so a detection state is *primed*:
//! one greedy `whisper_full` over 200 ms of silence with the wanted
//! `audio_ctx` (a small encoder pass and a few decoder steps). Its window
//! then stays put, since detection states run nothing else, and windows
//! come in a few sizes so that primed states are reused.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperState};

use super::{encoder_window, inference, WhisperEngine};
use crate::audio::SAMPLE_RATE;
use crate::engine::{EngineError, TranscribeOptions};

/// The language a request decodes in.
pub(super) enum Requested {
    /// Given, or the only one the request or model allows.
    Known(String),
    /// To detect, among these (any when empty).
    Detect(Vec<i32>),
}

/// A detected language: its id and probability.
pub(super) type Detected = (i32, f32);

impl WhisperEngine {
    /// What `opts` says about the language.
    pub(super) fn requested_language(
        &self,
        opts: &TranscribeOptions,
    ) -> Result<Requested, EngineError> {
        if let Some(l) = opts
            .language
            .as_deref()
            .filter(|l| !l.is_empty() && *l != "auto")
        {
            lang_id(l)?;
            return Ok(Requested::Known(l.to_string()));
        }
        let candidates = opts
            .languages
            .iter()
            .map(|l| lang_id(l))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.ctx.is_multilingual() {
            let english = lang_id("en")?;
            if !candidates.is_empty() && !candidates.contains(&english) {
                return Err(EngineError::UnsupportedLanguage(format!(
                    "{} (this model knows English only)",
                    crate::engine::quoted(&opts.languages.join(","))
                )));
            }
            return Ok(Requested::Known("en".to_string()));
        }
        Ok(match candidates[..] {
            [only] => Requested::Known(lang_code(only)),
            _ => Requested::Detect(candidates),
        })
    }

    /// Detects the language of `head` (at most 30 s) before decoding.
    pub(super) fn detect_language(
        &self,
        head: &[f32],
        candidates: &[i32],
        threads: usize,
    ) -> Result<Detected, EngineError> {
        let (_, probs) = self
            .detect_states
            .detect(&self.ctx, head, threads, self.full_window)?;
        let detected = choose(&probs, candidates);
        self.recent_language.store(detected.0, Ordering::Relaxed);
        Ok(detected)
    }
}

/// The most probable language of `candidates` (of all when empty).
pub(super) fn choose(probs: &[f32], candidates: &[i32]) -> Detected {
    let p = |id: i32| probs.get(id as usize).copied().unwrap_or(0.0);
    let all: Vec<i32>;
    let among = if candidates.is_empty() {
        all = (0..probs.len() as i32).collect();
        &all[..]
    } else {
        candidates
    };
    let id = among
        .iter()
        .copied()
        .max_by(|a, b| p(*a).total_cmp(&p(*b)))
        .unwrap_or(0);
    (id, p(id))
}

/// Window sizes detection uses, in encoder frames (about 5, 10 and 20 s);
/// longer audio is detected over the full window.
const DETECT_WINDOWS: [i32; 3] = [256, 512, 1024];

/// The full 30 s window, as `audio_ctx` says it.
const FULL: i32 = 0;

/// The detection window for `seconds` of audio.
pub(super) fn detect_window(seconds: f64) -> i32 {
    encoder_window(seconds)
        .and_then(|needed| DETECT_WINDOWS.into_iter().find(|&w| w >= needed))
        .unwrap_or(FULL)
}

struct Primed {
    state: WhisperState,
    /// The window its detection encodes.
    window: i32,
}

/// States that only detect languages, each primed to a window.
#[derive(Default)]
pub(super) struct DetectStates(Mutex<Vec<Primed>>);

impl DetectStates {
    /// The most probable language of `head` (at most 30 s of audio) and
    /// every language's probability, over its own window unless
    /// `full_window`.
    pub fn detect(
        &self,
        ctx: &WhisperContext,
        head: &[f32],
        threads: usize,
        full_window: bool,
    ) -> Result<(i32, Vec<f32>), EngineError> {
        let window = if full_window {
            FULL
        } else {
            detect_window(head.len() as f64 / SAMPLE_RATE as f64)
        };
        let pooled = {
            let mut pool = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match pool.iter().position(|p| p.window == window) {
                Some(i) => Some(pool.swap_remove(i)),
                // Priming costs about what detecting does: keep a state per
                // window size rather than re-prime one back and forth.
                None if pool.len() < DETECT_WINDOWS.len() + 1 => None,
                None => pool.pop(),
            }
        };
        let mut primed = match pooled {
            Some(p) => p,
            // A new state encodes the full window until primed otherwise.
            None => Primed {
                state: ctx.create_state().map_err(inference)?,
                window: FULL,
            },
        };
        let result = (|| {
            if primed.window != window {
                prime(&mut primed.state, window, threads)?;
                primed.window = window;
            }
            primed.state.pcm_to_mel(head, threads).map_err(inference)?;
            primed.state.lang_detect(0, threads).map_err(inference)
        })();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(primed);
        result
    }
}

/// Sets `state`'s encoder window to `window` frames.
fn prime(state: &mut WhisperState, window: i32, threads: usize) -> Result<(), EngineError> {
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(threads as i32);
    params.set_language(Some("en"));
    params.set_audio_ctx(window);
    // Greedy without fallback: the state's random generator stays untouched.
    params.set_temperature(0.0);
    params.set_temperature_inc(0.0);
    params.set_no_context(true);
    params.set_single_segment(true);
    params.set_max_tokens(1);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    let silence = [0.0f32; SAMPLE_RATE as usize / 5];
    state.full(params, &silence).map_err(inference)
}

/// whisper.cpp's id of an ISO 639-1 code; an unknown one is the caller's error.
pub(super) fn lang_id(code: &str) -> Result<i32, EngineError> {
    // whisper.cpp logs an unknown code, and its logger breaks on long
    // messages: only plausible codes reach it.
    let plausible = code.len() <= 8 && code.bytes().all(|b| b.is_ascii_lowercase());
    plausible
        .then(|| whisper_rs::get_lang_id(code))
        .flatten()
        .ok_or_else(|| EngineError::UnsupportedLanguage(crate::engine::quoted(code)))
}

pub(super) fn lang_code(id: i32) -> String {
    whisper_rs::get_lang_str(id).unwrap_or("en").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_windows_cover_the_audio_in_a_few_sizes() {
        assert_eq!(detect_window(0.5), 256);
        assert_eq!(detect_window(3.0), 256);
        assert_eq!(
            detect_window(3.9),
            512,
            "3.9 s and the margin take 320 frames"
        );
        assert_eq!(detect_window(11.0), 1024);
        assert_eq!(detect_window(19.0), 1024);
        assert_eq!(detect_window(20.0), FULL);
        assert_eq!(detect_window(45.0), FULL);
    }

    #[test]
    fn the_choice_is_the_most_probable_allowed_language() {
        let probs = [0.1, 0.6, 0.3];
        assert_eq!(choose(&probs, &[]), (1, 0.6));
        assert_eq!(choose(&probs, &[0, 2]), (2, 0.3));
        assert_eq!(choose(&probs, &[7]).0, 7, "unknown ids have probability 0");
    }
}

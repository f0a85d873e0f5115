//! The temperature fallback with a time bound, for work that must not keep
//! its caller waiting (live finals: one utterance's fallback must not hold
//! a session's finals for tens of seconds).
//!
//! whisper.cpp's fallback re-decodes a window at rising temperatures, five
//! sampled decoders each, until one passes: under load that took 20 and
//! 47 s for 3.5 s utterances. Here the greedy decoding runs first, alone,
//! and is judged by whisper.cpp's own rule ([`needs_fallback`]); only when
//! it fails does the fallback run (from the first temperature above 0, as
//! whisper.cpp would go on), given at most [`FALLBACK_SHARE`] times the
//! greedy decoding's time. If it has not finished by then, the greedy text
//! stands. The same audio gives the file path's text whenever the fallback
//! finishes, which on an unloaded machine it does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use whisper_rs::WhisperState;

use super::{bounded_prompt, inference, Piece, WhisperEngine};
use crate::audio::SAMPLE_RATE;
use crate::engine::{EngineError, SegmentEmitter, TranscribeOptions};

/// How long the fallback may take, as a multiple of the greedy decoding's
/// time (so a final takes at most about three greedy decodings).
pub(super) const FALLBACK_SHARE: u32 = 2;

/// The first temperature of the fallback after a greedy decoding.
const FALLBACK_START: f32 = 0.2;

/// The fallback's floor, so a very quick greedy pass still leaves it room.
const FALLBACK_FLOOR: Duration = Duration::from_millis(300);

/// whisper.cpp's thresholds (`whisper_full_default_params`), as glagol
/// sets them for every decoding.
pub(super) const ENTROPY_THOLD: f32 = 2.4;
pub(super) const LOGPROB_THOLD: f32 = -1.0;
pub(super) const NO_SPEECH_THOLD: f32 = 0.6;

impl WhisperEngine {
    /// Whether `opts` asks for a time-bounded fallback that applies here:
    /// one piece, decoding that would fall back (see [`fallback`]).
    pub(super) fn bounds_fallback(&self, audio: &[f32], opts: &TranscribeOptions) -> bool {
        opts.bounded_fallback
            && !(opts.no_fallback || opts.draft)
            && opts.temperature <= 0.0
            && self.pieces(audio).len() == 1
    }

    /// The greedy decoding first; the fallback only when it fails
    /// whisper.cpp's rule, and only within its time (see [`fallback`]).
    pub(super) fn bounded_fallback(
        &self,
        audio: &[f32],
        opts: &TranscribeOptions,
        language: &str,
        threads: usize,
        emitter: &mut SegmentEmitter<'_>,
    ) -> Result<(), EngineError> {
        let duration = audio.len() as f64 / SAMPLE_RATE as f64;
        let piece = |deadline| Piece {
            audio,
            offset: 0.0,
            language,
            threads,
            prompt: opts.initial_prompt.as_deref().map(bounded_prompt),
            deadline,
            first_window: None,
        };
        let greedy = TranscribeOptions {
            no_fallback: true,
            ..opts.clone()
        };
        let started = Instant::now();
        let mut first = SegmentEmitter::new(None, duration);
        let (eot, beg) = (self.ctx.token_eot(), self.ctx.token_beg());
        let retry = self.states.with(&self.ctx, |state| {
            self.full(state, piece(None), &greedy, &mut first)?;
            Ok(needs_fallback(state, eot, beg))
        })?;
        let mut chosen = first;
        if retry {
            let deadline = deadline(started.elapsed());
            let sampled = TranscribeOptions {
                temperature: FALLBACK_START,
                ..opts.clone()
            };
            let mut second = SegmentEmitter::new(None, duration);
            let state = &mut self.ctx.create_state().map_err(inference)?;
            match self.full(state, piece(Some(deadline)), &sampled, &mut second) {
                Ok(()) => chosen = second,
                Err(_) if Instant::now() >= deadline && !opts.is_cancelled() => {}
                Err(e) => return Err(e),
            }
        }
        for segment in chosen.into_segments() {
            emitter.push(segment);
        }
        Ok(())
    }
}

/// The deadline of a fallback that follows a greedy decoding which took
/// `greedy`.
pub(super) fn deadline(greedy: Duration) -> Instant {
    Instant::now() + (greedy * FALLBACK_SHARE).max(FALLBACK_FLOOR)
}

/// Whether whisper.cpp would have retried the window `state` just decoded
/// greedily: its tokens repeat (entropy of the last 32 under
/// [`ENTROPY_THOLD`], once there are more than 32), or they are improbable
/// (mean log-probability under [`LOGPROB_THOLD`]) and the window is not
/// judged silent. `first_special` is the first id that is neither text
/// nor a timestamp (end of text and the prompt's tokens); timestamps count,
/// as in whisper.cpp's sequence.
pub(super) fn needs_fallback(
    state: &WhisperState,
    first_special: i32,
    first_timestamp: i32,
) -> bool {
    let mut ids = Vec::new();
    let mut logprob = 0.0f64;
    let mut no_speech = 0.0f32;
    for segment in state.as_iter() {
        no_speech = segment.no_speech_probability();
        for t in 0..segment.n_tokens() {
            let Some(token) = segment.get_token(t) else {
                continue;
            };
            let data = token.token_data();
            if data.id >= first_special && data.id < first_timestamp {
                continue;
            }
            ids.push(data.id);
            logprob += f64::from(data.plog);
        }
    }
    if ids.is_empty() {
        return false;
    }
    let repetitive = ids.len() > 32 && entropy(&ids[ids.len() - 32..]) < f64::from(ENTROPY_THOLD);
    let improbable = logprob / (ids.len() as f64) < f64::from(LOGPROB_THOLD);
    repetitive || (improbable && no_speech < NO_SPEECH_THOLD)
}

/// Shannon entropy (nats) of the token ids' distribution.
fn entropy(ids: &[i32]) -> f64 {
    let mut counts: HashMap<i32, usize> = HashMap::new();
    for id in ids {
        *counts.entry(*id).or_default() += 1;
    }
    let n = ids.len() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_is_low_for_a_loop_and_high_for_varied_tokens() {
        let looping: Vec<i32> = (0..32).map(|i| i % 2).collect();
        assert!(entropy(&looping) < f64::from(ENTROPY_THOLD));
        let varied: Vec<i32> = (0..32).collect();
        assert!((entropy(&varied) - 32f64.ln()).abs() < 1e-9);
        assert!(entropy(&varied) > f64::from(ENTROPY_THOLD));
    }
}

//! Whisper through whisper.cpp (whisper-rs).
//!
//! One `WhisperContext` holds the weights; decoding state lives in a pool of
//! `WhisperState`s, so concurrent requests run in parallel without one
//! global lock and without reallocating the KV cache per request.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::{
    compression_ratio, Engine, EngineConfig, EngineError, Request, Segment, Task, Transcript, Word,
};
use crate::audio::SAMPLE_RATE;
use crate::models::EngineKind;

const LANGS: &[&str] = &["*"];

pub struct WhisperEngine {
    name: String,
    ctx: WhisperContext,
    states: Mutex<Vec<WhisperState>>,
    threads: usize,
}

fn inference(e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(e.to_string())
}

impl WhisperEngine {
    pub fn load(name: &str, path: &Path, config: &EngineConfig) -> Result<Self, EngineError> {
        whisper_rs::install_logging_hooks();
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| EngineError::Load {
                path: path.display().to_string(),
                message: format!("{e} (is it a whisper.cpp ggml model?)"),
            })?;
        Ok(WhisperEngine {
            name: name.to_string(),
            ctx,
            states: Mutex::new(Vec::new()),
            threads: config.threads.max(1),
        })
    }

    fn take_state(&self) -> Result<WhisperState, EngineError> {
        if let Some(s) = self.states.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(s);
        }
        self.ctx.create_state().map_err(inference)
    }

    fn put_state(&self, state: WhisperState) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(state);
    }

    fn run(&self, state: &mut WhisperState, req: &Request<'_>) -> Result<Transcript, EngineError> {
        let opts = req.options;
        let audio = req.audio;
        let duration = audio.len() as f64 / SAMPLE_RATE as f64;
        let threads = if opts.threads > 0 {
            opts.threads
        } else {
            self.threads
        };

        let (language, language_probability) = match opts.language.as_deref() {
            Some(l) if !l.is_empty() && l != "auto" => {
                if whisper_rs::get_lang_id(l).is_none() {
                    return Err(EngineError::UnsupportedLanguage(l.to_string()));
                }
                (l.to_string(), None)
            }
            _ if !self.ctx.is_multilingual() => ("en".to_string(), None),
            _ => {
                if audio.is_empty() {
                    return Ok(Transcript::empty(duration, opts.task, None));
                }
                // whisper.cpp detects from the first 30 s window; do it
                // here so the probability can be reported.
                let head = &audio[..audio.len().min(30 * SAMPLE_RATE as usize)];
                state.pcm_to_mel(head, threads).map_err(inference)?;
                let (id, probs) = state.lang_detect(0, threads).map_err(inference)?;
                let code = whisper_rs::get_lang_str(id).unwrap_or("en").to_string();
                (code, probs.get(id as usize).copied())
            }
        };
        if opts.task == Task::Translate && !self.ctx.is_multilingual() {
            return Err(EngineError::InvalidOptions(
                "this Whisper model is English-only and cannot translate".into(),
            ));
        }

        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 5 });
        params.set_n_threads(threads as i32);
        params.set_language(Some(&language));
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
        params.set_temperature_inc(if opts.no_fallback { 0.0 } else { 0.2 });
        params.set_entropy_thold(2.4);
        params.set_logprob_thold(-1.0);
        params.set_no_speech_thold(0.6);
        if let Some(prompt) = opts.initial_prompt.as_deref().filter(|p| !p.is_empty()) {
            params.set_initial_prompt(prompt);
        }
        if let Some(progress) = opts.progress.clone() {
            params.set_progress_callback_safe(move |pct: i32| {
                progress(pct.clamp(0, 100) as f32 / 100.0)
            });
        }
        // whisper-rs 0.16's `set_abort_callback_safe` hands whisper.cpp a
        // pointer of the wrong type, so the flag is wired up by hand; it
        // outlives `full`, which is the only caller of the callback.
        let cancel = opts.cancel.clone();
        if let Some(flag) = cancel.as_ref() {
            unsafe extern "C" fn should_abort(data: *mut std::ffi::c_void) -> bool {
                // SAFETY: `data` is the `AtomicBool` inside `cancel`, alive until `full` returns.
                unsafe { (*(data as *const AtomicBool)).load(Ordering::Relaxed) }
            }
            // SAFETY: see above; the pointer stays valid for the whole call.
            unsafe {
                params.set_abort_callback(Some(should_abort));
                params.set_abort_callback_user_data(Arc::as_ptr(flag) as *mut std::ffi::c_void);
            }
        }
        let result = state.full(params, audio);
        drop(cancel);
        if opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(EngineError::Inference("cancelled".into()));
        }
        result.map_err(inference)?;

        let eot = self.ctx.token_eot();
        let mut segments = Vec::new();
        for seg in state.as_iter() {
            let text = seg.to_str_lossy().map_err(inference)?.to_string();
            let start = seg.start_timestamp() as f64 / 100.0;
            let end = seg.end_timestamp() as f64 / 100.0;
            let mut tokens = Vec::new();
            let mut logprob_sum = 0.0f32;
            let mut words: Vec<Word> = Vec::new();
            let mut word_probs: Vec<f32> = Vec::new();
            for t in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(t) else {
                    continue;
                };
                let data = tok.token_data();
                if data.id >= eot {
                    continue; // special and timestamp tokens
                }
                tokens.push(data.id);
                logprob_sum += data.plog;
                if !opts.word_timestamps {
                    continue;
                }
                let piece = match tok.to_str_lossy() {
                    Ok(p) => p.to_string(),
                    Err(_) => continue,
                };
                let (t0, t1) = (data.t0 as f64 / 100.0, data.t1 as f64 / 100.0);
                let starts_word = piece.starts_with(' ') || words.is_empty();
                if starts_word && !piece.trim().is_empty() {
                    close_word(&mut words, &mut word_probs);
                    words.push(Word {
                        word: piece.clone(),
                        start: t0,
                        end: t1,
                        probability: 0.0,
                    });
                } else if let Some(w) = words.last_mut() {
                    w.word.push_str(&piece);
                    w.end = t1.max(w.end);
                } else {
                    continue;
                }
                word_probs.push(data.p);
            }
            close_word(&mut words, &mut word_probs);
            words.retain(|w| !w.word.trim().is_empty());
            let avg_logprob = if tokens.is_empty() {
                0.0
            } else {
                logprob_sum / tokens.len() as f32
            };
            segments.push(Segment {
                id: segments.len(),
                seek: (start * 100.0) as usize,
                start,
                end,
                compression_ratio: compression_ratio(text.trim()),
                text,
                tokens,
                token_times: Vec::new(),
                temperature: opts.temperature,
                avg_logprob,
                no_speech_prob: seg.no_speech_probability(),
                words,
            });
        }
        segments.retain(|s| !s.text.trim().is_empty() && !is_annotation(s.text.trim()));
        let mut transcript = Transcript {
            task: opts.task,
            language: Some(language),
            language_probability,
            duration,
            text: String::new(),
            segments,
        };
        transcript.rebuild_text();
        transcript.normalize_times();
        Ok(transcript)
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

/// Finishes the last word: its probability is the mean of its tokens'.
fn close_word(words: &mut [Word], probs: &mut Vec<f32>) {
    if let Some(w) = words.last_mut() {
        if !probs.is_empty() {
            w.probability = probs.iter().sum::<f32>() / probs.len() as f32;
        }
        w.word = w.word.trim_start().to_string();
    }
    probs.clear();
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

    fn transcribe_batch(&self, requests: &[Request<'_>]) -> Vec<Result<Transcript, EngineError>> {
        // whisper.cpp decodes one stream per state; items run in turn.
        requests
            .iter()
            .map(|req| {
                let mut state = self.take_state()?;
                let result = self.run(&mut state, req);
                self.put_state(state);
                result
            })
            .collect()
    }
}

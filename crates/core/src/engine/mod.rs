//! Recognition engines behind one interface.
//!
//! An [`Engine`] turns 16 kHz mono samples into a [`Transcript`]. Like
//! sherpa-onnx's `DecodeStreams`, its core call takes a *batch* of requests
//! and returns one result per request, so that batching across requests
//! and sessions is the normal path: engines that cannot batch (Whisper)
//! simply run the items one after another, engines that can (GigaAM) put
//! them through the network together. [`load`] is the one factory that
//! picks the implementation for a resolved model.

pub mod gigaam;
pub mod whisper;

use std::sync::Arc;

use serde::Serialize;

use crate::models::{EngineKind, ResolvedModel};
use crate::runtime::RuntimeError;

/// One recognised word with its time span (seconds) and confidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// A stretch of transcript, in OpenAI's verbose_json vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub id: usize,
    /// Offset of the decoding window, in 10 ms frames.
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<i32>,
    /// Start time of each token in `tokens` (seconds), where the engine
    /// knows it; not part of OpenAI's shape.
    #[serde(skip)]
    pub token_times: Vec<f64>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// What to do with the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Transcribe,
    /// Transcribe into English.
    Translate,
}

/// The result of recognising one piece of audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    pub task: Task,
    /// ISO 639-1 code, detected or as requested.
    pub language: Option<String>,
    /// Probability of the detected language (None when it was given).
    pub language_probability: Option<f32>,
    /// Length of the audio in seconds.
    pub duration: f64,
    pub text: String,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// An empty transcript (no speech) of the given duration.
    pub fn empty(duration: f64, task: Task, language: Option<String>) -> Self {
        Transcript {
            task,
            language,
            language_probability: None,
            duration,
            text: String::new(),
            segments: Vec::new(),
        }
    }

    /// Rebuilds `text` from the segments.
    pub fn rebuild_text(&mut self) {
        self.text = self
            .segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
    }

    /// Enforces the timing invariants every output format relies on:
    /// times inside `[0, duration]`, segments in order and not
    /// overlapping, words inside their segment and in order.
    pub fn normalize_times(&mut self) {
        let duration = self.duration;
        let mut floor = 0.0f64;
        for (i, seg) in self.segments.iter_mut().enumerate() {
            seg.id = i;
            seg.start = seg.start.clamp(floor, duration);
            seg.end = seg.end.clamp(seg.start, duration);
            let mut wfloor = seg.start;
            for w in &mut seg.words {
                w.start = w.start.clamp(wfloor, seg.end);
                w.end = w.end.clamp(w.start, seg.end);
                wfloor = w.start;
            }
            floor = seg.end;
        }
    }
}

/// A progress callback: fraction done in `[0, 1]`.
pub type ProgressFn = Arc<dyn Fn(f32) + Send + Sync>;

/// Per-request recognition settings.
#[derive(Clone, Default)]
pub struct TranscribeOptions {
    /// ISO 639-1 code, or None to detect.
    pub language: Option<String>,
    pub task: Task,
    pub word_timestamps: bool,
    /// Text that conditions the decoder (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Starting sampling temperature; the decoder raises it on failure
    /// (OpenAI's fallback) unless `no_fallback` is set.
    pub temperature: f32,
    pub no_fallback: bool,
    /// Threads for this request (0 = the engine's default).
    pub threads: usize,
    pub progress: Option<ProgressFn>,
    /// Set to stop recognition early (the client went away, a timeout);
    /// engines check it between decoding steps.
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl std::fmt::Debug for TranscribeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranscribeOptions")
            .field("language", &self.language)
            .field("task", &self.task)
            .field("word_timestamps", &self.word_timestamps)
            .field("initial_prompt", &self.initial_prompt)
            .field("temperature", &self.temperature)
            .field("threads", &self.threads)
            .finish()
    }
}

/// One item of a batch.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// Mono samples at 16 kHz.
    pub audio: &'a [f32],
    pub options: &'a TranscribeOptions,
}

/// Why recognition failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot load model {path}: {message}")]
    Load { path: String, message: String },
    #[error("unsupported language '{0}'")]
    UnsupportedLanguage(String),
    #[error("{0}")]
    InvalidOptions(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

impl EngineError {
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Runtime(e) => e.code(),
            EngineError::Load { .. } => "model_load_failed",
            EngineError::UnsupportedLanguage(_) => "unsupported_language",
            EngineError::InvalidOptions(_) => "invalid_options",
            EngineError::Inference(_) => "inference_failed",
        }
    }
}

/// A loaded recognition model.
pub trait Engine: Send + Sync {
    /// The model's name (catalog name or file stem).
    fn name(&self) -> &str;
    fn kind(&self) -> EngineKind;
    /// Languages the model can transcribe (`["*"]` for any).
    fn languages(&self) -> &[&'static str];
    /// Recognises every request; one result per request, in order.
    fn transcribe_batch(&self, requests: &[Request<'_>]) -> Vec<Result<Transcript, EngineError>>;

    /// Recognises one piece of audio.
    fn transcribe(
        &self,
        audio: &[f32],
        options: &TranscribeOptions,
    ) -> Result<Transcript, EngineError> {
        self.transcribe_batch(&[Request { audio, options }])
            .pop()
            .unwrap_or_else(|| Err(EngineError::Inference("engine returned no result".into())))
    }
}

/// Engine construction settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Default threads per inference.
    pub threads: usize,
    /// ONNX sessions per model part (each handles one batch at a time).
    pub sessions: usize,
    /// Most audio chunks per encoder call (GigaAM).
    pub max_batch: usize,
    /// Prefer `*.int8.onnx` files where present (GigaAM).
    pub int8: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8),
            sessions: 1,
            max_batch: 4,
            int8: false,
        }
    }
}

/// Loads the engine for a resolved model.
pub fn load(model: &ResolvedModel, config: &EngineConfig) -> Result<Box<dyn Engine>, EngineError> {
    match model.engine {
        EngineKind::Whisper => Ok(Box::new(whisper::WhisperEngine::load(
            &model.name,
            &model.path,
            config,
        )?)),
        EngineKind::Gigaam => Ok(Box::new(gigaam::GigaamEngine::load(
            &model.name,
            &model.path,
            config,
        )?)),
        EngineKind::Vad => Err(EngineError::Load {
            path: model.path.display().to_string(),
            message: "a VAD model cannot transcribe; pick a Whisper or GigaAM model".into(),
        }),
    }
}

/// zlib compression ratio of text, OpenAI's repetition signal.
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(text.as_bytes());
    let compressed = enc.finish().map(|v| v.len()).unwrap_or(text.len());
    text.len() as f32 / compressed.max(1) as f32
}

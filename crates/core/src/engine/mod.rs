//! Recognition engines behind one interface.
//!
//! An [`Engine`] turns 16 kHz mono samples into a [`Transcript`]. Like
//! sherpa-onnx's `DecodeStreams`, its core call takes a *batch* of requests
//! and returns one result per request, so that batching across requests
//! and sessions is the normal path: engines that cannot batch (Whisper)
//! simply run the items one after another, engines that can (GigaAM) put
//! them through the network together. [`load`] is the one factory that
//! picks the implementation for a resolved model.

pub mod chunk;
mod events;
pub mod gigaam;
#[cfg(feature = "test-util")]
pub mod testing;
mod transcript;
pub mod whisper;

use std::sync::Arc;

use crate::models::{EngineKind, ResolvedModel};

use crate::runtime::RuntimeError;
pub use events::{EngineEvent, EventSink, Progress, SegmentEmitter};
pub use transcript::{join_text, Segment, Task, TokenLogprob, Transcript, Word};

/// Stack for threads that run engines: whisper.cpp's tokenizer recurses
/// in proportion to the prompt, and ONNX Runtime's kernels use deep frames.
pub const ENGINE_STACK_BYTES: usize = 64 << 20;

/// Per-request recognition settings.
#[derive(Clone, Default)]
pub struct TranscribeOptions {
    /// ISO 639-1 code, or None to detect.
    pub language: Option<String>,
    /// The languages the audio may be in (ISO 639-1): detection chooses
    /// among them. Empty: any the model knows. `language` wins when given.
    pub languages: Vec<String>,
    pub task: Task,
    pub word_timestamps: bool,
    /// Text that conditions the decoder (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Starting sampling temperature; the decoder raises it on failure
    /// (OpenAI's fallback) unless `no_fallback` is set.
    pub temperature: f32,
    pub no_fallback: bool,
    /// Bound the fallback by time: it may take at most about twice as long
    /// as the first, greedy decoding, after which that decoding's text
    /// stands (live finals; Whisper).
    pub bounded_fallback: bool,
    /// A draft (a live partial): the engine may trade accuracy for speed
    /// (Whisper encodes only the audio's length instead of a 30 s window,
    /// without temperature fallback).
    pub draft: bool,
    /// Threads for this request (0 = the engine's default).
    pub threads: usize,
    /// Receives segments as they are decoded, and progress.
    pub events: Option<EventSink>,
    /// Set to stop recognition early (the client went away, a timeout);
    /// engines check it between decoding steps.
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl TranscribeOptions {
    /// Whether the caller asked recognition to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A prompt that also steers Whisper towards `keywords` (OpenAI's
/// `keywords[]`): they follow the prompt, where whisper.cpp keeps the last
/// of a long one. None when there is neither.
pub fn steered_prompt(prompt: Option<&str>, keywords: &[String]) -> Option<String> {
    let words = keywords
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    match prompt.map(str::trim_end).filter(|p| !p.trim().is_empty()) {
        Some(p) if !words.is_empty() => Some(format!("{p} {words}")),
        Some(p) => Some(p.to_string()),
        None => (!words.is_empty()).then_some(words),
    }
}

/// User input quoted in an error message: at most 64 characters, so a
/// hostile value cannot make messages (or the logs they reach) huge.
pub fn quoted(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((at, _)) => format!("{:?}…", &value[..at]),
        None => format!("{value:?}"),
    }
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
    /// The language, already [`quoted`].
    #[error("unsupported language {0}")]
    UnsupportedLanguage(String),
    #[error("{0}")]
    InvalidOptions(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

impl EngineError {
    /// The request's cancel flag was set: the engine stopped early.
    pub fn cancelled() -> Self {
        EngineError::Inference("cancelled".into())
    }

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
    /// Whether recognising several requests in one call costs less than
    /// one call each (so a scheduler should gather them).
    fn gains_from_batching(&self) -> bool {
        false
    }
    /// Audio before the detected start of speech that a live utterance
    /// includes when its client does not choose (the VAD confirms speech
    /// late, and a clipped first sound is misheard).
    fn speech_prefix_ms(&self) -> u32 {
        crate::stream::DEFAULT_PREFIX_MS
    }
    /// Speech before a live utterance's first partial is due. The VAD
    /// confirms speech after 250 ms; a first partial that finishes about
    /// then shows words as the utterance is announced, so a slower engine
    /// starts it sooner.
    fn first_partial_ms(&self) -> u32 {
        crate::stream::DEFAULT_FIRST_PARTIAL_MS
    }
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
    /// Run Whisper's encoder over its whole 30 s window even for shorter
    /// audio, as the reference implementation does (slower; see
    /// `whisper::encoder_window`).
    pub whisper_full_window: bool,
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
            whisper_full_window: false,
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
        EngineKind::Vad | EngineKind::Segmentation | EngineKind::SpeakerEmbedding => {
            Err(EngineError::Load {
                path: model.path.display().to_string(),
                message:
                    "a VAD or diarization model cannot transcribe; pick a Whisper or GigaAM model"
                        .into(),
            })
        }
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

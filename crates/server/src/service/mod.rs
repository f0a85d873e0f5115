//! The transport-neutral service: recognition requests in, streams of
//! [`Event`]s out. HTTP routes (JSON and SSE), and later WebSocket sessions
//! and durable jobs, all go through here; nothing here knows about HTTP.
//!
//! A request takes a [`crate::models::Lease`] on its model for as long as
//! its stream lives, is decoded a bounded number at a time, and runs as a
//! [`crate::scheduler::WorkItem`] of its class on the model's scheduler.

mod budget;
pub mod diarization;
mod event;
pub mod session;
mod slots;
mod transcribe;
pub mod usage;

use std::sync::{Arc, OnceLock};

use glagol_core::engine::{quoted, TranscribeOptions};
use glagol_core::vad::VadModel;
use tokio::sync::Semaphore;

use budget::AudioBudget;
pub use event::Event;
pub use session::{LiveSession, SessionEvent, SessionOptions};
pub use slots::{SessionSlot, SessionSlots};
pub use transcribe::{AudioInput, TranscribeRequest, Transcription};

use crate::config::Current;
use crate::error::ServiceError;
use crate::models::Registry;

pub struct Service {
    registry: Arc<Registry>,
    config: Arc<Current>,
    vad: OnceLock<Result<Arc<VadModel>, String>>,
    /// Decodes running at once.
    decoders: Semaphore,
    /// Decoded audio held by requests in flight.
    audio: Arc<AudioBudget>,
    /// Live sessions open, per model and per caller.
    pub sessions: Arc<SessionSlots>,
    /// Audio used per API key today, for quotas.
    pub usage: Arc<usage::Usage>,
    /// The diarization models, loaded on first use.
    pub speakers: Arc<diarization::SpeakerModels>,
}

impl Service {
    pub fn new(registry: Arc<Registry>, config: Arc<Current>) -> Service {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let usage = Arc::new(usage::Usage::default());
        Service {
            registry: registry.clone(),
            config,
            vad: OnceLock::new(),
            decoders: Semaphore::new(cores),
            audio: Arc::default(),
            sessions: Arc::new(SessionSlots::counting(usage.clone())),
            usage,
            speakers: Arc::new(diarization::SpeakerModels::new(registry.clone())),
        }
    }

    /// Bytes of decoded audio held by requests in flight.
    pub fn audio_memory_used(&self) -> u64 {
        self.audio.used()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The shared VAD, loaded on first use.
    pub fn vad(&self) -> Result<Arc<VadModel>, ServiceError> {
        self.vad
            .get_or_init(|| VadModel::embedded().map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| ServiceError::unavailable("vad_unavailable", e))
    }
}

/// Checks what a client may set before it reaches any engine: engines log
/// and tokenize these values, so hostile sizes are refused here.
pub(crate) fn validate(options: &TranscribeOptions) -> Result<(), ServiceError> {
    if let Some(language) = options.language.as_deref() {
        let code = language.trim();
        let plausible = code.is_empty()
            || code == "auto"
            || ((2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase()));
        if !plausible {
            return Err(ServiceError::invalid(
                "unsupported_language",
                format!(
                    "unsupported language {}: use an ISO-639-1 code such as \"en\" or \"ru\", or omit it to detect",
                    quoted(language)
                ),
            ));
        }
    }
    if !(0.0..=1.0).contains(&options.temperature) {
        return Err(ServiceError::invalid(
            "invalid_request",
            format!(
                "temperature must be between 0 and 1, got {}",
                options.temperature
            ),
        ));
    }
    Ok(())
}

/// Records one finished recognition.
fn record_inference(
    model: &str,
    account: Option<&str>,
    audio_seconds: f64,
    inference_seconds: f64,
) {
    let ms = (audio_seconds * 1000.0) as u64;
    metrics::counter!("glagol_audio_milliseconds_total", "model" => model.to_string())
        .increment(ms);
    if let Some(key) = account {
        metrics::counter!("glagol_key_audio_milliseconds_total", "key" => key.to_string())
            .increment(ms);
    }
    metrics::histogram!("glagol_inference_seconds", "model" => model.to_string())
        .record(inference_seconds);
}

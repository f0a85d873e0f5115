//! One transcription request, shared by the OpenAI and native routes:
//! pick the model, wait for a worker, decode and recognise off the async
//! runtime, within the inference timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use glagol_core::audio::{self, AudioLimits};
use glagol_core::engine::{TranscribeOptions, Transcript};
use glagol_core::pipeline;
use glagol_core::vad::{VadConfig, VadModel};

use crate::error::ApiError;
use crate::AppState;

pub struct Job {
    pub model: Option<String>,
    pub audio: Vec<u8>,
    /// File name extension, as a decoding hint.
    pub extension: Option<String>,
    pub options: TranscribeOptions,
    pub vad: bool,
}

/// Sets the cancel flag when the request goes away (client disconnect or
/// timeout), so the engine stops at its next check.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs a job; returns the transcript and the model that produced it.
pub async fn run(state: &Arc<AppState>, mut job: Job) -> Result<(Transcript, String), ApiError> {
    let config = state.config();
    let model = state.resolve_alias(job.model.as_deref().unwrap_or(&config.default_model));
    let (engine, gate) = state.manager.acquire(&model, config.wait_for_load).await?;
    let permit = gate.enter().await?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    job.options.cancel = Some(cancel);
    let limits = AudioLimits {
        max_bytes: config.max_body_bytes as u64,
        max_duration_s: config.max_audio_seconds,
    };
    let vad = if job.vad { Some(state.vad()?) } else { None };
    let task = tokio::task::spawn_blocking(move || -> Result<Transcript, ApiError> {
        let _permit = permit; // the worker is busy until recognition ends
        let audio = audio::decode_bytes(job.audio, job.extension.as_deref(), &limits)?;
        Ok(pipeline::transcribe(
            engine.as_ref(),
            &audio.samples,
            &job.options,
            vad.as_ref().map(|m| (m, VadConfig::default())),
        )?)
    });
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(config.inference_timeout, task).await;
    state.manager.touch(&model);
    if let Ok(Ok(Ok(t))) = &result {
        crate::metrics::record_inference(&model, t.duration, started.elapsed().as_secs_f64());
    }
    match result {
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "inference_timeout",
            format!(
                "recognition took longer than {} s",
                config.inference_timeout.as_secs()
            ),
        )),
        Ok(Err(join)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            join.to_string(),
        )),
        Ok(Ok(r)) => r.map(|t| (t, model)),
    }
}

impl AppState {
    /// The shared VAD, loaded on first use.
    pub fn vad(&self) -> Result<Arc<VadModel>, ApiError> {
        let vad = self
            .vad
            .get_or_init(|| VadModel::embedded().map_err(|e| e.to_string()));
        vad.clone()
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "vad_unavailable", e))
    }
}

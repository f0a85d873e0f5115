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

fn internal(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

/// Runs a job; returns the transcript and the model that produced it.
pub async fn run(state: &Arc<AppState>, mut job: Job) -> Result<(Transcript, String), ApiError> {
    let config = state.config();
    let model = state.resolve_alias(job.model.as_deref().unwrap_or(&config.default_model));
    let lease = state.manager.acquire(&model, config.wait_for_load).await?;
    let limits = AudioLimits {
        max_bytes: config.max_body_bytes as u64,
        max_duration_s: config.max_audio_seconds,
    };
    // Decoded before queueing: the queue orders requests by audio length.
    let (bytes, extension) = (std::mem::take(&mut job.audio), job.extension.take());
    let audio = tokio::task::spawn_blocking(move || {
        audio::decode_bytes(bytes, extension.as_deref(), &limits)
    })
    .await
    .map_err(internal)??;
    let permit = lease.gate.enter(audio.duration()).await?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    job.options.cancel = Some(cancel);
    let vad = if job.vad { Some(state.vad()?) } else { None };
    let started = std::time::Instant::now();
    let recognise = async move {
        match (lease.batcher, vad) {
            (Some(batcher), None) => {
                let _permit = permit;
                Ok(batcher.transcribe(audio.samples, job.options).await?)
            }
            (_, vad) => {
                let engine = lease.engine;
                tokio::task::spawn_blocking(move || -> Result<Transcript, ApiError> {
                    let _permit = permit; // the worker is busy until recognition ends
                    Ok(pipeline::transcribe(
                        engine.as_ref(),
                        &audio.samples,
                        &job.options,
                        vad.as_ref().map(|m| (m, VadConfig::default())),
                    )?)
                })
                .await
                .map_err(internal)?
            }
        }
    };
    let result = tokio::time::timeout(config.inference_timeout, recognise).await;
    state.manager.touch(&model);
    match result {
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "inference_timeout",
            format!(
                "recognition took longer than {} s",
                config.inference_timeout.as_secs()
            ),
        )),
        Ok(r) => {
            let t = r?;
            crate::metrics::record_inference(&model, t.duration, started.elapsed().as_secs_f64());
            Ok((t, model))
        }
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

//! Exit codes, so scripts can tell failures apart:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other failure |
//! | 2 | bad command line (clap) |
//! | 3 | an input could not be decoded as audio (or was over a limit) |
//! | 4 | model problem: unknown, not installed, failed to load or verify |
//! | 5 | ONNX Runtime missing or unusable |
//! | 6 | download failed (network, HTTP status or checksum) |
//! | 7 | recognition failed |

use std::process::ExitCode;

use glagol_core::audio::AudioError;
use glagol_core::engine::EngineError;
use glagol_core::models::download::DownloadError;
use glagol_core::models::StoreError;
use glagol_core::pipeline::PipelineError;
use glagol_core::runtime::{InstallError, RuntimeError};
use glagol_core::vad::VadError;

pub const AUDIO: u8 = 3;
pub const MODEL: u8 = 4;
pub const RUNTIME: u8 = 5;
pub const DOWNLOAD: u8 = 6;
pub const RECOGNITION: u8 = 7;

/// An error and its causes on one line, each said once: many errors
/// already include their source's text, which the chain would repeat.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// The exit code for an error, from the first typed cause in its chain.
pub fn code_for(e: &anyhow::Error) -> ExitCode {
    ExitCode::from(number_for(e))
}

pub fn number_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<AudioError>() {
            return AUDIO;
        }
        if cause.is::<RuntimeError>() {
            return RUNTIME;
        }
        if cause.is::<DownloadError>() || cause.is::<InstallError>() {
            return DOWNLOAD;
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return if matches!(s, StoreError::Download(_)) {
                DOWNLOAD
            } else {
                MODEL
            };
        }
        if let Some(p) = cause.downcast_ref::<PipelineError>() {
            return match p {
                PipelineError::Engine(e) => engine_code(e),
                PipelineError::Vad(VadError::Runtime(_)) => RUNTIME,
                PipelineError::Vad(_) => RECOGNITION,
            };
        }
        if let Some(v) = cause.downcast_ref::<VadError>() {
            return if matches!(v, VadError::Runtime(_)) {
                RUNTIME
            } else {
                RECOGNITION
            };
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return engine_code(e);
        }
    }
    1
}

fn engine_code(e: &EngineError) -> u8 {
    match e {
        EngineError::Runtime(_) => RUNTIME,
        EngineError::Load { .. } => MODEL,
        _ => RECOGNITION,
    }
}

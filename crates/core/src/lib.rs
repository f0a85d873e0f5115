//! glagol-core: everything that turns audio into text, with no server.
//!
//! The layers, bottom up:
//! - [`audio`]: any container or raw PCM → 16 kHz mono `f32`, with limits
//!   and typed errors.
//! - [`runtime`]: finding, installing and loading ONNX Runtime.
//! - [`features`]: GigaAM v3 log-mel features.
//! - [`vad`]: the one voice activity detector (Silero v6), streaming and
//!   whole-buffer.
//! - [`engine`]: the batch-in/batch-out [`engine::Engine`] trait, the
//!   shared [`engine::Transcript`] types, and the engines (Whisper today).
//! - [`diarize`]: who spoke when (pyannote segmentation + speaker
//!   embeddings + clustering), and speakers onto a transcript.
//! - [`pipeline`]: whole-file recognition with the optional VAD gate.
//! - [`stream`]: live audio into utterances (VAD endpointing, partial
//!   cadence) and stable partials.
//! - [`models`]: catalog, on-disk store, verified resumable downloads.
//! - [`format`]: txt, json, verbose_json, srt, vtt.
//! - [`wer`]: word error rate for benchmarks and tests.
//! - [`tls`]: the roots outgoing HTTPS trusts.
//!
//! The server and CLI crates only compose these pieces; nothing here knows
//! about HTTP or terminals.

pub mod audio;
pub mod diarize;
pub mod engine;
pub mod features;
pub mod format;
pub mod models;
pub mod pipeline;
pub mod runtime;
pub mod stream;
pub mod tls;
pub mod vad;
pub mod wer;

use std::path::PathBuf;

/// glagol's data directory: `$GLAGOL_DATA_DIR`, else
/// `$XDG_DATA_HOME/glagol`, else `~/.local/share/glagol`.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GLAGOL_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("glagol");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/glagol")
}

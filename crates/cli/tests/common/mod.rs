//! Shared test support: locating `../shared` assets, running the real
//! `glagol` binary in an isolated data directory, and a local HTTP server
//! for the download code.
#![allow(dead_code)]

pub mod http;
pub mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The test assets directory: `$GLAGOL_TEST_ASSETS`, else `../shared`
/// beside the repository. Panics (fails the test loudly) when missing.
pub fn assets() -> PathBuf {
    let dir = match std::env::var_os("GLAGOL_TEST_ASSETS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    assert!(
        dir.join("models/ggml-base.bin").is_file(),
        "test assets not found at {} — set GLAGOL_TEST_ASSETS to the shared/ directory",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

pub fn misc(name: &str) -> PathBuf {
    assets().join("fixtures/misc").join(name)
}

pub fn golos() -> Vec<(PathBuf, String)> {
    let dir = assets().join("fixtures/ru-golos");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                dir.join(e["filename"].as_str().unwrap()),
                e["reference"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn whisper_base() -> PathBuf {
    assets().join("models/ggml-base.bin")
}

/// The ONNX Runtime library the tests use: `$GLAGOL_ORT_LIB`, else the one
/// `glagol runtime install` put in the user's data directory.
pub fn ort_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("GLAGOL_ORT_LIB") {
        return PathBuf::from(p);
    }
    let p = glagol_core::runtime::runtime_dir().join(glagol_core::runtime::ORT_LIB_NAME);
    assert!(
        p.is_file(),
        "ONNX Runtime not installed at {}: run `glagol runtime install` (scripts/test does)",
        p.display()
    );
    p
}

/// A `glagol` invocation with its own empty data directory.
pub struct Glagol {
    pub data: tempfile::TempDir,
}

impl Glagol {
    pub fn new() -> Self {
        Glagol {
            data: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_glagol"));
        c.env_remove("GLAGOL_MODELS_DIR")
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("GLAGOL_MODEL")
            .env("GLAGOL_DATA_DIR", self.data.path())
            .env("GLAGOL_ORT_LIB", ort_lib())
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "glagol failed ({:?}):\n{}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

pub fn normalize(s: &str) -> String {
    glagol_core::wer::normalize(s)
}

/// Writes a 16 kHz mono PCM16 WAV.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    let mut bytes = Vec::new();
    let data_len = (samples.len() * 2) as u32;
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

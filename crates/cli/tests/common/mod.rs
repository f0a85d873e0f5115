//! Shared test support: locating `../shared` assets, running the real
//! `glagol` binary in an isolated data directory, and a local HTTP server
//! for the download code.
#![allow(dead_code)]

pub mod hooks;
pub mod http;
pub mod jobs;
#[path = "../../../server/tests/pg/mod.rs"]
pub mod pg;
pub mod server;
pub mod ws;

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
    std::fs::write(path, wav_bytes(samples, rate)).unwrap();
}

/// A mono PCM16 WAV file's bytes.
pub fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
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
    bytes.extend_from_slice(&pcm16(samples));
    bytes
}

/// Samples in [-1, 1] as little-endian PCM16 bytes.
pub fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect()
}

/// A recording of at least `min_seconds`: the clips in turn, repeated,
/// after 0.5 s of silence and separated by pauses of 1.2–3.0 s. Returns the
/// 16 kHz samples and where each clip starts and ends (in samples).
pub fn joined_recording(clips: &[PathBuf], min_seconds: f64) -> (Vec<f32>, Vec<(usize, usize)>) {
    let limits = glagol_core::audio::AudioLimits::default();
    let clips: Vec<Vec<f32>> = clips
        .iter()
        .map(|p| glagol_core::audio::decode_file(p, &limits).unwrap().samples)
        .collect();
    let mut audio = vec![0.0f32; 8_000];
    let mut spans = Vec::new();
    let mut k = 0;
    while audio.len() < (min_seconds * 16_000.0) as usize {
        let clip = &clips[k % clips.len()];
        spans.push((audio.len(), audio.len() + clip.len()));
        audio.extend_from_slice(clip);
        let pause = 1.2 + (k * 7 % 10) as f64 * 0.2;
        audio.extend(std::iter::repeat_n(0.0, (pause * 16_000.0) as usize));
        k += 1;
    }
    (audio, spans)
}

/// A FLAC file of `frames` blocks of 4096 samples of digital silence at
/// 48 kHz stereo, 16-bit: every subframe is CONSTANT, so an hour takes
/// ~0.6 MB — the shape of a decompression bomb.
pub fn silent_flac(blocks: u64) -> Vec<u8> {
    fn crc8(data: &[u8]) -> u8 {
        let mut crc = 0u8;
        for &b in data {
            crc ^= b;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 {
                    (crc << 1) ^ 0x07
                } else {
                    crc << 1
                };
            }
        }
        crc
    }
    fn crc16(data: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in data {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
            }
        }
        crc
    }
    /// FLAC's UTF-8-like coding of the frame number.
    fn utf8(n: u64, out: &mut Vec<u8>) {
        if n < 0x80 {
            out.push(n as u8);
            return;
        }
        let mut bytes = Vec::new();
        let mut v = n;
        let mut lead_bits = 6; // payload bits the lead byte can carry, shrinking
        while v >= (1 << lead_bits) {
            bytes.push(0x80 | (v & 0x3f) as u8);
            v >>= 6;
            lead_bits -= 1;
        }
        let count = bytes.len() + 1;
        let lead = (0xffu16 << (8 - count)) as u8 | v as u8;
        out.push(lead);
        out.extend(bytes.iter().rev());
    }
    let total = blocks * 4096;
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0x80, 0, 0, 34]); // last block, STREAMINFO, 34 bytes
    out.extend_from_slice(&4096u16.to_be_bytes());
    out.extend_from_slice(&4096u16.to_be_bytes());
    out.extend_from_slice(&[0; 6]); // frame sizes unknown
                                    // 20 bits rate, 3 bits channels-1, 5 bits bits-1, 36 bits total samples.
    let packed: u64 = (48_000u64 << 44) | (1 << 41) | (15 << 36) | total;
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0; 16]); // MD5 unknown
    for n in 0..blocks {
        let start = out.len();
        // Sync + fixed blocking; 4096 samples (12), 48 kHz (10); stereo
        // independent (1), 16-bit (4).
        out.extend_from_slice(&[0xff, 0xf8, 0xca, 0x18]);
        utf8(n, &mut out);
        let c = crc8(&out[start..]);
        out.push(c);
        for _ in 0..2 {
            out.extend_from_slice(&[0x00, 0x00, 0x00]); // CONSTANT subframe of 0
        }
        let c = crc16(&out[start..]);
        out.extend_from_slice(&c.to_be_bytes());
    }
    out
}

/// Writes a 16 kHz mono 32-bit float WAV (any values, NaN included).
pub fn write_wav_f32(path: &Path, samples: &[f32]) {
    let data_len = (samples.len() * 4) as u32;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&16_000u32.to_le_bytes());
    bytes.extend_from_slice(&64_000u32.to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&32u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Peak resident memory of a process so far (VmHWM), in bytes.
pub fn peak_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

//! Audio input: every supported container and sample format decodes to the
//! same 16 kHz mono signal, and every kind of bad input is a typed error.

mod common;

use std::path::{Path, PathBuf};

use common::{stderr, Glagol};
use glagol_core::audio::{self, AudioError, AudioLimits};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn decode(path: &Path) -> Result<audio::Audio, AudioError> {
    audio::decode_file(path, &AudioLimits::default())
}

#[test]
fn wav_sample_formats_decode_to_the_same_signal() {
    let reference = decode(&fixture("clip_s16.wav")).unwrap().samples;
    assert_eq!(reference.len(), 16_000);
    for (name, tolerance) in [
        ("clip_s24.wav", 1e-4),
        ("clip_s32.wav", 1e-4),
        ("clip_f32.wav", 1e-4),
        ("clip_mulaw.wav", 0.02),
        ("clip_alaw.wav", 0.02),
        ("clip_stereo_44k.wav", 0.05),
    ] {
        let a = decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            (a.samples.len() as i64 - 16_000).abs() <= 1,
            "{name}: {} samples",
            a.samples.len()
        );
        let max_diff = a
            .samples
            .iter()
            .zip(&reference)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < tolerance, "{name}: max diff {max_diff}");
    }
}

#[test]
fn resampling_keeps_the_length_and_tail() {
    // 44.1 kHz stereo FLAC and MP3, 8 kHz WAV: length follows the rate ratio.
    for (name, rate) in [("jfk.flac", 44_100.0), ("vosk_test_8k.wav", 8_000.0)] {
        let a = decode(&common::misc(name)).unwrap();
        assert_eq!(a.source_rate as f64, rate);
        let secs = a.samples.len() as f64 / 16_000.0;
        let wav = decode(&common::misc(if name == "jfk.flac" {
            "jfk.wav"
        } else {
            name
        }))
        .unwrap();
        assert!(
            (a.samples.len() as i64 - wav.samples.len() as i64).abs() <= 1,
            "{name}: {secs}"
        );
    }
    let flac = decode(&common::misc("jfk.flac")).unwrap();
    assert_eq!(flac.source_channels, 2);
    // The last 100 ms still carry signal energy comparable to the WAV's.
    let wav = decode(&common::misc("jfk.wav")).unwrap();
    let energy = |s: &[f32]| s.iter().map(|x| x * x).sum::<f32>();
    let (ef, ew) = (
        energy(&flac.samples[flac.samples.len() - 1600..]),
        energy(&wav.samples[wav.samples.len() - 1600..]),
    );
    assert!(
        (ef - ew).abs() <= 0.2 * ew.max(1e-6) + 1e-4,
        "tail energy {ef} vs {ew}"
    );
}

#[test]
fn compressed_containers_transcribe() {
    let g = Glagol::new();
    let model = common::whisper_base();
    let mut args = vec![
        "transcribe".to_string(),
        "-l".into(),
        "en".into(),
        "--model".into(),
        model.display().to_string(),
    ];
    let names = [
        "jfk.opus",
        "jfk.ogg",
        "jfk_opus.webm",
        "jfk_vorbis.webm",
        "jfk.m4a",
    ];
    args.extend(names.iter().map(|n| fixture(n).display().to_string()));
    let out = common::ok(g.cmd().args(&args).output().unwrap());
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), names.len(), "{out}");
    for (name, line) in names.iter().zip(lines) {
        assert!(
            common::normalize(line).contains("ask not what your country can do for you"),
            "{name}: {line}"
        );
    }
}

#[test]
fn raw_pcm_input() {
    let wav = std::fs::read(common::misc("jfk.wav")).unwrap();
    // jfk.wav has a LIST chunk; its data starts at byte 78.
    assert_eq!(&wav[70..74], b"data");
    let pcm = &wav[78..];
    let a = audio::from_pcm(
        pcm,
        audio::PcmFormat::S16Le,
        16_000,
        1,
        &AudioLimits::default(),
    )
    .unwrap();
    let b = decode(&common::misc("jfk.wav")).unwrap();
    assert_eq!(a.samples.len(), b.samples.len());
}

/// A 16 kHz mono PCM16 WAV header whose data chunk declares `data_len` bytes.
fn wav_header_declaring(data_len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&16_000u32.to_le_bytes());
    h.extend_from_slice(&32_000u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// Bad inputs: (name, bytes, expected error code).
fn corpus() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let wav_header = wav_header_declaring(0);
    let wav_no_data = wav_header_declaring(32_000);
    // Found by fuzzing: symphonia's WAV reader overflows on this.
    let mut channels = wav_header_declaring(32);
    channels[22..24].copy_from_slice(&u16::MAX.to_le_bytes());
    channels.extend(vec![0u8; 32]);
    // Found by fuzzing too: the same after bytes that are not a RIFF header.
    let mut after_junk = vec![3u8, 255, 230];
    after_junk.extend_from_slice(&channels);
    let mut huge = wav_header_declaring(u32::MAX - 64);
    huge.extend(vec![0u8; 16_000]);
    let mp3 = std::fs::read(common::misc("jfk.mp3")).unwrap();
    let random: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    vec![
        ("empty", vec![], "empty_input"),
        ("random", random, "not_audio"),
        (
            "text",
            b"Hello, this is a text file and not audio at all.\n".repeat(40),
            "not_audio",
        ),
        ("wav header, empty data", wav_header, "no_audio"),
        ("wav header, data missing", wav_no_data, "truncated_audio"),
        ("wav declaring 4 GB", huge, "audio_too_long"),
        ("wav with 65535 channels", channels, "not_audio"),
        (
            "wav with 65535 channels after junk",
            after_junk,
            "not_audio",
        ),
        (
            "truncated mp3",
            mp3[..mp3.len() / 2 + 7].to_vec(),
            "truncated_audio",
        ),
    ]
}

#[test]
fn bad_inputs_are_typed_errors() {
    for (name, bytes, code) in corpus() {
        let err = audio::decode_bytes(bytes, None, &AudioLimits::default()).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
    }
}

#[test]
fn bad_inputs_through_the_cli_exit_3_without_panicking() {
    let g = Glagol::new();
    let dir = tempfile::tempdir().unwrap();
    let model = common::whisper_base();
    let mut paths = Vec::new();
    for (i, (name, bytes, _)) in corpus().into_iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.bin"));
        std::fs::write(&p, bytes).unwrap();
        paths.push((name, p));
    }
    for (name, p) in &paths {
        let out = g.run(&[
            "transcribe",
            "--model",
            model.to_str().unwrap(),
            p.to_str().unwrap(),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            err.lines().count() <= 2,
            "{name}: one clear line expected:\n{err}"
        );
    }
    // A missing file is an I/O error naming the path.
    let out = g.run(&[
        "transcribe",
        "--model",
        model.to_str().unwrap(),
        "/nonexistent.wav",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("/nonexistent.wav"));
}

#[test]
fn duration_limit_applies_to_decoded_audio() {
    let limits = AudioLimits {
        max_bytes: 1 << 30,
        max_duration_s: 5.0,
    };
    let err = audio::decode_file(&common::misc("jfk.mp3"), &limits).unwrap_err();
    assert_eq!(err.code(), "audio_too_long");
    let limits = AudioLimits {
        max_bytes: 1000,
        max_duration_s: 1e9,
    };
    let err = audio::decode_file(&common::misc("jfk.wav"), &limits).unwrap_err();
    assert_eq!(err.code(), "input_too_large");
}

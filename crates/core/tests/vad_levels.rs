//! The VAD hears speech at any level, whatever came before it, and still
//! ignores noise and breaths: Golos clips at normal level followed by one
//! attenuated far down, and noise at −40 dBFS between clips.

mod npy;

use glagol_core::audio::synth::{at_peak, hiss};
use glagol_core::audio::{decode_file, AudioLimits};
use glagol_core::vad::{speech_segments, SpeechSegment, VadConfig, VadModel};

const SR: usize = 16_000;

fn clip(n: usize) -> Vec<f32> {
    if let Some(p) = std::env::var_os("GLAGOL_ORT_LIB") {
        glagol_core::runtime::set_library(Some(p.into()));
    }
    let path = npy::assets().join(format!("fixtures/ru-golos/golos_0{n}.wav"));
    decode_file(&path, &AudioLimits::default()).unwrap().samples
}

fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * SR as f64) as usize]
}

/// Segments as the live detector cuts them (500 ms of silence ends one).
fn segments(audio: &[f32]) -> Vec<SpeechSegment> {
    let model = VadModel::embedded().expect("ONNX Runtime: run `glagol runtime install`");
    let config = VadConfig {
        min_silence_ms: 500,
        ..Default::default()
    };
    speech_segments(&model, audio, config).unwrap()
}

/// Five clips at their recorded levels with `pause` seconds after each;
/// returns the audio and where the next thing appended will start.
fn loud_clips(pause: f64) -> Vec<f32> {
    let mut audio = Vec::new();
    for n in [1, 4, 7, 6, 5] {
        audio.extend(clip(n));
        audio.extend(silence(pause));
    }
    audio
}

fn found_after(segments: &[SpeechSegment], at: usize) -> usize {
    segments.iter().filter(|s| s.end > at).count()
}

#[test]
fn quiet_speech_after_loud_speech_is_heard() {
    for pause in [0.4, 1.2] {
        for quiet in [0, 3] {
            for db in [-20.0, -35.0, -46.0, -50.0] {
                let mut audio = loud_clips(pause);
                let at = audio.len();
                audio.extend(at_peak(&clip(quiet), db));
                audio.extend(silence(2.0));
                let found = segments(&audio);
                assert_eq!(
                    found_after(&found, at),
                    1,
                    "golos_0{quiet} at {db} dBFS after {pause} s: {found:?}"
                );
                assert_eq!(found.len(), 6, "one segment per clip: {found:?}");
            }
        }
    }
}

#[test]
fn noise_and_breaths_at_minus_40_dbfs_start_no_speech() {
    for breaths in [false, true] {
        let mut audio = clip(1);
        audio.extend(silence(1.0));
        audio.extend(hiss(4.0, breaths, -40.0));
        audio.extend(silence(1.0));
        let found = segments(&audio);
        assert_eq!(
            found.len(),
            1,
            "breaths {breaths}: only the clip is speech: {found:?}"
        );
    }
}

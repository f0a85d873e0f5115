//! The Silero VAD on real speech: streaming events and whole-buffer
//! segments agree, and silence has no speech.

mod npy;

use glagol_core::audio::{decode_file, AudioLimits};
use glagol_core::vad::{
    speech_segments, speech_segments_until, VadConfig, VadError, VadEvent, VadModel, VadStream,
};

fn ort_ready() {
    if let Some(p) = std::env::var_os("GLAGOL_ORT_LIB") {
        glagol_core::runtime::set_library(Some(p.into()));
    }
}

#[test]
fn speech_is_found_where_it_is_and_streaming_matches_whole_buffer() {
    ort_ready();
    let model = VadModel::embedded().expect("ONNX Runtime: run `glagol runtime install`");
    let jfk = decode_file(
        &npy::assets().join("fixtures/misc/jfk.wav"),
        &AudioLimits::default(),
    )
    .unwrap()
    .samples;
    let mut audio = vec![0.0f32; 5 * 16_000];
    audio.extend_from_slice(&jfk);
    audio.extend(vec![0.0f32; 5 * 16_000]);
    let segments = speech_segments(&model, &audio, VadConfig::default()).unwrap();
    assert!(!segments.is_empty());
    let (first, last) = (segments[0], *segments.last().unwrap());
    assert!(
        first.start >= 5 * 16_000 - 16_000 && first.start < 6 * 16_000,
        "{segments:?}"
    );
    assert!(
        last.end > 14 * 16_000 && last.end <= 16 * 16_000 + 16_000,
        "{segments:?}"
    );
    for w in segments.windows(2) {
        assert!(w[0].end <= w[1].start);
    }

    // The same audio fed in odd-sized pieces gives the same events.
    let mut stream = VadStream::new(model.clone(), VadConfig::default());
    let mut events = Vec::new();
    for piece in audio.chunks(1234) {
        events.extend(stream.push(piece).unwrap());
    }
    let starts: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            VadEvent::SpeechStart { sample } => Some(*sample),
            _ => None,
        })
        .collect();
    assert_eq!(starts.first().copied(), Some(first.start));
    assert!(!stream.in_speech(), "trailing silence ends the speech");

    let silence = vec![0.0f32; 8 * 16_000];
    assert!(speech_segments(&model, &silence, VadConfig::default())
        .unwrap()
        .is_empty());
}

#[test]
fn a_stop_condition_ends_the_vad_within_30_seconds_of_audio() {
    ort_ready();
    let model = VadModel::embedded().expect("ONNX Runtime: run `glagol runtime install`");
    let audio = vec![0.0f32; 95 * 16_000];
    let looks = std::cell::Cell::new(0);
    // Stop once the first 30 s were heard: the rest is never run.
    let stop = || {
        looks.set(looks.get() + 1);
        looks.get() > 1
    };
    let got = speech_segments_until(&model, &audio, VadConfig::default(), &stop);
    assert!(matches!(got, Err(VadError::Stopped)), "{got:?}");
    assert_eq!(looks.get(), 2);
    // Never stopped: the whole buffer, as `speech_segments` gives it.
    let all = speech_segments_until(&model, &audio, VadConfig::default(), &|| false).unwrap();
    assert_eq!(
        all,
        speech_segments(&model, &audio, VadConfig::default()).unwrap()
    );
}

//! Diarization against the reference: the Kaldi fbank and CAM++ embedding
//! against golden values, the segmentation model against its golden
//! output, and the whole pipeline on the real two-speaker recording.

mod npy;

use std::path::PathBuf;

use glagol_core::audio::{decode_file, AudioLimits};
use glagol_core::diarize::cluster::SpeakerCount;
use glagol_core::diarize::score;
use glagol_core::diarize::{fbank, segmentation, DiarizeOptions, Diarizer};

fn ort_ready() {
    if let Some(p) = std::env::var_os("GLAGOL_ORT_LIB") {
        glagol_core::runtime::set_library(Some(p.into()));
    }
}

fn f32le(path: PathBuf) -> Vec<f32> {
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn wav(relative: &str) -> Vec<f32> {
    decode_file(&npy::assets().join(relative), &AudioLimits::default())
        .unwrap()
        .samples
}

fn diarizer(workers: usize) -> Diarizer {
    ort_ready();
    let models = npy::assets().join("models");
    Diarizer::load(
        &models.join("pyannote-segmentation-3.0/segmentation-3.0.onnx"),
        &models.join("campplus-zh-en/campplus.onnx"),
        workers,
    )
    .expect("ONNX Runtime: run `glagol runtime install`")
}

fn golden_embedding() -> Vec<f32> {
    let path = npy::assets().join("models/campplus-zh-en/reference/embeddings.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["full_embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn fbank_and_embedding_equal_the_reference() {
    let samples = wav("fixtures/ru-golos/golos_00.wav");
    let want =
        f32le(npy::assets().join("models/campplus-zh-en/reference/golos_00.full.fbank.f32le"));
    let got = fbank::fbank(&samples);
    assert_eq!(got.len(), want.len(), "398 × 80 frames");
    for (g, w) in got.iter().zip(&want) {
        let d = (g - w).abs();
        // Near-silent bins (log-mel near the floor) differ more by rounding.
        let tolerance = if *w < -10.0 { 3e-3 } else { 1e-3 };
        assert!(d <= tolerance, "fbank differs by {d} at value {w}");
    }
    let embedding = diarizer(1).embed(&samples).unwrap().unwrap();
    let c = cosine(&embedding, &golden_embedding());
    assert!(c > 0.9999, "cosine to the golden embedding {c}");
    // Too short for CAM++: no embedding rather than NaN.
    assert!(diarizer(1).embed(&samples[..400 + 160]).unwrap().is_none());
}

#[test]
fn segmentation_equals_its_golden_output() {
    let samples = wav("fixtures/diarization/sample.wav");
    let starts = segmentation::window_starts(samples.len());
    assert_eq!(starts.len(), 21);
    let want = f32le(npy::assets().join("fixtures/diarization/sample.seg-logp.f32le"));
    // Two workers share the windows; the result is the same as one's.
    let got = diarizer(2).segment(&samples, &starts, &|| false).unwrap();
    assert_eq!(got.len(), want.len(), "[21, 589, 7]");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "log-probabilities differ by {worst}");
}

#[test]
fn two_speakers_are_found_in_the_real_recording_within_the_reference_der() {
    let samples = wav("fixtures/diarization/sample.wav");
    let reference = score::parse_rttm(
        &std::fs::read_to_string(npy::assets().join("fixtures/diarization/sample.rttm")).unwrap(),
    )
    .unwrap();
    let d = diarizer(2);
    let result = d
        .diarize(&samples, &DiarizeOptions::default(), &|| false)
        .unwrap();
    assert_eq!(result.speakers(), 2, "{:?}", result.turns);
    assert_eq!((result.windows, result.embeddings), (21, 41));
    let hypothesis = result.labelled_turns();
    let der = score::der(&reference, &hypothesis, 30.0, 0.0);
    eprintln!("DER collar 0: {der:?}");
    assert!(
        der.der <= 0.065,
        "DER {:.2} % at collar 0 (reference 5.2 %)",
        der.der * 100.0
    );
    assert!(score::der(&reference, &hypothesis, 30.0, 0.25).der <= 0.01);
    // A speaker count is honoured.
    let one = DiarizeOptions {
        speakers: SpeakerCount {
            exactly: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(d.diarize(&samples, &one, &|| false).unwrap().speakers(), 1);
    // Silence has no speakers; a stop request stops.
    let silence = vec![0.0f32; 16_000 * 3];
    assert!(d
        .diarize(&silence, &DiarizeOptions::default(), &|| false)
        .unwrap()
        .turns
        .is_empty());
    assert!(d
        .diarize(&samples, &DiarizeOptions::default(), &|| true)
        .is_err());
}

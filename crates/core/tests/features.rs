//! GigaAM v3 features against the reference vectors.

mod npy;

use glagol_core::audio::{decode_file, AudioLimits};
use glagol_core::features::{self, LogMel};

#[test]
fn window_and_filterbank_equal_the_reference() {
    let dir = npy::assets().join("fixtures/gigaam-v3-features");
    let (shape, w) = npy::load_f32(&dir.join("window_320.npy"));
    assert_eq!(shape, vec![320]);
    assert_eq!(features::window(), w);
    let (shape, fb) = npy::load_f32(&dir.join("mel_filterbank_161x64.npy"));
    assert_eq!(shape, vec![161, 64]);
    let ours = features::mel_filterbank();
    let diff: Vec<_> = ours
        .iter()
        .zip(&fb)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .take(5)
        .collect();
    assert!(diff.is_empty(), "filterbank differs: {diff:?}");
}

#[test]
fn features_match_reference_within_1e_3() {
    let assets = npy::assets();
    let mut mel = LogMel::new();
    for i in 0..8 {
        let name = format!("golos_{i:02}");
        let wav = assets.join(format!("fixtures/ru-golos/{name}.wav"));
        let reference = assets.join(format!(
            "models/gigaam-v3-synthetic-tiny/reference-features/{name}.npy"
        ));
        let (shape, want) = npy::load_f32(&reference);
        let audio = decode_file(&wav, &AudioLimits::default()).unwrap();
        let got = mel.compute(&audio.samples);
        let frames = *shape.last().unwrap();
        assert_eq!(features::num_frames(audio.samples.len()), frames, "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max <= 1e-3, "{name}: max |diff| {max}");
        if i < 4 {
            let (_, fixture) =
                npy::load_f32(&assets.join(format!("fixtures/gigaam-v3-features/{name}.npy")));
            assert_eq!(fixture, want);
        }
        eprintln!("{name}: {frames} frames, max |diff| {max:e}");
    }
}

//! The diarization pipeline end to end on designed stand-in models
//! (`fixtures/diarization/make_standins.py`): two "speakers" made of tone
//! pairs, so the turns, the speaker count and the word labels are known
//! exactly and the test runs in milliseconds.

use std::path::Path;

use glagol_core::diarize::cluster::SpeakerCount;
use glagol_core::diarize::{assign, DiarizeOptions, Diarizer};
use glagol_core::engine::{Segment, Task, Transcript, Word};

const RATE: f64 = 16_000.0;

fn diarizer() -> Diarizer {
    if let Some(p) = std::env::var_os("GLAGOL_ORT_LIB") {
        glagol_core::runtime::set_library(Some(p.into()));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diarization");
    Diarizer::load(
        &dir.join("segmentation.onnx"),
        &dir.join("embedding.onnx"),
        2,
    )
    .expect("ONNX Runtime: run `glagol runtime install`")
}

/// A speaker's voice: two tones alternating every 100 ms, phase continuous.
fn voice(speaker: char, seconds: f64) -> Vec<f32> {
    let (f0, f1) = if speaker == 'A' {
        (300.0, 450.0)
    } else {
        (1500.0, 2200.0)
    };
    let mut phase = 0.0f64;
    (0..(seconds * RATE) as usize)
        .map(|i| {
            let f = if (i / 1600) % 2 == 0 { f0 } else { f1 };
            phase += 2.0 * std::f64::consts::PI * f / RATE;
            (0.3 * phase.sin()) as f32
        })
        .collect()
}

/// The parts one after another, with a deterministic noise floor (about
/// -46 dBFS) under all of it; also each voiced part's span in seconds.
fn conversation(parts: &[(Option<char>, f64)]) -> (Vec<f32>, Vec<(f64, f64, char)>) {
    let mut audio = Vec::new();
    let mut spans = Vec::new();
    for &(speaker, seconds) in parts {
        let start = audio.len() as f64 / RATE;
        match speaker {
            Some(s) => {
                audio.extend(voice(s, seconds));
                spans.push((start, start + seconds, s));
            }
            None => audio.extend(std::iter::repeat_n(0.0, (seconds * RATE) as usize)),
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for x in &mut audio {
        // Sum of four uniforms: close enough to Gaussian.
        let mut sum = 0.0f32;
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            sum += (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        *x += 0.005 * sum * 1.73;
    }
    (audio, spans)
}

#[test]
fn tone_speakers_come_back_as_two_speakers_with_their_turns() {
    let (audio, spans) = conversation(&[
        (Some('A'), 4.0),
        (None, 1.0),
        (Some('B'), 4.0),
        (None, 1.0),
        (Some('A'), 4.0),
        (None, 1.0),
        (Some('B'), 3.0),
    ]);
    let d = diarizer();
    let result = d
        .diarize(&audio, &DiarizeOptions::default(), &|| false)
        .unwrap();
    assert_eq!(result.speakers(), 2, "{:?}", result.turns);
    assert_eq!(result.turns.len(), 4, "{:?}", result.turns);
    for (turn, (start, end, who)) in result.turns.iter().zip(&spans) {
        // Within a few frames of the tone edges (the field is 62 ms wide).
        assert!((turn.start - start).abs() < 0.1, "{turn:?} vs {start}");
        assert!((turn.end - end).abs() < 0.1, "{turn:?} vs {end}");
        assert_eq!(
            assign::label(turn.speaker),
            if *who == 'A' { "A" } else { "B" }
        );
    }
    // A speaker count is honoured both ways.
    let exactly = |n| DiarizeOptions {
        speakers: SpeakerCount {
            exactly: Some(n),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        d.diarize(&audio, &exactly(1), &|| false)
            .unwrap()
            .speakers(),
        1
    );
    let at_most_one = DiarizeOptions {
        speakers: SpeakerCount {
            max: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        d.diarize(&audio, &at_most_one, &|| false)
            .unwrap()
            .speakers(),
        1
    );

    // A clip of A's voice is nearest A's centroid (how known speakers are named).
    let clip = d.embed(&voice('A', 2.0)).unwrap().unwrap();
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
            * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    assert!(cosine(&clip, &result.centroids[0]) > cosine(&clip, &result.centroids[1]));

    // Words take their turn's speaker; a segment spanning a change is split.
    let word = |w: &str, start: f64, end: f64| Word {
        word: w.into(),
        start,
        end,
        probability: 1.0,
        speaker: None,
    };
    let mut t = Transcript::empty(18.0, Task::Transcribe, None);
    t.segments.push(Segment {
        id: 0,
        seek: 0,
        start: 0.5,
        end: 8.0,
        text: " one two three".into(),
        tokens: Vec::new(),
        token_times: Vec::new(),
        temperature: 0.0,
        avg_logprob: 0.0,
        compression_ratio: 1.0,
        no_speech_prob: 0.0,
        words: vec![
            word(" one", 0.5, 1.0),
            word(" two", 3.0, 3.5),
            word(" three", 6.0, 6.5),
        ],
        logprobs: Vec::new(),
        speaker: None,
    });
    assign::apply(&mut t, &result, &[]);
    let got: Vec<(&str, &str)> = t
        .segments
        .iter()
        .map(|s| (s.text.as_str(), s.speaker.as_deref().unwrap()))
        .collect();
    assert_eq!(got, [("one two", "A"), ("three", "B")]);
}

#[test]
fn too_little_audio_for_a_voice_is_handled() {
    let d = diarizer();
    // 20 ms of a voice: speech, but too short to embed.
    let (audio, _) = conversation(&[(None, 0.5), (Some('A'), 0.02), (None, 0.5)]);
    let result = d
        .diarize(&audio, &DiarizeOptions::default(), &|| false)
        .unwrap();
    assert!(result.speakers() <= 1, "{result:?}");
    assert!(d.embed(&voice('A', 0.02)).unwrap().is_none());
    // Nothing at all.
    assert!(d
        .diarize(&[], &DiarizeOptions::default(), &|| false)
        .unwrap()
        .turns
        .is_empty());
}

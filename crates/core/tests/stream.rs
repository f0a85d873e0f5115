//! Live utterance detection on real speech fed as a microphone would (100 ms
//! frames): early finals announce exactly the audio the final gets, speech
//! that resumes takes them back, and partials cover everything received
//! (none while an early final is out).

mod npy;

use glagol_core::audio::{decode_file, AudioLimits};
use glagol_core::stream::{EndReason, StreamConfig, UtteranceEvent, Utterances};
use glagol_core::vad::VadModel;

const FRAME: usize = 1600;

fn recording() -> Vec<f32> {
    if let Some(p) = std::env::var_os("GLAGOL_ORT_LIB") {
        glagol_core::runtime::set_library(Some(p.into()));
    }
    let load = |path: &str| {
        decode_file(&npy::assets().join(path), &AudioLimits::default())
            .unwrap()
            .samples
    };
    // jfk pauses inside its sentences; the Golos clips are apart.
    let mut audio = vec![0.0f32; 16_000];
    audio.extend(load("fixtures/misc/jfk.wav"));
    for (i, n) in [0, 1, 2, 3].into_iter().enumerate() {
        audio.extend(vec![0.0f32; 16_000 + 8_000 * i]);
        audio.extend(load(&format!("fixtures/ru-golos/golos_0{n}.wav")));
    }
    audio.extend(vec![0.0f32; 2 * 16_000]);
    audio
}

fn events(audio: &[f32], config: StreamConfig) -> Vec<(usize, UtteranceEvent)> {
    let model = VadModel::embedded().expect("ONNX Runtime: run `glagol runtime install`");
    let mut detector = Utterances::new(model, config);
    let mut out = Vec::new();
    for frame in audio.chunks(FRAME) {
        for event in detector.push(frame).unwrap() {
            out.push((detector.clock(), event));
        }
    }
    out
}

/// Where the utterances that ended began and ended.
fn spans(events: &[(usize, UtteranceEvent)]) -> Vec<(usize, usize)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            UtteranceEvent::Ended { start, end, .. } => Some((*start, *end)),
            _ => None,
        })
        .collect()
}

#[test]
fn early_finals_carry_the_final_audio_and_resumed_speech_withdraws_them() {
    let audio = recording();
    let all = events(&audio, StreamConfig::default());
    let (mut adopted, mut resumed) = (0, 0);
    let mut ending = std::collections::HashSet::new();
    for (i, (at, event)) in all.iter().enumerate() {
        match event {
            UtteranceEvent::Ending { id, .. } => {
                ending.insert(*id);
            }
            UtteranceEvent::Ended {
                id,
                start,
                end,
                reason: EndReason::Vad,
                audio,
            } => {
                // The newest announcement for this utterance is this end, with this audio.
                let announced = all[..i].iter().rev().find_map(|(at, e)| match e {
                    UtteranceEvent::Ending {
                        id: eid,
                        start: s,
                        end: e,
                        audio: a,
                    } if eid == id => Some((*at, *s, *e, a)),
                    UtteranceEvent::Resumed { id: rid } if rid == id => None,
                    _ => None,
                });
                let (early_at, s, e, a) = announced.expect("no early final before a VAD end");
                assert_eq!((s, e), (*start, *end), "utterance {id}");
                assert_eq!(a, audio, "utterance {id}: early final audio differs");
                // Announced 300 ms (give or take a VAD window) before the silence was confirmed.
                let lead = at - early_at;
                assert!((4_000..=5_400).contains(&lead), "lead {lead} samples");
                adopted += 1;
            }
            UtteranceEvent::Resumed { id } => {
                let last = all[..i].iter().rev().find_map(|(_, e)| match e {
                    UtteranceEvent::Ending { id: eid, .. } if eid == id => Some(true),
                    UtteranceEvent::Resumed { id: rid } if rid == id => Some(false),
                    _ => None,
                });
                assert_eq!(last, Some(true), "resumed without an early final");
                ending.remove(id);
                resumed += 1;
            }
            UtteranceEvent::Partial { id, end, .. } => {
                assert_eq!(end, at, "a partial covers all audio received");
                assert!(
                    !ending.contains(id),
                    "a partial of {id} while its final is out"
                );
            }
            _ => {}
        }
    }
    assert!(adopted >= 5, "{adopted} utterances ended by silence");
    assert!(resumed >= 1, "jfk's pauses resume speech");

    // Turned off, nothing is announced and the utterances are the same.
    let off = events(
        &audio,
        StreamConfig {
            early_final_ms: 0,
            ..Default::default()
        },
    );
    assert!(!off.iter().any(|(_, e)| matches!(
        e,
        UtteranceEvent::Ending { .. } | UtteranceEvent::Resumed { .. }
    )));
    assert_eq!(spans(&all), spans(&off));
}

#[test]
fn tentative_utterances_start_partials_early_and_never_move_utterances() {
    // A 150 ms snippet of speech alone in a pause: heard, never confirmed.
    let mut audio = recording();
    let snippet: Vec<f32> = audio[16_000 + 24_800..16_000 + 27_200].to_vec();
    let pause = audio.len() - 16_000;
    audio.splice(pause..pause + snippet.len(), snippet);
    audio.extend(vec![0.0f32; 16_000]);

    let all = events(&audio, StreamConfig::default());
    let mut tentative = std::collections::HashMap::new();
    let (mut dropped, mut early_partials) = (Vec::new(), 0);
    for (_, event) in &all {
        match event {
            UtteranceEvent::Tentative { id, start } => {
                tentative.insert(*id, (*start, false));
            }
            UtteranceEvent::Partial { id, .. } => {
                if let Some((_, false)) = tentative.get(id) {
                    early_partials += 1;
                }
            }
            UtteranceEvent::Started { id, start } => {
                // Announced with the start it had when it was only heard.
                let (heard, announced) = tentative.get_mut(id).expect("started unheard");
                assert_eq!(heard, start, "utterance {id}");
                *announced = true;
            }
            UtteranceEvent::Dropped { id } => {
                assert_eq!(tentative.get(id).map(|t| t.1), Some(false));
                dropped.push(*id);
            }
            UtteranceEvent::Ending { id, .. } | UtteranceEvent::Ended { id, .. } => {
                assert!(!dropped.contains(id), "utterance {id} was dropped");
                assert_eq!(tentative.get(id).map(|t| t.1), Some(true), "{id}");
            }
            UtteranceEvent::Resumed { .. } => {}
        }
    }
    assert!(!dropped.is_empty(), "the snippet was not dropped");
    assert!(
        early_partials >= 3,
        "{early_partials} partials before Started"
    );

    // Without partials nothing is tentative, and the utterances are the same.
    let quiet = events(
        &audio,
        StreamConfig {
            partials: false,
            ..Default::default()
        },
    );
    assert!(!quiet.iter().any(|(_, e)| matches!(
        e,
        UtteranceEvent::Tentative { .. } | UtteranceEvent::Dropped { .. }
    )));
    assert_eq!(spans(&all), spans(&quiet));
    assert!(spans(&all).len() >= 5, "{:?}", spans(&all));
}

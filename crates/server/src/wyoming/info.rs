//! `describe` → `info`: one ASR program, `glagol`, with every installed
//! model and the languages it recognises (Home Assistant offers the union
//! of the installed models' languages). Fields are in the reference
//! writer's order; the parser requires `name`, `attribution`, `installed`
//! and `models` of a program, and `languages` of a model.

use glagol_core::models::EngineKind;
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize)]
pub struct Info {
    asr: Vec<AsrProgram>,
    tts: [(); 0],
    handle: [(); 0],
    intent: [(); 0],
    wake: [(); 0],
    mic: [(); 0],
    snd: [(); 0],
}

#[derive(Serialize)]
struct Attribution {
    name: &'static str,
    url: &'static str,
}

#[derive(Serialize)]
struct AsrProgram {
    name: &'static str,
    attribution: Attribution,
    installed: bool,
    description: &'static str,
    version: &'static str,
    models: Vec<AsrModel>,
    supports_transcript_streaming: bool,
    requires_external_vad: bool,
    prefers_auto_gain_enabled: bool,
    prefers_noise_reduction_enabled: bool,
}

#[derive(Serialize)]
struct AsrModel {
    name: String,
    attribution: Attribution,
    installed: bool,
    description: String,
    version: Option<&'static str>,
    languages: Vec<&'static str>,
}

/// The server's info as it stands (models installed now).
pub fn info(state: &AppState, endpointing: bool) -> Info {
    let models = state
        .registry
        .list()
        .into_iter()
        .filter_map(|(m, _)| {
            let (attribution, languages, family) = match m.engine {
                EngineKind::Gigaam => (
                    Attribution {
                        name: "SaluteDevices",
                        url: "https://github.com/salute-developers/GigaAM",
                    },
                    vec!["ru"],
                    "GigaAM v3",
                ),
                EngineKind::Whisper => (
                    Attribution {
                        name: "OpenAI",
                        url: "https://github.com/openai/whisper",
                    },
                    glagol_core::engine::whisper::languages(&m.path),
                    "Whisper",
                ),
                EngineKind::Vad | EngineKind::Segmentation | EngineKind::SpeakerEmbedding => {
                    return None
                }
            };
            Some(AsrModel {
                description: format!("{family}: {}", m.name),
                name: m.name,
                attribution,
                installed: true,
                version: None,
                languages,
            })
        })
        .collect();
    Info {
        asr: vec![AsrProgram {
            name: "glagol",
            attribution: Attribution {
                name: "glagol",
                // No public address to give: the program is the server itself.
                url: "",
            },
            installed: true,
            description: "glagol: on-device speech-to-text (GigaAM, Whisper), streaming",
            version: env!("CARGO_PKG_VERSION"),
            models,
            supports_transcript_streaming: true,
            // With its own endpointing the server ends each utterance itself.
            requires_external_vad: !endpointing,
            prefers_auto_gain_enabled: true,
            prefers_noise_reduction_enabled: true,
        }],
        tts: [],
        handle: [],
        intent: [],
        wake: [],
        mic: [],
        snd: [],
    }
}

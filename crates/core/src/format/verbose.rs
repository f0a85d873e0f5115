//! OpenAI's `verbose_json` transcription shape, as a typed struct: the one
//! definition every output of it (CLI, HTTP, SSE, OpenAPI) uses.

use serde::Serialize;

use super::language_name;
use crate::engine::{Segment, Task, Transcript, Word};

/// `response_format=verbose_json`. glagol adds `language_probability`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerboseJson {
    /// `transcribe` or `translate`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub task: Task,
    /// Language name in English, lower case (`russian`).
    pub language: String,
    /// Audio seconds.
    pub duration: f64,
    pub text: String,
    /// Present unless only `word` granularity was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<VerboseSegment>>,
    /// Present when word timestamps were asked for (or found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<VerboseWord>>,
    /// Probability of the detected language (absent when it was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_probability: Option<f32>,
}

/// One segment of `verbose_json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerboseSegment {
    pub id: usize,
    pub seek: usize,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<i32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// The speaker (diarization only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// One word of `verbose_json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerboseWord {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
    /// The speaker (diarization only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

impl VerboseJson {
    /// The transcript in OpenAI's shape; `words` at the top level when any
    /// segment has them.
    pub fn new(t: &Transcript) -> VerboseJson {
        let words: Vec<VerboseWord> = t
            .segments
            .iter()
            .flat_map(|s| s.words.iter())
            .map(VerboseWord::new)
            .collect();
        VerboseJson {
            task: t.task,
            language: t
                .language
                .as_deref()
                .map(language_name)
                .unwrap_or("unknown")
                .to_string(),
            duration: round3(t.duration),
            text: t.text.clone(),
            segments: Some(t.segments.iter().map(VerboseSegment::new).collect()),
            words: (!words.is_empty()).then_some(words),
            language_probability: t.language_probability,
        }
    }
}

impl VerboseSegment {
    pub fn new(s: &Segment) -> VerboseSegment {
        VerboseSegment {
            id: s.id,
            seek: s.seek,
            start: round3(s.start),
            end: round3(s.end),
            text: s.text.clone(),
            tokens: s.tokens.clone(),
            temperature: s.temperature,
            avg_logprob: s.avg_logprob,
            compression_ratio: s.compression_ratio,
            no_speech_prob: s.no_speech_prob,
            speaker: s.speaker.clone(),
        }
    }
}

impl VerboseWord {
    pub fn new(w: &Word) -> VerboseWord {
        VerboseWord {
            word: w.word.clone(),
            start: round3(w.start),
            end: round3(w.end),
            probability: w.probability,
            speaker: w.speaker.clone(),
        }
    }
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

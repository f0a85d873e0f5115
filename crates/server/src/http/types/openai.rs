//! The OpenAI routes' bodies: the transcription shapes (`json`,
//! `verbose_json`, `diarized_json`), their stream events, and the forms.

use glagol_core::engine::{Segment, Transcript};
use glagol_core::format::VerboseJson;
use serde::Serialize;
use utoipa::ToSchema;

/// `usage` of type `duration`: the audio's seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Always `duration`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Audio seconds, rounded up.
    pub seconds: u64,
}

impl Usage {
    pub fn of(t: &Transcript) -> Usage {
        Usage {
            kind: "duration",
            seconds: t.duration.ceil() as u64,
        }
    }
}

/// `response_format=json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptionJson {
    pub text: String,
    /// With `include[]=logprobs`: every token of the text, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
    /// The language recognised: one entry, or none when it could not be told.
    pub languages: Vec<LanguageCode>,
    pub usage: Usage,
}

/// A token and its log-probability (`include[]=logprobs`); the tokens'
/// bytes joined are the text.
#[derive(Debug, Serialize, ToSchema)]
pub struct Logprob {
    pub token: String,
    /// The token's UTF-8 bytes (a token may hold part of a character).
    pub bytes: Vec<u8>,
    /// Natural log of the token's probability.
    pub logprob: f32,
}

impl Logprob {
    pub fn of(segments: &[Segment]) -> Vec<Logprob> {
        segments
            .iter()
            .flat_map(|s| &s.logprobs)
            .map(|t| Logprob {
                token: t.token.clone(),
                bytes: t.bytes.clone(),
                logprob: t.logprob,
            })
            .collect()
    }
}

/// A language, as OpenAI's `languages` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LanguageCode {
    /// ISO-639-1.
    pub code: String,
}

impl LanguageCode {
    pub fn of(t: &Transcript) -> Vec<LanguageCode> {
        t.language
            .iter()
            .map(|code| LanguageCode { code: code.clone() })
            .collect()
    }
}

/// `response_format=verbose_json` on the OpenAI API.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiVerbose {
    #[serde(flatten)]
    pub transcript: VerboseJson,
    pub usage: Usage,
}

/// The JSON bodies of the OpenAI routes: `json`, `verbose_json` or `diarized_json`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiTranscription {
    Json(TranscriptionJson),
    Verbose(OpenAiVerbose),
    Diarized(OpenAiDiarized),
}

/// `response_format=diarized_json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiDiarized {
    #[serde(flatten)]
    pub transcript: glagol_core::format::DiarizedJson,
    pub usage: Usage,
}

/// SSE `transcript.text.delta` (OpenAI): text to append.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextDelta {
    /// Always `transcript.text.delta`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub delta: String,
    /// With `include[]=logprobs`: the tokens of this delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
    /// With diarization: the `transcript.text.segment` this delta belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
}

/// SSE `transcript.text.done` (OpenAI): the whole text.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextDone {
    /// Always `transcript.text.done`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
    /// With `include[]=logprobs`: every token of the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
    /// As in `response_format=json`.
    pub languages: Vec<LanguageCode>,
    /// Tokens, the only `usage` OpenAI's schema allows in this event.
    pub usage: TokenUsage,
}

/// `usage` of type `tokens`: audio in encoder frames (50 per second, as
/// Whisper's encoder has them), text in the tokens decoded.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenUsage {
    /// Always `tokens`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub input_token_details: InputTokenDetails,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InputTokenDetails {
    pub audio_tokens: u64,
    pub text_tokens: u64,
}

impl TokenUsage {
    /// Encoder frames per second of audio.
    const AUDIO_TOKENS_PER_SECOND: f64 = 50.0;

    pub fn of(t: &Transcript) -> TokenUsage {
        let audio = (t.duration * Self::AUDIO_TOKENS_PER_SECOND).ceil() as u64;
        let text: u64 = t.segments.iter().map(|s| s.tokens.len() as u64).sum();
        TokenUsage {
            kind: "tokens",
            input_tokens: audio,
            output_tokens: text,
            total_tokens: audio + text,
            input_token_details: InputTokenDetails {
                audio_tokens: audio,
                text_tokens: 0,
            },
        }
    }
}

/// `multipart/form-data` of `POST /v1/audio/transcriptions`.
#[derive(ToSchema)]
pub struct TranscriptionForm {
    /// The audio file: WAV, MP3, FLAC, Ogg (Vorbis/Opus), WebM, M4A/AAC.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    /// A model id from `GET /v1/models`, or an alias (`whisper-1` and OpenAI's `gpt-…` names = the default model).
    pub model: Option<String>,
    /// ISO-639-1 language code; detected when absent (Whisper).
    pub language: Option<String>,
    /// Text that guides the style or vocabulary (the last 1000 characters are used).
    pub prompt: Option<String>,
    pub response_format: Option<ResponseFormat>,
    /// Sampling temperature, 0–1; 0 = greedy with fallback.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub temperature: Option<f32>,
    /// `word` and/or `segment`; needs `response_format=verbose_json`.
    #[schema(rename = "timestamp_granularities[]")]
    pub timestamp_granularities: Option<Vec<Granularity>>,
    /// Answer with server-sent events (`transcript.text.delta`, `transcript.text.done`).
    pub stream: Option<bool>,
    /// `logprobs`: each token's log-probability, in `json` responses and stream events.
    #[schema(rename = "include[]")]
    pub include: Option<Vec<Include>>,
    /// Languages the audio may be in (ISO-639-1): detection chooses among them (Whisper; GigaAM
    /// needs `ru` among them).
    #[schema(rename = "languages[]")]
    pub languages: Option<Vec<String>>,
    /// Words or phrases to expect: added to Whisper's prompt (GigaAM cannot be steered and
    /// ignores them).
    #[schema(rename = "keywords[]")]
    pub keywords: Option<Vec<String>>,
    /// How the audio is cut into speech before recognition: `auto` (glagol's voice detection),
    /// or `{"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 200,
    /// "prefix_padding_ms": 300}` as JSON or as `chunking_strategy[key]` fields. Absent: the
    /// whole audio is recognised (long audio is still cut at pauses).
    pub chunking_strategy: Option<String>,
    /// Names of up to 4 speakers to recognise (with diarization: `diarized_json` or
    /// `gpt-4o-transcribe-diarize`), each with a clip in `known_speaker_references[]`.
    #[schema(rename = "known_speaker_names[]")]
    pub known_speaker_names: Option<Vec<String>>,
    /// A 2–10 s clip of each named speaker, as a data URL (`data:audio/wav;base64,…`).
    #[schema(rename = "known_speaker_references[]")]
    pub known_speaker_references: Option<Vec<String>>,
}

/// `multipart/form-data` of `POST /v1/audio/translations` (into English).
#[derive(ToSchema)]
pub struct TranslationForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub response_format: Option<ResponseFormat>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub temperature: Option<f32>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
    /// Segments with `speaker` (diarization).
    DiarizedJson,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Include {
    Logprobs,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Granularity {
    Word,
    Segment,
}

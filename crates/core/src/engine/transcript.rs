//! What recognition produces: a [`Transcript`] of [`Segment`]s of
//! [`Word`]s, in OpenAI's verbose_json vocabulary, shared by every engine.

use serde::{Deserialize, Serialize};

/// One recognised word with its time span (seconds) and confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
    /// The speaker's label (`A`, `B`, …) where diarization ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// A stretch of transcript, in OpenAI's verbose_json vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub id: usize,
    /// Offset of the decoding window, in 10 ms frames.
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<i32>,
    /// Start time of each token in `tokens` (seconds), where the engine
    /// knows it; not part of OpenAI's shape.
    #[serde(skip)]
    pub token_times: Vec<f64>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
    /// Each text token with its log-probability, in order; their bytes
    /// joined are the segment's text. Not part of verbose_json.
    #[serde(skip)]
    pub logprobs: Vec<TokenLogprob>,
    /// The speaker's label (`A`, `B`, …) where diarization ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// A decoded token and how sure the decoder was of it (OpenAI's `logprobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text (invalid UTF-8 of a token that splits a character replaced).
    pub token: String,
    /// The token's bytes as the model has them.
    pub bytes: Vec<u8>,
    /// Natural log of its probability.
    pub logprob: f32,
}

impl Segment {
    /// Clamps the segment into `[floor, duration]` and its words into the
    /// segment, in order: the timing invariants every output format relies on.
    pub(crate) fn clamp_times(&mut self, floor: f64, duration: f64) {
        self.start = self.start.clamp(floor.min(duration), duration);
        self.end = self.end.clamp(self.start, duration);
        let mut wfloor = self.start;
        for w in &mut self.words {
            w.start = w.start.clamp(wfloor, self.end);
            w.end = w.end.clamp(w.start, self.end);
            wfloor = w.start;
        }
    }
}

/// What to do with the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Transcribe,
    /// Transcribe into English.
    Translate,
}

/// The result of recognising one piece of audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub task: Task,
    /// ISO 639-1 code, detected or as requested.
    pub language: Option<String>,
    /// Probability of the detected language (None when it was given).
    pub language_probability: Option<f32>,
    /// Length of the audio in seconds.
    pub duration: f64,
    pub text: String,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// An empty transcript (no speech) of the given duration.
    pub fn empty(duration: f64, task: Task, language: Option<String>) -> Self {
        Transcript {
            task,
            language,
            language_probability: None,
            duration,
            text: String::new(),
            segments: Vec::new(),
        }
    }

    /// Rebuilds `text` from the segments.
    pub fn rebuild_text(&mut self) {
        self.text = join_text(&self.segments);
    }

    /// Enforces the timing invariants every output format relies on:
    /// times inside `[0, duration]`, segments in order and not
    /// overlapping, words inside their segment and in order.
    pub fn normalize_times(&mut self) {
        let duration = self.duration;
        let mut floor = 0.0f64;
        for (i, seg) in self.segments.iter_mut().enumerate() {
            seg.id = i;
            seg.clamp_times(floor, duration);
            floor = seg.end;
        }
    }
}

/// The transcript text of `segments`: their trimmed texts joined by spaces.
pub fn join_text(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

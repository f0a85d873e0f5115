//! What a live session is asked to do and what it reports.

use std::time::Duration;

use glagol_core::engine::{TokenLogprob, Word};
use glagol_core::stream::{EndReason, StreamConfig};

use crate::error::ServiceError;

/// What a session is asked to do.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Model id or alias; None for the default model.
    pub model: Option<String>,
    /// ISO-639-1 code; None to detect (Whisper).
    pub language: Option<String>,
    /// The languages the speech may be in: detection chooses among them.
    pub languages: Vec<String>,
    pub prompt: Option<String>,
    pub stream: StreamConfig,
    /// Label finals with session-consistent speakers.
    pub diarize: bool,
}

/// A partial result of the open utterance.
#[derive(Debug, Clone)]
pub struct Partial {
    pub utterance: u64,
    /// Committed words followed by the newest hypothesis's other words.
    pub text: String,
    /// How many leading words of `text` will not change.
    pub committed: usize,
    /// Text committed by this partial, to append to earlier deltas.
    pub delta: String,
    /// Words shown by the previous partial that this one changed.
    pub retracted: usize,
    pub words: Vec<Word>,
    /// Session audio seconds.
    pub start: f64,
    pub end: f64,
    /// How long after the newest audio it heard arrived it was handed out.
    pub delay: Duration,
}

/// The final result of an utterance (recognised whole, like a file).
#[derive(Debug, Clone)]
pub struct Final {
    pub utterance: u64,
    pub text: String,
    pub words: Vec<Word>,
    pub start: f64,
    pub end: f64,
    pub reason: EndReason,
    /// What an append-only client appends to the deltas it was sent.
    pub completion: String,
    /// Text the deltas committed before the final.
    pub committed: String,
    pub language: Option<String>,
    /// The tokens of `text` with their log-probabilities.
    pub logprobs: Vec<TokenLogprob>,
    /// How long after the audio at its end arrived it was handed out.
    pub delay: Duration,
    /// The speaker (`diarize` sessions).
    pub speaker: Option<String>,
}

#[derive(Debug, Clone)]
pub enum SessionEvent {
    SpeechStarted {
        utterance: u64,
        start: f64,
    },
    SpeechStopped {
        utterance: u64,
        end: f64,
    },
    Partial(Partial),
    Final(Final),
    /// Recognising an utterance failed; the session goes on.
    Error {
        utterance: Option<u64>,
        error: ServiceError,
    },
}

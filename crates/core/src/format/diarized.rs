//! OpenAI's `diarized_json`: the transcript as segments of one speaker
//! each, with string ids and no words.

use serde::Serialize;

use super::verbose::round3;
use crate::engine::{Segment, Task, Transcript};

/// `response_format=diarized_json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiarizedJson {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub task: Task,
    /// Audio seconds.
    pub duration: f64,
    pub text: String,
    pub segments: Vec<DiarizedSegment>,
}

/// One speaker's stretch of `diarized_json` (also the SSE
/// `transcript.text.segment` event).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiarizedSegment {
    /// Always `transcript.text.segment`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `seg_0`, `seg_1`, …
    pub id: String,
    pub start: f64,
    pub end: f64,
    /// A known speaker's name, else `A`, `B`, … in order of first speech.
    pub speaker: String,
    pub text: String,
}

impl DiarizedSegment {
    pub fn new(s: &Segment) -> DiarizedSegment {
        DiarizedSegment {
            kind: "transcript.text.segment",
            id: format!("seg_{}", s.id),
            start: round3(s.start),
            end: round3(s.end),
            speaker: s.speaker.clone().unwrap_or_else(|| "A".into()),
            text: s.text.trim().to_string(),
        }
    }
}

impl DiarizedJson {
    pub fn new(t: &Transcript) -> DiarizedJson {
        DiarizedJson {
            task: t.task,
            duration: round3(t.duration),
            text: t.text.clone(),
            segments: t
                .segments
                .iter()
                .filter(|s| !s.text.trim().is_empty())
                .map(DiarizedSegment::new)
                .collect(),
        }
    }
}

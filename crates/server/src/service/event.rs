//! What a transcription yields, in order: progress and segments while the
//! engine runs, then exactly one terminal event.

use glagol_core::engine::{Progress, Segment, Transcript};

use crate::error::ServiceError;

#[derive(Debug, Clone)]
pub enum Event {
    /// How far recognition has got.
    Progress(Progress),
    /// A decoded segment; it appears unchanged in the final transcript.
    Segment(Segment),
    /// The whole transcript (terminal).
    Done(Transcript),
    /// Recognition failed, timed out or was refused (terminal).
    Error(ServiceError),
}

impl Event {
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Done(_) | Event::Error(_))
    }
}

//! Results while recognition runs: each segment as soon as it is decoded,
//! and progress, delivered to a caller-supplied [`EventSink`].
//!
//! Engines do not build their final transcript separately from what they
//! announce: every segment goes through one [`SegmentEmitter`], which
//! numbers and clamps it, hands it to the sink and keeps it. The final
//! transcript is what was emitted, so a client that assembles the streamed
//! segments gets exactly the transcript a non-streaming call returns.

use std::sync::Arc;

use super::transcript::Segment;

/// How far recognition of one request has got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Units of work finished: chunks (GigaAM) or decoded segments (Whisper).
    pub done: usize,
    /// Units of work in all, where the engine knows it up front.
    pub total: Option<usize>,
    /// Audio seconds recognised so far.
    pub seconds: f64,
    /// Audio seconds in all.
    pub duration: f64,
}

impl Progress {
    /// Fraction done in `[0, 1]`.
    pub fn fraction(&self) -> f32 {
        if self.duration <= 0.0 {
            return 1.0;
        }
        (self.seconds / self.duration).clamp(0.0, 1.0) as f32
    }
}

/// Something that happened while recognising one request.
#[derive(Debug, Clone, Copy)]
pub enum EngineEvent<'a> {
    /// A finished segment, final: it will appear unchanged in the transcript.
    Segment(&'a Segment),
    Progress(Progress),
}

/// Receives a request's events, on the thread that runs recognition.
/// It must return quickly (queue the event; never block on a client).
pub type EventSink = Arc<dyn Fn(EngineEvent<'_>) + Send + Sync>;

/// Numbers, clamps, announces and keeps the segments of one request.
pub struct SegmentEmitter<'a> {
    sink: Option<&'a EventSink>,
    duration: f64,
    floor: f64,
    segments: Vec<Segment>,
}

impl<'a> SegmentEmitter<'a> {
    pub fn new(sink: Option<&'a EventSink>, duration: f64) -> Self {
        SegmentEmitter {
            sink,
            duration,
            floor: 0.0,
            segments: Vec::new(),
        }
    }

    /// Adds the next segment in time order.
    pub fn push(&mut self, mut segment: Segment) {
        segment.id = self.segments.len();
        segment.clamp_times(self.floor, self.duration);
        self.floor = segment.end;
        if let Some(sink) = self.sink {
            sink(EngineEvent::Segment(&segment));
        }
        self.segments.push(segment);
    }

    /// Reports progress.
    pub fn progress(&self, done: usize, total: Option<usize>, seconds: f64) {
        if let Some(sink) = self.sink {
            sink(EngineEvent::Progress(Progress {
                done,
                total,
                seconds: seconds.clamp(0.0, self.duration),
                duration: self.duration,
            }));
        }
    }

    /// Audio seconds of the request.
    pub fn duration(&self) -> f64 {
        self.duration
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn into_segments(self) -> Vec<Segment> {
        self.segments
    }
}

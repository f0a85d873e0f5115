//! Whole-file recognition: the optional VAD gate in front of any engine.
//!
//! With VAD on, only speech reaches the engine: the speech segments are
//! joined (separated by a short silence so words do not run together), the
//! joined audio is transcribed in one call, and every timestamp is mapped
//! back onto the original timeline. Silence-only input yields an empty
//! transcript without running the engine at all, so a model cannot
//! hallucinate text into it.

use std::sync::Arc;

use crate::audio::SAMPLE_RATE;
use crate::engine::{
    Engine, EngineError, EngineEvent, Progress, Segment, SegmentEmitter, TranscribeOptions,
    Transcript,
};
use crate::vad::{speech_segments_until, SpeechSegment, VadConfig, VadError, VadModel};

/// Silence inserted between joined speech segments (samples).
const GAP: usize = SAMPLE_RATE as usize / 5;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Vad(#[from] VadError),
}

impl PipelineError {
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Engine(e) => e.code(),
            PipelineError::Vad(VadError::Runtime(e)) => e.code(),
            PipelineError::Vad(_) => "vad_failed",
        }
    }
}

/// Maps times in the joined speech-only audio back to the original.
struct Timeline {
    /// (start in joined audio, start in original, length), in samples.
    pieces: Vec<(usize, usize, usize)>,
}

impl Timeline {
    /// A segment of the joined audio, moved onto the original timeline.
    fn segment(&self, s: &Segment) -> Segment {
        let mut seg = s.clone();
        seg.start = self.to_original(seg.start);
        seg.end = self.to_original(seg.end);
        seg.seek = (seg.start * 100.0) as usize;
        for t in &mut seg.token_times {
            *t = self.to_original(*t);
        }
        for w in &mut seg.words {
            w.start = self.to_original(w.start);
            w.end = self.to_original(w.end);
        }
        seg
    }

    fn to_original(&self, t: f64) -> f64 {
        let s = (t * SAMPLE_RATE as f64).max(0.0) as usize;
        // The piece that contains s, or the last one starting before it.
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|(joined, _, _)| *joined <= s)
            .or(self.pieces.first());
        match piece {
            Some(&(joined, orig, len)) => {
                let within = s.saturating_sub(joined).min(len);
                (orig + within) as f64 / SAMPLE_RATE as f64
            }
            None => t,
        }
    }
}

/// Transcribes `audio`, gated by the VAD when `vad` is given. Events
/// reach `options.events` on the original timeline.
pub fn transcribe(
    engine: &dyn Engine,
    audio: &[f32],
    options: &TranscribeOptions,
    vad: Option<(&Arc<VadModel>, VadConfig)>,
) -> Result<Transcript, PipelineError> {
    let Some((model, config)) = vad else {
        return Ok(engine.transcribe(audio, options)?);
    };
    let duration = audio.len() as f64 / SAMPLE_RATE as f64;
    let segments = match speech_segments_until(model, audio, config, &|| options.is_cancelled()) {
        Err(VadError::Stopped) => return Err(EngineError::cancelled().into()),
        other => other?,
    };
    if segments.is_empty() {
        SegmentEmitter::new(options.events.as_ref(), duration).progress(0, Some(0), duration);
        return Ok(Transcript::empty(
            duration,
            options.task,
            options.language.clone().filter(|l| l != "auto"),
        ));
    }
    let (joined, timeline) = join(audio, &segments);
    let timeline = Arc::new(timeline);
    let mut joined_options = options.clone();
    if let Some(sink) = options.events.clone() {
        let timeline = timeline.clone();
        joined_options.events = Some(Arc::new(move |event: EngineEvent<'_>| match event {
            EngineEvent::Segment(s) => sink(EngineEvent::Segment(&timeline.segment(s))),
            EngineEvent::Progress(p) => sink(EngineEvent::Progress(Progress {
                seconds: timeline.to_original(p.seconds),
                duration,
                ..p
            })),
        }));
    }
    let mut transcript = engine.transcribe(&joined, &joined_options)?;
    transcript.duration = duration;
    for seg in &mut transcript.segments {
        *seg = timeline.segment(seg);
    }
    transcript.normalize_times();
    Ok(transcript)
}

fn join(audio: &[f32], segments: &[SpeechSegment]) -> (Vec<f32>, Timeline) {
    let mut joined = Vec::new();
    let mut pieces = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            joined.extend(std::iter::repeat_n(0.0, GAP));
        }
        pieces.push((joined.len(), s.start, s.end - s.start));
        joined.extend_from_slice(&audio[s.start..s.end]);
    }
    (joined, Timeline { pieces })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_maps_back() {
        let audio = vec![0.0; 16000 * 10];
        let segs = [
            SpeechSegment {
                start: 16000,
                end: 32000,
            },
            SpeechSegment {
                start: 80000,
                end: 96000,
            },
        ];
        let (joined, tl) = join(&audio, &segs);
        assert_eq!(joined.len(), 16000 + GAP + 16000);
        assert!((tl.to_original(0.0) - 1.0).abs() < 1e-9);
        assert!((tl.to_original(0.5) - 1.5).abs() < 1e-9);
        let second = (16000 + GAP) as f64 / 16000.0;
        assert!((tl.to_original(second + 0.25) - 5.25).abs() < 1e-9);
    }
}

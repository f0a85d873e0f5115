//! Long pauses inside a chunk of long audio, shortened before the encoder
//! hears them.
//!
//! A chunk keeps the pauses between its sentences for the context the
//! sentences give each other, but the encoder's cost grows with the
//! chunk's length, silence included, and a pause says no more at two
//! seconds than at half of one. So every pause the VAD found inside a
//! chunk is cut down to [`KEPT_PAUSE_S`] (half from each side, so both
//! neighbours keep their edges) and the times Whisper gives on the
//! shortened audio are mapped back onto the chunk's own timeline.

use crate::audio::SAMPLE_RATE;
use crate::engine::Segment;

/// Silence kept of a longer pause between two stretches of speech, on top
/// of the VAD's 200 ms padding around each (so a sentence boundary still
/// sounds like one). On the recordings of `scripts/bench/long_audio_wer.py`
/// (q8_0, 2 threads) keeping 0.1 / 0.3 / 0.6 s gave 47.4 / 47.6 / 47.0 %
/// WER (47.5 % with whole pauses: the same within noise) in 14.9 / 15.2 /
/// 15.9 s, against 17.5 s with whole pauses.
pub const KEPT_PAUSE_S: f64 = 0.3;

/// A chunk's audio with its pauses shortened, and the way back to the
/// whole audio's timeline.
pub(super) struct Condensed {
    pub audio: Vec<f32>,
    /// Each kept stretch: where it starts in `audio` and in the whole
    /// audio (seconds), in order.
    kept: Vec<(f64, f64)>,
}

impl Condensed {
    /// Samples `start..end` of `audio` with the pauses between the
    /// `speech` spans (seconds, in order) that lie inside it shortened.
    pub fn new(audio: &[f32], start: usize, end: usize, speech: &[(f64, f64)]) -> Self {
        let at = |seconds: f64| ((seconds * SAMPLE_RATE as f64) as usize).clamp(start, end);
        let half = (KEPT_PAUSE_S / 2.0 * SAMPLE_RATE as f64) as usize;
        let mut kept = Vec::new();
        let mut condensed = Vec::with_capacity(end - start);
        let mut from = start;
        let inside = speech.iter().filter(|s| at(s.1) > start && at(s.0) < end);
        let mut previous_end: Option<usize> = None;
        for &(s, e) in inside {
            let (s, e) = (at(s), at(e));
            if let Some(pause_start) = previous_end {
                if s > pause_start + 2 * half {
                    let cut_from = pause_start + half;
                    keep(audio, from, cut_from, &mut condensed, &mut kept);
                    from = s - half;
                }
            }
            previous_end = Some(previous_end.map_or(e, |p| p.max(e)));
        }
        keep(audio, from, end, &mut condensed, &mut kept);
        Condensed {
            audio: condensed,
            kept,
        }
    }

    /// The whole audio's time of `t` seconds into the condensed audio.
    /// A time where a pause was cut is the end of the stretch before it
    /// when `ending` (a segment's or word's end), else the start of the
    /// stretch after it.
    pub fn to_original(&self, t: f64, ending: bool) -> f64 {
        let after = if ending {
            self.kept.partition_point(|k| k.0 < t)
        } else {
            self.kept.partition_point(|k| k.0 <= t)
        };
        let (condensed, original) = self.kept[after.saturating_sub(1)];
        original + (t - condensed)
    }

    /// Moves a segment recognised on the condensed audio (times from 0)
    /// onto the whole audio's timeline.
    pub fn restore(&self, segment: &mut Segment) {
        segment.start = self.to_original(segment.start, false);
        segment.end = self.to_original(segment.end, true);
        segment.seek = (segment.start * 100.0) as usize;
        for t in &mut segment.token_times {
            *t = self.to_original(*t, false);
        }
        for w in &mut segment.words {
            w.start = self.to_original(w.start, false);
            w.end = self.to_original(w.end, true);
        }
    }
}

/// Appends samples `from..to` of `audio` as one kept stretch.
fn keep(audio: &[f32], from: usize, to: usize, out: &mut Vec<f32>, kept: &mut Vec<(f64, f64)>) {
    if to <= from {
        return;
    }
    let seconds = |samples: usize| samples as f64 / SAMPLE_RATE as f64;
    kept.push((seconds(out.len()), seconds(from)));
    out.extend_from_slice(&audio[from..to]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_shortened_and_times_map_back() {
        // 10 s of audio whose sample values are their own times; speech
        // at 1-3 s, 5-6 s (a 2 s pause before) and 6.2-9 s (0.2 s).
        let audio: Vec<f32> = (0..10 * SAMPLE_RATE)
            .map(|i| i as f32 / SAMPLE_RATE as f32)
            .collect();
        let speech = [(1.0, 3.0), (5.0, 6.0), (6.2, 9.0)];
        let start = SAMPLE_RATE as usize; // the chunk is 1-9.5 s
        let end = 19 * SAMPLE_RATE as usize / 2;
        let c = Condensed::new(&audio, start, end, &speech);
        // Only the 2 s pause is cut, to 0.3 s: 8.5 s - 1.7 s.
        let seconds = c.audio.len() as f64 / SAMPLE_RATE as f64;
        assert!((seconds - 6.8).abs() < 1e-3, "{seconds}");
        // The kept samples are the original ones around the cut.
        let sample_at = |t: f64| c.audio[(t * SAMPLE_RATE as f64) as usize] as f64;
        assert!((sample_at(2.1) - 3.1).abs() < 1e-3);
        assert!((sample_at(2.2) - 4.9).abs() < 1e-3);
        // Times map back, and the cut itself to either side of the pause.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
        assert!(close(c.to_original(0.5, false), 1.5));
        assert!(close(c.to_original(2.15, false), 4.85));
        assert!(close(c.to_original(2.15, true), 3.15));
        assert!(close(c.to_original(4.0, true), 6.7));
        // No pause to cut: the audio is the chunk's, the times its own.
        let whole = Condensed::new(&audio, start, end, &[(0.0, 10.0)]);
        assert_eq!(whole.audio.len(), end - start);
        assert!(close(whole.to_original(3.0, true), 4.0));
    }
}

//! Local speakers per window: pyannote segmentation-3.0 over sliding 10 s
//! windows, its powerset output decoded, and the windows' frames laid on
//! one global frame grid.
//!
//! The model sees `[B, 1, 160000]` and answers `[B, 589, 7]`
//! log-probabilities over the powerset of 3 local speakers with at most 2
//! at once: `{}`, `{1}`, `{2}`, `{3}`, `{1,2}`, `{1,3}`, `{2,3}`. Frame `i`
//! covers samples `[270·i, 270·i + 991)`; window `k` starts at global frame
//! `round(k · 16000 / 270)`.

use super::DiarizeError;

pub const SAMPLE_RATE: usize = 16_000;
/// Samples per window (10 s).
pub const WINDOW: usize = 10 * SAMPLE_RATE;
/// Samples between window starts (1 s).
pub const STEP: usize = SAMPLE_RATE;
/// Local speakers the model distinguishes in a window.
pub const LOCAL_SPEAKERS: usize = 3;
const FIELD: f64 = 991.0 / SAMPLE_RATE as f64;
const FRAME_STEP: f64 = 270.0 / SAMPLE_RATE as f64;
const POWERSET: [[bool; LOCAL_SPEAKERS]; 7] = [
    [false, false, false],
    [true, false, false],
    [false, true, false],
    [false, false, true],
    [true, true, false],
    [true, false, true],
    [false, true, true],
];

/// The start (in samples) of each window over `n` samples: every step
/// while a whole window fits, then one more, zero-padded, for the rest.
pub fn window_starts(n: usize) -> Vec<usize> {
    let mut starts: Vec<usize> = if n >= WINDOW {
        (0..=(n - WINDOW) / STEP).map(|k| k * STEP).collect()
    } else {
        Vec::new()
    };
    if n < WINDOW || !(n - WINDOW).is_multiple_of(STEP) {
        starts.push(starts.len() * STEP);
    }
    starts
}

/// A window's samples, zero-padded to [`WINDOW`].
pub fn window(samples: &[f32], start: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; WINDOW];
    let end = (start + WINDOW).min(samples.len());
    if start < end {
        w[..end - start].copy_from_slice(&samples[start..end]);
    }
    w
}

/// The global frame nearest to a time, as pyannote's `closest_frame`.
pub fn closest_frame(seconds: f64) -> usize {
    ((seconds - 0.5 * FIELD) / FRAME_STEP)
        .round_ties_even()
        .max(0.0) as usize
}

/// The middle of global frame `i`, in seconds.
pub fn frame_middle(i: usize) -> f64 {
    i as f64 * FRAME_STEP + FIELD / 2.0
}

/// Which local speakers speak in each frame of each window.
pub struct Activity {
    /// Window start samples.
    pub starts: Vec<usize>,
    /// Frames per window.
    pub frames: usize,
    /// `[window][frame][speaker]`, flattened.
    pub active: Vec<bool>,
}

impl Activity {
    /// Decodes `[windows, frames, 7]` log-probabilities by arg-max.
    pub fn from_log_probs(starts: Vec<usize>, log_probs: &[f32]) -> Result<Activity, DiarizeError> {
        let rows = log_probs.len() / POWERSET.len();
        if starts.is_empty()
            || !rows.is_multiple_of(starts.len())
            || !log_probs.len().is_multiple_of(POWERSET.len())
        {
            return Err(DiarizeError::Model(format!(
                "segmentation gave {} values for {} windows of 7 classes",
                log_probs.len(),
                starts.len()
            )));
        }
        let mut active = Vec::with_capacity(rows * LOCAL_SPEAKERS);
        for row in log_probs.chunks_exact(POWERSET.len()) {
            let mut best = 0;
            for (c, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = c;
                }
            }
            active.extend_from_slice(&POWERSET[best]);
        }
        Ok(Activity {
            frames: rows / starts.len(),
            starts,
            active,
        })
    }

    pub fn windows(&self) -> usize {
        self.starts.len()
    }

    pub fn is_active(&self, window: usize, frame: usize, speaker: usize) -> bool {
        self.active[(window * self.frames + frame) * LOCAL_SPEAKERS + speaker]
    }

    /// Local speakers active in a frame.
    pub fn speaking(&self, window: usize, frame: usize) -> usize {
        (0..LOCAL_SPEAKERS)
            .filter(|&s| self.is_active(window, frame, s))
            .count()
    }

    /// Whether a local speaker speaks anywhere in a window.
    pub fn speaks(&self, window: usize, speaker: usize) -> bool {
        (0..self.frames).any(|f| self.is_active(window, f, speaker))
    }

    /// Global frame at which a window begins.
    pub fn first_frame(&self, window: usize) -> usize {
        closest_frame(self.starts[window] as f64 / SAMPLE_RATE as f64 + 0.5 * FIELD)
    }

    /// Frames on the global grid.
    pub fn global_frames(&self) -> usize {
        let last = self.starts.last().copied().unwrap_or(0);
        closest_frame((last + WINDOW) as f64 / SAMPLE_RATE as f64 + 0.5 * FIELD) + 1
    }

    /// Speakers at each global frame: the number active in each window
    /// covering it, averaged over those windows and rounded.
    pub fn speaker_count(&self) -> Vec<usize> {
        let n = self.global_frames();
        let mut total = vec![0.0f64; n];
        let mut covering = vec![0u32; n];
        for w in 0..self.windows() {
            let first = self.first_frame(w);
            for f in 0..self.frames.min(n.saturating_sub(first)) {
                total[first + f] += self.speaking(w, f) as f64;
                covering[first + f] += 1;
            }
        }
        total
            .iter()
            .zip(&covering)
            .map(|(&t, &c)| {
                if c == 0 {
                    0
                } else {
                    (t / c as f64).round_ties_even() as usize
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_audio_and_pad_the_last() {
        assert_eq!(window_starts(5 * SAMPLE_RATE), vec![0]);
        assert_eq!(window_starts(WINDOW), vec![0]);
        assert_eq!(window_starts(WINDOW + 100), vec![0, STEP]);
        assert_eq!(window_starts(30 * SAMPLE_RATE).len(), 21);
        let w = window(&[1.0; 100], 0);
        assert_eq!(w.len(), WINDOW);
        assert_eq!(w[99], 1.0);
        assert_eq!(w[100], 0.0);
    }

    #[test]
    fn frames_map_to_time_on_the_receptive_field() {
        assert_eq!(closest_frame(0.5 * FIELD), 0);
        // Window 1 starts 1 s in: 16000 / 270 = 59.26 frames.
        assert_eq!(closest_frame(1.0 + 0.5 * FIELD), 59);
        assert!((frame_middle(0) - 991.0 / 32000.0).abs() < 1e-12);
    }

    #[test]
    fn powerset_decodes_to_local_speakers() {
        // Two frames: class 6 ({2,3}) and class 1 ({1}).
        let mut lp = vec![-9.0f32; 14];
        lp[6] = -0.1;
        lp[7 + 1] = -0.1;
        let a = Activity::from_log_probs(vec![0], &lp).unwrap();
        assert_eq!(a.frames, 2);
        assert!(!a.is_active(0, 0, 0) && a.is_active(0, 0, 1) && a.is_active(0, 0, 2));
        assert_eq!(a.speaking(0, 0), 2);
        assert!(a.is_active(0, 1, 0) && a.speaking(0, 1) == 1);
        assert!(Activity::from_log_probs(vec![0, 1], &lp[..7]).is_err());
    }
}

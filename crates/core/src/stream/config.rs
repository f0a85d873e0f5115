//! The settings of a live stream's utterance detection, and their ranges.

use crate::vad::VadConfig;

/// Audio before detected speech an utterance includes, unless its client
/// or engine says otherwise.
pub const DEFAULT_PREFIX_MS: u32 = 300;

/// Speech before a live utterance's first partial is due, unless its engine
/// says otherwise (`Engine::first_partial_ms`).
pub const DEFAULT_FIRST_PARTIAL_MS: u32 = 200;

/// How utterances are found and how often partials are due.
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Speech probability at or above which a window is speech.
    pub threshold: f32,
    /// Silence that ends an utterance.
    pub silence_ms: u32,
    /// Longest utterance; a longer one is cut at its quietest point.
    pub max_utterance_s: f64,
    /// Audio kept before the detected speech start (so the first sound is
    /// not clipped), in milliseconds; None: the engine's preference
    /// (`Engine::speech_prefix_ms`), [`DEFAULT_PREFIX_MS`] without one.
    pub prefix_ms: Option<u32>,
    /// End utterances at silences (false: only [`Utterances::finalize`]
    /// ends them, as when a client commits its own turns; a turn in which
    /// the VAD heard no speech then ends without a final, so silence is
    /// never recognised into words).
    pub endpointing: bool,
    /// Partials at all.
    pub partials: bool,
    /// Speech before the first partial of an utterance, in ms.
    pub first_partial_ms: u32,
    /// Audio between later partials, in ms.
    pub partial_interval_ms: u32,
    /// How long before the silence ends an utterance its final may start
    /// (0: only once the silence is complete).
    pub early_final_ms: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            threshold: 0.5,
            silence_ms: 500,
            max_utterance_s: 20.0,
            prefix_ms: None,
            endpointing: true,
            partials: true,
            first_partial_ms: DEFAULT_FIRST_PARTIAL_MS,
            partial_interval_ms: 700,
            early_final_ms: 300,
        }
    }
}

impl StreamConfig {
    /// Checks the values a client may set.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.05..=0.95).contains(&self.threshold) {
            return Err(format!(
                "threshold must be between 0.05 and 0.95, got {}",
                self.threshold
            ));
        }
        if !(100..=10_000).contains(&self.silence_ms) {
            return Err(format!(
                "silence must be 100–10000 ms, got {}",
                self.silence_ms
            ));
        }
        if !(self.max_utterance_s.is_finite() && (2.0..=60.0).contains(&self.max_utterance_s)) {
            return Err(format!(
                "max utterance must be 2–60 s, got {}",
                self.max_utterance_s
            ));
        }
        if self.early_final_ms > self.silence_ms {
            return Err(format!(
                "early final must be at most the silence ({} ms), got {}",
                self.silence_ms, self.early_final_ms
            ));
        }
        if let Some(prefix) = self.prefix_ms.filter(|p| *p > 2000) {
            return Err(format!("prefix must be at most 2000 ms, got {prefix}"));
        }
        Ok(())
    }

    pub(super) fn prefix_ms(&self) -> u32 {
        self.prefix_ms.unwrap_or(DEFAULT_PREFIX_MS)
    }

    pub(super) fn vad(&self) -> VadConfig {
        VadConfig {
            threshold: self.threshold,
            neg_threshold: (self.threshold - 0.15).max(0.01),
            min_silence_ms: self.silence_ms,
            ..VadConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_checked() {
        assert!(StreamConfig::default().validate().is_ok());
        let bad = StreamConfig {
            threshold: f32::NAN,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = StreamConfig {
            max_utterance_s: 1000.0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}

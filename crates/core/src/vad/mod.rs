//! Voice activity detection: Silero VAD v6 through ONNX Runtime.
//!
//! glagol has exactly one VAD, used by every engine and by live streaming:
//! the Silero v6 16 kHz model, embedded in the binary. [`VadStream`] is the
//! stateful streaming form (feed any number of samples, get speech start
//! and end events); [`speech_segments`] runs it over a whole buffer. Both
//! share the same detector, so a file and a live stream of the same audio
//! are segmented identically.
//!
//! The model sees 32 ms windows (512 samples) preceded by the last 64
//! samples of the previous window, as the upstream wrapper feeds it.
//!
//! Silero's recurrent state adapts to what it has been hearing: after a few
//! seconds of speech at a normal level, speech at about −46 dBFS peak (a
//! far-field or telephone speaker) scores under 0.02 and is never detected,
//! though the same clip at the start of a stream is heard down to −55 dBFS.
//! So a stream forgets: after [`FORGET_AFTER_WINDOWS`] windows that are
//! clearly not speech, its state starts afresh, and each stretch of speech
//! is judged as if the stream began with it. Measured on the Golos clips
//! (a quiet clip 0–1.2 s after five loud ones, at −35 to −55 dBFS; a
//! slow gain on the model's input was the other candidate, and it split
//! quiet clips and missed some at −50 dBFS): every quiet clip is found,
//! clips at their recorded level are cut where they were (within one
//! window), and white, pink, brown and band-limited noise and synthetic
//! breaths at −50 to −30 dBFS start nothing, as before.

use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;

use crate::audio::SAMPLE_RATE;
use crate::runtime::{self, RuntimeError};

/// Samples per VAD window (32 ms at 16 kHz).
pub const WINDOW: usize = 512;
const CONTEXT: usize = 64;
const STATE_LEN: usize = 2 * 128;
/// A window scoring under this is clearly not speech.
const QUIET_PROB: f32 = 0.1;
/// Clearly-not-speech windows in a row after which the model's state is
/// reset (512 ms).
const FORGET_AFTER_WINDOWS: u32 = 16;

static SILERO_V6: &[u8] = include_bytes!("../../assets/silero_vad_16k_op15.onnx");

/// Why the VAD failed.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("VAD inference failed: {0}")]
    Inference(String),
    /// The caller's stop condition held (a cancelled request).
    #[error("cancelled")]
    Stopped,
}

fn ort_err(e: impl std::fmt::Display) -> VadError {
    VadError::Inference(e.to_string())
}

/// Detector settings (the upstream defaults, in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Probability at or above which a window is speech.
    pub threshold: f32,
    /// Probability below which a window is silence (hysteresis); upstream
    /// uses `threshold - 0.15`.
    pub neg_threshold: f32,
    /// Speech shorter than this is ignored.
    pub min_speech_ms: u32,
    /// Silence must last this long to end a speech segment.
    pub min_silence_ms: u32,
    /// Added before each start and after each end.
    pub speech_pad_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 100,
            speech_pad_ms: 30,
        }
    }
}

fn ms_to_samples(ms: u32) -> usize {
    ms as usize * SAMPLE_RATE as usize / 1000
}

/// The loaded Silero model. Cheap to share; each [`VadStream`] keeps its
/// own recurrent state, so one model serves many streams.
pub struct VadModel {
    session: Mutex<Session>,
}

impl VadModel {
    /// Loads the embedded Silero v6 model.
    pub fn embedded() -> Result<Arc<VadModel>, VadError> {
        Self::from_bytes(SILERO_V6)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Arc<VadModel>, VadError> {
        let env = runtime::environment()?;
        let session = Session::builder(env)
            .map_err(ort_err)?
            .with_intra_threads(1)
            .map_err(ort_err)?
            .with_inter_threads(1)
            .map_err(ort_err)?
            .commit_from_memory(bytes)
            .map_err(ort_err)?;
        Ok(Arc::new(VadModel {
            session: Mutex::new(session),
        }))
    }

    /// Speech probability of one window; updates `state` in place.
    fn infer(&self, input: &[f32], state: &mut [f32; STATE_LEN]) -> Result<f32, VadError> {
        let x = Tensor::from_array(([1usize, input.len()], input.to_vec())).map_err(ort_err)?;
        let s = Tensor::from_array(([2usize, 1, 128], state.to_vec())).map_err(ort_err)?;
        let sr = Tensor::from_array(((), vec![SAMPLE_RATE as i64])).map_err(ort_err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs!["input" => x, "state" => s, "sr" => sr])
            .map_err(ort_err)?;
        let (_, prob) = outputs["output"]
            .try_extract_tensor::<f32>()
            .map_err(ort_err)?;
        let (_, new_state) = outputs["stateN"]
            .try_extract_tensor::<f32>()
            .map_err(ort_err)?;
        state.copy_from_slice(&new_state[..STATE_LEN]);
        Ok(prob[0])
    }
}

/// A speech boundary, in samples from the start of the stream, padding
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    SpeechStart { sample: usize },
    SpeechEnd { sample: usize },
}

/// A stretch of speech `[start, end)` in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechSegment {
    pub start: usize,
    pub end: usize,
}

/// Streaming VAD over one audio stream.
pub struct VadStream {
    model: Arc<VadModel>,
    config: VadConfig,
    state: [f32; STATE_LEN],
    /// Clearly-not-speech windows in a row.
    quiet_windows: u32,
    /// Context samples followed by the window being filled.
    input: Vec<f32>,
    /// Samples consumed by completed windows.
    processed: usize,
    triggered: bool,
    confirmed: bool,
    speech_start: usize,
    silence_start: Option<usize>,
    last_end: usize,
    last_prob: f32,
}

impl VadStream {
    pub fn new(model: Arc<VadModel>, config: VadConfig) -> Self {
        VadStream {
            model,
            config,
            state: [0.0; STATE_LEN],
            quiet_windows: 0,
            input: vec![0.0; CONTEXT],
            processed: 0,
            triggered: false,
            confirmed: false,
            speech_start: 0,
            silence_start: None,
            last_end: 0,
            last_prob: 0.0,
        }
    }

    /// Speech probability of the most recent window.
    pub fn last_probability(&self) -> f32 {
        self.last_prob
    }

    /// Whether the stream is inside confirmed speech.
    pub fn in_speech(&self) -> bool {
        self.triggered && self.confirmed
    }

    /// Speech heard but not yet long enough to be confirmed: the start a
    /// [`VadEvent::SpeechStart`] will give it, and whether its latest
    /// window was speech.
    pub fn unconfirmed(&self) -> Option<(usize, bool)> {
        (self.triggered && !self.confirmed)
            .then(|| (self.padded_start(), self.silence_start.is_none()))
    }

    fn padded_start(&self) -> usize {
        self.speech_start
            .saturating_sub(ms_to_samples(self.config.speech_pad_ms))
            .max(self.last_end.min(self.speech_start))
    }

    /// Inside confirmed speech that has gone quiet: where the speech will be
    /// said to end if the silence lasts, and how many samples of silence
    /// there are so far. The end is exactly the one a later
    /// [`VadEvent::SpeechEnd`] reports, so work on that audio can start early.
    pub fn pending_end(&self) -> Option<(usize, usize)> {
        let silence_start = self.silence_start.filter(|_| self.in_speech())?;
        Some((
            silence_start + ms_to_samples(self.config.speech_pad_ms),
            self.processed - silence_start,
        ))
    }

    /// Feeds samples (any count); returns the events completed windows produced.
    pub fn push(&mut self, mut samples: &[f32]) -> Result<Vec<VadEvent>, VadError> {
        let mut events = Vec::new();
        while !samples.is_empty() {
            let want = CONTEXT + WINDOW - self.input.len();
            let take = want.min(samples.len());
            self.input.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.input.len() == CONTEXT + WINDOW {
                let prob = self.model.infer(&self.input, &mut self.state)?;
                self.forget_after_quiet(prob);
                self.input.drain(..WINDOW);
                self.processed += WINDOW;
                self.last_prob = prob;
                if let Some(e) = self.step(prob) {
                    events.push(e);
                }
            }
        }
        Ok(events)
    }

    fn forget_after_quiet(&mut self, prob: f32) {
        if prob >= QUIET_PROB {
            self.quiet_windows = 0;
            return;
        }
        self.quiet_windows += 1;
        if self.quiet_windows == FORGET_AFTER_WINDOWS {
            self.state = [0.0; STATE_LEN];
        }
    }

    /// Ends the stream: closes an open speech segment at `total` samples.
    pub fn finish(&mut self, total: usize) -> Option<VadEvent> {
        let event =
            (self.triggered && self.confirmed).then_some(VadEvent::SpeechEnd { sample: total });
        self.triggered = false;
        self.confirmed = false;
        event
    }

    /// The detector: hysteresis between `threshold` and `neg_threshold`,
    /// confirmation after `min_speech`, an end after `min_silence`.
    fn step(&mut self, prob: f32) -> Option<VadEvent> {
        let window_start = self.processed - WINDOW;
        let pad = ms_to_samples(self.config.speech_pad_ms);
        if prob >= self.config.threshold {
            self.silence_start = None;
            if !self.triggered {
                self.triggered = true;
                self.confirmed = false;
                self.speech_start = window_start;
            }
        } else if prob < self.config.neg_threshold && self.triggered {
            let silence_start = *self.silence_start.get_or_insert(window_start);
            if self.processed - silence_start >= ms_to_samples(self.config.min_silence_ms) {
                self.triggered = false;
                self.silence_start = None;
                if self.confirmed {
                    self.confirmed = false;
                    self.last_end = silence_start + pad;
                    return Some(VadEvent::SpeechEnd {
                        sample: self.last_end,
                    });
                }
                return None;
            }
        }
        if self.triggered && !self.confirmed {
            let speech_so_far = self.silence_start.unwrap_or(self.processed) - self.speech_start;
            if speech_so_far >= ms_to_samples(self.config.min_speech_ms) {
                self.confirmed = true;
                return Some(VadEvent::SpeechStart {
                    sample: self.padded_start(),
                });
            }
        }
        None
    }
}

/// Runs the VAD over a whole 16 kHz buffer and returns its speech segments
/// (padded, non-overlapping, in order).
pub fn speech_segments(
    model: &Arc<VadModel>,
    samples: &[f32],
    config: VadConfig,
) -> Result<Vec<SpeechSegment>, VadError> {
    speech_segments_until(model, samples, config, &|| false)
}

/// Audio the VAD runs between looks at the stop condition.
const STOP_CHECK_SAMPLES: usize = 30 * SAMPLE_RATE as usize;

/// [`speech_segments`] that gives up with [`VadError::Stopped`] once `stop`
/// holds (looked at every 30 s of audio: an hour-long file takes the VAD
/// tens of seconds).
pub fn speech_segments_until(
    model: &Arc<VadModel>,
    samples: &[f32],
    config: VadConfig,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<SpeechSegment>, VadError> {
    let mut stream = VadStream::new(model.clone(), config);
    let mut events = Vec::new();
    for chunk in samples.chunks(STOP_CHECK_SAMPLES) {
        if stop() {
            return Err(VadError::Stopped);
        }
        events.extend(stream.push(chunk)?);
    }
    // The last partial window is padded with silence so its speech counts.
    let rem = samples.len() % WINDOW;
    if rem != 0 {
        events.extend(stream.push(&vec![0.0; WINDOW - rem])?);
    }
    events.extend(stream.finish(samples.len()));
    let mut segments: Vec<SpeechSegment> = Vec::new();
    let mut open: Option<usize> = None;
    for e in events {
        match e {
            VadEvent::SpeechStart { sample } => open = Some(sample),
            VadEvent::SpeechEnd { sample } => {
                if let Some(start) = open.take() {
                    let end = sample.min(samples.len());
                    match segments.last_mut() {
                        Some(prev) if start <= prev.end => prev.end = prev.end.max(end),
                        _ if end > start => segments.push(SpeechSegment { start, end }),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(segments)
}

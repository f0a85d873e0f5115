//! What each piece of a session's audio goes through before recognition:
//! conversion to 16 kHz mono and the utterance detector (Silero VAD).
//!
//! This is CPU work — a 1 MiB frame can hold a minute of audio — so the
//! session runs it on the blocking pool, never on the async runtime's
//! threads, where it would hold up every other connection. It also
//! remembers when audio arrived, so each result can say how long after its
//! newest audio it was sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use glagol_core::audio::pcm::{PcmInput, PcmStream};
use glagol_core::audio::SAMPLE_RATE;
use glagol_core::stream::{EndReason, UtteranceEvent, Utterances};
use glagol_core::vad::VadError;

use super::partial::{LiveAudio, SharedAudio};

/// How much audio back arrival times are remembered, in seconds: results
/// are about the newest utterance, which ends within its maximum length.
const ARRIVALS_KEPT_S: usize = 90;

pub(super) struct Ingest {
    /// The client's encoding, once it sent audio.
    pcm: Option<PcmStream>,
    pub(super) detector: Utterances,
    /// The open utterance's audio, for partials that run on the newest.
    live: SharedAudio,
    /// Session clock after each piece, and when the piece arrived.
    arrivals: VecDeque<(usize, Instant)>,
    samples: Vec<f32>,
}

/// An [`Ingest`] shared with the blocking pool.
pub(super) type SharedIngest = Arc<Mutex<Ingest>>;

pub(super) fn lock(ingest: &SharedIngest) -> MutexGuard<'_, Ingest> {
    ingest.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ingest {
    pub(super) fn new(detector: Utterances, live: SharedAudio) -> Ingest {
        Ingest {
            pcm: None,
            detector,
            live,
            arrivals: VecDeque::new(),
            samples: Vec::new(),
        }
    }

    /// Converts a piece of raw audio and runs the detector over it.
    pub(super) fn push_pcm(
        &mut self,
        bytes: &[u8],
        input: PcmInput,
        arrived: Instant,
    ) -> Result<Vec<UtteranceEvent>, VadError> {
        let mut events = Vec::new();
        if self.pcm.as_ref().is_some_and(|p| p.input() != input) {
            // A new format: what the old converter holds belongs before it.
            events = self.flush(arrived)?;
        }
        let pcm = self.pcm.get_or_insert_with(|| PcmStream::new(input));
        let mut samples = std::mem::take(&mut self.samples);
        samples.clear();
        pcm.push(bytes, &mut samples);
        events.extend(self.push(&samples, arrived)?);
        self.samples = samples;
        Ok(events)
    }

    /// Pushes what the converter still holds (before a turn ends).
    pub(super) fn flush(&mut self, arrived: Instant) -> Result<Vec<UtteranceEvent>, VadError> {
        let Some(pcm) = self.pcm.as_mut() else {
            return Ok(Vec::new());
        };
        let mut samples = Vec::new();
        pcm.flush(&mut samples);
        self.push(&samples, arrived)
    }

    /// Runs the detector over 16 kHz mono samples.
    fn push(&mut self, samples: &[f32], arrived: Instant) -> Result<Vec<UtteranceEvent>, VadError> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let events = self.detector.push(samples)?;
        let clock = self.detector.clock();
        self.arrivals.push_back((clock, arrived));
        let oldest = clock.saturating_sub(ARRIVALS_KEPT_S * SAMPLE_RATE as usize);
        while self.arrivals.len() > 1 && self.arrivals[1].0 <= oldest {
            self.arrivals.pop_front();
        }
        self.share_audio(arrived);
        Ok(events)
    }

    /// Ends the open utterance now (after the converter's tail).
    pub(super) fn finalize(&mut self, reason: EndReason) -> Vec<UtteranceEvent> {
        let now = Instant::now();
        let mut events = self.flush(now).unwrap_or_default();
        events.extend(self.detector.finalize(reason));
        self.share_audio(now);
        events
    }

    /// Drops the open utterance without a result.
    pub(super) fn clear(&mut self) {
        self.detector.clear();
        self.share_audio(Instant::now());
    }

    /// When the audio at session sample `at` arrived (the newest piece's
    /// time when `at` is beyond it).
    pub(super) fn arrived(&self, at: usize) -> Instant {
        self.arrivals
            .iter()
            .find(|(clock, _)| *clock >= at)
            .or(self.arrivals.back())
            .map_or_else(Instant::now, |(_, when)| *when)
    }

    /// Brings the shared audio up to the detector's open utterance.
    fn share_audio(&mut self, arrived: Instant) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let Some((id, start)) = self.detector.current() else {
            *live = None;
            return;
        };
        let clock = self.detector.clock();
        match live.as_mut().filter(|l| l.utterance == id) {
            Some(l) => {
                let have = l.start + l.samples.len();
                if have < clock {
                    l.samples.extend(self.detector.audio(have, clock));
                    l.arrived = arrived;
                }
            }
            None => {
                *live = Some(LiveAudio {
                    utterance: id,
                    start,
                    samples: self.detector.audio(start, clock),
                    arrived,
                })
            }
        }
    }
}

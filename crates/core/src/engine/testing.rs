//! A fake engine for tests above the engines (scheduler, service, HTTP):
//! deterministic text, a configurable cost per audio second, segments
//! announced one by one, cancellation honoured, and counters that show how
//! it was called (concurrent calls, batch sizes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Engine, EngineError, Request, Segment, SegmentEmitter, TokenLogprob, Transcript};
use crate::audio::SAMPLE_RATE;
use crate::models::EngineKind;

/// Clones share their counters, so a test keeps one and hands the other to
/// the code under test.
#[derive(Clone)]
pub struct FakeEngine {
    name: String,
    batching: bool,
    /// Ignores the cancel flag, like an engine inside one long native call.
    uninterruptible: bool,
    /// Wall time spent per audio second recognised.
    cost_per_second: Duration,
    /// Audio seconds per announced segment.
    segment_seconds: f64,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    running: AtomicUsize,
    max_running: AtomicUsize,
    batch_sizes: Mutex<Vec<usize>>,
}

impl FakeEngine {
    /// No batching, 10 ms per audio second, a segment per second.
    pub fn new(name: &str) -> Self {
        FakeEngine {
            name: name.to_string(),
            batching: false,
            uninterruptible: false,
            cost_per_second: Duration::from_millis(10),
            segment_seconds: 1.0,
            counters: Arc::default(),
        }
    }

    /// Keeps running after cancellation until its work is done.
    pub fn uninterruptible(mut self, on: bool) -> Self {
        self.uninterruptible = on;
        self
    }

    /// Claims to gain from batching (as GigaAM does).
    pub fn batching(mut self, on: bool) -> Self {
        self.batching = on;
        self
    }

    pub fn cost_per_second(mut self, cost: Duration) -> Self {
        self.cost_per_second = cost;
        self
    }

    pub fn segment_seconds(mut self, seconds: f64) -> Self {
        self.segment_seconds = seconds.max(0.01);
        self
    }

    /// The most `transcribe_batch` calls that ever ran at once.
    pub fn max_concurrent(&self) -> usize {
        self.counters.max_running.load(Ordering::SeqCst)
    }

    /// `transcribe_batch` calls running now.
    pub fn running(&self) -> usize {
        self.counters.running.load(Ordering::SeqCst)
    }

    /// The size of every batch so far, in call order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.counters
            .batch_sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The text the fake recognises in segment `k` of audio `seconds` long.
    pub fn text_of(seconds: f64, k: usize) -> String {
        format!("fake {seconds:.2}s part {k}")
    }

    fn one(&self, req: &Request<'_>) -> Result<Transcript, EngineError> {
        let duration = req.audio.len() as f64 / SAMPLE_RATE as f64;
        let mut emitter = SegmentEmitter::new(req.options.events.as_ref(), duration);
        let n = (duration / self.segment_seconds).ceil().max(1.0) as usize;
        for k in 0..n {
            let start = k as f64 * self.segment_seconds;
            let end = (start + self.segment_seconds).min(duration);
            let until = Instant::now() + self.cost_per_second.mul_f64((end - start).max(0.0));
            while Instant::now() < until {
                if req.options.is_cancelled() && !self.uninterruptible {
                    return Err(EngineError::cancelled());
                }
                std::thread::sleep(Duration::from_millis(2).min(until - Instant::now()));
            }
            emitter.push(Segment {
                speaker: None,
                id: k,
                seek: (start * 100.0) as usize,
                start,
                end,
                text: format!(" {}", Self::text_of(duration, k)),
                tokens: vec![k as i32],
                token_times: vec![start],
                temperature: 0.0,
                avg_logprob: -0.1,
                compression_ratio: 1.0,
                no_speech_prob: 0.0,
                words: Vec::new(),
                logprobs: vec![TokenLogprob {
                    token: format!(" {}", Self::text_of(duration, k)),
                    bytes: format!(" {}", Self::text_of(duration, k)).into_bytes(),
                    logprob: -0.1,
                }],
            });
            emitter.progress(k + 1, Some(n), end);
        }
        let mut t = Transcript::empty(
            duration,
            req.options.task,
            Some(req.options.language.clone().unwrap_or_else(|| "en".into())),
        );
        t.segments = emitter.into_segments();
        t.rebuild_text();
        Ok(t)
    }
}

impl Engine for FakeEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Whisper
    }

    fn languages(&self) -> &[&'static str] {
        &["*"]
    }

    fn gains_from_batching(&self) -> bool {
        self.batching
    }

    fn transcribe_batch(&self, requests: &[Request<'_>]) -> Vec<Result<Transcript, EngineError>> {
        let now = self.counters.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.counters.max_running.fetch_max(now, Ordering::SeqCst);
        self.counters
            .batch_sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(requests.len());
        let results = requests.iter().map(|r| self.one(r)).collect();
        self.counters.running.fetch_sub(1, Ordering::SeqCst);
        results
    }
}

//! One `transcribe_batch` call: every request's chunks through the encoder
//! round by round, each chunk announced as a segment as soon as it and the
//! chunks before it are decoded.

use super::decode::Token;
use super::GigaamEngine;
use crate::audio::SAMPLE_RATE;
use crate::engine::chunk::Chunk;
use crate::engine::{EngineError, Request, SegmentEmitter, Task, Transcript};

/// One request's progress through the batch.
struct Job<'r> {
    req: &'r Request<'r>,
    chunks: Vec<Chunk>,
    /// Decoded tokens per chunk, until the chunk is announced.
    tokens: Vec<Option<Vec<Token>>>,
    /// Chunks announced so far (in order).
    announced: usize,
    emitter: SegmentEmitter<'r>,
    failed: Option<EngineError>,
}

impl<'r> Job<'r> {
    fn live(&self) -> bool {
        self.failed.is_none()
    }

    /// Announces the decoded chunks that follow the announced ones.
    fn announce(&mut self, engine: &GigaamEngine) {
        while let Some(Some(_)) = self.tokens.get(self.announced) {
            let tokens = self.tokens[self.announced].take().unwrap_or_default();
            let chunk = self.chunks[self.announced];
            if let Some(segment) =
                engine.chunk_segment(&chunk, tokens, self.req.options.word_timestamps)
            {
                self.emitter.push(segment);
            }
            self.announced += 1;
            // After the last chunk, the silence after it is done too.
            let seconds = if self.announced == self.chunks.len() {
                self.emitter.duration()
            } else {
                chunk.end as f64 / SAMPLE_RATE as f64
            };
            self.emitter
                .progress(self.announced, Some(self.chunks.len()), seconds);
        }
    }

    fn finish(self) -> Result<Transcript, EngineError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut t = Transcript {
            task: Task::Transcribe,
            language: Some("ru".into()),
            language_probability: None,
            duration: self.req.audio.len() as f64 / SAMPLE_RATE as f64,
            text: String::new(),
            segments: self.emitter.into_segments(),
        };
        t.rebuild_text();
        Ok(t)
    }
}

pub(super) fn run(
    engine: &GigaamEngine,
    requests: &[Request<'_>],
) -> Vec<Result<Transcript, EngineError>> {
    let mut jobs: Vec<Job<'_>> = requests
        .iter()
        .map(|req| {
            let duration = req.audio.len() as f64 / SAMPLE_RATE as f64;
            let plan = engine.check(req).and_then(|()| engine.plan(req.audio));
            let (chunks, failed) = match plan {
                Ok(chunks) => (chunks, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            Job {
                req,
                tokens: vec![None; chunks.len()],
                chunks,
                announced: 0,
                emitter: SegmentEmitter::new(req.options.events.as_ref(), duration),
                failed,
            }
        })
        .collect();
    // Round r holds chunk r of every request that has one, so every
    // request's first segment comes out with the first encoder calls.
    let rounds = jobs.iter().map(|j| j.chunks.len()).max().unwrap_or(0);
    let order: Vec<(usize, usize)> = (0..rounds)
        .flat_map(|r| {
            jobs.iter()
                .enumerate()
                .filter(move |(_, j)| r < j.chunks.len())
                .map(move |(i, _)| (i, r))
        })
        .collect();
    for group in order.chunks(engine.max_batch) {
        for job in jobs.iter_mut() {
            if job.live() && job.req.options.is_cancelled() {
                job.failed = Some(EngineError::cancelled());
            }
        }
        let group: Vec<(usize, usize)> = group
            .iter()
            .copied()
            .filter(|&(j, _)| jobs[j].live())
            .collect();
        if group.is_empty() {
            continue;
        }
        let audio: Vec<&[f32]> = group
            .iter()
            .map(|&(j, c)| {
                let chunk = jobs[j].chunks[c];
                &jobs[j].req.audio[chunk.start..chunk.end]
            })
            .collect();
        match engine.recognize(&audio) {
            Ok(decoded) => {
                for (&(j, c), tokens) in group.iter().zip(decoded) {
                    jobs[j].tokens[c] = Some(tokens);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for &(j, _) in &group {
                    jobs[j].failed = Some(EngineError::Inference(message.clone()));
                }
            }
        }
        for &(j, _) in &group {
            if jobs[j].live() {
                jobs[j].announce(engine);
            }
        }
    }
    jobs.into_iter()
        .map(|job| {
            // Requests without chunks (too short to plan) still report done.
            if job.live() && job.chunks.is_empty() {
                job.emitter.progress(0, Some(0), job.emitter.duration());
            }
            job.finish()
        })
        .collect()
}

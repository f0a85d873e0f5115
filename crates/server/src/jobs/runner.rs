//! Claims jobs and runs each attempt through the service layer.
//!
//! An attempt renews its lease while it waits for its model, while it is
//! decoded and at every segment; a heartbeat that finds the lease lost
//! (fenced) ends the attempt without another write. A cancel asked
//! through the store is seen at the next heartbeat (at once on this node),
//! and the engine stops at its next segment. On shutdown a running job is
//! handed back to the queue without counting the attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glagol_core::engine::{Segment, Task, TranscribeOptions};
use tokio::sync::Notify;

use super::model::{JobProgress, JobRecord, Outcome};
use super::store::StoreError;
use super::Jobs;
use crate::error::{ErrorKind, ServiceError};
use crate::scheduler::Class;
use crate::service::{AudioInput, Event, TranscribeRequest};
use crate::state::AppState;

/// Claims work while there is capacity; woken by new jobs, else polls.
pub(super) async fn run(state: Arc<AppState>, jobs: Arc<Jobs>) {
    let mut stop = state.on_shutdown();
    while !*stop.borrow() {
        // Stop is checked before every claim: a job handed back on shutdown
        // is claimable at once, and a claim made after the stop began would
        // start it only to hand it back again.
        while !*stop.borrow() {
            let per_model = state.config().settings.job_concurrency;
            let models: Vec<String> = state
                .registry
                .list()
                .into_iter()
                .map(|(m, _)| m.name)
                .filter(|m| jobs.running_of(m) < per_model)
                .collect();
            match jobs.store.claim(&jobs.node, &models, jobs.lease).await {
                Ok(Some(job)) => {
                    let poke = Arc::new(Notify::new());
                    jobs.running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(job.id.clone(), (job.model.clone(), poke.clone()));
                    jobs.written();
                    tokio::spawn(attempt(state.clone(), jobs.clone(), job, poke));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("cannot claim jobs: {e}");
                    break;
                }
            }
        }
        tokio::select! {
            _ = jobs.wake_runner.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Why an attempt stops before its end.
enum Stop {
    /// The lease was lost: write nothing more.
    Fenced,
    Cancel,
    Shutdown,
    /// Handed back to the queue already (a transient failure).
    Released,
}

/// One attempt at one job, with the progress not yet written.
struct Attempt {
    jobs: Arc<Jobs>,
    id: String,
    attempt: u32,
    progress: JobProgress,
    progress_dirty: bool,
    segments: Vec<String>,
    last_beat: Instant,
    /// The last heartbeat failed (the store unreachable): said once, not at
    /// every segment.
    beat_failing: bool,
}

impl Attempt {
    /// Writes what is pending and renews the lease.
    async fn beat(&mut self) -> Result<(), Stop> {
        let progress = std::mem::take(&mut self.progress_dirty).then_some(self.progress);
        let segments = std::mem::take(&mut self.segments);
        let wrote = !segments.is_empty() || progress.is_some();
        self.last_beat = Instant::now();
        match self
            .jobs
            .store
            .heartbeat(
                &self.id,
                self.attempt,
                self.jobs.lease,
                progress,
                // Kept for the next beat should this one fail.
                segments.clone(),
            )
            .await
        {
            Ok(beat) => {
                if std::mem::take(&mut self.beat_failing) {
                    tracing::info!(job = %self.id, "heartbeat written again");
                }
                if wrote {
                    self.jobs.written();
                }
                if beat.cancel_requested {
                    return Err(Stop::Cancel);
                }
                Ok(())
            }
            Err(StoreError::Fenced) => Err(Stop::Fenced),
            // A store hiccup: the lease lasts a while; what was not
            // written goes with the next beat.
            Err(e) => {
                if !std::mem::replace(&mut self.beat_failing, true) {
                    tracing::warn!(job = %self.id, "heartbeat not written: {e}");
                }
                self.progress_dirty |= progress.is_some();
                self.segments.splice(0..0, segments);
                Ok(())
            }
        }
    }

    /// Ends the attempt with `outcome`.
    async fn finish(&self, outcome: Outcome) {
        match self
            .jobs
            .store
            .finish(&self.id, self.attempt, outcome)
            .await
        {
            Ok(job) => {
                tracing::info!(job = %self.id, status = job.status.as_str(), "job ended");
                self.jobs.written();
                self.jobs.wake_sender.notify_one();
                self.jobs.wake_maintenance.notify_one();
            }
            Err(e) => tracing::warn!(job = %self.id, "job end not written: {e}"),
        }
    }

    async fn release(&self, after: Duration, reason: &str) {
        match self
            .jobs
            .store
            .release(&self.id, self.attempt, after, reason)
            .await
        {
            Ok(()) => {
                self.jobs.written();
                self.jobs.wake_runner.notify_one();
            }
            Err(e) => tracing::warn!(job = %self.id, "job not handed back: {e}"),
        }
    }
}

fn options_of(job: &JobRecord) -> TranscribeOptions {
    TranscribeOptions {
        language: job.params.language.clone(),
        task: if job.params.task == "translate" {
            Task::Translate
        } else {
            Task::Transcribe
        },
        word_timestamps: job.params.word_timestamps,
        initial_prompt: job.params.prompt.clone(),
        ..Default::default()
    }
}

/// Errors worth another try later rather than failing the job.
fn transient(e: &ServiceError) -> bool {
    e.kind == ErrorKind::Unavailable && e.code != "model_failed"
}

/// Times a job is handed back for a transient error before it fails with it.
const MAX_DEFERRALS: u32 = 20;

impl Attempt {
    /// Hands the job back for a transient error, later each time; after
    /// [`MAX_DEFERRALS`] the error fails the job.
    async fn defer(&self, e: ServiceError) -> Result<Outcome, Stop> {
        let times = {
            let mut deferred = self.jobs.deferred.lock().unwrap_or_else(|p| p.into_inner());
            let n = deferred.entry(self.id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if times > MAX_DEFERRALS {
            return Ok(failed(e));
        }
        let after = Duration::from_secs(u64::from(2 * times).min(60));
        tracing::info!(job = %self.id, code = e.code, ?after, "job handed back: {}", e.message);
        self.release(after, &e.message).await;
        Err(Stop::Released)
    }
}

fn segment_json(attempt: u32, s: &Segment) -> String {
    let mut event = serde_json::json!({
        "attempt": attempt,
        "id": s.id,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "words": s.words,
    });
    if let Some(speaker) = &s.speaker {
        event["speaker"] = speaker.clone().into();
    }
    event.to_string()
}

async fn attempt(state: Arc<AppState>, jobs: Arc<Jobs>, job: JobRecord, poke: Arc<Notify>) {
    let id = job.id.clone();
    let mut run = Attempt {
        jobs: jobs.clone(),
        id: job.id.clone(),
        attempt: job.attempt,
        progress: JobProgress::default(),
        progress_dirty: false,
        segments: Vec::new(),
        last_beat: Instant::now(),
        beat_failing: false,
    };
    let result = recognise(&state, &mut run, &job, &poke).await;
    match &result {
        Ok(outcome) => run.finish(outcome.clone()).await,
        Err(Stop::Cancel) => run.finish(Outcome::Cancelled).await,
        Err(Stop::Shutdown) => {
            run.release(
                Duration::ZERO,
                "the server stopped; the job runs again from its stored audio",
            )
            .await
        }
        Err(Stop::Fenced) => {
            tracing::warn!(job = %id, "lease lost; another attempt owns the job now")
        }
        Err(Stop::Released) => {}
    }
    jobs.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    if !matches!(result, Err(Stop::Released)) {
        jobs.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
    jobs.wake_runner.notify_one();
}

/// Runs the attempt to its outcome, beating all along.
async fn recognise(
    state: &Arc<AppState>,
    run: &mut Attempt,
    job: &JobRecord,
    poke: &Notify,
) -> Result<Outcome, Stop> {
    let Some(audio) = &job.audio_path else {
        return Ok(Outcome::Failed {
            code: "audio_missing".into(),
            message: "the job's stored audio is gone".into(),
        });
    };
    let diarize = match job.params.diarize_request() {
        Ok(d) => d,
        Err(e) => return Ok(failed(e)),
    };
    let request = TranscribeRequest {
        diarize,
        model: Some(job.model.clone()),
        audio: AudioInput::File(run.jobs.files.path(audio)),
        options: options_of(job),
        vad: job.params.vad.then(Default::default),
        class: Class::Background,
        account: (!job.owner.is_empty()).then(|| crate::config::owner_name(&job.owner)),
    };
    let mut stop = state.on_shutdown();
    let beat_every = (run.jobs.lease / 3).min(Duration::from_secs(1));
    // Starting may wait for the model to load and for decoding.
    let started = state.service.transcribe(request);
    tokio::pin!(started);
    let started = loop {
        tokio::select! {
            r = &mut started => break r,
            _ = tokio::time::sleep(beat_every) => run.beat().await?,
            _ = poke.notified() => run.beat().await?,
            _ = stopping(&mut stop) => return Err(Stop::Shutdown),
        }
    };
    let mut transcription = match started {
        Ok(t) => t,
        Err(e) if transient(&e) => return run.defer(e).await,
        Err(e) => return Ok(failed(e)),
    };
    run.progress.duration_ms = (transcription.duration * 1000.0) as u64;
    run.progress_dirty = true;
    run.beat().await?;
    loop {
        let event = tokio::select! {
            e = transcription.next() => e,
            _ = tokio::time::sleep(beat_every) => { run.beat().await?; continue; }
            _ = poke.notified() => { run.beat().await?; continue; }
            _ = stopping(&mut stop) => return Err(Stop::Shutdown),
        };
        match event {
            Some(Event::Progress(p)) => {
                run.progress.segments_done = p.done as u64;
                run.progress.segments_total = p.total.map(|n| n as u64);
                run.progress.processed_ms = (p.seconds * 1000.0) as u64;
                run.progress_dirty = true;
                if run.last_beat.elapsed() >= beat_every {
                    run.beat().await?;
                }
            }
            Some(Event::Segment(s)) => {
                run.segments.push(segment_json(run.attempt, &s));
                run.progress.processed_ms = run.progress.processed_ms.max((s.end * 1000.0) as u64);
                run.progress.segments_done = run.progress.segments_done.max(s.id as u64 + 1);
                run.progress_dirty = true;
                run.beat().await?;
            }
            Some(Event::Done(t)) => {
                run.beat().await?;
                return match run.jobs.files.write_result(&run.id, &t).await {
                    Ok(result_path) => Ok(Outcome::Done { result_path }),
                    Err(e) => Ok(Outcome::Failed {
                        code: "result_not_stored".into(),
                        message: format!("the transcript could not be stored: {e}"),
                    }),
                };
            }
            Some(Event::Error(e)) if transient(&e) => return run.defer(e).await,
            Some(Event::Error(e)) => return Ok(failed(e)),
            None => {
                return Ok(failed(ServiceError::internal(
                    "recognition ended without a result",
                )))
            }
        }
    }
}

/// Resolves when the server begins to stop.
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn failed(e: ServiceError) -> Outcome {
    Outcome::Failed {
        code: e.code.to_string(),
        message: e.message,
    }
}

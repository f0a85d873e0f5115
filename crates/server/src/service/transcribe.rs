//! A file in, a stream of events out.
//!
//! Everything that can be refused is refused before the stream starts
//! (unknown model, model not ready, bad options, undecodable audio, a full
//! queue), so a transport can still answer with a plain error. After that,
//! the stream yields what the engine produces while it runs and ends with
//! exactly one terminal event — explicitly, not when some sender happens to
//! be dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glagol_core::audio::{self, Audio, AudioError, AudioLimits};
use glagol_core::engine::{EngineEvent, EventSink, TranscribeOptions, Transcript};
use glagol_core::vad::VadConfig;
use tokio::sync::{mpsc, oneshot};

use super::budget::Reservation;
use super::diarization::{self, DiarizeRequest, SpeakerModels, Speakers};
use super::{Event, Service};
use crate::error::{ErrorKind, ServiceError};
use crate::models::Lease;
use crate::scheduler::{Admission, Class, WorkItem};

/// The audio of a request.
pub enum AudioInput {
    /// A file in any supported container; the extension is only a hint.
    Encoded {
        bytes: Vec<u8>,
        extension: Option<String>,
    },
    /// 16 kHz mono samples.
    Samples(Vec<f32>),
    /// A stored file in any supported container, read as it is decoded.
    File(std::path::PathBuf),
}

/// One transcription to run.
pub struct TranscribeRequest {
    /// Model id or alias; None for the default model.
    pub model: Option<String>,
    pub audio: AudioInput,
    pub options: TranscribeOptions,
    /// Recognise only the speech the VAD finds, cut by these settings.
    pub vad: Option<VadConfig>,
    pub class: Class,
    /// The API key's name its audio is counted for (None: a server without keys).
    pub account: Option<String>,
    /// Label segments and words with speakers.
    pub diarize: Option<DiarizeRequest>,
}

/// Diarization running beside recognition.
struct PendingSpeakers {
    result: oneshot::Receiver<Result<Speakers, ServiceError>>,
    /// Whether the client asked for words (diarization needs them anyway).
    words: bool,
}

/// A running transcription: its events, in order, ending with one terminal
/// event. Dropping it cancels the work (queued or running).
pub struct Transcription {
    /// The model that recognises it (aliases resolved).
    pub model: String,
    /// Seconds of audio.
    pub duration: f64,
    events: mpsc::UnboundedReceiver<Message>,
    account: Option<String>,
    usage: Arc<super::usage::Usage>,
    cancel: Arc<AtomicBool>,
    /// Until a worker starts: the longest wait in the queue; then: the
    /// longest recognition may take.
    deadline: tokio::time::Instant,
    timeout: Duration,
    finished: bool,
    started: Instant,
    /// Segments wait for their speakers, then go out before the transcript.
    speakers: Option<PendingSpeakers>,
    ready: VecDeque<Event>,
    _admission: Option<Admission>,
    _audio: Reservation,
    _lease: Lease,
}

/// What the worker side sends a transcription.
enum Message {
    /// A worker started on it.
    Started,
    Event(Event),
}

impl Transcription {
    /// The next event; None after the terminal one.
    pub async fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        if let Some(event) = self.ready.pop_front() {
            return Some(self.deliver(event));
        }
        let event = loop {
            match tokio::time::timeout_at(self.deadline, self.events.recv()).await {
                Ok(Some(Message::Started)) => {
                    self.deadline = tokio::time::Instant::now() + self.timeout;
                }
                Ok(Some(Message::Event(Event::Segment(_)))) if self.speakers.is_some() => {}
                Ok(Some(Message::Event(Event::Done(t)))) if self.speakers.is_some() => {
                    break self.with_speakers(t).await;
                }
                Ok(Some(Message::Event(event))) => break event,
                Ok(None) => {
                    break Event::Error(ServiceError::internal(
                        "recognition ended without a result",
                    ))
                }
                Err(_) => break self.timed_out(),
            }
        };
        Some(self.deliver(event))
    }

    fn timed_out(&self) -> Event {
        // The worker stays busy until the engine sees the flag.
        self.cancel.store(true, Ordering::SeqCst);
        Event::Error(ServiceError::new(
            ErrorKind::Timeout,
            "inference_timeout",
            format!(
                "the request waited or ran longer than the inference timeout of {} s",
                self.timeout.as_secs()
            ),
        ))
    }

    /// Waits for diarization, labels the transcript, and queues its
    /// segments before it; returns the first of them.
    async fn with_speakers(&mut self, mut t: Transcript) -> Event {
        let pending = self.speakers.take().expect("checked by the caller");
        let speakers = match tokio::time::timeout_at(self.deadline, pending.result).await {
            Ok(Ok(Ok(speakers))) => speakers,
            Ok(Ok(Err(e))) => return Event::Error(e),
            Ok(Err(_)) => {
                return Event::Error(ServiceError::internal("diarization ended without a result"))
            }
            Err(_) => return self.timed_out(),
        };
        glagol_core::diarize::assign::apply(&mut t, &speakers.diarization, &speakers.labels);
        if !pending.words {
            for s in &mut t.segments {
                s.words.clear();
            }
        }
        self.ready
            .extend(t.segments.iter().cloned().map(Event::Segment));
        self.ready.push_back(Event::Done(t));
        self.ready.pop_front().expect("the transcript was queued")
    }

    /// Bookkeeping for each event handed out.
    fn deliver(&mut self, event: Event) -> Event {
        if event.is_terminal() {
            self.finished = true;
            if let Event::Done(t) = &event {
                crate::service::record_inference(
                    &self.model,
                    self.account.as_deref(),
                    t.duration,
                    self.started.elapsed().as_secs_f64(),
                );
                if let Some(key) = &self.account {
                    self.usage.add(key, t.duration);
                }
            }
        }
        event
    }

    /// Drains the events; the transcript or the error.
    pub async fn finish(mut self) -> Result<Transcript, ServiceError> {
        while let Some(event) = self.next().await {
            match event {
                Event::Done(t) => return Ok(t),
                Event::Error(e) => return Err(e),
                _ => {}
            }
        }
        Err(ServiceError::internal("recognition ended without a result"))
    }
}

impl Drop for Transcription {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }
}

impl Service {
    /// Starts a transcription (see the module docs for what is refused up front).
    pub async fn transcribe(
        &self,
        request: TranscribeRequest,
    ) -> Result<Transcription, ServiceError> {
        let config = self.config.get();
        let mut options = request.options;
        super::validate(&options)?;
        // Speakers asked for but impossible: refused before any waiting.
        let diarizer = match &request.diarize {
            Some(_) => {
                let (models, config) = (self.speakers.clone(), config.clone());
                Some(
                    tokio::task::spawn_blocking(move || models.get(&config))
                        .await
                        .map_err(|e| ServiceError::internal(format!("diarization load: {e}")))??,
                )
            }
            None => None,
        };
        let model = config.resolve_model(request.model.as_deref());
        // A durable job waits for its model and may run as long as the job
        // timeout; a client waiting on a connection gets the inference timeout.
        let background = request.class == Class::Background;
        let timeout = if background {
            config.job_timeout()
        } else {
            config.inference_timeout()
        };
        let wait = (background || config.settings.wait_for_load).then_some(timeout);
        let lease = self.registry.acquire(&model, wait).await?;
        let admission = match request.class {
            Class::Interactive => Some(
                lease
                    .scheduler()
                    .admit(request.account.as_deref(), config.keys.len() > 1)?,
            ),
            _ => None,
        };
        let limits = AudioLimits {
            max_bytes: if background {
                config.settings.max_job_bytes
            } else {
                config.settings.max_body_bytes
            },
            max_duration_s: config.settings.max_audio_seconds,
        };
        let reservation = Reservation::new(self.audio.clone(), config.audio_memory());
        let (audio, reservation) = self.decode(request.audio, limits, reservation).await?;
        let vad = match request.vad {
            Some(config) => Some((self.vad()?, config)),
            None => None,
        };
        let duration = audio.duration();
        let (tx, events) = mpsc::unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let speakers = match (diarizer, request.diarize) {
            (Some(diarizer), Some(wanted)) => {
                SpeakerModels::check_duration(&config, duration)?;
                let words = options.word_timestamps;
                options.word_timestamps = true;
                let (done, result) = oneshot::channel();
                let (samples, stop) = (audio.samples.clone(), cancel.clone());
                tokio::task::spawn_blocking(move || {
                    let stopped = || stop.load(Ordering::Relaxed);
                    let _ = done.send(diarization::run(&diarizer, &samples, &wanted, &stopped));
                });
                Some(PendingSpeakers { result, words })
            }
            _ => None,
        };
        options.cancel = Some(cancel.clone());
        options.events = Some(sink(tx.clone(), &model));
        let started = tx.clone();
        let item = WorkItem {
            audio: audio.samples,
            options,
            vad,
            class: request.class,
            stream: None,
            account: request.account.clone(),
            deadline: Some(Instant::now() + timeout),
            refresh: None,
            started: Some(Box::new(move || {
                let _ = started.send(Message::Started);
            })),
            done: Box::new(move |result| {
                let _ = tx.send(Message::Event(match result {
                    Ok(t) => Event::Done(t),
                    Err(e) => Event::Error(e),
                }));
            }),
        };
        lease.scheduler().submit(item)?;
        Ok(Transcription {
            model,
            duration,
            events,
            account: request.account,
            usage: self.usage.clone(),
            cancel,
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            finished: false,
            started: Instant::now(),
            speakers,
            ready: VecDeque::new(),
            _admission: admission,
            _audio: reservation,
            _lease: lease,
        })
    }

    /// Decodes off the async runtime, a bounded number at a time, within
    /// the audio memory budget.
    async fn decode(
        &self,
        input: AudioInput,
        limits: AudioLimits,
        mut reservation: Reservation,
    ) -> Result<(Audio, Reservation), ServiceError> {
        if let AudioInput::Samples(samples) = input {
            if !reservation.grow_to(sample_bytes(samples.len())) {
                return Err(AudioError::NoMemory.into());
            }
            return Ok((Audio::from_mono_16k(samples), reservation));
        }
        let _permit = self
            .decoders
            .acquire()
            .await
            .map_err(|_| ServiceError::shutting_down())?;
        let (decoded, reservation) = tokio::task::spawn_blocking(move || {
            let mut reserve = |n| reservation.grow_to(sample_bytes(n));
            let decoded = match input {
                AudioInput::Encoded { bytes, extension } => audio::decode_bytes_reserving(
                    bytes,
                    extension.as_deref(),
                    &limits,
                    &mut reserve,
                ),
                AudioInput::File(path) => {
                    audio::decode_file_reserving(&path, &limits, &mut reserve)
                }
                AudioInput::Samples(_) => unreachable!("returned above"),
            };
            (decoded, reservation)
        })
        .await
        .map_err(|e| ServiceError::internal(format!("decoding failed: {e}")))?;
        Ok((decoded?, reservation))
    }
}

fn sample_bytes(samples: usize) -> u64 {
    (samples * std::mem::size_of::<f32>()) as u64
}

/// The engine's events, queued for the transcription's reader.
fn sink(tx: mpsc::UnboundedSender<Message>, model: &str) -> EventSink {
    let segments = metrics::counter!("glagol_segments_decoded_total", "model" => model.to_string());
    Arc::new(move |event: EngineEvent<'_>| {
        let _ = tx.send(Message::Event(match event {
            EngineEvent::Segment(s) => {
                segments.increment(1);
                Event::Segment(s.clone())
            }
            EngineEvent::Progress(p) => Event::Progress(p),
        }));
    })
}

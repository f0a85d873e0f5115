//! One scheduler per loaded model: a queue of work items and the worker
//! threads that run them through `Engine::transcribe_batch`.
//!
//! Like sherpa-onnx's websocket decoder, the scheduler, not the engine,
//! makes batches: a worker takes the next item and, when the engine gains
//! from batching, gathers more waiting items of the same kind and of similar
//! length (up to `max_batch`, waiting at most `max_wait` for them) into one
//! call. Concurrency is the number of worker threads: an item whose client
//! gave up or whose deadline passed is cancelled, but its worker stays busy
//! until the engine returns, so more than `workers` inferences never run at
//! once. Workers run on threads with a stack sized for the engines
//! (whisper.cpp's tokenizer recurses deeply).

mod queue;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use glagol_core::audio::SAMPLE_RATE;
use glagol_core::engine::{Engine, TranscribeOptions, Transcript};
use glagol_core::vad::{VadConfig, VadModel};

use self::queue::{Queue, Rejected};
use crate::error::ServiceError;

/// What kind of work an item is, in order of priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The final recognition of a live utterance.
    LiveFinal = 0,
    /// A partial of a live utterance that has shown no words yet: what
    /// tells its speaker they are heard, so it goes before the partials of
    /// streams that already show text.
    LiveFirstPartial = 1,
    /// A partial of a live utterance; superseded by newer audio.
    LivePartial = 2,
    /// A request a client waits for.
    Interactive = 3,
    /// A durable job.
    Background = 4,
}

impl Class {
    const ALL: [Class; 5] = [
        Class::LiveFinal,
        Class::LiveFirstPartial,
        Class::LivePartial,
        Class::Interactive,
        Class::Background,
    ];

    /// A partial of a live utterance, first or not.
    pub fn is_partial(self) -> bool {
        matches!(self, Class::LiveFirstPartial | Class::LivePartial)
    }

    /// Items batch only with items of the same kind: live finals with
    /// finals (a final is not held up by partials), partials with
    /// partials, requests and jobs with each other.
    fn batch_kind(self) -> u8 {
        match self {
            Class::LiveFinal => 0,
            Class::LiveFirstPartial | Class::LivePartial => 1,
            Class::Interactive | Class::Background => 2,
        }
    }
}

/// Receives an item's outcome, on the worker thread (after every event the
/// item's sink got). Must not block.
pub type Completion = Box<dyn FnOnce(Result<Transcript, ServiceError>) + Send>;

/// One piece of audio to recognise.
pub struct WorkItem {
    /// 16 kHz mono samples.
    pub audio: Vec<f32>,
    /// Recognition settings; its `cancel` flag is how the item is withdrawn.
    pub options: TranscribeOptions,
    /// Recognise only the speech this VAD finds.
    pub vad: Option<(Arc<VadModel>, VadConfig)>,
    pub class: Class,
    /// The live stream the item belongs to (partials of one stream replace
    /// each other).
    pub stream: Option<u64>,
    /// The API key (its name) a request or job is done for: one key's
    /// requests share the queue fairly with other keys' (None: each item
    /// on its own, as on a server without keys).
    pub account: Option<String>,
    /// Dropped if still waiting then.
    pub deadline: Option<Instant>,
    /// Called when a worker starts on the item.
    pub started: Option<Box<dyn FnOnce() + Send>>,
    /// The stream's newest audio, for a live partial: worth that, not the
    /// audio it had when queued.
    pub refresh: Option<Refresh>,
    pub done: Completion,
}

/// The newest audio of a live stream (see [`WorkItem::refresh`]).
pub trait Fresh: Send {
    /// When the newest audio arrived; None when the item is no longer wanted.
    fn arrived(&self) -> Option<Instant>;
    /// The newest audio, taken when a worker starts on the item; None when
    /// the item is no longer wanted.
    fn take(self: Box<Self>) -> Option<Vec<f32>>;
}

/// See [`WorkItem::refresh`].
pub type Refresh = Box<dyn Fresh>;

impl WorkItem {
    pub fn audio_seconds(&self) -> f64 {
        self.audio.len() as f64 / SAMPLE_RATE as f64
    }

    fn reject(self, why: ServiceError) {
        (self.done)(Err(why))
    }
}

/// How a model's work is run.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Worker threads (inferences at once).
    pub workers: usize,
    /// Interactive requests that may wait (more: `busy`).
    pub queue_depth: usize,
    /// Items per engine call at most, for engines that gain from batching.
    pub max_batch: usize,
    /// How long a batch waits for more items.
    pub max_wait: Duration,
}

struct Shared {
    model: String,
    config: SchedulerConfig,
    queue: Mutex<Queue>,
    /// Signalled when an item arrives or the scheduler stops.
    arrived: Condvar,
    stopped: AtomicBool,
    /// Workers inside an engine call.
    busy: AtomicUsize,
    /// Interactive requests admitted and not yet finished.
    admitted: AtomicUsize,
    /// The same per API key, where keys share the places.
    admitted_by: Mutex<HashMap<String, usize>>,
    speech_prefix_ms: u32,
    first_partial_ms: u32,
}

impl Shared {
    fn unloaded(&self) -> ServiceError {
        ServiceError::unavailable(
            "model_unloaded",
            format!(
                "model '{}' was unloaded; retry to load it again",
                self.model
            ),
        )
        .retry_after(Duration::from_secs(1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Scheduler {
    /// Starts the workers of `engine`.
    pub fn start(
        model: &str,
        engine: Arc<dyn Engine>,
        config: SchedulerConfig,
    ) -> std::io::Result<Arc<Scheduler>> {
        let shared = Arc::new(Shared {
            model: model.to_string(),
            config: SchedulerConfig {
                workers: config.workers.max(1),
                max_batch: if engine.gains_from_batching() {
                    config.max_batch.max(1)
                } else {
                    1
                },
                ..config
            },
            queue: Mutex::new(Queue::new()),
            arrived: Condvar::new(),
            stopped: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            admitted: AtomicUsize::new(0),
            admitted_by: Mutex::new(HashMap::new()),
            speech_prefix_ms: engine.speech_prefix_ms(),
            first_partial_ms: engine.first_partial_ms(),
        });
        let mut threads = Vec::new();
        for i in 0..shared.config.workers {
            let (mine, engine) = (shared.clone(), engine.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("infer-{model}-{i}"))
                .stack_size(glagol_core::engine::ENGINE_STACK_BYTES)
                .spawn(move || worker::run(&mine, engine.as_ref()));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.stopped.store(true, Ordering::SeqCst);
                    shared.arrived.notify_all();
                    return Err(e);
                }
            }
        }
        Ok(Arc::new(Scheduler {
            shared,
            threads: Mutex::new(threads),
        }))
    }

    /// Admits an interactive request before any work is done for it
    /// (decoding included): at most `workers + queue_depth` at a time, so a
    /// flood of uploads is refused with `busy` before it is decoded. Where
    /// several API keys share the model (`account` with `shared`), one key
    /// holds at most three quarters of the places, so a key that floods it
    /// leaves room for the others. The admission is held until the request
    /// ends.
    pub fn admit(&self, account: Option<&str>, shared: bool) -> Result<Admission, ServiceError> {
        let limit = self.shared.config.workers + self.shared.config.queue_depth;
        self.shared
            .admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| ServiceError::busy())?;
        // From here on, dropping the admission gives the place back.
        let mut admission = Admission {
            shared: self.shared.clone(),
            account: None,
        };
        if let Some(key) = account.filter(|_| shared && limit > 1) {
            let cap = limit - (limit / 4).max(1);
            let mut by = self
                .shared
                .admitted_by
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let held = by.entry(key.to_string()).or_default();
            if *held >= cap {
                return Err(ServiceError::unavailable(
                    "busy",
                    format!(
                        "this API key holds {held} of the {limit} places for requests to this model, \
                         its most while other keys share it; retry shortly"
                    ),
                )
                .retry_after(Duration::from_secs(1)));
            }
            *held += 1;
            admission.account = Some(key.to_string());
        }
        Ok(admission)
    }

    /// Fails every waiting item with `why`, keeping the scheduler running
    /// (the drain deadline of a shutdown).
    pub fn abandon_queued(&self, why: &ServiceError) {
        let waiting = self.shared.lock().drain();
        for item in waiting {
            item.reject(why.clone());
        }
    }

    /// Queues an item. An interactive item is refused with `busy` when the
    /// queue is full; other classes are bounded by their sources.
    pub fn submit(&self, item: WorkItem) -> Result<(), ServiceError> {
        let stale = {
            let mut queue = self.shared.lock();
            if self.shared.stopped.load(Ordering::SeqCst) {
                drop(queue);
                let why = self.shared.unloaded();
                item.reject(why.clone());
                return Err(why);
            }
            if item.class == Class::Interactive
                && queue.interactive() >= self.shared.config.queue_depth
                && self.idle_workers() == 0
            {
                return Err(ServiceError::busy());
            }
            queue.push(item)
        };
        self.shared.arrived.notify_one();
        finish_rejected(stale);
        Ok(())
    }

    fn idle_workers(&self) -> usize {
        self.shared
            .config
            .workers
            .saturating_sub(self.shared.busy.load(Ordering::SeqCst))
    }

    /// The engine's audio before speech for live utterances
    /// (`Engine::speech_prefix_ms`).
    pub fn speech_prefix_ms(&self) -> u32 {
        self.shared.speech_prefix_ms
    }

    /// When the engine's first live partial is due
    /// (`Engine::first_partial_ms`).
    pub fn first_partial_ms(&self) -> u32 {
        self.shared.first_partial_ms
    }

    /// Items waiting.
    pub fn queued(&self) -> usize {
        self.shared.lock().len()
    }

    /// Workers inside an engine call now.
    pub fn running(&self) -> usize {
        self.shared.busy.load(Ordering::SeqCst)
    }

    /// Every worker busy and the interactive queue full.
    pub fn saturated(&self) -> bool {
        self.idle_workers() == 0
            && self.shared.lock().interactive() >= self.shared.config.queue_depth
    }

    /// Refuses new items, fails the waiting ones with `model_unloaded`, and
    /// waits for the running ones to finish. Blocks: call off the async
    /// runtime.
    pub fn stop(&self) {
        let waiting = {
            let mut queue = self.shared.lock();
            self.shared.stopped.store(true, Ordering::SeqCst);
            queue.drain()
        };
        self.shared.arrived.notify_all();
        for item in waiting {
            item.reject(self.shared.unloaded());
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A place among the interactive requests a model takes at a time.
pub struct Admission {
    shared: Arc<Shared>,
    /// The key it counts against, where keys share the places.
    account: Option<String>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(key) = &self.account {
            let mut by = self
                .shared
                .admitted_by
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = by.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    by.remove(key);
                }
            }
        }
        self.shared.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Workers end on their own once stopped; nobody waits for them here.
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.arrived.notify_all();
    }
}

fn finish_rejected(rejected: Rejected) {
    for (item, why) in rejected {
        item.reject(why);
    }
}

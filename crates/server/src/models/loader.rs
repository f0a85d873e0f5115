//! Loading a model on its own thread: wait until it fits in memory, build
//! the engine, warm it up, start its scheduler, and only then call it
//! ready.
//!
//! One load per model runs at a time (a slot's `load_lock`): a load
//! started while a cancelled one is still finishing waits for it. Loads
//! check their cancel flag between stages, and a load in progress counts
//! against the memory admission of every other load.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glagol_core::engine::{Engine, TranscribeOptions};
use glagol_core::models::{EngineKind, InstalledModel, ResolvedModel};

use super::registry::{now_unix, Registry, Slot, State};
use crate::error::ServiceError;
use crate::scheduler::Scheduler;
use crate::sys;

/// Longest wait before a failed model may load again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

enum LoadError {
    Cancelled,
    /// Allocation failed: waiting for memory may cure it.
    OutOfMemory(String),
    Failed(String),
}

impl Registry {
    /// Marks the slot loading and starts its load thread. The caller holds
    /// the slots' lock and has checked that the slot is unloaded or failed.
    pub(super) fn start_load(
        self: &Arc<Self>,
        name: &str,
        slot: &mut Slot,
    ) -> Result<(), ServiceError> {
        slot.generation += 1;
        slot.cancel = Arc::new(AtomicBool::new(false));
        slot.error = None;
        slot.set_state(State::Loading);
        let (generation, cancel, lock) =
            (slot.generation, slot.cancel.clone(), slot.load_lock.clone());
        let me = self.clone();
        let model = name.to_string();
        std::thread::Builder::new()
            .name(format!("load-{name}"))
            .spawn(move || {
                let _one_load_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
                me.run_load(&model, generation, &cancel);
            })
            .map_err(|e| ServiceError::internal(format!("cannot start a load thread: {e}")))?;
        self.emit("model_loading", name, None);
        Ok(())
    }

    /// Applies `f` to the slot if `generation` still speaks for it.
    fn with_current<R>(
        &self,
        name: &str,
        generation: u64,
        f: impl FnOnce(&mut Slot) -> R,
    ) -> Option<R> {
        let mut slots = self.slots();
        let slot = slots.get_mut(name)?;
        (slot.generation == generation
            && matches!(slot.state, State::Loading | State::WaitingForMemory))
        .then(|| f(slot))
    }

    fn run_load(&self, name: &str, generation: u64, cancel: &AtomicBool) {
        let mut waiting = false;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return;
            }
            let Some(model) = self.installed.get(name) else {
                self.fail(name, generation, "the model is no longer installed".into());
                return;
            };
            let estimate = estimated_bytes(&model.path);
            if let Err(why) = self.memory_fits(name, estimate) {
                if self.wait_for_memory(name, generation, why, &mut waiting, cancel) {
                    continue;
                }
                return;
            }
            let reserved = self.with_current(name, generation, |slot| {
                slot.reserved = estimate;
                slot.error = None;
                slot.set_state(State::Loading);
            });
            if reserved.is_none() {
                return;
            }
            if std::mem::take(&mut waiting) {
                self.emit("model_loading", name, None);
            }
            let before = sys::rss_bytes();
            let started = Instant::now();
            match self.build(&model, cancel) {
                Ok(engine) => {
                    self.commit(name, generation, engine, before, started);
                    return;
                }
                Err(LoadError::Cancelled) => {
                    sys::release_memory();
                    return;
                }
                Err(LoadError::OutOfMemory(why)) => {
                    sys::release_memory();
                    tracing::warn!(model = name, "out of memory while loading: {why}");
                    if !self.wait_for_memory(name, generation, why, &mut waiting, cancel) {
                        return;
                    }
                }
                Err(LoadError::Failed(why)) => {
                    self.fail(name, generation, why);
                    return;
                }
            }
        }
    }

    /// Builds and warms up the engine, checking `cancel` between stages.
    fn build(
        &self,
        model: &InstalledModel,
        cancel: &AtomicBool,
    ) -> Result<Arc<dyn Engine>, LoadError> {
        let resolved = ResolvedModel {
            name: model.name.clone(),
            engine: model.engine,
            path: model.path.clone(),
        };
        let classify = |message: String| {
            if is_out_of_memory(&message) {
                LoadError::OutOfMemory(message)
            } else {
                LoadError::Failed(message)
            }
        };
        let engine: Arc<dyn Engine> = (self.load_engine)(&resolved, &self.engine_config)
            .map_err(|e| classify(e.to_string()))?
            .into();
        if cancel.load(Ordering::SeqCst) {
            return Err(LoadError::Cancelled);
        }
        // A short inference before `ready`, so the first real request does
        // not pay for lazy initialisation.
        let options = TranscribeOptions {
            language: Some(
                if engine.kind() == EngineKind::Gigaam {
                    "ru"
                } else {
                    "en"
                }
                .into(),
            ),
            ..Default::default()
        };
        engine
            .transcribe(&vec![0.0f32; 16_000], &options)
            .map_err(|e| classify(format!("warm-up failed: {e}")))?;
        if cancel.load(Ordering::SeqCst) {
            return Err(LoadError::Cancelled);
        }
        Ok(engine)
    }

    fn commit(
        &self,
        name: &str,
        generation: u64,
        engine: Arc<dyn Engine>,
        before: Option<u64>,
        started: Instant,
    ) {
        let scheduler = match Scheduler::start(name, engine, self.scheduling) {
            Ok(s) => s,
            Err(e) => {
                self.fail(
                    name,
                    generation,
                    format!("cannot start worker threads: {e}"),
                );
                return;
            }
        };
        let committed = self.with_current(name, generation, |slot| {
            slot.scheduler = Some(scheduler.clone());
            slot.loaded_at = Some(now_unix());
            slot.last_used = Instant::now();
            slot.reserved = 0;
            slot.failures = 0;
            slot.retry_at = None;
            slot.resident_bytes = match (before, sys::rss_bytes()) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            };
            // Recorded before the model shows as ready, so whoever sees it
            // ready also sees its load time.
            metrics::histogram!("glagol_model_load_seconds", "model" => name.to_string())
                .record(started.elapsed().as_secs_f64());
            slot.set_state(State::Ready);
        });
        if committed.is_none() {
            // Unloaded while loading: the result is not wanted.
            scheduler.stop();
            drop(scheduler);
            sys::release_memory();
            return;
        }
        tracing::info!(model = name, "model ready");
        self.emit("model_ready", name, None);
    }

    fn fail(&self, name: &str, generation: u64, why: String) {
        let failed = self.with_current(name, generation, |slot| {
            slot.failures += 1;
            let backoff = Duration::from_secs(10)
                .saturating_mul(1 << (slot.failures - 1).min(8))
                .min(MAX_BACKOFF);
            slot.retry_at = Some(Instant::now() + backoff);
            slot.reserved = 0;
            slot.error = Some(why.clone());
            slot.set_state(State::Failed);
        });
        if failed.is_some() {
            tracing::warn!(model = name, "model failed to load: {why}");
            self.emit("model_failed", name, Some(why));
        }
    }

    /// Parks the load as `waiting_for_memory` for one retry period; false
    /// when it should stop (cancelled or superseded).
    fn wait_for_memory(
        &self,
        name: &str,
        generation: u64,
        why: String,
        announced: &mut bool,
        cancel: &AtomicBool,
    ) -> bool {
        let parked = self.with_current(name, generation, |slot| {
            slot.reserved = 0;
            slot.error = Some(why.clone());
            slot.set_state(State::WaitingForMemory);
        });
        if parked.is_none() {
            return false;
        }
        if !*announced {
            tracing::warn!(model = name, "waiting for memory: {why}");
            self.emit("model_waiting_for_memory", name, Some(why));
            *announced = true;
        }
        let until =
            Instant::now() + Duration::from_millis(self.memory_retry_ms.load(Ordering::SeqCst));
        while Instant::now() < until {
            if cancel.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        true
    }

    /// Whether `needed` more bytes fit now, counting the loads of other
    /// models in progress; `Err` says what is short.
    fn memory_fits(&self, name: &str, needed: u64) -> Result<(), String> {
        let others: u64 = self
            .slots()
            .iter()
            .filter(|(n, s)| n.as_str() != name && s.state == State::Loading)
            .map(|(_, s)| s.reserved)
            .sum();
        let limit = self.memory_limit.load(Ordering::SeqCst);
        let available = match (limit, sys::rss_bytes()) {
            (0, _) => sys::mem_available_bytes(),
            (limit, Some(rss)) => Some(limit.saturating_sub(rss)),
            (limit, None) => Some(limit),
        };
        let Some(free) = available.map(|a| a.saturating_sub(others)) else {
            return Ok(());
        };
        if free >= needed {
            return Ok(());
        }
        let under = if limit > 0 {
            format!(" under the {} MB memory limit", limit >> 20)
        } else {
            String::new()
        };
        let loading = if others > 0 {
            format!(", {} MB of it held for other loads", others >> 20)
        } else {
            String::new()
        };
        Err(format!(
            "needs about {} MB, {} MB available{under}{loading}",
            needed >> 20,
            free >> 20
        ))
    }
}

/// The memory a model needs once loaded, estimated from its files: the
/// weights plus half again for runtime buffers. For a directory (GigaAM:
/// several heads, only one loaded) the largest file stands for the weights.
fn estimated_bytes(path: &Path) -> u64 {
    let weights = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    };
    weights + weights / 2
}

/// Whether a load error is an allocation failure (ONNX Runtime, ggml, or
/// the system), which waiting may cure, rather than a broken model.
fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "out of memory",
        "bad_alloc",
        "bad allocation",
        "failed to allocate",
        "cannot allocate memory",
    ]
    .iter()
    .any(|p| m.contains(p))
}

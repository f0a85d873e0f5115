//! Cross-request batching for engines that gain from it (GigaAM: one
//! encoder call over several padded inputs costs less than one call each).
//!
//! Requests queue on a channel; each of the model's workers takes the
//! first waiting request, gathers more until the batch is full or the wait
//! window closes, and recognises them in one `transcribe_batch` call. A
//! request alone waits at most the window; under load, requests that
//! queued while a batch ran are gathered at once.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glagol_core::engine::{Engine, EngineError, Request, TranscribeOptions, Transcript};
use tokio::sync::oneshot;

struct Pending {
    audio: Vec<f32>,
    options: TranscribeOptions,
    reply: oneshot::Sender<Result<Transcript, EngineError>>,
}

pub struct Batcher {
    /// None once stopped.
    tx: Mutex<Option<mpsc::Sender<Pending>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    model: String,
}

impl Batcher {
    /// Starts `workers` batching threads over `engine`; they end when the
    /// batcher is dropped and the queue is empty.
    pub fn new(
        engine: Arc<dyn Engine>,
        model: &str,
        workers: usize,
        max_batch: usize,
        max_wait: Duration,
    ) -> std::io::Result<Arc<Batcher>> {
        let (tx, rx) = mpsc::channel::<Pending>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let (engine, rx, model) = (engine.clone(), rx.clone(), model.to_string());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("batch-{model}-{i}"))
                    .spawn(move || run(engine.as_ref(), &rx, &model, max_batch.max(1), max_wait))?,
            );
        }
        Ok(Arc::new(Batcher {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            model: model.to_string(),
        }))
    }

    /// Lets queued work finish, then ends the threads (and so releases
    /// their hold on the engine). Blocks; call off the async runtime.
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }

    /// Recognises `audio` as part of the next batch.
    pub async fn transcribe(
        &self,
        audio: Vec<f32>,
        options: TranscribeOptions,
    ) -> Result<Transcript, EngineError> {
        let (reply, rx) = oneshot::channel();
        let gone = || EngineError::Inference(format!("model {} was unloaded", self.model));
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send(Pending {
                audio,
                options,
                reply,
            }),
            None => return Err(gone()),
        };
        sent.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

fn run(
    engine: &dyn Engine,
    rx: &Mutex<mpsc::Receiver<Pending>>,
    model: &str,
    max_batch: usize,
    max_wait: Duration,
) {
    loop {
        let batch = {
            // One worker gathers at a time; the others wait their turn.
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(first) = rx.recv() else { return };
            let deadline = Instant::now() + max_wait;
            let mut batch = vec![first];
            while batch.len() < max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            batch
        };
        // Requests whose client left are not worth recognising.
        let batch: Vec<Pending> = batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!("glagol_batch_size", "model" => model.to_string())
            .record(batch.len() as f64);
        let requests: Vec<Request<'_>> = batch
            .iter()
            .map(|p| Request {
                audio: &p.audio,
                options: &p.options,
            })
            .collect();
        let results = engine.transcribe_batch(&requests);
        drop(requests);
        for (pending, result) in batch.into_iter().zip(results) {
            let _ = pending.reply.send(result);
        }
    }
}

//! Speaker diarization: who spoke when, pyannote 3.1's way, on the ONNX
//! Runtime the engines already use.
//!
//! 1. [`segmentation`]: pyannote segmentation-3.0 over 10 s windows every
//!    1 s gives up to 3 local speakers per frame (overlap aware), and the
//!    number of speakers at each global frame.
//! 2. One speaker embedding (CAM++ or any `[N, T, 80]` Kaldi-fbank model)
//!    per (window, local speaker), over the frames where that speaker
//!    speaks alone ([`fbank`] + mean normalisation).
//! 3. [`cluster`]: pyannote's centroid-linkage clustering turns local
//!    speakers into global ones.
//! 4. Reconstruction: per frame, the `count` clusters with the most
//!    activity summed over the windows are on; runs of frames become
//!    [`Turn`]s.
//! 5. [`assign`]: words and segments of a transcript take the speaker of
//!    the turn they fall in.
//!
//! [`score`] measures the result (DER) against a reference RTTM.

pub mod assign;
pub mod cluster;
pub mod fbank;
pub mod score;
pub mod segmentation;

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use self::cluster::SpeakerCount;
use self::segmentation::{Activity, LOCAL_SPEAKERS};
use crate::runtime::{self, RuntimeError};

/// Windows the segmentation model sees per call.
const BATCH: usize = 8;
/// Frames of clean speech below which a local speaker is embedded over
/// all its frames, overlapped ones included.
const MIN_CLEAN_FRAMES: usize = 2;
/// Feature frames an embedding needs (CAM++ gives NaN under 3).
pub const MIN_EMBEDDING_FRAMES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum DiarizeError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot load {path}: {message}")]
    Load { path: String, message: String },
    #[error("diarization model gave an unexpected result: {0}")]
    Model(String),
    #[error("diarization inference failed: {0}")]
    Inference(String),
    #[error("cancelled")]
    Stopped,
}

fn inference(e: impl std::fmt::Display) -> DiarizeError {
    DiarizeError::Inference(e.to_string())
}

/// What to find.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiarizeOptions {
    pub speakers: SpeakerCount,
    /// Clustering threshold (Euclidean between unit embeddings).
    pub threshold: f64,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        DiarizeOptions {
            speakers: SpeakerCount::default(),
            threshold: cluster::THRESHOLD,
        }
    }
}

/// A stretch of one speaker's speech, in seconds. Turns of different
/// speakers may overlap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turn {
    pub start: f64,
    pub end: f64,
    /// Speakers are numbered in the order they first speak.
    pub speaker: usize,
}

/// Who spoke when in one recording.
#[derive(Debug, Clone, Default)]
pub struct Diarization {
    /// In order of start.
    pub turns: Vec<Turn>,
    /// Each speaker's mean embedding, indexed by [`Turn::speaker`].
    pub centroids: Vec<Vec<f32>>,
    /// Segmentation windows run.
    pub windows: usize,
    /// Embeddings computed.
    pub embeddings: usize,
}

impl Diarization {
    pub fn speakers(&self) -> usize {
        self.centroids.len()
    }

    /// The turns with their speakers' letters, as RTTM has them.
    pub fn labelled_turns(&self) -> Vec<score::LabelledTurn> {
        self.turns
            .iter()
            .map(|t| score::LabelledTurn {
                start: t.start,
                end: t.end,
                speaker: assign::label(t.speaker),
            })
            .collect()
    }
}

/// The segmentation and embedding models, as one single-threaded session
/// per worker: a recording's windows are split between the workers, which
/// scales better than ONNX Runtime's own threads on these small inputs and
/// never spins a core that recognition beside it could use.
pub struct Diarizer {
    segmentation: Vec<Mutex<Session>>,
    embedding: Vec<Mutex<Session>>,
}

fn session(path: &Path) -> Result<Session, DiarizeError> {
    let load = |e: ort::Error| DiarizeError::Load {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let env = runtime::environment()?;
    let session = Session::builder(env)
        .and_then(|b| Ok(b.with_intra_threads(1)?))
        .and_then(|b| Ok(b.with_inter_threads(1)?))
        .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(load)?;
    if session.inputs().len() != 1 || session.outputs().is_empty() {
        return Err(DiarizeError::Load {
            path: path.display().to_string(),
            message: "expected one input and an output".into(),
        });
    }
    Ok(session)
}

impl Diarizer {
    /// Loads a segmentation-3.0 model and a speaker-embedding model
    /// (`[N, T, 80]` fbank in, `[N, D]` out) for `workers` threads.
    pub fn load(
        segmentation: &Path,
        embedding: &Path,
        workers: usize,
    ) -> Result<Self, DiarizeError> {
        let sessions = |path: &Path| {
            (0..workers.max(1))
                .map(|_| session(path).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Diarizer {
            segmentation: sessions(segmentation)?,
            embedding: sessions(embedding)?,
        })
    }

    /// Runs `work` over `items` split into one contiguous share per worker,
    /// worker `i` passing session index `i`; results in the items' order.
    fn in_parallel<T: Sync, R: Send>(
        &self,
        items: &[T],
        work: impl Fn(usize, &[T]) -> Result<Vec<R>, DiarizeError> + Sync,
    ) -> Result<Vec<R>, DiarizeError> {
        let workers = self.embedding.len().min(items.len()).max(1);
        if workers == 1 {
            return work(0, items);
        }
        let share = items.len().div_ceil(workers);
        let parts: Vec<Result<Vec<R>, DiarizeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(share)
                .enumerate()
                .map(|(i, part)| {
                    let work = &work;
                    scope.spawn(move || work(i, part))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(DiarizeError::Inference("a worker panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(items.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// Segmentation log-probabilities, `[windows, frames, 7]` flattened.
    pub fn segment(
        &self,
        samples: &[f32],
        starts: &[usize],
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<f32>, DiarizeError> {
        let batches: Vec<&[usize]> = starts.chunks(BATCH).collect();
        let parts = self.in_parallel(&batches, |worker, batches| {
            let mut out = Vec::new();
            for batch in batches {
                if stop() {
                    return Err(DiarizeError::Stopped);
                }
                let mut input = Vec::with_capacity(batch.len() * segmentation::WINDOW);
                for &s in *batch {
                    input.extend(segmentation::window(samples, s));
                }
                let x = Tensor::from_array(([batch.len(), 1, segmentation::WINDOW], input))
                    .map_err(inference)?;
                let mut session = lock(&self.segmentation[worker]);
                let result = session.run(ort::inputs![x]).map_err(inference)?;
                let (_, logp) = result[0].try_extract_tensor::<f32>().map_err(inference)?;
                out.push(logp.to_vec());
            }
            Ok(out)
        })?;
        Ok(parts.concat())
    }

    /// The embedding of mean-normalised features `[frames, 80]`; None
    /// under [`MIN_EMBEDDING_FRAMES`] frames or where the model gives no
    /// finite vector (too short for it).
    pub fn embed_features(&self, features: Vec<f32>) -> Result<Option<Vec<f32>>, DiarizeError> {
        self.embed_with(0, features)
    }

    fn embed_with(
        &self,
        worker: usize,
        mut features: Vec<f32>,
    ) -> Result<Option<Vec<f32>>, DiarizeError> {
        let frames = features.len() / fbank::N_MELS;
        if frames < MIN_EMBEDDING_FRAMES {
            return Ok(None);
        }
        fbank::subtract_mean(&mut features);
        let x = Tensor::from_array(([1, frames, fbank::N_MELS], features)).map_err(inference)?;
        let mut session = lock(&self.embedding[worker]);
        let result = session.run(ort::inputs![x]).map_err(inference)?;
        let (_, e) = result[0].try_extract_tensor::<f32>().map_err(inference)?;
        Ok(e.iter().all(|v| v.is_finite()).then(|| e.to_vec()))
    }

    /// The embedding of a clip of one speaker (16 kHz), as for a known
    /// speaker's reference.
    pub fn embed(&self, samples: &[f32]) -> Result<Option<Vec<f32>>, DiarizeError> {
        self.embed_features(fbank::fbank(samples))
    }

    /// Who spoke when in `samples` (16 kHz mono). `stop` is polled between
    /// model calls.
    pub fn diarize(
        &self,
        samples: &[f32],
        options: &DiarizeOptions,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Diarization, DiarizeError> {
        let starts = segmentation::window_starts(samples.len());
        let log_probs = self.segment(samples, &starts, stop)?;
        let activity = Activity::from_log_probs(starts, &log_probs)?;
        let count = activity.speaker_count();
        if count.iter().all(|&c| c == 0) {
            return Ok(Diarization {
                windows: activity.windows(),
                ..Diarization::default()
            });
        }
        let embeddings = self.embed_local_speakers(samples, &activity, stop)?;
        let (labels, centroids) =
            cluster::cluster(&embeddings, options.threshold, options.speakers);
        let binary = reconstruct(&activity, &labels, centroids.len(), &count);
        let (turns, order) = turns(&binary);
        Ok(Diarization {
            turns,
            centroids: order
                .iter()
                .map(|&c| {
                    centroids
                        .get(c)
                        .map(|v| v.iter().map(|&x| x as f32).collect())
                        .unwrap_or_default()
                })
                .collect(),
            windows: activity.windows(),
            embeddings: embeddings.iter().flatten().count(),
        })
    }

    /// One embedding per (window, local speaker) that speaks, over the
    /// frames where it speaks alone (or all its frames when it hardly
    /// ever does); `None` for the others.
    fn embed_local_speakers(
        &self,
        samples: &[f32],
        activity: &Activity,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<Option<Vec<f32>>>, DiarizeError> {
        let windows: Vec<usize> = (0..activity.windows()).collect();
        let per_window = self.in_parallel(&windows, |worker, windows| {
            let mut out = Vec::with_capacity(windows.len());
            for &w in windows {
                if stop() {
                    return Err(DiarizeError::Stopped);
                }
                out.push(self.embed_window(worker, samples, activity, w)?);
            }
            Ok(out)
        })?;
        Ok(per_window.into_iter().flatten().collect())
    }

    /// The embeddings of one window's local speakers.
    fn embed_window(
        &self,
        worker: usize,
        samples: &[f32],
        activity: &Activity,
        w: usize,
    ) -> Result<Vec<Option<Vec<f32>>>, DiarizeError> {
        let features = fbank::fbank(&segmentation::window(samples, activity.starts[w]));
        let rows = features.len() / fbank::N_MELS;
        // Feature frame j takes segmentation frame ⌊j · frames / rows⌋.
        let seg_frame: Vec<usize> = (0..rows)
            .map(|j| (j as f64 * (activity.frames as f64 / rows as f64)).floor() as usize)
            .collect();
        let mut out = Vec::with_capacity(LOCAL_SPEAKERS);
        for s in 0..LOCAL_SPEAKERS {
            if !activity.speaks(w, s) {
                out.push(None);
                continue;
            }
            let clean = |f: usize| activity.is_active(w, f, s) && activity.speaking(w, f) < 2;
            let use_clean = (0..activity.frames).filter(|&f| clean(f)).count() > MIN_CLEAN_FRAMES;
            let selected: Vec<f32> = seg_frame
                .iter()
                .enumerate()
                .filter(|&(_, &f)| {
                    if use_clean {
                        clean(f)
                    } else {
                        activity.is_active(w, f, s)
                    }
                })
                .flat_map(|(j, _)| {
                    features[j * fbank::N_MELS..(j + 1) * fbank::N_MELS]
                        .iter()
                        .copied()
                })
                .collect();
            out.push(self.embed_with(worker, selected)?);
        }
        Ok(out)
    }
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|p| p.into_inner())
}

/// Speakers on at each global frame: `[frames][clusters]`, where a
/// frame's `count` most active clusters (activity summed over the windows)
/// are on. Where more speakers overlap than there are clusters, all are on:
/// pyannote adds unnamed speakers there, which a transcript cannot use.
fn reconstruct(
    activity: &Activity,
    labels: &[usize],
    clusters: usize,
    count: &[usize],
) -> Vec<Vec<bool>> {
    let n = count.len();
    let columns = clusters.max(1);
    let mut act = vec![vec![0.0f64; columns]; n];
    for w in 0..activity.windows() {
        let first = activity.first_frame(w);
        for f in 0..activity.frames.min(n.saturating_sub(first)) {
            let mut on = vec![false; columns];
            for s in 0..LOCAL_SPEAKERS {
                if activity.speaks(w, s) && activity.is_active(w, f, s) {
                    on[labels[w * LOCAL_SPEAKERS + s]] = true;
                }
            }
            for (a, o) in act[first + f].iter_mut().zip(on) {
                *a += o as u8 as f64;
            }
        }
    }
    act.iter()
        .zip(count)
        .map(|(row, &c)| {
            let mut order: Vec<usize> = (0..columns).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let mut on = vec![false; columns];
            for &k in order.iter().take(c) {
                on[k] = true;
            }
            on
        })
        .collect()
}

/// Runs of on-frames as turns between frame middles, speakers renumbered
/// by first appearance; also the column behind each new number.
fn turns(binary: &[Vec<bool>]) -> (Vec<Turn>, Vec<usize>) {
    let n = binary.len();
    let columns = binary.first().map_or(0, |r| r.len());
    let mut raw = Vec::new();
    for k in 0..columns {
        let on: Vec<bool> = binary.iter().map(|row| row[k]).collect();
        let mut i = 0;
        while i < n {
            if !on[i] {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < n && on[j] {
                j += 1;
            }
            let end = segmentation::frame_middle(if j < n { j } else { n - 1 });
            raw.push((segmentation::frame_middle(i), end, k));
            i = j;
        }
    }
    raw.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut order: Vec<usize> = Vec::new();
    let turns = raw
        .into_iter()
        .map(|(start, end, k)| {
            let speaker = order.iter().position(|&o| o == k).unwrap_or_else(|| {
                order.push(k);
                order.len() - 1
            });
            Turn {
                start,
                end,
                speaker,
            }
        })
        .collect();
    (turns, order)
}

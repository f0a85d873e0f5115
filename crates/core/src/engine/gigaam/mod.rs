//! GigaAM v3 on ONNX Runtime: RNN-T and CTC heads, long audio, batching.
//!
//! A model directory holds the ONNX files of one or more heads as
//! `istupakov/gigaam-v3-onnx` names them (`v3_e2e_rnnt_{encoder,decoder,
//! joint}.onnx` + `v3_e2e_rnnt_vocab.txt`, `v3_e2e_ctc.onnx` +
//! `v3_e2e_ctc_vocab.txt`, the plain `v3_rnnt_*`/`v3_ctc.onnx` +
//! `v3_vocab.txt`), optional `*.int8.onnx` variants beside them, and
//! `config.json`. Pointing `--model` at a directory picks the best head
//! present (e2e RNN-T first); pointing it at one head's `.onnx` file picks
//! that head.
//!
//! Every request is cut into chunks of at most [`MAX_CHUNK_S`] at pauses
//! found by the VAD (with overlap where speech has no pause). The chunks of
//! *all* requests in a batch go through the encoder together, `[B, 64, T]`
//! with lengths, round by round (the first chunk of every request, then the
//! second, …), and each chunk is then decoded on its own and announced as a
//! segment at once. The encoder masks padding, so the result does not
//! depend on how chunks were batched.

mod batch;
pub mod decode;
mod files;
mod prediction;
mod sessions;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ort::value::Tensor;

use self::decode::{Token, Vocab, FRAME_S};
pub use self::files::{locate, Head, HeadFiles};
use self::sessions::{session, Pool};
use super::chunk::{self, Chunk};
use super::{
    compression_ratio, Engine, EngineConfig, EngineError, Request, Segment, Task, Transcript,
};
use crate::audio::SAMPLE_RATE;
use crate::features::{self, LogMel, N_MELS};
use crate::models::EngineKind;
use crate::runtime;
use crate::vad::VadModel;

/// Longest chunk given to the full-context encoder, in seconds.
pub const MAX_CHUNK_S: f64 = 20.0;
const LANGS: &[&str] = &["ru"];
/// Feature value of padding frames: the log floor, i.e. what silence
/// (zero samples) produces, as in the reference's zero-padded batches.
const PAD: f32 = -20.723_267; // ln(1e-9)

pub struct GigaamEngine {
    name: String,
    head: Head,
    encoder: Pool,
    /// (decoder, joint) pairs for RNN-T.
    predictors: Pool,
    joints: Pool,
    vocab: Vocab,
    max_per_frame: usize,
    max_batch: usize,
    vad: OnceLock<Result<Arc<VadModel>, String>>,
    /// Prediction-network outputs shared by recognitions of growing audio.
    predictions: prediction::PredictionCache,
}

impl GigaamEngine {
    pub fn load(name: &str, path: &Path, config: &EngineConfig) -> Result<Self, EngineError> {
        // The runtime first, so a missing library is reported as such.
        runtime::environment()?;
        let files = locate(path, config.int8)?;
        let dir = files.model.parent().unwrap_or(Path::new("."));
        let vocab_text = std::fs::read_to_string(&files.vocab).map_err(|e| EngineError::Load {
            path: files.vocab.display().to_string(),
            message: e.to_string(),
        })?;
        let vocab = Vocab::parse(&vocab_text).map_err(|m| EngineError::Load {
            path: files.vocab.display().to_string(),
            message: m,
        })?;
        let max_per_frame = std::fs::read_to_string(dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_tokens_per_step"].as_u64())
            .map(|n| n as usize)
            .unwrap_or(10)
            .max(1);
        let threads = config.threads.max(1);
        let pool = config.sessions.max(1);
        let encoder = Pool::new(
            (0..pool)
                .map(|_| session(&files.model, threads))
                .collect::<Result<_, _>>()?,
        );
        let (predictors, joints) = match (&files.decoder, &files.joint) {
            (Some(d), Some(j)) => (
                Pool::new((0..pool).map(|_| session(d, 1)).collect::<Result<_, _>>()?),
                Pool::new((0..pool).map(|_| session(j, 1)).collect::<Result<_, _>>()?),
            ),
            _ => (Pool::new(Vec::new()), Pool::new(Vec::new())),
        };
        Ok(GigaamEngine {
            name: name.to_string(),
            head: files.head,
            encoder,
            predictors,
            joints,
            vocab,
            max_per_frame,
            max_batch: config.max_batch.max(1),
            vad: OnceLock::new(),
            predictions: Default::default(),
        })
    }

    pub fn head(&self) -> Head {
        self.head
    }

    fn vad(&self) -> Result<&Arc<VadModel>, EngineError> {
        self.vad
            .get_or_init(|| VadModel::embedded().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| EngineError::Inference(format!("voice activity detector: {e}")))
    }

    /// Recognises chunks together (one encoder call per
    /// `max_batch` of them); returns per chunk its tokens.
    fn recognize(&self, chunks: &[&[f32]]) -> Result<Vec<Vec<Token>>, EngineError> {
        let mut mel = LogMel::new();
        let frames: Vec<usize> = chunks
            .iter()
            .map(|c| features::num_frames(c.len()))
            .collect();
        let mut out = vec![Vec::new(); chunks.len()];
        // Similar lengths together keep padding (wasted compute) small.
        let mut order: Vec<usize> = (0..chunks.len()).filter(|&i| frames[i] > 0).collect();
        order.sort_by_key(|&i| frames[i]);
        for group in order.chunks(self.max_batch) {
            // Features per group, so long audio never holds all of them.
            let feats: Vec<Vec<f32>> = group.iter().map(|&i| mel.compute(chunks[i])).collect();
            let items = group
                .iter()
                .zip(&feats)
                .map(|(&i, f)| (&f[..], frames[i]))
                .collect();
            for (&i, tokens) in group.iter().zip(self.recognize_group(items)?) {
                out[i] = tokens;
            }
        }
        Ok(out)
    }

    fn recognize_group(&self, items: Vec<(&[f32], usize)>) -> Result<Vec<Vec<Token>>, EngineError> {
        let b = items.len();
        let t_max = items.iter().map(|(_, t)| *t).max().unwrap_or(0);
        let mut batch = vec![PAD; b * N_MELS * t_max];
        for (bi, (f, t)) in items.iter().enumerate() {
            for m in 0..N_MELS {
                let dst = bi * N_MELS * t_max + m * t_max;
                batch[dst..dst + t].copy_from_slice(&f[m * t..(m + 1) * t]);
            }
        }
        let lengths: Vec<i64> = items.iter().map(|(_, t)| *t as i64).collect();
        let err = |e: ort::Error| EngineError::Inference(e.to_string());
        let signal = Tensor::from_array(([b, N_MELS, t_max], batch)).map_err(err)?;
        let lens = Tensor::from_array(([b], lengths)).map_err(err)?;
        match self.head {
            Head::Ctc => {
                let logits =
                    self.encoder
                        .with(|s| -> Result<(Vec<usize>, Vec<f32>), EngineError> {
                            let out = s
                                .run(ort::inputs!["features" => signal, "feature_lengths" => lens])
                                .map_err(err)?;
                            let (shape, data) =
                                out["log_probs"].try_extract_tensor::<f32>().map_err(err)?;
                            Ok((shape.iter().map(|&d| d as usize).collect(), data.to_vec()))
                        })?;
                let (shape, data) = logits;
                let (tp, classes) = (shape[1], shape[2]);
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(bi, (_, t))| {
                        let valid = ((t - 1) / 4 + 1).min(tp);
                        let row = &data[bi * tp * classes..(bi + 1) * tp * classes];
                        decode::ctc_greedy(row, valid, classes, self.vocab.blank)
                    })
                    .collect())
            }
            Head::Rnnt => {
                let (shape, data, enc_lens) = self.encoder.with(|s| -> Result<_, EngineError> {
                    let out = s
                        .run(ort::inputs!["audio_signal" => signal, "length" => lens])
                        .map_err(err)?;
                    let (shape, data) = out["encoded"].try_extract_tensor::<f32>().map_err(err)?;
                    let (_, enc_lens) = out["encoded_len"]
                        .try_extract_tensor::<i32>()
                        .map_err(err)?;
                    Ok((
                        shape.iter().map(|&d| d as usize).collect::<Vec<_>>(),
                        data.to_vec(),
                        enc_lens.to_vec(),
                    ))
                })?;
                let (channels, tp) = (shape[1], shape[2]);
                let mut results = Vec::with_capacity(b);
                for (bi, &len) in enc_lens.iter().enumerate().take(b) {
                    let valid = (len.max(0) as usize).min(tp);
                    let base = bi * channels * tp;
                    // Channels-first → one contiguous vector per frame.
                    let frames: Vec<Vec<f32>> = (0..valid)
                        .map(|t| (0..channels).map(|c| data[base + c * tp + t]).collect())
                        .collect();
                    let tokens = self.predictors.with(|dec| {
                        self.joints.with(|joint| {
                            decode::rnnt_greedy(
                                dec,
                                joint,
                                &self.predictions,
                                &frames,
                                self.vocab.blank,
                                self.max_per_frame,
                            )
                        })
                    })?;
                    results.push(tokens);
                }
                Ok(results)
            }
        }
    }
}

impl Engine for GigaamEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Gigaam
    }

    fn languages(&self) -> &[&'static str] {
        LANGS
    }

    fn gains_from_batching(&self) -> bool {
        true
    }

    fn transcribe_batch(&self, requests: &[Request<'_>]) -> Vec<Result<Transcript, EngineError>> {
        batch::run(self, requests)
    }
}

impl GigaamEngine {
    fn check(&self, req: &Request<'_>) -> Result<(), EngineError> {
        match req.options.language.as_deref() {
            None | Some("auto") | Some("") | Some("ru") => {}
            Some(other) => {
                return Err(EngineError::UnsupportedLanguage(format!(
                    "{} (GigaAM transcribes Russian only)",
                    super::quoted(other)
                )))
            }
        }
        let may_be_russian =
            req.options.languages.is_empty() || req.options.languages.iter().any(|l| l == "ru");
        if req.options.language.is_none() && !may_be_russian {
            return Err(EngineError::UnsupportedLanguage(format!(
                "{} (GigaAM transcribes Russian only)",
                super::quoted(&req.options.languages.join(","))
            )));
        }
        if req.options.task == Task::Translate {
            return Err(EngineError::InvalidOptions(
                "GigaAM cannot translate; use a Whisper model for --task translate".into(),
            ));
        }
        Ok(())
    }

    /// The `[start, end)` sample spans long audio is recognised in.
    pub fn chunks(&self, audio: &[f32]) -> Result<Vec<(usize, usize)>, EngineError> {
        Ok(self.plan(audio)?.iter().map(|c| (c.start, c.end)).collect())
    }

    fn plan(&self, audio: &[f32]) -> Result<Vec<Chunk>, EngineError> {
        let max = (MAX_CHUNK_S * SAMPLE_RATE as f64) as usize;
        if audio.len() <= max {
            return Ok(vec![Chunk {
                start: 0,
                end: audio.len(),
                keep_from: 0.0,
                keep_to: f64::INFINITY,
            }]);
        }
        let speech = crate::vad::speech_segments(self.vad()?, audio, Default::default())
            .map_err(|e| EngineError::Inference(e.to_string()))?;
        Ok(chunk::plan(&speech, audio.len(), max, chunk::GIGAAM_PAUSES))
    }

    /// The segment of one recognised chunk (None when it holds no tokens).
    fn chunk_segment(&self, chunk: &Chunk, tokens: Vec<Token>, words: bool) -> Option<Segment> {
        let offset = chunk.start as f64 / SAMPLE_RATE as f64;
        // Overlapping windows: each keeps the tokens of its own half of
        // the overlap, so no word is dropped or duplicated.
        let toks: Vec<Token> = tokens
            .into_iter()
            .filter(|t| {
                let at = offset + t.frame as f64 * FRAME_S;
                at >= chunk.keep_from && at < chunk.keep_to
            })
            .collect();
        if toks.is_empty() {
            return None;
        }
        let (text, chunk_words) = decode::assemble(&toks, &self.vocab, offset);
        let start = chunk_words.first().map(|w| w.start).unwrap_or(offset);
        let end = chunk_words.last().map(|w| w.end).unwrap_or(offset);
        let avg_logprob = toks.iter().map(|t| t.logprob).sum::<f32>() / toks.len() as f32;
        Some(Segment {
            speaker: None,
            id: 0,
            seek: (offset * 100.0) as usize,
            start,
            end,
            compression_ratio: compression_ratio(&text),
            text,
            tokens: toks.iter().map(|t| t.id as i32).collect(),
            token_times: toks
                .iter()
                .map(|t| offset + t.frame as f64 * FRAME_S)
                .collect(),
            temperature: 0.0,
            avg_logprob,
            no_speech_prob: 0.0,
            words: if words { chunk_words } else { Vec::new() },
            logprobs: decode::logprobs(&toks, &self.vocab),
        })
    }
}

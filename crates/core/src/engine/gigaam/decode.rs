//! Greedy RNN-T and CTC decoding, and tokens → text and words.

use std::sync::Arc;

use ort::session::Session;
use ort::value::Tensor;

use super::prediction::{History, Prediction, PredictionCache};

use crate::engine::{EngineError, TokenLogprob, Word};

/// Seconds per encoder frame (10 ms hop × subsampling 4).
pub const FRAME_S: f64 = 0.04;
const PRED_HIDDEN: usize = 320;

/// One emitted token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Token {
    pub id: usize,
    /// Encoder frame where it was emitted (CTC: first frame of its run).
    pub frame: usize,
    pub logprob: f32,
}

fn ort_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(e.to_string())
}

/// The vocabulary: SentencePiece pieces by id, `▁` marking word starts.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub pieces: Vec<String>,
    pub blank: usize,
}

impl Vocab {
    /// Parses `piece id` lines; the blank is `<blk>` (the last id).
    pub fn parse(text: &str) -> Result<Vocab, String> {
        let mut pieces: Vec<Option<String>> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (piece, id) = line
                .rsplit_once(' ')
                .ok_or_else(|| format!("line {}: expected 'piece id'", n + 1))?;
            let id: usize = id
                .trim()
                .parse()
                .map_err(|_| format!("line {}: bad id {id:?}", n + 1))?;
            if id >= pieces.len() {
                pieces.resize(id + 1, None);
            }
            pieces[id] = Some(piece.to_string());
        }
        let pieces: Vec<String> = pieces
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.ok_or_else(|| format!("id {i} is missing")))
            .collect::<Result<_, _>>()?;
        let blank = pieces
            .iter()
            .position(|p| p == "<blk>")
            .ok_or_else(|| "no <blk> entry".to_string())?;
        Ok(Vocab { pieces, blank })
    }
}

/// Greedy transducer decoding of one utterance.
///
/// `encoded` is frame-major `[frames][768]`. At most `max_per_frame`
/// symbols are emitted per frame; the prediction network runs only after an
/// emission, and its output is reused while the joint says blank (and for a
/// token history the `cache` has seen, not at all).
pub(super) fn rnnt_greedy(
    decoder: &mut Session,
    joint: &mut Session,
    cache: &PredictionCache,
    encoded: &[Vec<f32>],
    blank: usize,
    max_per_frame: usize,
) -> Result<Vec<Token>, EngineError> {
    let mut history = History::START;
    let mut tokens = Vec::new();
    // The prediction network's output for the history (whose last token,
    // blank at first, is its input), and the state it leads to.
    let mut pending: Option<Arc<Prediction>> = None;
    let mut state: Option<Arc<Prediction>> = None;
    for (t, frame) in encoded.iter().enumerate() {
        let mut emitted = 0;
        loop {
            let prediction = match &pending {
                Some(p) => p.clone(),
                None => {
                    let prev = tokens.last().map_or(blank, |tok: &Token| tok.id);
                    let p =
                        cache.get_or_run(history, || predict(decoder, prev, state.as_deref()))?;
                    pending = Some(p.clone());
                    p
                }
            };
            // [1,1,320] → [1,320,1] is the same memory for a single step.
            let enc =
                Tensor::from_array(([1usize, frame.len(), 1], frame.clone())).map_err(ort_err)?;
            let d = Tensor::from_array(([1usize, PRED_HIDDEN, 1], prediction.dec.clone()))
                .map_err(ort_err)?;
            let out = joint
                .run(ort::inputs!["enc" => enc, "dec" => d])
                .map_err(ort_err)?;
            let (_, logits) = out["joint"].try_extract_tensor::<f32>().map_err(ort_err)?;
            let (k, &lp) = argmax(logits);
            if k == blank {
                break;
            }
            tokens.push(Token {
                id: k,
                frame: t,
                logprob: lp,
            });
            history = history.then(k);
            state = pending.take();
            emitted += 1;
            if emitted >= max_per_frame {
                break;
            }
        }
    }
    Ok(tokens)
}

/// Runs the prediction network on `prev` from `state` (zeros at first).
fn predict(
    decoder: &mut Session,
    prev: usize,
    state: Option<&Prediction>,
) -> Result<Prediction, EngineError> {
    let zeros = || vec![0.0f32; PRED_HIDDEN];
    let (h, c) = state.map_or_else(|| (zeros(), zeros()), |s| (s.h.clone(), s.c.clone()));
    let x = Tensor::from_array(([1usize, 1], vec![prev as i64])).map_err(ort_err)?;
    let hs = Tensor::from_array(([1usize, 1, PRED_HIDDEN], h)).map_err(ort_err)?;
    let cs = Tensor::from_array(([1usize, 1, PRED_HIDDEN], c)).map_err(ort_err)?;
    let out = decoder
        .run(ort::inputs!["x" => x, "h.1" => hs, "c.1" => cs])
        .map_err(ort_err)?;
    let get = |name: &str| -> Result<Vec<f32>, EngineError> {
        let (_, v) = out[name].try_extract_tensor::<f32>().map_err(ort_err)?;
        Ok(v.to_vec())
    };
    Ok(Prediction {
        dec: get("dec")?,
        h: get("h")?,
        c: get("c")?,
    })
}

/// Greedy CTC: per-frame argmax, repeats collapsed, blanks dropped. A
/// token's log-probability is the sum over the frames of its run.
pub fn ctc_greedy(log_probs: &[f32], frames: usize, classes: usize, blank: usize) -> Vec<Token> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut prev = blank;
    for t in 0..frames {
        let row = &log_probs[t * classes..(t + 1) * classes];
        let (k, &lp) = argmax(row);
        if k != blank {
            if k == prev {
                if let Some(last) = tokens.last_mut() {
                    last.logprob += lp;
                }
            } else {
                tokens.push(Token {
                    id: k,
                    frame: t,
                    logprob: lp,
                });
            }
        }
        prev = k;
    }
    tokens
}

/// First index of the maximum, like numpy's argmax.
fn argmax(v: &[f32]) -> (usize, &f32) {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    (best, &v[best])
}

/// Text and words of a token sequence, `offset` seconds into the audio.
///
/// Pieces are joined with `▁` as a space; a space survives only before a
/// word character and never at the start (the reference's rule, so
/// punctuation attaches to the word before it). Words are the text split
/// at the surviving spaces, each timed by its tokens' frames and scored by
/// their mean probability.
pub fn assemble(tokens: &[Token], vocab: &Vocab, offset: f64) -> (String, Vec<Word>) {
    let kept = text_chars(tokens, vocab);
    let text: String = kept.iter().map(|&(c, _)| c).collect();
    let mut words = Vec::new();
    for group in kept.split(|&(c, _)| c == ' ') {
        if group.is_empty() {
            continue;
        }
        let word: String = group.iter().map(|&(c, _)| c).collect();
        let mut ids: Vec<usize> = group.iter().map(|&(_, i)| i).collect();
        ids.dedup();
        let first = tokens[ids[0]].frame;
        let last = tokens[*ids.last().expect("non-empty group")].frame;
        let probability =
            ids.iter().map(|&i| tokens[i].logprob.exp()).sum::<f32>() / ids.len() as f32;
        words.push(Word {
            speaker: None,
            word,
            start: offset + first as f64 * FRAME_S,
            end: offset + (last + 1) as f64 * FRAME_S,
            probability,
        });
    }
    (text, words)
}

/// Each token's share of the text [`assemble`] makes, with its
/// log-probability; tokens that add no text (special pieces) are left out.
pub fn logprobs(tokens: &[Token], vocab: &Vocab) -> Vec<TokenLogprob> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (c, i) in text_chars(tokens, vocab) {
        match out.last_mut() {
            Some((last, text)) if *last == i => text.push(c),
            _ => out.push((i, c.to_string())),
        }
    }
    out.into_iter()
        .map(|(i, token)| TokenLogprob {
            bytes: token.clone().into_bytes(),
            token,
            logprob: tokens[i].logprob,
        })
        .collect()
}

/// The text's characters, each with the index of the token it came from.
fn text_chars(tokens: &[Token], vocab: &Vocab) -> Vec<(char, usize)> {
    let mut chars: Vec<(char, usize)> = Vec::new();
    for (i, tok) in tokens.iter().enumerate() {
        let piece = vocab.pieces.get(tok.id).map(String::as_str).unwrap_or("");
        // Special pieces (`<unk>`) are not text anyone said.
        if piece.starts_with('<') && piece.ends_with('>') {
            continue;
        }
        for ch in piece.chars() {
            chars.push((if ch == '▁' { ' ' } else { ch }, i));
        }
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut kept: Vec<(char, usize)> = Vec::with_capacity(chars.len());
    for (k, &(ch, i)) in chars.iter().enumerate() {
        if ch.is_whitespace() {
            if k > 0 && chars.get(k + 1).is_some_and(|&(n, _)| is_word(n)) {
                kept.push((' ', i));
            }
        } else {
            kept.push((ch, i));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        Vocab::parse("<unk> 0\n▁ 1\n, 2\n▁при 3\nвет 4\n▁мир 5\n▁- 6\nа 7\n<blk> 8\n").unwrap()
    }

    fn toks(ids: &[usize]) -> Vec<Token> {
        ids.iter()
            .enumerate()
            .map(|(f, &id)| Token {
                id,
                frame: f,
                logprob: 0.0,
            })
            .collect()
    }

    #[test]
    fn text_rule_matches_the_reference() {
        let v = vocab();
        assert_eq!(v.blank, 8);
        let (text, words) = assemble(&toks(&[3, 4, 2, 5]), &v, 0.0);
        assert_eq!(text, "привет, мир");
        assert_eq!(
            words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>(),
            ["привет,", "мир"]
        );
        assert!((words[1].start - 0.12).abs() < 1e-9 && (words[1].end - 0.16).abs() < 1e-9);
        // A space before a non-word character disappears; so does the very
        // first character when it is a space (only that one, as the
        // reference's `\A\s` removes exactly one).
        let (text, _) = assemble(&toks(&[5, 6, 7]), &v, 1.0);
        assert_eq!(text, "мир-а");
        let (text, _) = assemble(&toks(&[1, 5, 6, 7]), &v, 1.0);
        assert_eq!(text, " мир-а");
        let (_, words) = assemble(&toks(&[1, 5, 6, 7]), &v, 1.0);
        assert_eq!(words.len(), 1);
        assert_eq!(words[0].word, "мир-а");
        assert!((words[0].start - 1.04).abs() < 1e-9);
        // `<unk>` never reaches the text.
        let (text, words) = assemble(&toks(&[0, 3, 0, 4, 0]), &v, 0.0);
        assert_eq!(text, "привет");
        assert_eq!(words.len(), 1);
    }

    #[test]
    fn ctc_collapses_runs_and_sums_logprobs() {
        // classes 3, blank 2: frames argmax 0,0,2,0,1,1
        let lp = [
            -0.1, -3.0, -3.0, -0.2, -3.0, -3.0, -3.0, -3.0, -0.1, -0.3, -3.0, -3.0, -3.0, -0.4,
            -3.0, -3.0, -0.5, -3.0,
        ];
        let t = ctc_greedy(&lp, 6, 3, 2);
        assert_eq!(
            t.iter().map(|t| (t.id, t.frame)).collect::<Vec<_>>(),
            [(0, 0), (0, 3), (1, 4)]
        );
        assert!((t[0].logprob + 0.3).abs() < 1e-6 && (t[2].logprob + 0.9).abs() < 1e-6);
    }
}

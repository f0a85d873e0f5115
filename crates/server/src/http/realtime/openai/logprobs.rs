//! Logprobs for Realtime transcription deltas.

use serde_json::json;

/// Logprobs of a delta, one per word (a delta is whole words, cut from a
/// hypothesis whose tokens are not kept): each piece of `text` from a
/// word's leading space to its end, with the log of the word's
/// probability, so the tokens join to exactly `text`. None when the words
/// do not line up with the text.
pub fn word_logprobs(text: &str, words: &[glagol_core::engine::Word]) -> Option<serde_json::Value> {
    let mut pieces = Vec::new();
    let (mut start, mut word_end) = (0, None::<usize>);
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        // Whitespace since the last word's end: a new word (and piece) starts.
        if let Some(end) = word_end.filter(|&end| end < i) {
            pieces.push(&text[start..end]);
            start = end;
        }
        word_end = Some(i + c.len_utf8());
    }
    if word_end.is_some() {
        pieces.push(&text[start..]);
    }
    (pieces.len() == words.len() && !text.trim().is_empty()).then(|| {
        pieces
            .iter()
            .zip(words)
            .map(|(token, w)| {
                json!({
                    "token": token,
                    "bytes": token.as_bytes(),
                    "logprob": (w.probability.clamp(1e-6, 1.0) as f64).ln(),
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use glagol_core::engine::Word;

    fn word(text: &str, p: f32) -> Word {
        Word {
            word: text.into(),
            start: 0.0,
            end: 0.0,
            probability: p,
            speaker: None,
        }
    }

    #[test]
    fn delta_logprobs_join_to_the_delta() {
        let words = [word("ask", 0.9), word("not", 0.5)];
        let l = super::word_logprobs(" ask  not", &words).unwrap();
        let tokens: Vec<&str> = l
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["token"].as_str().unwrap())
            .collect();
        assert_eq!(tokens, [" ask", "  not"]);
        assert!((l[1]["logprob"].as_f64().unwrap() - 0.5f64.ln()).abs() < 1e-6);
        assert!(super::word_logprobs("one two", &words[..1]).is_none());
        assert!(super::word_logprobs("   ", &[]).is_none());
    }
}

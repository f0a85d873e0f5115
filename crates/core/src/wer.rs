//! Word error rate, with the normalisation glagol's benchmarks use:
//! lowercase, punctuation removed, `ё`→`е`, whitespace collapsed.

/// Normalises text for WER.
pub fn normalize(text: &str) -> String {
    let lowered = text.to_lowercase().replace('ё', "е");
    let cleaned: String = lowered
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Word-level edit distance between normalised texts, and the reference length.
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r: Vec<String> = normalize(reference)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let h: Vec<String> = normalize(hypothesis)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

/// WER of one pair (errors / reference words).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = word_errors(reference, hypothesis);
    e as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_distance() {
        assert_eq!(normalize("Ёлка, ЗЕЛЁНАЯ!  ok"), "елка зеленая ok");
        assert_eq!(word_errors("a b c d", "a x c"), (2, 4));
        assert_eq!(wer("Hello, world.", "hello world"), 0.0);
        assert_eq!(wer("one two", ""), 1.0);
    }
}

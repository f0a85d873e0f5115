//! Diarization error rate against a reference, and RTTM files.
//!
//! DER is scored NIST-style on a 1 ms grid with overlap counted: miss and
//! false alarm are the differences in the number of speakers at each
//! instant, confusion what is left of the smaller count after the best
//! one-to-one mapping of reference to hypothesis speakers. A collar
//! removes that many seconds on each side of every reference boundary.

use std::collections::HashMap;

/// One speaker turn by name, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledTurn {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
}

/// The `SPEAKER` lines of an RTTM file.
pub fn parse_rttm(text: &str) -> Result<Vec<LabelledTurn>, String> {
    let mut turns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"SPEAKER") {
            continue;
        }
        let number = |k: usize| {
            fields
                .get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("RTTM line {}: field {} is not a number", i + 1, k + 1))
        };
        let (start, duration) = (number(3)?, number(4)?);
        let speaker = fields
            .get(7)
            .ok_or_else(|| format!("RTTM line {}: no speaker name", i + 1))?;
        turns.push(LabelledTurn {
            start,
            end: start + duration,
            speaker: speaker.to_string(),
        });
    }
    Ok(turns)
}

/// Turns as RTTM lines for recording `uri`.
pub fn write_rttm(uri: &str, turns: &[LabelledTurn]) -> String {
    turns
        .iter()
        .map(|t| {
            format!(
                "SPEAKER {uri} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>\n",
                t.start,
                t.end - t.start,
                t.speaker
            )
        })
        .collect()
}

/// DER and its parts, as fractions of the scored reference speech.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Der {
    pub der: f64,
    pub miss: f64,
    pub false_alarm: f64,
    pub confusion: f64,
    /// Seconds of reference speech scored (overlap counted per speaker).
    pub scored_seconds: f64,
}

fn grid(turns: &[LabelledTurn], n: usize) -> (Vec<Vec<bool>>, Vec<String>) {
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for t in turns {
        if !index.contains_key(t.speaker.as_str()) {
            index.insert(&t.speaker, names.len());
            names.push(t.speaker.clone());
        }
    }
    let mut on = vec![vec![false; n]; names.len()];
    for t in turns {
        let (a, b) = (ms(t.start).min(n), ms(t.end).min(n));
        on[index[t.speaker.as_str()]][a..b.max(a)].fill(true);
    }
    (on, names)
}

fn ms(seconds: f64) -> usize {
    (seconds.max(0.0) * 1000.0).round() as usize
}

/// Largest total weight of a one-to-one mapping (rows to columns).
fn best_mapping(weight: &[Vec<u64>]) -> u64 {
    fn go(r: usize, used: u64, w: &[Vec<u64>], memo: &mut HashMap<(usize, u64), u64>) -> u64 {
        if r == w.len() {
            return 0;
        }
        if let Some(&v) = memo.get(&(r, used)) {
            return v;
        }
        let mut best = go(r + 1, used, w, memo);
        for (c, &x) in w[r].iter().enumerate() {
            if c < 64 && used & (1 << c) == 0 {
                best = best.max(x + go(r + 1, used | (1 << c), w, memo));
            }
        }
        memo.insert((r, used), best);
        best
    }
    go(0, 0, weight, &mut HashMap::new())
}

/// The DER of `hypothesis` against `reference` over `[0, duration]`.
pub fn der(
    reference: &[LabelledTurn],
    hypothesis: &[LabelledTurn],
    duration: f64,
    collar: f64,
) -> Der {
    let n = ms(duration);
    let (r, _) = grid(reference, n);
    let (h, _) = grid(hypothesis, n);
    let mut keep = vec![true; n];
    if collar > 0.0 {
        for t in reference {
            for edge in [t.start, t.end] {
                let (a, b) = (ms(edge - collar).min(n), ms(edge + collar).min(n));
                keep[a..b.max(a)].fill(false);
            }
        }
    }
    let mut co = vec![vec![0u64; h.len()]; r.len()];
    let (mut total, mut miss, mut fa, mut both) = (0u64, 0u64, 0u64, 0u64);
    for i in (0..n).filter(|&i| keep[i]) {
        let nr = r.iter().filter(|s| s[i]).count() as u64;
        let nh = h.iter().filter(|s| s[i]).count() as u64;
        total += nr;
        miss += nr.saturating_sub(nh);
        fa += nh.saturating_sub(nr);
        both += nr.min(nh);
        for (ri, _) in r.iter().enumerate().filter(|(_, s)| s[i]) {
            for (hi, _) in h.iter().enumerate().filter(|(_, s)| s[i]) {
                co[ri][hi] += 1;
            }
        }
    }
    let correct = best_mapping(&co);
    let confusion = both - correct;
    let part = |x: u64| {
        if total == 0 {
            0.0
        } else {
            x as f64 / total as f64
        }
    };
    Der {
        der: part(miss + fa + confusion),
        miss: part(miss),
        false_alarm: part(fa),
        confusion: part(confusion),
        scored_seconds: total as f64 / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: f64, end: f64, speaker: &str) -> LabelledTurn {
        LabelledTurn {
            start,
            end,
            speaker: speaker.into(),
        }
    }

    #[test]
    fn der_counts_miss_false_alarm_and_confusion_under_the_best_mapping() {
        let reference = [t(0.0, 4.0, "x"), t(4.0, 8.0, "y")];
        // Perfect up to names.
        let same = [t(0.0, 4.0, "B"), t(4.0, 8.0, "A")];
        assert_eq!(der(&reference, &same, 10.0, 0.0).der, 0.0);
        // 1 s missed, 1 s extra, 1 s given to the wrong speaker.
        let hyp = [
            t(0.0, 3.0, "A"),
            t(4.0, 7.0, "B"),
            t(7.0, 8.0, "A"),
            t(8.0, 9.0, "B"),
        ];
        let d = der(&reference, &hyp, 10.0, 0.0);
        assert!((d.miss - 1.0 / 8.0).abs() < 1e-9, "{d:?}");
        assert!((d.false_alarm - 1.0 / 8.0).abs() < 1e-9);
        assert!((d.confusion - 1.0 / 8.0).abs() < 1e-9);
        // A collar of 0.5 s hides errors at the boundaries 4 and 8, not the one at 3.
        let shifted = [t(0.0, 4.3, "A"), t(4.3, 8.0, "B")];
        assert_eq!(der(&reference, &shifted, 10.0, 0.5).der, 0.0);
    }

    #[test]
    fn rttm_round_trips() {
        let turns = vec![t(6.69, 7.12, "speaker90"), t(7.5, 8.25, "speaker91")];
        let text = write_rttm("sample", &turns);
        let back = parse_rttm(&text).unwrap();
        assert_eq!(back.len(), 2);
        assert!((back[1].end - 8.25).abs() < 1e-9 && back[1].speaker == "speaker91");
        assert!(parse_rttm("SPEAKER x 1 a 1 <NA> <NA> s").is_err());
    }
}

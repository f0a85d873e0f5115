//! Speakers onto a transcript: each word takes the turn holding its
//! middle (the one it overlaps most where turns overlap, the nearest where
//! none holds it), and a segment is split wherever its words change
//! speaker. Speakers are named `A`, `B`, … in the order they first speak,
//! as OpenAI's `diarized_json` names them.

use super::{Diarization, Turn};
use crate::engine::{Segment, Transcript, Word};

/// The label of speaker `i`: `A`…`Z`, then `AA`, `AB`, …
pub fn label(i: usize) -> String {
    let mut n = i;
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

/// The speaker of the span `[start, end]`, if any turn exists.
pub fn speaker_of(turns: &[Turn], start: f64, end: f64) -> Option<usize> {
    let middle = (start + end) / 2.0;
    let overlap = |t: &Turn| (t.end.min(end) - t.start.max(start)).max(0.0);
    let holding = turns
        .iter()
        .filter(|t| t.start <= middle && middle < t.end)
        .max_by(|a, b| overlap(a).total_cmp(&overlap(b)));
    if let Some(t) = holding {
        return Some(t.speaker);
    }
    let distance = |t: &Turn| (t.start - middle).abs().min((t.end - middle).abs());
    turns
        .iter()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .map(|t| t.speaker)
}

/// Gives every segment and word of `transcript` its speaker's label
/// (`labels[speaker]`, else the speaker's letter), splitting segments
/// where the speaker changes between words.
pub fn apply(transcript: &mut Transcript, diarization: &Diarization, labels: &[String]) {
    let turns = &diarization.turns;
    let label = |s: usize| labels.get(s).cloned().unwrap_or_else(|| label(s));
    let mut segments = Vec::with_capacity(transcript.segments.len());
    for mut segment in std::mem::take(&mut transcript.segments) {
        for w in &mut segment.words {
            w.speaker = speaker_of(turns, w.start, w.end).map(label);
        }
        if segment.words.is_empty() {
            segment.speaker = speaker_of(turns, segment.start, segment.end).map(label);
            segments.push(segment);
            continue;
        }
        segments.extend(split_by_speaker(segment));
    }
    transcript.segments = segments;
    transcript.normalize_times();
    transcript.rebuild_text();
}

/// One segment per run of words of one speaker.
fn split_by_speaker(segment: Segment) -> Vec<Segment> {
    let mut runs: Vec<Vec<Word>> = Vec::new();
    for w in segment.words.iter().cloned() {
        match runs.last_mut() {
            Some(run) if run[0].speaker == w.speaker => run.push(w),
            _ => runs.push(vec![w]),
        }
    }
    if runs.len() == 1 {
        let mut whole = segment;
        whole.speaker = whole.words[0].speaker.clone();
        return vec![whole];
    }
    let last = runs.len() - 1;
    runs.into_iter()
        .enumerate()
        .map(|(i, words)| {
            let start = if i == 0 {
                segment.start
            } else {
                words[0].start
            };
            let end = if i == last {
                segment.end
            } else {
                words.last().expect("a run has words").end
            };
            // Tokens go with the part their time falls in, where known.
            let in_part = |t: f64| (i == 0 || t >= start) && (i == last || t < end);
            let tokens = if segment.token_times.len() == segment.tokens.len() {
                segment
                    .tokens
                    .iter()
                    .zip(&segment.token_times)
                    .filter(|(_, &t)| in_part(t))
                    .map(|(&tok, _)| tok)
                    .collect()
            } else if i == 0 {
                segment.tokens.clone()
            } else {
                Vec::new()
            };
            Segment {
                text: words
                    .iter()
                    .map(|w| w.word.trim())
                    .collect::<Vec<_>>()
                    .join(" "),
                start,
                end,
                tokens,
                token_times: Vec::new(),
                logprobs: Vec::new(),
                speaker: words[0].speaker.clone(),
                words,
                ..segment.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Task;

    fn turn(start: f64, end: f64, speaker: usize) -> Turn {
        Turn {
            start,
            end,
            speaker,
        }
    }

    fn word(w: &str, start: f64, end: f64) -> Word {
        Word {
            word: w.into(),
            start,
            end,
            probability: 0.9,
            speaker: None,
        }
    }

    #[test]
    fn labels_count_like_spreadsheet_columns() {
        assert_eq!(label(0), "A");
        assert_eq!(label(25), "Z");
        assert_eq!(label(26), "AA");
        assert_eq!(label(27), "AB");
    }

    #[test]
    fn a_word_takes_the_turn_holding_its_middle() {
        let turns = [turn(0.0, 2.0, 0), turn(1.5, 4.0, 1), turn(6.0, 7.0, 0)];
        assert_eq!(speaker_of(&turns, 0.2, 0.8), Some(0));
        // Middle 1.8 in both turns: more of the word is in B's.
        assert_eq!(speaker_of(&turns, 1.6, 2.0), Some(1));
        // In no turn: the nearest.
        assert_eq!(speaker_of(&turns, 5.0, 5.4), Some(0));
        assert_eq!(speaker_of(&[], 0.0, 1.0), None);
    }

    #[test]
    fn a_segment_is_split_where_the_speaker_changes() {
        let mut t = Transcript::empty(4.0, Task::Transcribe, None);
        t.segments.push(Segment {
            id: 0,
            seek: 0,
            start: 0.0,
            end: 3.5,
            text: " Hello there. Hi!".into(),
            tokens: vec![1, 2, 3],
            token_times: vec![0.1, 0.8, 2.2],
            temperature: 0.0,
            avg_logprob: -0.1,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words: vec![
                word(" Hello", 0.1, 0.6),
                word(" there.", 0.7, 1.2),
                word(" Hi!", 2.2, 2.6),
            ],
            logprobs: Vec::new(),
            speaker: None,
        });
        let d = Diarization {
            turns: vec![turn(0.0, 1.5, 0), turn(2.0, 3.0, 1)],
            ..Default::default()
        };
        apply(&mut t, &d, &["A".into()]);
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.segments[0].text, "Hello there.");
        assert_eq!(t.segments[0].speaker.as_deref(), Some("A"));
        assert_eq!(t.segments[0].tokens, vec![1, 2]);
        assert_eq!(
            (t.segments[1].id, t.segments[1].start, t.segments[1].end),
            (1, 2.2, 3.5)
        );
        assert_eq!(t.segments[1].speaker.as_deref(), Some("B"));
        assert_eq!(t.segments[1].words[0].speaker.as_deref(), Some("B"));
        assert_eq!(t.text, "Hello there. Hi!");
    }
}

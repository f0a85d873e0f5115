//! Cutting long audio into pieces an engine handles well, at pauses the
//! VAD found: encoder-sized chunks of speech (GigaAM), or contiguous
//! windows cut in the quietest place near their end (Whisper on long files).

use crate::audio::SAMPLE_RATE;
use crate::vad::SpeechSegment;

/// Overlap between consecutive windows over speech that has no pause.
const OVERLAP_S: f64 = 2.0;
/// GigaAM's pauses: speech separated by a pause of 1 s or more starts a
/// new chunk even when both would fit in one, and pauses are recognised
/// whole. (Whisper packs more: it gains from the context.)
pub const GIGAAM_PAUSES: Pauses = Pauses {
    split_s: 1.0,
    counted_s: f64::INFINITY,
};

/// A span of samples to recognise, and the part of the timeline (seconds)
/// whose tokens it contributes: everything, except where windows overlap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub keep_from: f64,
    pub keep_to: f64,
}

/// How chunking treats the pauses between stretches of speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pauses {
    /// A pause at least this long always ends a chunk, a long pause being
    /// a natural boundary.
    pub split_s: f64,
    /// How much of a shorter pause counts toward the chunk's length: the
    /// engine cuts the rest out before recognition (`f64::INFINITY`: it
    /// keeps whole pauses).
    pub counted_s: f64,
}

/// Groups speech segments into chunks of at most `max` samples, cutting
/// only at pauses (always at pauses of `pauses.split_s` or more); a
/// segment longer than `max` is covered by overlapping windows whose
/// overlaps are split at their midpoint.
pub fn plan(speech: &[SpeechSegment], len: usize, max: usize, pauses: Pauses) -> Vec<Chunk> {
    let in_samples = |s: f64| (s * SAMPLE_RATE as f64).min(usize::MAX as f64) as usize;
    let (split_pause, counted_pause) = (in_samples(pauses.split_s), in_samples(pauses.counted_s));
    let whole = |start: usize, end: usize| Chunk {
        start,
        end,
        keep_from: 0.0,
        keep_to: f64::INFINITY,
    };
    let mut chunks = Vec::new();
    // The open chunk's start and end, and its length with pauses as counted.
    let mut current: Option<(usize, usize, usize)> = None;
    for seg in speech {
        let (s, e) = (seg.start.min(len), seg.end.min(len));
        if e <= s {
            continue;
        }
        let joined = current.and_then(|(cs, ce, length)| {
            let pause = s.saturating_sub(ce);
            let length = length + pause.min(counted_pause) + (e - s);
            (length <= max && pause < split_pause).then_some((cs, e, length))
        });
        if joined.is_some() {
            current = joined;
            continue;
        }
        if let Some((cs, ce, _)) = current.take() {
            chunks.push(whole(cs, ce));
        }
        if e - s <= max {
            current = Some((s, e, e - s));
        } else {
            chunks.extend(windows(s, e, max));
        }
    }
    if let Some((cs, ce, _)) = current {
        chunks.push(whole(cs, ce));
    }
    chunks
}

/// Cuts `[0, len)` into contiguous pieces of at most `max` samples, each cut
/// in the middle of the longest pause among the last `search` samples of
/// the piece (hard at `max` where that stretch has no pause). Nothing is
/// dropped: the pieces cover the whole audio.
pub fn contiguous(
    speech: &[SpeechSegment],
    len: usize,
    max: usize,
    search: usize,
) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while len - start > max {
        let (lo, hi) = (start + max - search.min(max), start + max);
        // Pauses are the gaps between speech segments (and before the first).
        let mut best: Option<(usize, usize)> = None;
        let mut prev_end = 0;
        for s in speech.iter().chain(std::iter::once(&SpeechSegment {
            start: len,
            end: len,
        })) {
            let (a, b) = (prev_end.max(lo), s.start.min(hi));
            if b > a && best.is_none_or(|(x, y)| b - a > y - x) {
                best = Some((a, b));
            }
            prev_end = prev_end.max(s.end);
            if s.start >= hi {
                break;
            }
        }
        let cut = best.map_or(hi, |(a, b)| (a + b) / 2).max(start + 1);
        pieces.push((start, cut));
        start = cut;
    }
    pieces.push((start, len));
    pieces
}

fn windows(start: usize, end: usize, max: usize) -> Vec<Chunk> {
    let overlap = (OVERLAP_S * SAMPLE_RATE as f64) as usize;
    let step = max - overlap;
    let sr = SAMPLE_RATE as f64;
    let mut out = Vec::new();
    let mut s = start;
    loop {
        let e = (s + max).min(end);
        out.push(Chunk {
            start: s,
            end: e,
            keep_from: 0.0,
            keep_to: f64::INFINITY,
        });
        if e == end {
            break;
        }
        s += step;
    }
    for i in 1..out.len() {
        // The middle of the overlap between window i-1 and window i.
        let cut = (out[i].start + out[i - 1].end) as f64 / 2.0 / sr;
        out[i - 1].keep_to = cut;
        out[i].keep_from = cut;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: usize = SAMPLE_RATE as usize;

    fn seg(a: f64, b: f64) -> SpeechSegment {
        SpeechSegment {
            start: (a * SR as f64) as usize,
            end: (b * SR as f64) as usize,
        }
    }

    #[test]
    fn groups_at_pauses_within_the_limit() {
        let speech = [
            seg(0.5, 5.0),
            seg(5.5, 15.0),
            seg(15.5, 24.0),
            seg(24.5, 30.0),
            seg(32.0, 33.0),
        ];
        let c = plan(&speech, 34 * SR, 20 * SR, GIGAAM_PAUSES);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].start, c[0].end), (SR / 2, 15 * SR));
        assert_eq!((c[1].start, c[1].end), (31 * SR / 2, 30 * SR));
        // A 2 s pause always splits.
        assert_eq!((c[2].start, c[2].end), (32 * SR, 33 * SR));
        assert!(c.iter().all(|c| c.end - c.start <= 20 * SR));
        // With a longer split pause, the 2 s pause packs like the others.
        let longer = Pauses {
            split_s: 3.0,
            ..GIGAAM_PAUSES
        };
        let c = plan(&speech, 34 * SR, 20 * SR, longer);
        assert_eq!(c.len(), 2);
        assert_eq!((c[1].start, c[1].end), (31 * SR / 2, 33 * SR));
        // 18 s of speech and two 2 s pauses: too long for one chunk of
        // 20 s, unless at most 0.1 s of each pause counts.
        let sparse = [seg(0.0, 8.0), seg(10.0, 18.0), seg(20.0, 22.0)];
        assert_eq!(plan(&sparse, 22 * SR, 20 * SR, longer).len(), 2);
        let counted = Pauses {
            counted_s: 0.1,
            ..longer
        };
        let c = plan(&sparse, 22 * SR, 20 * SR, counted);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].start, c[0].end), (0, 22 * SR));
    }

    #[test]
    fn contiguous_pieces_cut_in_the_longest_late_pause() {
        let speech = [
            seg(0.0, 50.0),
            seg(52.0, 57.0),
            seg(57.5, 95.0),
            seg(95.2, 130.0),
        ];
        let p = contiguous(&speech, 130 * SR, 60 * SR, 20 * SR);
        // Cut in the 2 s pause at 50–52 s, then hard (no pause in 91–111 s
        // longer than 0.2 s: the 0.2 s one at 95 s), then the rest.
        assert_eq!(p[0], (0, 51 * SR));
        assert_eq!(p[1].0, 51 * SR);
        assert_eq!(p[1].1, (95.1 * SR as f64) as usize);
        assert_eq!(p.last().unwrap().1, 130 * SR);
        assert!(p.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(p.iter().all(|(a, b)| b - a <= 60 * SR));
        assert_eq!(contiguous(&[], 10 * SR, 60 * SR, 20 * SR), [(0, 10 * SR)]);
        let hard = contiguous(&[seg(0.0, 200.0)], 200 * SR, 60 * SR, 20 * SR);
        assert_eq!(hard[0], (0, 60 * SR));
    }

    #[test]
    fn long_speech_without_pauses_gets_overlapping_windows() {
        let c = plan(&[seg(1.0, 50.0)], 51 * SR, 20 * SR, GIGAAM_PAUSES);
        assert!(c.len() >= 3);
        assert_eq!(c[0].start, SR);
        assert_eq!(c.last().unwrap().end, 50 * SR);
        for w in c.windows(2) {
            assert!(w[1].start < w[0].end, "windows overlap");
            assert_eq!(w[0].keep_to, w[1].keep_from);
            assert!(
                w[1].keep_from > w[1].start as f64 / SR as f64
                    && w[1].keep_from < w[0].end as f64 / SR as f64
            );
        }
    }
}

//! Sample-rate conversion with rubato's synchronous FFT resampler, as a
//! stream: decoded packets go in as they come and 16 kHz samples come out,
//! so a long file never exists at its source rate in memory.

use audioadapter_buffers::direct::{InterleavedSlice, InterleavedSlice as OutSlice};
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// Input frames per FFT chunk.
const CHUNK: usize = 1024;

/// Converts a mono stream from one rate to another, keeping samples in
/// `[-1, 1]`. The output has
/// `ceil(len × to / from)` samples in all, with the resampler's start-up
/// delay trimmed so that output sample `n` lines up with input time `n / to`.
pub struct StreamResampler {
    /// None when the rates are equal.
    fft: Option<Fft<f32>>,
    ratio: f64,
    /// Input not yet resampled (less than one chunk after each push).
    pending: Vec<f32>,
    scratch: Vec<f32>,
    /// Output frames still to drop (the start-up delay).
    to_trim: usize,
    input_total: u64,
    output_total: u64,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> StreamResampler {
        let fft = (from != to).then(|| {
            match Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Input) {
                Ok(r) => r,
                Err(e) => unreachable!("rubato rejected positive rates {from} -> {to}: {e}"),
            }
        });
        let to_trim = fft.as_ref().map_or(0, |f| f.output_delay());
        let scratch = vec![0.0; fft.as_ref().map_or(0, |f| f.output_frames_max())];
        StreamResampler {
            fft,
            ratio: to as f64 / from as f64,
            pending: Vec::new(),
            scratch,
            to_trim,
            input_total: 0,
            output_total: 0,
        }
    }

    /// Resamples `input`, appending what is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.input_total += input.len() as u64;
        let Some(fft) = self.fft.as_mut() else {
            out.extend_from_slice(input);
            self.output_total += input.len() as u64;
            return;
        };
        self.pending.extend_from_slice(input);
        let mut used = 0;
        while self.pending.len() - used >= fft.input_frames_next() {
            let need = fft.input_frames_next();
            let chunk = &self.pending[used..used + need];
            used += need;
            Self::run(
                fft,
                &mut self.scratch,
                chunk,
                None,
                &mut self.to_trim,
                &mut self.output_total,
                out,
            );
        }
        self.pending.drain(..used);
    }

    /// Flushes the tail: the last partial chunk and the delay line, up to
    /// exactly the expected number of output samples.
    pub fn finish(mut self, out: &mut Vec<f32>) {
        let expected = (self.ratio * self.input_total as f64).ceil() as u64;
        let Some(fft) = self.fft.as_mut() else {
            return;
        };
        let start = out.len() as u64 - self.output_total.min(out.len() as u64);
        let pending = std::mem::take(&mut self.pending);
        let mut partial = Some(pending.len());
        while self.output_total < expected {
            let mut chunk = vec![0.0; fft.input_frames_next()];
            let n = partial.take().unwrap_or(0);
            chunk[..n].copy_from_slice(&pending[..n]);
            Self::run(
                fft,
                &mut self.scratch,
                &chunk,
                Some(n),
                &mut self.to_trim,
                &mut self.output_total,
                out,
            );
        }
        out.truncate((start + expected) as usize);
    }

    fn run(
        fft: &mut Fft<f32>,
        scratch: &mut [f32],
        chunk: &[f32],
        partial: Option<usize>,
        to_trim: &mut usize,
        output_total: &mut u64,
        out: &mut Vec<f32>,
    ) {
        let input =
            InterleavedSlice::new(chunk, 1, chunk.len()).expect("a mono slice matches its length");
        let frames = scratch.len();
        let mut output =
            OutSlice::new_mut(scratch, 1, frames).expect("a mono slice matches its length");
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: partial,
            active_channels_mask: None,
        };
        let (_, produced) = match fft.process_into_buffer(&input, &mut output, Some(&indexing)) {
            Ok(r) => r,
            Err(e) => unreachable!("rubato failed on a well-formed buffer: {e}"),
        };
        let skip = (*to_trim).min(produced);
        *to_trim -= skip;
        // A full-scale input rings a little past full scale when filtered;
        // engines are promised samples in [-1, 1].
        out.extend(scratch[skip..produced].iter().map(|x| x.clamp(-1.0, 1.0)));
        *output_total += (produced - skip) as u64;
    }
}

/// Converts mono `samples` from `from` Hz to `to` Hz (see [`StreamResampler`]).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if samples.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity((samples.len() as f64 * to as f64 / from as f64) as usize + 1);
    let mut r = StreamResampler::new(from, to);
    r.push(samples, &mut out);
    r.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_the_ratio() {
        for (from, len) in [
            (44_100u32, 44_100usize),
            (8_000, 12_345),
            (48_000, 777),
            (22_050, 100_001),
        ] {
            let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.01).sin()).collect();
            let y = resample(&x, from, 16_000);
            let expect = len as f64 * 16_000.0 / from as f64;
            assert!(
                (y.len() as f64 - expect).abs() <= 1.0,
                "{from}: {} vs {expect}",
                y.len()
            );
        }
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_tail() {
        // 440 Hz at 44.1 kHz → 16 kHz: compare with the ideal tone, tail included.
        let from = 44_100;
        let x: Vec<f32> = (0..from)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / from as f32).sin() * 0.5)
            .collect();
        let y = resample(&x, from as u32, 16_000);
        let err: f32 = y[100..y.len() - 100]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = (i + 100) as f32 / 16_000.0;
                (v - (t * 440.0 * std::f32::consts::TAU).sin() * 0.5).abs()
            })
            .fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
        let tail = &y[y.len() - 50..];
        assert!(tail.iter().any(|v| v.abs() > 0.3), "tail lost");
    }

    #[test]
    fn pieces_of_any_size_give_the_same_samples_as_the_whole() {
        let x: Vec<f32> = (0..50_000)
            .map(|i| (i as f32 * 0.013).sin() * 0.4)
            .collect();
        let whole = resample(&x, 48_000, 16_000);
        let mut out = Vec::new();
        let mut r = StreamResampler::new(48_000, 16_000);
        for piece in x.chunks(1153) {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        assert_eq!(out, whole);
    }
}

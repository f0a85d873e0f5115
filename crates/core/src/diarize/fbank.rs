//! Kaldi log-mel filterbank, as the speaker-embedding models were trained
//! on: `torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0)` with
//! every other option at its default.
//!
//! 25 ms frames every 10 ms with `snip_edges` (`1 + (n − 400) / 160`
//! frames); per frame the DC offset removed, pre-emphasis 0.97 (the first
//! sample is its own predecessor), the Povey window, zero-padding to 512,
//! the power spectrum, 80 triangular filters evenly spaced on Kaldi's mel
//! scale from 20 Hz to Nyquist (the Nyquist bin unused), then
//! `ln(max(x, f32::EPSILON))`. Computed in f64 like the reference, so the
//! only difference left is rounding.

use std::sync::{Arc, OnceLock};

use realfft::{RealFftPlanner, RealToComplex};

pub const N_MELS: usize = 80;
const FRAME: usize = 400;
const SHIFT: usize = 160;
const N_FFT: usize = 512;
const LOW_HZ: f64 = 20.0;
const PREEMPHASIS: f64 = 0.97;
const SAMPLE_RATE: f64 = 16_000.0;

fn mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// One filter: its first FFT bin and its weights from there.
struct Filter {
    first: usize,
    weights: Vec<f64>,
}

struct Tables {
    window: Vec<f64>,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f64>>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let window = (0..FRAME)
            .map(|i| {
                let hann =
                    0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (FRAME - 1) as f64).cos();
                hann.powf(0.85)
            })
            .collect();
        let (lo, hi) = (mel(LOW_HZ), mel(SAMPLE_RATE / 2.0));
        let delta = (hi - lo) / (N_MELS + 1) as f64;
        let bin_hz = SAMPLE_RATE / N_FFT as f64;
        let filters = (0..N_MELS)
            .map(|b| {
                let (left, centre, right) = (
                    lo + b as f64 * delta,
                    lo + (b + 1) as f64 * delta,
                    lo + (b + 2) as f64 * delta,
                );
                let weight = |k: usize| {
                    let m = mel(bin_hz * k as f64);
                    ((m - left) / (centre - left))
                        .min((right - m) / (right - centre))
                        .max(0.0)
                };
                let bins: Vec<usize> = (0..N_FFT / 2).filter(|&k| weight(k) > 0.0).collect();
                let first = bins.first().copied().unwrap_or(0);
                let last = bins.last().copied().unwrap_or(0);
                Filter {
                    first,
                    weights: (first..=last).map(weight).collect(),
                }
            })
            .collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        Tables {
            window,
            filters,
            fft,
        }
    })
}

/// Frames the samples (16 kHz, in [-1, 1]) make.
pub fn frames(samples: usize) -> usize {
    if samples < FRAME {
        0
    } else {
        1 + (samples - FRAME) / SHIFT
    }
}

/// Log-mel features, `[frames, 80]` row-major, before mean removal.
pub fn fbank(samples: &[f32]) -> Vec<f32> {
    let t = tables();
    let n = frames(samples.len());
    let mut out = Vec::with_capacity(n * N_MELS);
    let mut input = t.fft.make_input_vec();
    let mut spectrum = t.fft.make_output_vec();
    let mut scratch = t.fft.make_scratch_vec();
    let mut power = vec![0.0f64; N_FFT / 2 + 1];
    for f in 0..n {
        let frame = &samples[f * SHIFT..f * SHIFT + FRAME];
        let mean = frame.iter().map(|&x| x as f64).sum::<f64>() / FRAME as f64;
        let mut prev = frame[0] as f64 - mean;
        for (i, &x) in frame.iter().enumerate() {
            let x = x as f64 - mean;
            input[i] = (x - PREEMPHASIS * prev) * t.window[i];
            prev = x;
        }
        input[FRAME..].fill(0.0);
        t.fft
            .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .expect("buffers come from the plan");
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = c.norm_sqr();
        }
        for filter in &t.filters {
            let energy: f64 = filter
                .weights
                .iter()
                .zip(&power[filter.first..])
                .map(|(w, p)| w * p)
                .sum();
            out.push(energy.max(f32::EPSILON as f64).ln() as f32);
        }
    }
    out
}

/// Subtracts each coefficient's mean over the rows (CMN), in place.
pub fn subtract_mean(features: &mut [f32]) {
    let rows = features.len() / N_MELS;
    if rows == 0 {
        return;
    }
    let mut mean = [0.0f64; N_MELS];
    for row in features.chunks_exact(N_MELS) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    for row in features.chunks_exact_mut(N_MELS) {
        for (x, m) in row.iter_mut().zip(&mean) {
            *x -= (*m / rows as f64) as f32;
        }
    }
}

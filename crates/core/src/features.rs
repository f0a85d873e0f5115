//! GigaAM v3 log-mel features, bit-compatible with the reference.
//!
//! 16 kHz input, frames of 320 samples every 160 (no centre padding, so
//! `frames = (len − 320) / 160 + 1`), a periodic Hann window and a 64-band
//! HTK mel filterbank on 0–8000 Hz (no normalisation), both rounded to
//! bfloat16 exactly as the PyTorch reference stores them, the power
//! spectrum |rfft|², then `ln(clamp(x, 1e-9, 1e9))`. The filterbank is kept
//! sparse (each triangle touches a handful of bins) and every buffer is
//! reused across frames and calls.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const N_FFT: usize = 320;
pub const HOP: usize = 160;
pub const N_MELS: usize = 64;
const N_BINS: usize = N_FFT / 2 + 1;
const SAMPLE_RATE: f32 = 16_000.0;

/// Rounds to the nearest bfloat16 (ties to even), as `tensor.to(bfloat16)`.
pub fn round_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1));
    f32::from_bits(rounded & 0xFFFF_0000)
}

/// `torch.hann_window(320, periodic=True)` rounded to bfloat16.
pub fn window() -> Vec<f32> {
    (0..N_FFT)
        .map(|n| {
            let w =
                0.5f32 - 0.5f32 * (2.0f32 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos();
            round_bf16(w)
        })
        .collect()
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// `torch.linspace`: the first half counts up from `start`, the second
/// half down from `end`, so both ends are exact.
fn linspace(start: f64, end: f64, steps: usize) -> Vec<f64> {
    let step = (end - start) / (steps - 1) as f64;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                start + step * i as f64
            } else {
                end - step * (steps - i - 1) as f64
            }
        })
        .collect()
}

/// The HTK mel filterbank of torchaudio's `melscale_fbanks(161, 0, 8000,
/// 64, 16000, norm=None, mel_scale="htk")`, evaluated in double precision
/// (as the reference's stored bank was) and rounded to bfloat16.
/// Row-major `[bin][mel]`.
pub fn mel_filterbank() -> Vec<f32> {
    let all_freqs = linspace(0.0, SAMPLE_RATE as f64 / 2.0, N_BINS);
    let (m_min, m_max) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let f_pts: Vec<f64> = linspace(m_min, m_max, N_MELS + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();
    let f_diff: Vec<f64> = f_pts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut fb = vec![0.0f32; N_BINS * N_MELS];
    for (bin, &f) in all_freqs.iter().enumerate() {
        for m in 0..N_MELS {
            let down = -(f_pts[m] - f) / f_diff[m];
            let up = (f_pts[m + 2] - f) / f_diff[m + 1];
            fb[bin * N_MELS + m] = round_bf16(down.min(up).max(0.0) as f32);
        }
    }
    fb
}

/// Number of feature frames for `len` samples.
pub fn num_frames(len: usize) -> usize {
    if len < N_FFT {
        0
    } else {
        (len - N_FFT) / HOP + 1
    }
}

/// A reusable GigaAM v3 feature extractor.
pub struct LogMel {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// Per mel band: first bin and the band's non-zero weights.
    bands: Vec<(usize, Vec<f64>)>,
    frame: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
    power: Vec<f64>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let fb = mel_filterbank();
        let bands = (0..N_MELS)
            .map(|m| {
                let nz: Vec<usize> = (0..N_BINS).filter(|&b| fb[b * N_MELS + m] != 0.0).collect();
                match (nz.first(), nz.last()) {
                    (Some(&lo), Some(&hi)) => {
                        (lo, (lo..=hi).map(|b| fb[b * N_MELS + m] as f64).collect())
                    }
                    _ => (0, Vec::new()),
                }
            })
            .collect();
        LogMel {
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            frame: fft.make_input_vec(),
            fft,
            window: window().into_iter().map(f64::from).collect(),
            bands,
            power: vec![0.0; N_BINS],
        }
    }

    /// Features of `samples` (16 kHz, `[-1, 1]`) as mel-major `[64][frames]`,
    /// the encoder's `audio_signal` layout without the batch axis.
    pub fn compute(&mut self, samples: &[f32]) -> Vec<f32> {
        let frames = num_frames(samples.len());
        let mut out = vec![0.0f32; N_MELS * frames];
        for t in 0..frames {
            let chunk = &samples[t * HOP..t * HOP + N_FFT];
            for ((dst, &x), &w) in self.frame.iter_mut().zip(chunk).zip(&self.window) {
                *dst = x as f64 * w;
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffers come from the planner and have the right sizes");
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                *p = c.norm_sqr();
            }
            for (m, (lo, weights)) in self.bands.iter().enumerate() {
                let e: f64 = weights
                    .iter()
                    .zip(&self.power[*lo..])
                    .map(|(w, p)| w * p)
                    .sum();
                out[m * frames + t] = e.clamp(1e-9, 1e9).ln() as f32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_to_nearest_even() {
        assert_eq!(round_bf16(1.0), 1.0);
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (1.0).
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
    }

    #[test]
    fn frame_count_has_no_padding() {
        assert_eq!(num_frames(319), 0);
        assert_eq!(num_frames(320), 1);
        assert_eq!(num_frames(479), 1);
        assert_eq!(num_frames(480), 2);
        assert_eq!(LogMel::new().compute(&vec![0.0; 16_000]).len(), 64 * 99);
    }

    #[test]
    fn silence_is_the_clamp_floor() {
        let f = LogMel::new().compute(&vec![0.0; 1000]);
        assert!(f.iter().all(|&v| (v - (1e-9f64).ln() as f32).abs() < 1e-6));
    }
}

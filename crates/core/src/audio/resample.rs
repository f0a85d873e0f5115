//! Sample-rate conversion with rubato's synchronous FFT resampler.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Converts mono `samples` from `from` Hz to `to` Hz, keeping the whole
/// clip: the output has `len × to / from` samples (±1), with the resampler's
/// start-up delay trimmed so that output sample `n` lines up with input
/// time `n / to`.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let mut resampler = match Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
    {
        Ok(r) => r,
        Err(e) => unreachable!("rubato rejected positive rates {from} -> {to}: {e}"),
    };
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .expect("a mono slice always matches its own length");
    match resampler.process_all(&input, samples.len(), None) {
        Ok(out) => out.take_data(),
        Err(e) => unreachable!("rubato failed on a well-formed buffer: {e}"),
    }
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
}

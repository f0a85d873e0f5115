//! Synthetic non-speech for measuring voice detection: deterministic hiss,
//! optionally shaped like breathing, at a chosen level. Used by
//! `glagol bench stream --noise-db` and by the tests that check noise
//! starts no utterance.

use super::SAMPLE_RATE;

/// `seconds` of 16 kHz noise at `rms_db` dBFS: pink-ish hiss (white noise
/// mixed with a leaky integral of it), shaped as an inhale and an exhale of
/// about 0.8 s each per 2 s when `breaths`. The same arguments always give
/// the same samples.
pub fn hiss(seconds: f64, breaths: bool, rms_db: f32) -> Vec<f32> {
    let rate = SAMPLE_RATE as usize;
    let n = (seconds * rate as f64) as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut low = 0.0f32;
    let mut out: Vec<f32> = (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let white = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            low = 0.98 * low + 0.02 * white;
            let x = 0.3 * white + 4.0 * low;
            if breaths {
                let t = (i % (2 * rate)) as f32 / rate as f32;
                x * ((t / 0.8).min(2.0) * std::f32::consts::PI).sin().powi(2)
            } else {
                x
            }
        })
        .collect();
    let rms = (out.iter().map(|x| x * x).sum::<f32>() / n.max(1) as f32).sqrt();
    if rms > 0.0 {
        let gain = 10f32.powf(rms_db / 20.0) / rms;
        out.iter_mut().for_each(|x| *x *= gain);
    }
    out
}

/// `samples` scaled so that their peak is at `db` dBFS.
pub fn at_peak(samples: &[f32], db: f32) -> Vec<f32> {
    let peak = samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak == 0.0 {
        return samples.to_vec();
    }
    let gain = 10f32.powf(db / 20.0) / peak;
    samples.iter().map(|x| x * gain).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiss_has_its_level_and_is_the_same_every_time() {
        let a = hiss(1.0, false, -40.0);
        let rms = (a.iter().map(|x| x * x).sum::<f32>() / a.len() as f32).sqrt();
        assert!((20.0 * rms.log10() + 40.0).abs() < 0.01);
        assert_eq!(a, hiss(1.0, false, -40.0));
        let quiet = at_peak(&a, -46.0);
        let peak = quiet.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!((20.0 * peak.log10() + 46.0).abs() < 0.01);
    }
}

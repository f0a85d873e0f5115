//! Any bytes through the audio decoder (every container and codec glagol
//! accepts) and the raw PCM reader: typed errors only, never a panic, a
//! hang or unbounded memory.
#![no_main]

use glagol_core::audio::{self, AudioLimits, PcmFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = AudioLimits {
        max_bytes: 1 << 20,
        max_duration_s: 120.0,
    };
    if let Ok(a) = audio::decode_bytes(data.to_vec(), None, &limits) {
        assert!(a.samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
        assert!(a.duration() <= 121.0);
    }
    // The first bytes choose a raw PCM layout for the rest.
    if let [rate, channels, format, rest @ ..] = data {
        let rate = 8_000 + (*rate as u32) * 200;
        let format = if format & 1 == 0 { PcmFormat::S16Le } else { PcmFormat::F32Le };
        if let Ok(a) = audio::from_pcm(rest, format, rate, 1 + (*channels as usize % 4), &limits) {
            assert!(a.samples.iter().all(|s| s.is_finite()));
        }
    }
});

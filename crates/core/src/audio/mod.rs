//! Audio input: any common container in, 16 kHz mono `f32` out.
//!
//! Every engine in glagol consumes the same thing — mono samples at
//! [`SAMPLE_RATE`] in `[-1, 1]` — so all the variety of the outside world
//! (containers, codecs, channel layouts, rates, raw PCM from a socket) is
//! collapsed here, once. Decoding is done by symphonia (plus libopus for
//! Opus), resampling by rubato's FFT resampler, which keeps the whole tail:
//! the output has `round(len × 16000 / rate)` samples.
//!
//! Limits ([`AudioLimits`]) are checked before and during decoding so that a
//! hostile or mistaken upload is rejected early with a typed [`AudioError`]
//! instead of exhausting memory.

mod decode;
pub mod pcm;
mod resample;
pub mod synth;

pub use decode::{decode_bytes, decode_bytes_reserving, decode_file, decode_file_reserving};
pub use resample::{resample, StreamResampler};

/// The sample rate every engine consumes.
pub const SAMPLE_RATE: u32 = 16_000;

/// The highest source sample rate read, in Hz (the highest rate audio
/// hardware records at). A header can claim any rate up to 4 GHz, and the
/// converter's cost grows with it: one such file held a decoder for minutes.
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Decoded audio, mono at [`SAMPLE_RATE`].
#[derive(Debug, Clone)]
pub struct Audio {
    /// Mono samples in `[-1, 1]` at [`SAMPLE_RATE`].
    pub samples: Vec<f32>,
    /// The rate the source was recorded at.
    pub source_rate: u32,
    /// The number of channels in the source before downmixing.
    pub source_channels: usize,
}

impl Audio {
    /// Wraps samples that are already mono at [`SAMPLE_RATE`].
    pub fn from_mono_16k(samples: Vec<f32>) -> Self {
        Audio {
            samples,
            source_rate: SAMPLE_RATE,
            source_channels: 1,
        }
    }

    /// Duration in seconds.
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Bounds on what input is accepted. Both are checked before the bulk of
/// the work where the container declares its length, and again while
/// decoding where it does not.
#[derive(Debug, Clone, Copy)]
pub struct AudioLimits {
    /// Largest accepted input in bytes.
    pub max_bytes: u64,
    /// Longest accepted audio in seconds.
    pub max_duration_s: f64,
}

impl Default for AudioLimits {
    fn default() -> Self {
        AudioLimits {
            max_bytes: 1 << 30,
            max_duration_s: 4.0 * 3600.0,
        }
    }
}

impl AudioLimits {
    /// No practical limit; for trusted local input.
    pub fn unlimited() -> Self {
        AudioLimits {
            max_bytes: u64::MAX,
            max_duration_s: f64::INFINITY,
        }
    }
}

/// Why audio could not be turned into samples. Each variant names one
/// problem a user can act on; [`AudioError::code`] gives a stable
/// machine-readable name for APIs.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("the input is empty (0 bytes)")]
    Empty,
    #[error("the input holds no audio samples")]
    NoSamples,
    #[error("the input is not a recognised audio file ({0})")]
    NotAudio(String),
    #[error("the audio file is truncated or corrupt ({0})")]
    Truncated(String),
    #[error("unsupported codec or container feature: {0}")]
    UnsupportedCodec(String),
    #[error("audio is {duration_s:.1} s long; the limit is {max_s:.1} s")]
    TooLong { duration_s: f64, max_s: f64 },
    #[error("input is {bytes} bytes; the limit is {max} bytes")]
    TooLarge { bytes: u64, max: u64 },
    #[error("invalid raw PCM: {0}")]
    InvalidPcm(String),
    #[error("not enough memory for more decoded audio now; retry shortly")]
    NoMemory,
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl AudioError {
    /// A stable snake_case name for the error, for JSON APIs and exit codes.
    pub fn code(&self) -> &'static str {
        match self {
            AudioError::Empty => "empty_input",
            AudioError::NoSamples => "no_audio",
            AudioError::NotAudio(_) => "not_audio",
            AudioError::Truncated(_) => "truncated_audio",
            AudioError::UnsupportedCodec(_) => "unsupported_codec",
            AudioError::TooLong { .. } => "audio_too_long",
            AudioError::TooLarge { .. } => "input_too_large",
            AudioError::InvalidPcm(_) => "invalid_pcm",
            AudioError::NoMemory => "busy",
            AudioError::Io { .. } => "io_error",
        }
    }
}

/// Sample encoding of raw (headerless) PCM input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmFormat {
    /// Unsigned 8-bit (WAV's 8-bit PCM, centred on 128).
    U8,
    /// Signed 16-bit little-endian.
    S16Le,
    /// Signed 32-bit little-endian.
    S32Le,
    /// 32-bit float little-endian.
    F32Le,
}

impl PcmFormat {
    /// Bytes per sample.
    pub fn width(self) -> usize {
        match self {
            PcmFormat::U8 => 1,
            PcmFormat::S16Le => 2,
            PcmFormat::S32Le | PcmFormat::F32Le => 4,
        }
    }

    /// One sample (`width` bytes) in [-1, 1).
    pub fn sample(self, b: &[u8]) -> f32 {
        match self {
            PcmFormat::U8 => (b[0] as f32 - 128.0) / 128.0,
            PcmFormat::S16Le => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            PcmFormat::S32Le => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            PcmFormat::F32Le => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    }
}

/// Raw interleaved PCM at any rate and channel count → [`Audio`].
pub fn from_pcm(
    bytes: &[u8],
    format: PcmFormat,
    rate: u32,
    channels: usize,
    limits: &AudioLimits,
) -> Result<Audio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    if rate == 0 || channels == 0 || rate > MAX_SOURCE_RATE {
        return Err(AudioError::InvalidPcm(format!(
            "rate ({rate}) must be 1 to {MAX_SOURCE_RATE} Hz and channels ({channels}) positive"
        )));
    }
    check_size(bytes.len() as u64, limits)?;
    let width = format.width();
    if !bytes.len().is_multiple_of(width * channels) {
        return Err(AudioError::InvalidPcm(format!(
            "{} bytes is not a whole number of {channels}-channel {width}-byte frames",
            bytes.len()
        )));
    }
    let frames = bytes.len() / (width * channels);
    check_duration(frames as f64 / rate as f64, limits)?;
    let interleaved: Vec<f32> = bytes
        .chunks_exact(width)
        .map(|b| format.sample(b))
        .collect();
    let mut mono = Vec::new();
    downmix_into(&interleaved, channels, &mut mono);
    drop(interleaved);
    sanitize(&mut mono);
    Ok(Audio {
        samples: resample(&mono, rate, SAMPLE_RATE),
        source_rate: rate,
        source_channels: channels,
    })
}

/// Averages interleaved channels into one, replacing `mono`'s contents.
pub fn downmix_into(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    mono.clear();
    if channels <= 1 {
        mono.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    mono.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

/// Makes samples safe for every engine: NaN becomes silence, everything
/// else (infinities included) is clipped to `[-1, 1]`. Engines fed
/// non-finite values loop or emit garbage.
pub fn sanitize(samples: &mut [f32]) {
    for x in samples {
        *x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
    }
}

fn check_size(bytes: u64, limits: &AudioLimits) -> Result<(), AudioError> {
    if bytes > limits.max_bytes {
        return Err(AudioError::TooLarge {
            bytes,
            max: limits.max_bytes,
        });
    }
    Ok(())
}

fn check_duration(duration_s: f64, limits: &AudioLimits) -> Result<(), AudioError> {
    if duration_s > limits.max_duration_s {
        return Err(AudioError::TooLong {
            duration_s,
            max_s: limits.max_duration_s,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_claiming_a_giant_sample_rate_is_refused_at_once() {
        let data: Vec<u8> = (0..4000u32)
            .flat_map(|i| (i as i16).to_le_bytes())
            .collect();
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&2u16.to_le_bytes()); // channels
        wav.extend_from_slice(&0xFFFF_FFFEu32.to_le_bytes()); // Hz
        wav.extend_from_slice(&0x0002_B110u32.to_le_bytes());
        wav.extend_from_slice(&4u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(&data);
        let started = std::time::Instant::now();
        let refused = decode_bytes(wav, None, &AudioLimits::default());
        assert!(
            matches!(refused, Err(AudioError::UnsupportedCodec(_))),
            "{refused:?}"
        );
        assert!(started.elapsed().as_secs() < 5);
        let pcm = from_pcm(
            &[0; 64],
            PcmFormat::S16Le,
            1_000_000,
            1,
            &AudioLimits::default(),
        );
        assert!(matches!(pcm, Err(AudioError::InvalidPcm(_))), "{pcm:?}");
    }

    #[test]
    fn pcm16_stereo_is_downmixed_and_resampled() {
        let frames = 8000;
        let mut bytes = Vec::new();
        for i in 0..frames {
            let v = ((i as f32 * 0.05).sin() * 10000.0) as i16;
            bytes.extend_from_slice(&v.to_le_bytes());
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let audio = from_pcm(&bytes, PcmFormat::S16Le, 8000, 2, &AudioLimits::default()).unwrap();
        assert_eq!(audio.samples.len(), 16000);
        assert_eq!(audio.source_channels, 2);
    }

    #[test]
    fn non_finite_samples_are_cleaned() {
        let mut bytes = Vec::new();
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3.5, -0.25] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let audio = from_pcm(&bytes, PcmFormat::F32Le, 16000, 1, &AudioLimits::default()).unwrap();
        assert_eq!(audio.samples, [0.0, 1.0, -1.0, 1.0, -0.25]);
    }

    #[test]
    fn pcm_errors_are_typed() {
        let l = AudioLimits::default();
        assert!(matches!(
            from_pcm(&[], PcmFormat::S16Le, 16000, 1, &l),
            Err(AudioError::Empty)
        ));
        assert!(matches!(
            from_pcm(&[1, 2, 3], PcmFormat::S16Le, 16000, 1, &l),
            Err(AudioError::InvalidPcm(_))
        ));
        let short = AudioLimits {
            max_bytes: 1 << 20,
            max_duration_s: 0.5,
        };
        assert!(matches!(
            from_pcm(&vec![0u8; 32000], PcmFormat::S16Le, 16000, 1, &short),
            Err(AudioError::TooLong { .. })
        ));
    }
}

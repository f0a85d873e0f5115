//! Raw PCM arriving in pieces (a live stream's frames) into 16 kHz mono:
//! a frame split across two pieces is carried over, channels are averaged,
//! and the rate is converted as the samples come.

use super::{downmix_into, sanitize, PcmFormat, StreamResampler, SAMPLE_RATE};

/// G.711 companding laws (telephony, 8 kHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    MuLaw,
    ALaw,
}

/// How a stream's bytes encode samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Pcm(PcmFormat),
    G711(G711),
}

impl Encoding {
    fn width(self) -> usize {
        match self {
            Encoding::Pcm(format) => format.width(),
            Encoding::G711(_) => 1,
        }
    }
}

/// What a stream of raw samples is: encoding, rate and interleaved channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmInput {
    pub encoding: Encoding,
    pub rate: u32,
    pub channels: u16,
}

impl PcmInput {
    /// One channel of `encoding` at `rate`.
    pub fn mono(encoding: Encoding, rate: u32) -> PcmInput {
        PcmInput {
            encoding,
            rate,
            channels: 1,
        }
    }

    /// Bytes per frame (one sample of every channel).
    fn frame_bytes(&self) -> usize {
        self.encoding.width() * usize::from(self.channels.max(1))
    }
}

/// One stream of raw samples, as 16 kHz mono.
pub struct PcmStream {
    input: PcmInput,
    carry: Vec<u8>,
    resampler: StreamResampler,
    interleaved: Vec<f32>,
    scratch: Vec<f32>,
}

impl PcmStream {
    pub fn new(input: PcmInput) -> PcmStream {
        PcmStream {
            input,
            carry: Vec::new(),
            resampler: StreamResampler::new(input.rate, SAMPLE_RATE),
            interleaved: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// What the stream takes.
    pub fn input(&self) -> PcmInput {
        self.input
    }

    /// Converts `bytes`, appending 16 kHz samples to `out`; an incomplete
    /// trailing frame waits for the next piece.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) {
        let encoding = self.input.encoding;
        let width = encoding.width();
        let frame = self.input.frame_bytes();
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / frame * frame;
        self.interleaved.clear();
        for s in self.carry[..whole].chunks_exact(width) {
            self.interleaved.push(match encoding {
                Encoding::Pcm(format) => format.sample(s),
                Encoding::G711(law) => g711(law, s[0]) as f32 / 32768.0,
            });
        }
        self.carry.drain(..whole);
        downmix_into(
            &self.interleaved,
            usize::from(self.input.channels),
            &mut self.scratch,
        );
        sanitize(&mut self.scratch);
        self.resampler.push(&self.scratch, out);
    }
}

impl PcmStream {
    /// Flushes the converter's tail (the end of the stream, or of a turn).
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let done = std::mem::replace(
            &mut self.resampler,
            StreamResampler::new(self.input.rate, SAMPLE_RATE),
        );
        done.finish(out);
    }
}

/// A G.711 byte as a 16-bit sample (ITU-T G.711).
fn g711(law: G711, byte: u8) -> i16 {
    match law {
        G711::MuLaw => {
            let b = !byte;
            let sign = b & 0x80;
            let exponent = (b >> 4) & 0x07;
            let mantissa = b & 0x0f;
            let magnitude = (((mantissa as i32) << 3) + 0x84) << exponent;
            let v = magnitude - 0x84;
            (if sign != 0 { -v } else { v }) as i16
        }
        G711::ALaw => {
            let b = byte ^ 0x55;
            let sign = b & 0x80;
            let exponent = (b >> 4) & 0x07;
            let mantissa = (b & 0x0f) as i32;
            let magnitude = if exponent == 0 {
                (mantissa << 4) + 8
            } else {
                ((mantissa << 4) + 0x108) << (exponent - 1)
            };
            (if sign != 0 { magnitude } else { -magnitude }) as i16
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_split_across_pieces_is_carried_over() {
        let samples: Vec<i16> = vec![1000, -2000, 3000, 32767];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let input = PcmInput::mono(Encoding::Pcm(PcmFormat::S16Le), 16_000);
        let mut whole = Vec::new();
        PcmStream::new(input).push(&bytes, &mut whole);
        let mut pieces = Vec::new();
        let mut s = PcmStream::new(input);
        s.push(&bytes[..3], &mut pieces);
        s.push(&bytes[3..], &mut pieces);
        assert_eq!(pieces, whole);
        assert_eq!(whole.len(), 4);
        assert!((whole[1] + 2000.0 / 32768.0).abs() < 1e-6);
    }

    #[test]
    fn stereo_frames_are_averaged_and_a_split_frame_waits() {
        let samples: Vec<i16> = vec![1000, 3000, -2000, -4000];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut s = PcmStream::new(PcmInput {
            encoding: Encoding::Pcm(PcmFormat::S16Le),
            rate: 16_000,
            channels: 2,
        });
        let mut out = Vec::new();
        s.push(&bytes[..6], &mut out);
        assert_eq!(out.len(), 1, "half a frame waits");
        s.push(&bytes[6..], &mut out);
        assert_eq!(out.len(), 2);
        assert!((out[0] - 2000.0 / 32768.0).abs() < 1e-6);
        assert!((out[1] + 3000.0 / 32768.0).abs() < 1e-6);
    }

    #[test]
    fn g711_matches_known_values() {
        assert_eq!(g711(G711::MuLaw, 0xff), 0);
        assert_eq!(g711(G711::MuLaw, 0x80), 32124);
        assert_eq!(g711(G711::MuLaw, 0x00), -32124);
        assert_eq!(g711(G711::ALaw, 0xd5), 8);
        assert_eq!(g711(G711::ALaw, 0x55), -8);
    }
}

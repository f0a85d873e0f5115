//! Raw PCM arriving in pieces (a live stream's frames) into 16 kHz mono:
//! a sample split across two pieces is carried over, and the rate is
//! converted as the samples come.

use super::{sanitize, PcmFormat, StreamResampler, SAMPLE_RATE};

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
            Encoding::Pcm(PcmFormat::S16Le) => 2,
            Encoding::Pcm(PcmFormat::F32Le) => 4,
            Encoding::G711(_) => 1,
        }
    }
}

/// One mono stream of raw samples at `rate`.
pub struct PcmStream {
    encoding: Encoding,
    rate: u32,
    carry: Vec<u8>,
    resampler: StreamResampler,
    scratch: Vec<f32>,
}

impl PcmStream {
    pub fn new(encoding: Encoding, rate: u32) -> PcmStream {
        PcmStream {
            encoding,
            rate,
            carry: Vec::new(),
            resampler: StreamResampler::new(rate, SAMPLE_RATE),
            scratch: Vec::new(),
        }
    }

    /// Converts `bytes`, appending 16 kHz samples to `out`; an incomplete
    /// trailing sample waits for the next piece.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) {
        let width = self.encoding.width();
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / width * width;
        self.scratch.clear();
        for s in self.carry[..whole].chunks_exact(width) {
            self.scratch.push(match self.encoding {
                Encoding::Pcm(PcmFormat::S16Le) => {
                    i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0
                }
                Encoding::Pcm(PcmFormat::F32Le) => f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                Encoding::G711(law) => g711(law, s[0]) as f32 / 32768.0,
            });
        }
        self.carry.drain(..whole);
        sanitize(&mut self.scratch);
        self.resampler.push(&self.scratch, out);
    }
}

impl PcmStream {
    /// Flushes the converter's tail (the end of the stream, or of a turn).
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let done = std::mem::replace(
            &mut self.resampler,
            StreamResampler::new(self.rate, SAMPLE_RATE),
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
        let mut whole = Vec::new();
        PcmStream::new(Encoding::Pcm(PcmFormat::S16Le), 16_000).push(&bytes, &mut whole);
        let mut pieces = Vec::new();
        let mut s = PcmStream::new(Encoding::Pcm(PcmFormat::S16Le), 16_000);
        s.push(&bytes[..3], &mut pieces);
        s.push(&bytes[3..], &mut pieces);
        assert_eq!(pieces, whole);
        assert_eq!(whole.len(), 4);
        assert!((whole[1] + 2000.0 / 32768.0).abs() < 1e-6);
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

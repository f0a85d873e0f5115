//! Container and codec decoding with symphonia (+ libopus).

use std::fs::File;
use std::io::{Cursor, ErrorKind, Read, Seek};
use std::path::Path;
use std::sync::OnceLock;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use super::resample::StreamResampler;
use super::{
    check_duration, check_size, downmix_into, sanitize, Audio, AudioError, AudioLimits, SAMPLE_RATE,
};

/// Decodes an audio file of any supported container.
pub fn decode_file(path: &Path, limits: &AudioLimits) -> Result<Audio, AudioError> {
    decode_file_reserving(path, limits, &mut |_| true)
}

/// [`decode_file`], asking `reserve` for memory as the output grows (see
/// [`decode_bytes_reserving`]); the file is read as it is decoded.
pub fn decode_file_reserving(
    path: &Path,
    limits: &AudioLimits,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Audio, AudioError> {
    let io_err = |source| AudioError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    check_wav_format(&head)?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    decode_source(Box::new(file), len, &hint, limits, reserve)
}

/// Decodes an in-memory audio file. `extension` (e.g. `"mp3"`) is only a
/// hint; the content decides.
pub fn decode_bytes(
    bytes: Vec<u8>,
    extension: Option<&str>,
    limits: &AudioLimits,
) -> Result<Audio, AudioError> {
    decode_bytes_reserving(bytes, extension, limits, &mut |_| true)
}

/// [`decode_bytes`], asking `reserve` for memory as the output grows: it is
/// called with the number of 16 kHz samples decoded so far (about once a
/// second of audio) and refuses with false, which ends decoding with
/// [`AudioError::NoMemory`].
pub fn decode_bytes_reserving(
    bytes: Vec<u8>,
    extension: Option<&str>,
    limits: &AudioLimits,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Audio, AudioError> {
    let len = bytes.len() as u64;
    check_wav_format(&bytes)?;
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    decode_source(Box::new(Cursor::new(bytes)), len, &hint, limits, reserve)
}

/// How much of the start of a file [`check_wav_format`] looks at (all of
/// an upload held in memory is).
const HEAD_BYTES: usize = 64 * 1024;

/// Refuses WAV headers that symphonia cannot be trusted with: its reader
/// multiplies the `fmt ` chunk's channel count by the sample size in 16
/// bits, which overflows (a panic where overflow checks are on) for absurd
/// channel counts; no real file has more than a few dozen channels. Every
/// `fmt ` chunk in `head` is checked, not only one where a well-formed RIFF
/// header puts it: symphonia's probe also finds a RIFF stream after junk.
fn check_wav_format(head: &[u8]) -> Result<(), AudioError> {
    for at in 0..head.len().saturating_sub(4) {
        if &head[at..at + 4] != b"fmt " {
            continue;
        }
        let Some(fmt) = head.get(at + 8..at + 24) else {
            continue;
        };
        let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
        let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
        if channels == 0 || u32::from(channels) * u32::from(bits / 8) > u32::from(u16::MAX) {
            return Err(AudioError::NotAudio(format!(
                "a WAV header declaring {channels} channels of {bits} bits"
            )));
        }
    }
    Ok(())
}

fn codecs() -> &'static CodecRegistry {
    static REGISTRY: OnceLock<CodecRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
        registry
    })
}

/// Decodes packet by packet straight to 16 kHz mono: each packet is
/// downmixed, cleaned (non-finite samples) and resampled as it arrives, and
/// the duration limit is enforced as samples arrive, so memory never holds
/// more than the 16 kHz mono result.
fn decode_source(
    source: Box<dyn MediaSource>,
    len: u64,
    hint: &Hint,
    limits: &AudioLimits,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Audio, AudioError> {
    if len == 0 {
        return Err(AudioError::Empty);
    }
    check_size(len, limits)?;
    let mss = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymError::IoError(ref io) if io.kind() == ErrorKind::UnexpectedEof => {
                AudioError::NotAudio("the data ends before any audio stream starts".into())
            }
            SymError::Unsupported(_) => {
                AudioError::NotAudio("no known container format matches its content".into())
            }
            other => AudioError::NotAudio(other.to_string()),
        })?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NotAudio("the container has no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::NotAudio("the track is not audio".into()))?
        .clone();
    let declared_frames = track.num_frames;
    if let (Some(frames), Some(rate)) = (declared_frames, params.sample_rate) {
        if rate > 0 {
            check_duration(frames as f64 / rate as f64, limits)?;
        }
    }
    let mut decoder = codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::UnsupportedCodec(format!("{e} (codec {:?})", params.codec)))?;

    let mut out: Vec<f32> = Vec::new();
    let mut chunk: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut stream: Option<(u32, StreamResampler)> = None;
    let mut rate = params.sample_rate.unwrap_or(0);
    let mut channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
    let mut frames_decoded: u64 = 0;
    let mut seconds_decoded = 0.0f64;
    let mut reserved = 0usize;
    let mut bad_packets = 0usize;
    let mut good_packets = 0usize;
    let mut cut_short = false;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                cut_short = true;
                break;
            }
            Err(SymError::ResetRequired) => break,
            Err(SymError::DecodeError(msg)) => {
                return Err(AudioError::Truncated(format!("malformed stream: {msg}")));
            }
            Err(e) => return Err(AudioError::Truncated(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                good_packets += 1;
                let spec = buf.spec();
                rate = spec.rate();
                channels = spec.channels().count().max(1);
                if rate == 0 {
                    continue;
                }
                if rate > super::MAX_SOURCE_RATE {
                    return Err(AudioError::UnsupportedCodec(format!(
                        "a sample rate of {rate} Hz (at most {} Hz is read)",
                        super::MAX_SOURCE_RATE
                    )));
                }
                buf.copy_to_vec_interleaved(&mut chunk);
                frames_decoded += buf.frames() as u64;
                seconds_decoded += buf.frames() as f64 / rate as f64;
                check_duration(seconds_decoded, limits)?;
                downmix_into(&chunk, channels, &mut mono);
                sanitize(&mut mono);
                // A rate change mid-stream flushes the old converter.
                if stream.as_ref().is_some_and(|(r, _)| *r != rate) {
                    if let Some((_, old)) = stream.take() {
                        old.finish(&mut out);
                    }
                }
                stream
                    .get_or_insert_with(|| (rate, StreamResampler::new(rate, SAMPLE_RATE)))
                    .1
                    .push(&mono, &mut out);
                if out.len() >= reserved + SAMPLE_RATE as usize {
                    reserved = out.len();
                    if !reserve(reserved) {
                        return Err(AudioError::NoMemory);
                    }
                }
            }
            // A damaged packet inside an otherwise good stream is skipped,
            // as every player does; a stream of nothing but damage is not audio.
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => bad_packets += 1,
            Err(SymError::Unsupported(what)) => {
                return Err(AudioError::UnsupportedCodec(what.to_string()))
            }
            Err(e) => return Err(AudioError::Truncated(e.to_string())),
        }
    }

    if good_packets == 0 {
        return Err(if bad_packets > 0 {
            AudioError::NotAudio(format!("none of {bad_packets} packets could be decoded"))
        } else if cut_short {
            AudioError::Truncated("the file ends before its first audio packet".into())
        } else {
            AudioError::NoSamples
        });
    }
    // A container that states its length (WAV, FLAC, MP3 with a Xing/LAME
    // header, MP4) and delivers much less was cut off in transit; silently transcribing the
    // first part would lose data without telling anyone.
    if let Some(declared) = declared_frames {
        let missing = declared.saturating_sub(frames_decoded);
        if missing > declared / 100 + 4096 {
            return Err(AudioError::Truncated(format!(
                "the header declares {declared} frames but only {frames_decoded} are present"
            )));
        }
    }
    tracing::debug!(
        ?declared_frames,
        frames_decoded,
        cut_short,
        bad_packets,
        "decoded"
    );
    if cut_short {
        return Err(AudioError::Truncated(format!(
            "the stream ends in the middle of a packet after {:.2} s",
            frames_decoded as f64 / rate.max(1) as f64
        )));
    }
    let Some((_, resampler)) = stream else {
        return Err(AudioError::NoSamples);
    };
    resampler.finish(&mut out);
    if out.is_empty() {
        return Err(AudioError::NoSamples);
    }
    if !reserve(out.len()) {
        return Err(AudioError::NoMemory);
    }
    Ok(Audio {
        samples: out,
        source_rate: rate,
        source_channels: channels,
    })
}

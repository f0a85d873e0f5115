//! Any text through the live protocols' message decoders (native `/v1/ws`
//! and OpenAI Realtime events), and any bytes through the live PCM decoder
//! (carry-over of split frames, 8/16/32-bit, float and G.711 samples,
//! channels, rate conversion): typed errors only, never a panic.
#![no_main]

use glagol_core::audio::pcm::{Encoding, PcmInput, PcmStream, G711};
use glagol_core::audio::PcmFormat;
use glagol_server::http::realtime::{openai, protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = protocol::parse(text);
        if let Ok((openai::ClientEvent::Append(bytes), _)) = openai::parse_event(text) {
            let mut out = Vec::new();
            let input = PcmInput::mono(Encoding::Pcm(PcmFormat::S16Le), 24_000);
            PcmStream::new(input).push(&bytes, &mut out);
        }
    }
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let encoding = match choice % 6 {
        0 => Encoding::Pcm(PcmFormat::S16Le),
        1 => Encoding::Pcm(PcmFormat::F32Le),
        2 => Encoding::Pcm(PcmFormat::U8),
        3 => Encoding::Pcm(PcmFormat::S32Le),
        4 => Encoding::G711(G711::MuLaw),
        _ => Encoding::G711(G711::ALaw),
    };
    let rate = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000][(choice / 6 % 6) as usize];
    let channels = 1 + u16::from(choice / 36 % 3);
    let mut stream = PcmStream::new(PcmInput {
        encoding,
        rate,
        channels,
    });
    let mut out = Vec::new();
    for piece in rest.chunks(1 + (choice as usize % 7)) {
        stream.push(piece, &mut out);
    }
    stream.flush(&mut out);
    assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
});

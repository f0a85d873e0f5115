//! The Wyoming codec against golden bytes written by the reference Python
//! package (wyoming 1.10.2; `tests/fixtures/wyoming/gen_golden.py`): every
//! event reads back as written, and the events glagol sends are written
//! byte for byte as the package writes them. Limits and malformed input.

use std::path::Path;

use glagol_server::wyoming::codec::{encode, read_event, Event, ReadError};
use serde::Serialize;
use serde_json::json;

fn golden(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wyoming")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_all(bytes: &[u8]) -> Result<Vec<Event>, ReadError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = tokio::io::BufReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = read_event(&mut r).await? {
            out.push(e);
        }
        Ok(out)
    })
}

fn one(name: &str) -> Event {
    let mut events = read_all(&golden(name)).unwrap();
    assert_eq!(events.len(), 1, "{name}");
    events.remove(0)
}

#[test]
fn every_golden_event_reads_back() {
    assert_eq!(one("describe.bin").kind, "describe");
    let t = one("transcribe_full.bin");
    assert_eq!(t.kind, "transcribe");
    assert_eq!(t.str("name"), Some("gigaam-v3-e2e-rnnt"));
    assert_eq!(t.data["transcript_names"], json!(["Кухня"]));
    assert_eq!(t.data["context"], json!({"k": "v"}));
    let chunk = one("audio_chunk.bin");
    assert_eq!(
        (chunk.u64("rate"), chunk.u64("width"), chunk.u64("channels")),
        (Some(16000), Some(2), Some(1))
    );
    assert_eq!(chunk.data["timestamp"], json!(null));
    // The payload holds a newline: it is never read as a line.
    assert_eq!(
        chunk.payload.as_deref(),
        Some(&b"\x01\x00\n\x00\xff\x7f\x00\x80"[..])
    );
    let info = one("info.bin");
    assert_eq!(info.data["asr"][0]["models"][0]["languages"], json!(["ru"]));
    assert_eq!(one("transcript_chunk.bin").str("text"), Some("привет "));
    let events = read_all(&golden("client_utterance.bin")).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "transcribe",
            "audio-start",
            "audio-chunk",
            "audio-chunk",
            "audio-stop"
        ]
    );
    assert_eq!(
        events[2].payload.as_deref(),
        Some(&(0u8..16).collect::<Vec<_>>()[..])
    );
    assert_eq!(events[3].payload.as_deref(), Some(&b"\n\n\n\n\0\0\0\0"[..]));
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Transcript<'a> {
    text: &'a str,
    language: &'a str,
}

#[derive(Serialize)]
struct Language<'a> {
    language: &'a str,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    text: &'a str,
    code: &'a str,
}

#[test]
fn what_glagol_sends_is_written_as_the_reference_writes_it() {
    let t = Transcript {
        text: "Привет, мир.",
        language: "ru",
    };
    assert_eq!(
        encode("transcript", Some(&t), None),
        golden("transcript.bin")
    );
    let c = Text {
        text: "привет "
    };
    assert_eq!(
        encode("transcript-chunk", Some(&c), None),
        golden("transcript_chunk.bin")
    );
    let s = Language { language: "ru" };
    assert_eq!(
        encode("transcript-start", Some(&s), None),
        golden("transcript_start.bin")
    );
    assert_eq!(
        encode("transcript-stop", None::<&()>, None),
        golden("transcript_stop.bin")
    );
    assert_eq!(
        encode("pong", Some(&Text { text: "x" }), None),
        golden("pong.bin")
    );
    let e = ErrorData {
        text: "audio too long",
        code: "audio-too-long",
    };
    assert_eq!(encode("error", Some(&e), None), golden("error.bin"));
    // A payload after the data, as audio chunks carry it.
    let bytes = encode(
        "audio-chunk",
        Some(&json!({"rate": 16000})),
        Some(b"\n\x01"),
    );
    let back = read_all(&bytes).unwrap();
    assert_eq!(back[0].payload.as_deref(), Some(&b"\n\x01"[..]));
    assert_eq!(back[0].u64("rate"), Some(16000));
}

#[test]
fn numbers_read_back_exactly_as_written() {
    // Found by fuzzing: 60e099 parsed one ulp off, so the event glagol
    // wrote back read as a different one.
    let bytes = b"{\"type\": \"x\", \"data\": {\"rate\": 60e099, \"g\": 0.1}}\n";
    let e = read_all(bytes).unwrap().remove(0);
    assert_eq!(e.data["rate"].as_f64(), Some(6e100));
    let again = encode(&e.kind, Some(&e.data), None);
    assert_eq!(read_all(&again).unwrap()[0], e);
}

#[test]
fn inline_data_is_merged_under_the_data_section() {
    let bytes = b"{\"type\": \"transcribe\", \"data\": {\"language\": \"en\", \"name\": \"m\"}, \"data_length\": 18}\n{\"language\": \"ru\"}";
    let e = &read_all(bytes).unwrap()[0];
    assert_eq!((e.str("language"), e.str("name")), (Some("ru"), Some("m")));
}

#[test]
fn oversized_truncated_and_malformed_events_are_refused() {
    let long = format!("{{\"type\": \"x\", \"pad\": \"{}\"}}\n", "a".repeat(70_000));
    assert!(matches!(
        read_all(long.as_bytes()),
        Err(ReadError::TooLarge { part: "header", .. })
    ));
    let big = b"{\"type\": \"audio-chunk\", \"payload_length\": 104857600}\n";
    assert!(matches!(
        read_all(big),
        Err(ReadError::TooLarge {
            part: "payload",
            ..
        })
    ));
    let data = b"{\"type\": \"x\", \"data_length\": 2000000}\n";
    assert!(matches!(
        read_all(data),
        Err(ReadError::TooLarge {
            part: "data section",
            ..
        })
    ));
    let cut = b"{\"type\": \"audio-chunk\", \"payload_length\": 8}\n\x01\x02";
    assert!(matches!(read_all(cut), Err(ReadError::Truncated)));
    assert!(matches!(
        read_all(b"not json\n"),
        Err(ReadError::Malformed(_))
    ));
    assert!(matches!(
        read_all(b"{\"data\": {}}\n"),
        Err(ReadError::Malformed(_))
    ));
    assert!(matches!(
        read_all(b"{\"type\": \"x\", \"data_length\": 3}\n[1]"),
        Err(ReadError::Malformed(_))
    ));
    // A header cut short before its newline.
    assert!(matches!(
        read_all(b"{\"type\": \"x\""),
        Err(ReadError::Truncated)
    ));
}

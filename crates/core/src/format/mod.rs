//! Output formats: txt, json, verbose_json, srt, vtt.

mod diarized;
mod verbose;

use std::fmt::Write;
use std::str::FromStr;

use serde::Serialize;
use serde_json::json;

pub use self::diarized::{DiarizedJson, DiarizedSegment};
pub use self::verbose::{VerboseJson, VerboseSegment, VerboseWord};
use crate::engine::Transcript;

/// How a transcript is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Txt,
    /// `{"text": …}`
    Json,
    /// OpenAI's verbose_json.
    VerboseJson,
    Srt,
    Vtt,
    /// OpenAI's diarized_json: one segment per speaker turn.
    DiarizedJson,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 5] = [
        Self::Txt,
        Self::Json,
        Self::VerboseJson,
        Self::Srt,
        Self::Vtt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Txt => "txt",
            Self::Json => "json",
            Self::VerboseJson => "verbose_json",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
            Self::DiarizedJson => "diarized_json",
        }
    }

    /// Whether this format needs speakers (diarization).
    pub fn needs_speakers(self) -> bool {
        self == Self::DiarizedJson
    }

    /// File extension for `--output-dir`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::VerboseJson => "verbose.json",
            Self::DiarizedJson => "diarized.json",
            other => other.name(),
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Txt => "text/plain; charset=utf-8",
            Self::Json | Self::VerboseJson | Self::DiarizedJson => "application/json",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "txt" | "text" => Ok(Self::Txt),
            "json" => Ok(Self::Json),
            "verbose_json" => Ok(Self::VerboseJson),
            "srt" => Ok(Self::Srt),
            "vtt" => Ok(Self::Vtt),
            "diarized_json" => Ok(Self::DiarizedJson),
            _ => Err(format!(
                "unknown format '{s}': use txt, json, verbose_json, srt, vtt or diarized_json"
            )),
        }
    }
}

/// Renders a transcript. Words appear in verbose_json when present;
/// speakers, where diarization ran, prefix txt lines and subtitle cues.
pub fn render(t: &Transcript, format: OutputFormat) -> String {
    match format {
        OutputFormat::Txt if has_speakers(t) => speaker_lines(t),
        OutputFormat::Txt => format!("{}\n", t.text),
        OutputFormat::Json => json!({ "text": t.text }).to_string(),
        OutputFormat::VerboseJson => {
            serde_json::to_string(&VerboseJson::new(t)).expect("verbose_json serialises")
        }
        OutputFormat::DiarizedJson => {
            serde_json::to_string(&DiarizedJson::new(t)).expect("diarized_json serialises")
        }
        OutputFormat::Srt => subtitles(t, false),
        OutputFormat::Vtt => subtitles(t, true),
    }
}

fn has_speakers(t: &Transcript) -> bool {
    t.segments.iter().any(|s| s.speaker.is_some())
}

/// How a speaker label reads in text: `Speaker A` for a letter, a known
/// speaker's name as it is.
pub fn speaker_name(label: &str) -> String {
    if !label.is_empty() && label.len() <= 3 && label.bytes().all(|b| b.is_ascii_uppercase()) {
        format!("Speaker {label}")
    } else {
        label.to_string()
    }
}

/// One line per speaker turn: `Speaker A: text`.
fn speaker_lines(t: &Transcript) -> String {
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for s in &t.segments {
        let text = s.text.trim();
        if text.is_empty() {
            continue;
        }
        let speaker = s.speaker.as_deref().unwrap_or("");
        if current == Some(speaker) {
            out.push(' ');
        } else {
            if current.is_some() {
                out.push('\n');
            }
            let _ = write!(out, "{}: ", speaker_name(speaker));
            current = Some(speaker);
        }
        out.push_str(text);
    }
    out.push('\n');
    out
}

fn subtitles(t: &Transcript, vtt: bool) -> String {
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    let mut n = 0;
    for s in &t.segments {
        let text = s.text.trim();
        if text.is_empty() {
            continue;
        }
        n += 1;
        if !vtt {
            let _ = writeln!(out, "{n}");
        }
        let _ = writeln!(
            out,
            "{} --> {}",
            timestamp(s.start, vtt),
            timestamp(s.end, vtt)
        );
        match s.speaker.as_deref() {
            Some(speaker) if vtt => {
                let _ = writeln!(out, "<v {}>{text}\n", speaker_name(speaker));
            }
            Some(speaker) => {
                let _ = writeln!(out, "{}: {text}\n", speaker_name(speaker));
            }
            None => {
                let _ = writeln!(out, "{text}\n");
            }
        }
    }
    out
}

/// `HH:MM:SS,mmm` (srt) or `HH:MM:SS.mmm` (vtt).
pub fn timestamp(seconds: f64, vtt: bool) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{}{ms:03}", if vtt { '.' } else { ',' })
}

/// OpenAI reports languages by English name in verbose_json.
pub fn language_name(code: &str) -> &str {
    match code {
        "en" => "english",
        "ru" => "russian",
        "de" => "german",
        "es" => "spanish",
        "fr" => "french",
        "it" => "italian",
        "pt" => "portuguese",
        "uk" => "ukrainian",
        "zh" => "chinese",
        "ja" => "japanese",
        "ko" => "korean",
        "pl" => "polish",
        "nl" => "dutch",
        "tr" => "turkish",
        "ar" => "arabic",
        "hi" => "hindi",
        "kk" => "kazakh",
        "be" => "belarusian",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Segment, Task, Word};

    fn sample() -> Transcript {
        let seg = |id, start, end, text: &str, words: Vec<Word>| Segment {
            speaker: None,
            id,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![1, 2],
            token_times: vec![],
            temperature: 0.0,
            avg_logprob: -0.25,
            compression_ratio: 1.0,
            no_speech_prob: 0.01,
            words,
            logprobs: vec![],
        };
        let w = |word: &str, start, end| Word {
            speaker: None,
            word: word.into(),
            start,
            end,
            probability: 0.5,
        };
        Transcript {
            task: Task::Transcribe,
            language: Some("en".into()),
            language_probability: None,
            duration: 3725.5,
            text: "Hello there. General Kenobi.".into(),
            segments: vec![
                seg(
                    0,
                    0.0,
                    1.5,
                    " Hello there.",
                    vec![w("Hello", 0.0, 0.6), w("there.", 0.6, 1.5)],
                ),
                seg(1, 3661.25, 3662.0, " General Kenobi.", vec![]),
            ],
        }
    }

    #[test]
    fn golden_srt() {
        assert_eq!(
            render(&sample(), OutputFormat::Srt),
            "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:01:01,250 --> 01:01:02,000\nGeneral Kenobi.\n\n"
        );
    }

    #[test]
    fn golden_vtt() {
        assert_eq!(
            render(&sample(), OutputFormat::Vtt),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n01:01:01.250 --> 01:01:02.000\nGeneral Kenobi.\n\n"
        );
    }

    #[test]
    fn golden_txt_and_json() {
        assert_eq!(
            render(&sample(), OutputFormat::Txt),
            "Hello there. General Kenobi.\n"
        );
        assert_eq!(
            render(&sample(), OutputFormat::Json),
            r#"{"text":"Hello there. General Kenobi."}"#
        );
    }

    #[test]
    fn golden_verbose_json() {
        let v: serde_json::Value =
            serde_json::from_str(&render(&sample(), OutputFormat::VerboseJson)).unwrap();
        assert_eq!(v["task"], "transcribe");
        assert_eq!(v["language"], "english");
        assert_eq!(v["duration"], 3725.5);
        assert_eq!(v["segments"][1]["start"], 3661.25);
        assert_eq!(v["segments"][0]["tokens"], json!([1, 2]));
        for key in [
            "id",
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ] {
            assert!(v["segments"][0].get(key).is_some(), "{key}");
        }
        assert_eq!(
            v["words"],
            json!([
                {"word": "Hello", "start": 0.0, "end": 0.6, "probability": 0.5},
                {"word": "there.", "start": 0.6, "end": 1.5, "probability": 0.5}
            ])
        );
    }

    #[test]
    fn speakers_label_every_text_format() {
        let mut t = sample();
        t.segments[0].speaker = Some("A".into());
        t.segments[1].speaker = Some("Obi-Wan".into());
        assert_eq!(
            render(&t, OutputFormat::Txt),
            "Speaker A: Hello there.\nObi-Wan: General Kenobi.\n"
        );
        assert!(render(&t, OutputFormat::Vtt).contains("\n<v Speaker A>Hello there.\n"));
        assert!(render(&t, OutputFormat::Srt).contains("\nObi-Wan: General Kenobi.\n"));
        let v: serde_json::Value =
            serde_json::from_str(&render(&t, OutputFormat::DiarizedJson)).unwrap();
        assert_eq!(
            v["segments"][1],
            json!({"type": "transcript.text.segment", "id": "seg_1", "start": 3661.25,
                   "end": 3662.0, "speaker": "Obi-Wan", "text": "General Kenobi."})
        );
        assert!(v["segments"][0].get("words").is_none());
        let v: serde_json::Value =
            serde_json::from_str(&render(&t, OutputFormat::VerboseJson)).unwrap();
        assert_eq!(v["segments"][0]["speaker"], "A");
    }

    #[test]
    fn formats_parse() {
        for f in OutputFormat::ALL {
            assert_eq!(f.name().parse::<OutputFormat>().unwrap(), f);
        }
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}

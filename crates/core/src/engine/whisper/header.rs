//! A ggml model file's header, checked before whisper.cpp trusts it.

use std::path::Path;

/// Checks a ggml file's hyperparameters before whisper.cpp reads it:
/// whisper.cpp trusts them, and a corrupt file's values make it allocate
/// without bound or crash the process.
pub(super) fn check_header(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut head = [0u8; 48];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("cannot read the model header: {e}"))?;
    if &head[..4] != b"lmgg" {
        return Err("not a whisper.cpp ggml file (bad magic)".into());
    }
    let field =
        |i: usize| i32::from_le_bytes(head[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes"));
    // n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
    // n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
    let limits: [(&str, i32, i32); 11] = [
        ("n_vocab", 1, 1 << 20),
        ("n_audio_ctx", 1, 1 << 16),
        ("n_audio_state", 1, 1 << 14),
        ("n_audio_head", 1, 256),
        ("n_audio_layer", 1, 256),
        ("n_text_ctx", 1, 1 << 16),
        ("n_text_state", 1, 1 << 14),
        ("n_text_head", 1, 256),
        ("n_text_layer", 1, 256),
        ("n_mels", 1, 512),
        // The quantization version times 1000, plus the type.
        ("ftype", 0, 100_000),
    ];
    for (i, (name, lo, hi)) in limits.iter().enumerate() {
        let v = field(i);
        if !(*lo..=*hi).contains(&v) || (*name == "ftype" && v % 1000 > 64) {
            return Err(format!("corrupt model header: {name} = {v}"));
        }
    }
    Ok(())
}

/// The languages a ggml Whisper model recognises: English alone for an
/// English-only model (its vocabulary has no language tokens beyond
/// English: 51864 entries), else every language whisper.cpp knows.
pub fn languages(path: &Path) -> Vec<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    let n_vocab = i32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    if read.is_ok() && &head[..4] == b"lmgg" && n_vocab < 51865 {
        return vec!["en"];
    }
    (0..=whisper_rs::get_lang_max_id())
        .filter_map(whisper_rs::get_lang_str)
        .collect()
}

//! Finding a GigaAM v3 head's files in a model directory.

use std::path::{Path, PathBuf};

use crate::engine::EngineError;

/// Which decoder head a model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    Rnnt,
    Ctc,
}

/// The files of one head.
#[derive(Debug, Clone)]
pub struct HeadFiles {
    pub head: Head,
    /// RNN-T: encoder; CTC: the whole model.
    pub model: PathBuf,
    pub decoder: Option<PathBuf>,
    pub joint: Option<PathBuf>,
    pub vocab: PathBuf,
}

/// Finds a head's files for a directory or one head's `.onnx` path.
pub fn locate(path: &Path, int8: bool) -> Result<HeadFiles, EngineError> {
    let not_found = |why: String| EngineError::Load {
        path: path.display().to_string(),
        message: why,
    };
    let (dir, wanted) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        (
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            Some(name),
        )
    };
    // (prefix, head, vocab) in order of preference.
    let heads = [
        ("v3_e2e_rnnt", Head::Rnnt, "v3_e2e_rnnt_vocab.txt"),
        ("v3_rnnt", Head::Rnnt, "v3_vocab.txt"),
        ("v3_e2e_ctc", Head::Ctc, "v3_e2e_ctc_vocab.txt"),
        ("v3_ctc", Head::Ctc, "v3_vocab.txt"),
    ];
    let file = |stem: String| {
        let fp32 = dir.join(format!("{stem}.onnx"));
        let q = dir.join(format!("{stem}.int8.onnx"));
        if (int8 || !fp32.exists()) && q.exists() {
            Some(q)
        } else if fp32.exists() {
            Some(fp32)
        } else {
            None
        }
    };
    for (prefix, head, vocab) in heads {
        if let Some(w) = &wanted {
            if !w.starts_with(&format!("{prefix}_")) && !w.starts_with(&format!("{prefix}.")) {
                continue;
            }
        }
        let vocab = dir.join(vocab);
        let found = match head {
            Head::Rnnt => (
                file(format!("{prefix}_encoder")),
                file(format!("{prefix}_decoder")),
                file(format!("{prefix}_joint")),
            ),
            Head::Ctc => (file(prefix.to_string()), None, None),
        };
        match (head, found) {
            (Head::Rnnt, (Some(model), Some(decoder), Some(joint))) if vocab.exists() => {
                return Ok(HeadFiles {
                    head,
                    model,
                    decoder: Some(decoder),
                    joint: Some(joint),
                    vocab,
                })
            }
            (Head::Ctc, (Some(model), _, _)) if vocab.exists() => {
                return Ok(HeadFiles {
                    head,
                    model,
                    decoder: None,
                    joint: None,
                    vocab,
                })
            }
            _ => {}
        }
    }
    Err(not_found(
        "no complete GigaAM v3 head (e.g. v3_e2e_rnnt_{encoder,decoder,joint}.onnx + v3_e2e_rnnt_vocab.txt, or v3_e2e_ctc.onnx + v3_e2e_ctc_vocab.txt)".into(),
    ))
}

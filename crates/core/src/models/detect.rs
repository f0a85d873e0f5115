//! What a model file or directory is: its engine from its content, and
//! the catalog entry whose checksums it reproduces.

use std::fs;
use std::path::{Path, PathBuf};

use super::catalog::{self, CatalogEntry, EngineKind};
use super::download::Digests;
use super::store::{io_err, StoreError, MANIFEST};

/// Which engine a model file or directory is for, from its content.
pub fn detect(path: &Path) -> Result<EngineKind, StoreError> {
    let not_model = |reason: &str| StoreError::NotAModel {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    if path.is_dir() {
        let names: Vec<String> = fs::read_dir(path)
            .map_err(io_err(path))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        let has = |pred: &dyn Fn(&str) -> bool| names.iter().any(|n| pred(n));
        if has(&|n| n.ends_with(".onnx") && (n.contains("rnnt_encoder") || n.contains("ctc")))
            && has(&|n| n.ends_with("vocab.txt"))
        {
            return Ok(EngineKind::Gigaam);
        }
        if let [only] = names
            .iter()
            .filter(|n| n.as_str() != MANIFEST)
            .collect::<Vec<_>>()[..]
        {
            return detect(&path.join(only));
        }
        return Err(not_model(
            "expected a GigaAM directory (*_encoder.onnx or *ctc.onnx with a *vocab.txt)",
        ));
    }
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = fs::File::open(path).map_err(io_err(path))?;
        if f.read_exact(&mut magic).is_err() {
            return Err(not_model("file is too short"));
        }
    }
    // whisper.cpp's ggml files start with the little-endian magic 0x67676d6c.
    if &magic == b"lmgg" {
        return Ok(EngineKind::Whisper);
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if name.ends_with(".onnx") && name.contains("vad") {
        return Ok(EngineKind::Vad);
    }
    if name.ends_with(".onnx") && name.contains("segmentation") {
        return Ok(EngineKind::Segmentation);
    }
    if name.ends_with(".onnx")
        && ["campplus", "wespeaker", "resnet", "speaker", "embedding"]
            .iter()
            .any(|k| name.contains(k))
    {
        return Ok(EngineKind::SpeakerEmbedding);
    }
    // One GigaAM head's file, inside its model directory.
    if name.ends_with(".onnx") && (name.contains("rnnt_encoder") || name.contains("ctc")) {
        return Ok(EngineKind::Gigaam);
    }
    Err(not_model(
        "not a whisper.cpp ggml file (bad magic) nor a GigaAM directory",
    ))
}

/// The catalog entry whose checksummed files the given files reproduce.
pub(super) fn guess_catalog_entry(
    engine: EngineKind,
    files: &[PathBuf],
    digests: &[Digests],
) -> Option<&'static CatalogEntry> {
    catalog::CATALOG
        .iter()
        .filter(|e| e.engine == engine)
        .find(|e| {
            let checked: Vec<_> = e.files.iter().filter(|f| f.checksum.is_some()).collect();
            !checked.is_empty()
                && checked.iter().all(|cf| {
                    files.iter().zip(digests).any(|(p, d)| {
                        (files.len() == 1 || p.file_name().is_some_and(|n| n == cf.name))
                            && d.matches(cf.checksum)
                    })
                })
        })
}

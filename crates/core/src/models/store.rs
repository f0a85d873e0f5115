//! The on-disk model store.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::{self, CatalogEntry, Checksum, EngineKind};
use super::detect::{detect, guess_catalog_entry};
use super::download::{self, Digests, DownloadError, Progress};

pub(super) const MANIFEST: &str = "glagol-model.json";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unknown model '{0}'; `glagol models list` shows the catalog, or pass a path to a model file or directory")]
    Unknown(String),
    #[error("model '{0}' is not installed; run `glagol models pull {0}` (or `glagol models import PATH --as {0}` offline)")]
    NotInstalled(String),
    #[error("{path} does not look like a model: {reason}")]
    NotAModel { path: PathBuf, reason: String },
    #[error("{file} does not match the catalog entry for '{model}' (expected {expected}, got {actual}); refusing to import it under that name")]
    ImportMismatch {
        model: String,
        file: String,
        expected: String,
        actual: String,
    },
    #[error("invalid model name '{0}': use letters, digits, '.', '-' and '_'")]
    BadName(String),
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `glagol-model.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub engine: EngineKind,
    /// `catalog` or `import`.
    pub source: String,
    /// Whether the files were checked against the catalog's checksums
    /// (false for local models and forced imports of conversions).
    #[serde(default)]
    pub catalog_verified: bool,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A model present in the store.
#[derive(Debug, Clone, Serialize)]
pub struct InstalledModel {
    pub name: String,
    pub engine: EngineKind,
    pub path: PathBuf,
    pub size: u64,
}

/// A `--model` argument resolved to something an engine can load.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub name: String,
    pub engine: EngineKind,
    /// A file (Whisper ggml) or directory (GigaAM).
    pub path: PathBuf,
}

/// Result of checking one installed model.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub ok: bool,
    pub problems: Vec<String>,
}

/// The directory of installed models.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ModelStore { root: root.into() }
    }

    /// `$GLAGOL_MODELS_DIR`, else `<data dir>/models`.
    pub fn default_dir() -> PathBuf {
        match std::env::var_os("GLAGOL_MODELS_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => crate::data_dir().join("models"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Every installed model, sorted by name.
    pub fn list(&self) -> Result<Vec<InstalledModel>, StoreError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(m) = read_manifest(&path) {
                out.push(InstalledModel {
                    size: m.files.iter().map(|f| f.size).sum(),
                    name: m.name,
                    engine: m.engine,
                    path: self.entry_path(&path, m.engine, &m.files),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whisper models are one file; GigaAM models are their directory.
    fn entry_path(&self, dir: &Path, engine: EngineKind, files: &[ManifestFile]) -> PathBuf {
        match (engine, files) {
            (
                EngineKind::Whisper
                | EngineKind::Vad
                | EngineKind::Segmentation
                | EngineKind::SpeakerEmbedding,
                [only],
            ) => dir.join(&only.name),
            _ => dir.to_path_buf(),
        }
    }

    /// The installed model called `name`, if any.
    pub fn get(&self, name: &str) -> Option<InstalledModel> {
        self.list().ok()?.into_iter().find(|m| m.name == name)
    }

    /// Downloads a catalog model into the store, resuming and verifying.
    /// `progress` gets the file name with each event.
    pub fn pull(
        &self,
        entry: &CatalogEntry,
        progress: &mut dyn FnMut(&str, Progress),
    ) -> Result<InstalledModel, StoreError> {
        self.pull_from(entry, None, progress)
    }

    /// Like [`pull`](Self::pull), fetching from `base_url/<file>` instead
    /// of the catalog's URLs (a mirror, or a local server in tests).
    pub fn pull_from(
        &self,
        entry: &CatalogEntry,
        base_url: Option<&str>,
        progress: &mut dyn FnMut(&str, Progress),
    ) -> Result<InstalledModel, StoreError> {
        let dir = self.model_dir(entry.name);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut files = Vec::new();
        for f in entry.files {
            let dest = dir.join(f.name);
            let url = match base_url {
                Some(base) => format!("{}/{}", base.trim_end_matches('/'), f.name),
                None => f.url.to_string(),
            };
            let req = download::Request::new(&url, &dest, f.checksum);
            let sha256 = download::download(&req, &mut |p| progress(f.name, p))?;
            let size = fs::metadata(&dest).map_err(io_err(&dest))?.len();
            files.push(ManifestFile {
                name: f.name.to_string(),
                size,
                sha256,
            });
        }
        let manifest = Manifest {
            name: entry.name.to_string(),
            engine: entry.engine,
            source: "catalog".into(),
            catalog_verified: true,
            files,
        };
        write_manifest(&dir, &manifest)?;
        Ok(self
            .get(entry.name)
            .expect("a model whose manifest was just written is listed"))
    }

    /// Copies a model file or directory into the store after checking it.
    /// With no `name`, a file whose digest matches a catalog file takes
    /// that entry's name; otherwise the file or directory name is used.
    /// Importing under a catalog name requires the catalog's checksums
    /// unless `force` (for a compatible conversion of the same model).
    pub fn import(
        &self,
        src: &Path,
        name: Option<&str>,
        force: bool,
    ) -> Result<InstalledModel, StoreError> {
        let detected = detect(src)?;
        let files: Vec<PathBuf> = if src.is_dir() {
            let mut v: Vec<PathBuf> = fs::read_dir(src)
                .map_err(io_err(src))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != MANIFEST))
                .collect();
            v.sort();
            v
        } else {
            vec![src.to_path_buf()]
        };
        let mut digests = Vec::new();
        for f in &files {
            digests.push(Digests::of_file(f).map_err(io_err(f))?);
        }
        let catalog_match = name
            .and_then(catalog::find)
            .or_else(|| guess_catalog_entry(detected, &files, &digests));
        let name = match name {
            Some(n) => n.to_string(),
            None => match catalog_match {
                Some(e) => e.name.to_string(),
                None => src
                    .file_stem()
                    .map(|s| s.to_string_lossy().trim_start_matches("ggml-").to_string())
                    .unwrap_or_else(|| "model".into()),
            },
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || name.starts_with('.')
        {
            return Err(StoreError::BadName(name));
        }
        // Importing under a catalog name promises the catalog's bytes.
        let catalog_verified = catalog_match.is_some_and(|e| e.name == name) && !force;
        if let Some(entry) = catalog_match.filter(|_| catalog_verified) {
            for (f, d) in files.iter().zip(&digests) {
                let fname = f.file_name().unwrap_or_default().to_string_lossy();
                let expected = entry
                    .files
                    .iter()
                    .find(|cf| cf.name == fname || entry.files.len() == 1 && files.len() == 1)
                    .and_then(|cf| cf.checksum);
                if let Some(c) = expected {
                    if !d.matches(Some(c)) {
                        let (expected, actual) = match c {
                            Checksum::Sha1(h) => (h.to_string(), hex::encode(d.sha1)),
                            Checksum::Sha256(h) => (h.to_string(), d.sha256_hex()),
                        };
                        return Err(StoreError::ImportMismatch {
                            model: name,
                            file: f.display().to_string(),
                            expected,
                            actual,
                        });
                    }
                }
            }
        }

        // Build the copy beside its final place and rename it in, so a
        // crash never leaves a half-imported model that looks installed.
        fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let staging = self
            .root
            .join(format!(".import-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        let staged = (|| -> Result<(), StoreError> {
            let mut manifest_files = Vec::new();
            for (f, d) in files.iter().zip(&digests) {
                let fname = match (detected, catalog_match) {
                    // A single Whisper file keeps the catalog's file name so
                    // the store looks the same whether pulled or imported.
                    (EngineKind::Whisper, Some(e)) if e.name == name && e.files.len() == 1 => {
                        e.files[0].name.to_string()
                    }
                    _ => f
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string(),
                };
                let dest = staging.join(&fname);
                let size = fs::copy(f, &dest).map_err(io_err(&dest))?;
                manifest_files.push(ManifestFile {
                    name: fname,
                    size,
                    sha256: d.sha256_hex(),
                });
            }
            write_manifest(
                &staging,
                &Manifest {
                    name: name.clone(),
                    engine: detected,
                    source: "import".into(),
                    catalog_verified,
                    files: manifest_files,
                },
            )?;
            let dir = self.model_dir(&name);
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            fs::rename(&staging, &dir).map_err(io_err(&dir))
        })();
        if let Err(e) = staged {
            // A failed import (a full disk, say) leaves nothing behind.
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok(self
            .get(&name)
            .expect("a model just renamed into the store is listed"))
    }

    /// Deletes an installed model.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        if name.contains('/') || name.contains("..") {
            return Err(StoreError::BadName(name.into()));
        }
        let dir = self.model_dir(name);
        if !dir.join(MANIFEST).exists() {
            return Err(StoreError::NotInstalled(name.into()));
        }
        fs::remove_dir_all(&dir).map_err(io_err(&dir))
    }

    /// Re-hashes every file of the named models (all when empty) against
    /// the manifest and, for catalog names, the catalog.
    pub fn verify(&self, names: &[String]) -> Result<Vec<VerifyReport>, StoreError> {
        let installed = self.list()?;
        for n in names {
            if !installed.iter().any(|m| &m.name == n) {
                return Err(StoreError::NotInstalled(n.clone()));
            }
        }
        let mut reports = Vec::new();
        for m in installed
            .iter()
            .filter(|m| names.is_empty() || names.contains(&m.name))
        {
            let dir = self.model_dir(&m.name);
            let manifest = read_manifest(&dir)?;
            let mut problems = Vec::new();
            for f in &manifest.files {
                let path = dir.join(&f.name);
                match Digests::of_file(&path) {
                    Err(e) => problems.push(format!("{}: {e}", f.name)),
                    Ok(d) => {
                        if d.sha256_hex() != f.sha256 {
                            problems.push(format!(
                                "{}: SHA-256 {} differs from the recorded {}",
                                f.name,
                                d.sha256_hex(),
                                f.sha256
                            ));
                        }
                        let catalog_sum = catalog::find(&m.name)
                            .filter(|_| manifest.catalog_verified)
                            .and_then(|e| e.files.iter().find(|cf| cf.name == f.name))
                            .and_then(|cf| cf.checksum);
                        if catalog_sum.is_some() && !d.matches(catalog_sum) {
                            problems
                                .push(format!("{}: does not match the catalog checksum", f.name));
                        }
                    }
                }
            }
            reports.push(VerifyReport {
                name: m.name.clone(),
                ok: problems.is_empty(),
                problems,
            });
        }
        Ok(reports)
    }

    /// Resolves a `--model` argument: an existing path, an installed
    /// model's name, or a catalog name (which must be installed first).
    pub fn resolve(&self, spec: &str) -> Result<ResolvedModel, StoreError> {
        let path = Path::new(spec);
        if path.exists() {
            let engine = detect(path)?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| spec.to_string());
            return Ok(ResolvedModel {
                name,
                engine,
                path: path.to_path_buf(),
            });
        }
        if let Some(m) = self.get(spec) {
            return Ok(ResolvedModel {
                name: m.name,
                engine: m.engine,
                path: m.path,
            });
        }
        if catalog::find(spec).is_some() {
            return Err(StoreError::NotInstalled(spec.into()));
        }
        Err(StoreError::Unknown(spec.into()))
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let p = dir.join(MANIFEST);
    let text = fs::read_to_string(&p).map_err(io_err(&p))?;
    serde_json::from_str(&text).map_err(|e| StoreError::NotAModel {
        path: p.clone(),
        reason: format!("unreadable manifest: {e}"),
    })
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), StoreError> {
    // Concurrent pulls of one model each write the manifest.
    let p = dir.join(MANIFEST);
    let tmp = super::download::private_temp(&p);
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(m).expect("manifest serialises"),
    )
    .map_err(io_err(&tmp))?;
    fs::rename(&tmp, &p).map_err(io_err(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_manifest_writes_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest {
            name: "m".into(),
            engine: EngineKind::Whisper,
            source: "catalog".into(),
            catalog_verified: true,
            files: Vec::new(),
        };
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let (dir, manifest) = (dir.path().to_path_buf(), manifest.clone());
                std::thread::spawn(move || {
                    (0..200).try_for_each(|_| write_manifest(&dir, &manifest))
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        assert_eq!(read_manifest(dir.path()).unwrap().name, "m");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "temporary files left behind");
    }
}

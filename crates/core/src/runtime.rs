//! ONNX Runtime provisioning.
//!
//! glagol loads `libonnxruntime` at run time (`ort`'s `load-dynamic`) so
//! that one binary works whether or not the library is present, and can
//! tell the user how to get it instead of crashing. The library is found,
//! in order: an explicit path (`--ort-lib`), `GLAGOL_ORT_LIB`,
//! `ORT_DYLIB_PATH`, glagol's data directory (where `glagol runtime install`
//! puts it), then the system library path. One ORT environment exists per
//! process; [`environment`] creates it on first use.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::models::download::{self, DownloadError, Progress};
use crate::models::Checksum;

/// The ONNX Runtime release glagol is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";
/// Oldest minor version `ort` accepts (API level 31).
pub const ORT_MIN_MINOR: u32 = 31;
/// The library file inside the wheel and in the data directory.
pub const ORT_LIB_NAME: &str = "libonnxruntime.so.1.31.1";
/// The pinned PyPI wheel (manylinux_2_28 x86_64; needs only libc/libstdc++).
pub const ORT_WHEEL_URL: &str = "https://files.pythonhosted.org/packages/b4/1d/0f85ee31a3d93f2243a5cc29252becf858f53ac5cfa6c9c15d9ffe107eea/onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl";
pub const ORT_WHEEL_SHA256: &str =
    "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f";
const WHEEL_MEMBER: &str = "onnxruntime/capi/libonnxruntime.so.1.31.1";

/// Why ONNX Runtime is not usable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library not found (looked in: {searched}). Run `glagol runtime install`, or point --ort-lib / GLAGOL_ORT_LIB at libonnxruntime.so.{ORT_VERSION}")]
    Missing { searched: String },
    #[error("ONNX Runtime at {path} is version {version}; glagol needs 1.{ORT_MIN_MINOR} or newer. Run `glagol runtime install`")]
    TooOld { path: String, version: String },
    #[error("could not load ONNX Runtime from {path}: {message}. Run `glagol runtime install` to get a working copy")]
    Load { path: String, message: String },
}

impl RuntimeError {
    pub fn code(&self) -> &'static str {
        match self {
            RuntimeError::Missing { .. } => "runtime_missing",
            RuntimeError::TooOld { .. } => "runtime_too_old",
            RuntimeError::Load { .. } => "runtime_load_failed",
        }
    }
}

/// Why `glagol runtime install` failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error("the wheel has no {WHEEL_MEMBER}: {0}")]
    BadWheel(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Directory that `glagol runtime install` writes to.
pub fn runtime_dir() -> PathBuf {
    crate::data_dir().join("runtime")
}

/// Where the library was found, and how.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    /// Which rule found it (`--ort-lib`, `GLAGOL_ORT_LIB`, `data dir`, …).
    pub source: &'static str,
}

/// Finds the library without loading it.
pub fn locate(explicit: Option<&Path>) -> Result<Located, RuntimeError> {
    let mut searched = Vec::new();
    let mut candidates: Vec<(PathBuf, &'static str)> = Vec::new();
    if let Some(p) = explicit {
        candidates.push((p.to_path_buf(), "--ort-lib"));
    }
    for var in ["GLAGOL_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            candidates.push((
                PathBuf::from(v),
                if var == "GLAGOL_ORT_LIB" {
                    "GLAGOL_ORT_LIB"
                } else {
                    "ORT_DYLIB_PATH"
                },
            ));
        }
    }
    // An explicit choice that does not exist is an error, not a reason to
    // silently pick some other library.
    if let Some((p, source)) = candidates.first() {
        if p.is_file() {
            return Ok(Located {
                path: p.clone(),
                source,
            });
        }
        return Err(RuntimeError::Missing {
            searched: format!("{} (from {source})", p.display()),
        });
    }
    let data = runtime_dir().join(ORT_LIB_NAME);
    searched.push(data.display().to_string());
    if data.is_file() {
        return Ok(Located {
            path: data,
            source: "data dir",
        });
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.extend(
        [
            "/usr/local/lib",
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
        ]
        .map(PathBuf::from),
    );
    for dir in dirs {
        searched.push(dir.display().to_string());
        if let Some(found) = newest_lib_in(&dir) {
            return Ok(Located {
                path: found,
                source: "system",
            });
        }
    }
    Err(RuntimeError::Missing {
        searched: searched.join(", "),
    })
}

fn newest_lib_in(dir: &Path) -> Option<PathBuf> {
    let mut libs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so."))
        })
        .collect();
    libs.sort();
    libs.pop()
}

/// The version in a `libonnxruntime.so.X.Y.Z` file name, if it has one.
pub fn version_from_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let v = name.strip_prefix("libonnxruntime.so.")?;
    (v.split('.').count() >= 2).then(|| v.to_string())
}

static ENV: OnceLock<ort::environment::Environment> = OnceLock::new();
static INIT: Mutex<Option<Result<PathBuf, RuntimeError>>> = Mutex::new(None);

/// Sets which library the process uses; must precede the first
/// [`environment`] call to have any effect. Used by `--ort-lib`.
pub fn set_library(path: Option<PathBuf>) {
    EXPLICIT.get_or_init(|| path);
}
static EXPLICIT: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let mut init = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    if let Some(Err(e)) = init.as_ref() {
        return Err(e.clone());
    }
    let explicit = EXPLICIT.get().cloned().flatten();
    let result = load(explicit.as_deref());
    match result {
        Ok((env, path)) => {
            let _ = ENV.set(env);
            *init = Some(Ok(path));
            Ok(ENV.get().expect("just set"))
        }
        Err(e) => {
            *init = Some(Err(e.clone()));
            Err(e)
        }
    }
}

/// Path of the library the process loaded, once [`environment`] succeeded.
pub fn loaded_library() -> Option<PathBuf> {
    INIT.lock().ok()?.as_ref()?.as_ref().ok().cloned()
}

fn load(explicit: Option<&Path>) -> Result<(ort::environment::Environment, PathBuf), RuntimeError> {
    let located = locate(explicit)?;
    let path_str = located.path.display().to_string();
    if let Some(v) = version_from_name(&located.path) {
        let minor: u32 = v
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if v.starts_with("1.") && minor < ORT_MIN_MINOR {
            return Err(RuntimeError::TooOld {
                path: path_str,
                version: v,
            });
        }
    }
    let builder = ort::init_from(&located.path).map_err(|e| {
        let message = e.to_string();
        if message.contains("version") {
            RuntimeError::TooOld {
                path: path_str.clone(),
                version: message.clone(),
            }
        } else {
            RuntimeError::Load {
                path: path_str.clone(),
                message,
            }
        }
    })?;
    let env = builder
        .with_name("glagol")
        .with_telemetry(false)
        .build()
        .map_err(|e| RuntimeError::Load {
            path: path_str.clone(),
            message: e.to_string(),
        })?;
    Ok((env, located.path))
}

/// Downloads the pinned wheel (or `url` with `sha256`), verifies it and
/// extracts the library into `dest_dir` (default [`runtime_dir`]).
/// Returns the installed library's path.
pub fn install(
    url: &str,
    sha256: &'static str,
    dest_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf, InstallError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    fs::create_dir_all(dest_dir).map_err(io_err(dest_dir))?;
    let wheel = dest_dir.join(format!("onnxruntime-{ORT_VERSION}.whl"));
    let req = download::Request::new(url, &wheel, Some(Checksum::Sha256(sha256)));
    download::download(&req, progress)?;

    let file = File::open(&wheel).map_err(io_err(&wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| InstallError::BadWheel(e.to_string()))?;
    let mut member = zip
        .by_name(WHEEL_MEMBER)
        .map_err(|e| InstallError::BadWheel(e.to_string()))?;
    let dest = dest_dir.join(ORT_LIB_NAME);
    // Two installs at once each extract their own copy.
    let tmp = download::private_temp(&dest);
    {
        let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
        io::copy(&mut member, &mut out)
            .map_err(|e| InstallError::BadWheel(format!("extracting: {e}")))?;
        out.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    drop(member);
    // The wheel served its purpose; keep the disk tidy.
    let _ = fs::remove_file(&wheel);
    let _ = fs::remove_file(dest_dir.join(format!("onnxruntime-{ORT_VERSION}.whl.lock")));
    Ok(dest)
}

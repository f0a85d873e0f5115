//! `glagol models …`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;
use glagol_core::engine::whisper::quantize::{quantize, QuantType};
use glagol_core::models::download::Progress;
use glagol_core::models::EngineKind;
use glagol_core::models::{find_in_catalog, ModelStore, StoreError, CATALOG};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Subcommand)]
pub enum Command {
    /// Show the catalog and what is installed.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Download a catalog model (resumable, checksum-verified).
    Pull {
        name: String,
        /// Fetch `<URL>/<file>` instead of the catalog URLs (a mirror).
        #[arg(long, value_name = "URL")]
        from: Option<String>,
    },
    /// Verify and copy a local model file or directory into the store.
    Import {
        path: PathBuf,
        /// Store it under this name (a catalog name requires matching checksums).
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
        /// Accept a catalog name even though the checksums differ (a compatible conversion).
        #[arg(long)]
        force: bool,
    },
    /// Write a quantized copy of a Whisper model into the store (ggml's routines;
    /// smaller and faster on CPU).
    Quantize {
        /// An installed Whisper model (f16 or f32) or a path to one.
        name: String,
        /// Block format of the weight matrices: q8_0, q5_1, q5_0 or q4_0.
        #[arg(long = "type", value_name = "TYPE", default_value = "q8_0")]
        kind: QuantType,
        /// Store it under this name (default: NAME-TYPE).
        #[arg(long = "as", value_name = "NAME")]
        target: Option<String>,
    },
    /// Delete an installed model.
    Rm { name: String },
    /// Re-check installed models' checksums (all, or the named ones).
    Verify { names: Vec<String> },
}

pub fn run(cmd: Command, store: &ModelStore) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List { json } => list(store, json),
        Command::Pull { name, from } => {
            let entry = find_in_catalog(&name).ok_or_else(|| StoreError::Unknown(name.clone()))?;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("static template is valid")
                .progress_chars("=> "),
            );
            let mut on_progress = |file: &str, p: Progress| match p {
                Progress::Started { done, total } => {
                    bar.set_message(file.to_string());
                    bar.set_length(total.unwrap_or(0));
                    bar.set_position(done);
                }
                Progress::Advanced { done } => bar.set_position(done),
            };
            let m = store.pull_from(entry, from.as_deref(), &mut on_progress)?;
            bar.finish_and_clear();
            println!(
                "{} installed at {} ({})",
                m.name,
                m.path.display(),
                human(m.size)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { path, name, force } => {
            let m = store.import(&path, name.as_deref(), force)?;
            println!(
                "{} imported to {} ({})",
                m.name,
                m.path.display(),
                human(m.size)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Quantize { name, kind, target } => quantize_into_store(store, &name, kind, target),
        Command::Rm { name } => {
            store.remove(&name)?;
            println!("removed {name}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { names } => {
            let reports = store.verify(&names)?;
            if reports.is_empty() {
                println!("no models installed in {}", store.root().display());
            }
            let mut bad = 0;
            for r in &reports {
                if r.ok {
                    println!("ok      {}", r.name);
                } else {
                    bad += 1;
                    println!("FAILED  {}", r.name);
                    for p in &r.problems {
                        println!("        {p}");
                    }
                }
            }
            if bad > 0 {
                return Err(anyhow!(StoreError::NotAModel {
                    path: store.root().to_path_buf(),
                    reason: format!("{bad} model(s) failed verification; `glagol models pull NAME` re-downloads"),
                }));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn quantize_into_store(
    store: &ModelStore,
    name: &str,
    kind: QuantType,
    target: Option<String>,
) -> anyhow::Result<ExitCode> {
    let model = store.resolve(name)?;
    if model.engine != EngineKind::Whisper {
        return Err(anyhow!(
            "{} is not a Whisper model; only whisper.cpp models can be quantized",
            model.name
        ));
    }
    let target = target.unwrap_or_else(|| format!("{}-{}", model.name, kind.name()));
    // Written beside the store and imported from there, so an interrupted
    // run leaves no half-written model that looks installed.
    let staging = store
        .root()
        .join(format!(".quantize-{}", std::process::id()));
    std::fs::create_dir_all(&staging)?;
    let result = (|| -> anyhow::Result<_> {
        let file = staging.join(format!("ggml-{target}.bin"));
        let report = quantize(&model.path, &file, kind)?;
        // A catalog name promises the published bytes; a local quantization
        // (of a conversion, or by another ggml version) is kept under that
        // name unverified.
        let (installed, published) = match store.import(&file, Some(&target), false) {
            Ok(m) => (m, find_in_catalog(&target).is_some()),
            Err(StoreError::ImportMismatch { .. }) => {
                (store.import(&file, Some(&target), true)?, false)
            }
            Err(e) => return Err(e.into()),
        };
        Ok((report, installed, published))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let (report, installed, published) = result?;
    println!(
        "{} ({}): {} of {} tensors quantized, {} -> {}, installed at {}{}",
        installed.name,
        kind.name(),
        report.quantized,
        report.tensors,
        human(report.bytes_in),
        human(report.bytes_out),
        installed.path.display(),
        if published {
            " (identical to the published file)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn list(store: &ModelStore, json: bool) -> anyhow::Result<ExitCode> {
    let installed = store.list()?;
    if json {
        let catalog: Vec<_> = CATALOG
            .iter()
            .map(|e| {
                let inst = installed.iter().find(|m| m.name == e.name);
                serde_json::json!({
                    "name": e.name, "engine": e.engine, "description": e.description,
                    "languages": e.languages, "size": e.size(),
                    "installed": inst.is_some(), "path": inst.map(|m| m.path.clone()),
                })
            })
            .collect();
        let local: Vec<_> = installed
            .iter()
            .filter(|m| find_in_catalog(&m.name).is_none())
            .collect();
        println!(
            "{}",
            serde_json::json!({ "store": store.root(), "catalog": catalog, "local": local })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("store: {}", store.root().display());
    println!(
        "{:<24} {:<8} {:>9}  {:<9}  description",
        "NAME", "ENGINE", "SIZE", "STATUS"
    );
    for e in CATALOG {
        let status = if installed.iter().any(|m| m.name == e.name) {
            "installed"
        } else {
            "-"
        };
        let size = e.size().map(human).unwrap_or_else(|| "?".into());
        println!(
            "{:<24} {:<8} {:>9}  {:<9}  {}",
            e.name,
            format!("{:?}", e.engine).to_lowercase(),
            size,
            status,
            e.description
        );
    }
    for m in installed
        .iter()
        .filter(|m| find_in_catalog(&m.name).is_none())
    {
        println!(
            "{:<24} {:<8} {:>9}  {:<9}  {}",
            m.name,
            format!("{:?}", m.engine).to_lowercase(),
            human(m.size),
            "installed",
            m.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

//! Diarization in the server: the segmentation and speaker-embedding
//! models named by the settings, loaded on first use, shared by every
//! request (each running one holds an `Arc`, its lease) and dropped when
//! idle for the model TTL.
//!
//! A request that asks for speakers gets them or a typed error: the models
//! not installed (404 `diarization_model_not_found`), audio over
//! `max_diarization_seconds` (413 `diarization_too_long`), a model that
//! does not load or fails (500 `diarization_failed`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glagol_core::diarize::{assign, cluster, Diarization, DiarizeError, DiarizeOptions, Diarizer};

use crate::config::Config;
use crate::error::{ErrorKind, ServiceError};
use crate::models::Registry;

/// Known speakers at most per request (OpenAI's limit).
pub const MAX_KNOWN_SPEAKERS: usize = 4;
/// Cosine similarity from which a known speaker's clip names a speaker
/// found (same-speaker clips score about 0.5–0.8 with CAM++, different
/// speakers under 0.35).
const KNOWN_SPEAKER_SIMILARITY: f64 = 0.4;

/// What a request asks of diarization.
#[derive(Debug, Clone, Default)]
pub struct DiarizeRequest {
    pub options: DiarizeOptions,
    /// Names with a clip of each one's voice (16 kHz mono, 2–10 s),
    /// matched one to one to the speakers found.
    pub known: Vec<(String, Vec<f32>)>,
}

/// Most speakers a request may ask for.
const MAX_SPEAKERS: usize = 32;

impl DiarizeRequest {
    /// A request for speakers with optional count hints, checked.
    pub fn with_counts(
        exactly: Option<usize>,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Result<DiarizeRequest, ServiceError> {
        for (name, v) in [
            ("num_speakers", exactly),
            ("min_speakers", min),
            ("max_speakers", max),
        ] {
            if let Some(v) = v.filter(|v| !(1..=MAX_SPEAKERS).contains(v)) {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("{name} must be between 1 and {MAX_SPEAKERS}, got {v}"),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("min_speakers ({lo}) is more than max_speakers ({hi})"),
                ));
            }
        }
        Ok(DiarizeRequest {
            options: DiarizeOptions {
                speakers: cluster::SpeakerCount {
                    exactly,
                    min: min.unwrap_or(1),
                    max,
                },
                ..DiarizeOptions::default()
            },
            known: Vec::new(),
        })
    }
}

/// Largest known-speaker clip accepted, encoded (10 s of 48 kHz stereo
/// 16-bit WAV is under 2 MB).
const MAX_REFERENCE_BYTES: usize = 4 << 20;

/// A known speaker's clip from a data URL (`data:audio/wav;base64,…`),
/// decoded and checked to be 2–10 s long.
pub fn known_speaker(name: &str, data_url: &str) -> Result<(String, Vec<f32>), ServiceError> {
    use base64::Engine as _;
    let bad = |why: String| {
        ServiceError::invalid(
            "invalid_known_speaker",
            format!("known speaker {}: {why}", glagol_core::engine::quoted(name)),
        )
    };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(bad(
            "a name of 1 to 64 printable characters is needed".into()
        ));
    }
    let (head, payload) = data_url
        .trim()
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .ok_or_else(|| bad("the reference must be a data URL (data:audio/wav;base64,…)".into()))?;
    let (mime, encoding) = head.split_once(';').unwrap_or((head, ""));
    if encoding != "base64" {
        return Err(bad("the data URL must be base64 encoded".into()));
    }
    if payload.len() > MAX_REFERENCE_BYTES * 4 / 3 + 4 {
        return Err(bad(format!(
            "the clip is over {} MB",
            MAX_REFERENCE_BYTES >> 20
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| bad(format!("the data URL is not valid base64: {e}")))?;
    let extension = mime
        .rsplit('/')
        .next()
        .map(|e| e.trim_start_matches("x-").to_string());
    let limits = glagol_core::audio::AudioLimits {
        max_bytes: MAX_REFERENCE_BYTES as u64,
        max_duration_s: 30.0,
    };
    let audio = glagol_core::audio::decode_bytes(bytes, extension.as_deref(), &limits)
        .map_err(|e| bad(e.to_string()))?;
    let seconds = audio.duration();
    // OpenAI asks for 2–10 s; a little slack for encoders' padding.
    if !(1.9..=10.5).contains(&seconds) {
        return Err(bad(format!(
            "the clip is {seconds:.1} s long; give 2 to 10 s"
        )));
    }
    Ok((name.to_string(), audio.samples))
}

/// Who spoke when, with each speaker's label: a known speaker's name or
/// a letter.
pub struct Speakers {
    pub diarization: Diarization,
    pub labels: Vec<String>,
}

/// Runs diarization and names the speakers (blocking).
pub fn run(
    diarizer: &Diarizer,
    samples: &[f32],
    request: &DiarizeRequest,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Speakers, ServiceError> {
    let diarization = diarizer
        .diarize(samples, &request.options, stop)
        .map_err(failed)?;
    let mut labels: Vec<String> = (0..diarization.speakers()).map(assign::label).collect();
    let mut references = Vec::new();
    for (name, clip) in &request.known {
        match diarizer.embed(clip).map_err(failed)? {
            Some(e) => references.push((name, e)),
            None => {
                return Err(ServiceError::invalid(
                    "invalid_known_speaker",
                    format!("the reference clip of {name} is too short to recognise a voice"),
                ))
            }
        }
    }
    for (speaker, reference) in match_known(&diarization.centroids, &references) {
        labels[speaker] = references[reference].0.clone();
    }
    Ok(Speakers {
        diarization,
        labels,
    })
}

/// The one-to-one pairing of speakers to references with the highest
/// total similarity, pairs under [`KNOWN_SPEAKER_SIMILARITY`] left out.
fn match_known(centroids: &[Vec<f32>], references: &[(&String, Vec<f32>)]) -> Vec<(usize, usize)> {
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let similarity: Vec<Vec<f64>> = centroids
        .iter()
        .map(|c| {
            references
                .iter()
                .map(|(_, r)| 1.0 - cluster::cosine_distance(&to64(c), &to64(r)))
                .collect()
        })
        .collect();
    // Few references (at most 4): try every assignment.
    fn best(
        speaker: usize,
        used: u32,
        sim: &[Vec<f64>],
        pairs: &mut Vec<(usize, usize)>,
    ) -> (f64, Vec<(usize, usize)>) {
        if speaker == sim.len() {
            return (0.0, pairs.clone());
        }
        let mut top = best(speaker + 1, used, sim, pairs);
        for (r, &s) in sim[speaker].iter().enumerate() {
            if used & (1 << r) == 0 && s >= KNOWN_SPEAKER_SIMILARITY {
                pairs.push((speaker, r));
                let (score, chosen) = best(speaker + 1, used | (1 << r), sim, pairs);
                pairs.pop();
                if score + s > top.0 {
                    top = (score + s, chosen);
                }
            }
        }
        top
    }
    best(0, 0, &similarity, &mut Vec::new()).1
}

struct Loaded {
    /// (segmentation, embedding) model names.
    models: (String, String),
    diarizer: Arc<Diarizer>,
    last_used: Instant,
}

/// The diarization models of a server.
pub struct SpeakerModels {
    registry: Arc<Registry>,
    loaded: Mutex<Option<Loaded>>,
    /// Serialises loads, so concurrent first requests load once.
    loading: Mutex<()>,
}

pub(crate) fn failed(e: DiarizeError) -> ServiceError {
    match e {
        DiarizeError::Stopped => ServiceError::new(ErrorKind::Timeout, "cancelled", "cancelled"),
        other => ServiceError::new(
            ErrorKind::Internal,
            "diarization_failed",
            format!("diarization failed: {other}"),
        ),
    }
}

impl SpeakerModels {
    pub fn new(registry: Arc<Registry>) -> Self {
        SpeakerModels {
            registry,
            loaded: Mutex::new(None),
            loading: Mutex::new(()),
        }
    }

    /// Refuses audio diarization will not run on.
    pub fn check_duration(config: &Config, seconds: f64) -> Result<(), ServiceError> {
        let limit = config.settings.max_diarization_seconds;
        if seconds > limit {
            return Err(ServiceError::new(
                ErrorKind::TooLarge,
                "diarization_too_long",
                format!(
                    "the audio is {seconds:.0} s long; diarization runs on at most {limit:.0} s (max_diarization_seconds)"
                ),
            ));
        }
        Ok(())
    }

    /// The loaded models, loading them if needed (blocking: call off the
    /// async runtime).
    pub fn get(&self, config: &Config) -> Result<Arc<Diarizer>, ServiceError> {
        let wanted = (
            config.settings.segmentation_model.clone(),
            config.settings.diarization_model.clone(),
        );
        let current = |slot: &mut Option<Loaded>| {
            slot.as_mut().filter(|l| l.models == wanted).map(|l| {
                l.last_used = Instant::now();
                l.diarizer.clone()
            })
        };
        if let Some(d) = current(&mut self.lock()) {
            return Ok(d);
        }
        let _one_load = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = current(&mut self.lock()) {
            return Ok(d);
        }
        let path = |name: &str| self.registry.installed_any(name).map(|m| m.path);
        let (segmentation, embedding) = match (path(&wanted.0), path(&wanted.1)) {
            (Some(s), Some(e)) => (s, e),
            (s, e) => {
                let missing: Vec<&str> = [(&s, &wanted.0), (&e, &wanted.1)]
                    .into_iter()
                    .filter(|(p, _)| p.is_none())
                    .map(|(_, n)| n.as_str())
                    .collect();
                let quoted: Vec<String> = missing
                    .iter()
                    .map(|n| glagol_core::engine::quoted(n))
                    .collect();
                return Err(ServiceError::new(
                    ErrorKind::NotFound,
                    "diarization_model_not_found",
                    format!(
                        "diarization needs {} installed: run {} (or import them)",
                        quoted.join(" and "),
                        missing
                            .iter()
                            .map(|n| {
                                let n = if n.len() <= 64 { *n } else { "NAME" };
                                format!("`glagol models pull {n}`")
                            })
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                ));
            }
        };
        let started = Instant::now();
        let diarizer = Arc::new(
            Diarizer::load(&segmentation, &embedding, config.settings.threads).map_err(failed)?,
        );
        tracing::info!(
            segmentation = %wanted.0,
            embedding = %wanted.1,
            ms = started.elapsed().as_millis() as u64,
            "diarization models loaded"
        );
        metrics::gauge!("glagol_diarization_models_loaded").set(1.0);
        *self.lock() = Some(Loaded {
            models: wanted,
            diarizer: diarizer.clone(),
            last_used: Instant::now(),
        });
        Ok(diarizer)
    }

    /// Drops the models when unused for `ttl` (requests running keep
    /// their own `Arc` until they end).
    pub fn reap_idle(&self, ttl: Duration) {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|l| l.last_used.elapsed() >= ttl) {
            tracing::info!("diarization models unloaded after being idle");
            metrics::gauge!("glagol_diarization_models_loaded").set(0.0);
            *slot = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Loaded>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

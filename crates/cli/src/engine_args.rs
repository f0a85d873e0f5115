//! Engine and diarization-model flags shared by `transcribe` and `bench`.

use glagol_core::engine::EngineConfig;

#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Threads per inference (default: all cores, at most 8).
    #[arg(long, short)]
    pub threads: Option<usize>,
    /// Most audio chunks per encoder call (GigaAM).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Prefer int8-quantised model files where the model directory has them (GigaAM).
    #[arg(long)]
    pub int8: bool,
    /// Run Whisper's encoder over its whole 30 s window even for shorter audio
    /// (the reference behaviour; slower).
    #[arg(long)]
    pub full_window: bool,
}

impl EngineArgs {
    pub fn config(&self) -> EngineConfig {
        let mut c = EngineConfig::default();
        if let Some(t) = self.threads {
            c.threads = t.max(1);
        }
        c.max_batch = self.batch.max(1);
        c.int8 = self.int8;
        c.whisper_full_window = self.full_window;
        c
    }
}

/// The diarization models, by name or path.
#[derive(clap::Args, Clone)]
pub struct DiarizationModels {
    /// Speaker-embedding model (name or path).
    #[arg(long, default_value = "campplus-zh-en", value_name = "MODEL")]
    pub diarization_model: String,
    /// Speaker-segmentation model (name or path).
    #[arg(
        long,
        default_value = "pyannote-segmentation-3.0",
        value_name = "MODEL"
    )]
    pub segmentation_model: String,
}

impl DiarizationModels {
    /// Loads both from the store for `workers` threads.
    pub fn load(
        &self,
        store: &glagol_core::models::ModelStore,
        workers: usize,
    ) -> anyhow::Result<glagol_core::diarize::Diarizer> {
        use anyhow::Context;
        let segmentation = store
            .resolve(&self.segmentation_model)
            .context("the speaker-segmentation model")?;
        let embedding = store
            .resolve(&self.diarization_model)
            .context("the speaker-embedding model")?;
        Ok(glagol_core::diarize::Diarizer::load(
            &segmentation.path,
            &embedding.path,
            workers,
        )?)
    }
}

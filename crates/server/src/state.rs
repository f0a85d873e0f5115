//! What every part of the running server shares: the configuration in
//! force, the model registry, the service, and whether it is stopping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use glagol_core::engine::EngineConfig;
use glagol_core::models::ModelStore;

use crate::config::{Config, Current, Settings};
use crate::jobs::Jobs;
use crate::models::{LoadEngine, Registry};
use crate::scheduler::SchedulerConfig;
use crate::service::Service;

/// Re-reads the settings (flags, environment, file) on SIGHUP.
pub type Reloader = Box<dyn Fn() -> anyhow::Result<Settings> + Send + Sync>;

pub struct AppState {
    config: Arc<Current>,
    pub registry: Arc<Registry>,
    pub service: Service,
    shutting_down: AtomicBool,
    /// Tells long-lived connections (live sessions) that the server stops.
    shutdown: tokio::sync::watch::Sender<bool>,
    reloader: Option<Reloader>,
    /// Durable jobs, once started (`serve` starts them; in-process tests may not).
    jobs: OnceLock<Arc<Jobs>>,
}

impl AppState {
    /// The state for `config`, with engines built by `load_engine`.
    pub fn new(
        config: Config,
        reloader: Option<Reloader>,
        load_engine: LoadEngine,
    ) -> Arc<AppState> {
        let s = &config.settings;
        let registry = Registry::new(
            ModelStore::new(&s.models_dir),
            EngineConfig {
                threads: s.threads,
                whisper_full_window: s.whisper_full_window,
                ..Default::default()
            },
            SchedulerConfig {
                workers: s.workers,
                queue_depth: s.queue_depth,
                max_batch: s.max_batch,
                max_wait: config.batch_wait(),
            },
            load_engine,
        );
        registry.set_memory_policy(config.memory_limit(), config.memory_retry());
        let config = Arc::new(Current::new(config));
        Arc::new(AppState {
            service: Service::new(registry.clone(), config.clone()),
            registry,
            config,
            shutting_down: AtomicBool::new(false),
            shutdown: tokio::sync::watch::channel(false).0,
            reloader,
            jobs: OnceLock::new(),
        })
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// The configuration as it will be after any reload.
    pub fn current_config(&self) -> Arc<Current> {
        self.config.clone()
    }

    pub fn jobs(&self) -> Option<&Arc<Jobs>> {
        self.jobs.get()
    }

    pub fn set_jobs(&self, jobs: Arc<Jobs>) {
        let _ = self.jobs.set(jobs);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
    }

    /// Resolves when the server begins to shut down.
    pub fn on_shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Re-reads the settings and applies the reloadable ones; the others
    /// keep their value and are reported as needing a restart. On any
    /// error the old configuration stays.
    pub fn reload(&self) -> anyhow::Result<Vec<String>> {
        let Some(reloader) = &self.reloader else {
            anyhow::bail!("this server was started without a reloadable configuration");
        };
        let (config, notes) = self.config().reloaded(reloader()?)?;
        self.registry
            .set_memory_policy(config.memory_limit(), config.memory_retry());
        self.config.set(config);
        Ok(notes)
    }
}

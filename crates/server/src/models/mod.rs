//! Models in the server: which are installed, which are loaded, loading on
//! demand (one load per model at a time, warm-up before `ready`, waiting
//! for memory), unloading when idle, and leases that keep a model loaded
//! while someone holds it.
//!
//! - [`registry`]: the slots, their state and lifecycle events.
//! - [`loader`]: the load thread.
//! - [`lease`]: the RAII pin a request, session or job holds.
//! - [`installed`]: the store's listing, read once per change.

mod installed;
pub mod lease;
mod loader;
pub mod registry;

use std::sync::Arc;

use glagol_core::engine::{Engine, EngineConfig, EngineError};
use glagol_core::models::ResolvedModel;

pub use lease::Lease;
pub use registry::{LoadOutcome, ModelEvent, ModelStatus, Registry, State};

/// Builds an engine for a model: `glagol_core::engine::load`, or a fake in tests.
pub type LoadEngine = Arc<
    dyn Fn(&ResolvedModel, &EngineConfig) -> Result<Box<dyn Engine>, EngineError> + Send + Sync,
>;

/// The real engines.
pub fn real_engines() -> LoadEngine {
    Arc::new(glagol_core::engine::load)
}

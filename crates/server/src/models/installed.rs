//! The installed models, read from the store once per change.
//!
//! Listing the store reads every model's manifest. The listing is kept and
//! read again only when the store directory's modification time changes
//! (an import, a pull or a removal adds or removes an entry there).

use std::sync::Mutex;
use std::time::SystemTime;

use glagol_core::models::{InstalledModel, ModelStore};

pub struct Installed {
    store: ModelStore,
    cache: Mutex<Option<(Option<SystemTime>, Vec<InstalledModel>)>>,
}

impl Installed {
    pub fn new(store: ModelStore) -> Self {
        Installed {
            store,
            cache: Mutex::new(None),
        }
    }

    fn stamp(&self) -> Option<SystemTime> {
        std::fs::metadata(self.store.root())
            .and_then(|m| m.modified())
            .ok()
    }

    /// Every installed model that can transcribe (not the VAD nor the
    /// diarization models), by name.
    pub fn list(&self) -> Vec<InstalledModel> {
        self.all()
            .into_iter()
            .filter(|m| m.engine.transcribes())
            .collect()
    }

    /// Every installed model of any kind.
    pub fn all(&self) -> Vec<InstalledModel> {
        let stamp = self.stamp();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some((at, models)) if at.is_some() && *at == stamp => models.clone(),
            _ => {
                let models: Vec<InstalledModel> =
                    self.store.list().unwrap_or_default().into_iter().collect();
                *cache = Some((stamp, models.clone()));
                models
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<InstalledModel> {
        self.list().into_iter().find(|m| m.name == name)
    }

    /// An installed model of any kind.
    pub fn any(&self, name: &str) -> Option<InstalledModel> {
        self.all().into_iter().find(|m| m.name == name)
    }
}

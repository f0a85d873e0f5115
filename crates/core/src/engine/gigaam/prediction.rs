//! The prediction network's outputs, remembered by token history.
//!
//! A live utterance is recognised again and again while it grows (its
//! partials, then its final), and each recognition emits mostly the tokens
//! the one before did. What the prediction network gives after a token
//! history is a function of that history alone, so it is computed once and
//! looked up after: the tokens decoded are exactly those without the cache,
//! and an utterance's later recognitions run the network only for the
//! tokens that are new. Entries live for two generations of
//! [`PredictionCache::GENERATION`] insertions (about 4 KB each), so the
//! memory stays bounded whatever the traffic.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// The prediction network's output for a history, and its state after it.
#[derive(Debug)]
pub(super) struct Prediction {
    pub dec: Vec<f32>,
    pub h: Vec<f32>,
    pub c: Vec<f32>,
}

/// A token history, by two independent 64-bit hashes of it (a collision
/// would need both to agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct History(u64, u64);

impl History {
    /// No token emitted yet.
    pub const START: History = History(0, 0);

    /// This history followed by `token`.
    pub fn then(self, token: usize) -> History {
        let half = |salt: u8| {
            let mut h = DefaultHasher::new();
            (salt, self.0, self.1, token).hash(&mut h);
            h.finish()
        };
        History(half(1), half(2))
    }
}

type Generation = HashMap<History, Arc<Prediction>>;

/// Predictions by history, shared by an engine's decoders.
#[derive(Debug, Default)]
pub(super) struct PredictionCache {
    /// The newest generation, then the one before.
    generations: Mutex<(Generation, Generation)>,
}

impl PredictionCache {
    /// Insertions per generation.
    pub const GENERATION: usize = 2048;

    /// The prediction after `history`, from `run` when not known yet.
    pub fn get_or_run<E>(
        &self,
        history: History,
        run: impl FnOnce() -> Result<Prediction, E>,
    ) -> Result<Arc<Prediction>, E> {
        if let Some(p) = self.get(history) {
            return Ok(p);
        }
        let p = Arc::new(run()?);
        self.put(history, p.clone());
        Ok(p)
    }

    fn get(&self, history: History) -> Option<Arc<Prediction>> {
        let mut g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = g.0.get(&history) {
            return Some(p.clone());
        }
        // Still in use: keep it for another generation.
        let p = g.1.remove(&history)?;
        Self::insert(&mut g, history, p.clone());
        Some(p)
    }

    fn put(&self, history: History, prediction: Arc<Prediction>) {
        let mut g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        Self::insert(&mut g, history, prediction);
    }

    fn insert(g: &mut (Generation, Generation), history: History, p: Arc<Prediction>) {
        if g.0.len() >= Self::GENERATION {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(history, p);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.generations.lock().unwrap();
        g.0.len() + g.1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(x: f32) -> Arc<Prediction> {
        Arc::new(Prediction {
            dec: vec![x],
            h: vec![],
            c: vec![],
        })
    }

    #[test]
    fn histories_differ_by_every_token_and_its_place() {
        let a = History::START.then(1).then(2);
        assert_eq!(a, History::START.then(1).then(2));
        assert_ne!(a, History::START.then(2).then(1));
        assert_ne!(a, History::START.then(1));
        assert_ne!(History::START.then(0), History::START);
    }

    #[test]
    fn entries_in_use_survive_and_the_rest_are_forgotten() {
        let cache = PredictionCache::default();
        let keep = History::START.then(7);
        cache.put(keep, prediction(7.0));
        let mut h = History::START;
        for i in 0..3 * PredictionCache::GENERATION {
            h = h.then(i);
            cache.put(h, prediction(0.0));
            if i % 1000 == 0 {
                assert_eq!(cache.get(keep).unwrap().dec, vec![7.0]);
            }
        }
        assert!(cache.len() <= 2 * PredictionCache::GENERATION);
        assert!(cache.get(History::START.then(0)).is_none());
        assert_eq!(cache.get(keep).unwrap().dec, vec![7.0]);
    }
}

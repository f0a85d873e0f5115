//! ONNX Runtime sessions for the GigaAM parts, and a blocking pool of them
//! (`Session::run` needs `&mut`, so concurrent calls each take one).

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;

use crate::engine::EngineError;
use crate::runtime;

/// A blocking pool of ONNX sessions (`Session::run` needs `&mut`).
pub(super) struct Pool {
    items: Mutex<Vec<Session>>,
    ready: std::sync::Condvar,
}

impl Pool {
    pub(super) fn new(items: Vec<Session>) -> Self {
        Pool {
            items: Mutex::new(items),
            ready: std::sync::Condvar::new(),
        }
    }

    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let mut session = {
            let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(s) = items.pop() {
                    break s;
                }
                items = self.ready.wait(items).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = f(&mut session);
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(session);
        self.ready.notify_one();
        result
    }
}

fn load_err(path: &Path) -> impl Fn(ort::Error) -> EngineError + '_ {
    move |e| EngineError::Load {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

pub(super) fn session(path: &Path, threads: usize) -> Result<Session, EngineError> {
    let env = runtime::environment()?;
    Session::builder(env)
        .and_then(|b| {
            Ok(b.with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)?)
        })
        .and_then(|b| Ok(b.with_intra_threads(threads)?))
        .and_then(|b| Ok(b.with_inter_threads(1)?))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(load_err(path))
}

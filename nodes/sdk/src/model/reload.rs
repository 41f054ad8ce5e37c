//! Hot reload: a model slot whose model can be replaced while requests are being served.
//!
//! [`ModelSlot`] holds the current model behind an `Arc`. A request takes the `Arc` once
//! ([`ModelSlot::current`]) and uses that model from preprocessing to answer, so swapping in a
//! new model never changes the model under a request in flight and never drops one: the old
//! model is freed when its last request is done.
//!
//! [`watch`] polls a model directory and swaps in a new model when its files changed and then
//! stayed unchanged for one more poll (a copy in progress is not loaded half-written). Loading
//! (and warming up) the new model happens on a blocking thread while the old one keeps serving;
//! a model that fails to load is logged and the old one stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

/// The current model of a node, replaceable at run time.
#[derive(Debug)]
pub struct ModelSlot<M> {
    current: RwLock<Arc<M>>,
}

impl<M> ModelSlot<M> {
    /// A slot holding `model`.
    pub fn new(model: M) -> Self {
        ModelSlot {
            current: RwLock::new(Arc::new(model)),
        }
    }

    /// The model to use for one request, from start to end.
    pub fn current(&self) -> Arc<M> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Makes `model` current for new requests; returns the previous one.
    pub fn replace(&self, model: M) -> Arc<M> {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *current, Arc::new(model))
    }
}

/// What the files of a model directory look like: per file, its size and modification time
/// (`None` when missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSignature(Vec<Option<(u64, SystemTime)>>);

impl DirSignature {
    /// Reads the signature of `files` inside `dir`.
    pub fn read(dir: &Path, files: &[&str]) -> DirSignature {
        DirSignature(
            files
                .iter()
                .map(|name| {
                    let meta = std::fs::metadata(dir.join(name)).ok()?;
                    Some((meta.len(), meta.modified().ok()?))
                })
                .collect(),
        )
    }

    /// Whether every file exists.
    pub fn complete(&self) -> bool {
        self.0.iter().all(Option::is_some)
    }
}

/// How a model directory is watched.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// The model directory.
    pub dir: PathBuf,
    /// The files whose change means a new model (e.g. `model.onnx`, `model.yaml`).
    pub files: Vec<&'static str>,
    /// How often the files are looked at.
    pub interval: Duration,
    /// Name of the node, for the log.
    pub node: String,
}

/// Watches `spec.dir` and replaces the model in `slot` when its files change; `load` reads and
/// warms up a model (blocking; it runs on the blocking pool). Must be called within a Tokio
/// runtime. The task ends when the slot is dropped.
///
/// `loaded` is the signature of the files the current model was loaded from (read it *before*
/// loading, so a change during the first load is seen).
pub fn watch<M, E, F>(
    slot: &Arc<ModelSlot<M>>,
    spec: WatchSpec,
    loaded: DirSignature,
    load: F,
) -> tokio::task::JoinHandle<()>
where
    M: Send + Sync + 'static,
    E: std::fmt::Display + Send + 'static,
    F: Fn(&Path) -> Result<M, E> + Send + Sync + 'static,
{
    let slot: Weak<ModelSlot<M>> = Arc::downgrade(slot);
    let load = Arc::new(load);
    tokio::spawn(async move {
        // The signature last acted on (loaded, or failed to load) and the one seen last poll.
        let mut settled = loaded;
        let mut previous: Option<DirSignature> = None;
        let mut ticker = tokio::time::interval(spec.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if slot.strong_count() == 0 {
                return;
            }
            // File metadata can block (a network share): off the async workers.
            let (dir, files) = (spec.dir.clone(), spec.files.clone());
            let Ok(seen) =
                tokio::task::spawn_blocking(move || DirSignature::read(&dir, &files)).await
            else {
                return;
            };
            let stable = previous.as_ref() == Some(&seen);
            previous = Some(seen.clone());
            if seen == settled || !stable || !seen.complete() {
                continue;
            }
            settled = seen;
            let (dir, load) = (spec.dir.clone(), load.clone());
            tracing::info!(node = %spec.node, dir = %dir.display(), "model files changed; loading the new model");
            match tokio::task::spawn_blocking(move || load(&dir)).await {
                Ok(Ok(model)) => {
                    let Some(slot) = slot.upgrade() else { return };
                    slot.replace(model);
                    tracing::info!(node = %spec.node, dir = %spec.dir.display(), "new model serving");
                }
                Ok(Err(e)) => tracing::error!(
                    node = %spec.node,
                    dir = %spec.dir.display(),
                    "new model not loaded, the previous one keeps serving: {e}"
                ),
                Err(e) => tracing::error!(
                    node = %spec.node,
                    dir = %spec.dir.display(),
                    "loading the new model failed, the previous one keeps serving: {e}"
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_keeps_the_old_model_alive_for_its_holders() {
        let slot = ModelSlot::new(1);
        let held = slot.current();
        let old = slot.replace(2);
        assert_eq!((*held, *old, *slot.current()), (1, 1, 2));
    }

    #[tokio::test]
    async fn a_changed_directory_is_reloaded_once_stable_and_a_bad_model_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.txt");
        std::fs::write(&path, "1").unwrap();
        let load = |dir: &Path| -> Result<u32, String> {
            let text = std::fs::read_to_string(dir.join("model.txt")).map_err(|e| e.to_string())?;
            text.trim()
                .parse()
                .map_err(|_| format!("bad model {text:?}"))
        };
        let signature = DirSignature::read(dir.path(), &["model.txt"]);
        let slot = Arc::new(ModelSlot::new(load(dir.path()).unwrap()));
        let spec = WatchSpec {
            dir: dir.path().to_path_buf(),
            files: vec!["model.txt"],
            interval: Duration::from_millis(20),
            node: "test".into(),
        };
        let task = watch(&slot, spec, signature, load);

        let wait_for = |want: u32| {
            let slot = slot.clone();
            async move {
                for _ in 0..500 {
                    if *slot.current() == want {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("model never became {want}, still {}", slot.current());
            }
        };
        std::fs::write(&path, "22").unwrap();
        wait_for(22).await;
        // Not a model: logged, and 22 keeps serving.
        std::fs::write(&path, "garbage").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*slot.current(), 22);
        std::fs::write(&path, "333").unwrap();
        wait_for(333).await;

        drop(slot);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the watcher ends with its slot")
            .unwrap();
    }
}

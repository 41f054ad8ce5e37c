//! Shared ONNX Runtime set-up for model nodes (`classify` now, `segment` later).
//!
//! Loupe links ONNX Runtime dynamically (`ort`'s `load-dynamic` feature) because `ort`'s
//! binary download cannot work offline; the library comes from the `onnxruntime` Python wheel
//! that the repository's set-up script installs into `.venv`. Loading goes through
//! [`ort::init_from`], so a missing or broken library is an [`OnnxError`] value that a node
//! reports at build time, never a panic in the middle of serving.
//!
//! Where the library is looked for, first hit wins:
//! 1. the file named by the environment variable [`DYLIB_ENV`] (`ORT_DYLIB_PATH`), if set;
//! 2. `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` in the current
//!    directory or any of its ancestors;
//! 3. the same under the executable's directory or any of its ancestors (so `target/debug/loupe`
//!    finds the repository's `.venv` whatever directory it is started from).
//!
//! ONNX Runtime allows one environment per process, and `ort` only keeps a weak reference to
//! it, so this module builds it once and holds it for the life of the process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;

/// Environment variable naming the ONNX Runtime shared library to load.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The ONNX Runtime release Loupe is built and tested against (the `onnxruntime` wheel's version).
pub const ORT_VERSION: &str = "1.31.1";

/// How to get the library, appended to every "cannot load ONNX Runtime" error.
pub const HOW_TO_GET_LIBRARY: &str = "to get it, run `tests/run` or \
     `python3 -m venv .venv && .venv/bin/pip install onnxruntime==1.31.1` at the repository root, \
     or set ORT_DYLIB_PATH to the path of libonnxruntime.so";

/// Why ONNX Runtime or a model could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// No ONNX Runtime shared library where one was looked for.
    #[error("ONNX Runtime library not found ({searched}); {HOW_TO_GET_LIBRARY}")]
    LibraryNotFound {
        /// Where it was looked for, in words.
        searched: String,
    },
    /// A library file exists but could not be loaded (wrong file, wrong version, missing symbols).
    #[error("cannot load ONNX Runtime library {}: {message}; {HOW_TO_GET_LIBRARY}", path.display())]
    LibraryLoad {
        /// The file that was tried.
        path: PathBuf,
        /// What the loader said.
        message: String,
    },
    /// The library loaded but the ONNX Runtime environment could not be created.
    #[error("cannot create the ONNX Runtime environment: {0}")]
    Environment(#[source] ort::Error),
    /// The model file does not exist.
    #[error("model file {} not found", path.display())]
    ModelNotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// ONNX Runtime rejected the model or the session options.
    #[error("cannot load model {}: {message}", path.display())]
    Session {
        /// The model file.
        path: PathBuf,
        /// What ONNX Runtime said.
        message: String,
    },
}

/// The process-wide environment, set once the library is loaded.
static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
/// Serialises first-time initialisation: `ort` refuses a second environment, so two threads
/// racing through [`init`] must not both build one.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from the first library found (see the module docs) and creates the
/// process-wide environment.
///
/// Idempotent and cheap after the first success. A failure is not remembered: a later call
/// searches again (for example after `ORT_DYLIB_PATH` was set).
pub fn init() -> Result<(), OnnxError> {
    if ENVIRONMENT.get().is_some() {
        return Ok(());
    }
    init_from(find_library()?)
}

/// For tests that need ONNX Runtime: [`init`], and true when it loaded. When the library is
/// simply absent the test should skip: this says `SKIPPED: ...` and returns false — except
/// with `CI=true`, where it panics, so CI never passes silently. A library that exists but
/// does not load always panics.
pub fn available_for_tests() -> bool {
    match init() {
        Ok(()) => true,
        Err(e @ OnnxError::LibraryNotFound { .. }) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and ONNX Runtime is missing: {e}"
            );
            eprintln!("SKIPPED: {e}");
            false
        }
        Err(e) => panic!("ONNX Runtime is present but failed to load: {e}"),
    }
}

/// Loads ONNX Runtime from `path` and creates the process-wide environment.
///
/// A path that is not an existing file is [`OnnxError::LibraryNotFound`]. Once a library has
/// been loaded it stays loaded for the life of the process (ONNX Runtime cannot be unloaded),
/// so after a success later calls with an existing file return `Ok` without loading it.
pub fn init_from(path: impl AsRef<Path>) -> Result<(), OnnxError> {
    let path = path.as_ref();
    // Checked here rather than left to the loader so that a wrong path gets the how-to message
    // and the same error kind whatever state the process is in.
    if !path.is_file() {
        return Err(OnnxError::LibraryNotFound {
            searched: format!("no file at {}", path.display()),
        });
    }
    // `ort` resolves a relative path against the executable's directory and panics if it
    // cannot find the executable; an absolute path avoids both surprises.
    let path = std::path::absolute(path).map_err(|e| OnnxError::LibraryLoad {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;

    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if ENVIRONMENT.get().is_some() {
        return Ok(());
    }
    let builder = ort::init_from(&path).map_err(|e| OnnxError::LibraryLoad {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let environment = builder
        .with_name("loupe")
        // Inspection images are often confidential; never let the runtime phone home.
        .with_telemetry(false)
        .build()
        .map_err(OnnxError::Environment)?;
    tracing::info!(library = %path.display(), "loaded ONNX Runtime");
    // Cannot already be set: we hold the lock and checked above.
    let _ = ENVIRONMENT.set(environment);
    Ok(())
}

/// The process-wide environment, initialising ONNX Runtime first if needed.
pub fn environment() -> Result<&'static Environment, OnnxError> {
    init()?;
    ENVIRONMENT.get().ok_or_else(|| OnnxError::LibraryNotFound {
        searched: "environment missing after initialisation".to_string(),
    })
}

/// Finds the ONNX Runtime shared library without loading it (see the module docs for the
/// search order).
pub fn find_library() -> Result<PathBuf, OnnxError> {
    if let Some(value) = std::env::var_os(DYLIB_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        // An explicit setting wins; silently falling back to another library would hide a
        // typo and serve with a runtime nobody chose.
        return if path.is_file() {
            Ok(path)
        } else {
            Err(OnnxError::LibraryNotFound {
                searched: format!("{DYLIB_ENV}={} is not a file", path.display()),
            })
        };
    }

    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        roots.push(dir);
    }
    for root in &roots {
        for dir in root.ancestors() {
            if let Some(found) = find_in_venv(&dir.join(".venv")) {
                return Ok(found);
            }
        }
    }
    let searched = roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    Err(OnnxError::LibraryNotFound {
        searched: format!(
            "{DYLIB_ENV} is not set and no .venv/lib/python3*/site-packages/onnxruntime/capi/\
             libonnxruntime.so* in {searched} or their parent directories"
        ),
    })
}

/// The ONNX Runtime library inside a Python virtual environment, if the wheel is installed.
///
/// Where several Python versions or library files match, the last in name order is taken so
/// the choice is deterministic.
pub fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons.iter().rev().find_map(|python| {
        let capi = python.join("site-packages/onnxruntime/capi");
        let mut libs: Vec<PathBuf> = std::fs::read_dir(&capi)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| is_runtime_library(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        libs.sort();
        libs.pop()
    })
}

/// `libonnxruntime.so`, `libonnxruntime.so.1.31.1`, or macOS's `libonnxruntime.1.31.1.dylib`;
/// not the wheel's `libonnxruntime_providers_shared.so`, which is a plug-in, not the runtime.
fn is_runtime_library(name: &str) -> bool {
    name.starts_with("libonnxruntime.so")
        || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib"))
}

/// How a model uses the cores: how many inferences run at once (each in its own session) and
/// how many threads one inference may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads {
    /// Sessions of the model, so that this many inferences run at once (at least 1).
    pub sessions: usize,
    /// Threads of one inference (`0`: ONNX Runtime decides).
    pub intra: usize,
}

impl Threads {
    /// One session, `intra` threads per inference (`loupe eval`, benchmarks, tests).
    pub fn single(intra: usize) -> Self {
        Threads { sessions: 1, intra }
    }
}

impl Default for Threads {
    fn default() -> Self {
        Threads::single(1)
    }
}

/// Sessions of one model: inferences run at once, each on a free session.
///
/// `Session::run` takes `&mut self`, so one session runs one inference at a time; a pool of
/// them lets a node use the cores it is given (the weights are loaded once per session: a few
/// MB each for Loupe's models).
pub struct SessionPool {
    sessions: Vec<std::sync::Mutex<Session>>,
    next: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl SessionPool {
    /// `threads.sessions` sessions of the model at `model_path` (blocking).
    pub fn load(model_path: impl AsRef<Path>, threads: Threads) -> Result<Self, OnnxError> {
        let path = model_path.as_ref();
        let sessions = (0..threads.sessions.max(1))
            .map(|_| session(path, threads.intra).map(std::sync::Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SessionPool {
            sessions,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Always false: a pool holds at least one session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The first session: for what needs one session's view (graph metadata, the OIP).
    pub fn first(&self) -> &std::sync::Mutex<Session> {
        &self.sessions[0]
    }

    /// Runs `f` on a free session (waiting for one when all are busy).
    pub fn run<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            if let Ok(mut session) = self.sessions[(start + i) % n].try_lock() {
                return f(&mut session);
            }
        }
        let mut session = self.sessions[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(&mut session)
    }
}

/// Loads a model into a new session on the process-wide environment (initialising ONNX Runtime
/// first if needed).
///
/// `intra_threads` is the number of threads one inference may use (a model node's
/// `serving.intra_threads`, [`crate::model::serving::ServingSettings`]); `0` lets ONNX Runtime
/// choose (one per physical core), which is rarely right when several nodes share a machine.
pub fn session(model_path: impl AsRef<Path>, intra_threads: usize) -> Result<Session, OnnxError> {
    let path = model_path.as_ref();
    let environment = environment()?;
    if !path.is_file() {
        return Err(OnnxError::ModelNotFound {
            path: path.to_path_buf(),
        });
    }
    let session_error = |message: String| OnnxError::Session {
        path: path.to_path_buf(),
        message,
    };
    Session::builder(environment)
        .map_err(|e| session_error(e.to_string()))?
        .with_intra_threads(intra_threads)
        .map_err(|e| session_error(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| session_error(e.to_string()))
}

/// Checks that a session's graph takes exactly one float32 image input named and shaped as
/// the card's `input` says, and has an output named `output`; returns that output's shape (or
/// `None` where the graph leaves it unknown). The error is a sentence naming what disagrees,
/// so a card written for another model fails at load, not on the first image.
pub fn check_contract(
    session: &Session,
    input: &crate::model::input::InputSpec,
    output: &str,
) -> Result<Option<Vec<i64>>, String> {
    let names = |outlets: &[ort::value::Outlet]| {
        outlets
            .iter()
            .map(|o| o.name().to_string())
            .collect::<Vec<_>>()
    };
    let graph_input = session
        .inputs()
        .iter()
        .find(|i| i.name() == input.name)
        .ok_or_else(|| {
            format!(
                "card input {:?} is not a graph input (graph inputs: {:?})",
                input.name,
                names(session.inputs())
            )
        })?;
    if session.inputs().len() != 1 {
        return Err(format!(
            "the graph has {} inputs {:?}; an image model takes exactly one image",
            session.inputs().len(),
            names(session.inputs())
        ));
    }
    if let Some(graph_shape) = graph_input.dtype().tensor_shape()
        && !compatible(graph_shape, &input.shape)
    {
        return Err(format!(
            "input {:?} has shape {graph_shape} in the graph but {:?} in the card",
            input.name, input.shape
        ));
    }
    if graph_input.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
        return Err(format!(
            "input {:?} is {:?} in the graph; only float32 inputs are supported",
            input.name,
            graph_input.dtype()
        ));
    }
    let graph_output = session
        .outputs()
        .iter()
        .find(|o| o.name() == output)
        .ok_or_else(|| {
            format!(
                "card output {output:?} is not a graph output (graph outputs: {:?})",
                names(session.outputs())
            )
        })?;
    Ok(graph_output
        .dtype()
        .tensor_shape()
        .map(|shape| shape.iter().copied().collect()))
}

/// Runs an image model's session on one input tensor and hands the named output (shape,
/// values) to `read`, without copying it. `Err` is ONNX Runtime's message (or a missing
/// output's name).
///
/// `Session::run` takes `&mut self` in ort rc.15, so the session sits behind a mutex and
/// inferences take turns (concurrent requests share batches instead). A panic while the lock
/// was held happened in Rust code around `run`, not inside ONNX Runtime's state, so a
/// poisoned lock's session is still usable.
pub fn run_image_model<R>(
    sessions: &SessionPool,
    input_name: &str,
    input: &ndarray::Array4<f32>,
    output_name: &str,
    read: impl FnOnce(&ort::value::Shape, &[f32]) -> R,
) -> Result<R, String> {
    let tensor = ort::value::TensorRef::from_array_view(input.view()).map_err(|e| e.to_string())?;
    sessions.run(|session| {
        let outputs = session
            .run(ort::inputs![input_name => tensor])
            .map_err(|e| e.to_string())?;
        let output = outputs
            .get(output_name)
            .ok_or_else(|| format!("no output named {output_name:?}"))?;
        let (shape, values) = output
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        Ok(read(shape, values))
    })
}

/// The batch size a model is fixed to, if any: the graph's first input dimension when it is
/// fixed, else the card's. A batcher must not group more images than this.
pub fn fixed_batch(session: &Session, input: &crate::model::input::InputSpec) -> Option<usize> {
    let graph = session
        .inputs()
        .iter()
        .find(|i| i.name() == input.name)
        .and_then(|i| i.dtype().tensor_shape().and_then(|s| s.first().copied()));
    [graph, input.shape.first().copied()]
        .into_iter()
        .flatten()
        .find(|d| *d > 0)
        .map(|d| d as usize)
}

/// Same rank, and every dimension fixed on both sides is equal (negative matches anything).
pub fn compatible(graph: &[i64], card: &[i64]) -> bool {
    graph.len() == card.len()
        && graph
            .iter()
            .zip(card)
            .all(|(g, c)| *g < 0 || *c < 0 || g == c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bogus_path_is_a_typed_error_with_the_how_to() {
        let err = init_from("/nonexistent/loupe/libonnxruntime.so.1.31.1").unwrap_err();
        assert!(matches!(err, OnnxError::LibraryNotFound { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("/nonexistent/loupe/libonnxruntime.so.1.31.1"));
        assert!(message.contains("tests/run"));
        assert!(message.contains("pip install onnxruntime==1.31.1"));
        assert!(message.contains("ORT_DYLIB_PATH"));
    }

    #[test]
    fn finds_the_library_in_a_venv_layout() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join(".venv");
        assert_eq!(find_in_venv(&venv), None);
        let capi = venv.join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        assert_eq!(find_in_venv(&venv), None);
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        assert_eq!(
            find_in_venv(&venv),
            Some(capi.join("libonnxruntime.so.1.31.1"))
        );
    }

    #[test]
    fn shapes_are_compared_on_fixed_dimensions() {
        assert!(compatible(&[-1, 3, 32, 32], &[-1, 3, 32, 32]));
        assert!(compatible(&[-1, 3, 32, 32], &[1, 3, 32, 32]));
        assert!(!compatible(&[-1, 3, 32, 32], &[-1, 3, 48, 48]));
        assert!(!compatible(&[-1, 3, 32], &[-1, 3, 32, 32]));
    }

    #[test]
    fn library_names() {
        assert!(is_runtime_library("libonnxruntime.so"));
        assert!(is_runtime_library("libonnxruntime.so.1.31.1"));
        assert!(is_runtime_library("libonnxruntime.1.31.1.dylib"));
        assert!(!is_runtime_library("libonnxruntime_providers_shared.so"));
        assert!(!is_runtime_library("onnxruntime_pybind11_state.so"));
    }
}

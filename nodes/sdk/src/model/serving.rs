//! How a model is served: the `serving:` settings every model node (`classify`, `segment`)
//! takes, with one set of defaults.
//!
//! ```yaml
//! settings:
//!   model: models/coil-classifier
//!   serving:
//!     intra_threads: 1
//!     sessions: 0          # one per core
//!     max_batch: 8
//!     max_batch_delay: 2ms
//!     batch_queue: 64
//!     reload_interval: 2s
//!     max_pixels: 50000000
//!     max_bytes: 67108864
//! ```
//!
//! Every key is optional; an unknown key is an error. A node embeds [`ServingSettings`] as
//! `#[serde(default)] pub serving: ServingSettings` and reports [`ServingSettings::problems`]
//! under its key with [`ServingSettings::problems_at`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::SettingsError;
use crate::imaging::DecodeLimits;

/// The key model nodes read [`ServingSettings`] from.
pub const KEY: &str = "serving";

/// Batching, threading, hot-reload and image-size settings of a served model (the `serving:`
/// key of `classify` and `segment`).
///
/// Defaults (the figures are in `benches/README.md`, 2-vCPU CPU, ONNX Runtime's CPU
/// execution provider): one session per core (that many inferences at once), one intra-op
/// thread each, batching off, `2ms` batch delay, a queue of 64
/// prepared images, a look at the model directory every `2s`, images up to 50 megapixels and
/// 64 MiB (the same as `preprocess` accepts, so an image it passes on is never refused here).
///
/// Memory: every image is decoded by [`crate::imaging::decode`], which checks `max_pixels`
/// and `max_bytes` from the header before any pixel is allocated (a decompression bomb costs
/// nothing), and at most one image per core is decoded at a time. One decode holds at most
/// [`DecodeLimits::for_pixels`]'s allocation limit (512 MiB at the default 50 megapixels,
/// 16-bit RGBA); a request waiting for its turn holds only its encoded content, bounded by the
/// node's largest message and `max_in_flight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServingSettings {
    /// Threads one inference may use (default `1`). `0` lets ONNX Runtime use one per core,
    /// which oversubscribes the machine when several nodes share it; every figure in
    /// `benches/README.md` is measured with `1`.
    #[serde(default = "default_intra_threads")]
    pub intra_threads: usize,
    /// Inferences run at once, each in its own ONNX Runtime session (the model's weights are
    /// loaded once per session). `0` (the default): one per core the process may use, divided
    /// by `intra_threads` — so a node uses every core it is given (figures in
    /// `benches/README.md`). The bound on in-flight work is unchanged: batches wait in the
    /// same bounded queue.
    #[serde(default)]
    pub sessions: usize,
    /// Most images run in one inference (dynamic batching); `1` (the default) turns batching
    /// off. On a CPU with one intra-op thread a batch costs what its images cost one by one
    /// (1.65 vs 1.54 ms per image for the coil classifier), so batching gains nothing there
    /// (measured: `benches/README.md`); raise it where one inference is parallel (a GPU, more
    /// threads). A model whose graph takes a fixed batch size caps it.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest the first image of a batch waits for more (humantime, e.g. `2ms`; default
    /// `2ms`, at most `1s`, as it adds to a request's latency). Only spent while other
    /// requests are on their way: a lone request never waits.
    #[serde(default = "default_max_batch_delay", with = "crate::config::duration")]
    #[schemars(with = "String")]
    pub max_batch_delay: Duration,
    /// Most prepared images waiting for a batch (default `64`); more requests wait for room
    /// (back pressure). `64` is classify's former default, with which every node and load
    /// figure in `benches/README.md` was measured (up to 32 concurrent requests, batches of
    /// 8); segment's former `16` was never measured (its benchmark sends one image at a
    /// time). A request waiting for room keeps its prepared image too, so the number of
    /// requests in flight, not this queue, bounds memory.
    #[serde(default = "default_batch_queue")]
    pub batch_queue: usize,
    /// How often the model directory is looked at for a changed `model.onnx` or `model.yaml`
    /// to load (hot reload; humantime, e.g. `2s`; default `2s`); `0s` turns hot reload off.
    #[serde(default = "default_reload_interval", with = "crate::config::duration")]
    #[schemars(with = "String")]
    pub reload_interval: Duration,
    /// Largest image accepted, in pixels (width x height as stored in the file), checked from
    /// the header before anything is decoded; a larger image goes to `failure` with
    /// `error.kind = too_large` (default 50 000 000, as `preprocess`). Applies to every
    /// backend: the image is decoded in this node either way.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Largest encoded image accepted, in bytes; larger content goes to `failure` with
    /// `error.kind = too_large` (default 64 MiB; the node's largest message also applies).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_intra_threads() -> usize {
    1
}

fn default_max_batch() -> usize {
    1
}

fn default_max_batch_delay() -> Duration {
    Duration::from_millis(2)
}

fn default_batch_queue() -> usize {
    64
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_max_pixels() -> u64 {
    DecodeLimits::DEFAULT_MAX_PIXELS
}

fn default_max_bytes() -> u64 {
    DecodeLimits::DEFAULT_MAX_BYTES as u64
}

impl Default for ServingSettings {
    fn default() -> Self {
        ServingSettings {
            intra_threads: default_intra_threads(),
            sessions: 0,
            max_batch: default_max_batch(),
            max_batch_delay: default_max_batch_delay(),
            batch_queue: default_batch_queue(),
            reload_interval: default_reload_interval(),
            max_pixels: default_max_pixels(),
            max_bytes: default_max_bytes(),
        }
    }
}

impl ServingSettings {
    /// Every problem with these values, with paths relative to this struct (`max_batch`).
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("max_batch", self.max_batch as u64),
            ("batch_queue", self.batch_queue as u64),
            ("max_pixels", self.max_pixels),
            ("max_bytes", self.max_bytes),
        ] {
            if value == 0 {
                problems.push(SettingsError::new(name, "must be at least 1"));
            }
        }
        if self.max_batch_delay > Duration::from_secs(1) {
            problems.push(SettingsError::new(
                "max_batch_delay",
                "must be at most 1s (it is added to a request's latency)",
            ));
        }
        problems
    }

    /// How the model uses the cores: `sessions` (resolved: `0` is the cores the process may
    /// use divided by `intra_threads`, at least 1) and `intra_threads`.
    pub fn threads(&self) -> crate::onnx::Threads {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let sessions = match self.sessions {
            0 => (cores / self.intra_threads.max(1)).max(1),
            n => n,
        };
        crate::onnx::Threads {
            sessions,
            intra: self.intra_threads,
        }
    }

    /// The limits every image is decoded with: `max_bytes` and `max_pixels`, and the
    /// allocation limit [`DecodeLimits::for_pixels`] gives for them.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits::for_pixels(
            usize::try_from(self.max_bytes).unwrap_or(usize::MAX),
            self.max_pixels,
        )
    }

    /// [`ServingSettings::problems`] with paths under `key` (`serving.max_batch` for
    /// [`KEY`]), as a node reports them.
    pub fn problems_at(&self, key: &str) -> Vec<SettingsError> {
        self.problems()
            .into_iter()
            .map(|p| SettingsError::new(format!("{key}.{}", p.path), p.message))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's settings embedding the serving settings, as `classify` and `segment` do.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NodeSettings {
        #[allow(dead_code)]
        model: String,
        #[serde(default)]
        serving: ServingSettings,
    }

    #[test]
    fn defaults_are_one_set() {
        let d = ServingSettings::default();
        assert_eq!(d.intra_threads, 1);
        assert_eq!(d.max_batch, 1);
        assert_eq!(d.max_batch_delay, Duration::from_millis(2));
        assert_eq!(d.batch_queue, 64);
        assert_eq!(d.reload_interval, Duration::from_secs(2));
        assert_eq!(d.max_pixels, 50_000_000);
        assert_eq!(d.max_bytes, 64 * 1024 * 1024);
        assert_eq!(d.decode_limits().max_pixels, 50_000_000);
        assert_eq!(d.decode_limits().max_bytes, 64 * 1024 * 1024);
        assert_eq!(d.decode_limits().max_alloc, 512 * 1024 * 1024);
        // An empty mapping and a missing key give the same defaults as `Default`.
        let empty: ServingSettings = serde_norway::from_str("{}").unwrap();
        assert_eq!(empty, d);
        let node: NodeSettings = serde_norway::from_str("model: m\n").unwrap();
        assert_eq!(node.serving, d);
        assert!(d.problems().is_empty());
    }

    #[test]
    fn nested_yaml_is_read_and_missing_keys_take_defaults() {
        let node: NodeSettings = serde_norway::from_str(
            "model: m\nserving:\n  intra_threads: 2\n  max_batch: 8\n  max_batch_delay: 5ms\n  \
             reload_interval: 0s\n  max_pixels: 1000000\n",
        )
        .unwrap();
        assert_eq!(
            node.serving,
            ServingSettings {
                intra_threads: 2,
                sessions: 0,
                max_batch: 8,
                max_batch_delay: Duration::from_millis(5),
                batch_queue: 64,
                reload_interval: Duration::ZERO,
                max_pixels: 1_000_000,
                max_bytes: 64 * 1024 * 1024,
            }
        );
        // Through the SDK's settings parser too (JSON values, as the flow compiler passes).
        let node: NodeSettings = crate::factory::parse_settings(&serde_json::json!({
            "model": "m", "serving": { "batch_queue": 16, "reload_interval": "1m" }
        }))
        .unwrap();
        assert_eq!(node.serving.batch_queue, 16);
        assert_eq!(node.serving.reload_interval, Duration::from_secs(60));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_norway::from_str::<NodeSettings>("model: m\nserving:\n  max_batchs: 8\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `max_batchs`"), "{e}");
        // The old flat keys are no longer node settings.
        let e = serde_norway::from_str::<NodeSettings>("model: m\nmax_batch: 8\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `max_batch`"), "{e}");
        // Located at the key itself by the SDK's settings parser.
        let e = crate::factory::parse_settings::<NodeSettings>(&serde_json::json!({
            "model": "m", "serving": { "threads": 2 }
        }))
        .unwrap_err();
        assert_eq!(e.path, "serving.threads");
    }

    #[test]
    fn problems_are_named_relative_to_the_struct_and_under_a_key() {
        let bad = ServingSettings {
            max_batch: 0,
            batch_queue: 0,
            max_batch_delay: Duration::from_secs(5),
            ..ServingSettings::default()
        };
        let paths: Vec<String> = bad.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["max_batch", "batch_queue", "max_batch_delay"]);
        let no_images = ServingSettings {
            max_pixels: 0,
            max_bytes: 0,
            ..ServingSettings::default()
        };
        let paths: Vec<String> = no_images.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["max_pixels", "max_bytes"]);
        let under: Vec<String> = bad.problems_at(KEY).into_iter().map(|p| p.path).collect();
        assert_eq!(
            under,
            [
                "serving.max_batch",
                "serving.batch_queue",
                "serving.max_batch_delay"
            ]
        );
        assert_eq!(
            bad.problems_at(KEY)[0].to_string(),
            "serving.max_batch: must be at least 1"
        );
        let edge = ServingSettings {
            max_batch_delay: Duration::from_secs(1),
            reload_interval: Duration::ZERO,
            intra_threads: 0,
            ..ServingSettings::default()
        };
        assert!(edge.problems().is_empty());
    }

    #[test]
    fn sessions_default_to_one_per_core_the_threads_leave() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let default = ServingSettings::default().threads();
        assert_eq!((default.sessions, default.intra), (cores, 1));
        let wide = ServingSettings {
            intra_threads: cores * 2,
            ..ServingSettings::default()
        };
        assert_eq!(wide.threads().sessions, 1, "at least one session");
        let set = ServingSettings {
            sessions: 3,
            ..ServingSettings::default()
        };
        assert_eq!(set.threads().sessions, 3);
    }
}

//! The `capture` node's settings and their pure validation.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::glob::Glob;
use crate::pattern::FilenamePattern;

/// Settings of a `capture` node: its inputs (a watched `directory`, an HTTP `upload`
/// endpoint, a periodic `snapshot` of an HTTP camera; at least one), what to do with files
/// once the flow has accepted them, and where FlowFile attributes come from (`metadata`).
///
/// The top-level file settings (`recursive` to `max_in_flight`) apply to `directory` only.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSettings {
    /// Directory to take files from (a camera's drop folder). Relative paths resolve
    /// against the flow file's directory. It must exist when the node is built. Optional:
    /// a capture may be upload-only or snapshot-only, but at least one of `directory`,
    /// `upload` and `snapshot` must be set.
    #[serde(default)]
    pub directory: Option<PathBuf>,

    /// Also take files from subdirectories (symbolic links to directories are not followed,
    /// and `.rejected` and `move_to` are never scanned).
    #[serde(default)]
    pub recursive: bool,

    /// Glob on the file name (not the path): `*` matches any run of characters, `?` one
    /// character, `[abc]`/`[a-z]`/`[!a-z]` one character of a set; `\` escapes the next
    /// character. Matching is case-sensitive.
    #[serde(default = "default_pattern")]
    pub pattern: String,

    /// Skip files and directories whose name starts with `.`: copy tools (rsync, many
    /// camera uploaders) write to hidden temporary names and rename when done.
    #[serde(default = "default_true")]
    pub ignore_hidden: bool,

    /// What happens to a file once the flow has accepted its FlowFile: `delete` it, or
    /// `move` it under `move_to` (keeping its path relative to `directory`).
    #[serde(default)]
    pub after: After,

    /// Directory accepted files are moved to when `after` is `move` (created if missing;
    /// an existing file of the same name is never overwritten: a `-N` suffix is added).
    /// Required with `after: move`, not allowed otherwise.
    #[serde(default)]
    pub move_to: Option<PathBuf>,

    /// How long a file's size and modification time must stay unchanged before it is
    /// offered, so a file still being written is never taken (humantime: `500ms`, `2s`).
    /// Counted from when this node first sees the file unchanged, not from its mtime.
    #[serde(default = "default_min_age")]
    pub min_age: HumanDuration,

    /// How often the directory is scanned while a pull waits for files (humantime).
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,

    /// Largest file taken, in bytes (default 64 MiB; also capped by the node's largest
    /// message). A larger file is never offered: it is moved to `<directory>/.rejected/`
    /// with a `<name>.reason.txt` beside it saying why, and a warning is logged.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,

    /// Order in which ready files are offered: `name` (relative path, byte order) or
    /// `mtime` (oldest modification first, then name).
    #[serde(default)]
    pub order: Order,

    /// An offer not acknowledged within this time is taken as lost (say, a pull reply that
    /// never reached a remote runner) and its file is offered again under a new delivery
    /// id; a late acknowledgement of the old id is ignored. Without this a lost reply would
    /// hold its file (and a batch) until the node restarts. Humantime; keep it well above
    /// the time the runner needs to enqueue and acknowledge.
    #[serde(default = "default_redeliver_after")]
    pub redeliver_after: HumanDuration,

    /// Most files offered and not yet acknowledged at once; pulls offer nothing more until
    /// acknowledgements come in. Bounds the node's bookkeeping, not a tuning knob.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,

    /// An HTTP endpoint cameras push images to (`POST /upload`). Absent: no endpoint.
    #[serde(default)]
    pub upload: Option<UploadSettings>,

    /// Grab a frame from an HTTP camera URL at a fixed interval. Absent: no snapshots.
    #[serde(default)]
    pub snapshot: Option<SnapshotSettings>,

    /// Where FlowFile attributes beyond the built-in ones come from: static values, the
    /// file name, a JSON sidecar, a JSONL manifest.
    #[serde(default)]
    pub metadata: MetadataSettings,
}

/// The HTTP upload endpoint: `POST /upload` with the image as the raw body or as a
/// `multipart/form-data` file part. The request is answered only once the flow has
/// accepted the FlowFile (`202` with its uuid), or with `503` + `Retry-After` when the node
/// is saturated: an upload is never lost silently and memory never grows without bound.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Address to listen on, `IP:port` (`127.0.0.1:8088`; `0.0.0.0:8088` for every
    /// interface). The node fails to build if it cannot bind it.
    #[serde(default = "default_listen")]
    pub listen: String,

    /// Largest accepted request body in bytes (default 64 MiB; also capped by the node's
    /// largest message). A larger body is refused with `413`.
    #[serde(default = "default_max_file_bytes")]
    pub max_body_bytes: u64,

    /// Most uploads held at once: being received, waiting for the flow, or offered to it.
    /// One more is refused with `503` and `Retry-After` (before its body is read):
    /// overload slows the sender down, and memory stays under `max_pending` ×
    /// `max_body_bytes`.
    #[serde(default = "default_upload_max_pending")]
    pub max_pending: usize,

    /// How long a request may wait for room when `max_pending` uploads are already held
    /// (humantime). If none frees up by then, the request is answered `503` +
    /// `Retry-After` before its body is read.
    #[serde(default = "default_wait_accept")]
    pub wait_accept: HumanDuration,

    /// Directory uploads are spooled to (synced) before they are answered `202`; relative
    /// paths are resolved against the flow file's directory. An upload's file is removed
    /// when the flow acknowledges it; what is left is offered again when the node starts.
    /// Default: `.loupe/spool/<node id>`. Two capture nodes must not share one.
    #[serde(default)]
    pub spool: Option<PathBuf>,

    /// The `Retry-After` a `503` carries (humantime, rounded up to whole seconds).
    #[serde(default = "default_retry_after")]
    pub retry_after: HumanDuration,

    /// TLS on the endpoint (`cert`, `key`, optional `client_ca` for client certificates,
    /// `reload_interval`); paths relative to the flow file's directory. Absent: plaintext —
    /// refused beyond loopback unless `insecure`.
    #[serde(default)]
    pub tls: Option<loupe_sdk::serve::TlsSettings>,

    /// Credentials a camera must present to upload (`tokens`: bearer tokens from a file or a
    /// variable; `certificates`: client-certificate subjects). Absent: anyone who reaches
    /// the endpoint may upload — refused beyond loopback unless `insecure`.
    #[serde(default)]
    pub auth: loupe_sdk::serve::AuthSettings,

    /// Listen beyond loopback without TLS or credentials (said loudly at every start).
    #[serde(default)]
    pub insecure: bool,
}

impl UploadSettings {
    /// The endpoint's security settings.
    pub fn security(&self) -> loupe_sdk::serve::SecuritySettings {
        loupe_sdk::serve::SecuritySettings {
            tls: self.tls.clone(),
            auth: self.auth.clone(),
            insecure: self.insecure,
        }
    }
}

/// Periodic snapshots: `GET url` every `interval`, each frame one FlowFile.
///
/// A failing camera (refused, timed out, non-2xx, empty body) is logged as a warning and
/// tried again at the next interval; the node keeps serving. At most `max_pending` frames
/// wait for the flow: while that many are pending, further frames are skipped (counted and
/// logged), not queued, because a stale frame is worth less than the next one.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSettings {
    /// The camera's snapshot URL, `https://host[:port]/path` (always TLS) or
    /// `http://host[:port]/path`.
    pub url: String,

    /// How an `https://` camera's certificate is checked: `ca`, a PEM CA file (relative to
    /// the flow file's directory; a camera's own self-signed certificate works too). Absent:
    /// the operating system's trusted roots.
    #[serde(default)]
    pub tls: loupe_sdk::https::ClientTlsSettings,

    /// Time between two grabs (humantime: `10s`).
    #[serde(default = "default_snapshot_interval")]
    pub interval: HumanDuration,

    /// Longest a grab (connect, response, body) may take before it counts as failed.
    #[serde(default = "default_snapshot_timeout")]
    pub timeout: HumanDuration,

    /// Written as the `camera.id` attribute of every frame, when set.
    #[serde(default)]
    pub camera_id: Option<String>,

    /// Most frames offered or waiting for the flow at once; a frame grabbed while that many
    /// are pending is skipped.
    #[serde(default = "default_snapshot_max_pending")]
    pub max_pending: usize,

    /// Largest frame in bytes (default 64 MiB; also capped by the node's largest message);
    /// a larger response counts as a failed grab.
    #[serde(default = "default_max_file_bytes")]
    pub max_bytes: u64,
}

/// Where FlowFile attributes come from, beyond the built-in ones.
///
/// Layers, later ones winning: `attributes`, then `filename_pattern`, then the `manifest`
/// line, then the sidecar, then (uploads) request headers or form fields. The capture's own
/// attributes (`filename`, `mime.type`, `path`, ...) are never overridden. Finally, when
/// `fragment_count` is set and `product.id` and `camera.angle` are known, `fragment.*` are
/// derived from them (unless a layer set them).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataSettings {
    /// Static attributes put on every FlowFile, e.g. `{line: L1, camera.id: cam3}`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,

    /// Attributes from the file name (directory files, and uploads that name their file).
    /// A template matched against the whole name: `{attr}` captures one or more characters
    /// (as few as possible) into attribute `attr`, `{attr:REGEX}` captures what `REGEX`
    /// matches, `*` matches any run of characters, `?` one character, `\` escapes; all else
    /// is literal. Example: `{product.id}_a{camera.angle:[0-9]+}.*` reads `p00042_a3.png` as
    /// `product.id=p00042`, `camera.angle=3`. A name that does not match adds nothing.
    #[serde(default)]
    pub filename_pattern: Option<String>,

    /// Read a JSON sidecar beside each directory file: `IMAGE.json` (`p1_a3.png.json`),
    /// else `STEM.json` (`p1_a3.json`). Its object's keys become attributes (nested objects
    /// flattened with `.`, arrays kept as JSON text; a `loupe synth coils` record is mapped
    /// as the manifest is). With this on, every `*.json` file is metadata and never offered
    /// as an image; a sidecar is deleted or moved together with its image. A malformed
    /// sidecar logs a warning and its image still goes out, with `metadata.error`. Write
    /// the sidecar before the image (or within `min_age` of it).
    #[serde(default)]
    pub sidecar: bool,

    /// A JSONL manifest (one JSON object per line), relative to `directory`: each line's
    /// `file` (a path relative to the manifest's own directory) names the image it
    /// describes; its other keys become attributes. `loupe synth coils` manifests are
    /// recognised (see the crate docs). Re-read whenever it changes; never offered, never
    /// deleted. A malformed line logs a warning and is skipped.
    #[serde(default)]
    pub manifest: Option<PathBuf>,

    /// Number of fragments (camera angles) per product, e.g. `8`. When set, a FlowFile
    /// with `product.id` and `camera.angle` gets `fragment.identifier` (= `product.id`),
    /// `fragment.index` (= `camera.angle`) and `fragment.count`, NiFi's convention for
    /// joining parts. `loupe synth coils` records imply 8.
    #[serde(default)]
    pub fragment_count: Option<u32>,
}

/// What happens to a file once its FlowFile has been accepted by the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum After {
    /// Delete the file.
    #[default]
    Delete,
    /// Move the file under `move_to`.
    Move,
}

/// Order in which ready files are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// By path relative to `directory`, byte order.
    #[default]
    Name,
    /// Oldest modification time first; ties by name.
    Mtime,
}

/// A duration written in humantime form (`250ms`, `2s`, `1m 30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration ({e}); write e.g. `500ms` or `2s`"
                ))
            })
    }
}

// Serialize exists so schemars can put the defaults ("500ms") into the schema.
impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(self.0))
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration in humantime form, e.g. `250ms`, `2s`, `1m 30s`.",
        })
    }
}

fn default_pattern() -> String {
    "*".to_string()
}

fn default_true() -> bool {
    true
}

fn default_min_age() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}

fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(250))
}

fn default_redeliver_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}

fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_max_in_flight() -> usize {
    10_000
}

fn default_listen() -> String {
    "127.0.0.1:8088".to_string()
}

fn default_upload_max_pending() -> usize {
    16
}

fn default_wait_accept() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_retry_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

fn default_snapshot_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

fn default_snapshot_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

fn default_snapshot_max_pending() -> usize {
    2
}

impl CaptureSettings {
    /// Every problem with these settings that needs no I/O to find.
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if self.directory.is_none() && self.upload.is_none() && self.snapshot.is_none() {
            problems.push(SettingsError::new(
                "",
                "no input: set at least one of `directory`, `upload` and `snapshot`",
            ));
        }
        if self
            .directory
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            problems.push(SettingsError::new("directory", "must not be empty"));
        }
        if let Err(e) = Glob::new(&self.pattern) {
            problems.push(SettingsError::new("pattern", e.to_string()));
        }
        match (self.after, &self.move_to) {
            (After::Move, None) => problems.push(SettingsError::new(
                "move_to",
                "is required when `after` is `move`",
            )),
            (After::Move, Some(dir)) if dir.as_os_str().is_empty() => {
                problems.push(SettingsError::new("move_to", "must not be empty"));
            }
            (After::Move, Some(dir)) if Some(dir) == self.directory.as_ref() => {
                // Moving a file onto itself would offer it again forever.
                problems.push(SettingsError::new(
                    "move_to",
                    "must differ from `directory`",
                ));
            }
            (After::Delete, Some(_)) => problems.push(SettingsError::new(
                "move_to",
                "is only used when `after` is `move`; remove it or set `after: move`",
            )),
            _ => {}
        }
        if self.poll_interval.get().is_zero() {
            problems.push(SettingsError::new(
                "poll_interval",
                "must be greater than zero",
            ));
        }
        if self.redeliver_after.get().is_zero() {
            problems.push(SettingsError::new(
                "redeliver_after",
                "must be greater than zero",
            ));
        }
        if self.max_file_bytes == 0 {
            problems.push(SettingsError::new(
                "max_file_bytes",
                "must be greater than zero",
            ));
        }
        if self.max_in_flight == 0 {
            problems.push(SettingsError::new(
                "max_in_flight",
                "must be greater than zero",
            ));
        }
        if self.directory.is_none() && self.move_to.is_some() {
            problems.push(SettingsError::new(
                "move_to",
                "only applies to files of `directory`, which is not set",
            ));
        }
        if let Some(upload) = &self.upload {
            upload.problems(&mut problems);
        }
        if let Some(snapshot) = &self.snapshot {
            snapshot.problems(&mut problems);
        }
        self.metadata
            .problems(self.directory.is_some(), &mut problems);
        problems
    }
}

/// A problem at `section.field` when `bad`.
fn check(problems: &mut Vec<SettingsError>, bad: bool, path: &str, message: &str) {
    if bad {
        problems.push(SettingsError::new(path, message));
    }
}

const POSITIVE: &str = "must be greater than zero";

impl UploadSettings {
    /// The address to listen on, if `listen` is a valid `IP:port`.
    pub fn address(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    fn problems(&self, problems: &mut Vec<SettingsError>) {
        if self.address().is_none() {
            problems.push(SettingsError::new(
                "upload.listen",
                format!(
                    "`{}` is not an `IP:port` address (e.g. `127.0.0.1:8088`)",
                    self.listen
                ),
            ));
        }
        check(
            problems,
            self.max_body_bytes == 0,
            "upload.max_body_bytes",
            POSITIVE,
        );
        check(
            problems,
            self.max_pending == 0,
            "upload.max_pending",
            POSITIVE,
        );
        check(
            problems,
            self.wait_accept.get().is_zero(),
            "upload.wait_accept",
            POSITIVE,
        );
    }
}

impl SnapshotSettings {
    fn problems(&self, problems: &mut Vec<SettingsError>) {
        if let Err(e) = parse_url(&self.url) {
            problems.push(SettingsError::new("snapshot.url", e));
        }
        check(
            problems,
            self.interval.get().is_zero(),
            "snapshot.interval",
            POSITIVE,
        );
        check(
            problems,
            self.timeout.get().is_zero(),
            "snapshot.timeout",
            POSITIVE,
        );
        check(
            problems,
            self.max_pending == 0,
            "snapshot.max_pending",
            POSITIVE,
        );
        check(
            problems,
            self.max_bytes == 0,
            "snapshot.max_bytes",
            POSITIVE,
        );
        if self.camera_id.as_ref().is_some_and(|c| c.is_empty()) {
            problems.push(SettingsError::new(
                "snapshot.camera_id",
                "must not be empty",
            ));
        }
    }
}

impl MetadataSettings {
    fn problems(&self, has_directory: bool, problems: &mut Vec<SettingsError>) {
        for name in self.attributes.keys() {
            if name.trim().is_empty() {
                problems.push(SettingsError::new(
                    "metadata.attributes",
                    "attribute names must not be empty",
                ));
            }
        }
        if let Some(pattern) = &self.filename_pattern
            && let Err(e) = FilenamePattern::new(pattern)
        {
            problems.push(SettingsError::new(
                "metadata.filename_pattern",
                e.to_string(),
            ));
        }
        if self.sidecar && !has_directory {
            problems.push(SettingsError::new(
                "metadata.sidecar",
                "sidecars are read beside files of `directory`, which is not set",
            ));
        }
        match &self.manifest {
            Some(m) if m.as_os_str().is_empty() => {
                problems.push(SettingsError::new("metadata.manifest", "must not be empty"));
            }
            Some(_) if !has_directory => problems.push(SettingsError::new(
                "metadata.manifest",
                "a manifest describes files of `directory`, which is not set",
            )),
            _ => {}
        }
        check(
            problems,
            self.fragment_count == Some(0),
            "metadata.fragment_count",
            POSITIVE,
        );
    }
}

/// Checks a snapshot URL: `https://` (TLS) or `http://`, with a host.
pub fn parse_url(url: &str) -> Result<axum::http::Uri, String> {
    loupe_sdk::https::parse_http_url(url, "http://host[:port]/path")
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_sdk::factory::parse_settings;
    use serde_json::json;

    #[test]
    fn defaults() {
        let s: CaptureSettings = parse_settings(&json!({"directory": "in"})).unwrap();
        assert!(!s.recursive);
        assert_eq!(s.pattern, "*");
        assert!(s.ignore_hidden);
        assert_eq!(s.after, After::Delete);
        assert_eq!(s.min_age.get(), Duration::from_millis(500));
        assert_eq!(s.poll_interval.get(), Duration::from_millis(250));
        assert_eq!(s.redeliver_after.get(), Duration::from_secs(600));
        assert_eq!(s.max_file_bytes, 64 * 1024 * 1024);
        assert_eq!(s.order, Order::Name);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn problems_are_located() {
        let s: CaptureSettings =
            parse_settings(&json!({"directory": "in", "after": "move", "pattern": "[a"})).unwrap();
        let paths: Vec<_> = s.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["pattern", "move_to"]);

        let s: CaptureSettings =
            parse_settings(&json!({"directory": "in", "move_to": "done"})).unwrap();
        assert_eq!(s.problems()[0].path, "move_to");

        let e = parse_settings::<CaptureSettings>(&json!({"directory": "in", "min_age": "soon"}))
            .unwrap_err();
        assert_eq!(e.path, "min_age");
        let e =
            parse_settings::<CaptureSettings>(&json!({"directory": "in", "bogus": 1})).unwrap_err();
        assert_eq!(e.path, "bogus");
        let s: CaptureSettings = parse_settings(&json!({"after": "delete"})).unwrap();
        let problems = s.problems();
        assert_eq!(problems[0].path, "");
        assert!(problems[0].message.contains("directory"), "{}", problems[0]);
    }

    #[test]
    fn input_sections_are_validated_with_their_paths() {
        let s: CaptureSettings = parse_settings(&json!({
            "upload": {"listen": "localhost", "max_pending": 0},
            "snapshot": {"url": "ftp://cam/snap.jpg", "interval": "0s"},
            "metadata": {"filename_pattern": "{unclosed", "sidecar": true, "fragment_count": 0},
        }))
        .unwrap();
        let paths: Vec<_> = s.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "upload.listen",
                "upload.max_pending",
                "snapshot.url",
                "snapshot.interval",
                "metadata.filename_pattern",
                "metadata.sidecar",
                "metadata.fragment_count",
            ]
        );
        let e = parse_settings::<CaptureSettings>(&json!({"upload": {"port": 1}})).unwrap_err();
        assert_eq!(e.path, "upload.port");

        let s: CaptureSettings =
            parse_settings(&json!({"snapshot": {"url": "http://10.0.0.5/snap.jpg"}})).unwrap();
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        let snap = s.snapshot.unwrap();
        assert_eq!(snap.interval.get(), Duration::from_secs(10));
        assert_eq!(snap.max_pending, 2);
    }

    #[test]
    fn schema_shows_duration_defaults() {
        let schema = serde_json::to_value(schemars::schema_for!(CaptureSettings)).unwrap();
        assert_eq!(schema["properties"]["min_age"]["default"], "500ms");
        assert_eq!(schema["properties"]["after"]["default"], "delete");
        assert!(
            schema["properties"]["directory"]["description"]
                .as_str()
                .unwrap()
                .contains("Directory")
        );
    }

    #[test]
    fn snapshot_urls() {
        assert!(parse_url("http://10.0.0.5:8080/snap.jpg").is_ok());
        assert!(parse_url("https://cam/snap.jpg").is_ok());
        assert!(parse_url("cam/snap.jpg").unwrap_err().contains("http://"));
        assert!(parse_url("not a url").is_err());
    }
}

//! The `capture` node's settings and their pure validation.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::glob::Glob;

/// Settings of a `capture` node: which files to take from which directory, and what to do
/// with them once the flow has accepted them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSettings {
    /// Directory to take files from. Relative paths resolve against the flow file's
    /// directory. It must exist when the node is built.
    pub directory: PathBuf,

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

impl CaptureSettings {
    /// Every problem with these settings that needs no I/O to find.
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if self.directory.as_os_str().is_empty() {
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
            (After::Move, Some(dir)) if *dir == self.directory => {
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
        problems
    }
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
        let e = parse_settings::<CaptureSettings>(&json!({"after": "delete"})).unwrap_err();
        assert!(e.message.contains("directory"), "{e}");
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
}

//! The `report` node's settings.

use std::path::PathBuf;

use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of a `report` node: where the JSON-lines records go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// JSON-lines file each FlowFile is appended to as one record. Relative paths resolve
    /// against the flow file's directory; missing parent directories are created.
    pub path: PathBuf,

    /// Include the content size in bytes (`size`) in each record.
    #[serde(default = "default_true")]
    pub include_content_size: bool,

    /// Record each FlowFile uuid at most once, even across restarts: the uuids already in
    /// the file are read when the node starts, and a FlowFile delivered again (the flow is
    /// at-least-once) is not written twice. Costs memory proportional to the file.
    #[serde(default = "default_true")]
    pub idempotent: bool,
}

fn default_true() -> bool {
    true
}

impl ReportSettings {
    /// Every problem with these settings that needs no I/O to find.
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        let text = self.path.to_string_lossy();
        if text.is_empty() {
            problems.push(SettingsError::new("path", "must not be empty"));
        } else if text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) {
            problems.push(SettingsError::new(
                "path",
                "must name a file, not a directory",
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
    fn defaults_and_problems() {
        let s: ReportSettings = parse_settings(&json!({"path": "out/report.jsonl"})).unwrap();
        assert!(s.include_content_size && s.idempotent);
        assert!(s.problems().is_empty());

        let s: ReportSettings = parse_settings(&json!({"path": "out/"})).unwrap();
        assert_eq!(s.problems()[0].path, "path");
        let e = parse_settings::<ReportSettings>(&json!({"path": "x", "flush": true})).unwrap_err();
        assert_eq!(e.path, "flush");
        let e = parse_settings::<ReportSettings>(&json!({})).unwrap_err();
        assert!(e.message.contains("path"), "{e}");
    }
}

//! The `report` node's settings.

use std::path::PathBuf;

use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of a `report` node: where the inspection records go — a database (SQLite by
/// default), a JSON-lines file, or both.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Database the inspection records are inserted into: `sqlite:PATH` (relative to the
    /// flow file's directory; created) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` so
    /// several report nodes can share one database. Default: `sqlite:report.db` when `path`
    /// is not given either.
    #[serde(default)]
    pub database: Option<String>,
    /// Table of the records in `database` (created if missing; letters, digits and `_`).
    #[serde(default = "default_table")]
    pub table: String,
    /// How long connecting to a PostgreSQL `database` may take — TCP, startup and
    /// authentication together — before the record is retried later (humantime). A server
    /// that is down or accepts connections and never answers turns into a retryable error
    /// after this long, never a hang.
    #[serde(
        default = "default_connect_timeout",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub connect_timeout: std::time::Duration,
    /// How long one statement may take before the record is retried later (humantime).
    /// PostgreSQL: enforced by the client (a hung server) and, as the session's
    /// `statement_timeout`, by the server (sent as the startup parameter `options`; behind
    /// PgBouncer, list `options` in its `ignore_startup_parameters`). SQLite: how long to
    /// wait for a lock another process holds.
    #[serde(
        default = "default_statement_timeout",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub statement_timeout: std::time::Duration,
    /// Delete records (and their media) older than this many days, checked every hour.
    /// Absent: keep everything.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// How long a product may wait for its missing angles (`fragment.count`) after its first
    /// one was recorded before it is reported `incomplete` (humantime).
    #[serde(
        default = "default_product_timeout",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub product_timeout: std::time::Duration,
    /// Model labels that make an image, and so its product, defective.
    #[serde(default = "default_defect_labels")]
    pub defect_labels: Vec<String>,
    /// The plant's product policy: how each angle is decided (`stop`, `review`, `pass`) from
    /// its attributes, and how many stopped angles stop the product (see
    /// `loupe_report::policy`). Absent: an angle stops when its model label is one of
    /// `defect_labels`, and goes to review when it failed.
    #[serde(default)]
    pub product_policy: crate::policy::PolicySettings,
    /// The `camera.verdict` value that means the factory camera flagged the image.
    #[serde(default = "default_camera_flag")]
    pub camera_flag: String,
    /// Directory the images, their records as JSON, and `segment`'s overlays and masks are
    /// kept in, one folder per day (relative to the flow file's directory; created).
    /// Absent: no media are kept.
    #[serde(default)]
    pub media_dir: Option<PathBuf>,
    /// Tell people at once when a product is confirmed defective: a signed webhook and/or
    /// MQTT, with a cooldown (see `loupe_report::notify`). Needs `database` (verdicts are
    /// made from the stored angles). Absent: no notifications.
    #[serde(default)]
    pub notify: Option<crate::notify::NotifySettings>,
    /// Serve the web dashboard (live list, details, review, daily report, upload) over HTTP
    /// (see `loupe_report::dashboard`). Needs `database`. Absent: no dashboard.
    #[serde(default)]
    pub dashboard: Option<crate::dashboard::DashboardSettings>,
    /// JSON-lines file each FlowFile is also appended to as one record. Relative paths
    /// resolve against the flow file's directory; missing parent directories are created.
    #[serde(default)]
    pub path: Option<PathBuf>,

    /// Include the content size in bytes (`size`) in each record.
    #[serde(default = "default_true")]
    pub include_content_size: bool,

    /// Write each FlowFile uuid to the JSON-lines `path` at most once, even across restarts:
    /// the sink remembers the uuids of the newest `dedup_window` records (read from the file
    /// when the node starts), and a FlowFile delivered again (the flow is at-least-once)
    /// within that window is not written twice.
    #[serde(default = "default_true")]
    pub idempotent: bool,

    /// How many of the newest uuids the JSON-lines sink remembers for `idempotent` (about
    /// 100 bytes each). Redelivery comes soon after the first delivery, so keep it well above
    /// what can be queued and in flight at once; a uuid that comes back after this many newer
    /// records is written again.
    #[serde(default = "default_dedup_window")]
    pub dedup_window: usize,
}

fn default_true() -> bool {
    true
}

fn default_connect_timeout() -> std::time::Duration {
    loupe_store::Timeouts::default().connect
}

fn default_statement_timeout() -> std::time::Duration {
    loupe_store::Timeouts::default().statement
}

fn default_dedup_window() -> usize {
    crate::sink::DEFAULT_DEDUP_WINDOW
}

fn default_product_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

fn default_defect_labels() -> Vec<String> {
    vec!["loose_wire".to_string(), "defect".to_string()]
}

fn default_camera_flag() -> String {
    "loose_wire".to_string()
}

fn default_table() -> String {
    "inspections".to_string()
}

impl ReportSettings {
    /// Every problem with these settings that needs no I/O to find.
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if let Some(path) = &self.path {
            let text = path.to_string_lossy();
            if text.is_empty() {
                problems.push(SettingsError::new("path", "must not be empty"));
            } else if text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) {
                problems.push(SettingsError::new(
                    "path",
                    "must name a file, not a directory",
                ));
            }
        }
        if let Some(url) = &self.database {
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|k| url.starts_with(k)) || url.len() <= "sqlite:".len() {
                problems.push(SettingsError::new(
                    "database",
                    format!(
                        "`{}` is not sqlite:PATH or postgres://USER@HOST/DB",
                        loupe_store::redact(url)
                    ),
                ));
            }
        }
        if !loupe_store::valid_table(&self.table) {
            problems.push(SettingsError::new(
                "table",
                format!(
                    "`{}` is not a plain table name (letters, digits, _)",
                    self.table
                ),
            ));
        }
        if let Some(notify) = &self.notify {
            for p in notify.problems() {
                problems.push(SettingsError::new(format!("notify.{}", p.path), p.message));
            }
        }
        if let Some(dashboard) = &self.dashboard {
            for p in dashboard.problems() {
                problems.push(SettingsError::new(
                    format!("dashboard.{}", p.path),
                    p.message,
                ));
            }
            if self.database_url().is_none() {
                problems.push(SettingsError::new(
                    "dashboard",
                    "needs `database`: the dashboard shows the stored records",
                ));
            }
        }
        for p in self.product_policy.problems() {
            problems.push(SettingsError::new(
                format!("product_policy.{}", p.path),
                p.message,
            ));
        }
        if self.product_timeout.is_zero() {
            problems.push(SettingsError::new(
                "product_timeout",
                "must be more than 0s",
            ));
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
        ] {
            if value.is_zero() {
                problems.push(SettingsError::new(field, "must be more than 0s"));
            }
        }
        if self.dedup_window == 0 {
            problems.push(SettingsError::new("dedup_window", "must be at least 1"));
        }
        if self.retention_days == Some(0) {
            problems.push(SettingsError::new("retention_days", "must be at least 1"));
        }
        problems
    }

    /// The database's [`loupe_store::Timeouts`].
    pub fn timeouts(&self) -> loupe_store::Timeouts {
        loupe_store::Timeouts {
            connect: self.connect_timeout,
            statement: self.statement_timeout,
        }
    }

    /// The JSON-lines sink's de-duplication window (`None`: not idempotent).
    pub fn dedup(&self) -> Option<usize> {
        self.idempotent.then_some(self.dedup_window)
    }

    /// The database to use: `database`, else SQLite `report.db` when there is no `path`.
    pub fn database_url(&self) -> Option<String> {
        self.database
            .clone()
            .or_else(|| self.path.is_none().then(|| "sqlite:report.db".to_string()))
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
        assert_eq!(s.dedup(), Some(100_000));
        assert_eq!(s.timeouts(), loupe_store::Timeouts::default());
        assert_eq!(s.connect_timeout, std::time::Duration::from_secs(5));
        assert_eq!(s.statement_timeout, std::time::Duration::from_secs(10));
        assert!(s.problems().is_empty());

        let s: ReportSettings = parse_settings(&json!({"path": "out/"})).unwrap();
        assert_eq!(s.problems()[0].path, "path");
        assert_eq!(s.database_url(), None, "a JSON-lines report only");
        let s: ReportSettings = parse_settings(&json!({})).unwrap();
        assert_eq!(s.database_url().as_deref(), Some("sqlite:report.db"));
        let s: ReportSettings =
            parse_settings(&json!({"database": "mysql://x", "table": "a b", "retention_days": 0}))
                .unwrap();
        let paths: Vec<_> = s.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["database", "table", "retention_days"]);
        let s: ReportSettings = parse_settings(&json!({
            "path": "r.jsonl", "connect_timeout": "0s", "statement_timeout": "250ms",
            "dedup_window": 0
        }))
        .unwrap();
        let paths: Vec<_> = s.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["connect_timeout", "dedup_window"]);
        assert_eq!(s.statement_timeout, std::time::Duration::from_millis(250));
        let e = parse_settings::<ReportSettings>(&json!({"path": "x", "flush": true})).unwrap_err();
        assert_eq!(e.path, "flush");
    }
}

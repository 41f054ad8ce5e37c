//! The SQLite store: one file, opened in WAL mode so readers (the dashboard) never block the
//! writer, with a busy timeout (the statement timeout) so several processes can share it.
//! `synchronous = FULL`: a committed record is on disk (the WAL is synced at each commit)
//! before `insert` returns, so the photo it was made from may be deleted. Busy, locked, I/O,
//! full-disk and similar errors are [`StoreError::Unavailable`] (retried).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use crate::product::{AngleRow, ProductVerdict};
use crate::query::{Cells, Param, Review, Sql};
use crate::record::Inspection;
use crate::{COLUMNS, StoreError, Timeouts, VerdictCount, Written};

/// A SQLite inspection table.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    table: String,
    /// rusqlite is blocking: every statement runs on the blocking pool, one at a time.
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating it, its directory and the table if needed) the database at `path`.
    pub async fn open(
        path: &Path,
        table: &str,
        timeouts: Timeouts,
    ) -> Result<SqliteStore, StoreError> {
        let (path, table) = (path.to_path_buf(), table.to_string());
        let url = format!("sqlite:{}", path.display());
        let open_error = |message: String| StoreError::Open {
            url: url.clone(),
            message,
        };
        let (open_path, open_table) = (path.clone(), table.clone());
        let connection = tokio::task::spawn_blocking(move || -> Result<Connection, String> {
            if let Some(dir) = open_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            let connection = Connection::open(&open_path).map_err(|e| e.to_string())?;
            connection
                .busy_timeout(timeouts.statement)
                .map_err(|e| e.to_string())?;
            connection
                .execute_batch(&format!(
                    "PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     CREATE TABLE IF NOT EXISTS {open_table} (
                       uuid TEXT PRIMARY KEY,
                       recorded_ms INTEGER NOT NULL,
                       captured_ms INTEGER NOT NULL,
                       latency_ms INTEGER NOT NULL,
                       product_id TEXT, angle INTEGER, fragment_count INTEGER, line TEXT,
                       camera_id TEXT, camera_verdict TEXT, model TEXT, model_label TEXT,
                       model_score REAL, segment_classes TEXT, segment_regions TEXT, route TEXT,
                       error_kind TEXT, error_message TEXT, trace_id TEXT, filename TEXT, media_path TEXT,
                       attributes TEXT NOT NULL);
                     CREATE INDEX IF NOT EXISTS {open_table}_recorded ON {open_table} (recorded_ms);
                     CREATE INDEX IF NOT EXISTS {open_table}_product ON {open_table} (product_id);
                     CREATE TABLE IF NOT EXISTS {open_table}_products (
                       product_id TEXT PRIMARY KEY, verdict TEXT NOT NULL, line TEXT,
                       angles INTEGER NOT NULL, expected INTEGER NOT NULL,
                       defect_angles INTEGER NOT NULL, camera_flagged INTEGER NOT NULL,
                       defects TEXT NOT NULL, decided_ms INTEGER NOT NULL);
                     CREATE TABLE IF NOT EXISTS {open_table}_feedback (
                       id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL,
                       label TEXT NOT NULL, action TEXT NOT NULL, reviewer TEXT NOT NULL,
                       note TEXT, reviewed_ms INTEGER NOT NULL);
                     CREATE INDEX IF NOT EXISTS {open_table}_feedback_uuid
                       ON {open_table}_feedback (uuid);"
                ))
                .map_err(|e| e.to_string())?;
            Ok(connection)
        })
        .await
        .map_err(|e| open_error(e.to_string()))?
        .map_err(open_error)?;
        Ok(SqliteStore {
            path,
            table,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (connection, table) = (self.connection.clone(), self.table.clone());
        let url = format!("sqlite:{}", self.path.display());
        tokio::task::spawn_blocking(move || {
            let connection = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&connection, &table)
        })
        .await
        .map_err(|e| StoreError::Query {
            url: url.clone(),
            message: e.to_string(),
        })?
        .map_err(|e| {
            // Another process holds the lock for longer than the busy timeout, the disk is
            // full, an I/O error: try later.
            if crate::transient::sqlite_is_transient(&e) {
                StoreError::Unavailable {
                    url,
                    message: e.to_string(),
                }
            } else {
                StoreError::Query {
                    url,
                    message: e.to_string(),
                }
            }
        })
    }

    /// Inserts `record` unless its uuid is stored already.
    pub async fn insert(&self, record: Inspection) -> Result<Written, StoreError> {
        self.with(move |c, table| {
            let placeholders: Vec<String> =
                (1..=COLUMNS.len() + 1).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO {table} ({}, attributes) VALUES ({}) ON CONFLICT (uuid) DO NOTHING",
                COLUMNS.join(", "),
                placeholders.join(", ")
            );
            let r = &record;
            let changed = c.execute(
                &sql,
                params![
                    r.uuid,
                    r.recorded_ms,
                    r.captured_ms,
                    r.latency_ms,
                    r.product_id,
                    r.angle,
                    r.fragment_count,
                    r.line,
                    r.camera_id,
                    r.camera_verdict,
                    r.model,
                    r.model_label,
                    r.model_score,
                    r.segment_classes,
                    r.segment_regions,
                    r.route,
                    r.error_kind,
                    r.error_message,
                    r.trace_id,
                    r.filename,
                    r.media_path,
                    r.attributes_json()
                ],
            )?;
            Ok(if changed == 1 {
                Written::Recorded
            } else {
                Written::Duplicate
            })
        })
        .await
    }

    /// Number of records.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.with(|c, table| {
            c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        })
        .await
    }

    /// Deletes records written before `cutoff_ms`.
    pub async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.with(move |c, table| {
            c.execute(
                &format!("DELETE FROM {table} WHERE recorded_ms < ?1"),
                params![cutoff_ms],
            )
            .map(|n| n as u64)
        })
        .await
    }

    /// The stored angles of one product.
    pub async fn angles_of(&self, product_id: &str) -> Result<Vec<AngleRow>, StoreError> {
        let product_id = product_id.to_string();
        self.with(move |c, table| {
            let mut statement = c.prepare(&format!(
                "SELECT angle, fragment_count, model_label, camera_verdict, line, recorded_ms, \
                 error_kind, attributes \
                 FROM {table} WHERE product_id = ?1"
            ))?;
            let rows = statement.query_map(params![product_id], |row| {
                Ok(AngleRow {
                    angle: row.get(0)?,
                    fragment_count: row.get(1)?,
                    model_label: row.get(2)?,
                    camera_verdict: row.get(3)?,
                    line: row.get(4)?,
                    recorded_ms: row.get(5)?,
                    error_kind: row.get(6)?,
                    attributes: serde_json::from_str(&row.get::<_, String>(7)?).unwrap_or_default(),
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Stores a product's verdict unless it has one; true when this call stored it.
    pub async fn record_product(&self, v: ProductVerdict) -> Result<bool, StoreError> {
        self.with(move |c, table| {
            c.execute(
                &format!(
                    "INSERT INTO {table}_products (product_id, verdict, line, angles, expected, \
                     defect_angles, camera_flagged, defects, decided_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (product_id) DO NOTHING"
                ),
                params![
                    v.product_id, v.verdict.as_str(), v.line, v.angles, v.expected,
                    v.defect_angles, v.camera_flagged, v.defects, v.decided_ms
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    /// Products with angles and no verdict whose first angle was recorded before `cutoff_ms`.
    pub async fn undecided_before(
        &self,
        cutoff_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.with(move |c, table| {
            let mut statement = c.prepare(&format!(
                "SELECT i.product_id FROM {table} i \
                 WHERE i.product_id IS NOT NULL AND i.fragment_count IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM {table}_products p WHERE p.product_id = i.product_id) \
                 GROUP BY i.product_id HAVING MIN(i.recorded_ms) < ?1 LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![cutoff_ms, limit], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    /// A product's stored verdict.
    pub async fn product(&self, product_id: &str) -> Result<Option<String>, StoreError> {
        let product_id = product_id.to_string();
        self.with(move |c, table| {
            let mut statement = c.prepare(&format!(
                "SELECT verdict FROM {table}_products WHERE product_id = ?1"
            ))?;
            let mut rows = statement.query_map(params![product_id], |row| row.get(0))?;
            rows.next().transpose()
        })
        .await
    }

    /// Images per (camera verdict, model label, route, true label).
    pub async fn verdict_counts(&self) -> Result<Vec<VerdictCount>, StoreError> {
        self.with(|c, table| {
            let mut statement = c.prepare(&format!(
                "SELECT camera_verdict, model_label, route, \
                 json_extract(attributes, '$.\"truth.label\"'), COUNT(*) FROM {table} \
                 GROUP BY 1, 2, 3, 4"
            ))?;
            let rows = statement.query_map([], |row| {
                Ok(VerdictCount {
                    camera_verdict: row.get(0)?,
                    model_label: row.get(1)?,
                    route: row.get(2)?,
                    truth: row.get(3)?,
                    images: row.get::<_, i64>(4)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Products per verdict.
    pub async fn product_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(|c, table| {
            let mut statement = c.prepare(&format!(
                "SELECT verdict, COUNT(*) FROM {table}_products GROUP BY verdict ORDER BY verdict"
            ))?;
            let rows =
                statement.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
        .await
    }

    /// The records table.
    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// Runs a query built by [`crate::query`] and decodes each row with `decode`.
    pub(crate) async fn select<T: Send + 'static>(
        &self,
        sql: Sql,
        decode: fn(&dyn Cells) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.with(move |c, _| {
            let mut statement = c.prepare(&sql.text)?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(sql.params.iter().map(value)),
                |row| Ok(decode(row)),
            )?;
            rows.collect()
        })
        .await
    }

    /// Stores a review of `uuid`; false when there is no such record.
    pub async fn add_review(&self, uuid: &str, review: Review) -> Result<bool, StoreError> {
        let uuid = uuid.to_string();
        self.with(move |c, table| {
            c.execute(
                &format!(
                    "INSERT INTO {table}_feedback (uuid, label, action, reviewer, note, reviewed_ms) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM {table} WHERE uuid = ?1)"
                ),
                params![
                    uuid,
                    review.label,
                    review.action,
                    review.reviewer,
                    review.note,
                    review.reviewed_ms
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }
}

fn value(param: &Param) -> rusqlite::types::Value {
    match param {
        Param::Text(t) => rusqlite::types::Value::Text(t.clone()),
        Param::Int(i) => rusqlite::types::Value::Integer(*i),
    }
}

impl Cells for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Option<String> {
        self.get::<_, Option<String>>(i).ok().flatten()
    }

    fn int(&self, i: usize) -> Option<i64> {
        self.get::<_, Option<i64>>(i).ok().flatten()
    }

    fn float(&self, i: usize) -> Option<f64> {
        self.get::<_, Option<f64>>(i).ok().flatten()
    }
}

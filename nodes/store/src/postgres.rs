//! The PostgreSQL store: several report nodes can share one database. The connection is made
//! at start (a wrong URL or password fails the node's build with the reason) and made again
//! whenever it is lost.
//!
//! Nothing waits forever: connecting (TCP, startup, authentication) is bounded by
//! [`Timeouts::connect`], each statement by [`Timeouts::statement`] — on the client, so a
//! server that accepts and never answers is noticed, and as the session's `statement_timeout`
//! on the server, so a statement the client gave up on does not keep running there. A
//! connection that failed transiently or timed out is dropped (its background task ended)
//! and the next call connects afresh: a dead connection is never reused. Such failures are
//! [`StoreError::Unavailable`], which the flow runner retries; a statement the server rejects
//! for its data ([`crate::transient::sqlstate_is_transient`]) is [`StoreError::Query`].

use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::AbortHandle;
use tokio_postgres::{Client, Config, NoTls};

use crate::product::{AngleRow, ProductVerdict};
use crate::query::{Cells, Param, Review, Sql};
use crate::record::Inspection;
use crate::{COLUMNS, StoreError, Timeouts, VerdictCount, Written, redact};

/// One connection: the client, and the task that drives its socket (ended with it).
struct Live {
    client: Client,
    task: AbortHandle,
}

impl Drop for Live {
    fn drop(&mut self) {
        // A connection to a hung server would otherwise wait on its socket for ever.
        self.task.abort();
    }
}

/// A PostgreSQL inspection table.
pub struct PostgresStore {
    url: String,
    /// Boxed: a `Config` is large, and [`crate::Store`] holds this or a small SQLite store.
    config: Box<Config>,
    table: String,
    timeouts: Timeouts,
    live: Mutex<Option<Arc<Live>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &redact(&self.url))
            .field("table", &self.table)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects and creates the table if needed; every connect and statement is bounded by
    /// `timeouts`.
    pub async fn open(
        url: &str,
        table: &str,
        timeouts: Timeouts,
    ) -> Result<PostgresStore, StoreError> {
        let open_error = |message: String| StoreError::Open {
            url: redact(url),
            message,
        };
        let mut config = Config::from_str(url).map_err(|e| open_error(e.to_string()))?;
        config.connect_timeout(timeouts.connect);
        // The server gives up on a statement when the client does.
        let statement_ms = timeouts.statement.as_millis().max(1);
        let options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => {
                format!("{given} -c statement_timeout={statement_ms}")
            }
            _ => format!("-c statement_timeout={statement_ms}"),
        };
        config.options(options);
        let store = PostgresStore {
            url: url.to_string(),
            config: Box::new(config),
            table: table.to_string(),
            timeouts,
            live: Mutex::new(None),
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
               uuid TEXT PRIMARY KEY,
               recorded_ms BIGINT NOT NULL,
               captured_ms BIGINT NOT NULL,
               latency_ms BIGINT NOT NULL,
               product_id TEXT, angle INTEGER, fragment_count INTEGER, line TEXT,
               camera_id TEXT, camera_verdict TEXT, model TEXT, model_label TEXT,
               model_score DOUBLE PRECISION, segment_classes TEXT, segment_regions TEXT,
               route TEXT, error_kind TEXT, error_message TEXT, trace_id TEXT, filename TEXT, media_path TEXT,
               attributes JSONB NOT NULL);
             CREATE INDEX IF NOT EXISTS {table}_recorded ON {table} (recorded_ms);
             CREATE INDEX IF NOT EXISTS {table}_product ON {table} (product_id);
             CREATE TABLE IF NOT EXISTS {table}_products (
               product_id TEXT PRIMARY KEY, verdict TEXT NOT NULL, line TEXT,
               angles INTEGER NOT NULL, expected INTEGER NOT NULL,
               defect_angles INTEGER NOT NULL, camera_flagged INTEGER NOT NULL,
               defects TEXT NOT NULL, decided_ms BIGINT NOT NULL);
             CREATE TABLE IF NOT EXISTS {table}_feedback (
               id BIGSERIAL PRIMARY KEY, uuid TEXT NOT NULL,
               label TEXT NOT NULL, action TEXT NOT NULL, reviewer TEXT NOT NULL,
               note TEXT, reviewed_ms BIGINT NOT NULL);
             CREATE INDEX IF NOT EXISTS {table}_feedback_uuid ON {table}_feedback (uuid);"
        );
        store
            .with(async |client, _| client.batch_execute(&create).await)
            .await
            .map_err(|e| {
                open_error(match e {
                    StoreError::Unavailable { message, .. } | StoreError::Query { message, .. } => {
                        message
                    }
                    other => other.to_string(),
                })
            })?;
        Ok(store)
    }

    /// A new connection, within the connect timeout.
    async fn connect(&self) -> Result<Live, StoreError> {
        let unavailable = |message: String| StoreError::Unavailable {
            url: redact(&self.url),
            message,
        };
        let (client, connection) =
            tokio::time::timeout(self.timeouts.connect, self.config.connect(NoTls))
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "no connection within the connect timeout ({:?})",
                        self.timeouts.connect
                    ))
                })?
                .map_err(|e| unavailable(e.to_string()))?;
        let url = redact(&self.url);
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                // The next statement reports it (once per outage, see `loupe_sdk::episode`).
                tracing::debug!(database = %url, error = %e, "PostgreSQL connection lost");
            }
        });
        tracing::debug!(database = %redact(&self.url), "connected to PostgreSQL");
        Ok(Live {
            client,
            task: task.abort_handle(),
        })
    }

    /// The live connection, or a new one (waiting for the lock counts against the connect
    /// timeout too, so a hung connect elsewhere cannot stall this call for longer).
    async fn live(&self) -> Result<Arc<Live>, StoreError> {
        let connecting = async {
            let mut live = self.live.lock().await;
            if let Some(current) = live.as_ref().filter(|l| !l.client.is_closed()) {
                return Ok(current.clone());
            }
            // A closed client is replaced, never reused.
            *live = None;
            let fresh = Arc::new(self.connect().await?);
            *live = Some(fresh.clone());
            Ok(fresh)
        };
        tokio::time::timeout(self.timeouts.connect, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable {
                    url: redact(&self.url),
                    message: format!(
                        "no connection within the connect timeout ({:?})",
                        self.timeouts.connect
                    ),
                })
            })
    }

    /// Forgets `broken` (if it is still the live connection): the next call connects again.
    async fn discard(&self, broken: &Arc<Live>) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| Arc::ptr_eq(l, broken)) {
            *live = None;
        }
    }

    /// Runs `f` with a live client within the statement timeout, connecting first if needed.
    /// Calls share one connection (tokio-postgres pipelines them).
    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&Client, &str) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let live = self.live().await?;
        let result =
            tokio::time::timeout(self.timeouts.statement, f(&live.client, &self.table)).await;
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if !crate::transient::postgres_is_transient(&e) => {
                return Err(StoreError::Query {
                    url: redact(&self.url),
                    message: describe(&e),
                });
            }
            Ok(Err(e)) => describe(&e),
            Err(_) => format!(
                "no answer within the statement timeout ({:?})",
                self.timeouts.statement
            ),
        };
        // The connection may be dead or stuck: the next call makes a new one.
        self.discard(&live).await;
        Err(StoreError::Unavailable {
            url: redact(&self.url),
            message: error,
        })
    }

    /// Inserts `record` unless its uuid is stored already.
    pub async fn insert(&self, record: &Inspection) -> Result<Written, StoreError> {
        let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("${i}")).collect();
        let attributes: serde_json::Value = serde_json::to_value(&record.attributes)
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        self.with(async |client, table| {
            let sql = format!(
                "INSERT INTO {table} ({}, attributes) VALUES ({}, ${}) ON CONFLICT (uuid) DO NOTHING",
                COLUMNS.join(", "),
                placeholders.join(", "),
                COLUMNS.len() + 1
            );
            let r = record;
            let changed = client
                .execute(
                    &sql,
                    &[
                        &r.uuid, &r.recorded_ms, &r.captured_ms, &r.latency_ms, &r.product_id,
                        &r.angle, &r.fragment_count, &r.line, &r.camera_id, &r.camera_verdict,
                        &r.model, &r.model_label, &r.model_score, &r.segment_classes,
                        &r.segment_regions, &r.route, &r.error_kind, &r.error_message,
                        &r.trace_id, &r.filename, &r.media_path, &attributes,
                    ],
                )
                .await?;
            Ok(if changed == 1 { Written::Recorded } else { Written::Duplicate })
        })
        .await
    }

    /// Number of records.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.with(async |client, table| {
            let row = client
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .await
    }

    /// Deletes records written before `cutoff_ms`.
    pub async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.with(async |client, table| {
            client
                .execute(
                    &format!("DELETE FROM {table} WHERE recorded_ms < $1"),
                    &[&cutoff_ms],
                )
                .await
        })
        .await
    }

    /// The stored angles of one product.
    pub async fn angles_of(&self, product_id: &str) -> Result<Vec<AngleRow>, StoreError> {
        self.with(async |client, table| {
            let rows = client
                .query(
                    &format!(
                        "SELECT angle, fragment_count, model_label, camera_verdict, line, recorded_ms, \
                 error_kind, attributes \
                         FROM {table} WHERE product_id = $1"
                    ),
                    &[&product_id],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| AngleRow {
                    angle: row.get(0),
                    fragment_count: row.get(1),
                    model_label: row.get(2),
                    camera_verdict: row.get(3),
                    line: row.get(4),
                    recorded_ms: row.get(5),
                    error_kind: row.get(6),
                    attributes: serde_json::from_value(row.get::<_, serde_json::Value>(7))
                        .unwrap_or_default(),
                })
                .collect())
        })
        .await
    }

    /// Stores a product's verdict unless it has one; true when this call stored it.
    pub async fn record_product(&self, v: &ProductVerdict) -> Result<bool, StoreError> {
        self.with(async |client, table| {
            client
                .execute(
                    &format!(
                        "INSERT INTO {table}_products (product_id, verdict, line, angles, expected, \
                         defect_angles, camera_flagged, defects, decided_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (product_id) DO NOTHING"
                    ),
                    &[
                        &v.product_id, &v.verdict.as_str(), &v.line, &v.angles, &v.expected,
                        &v.defect_angles, &v.camera_flagged, &v.defects, &v.decided_ms,
                    ],
                )
                .await
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
        self.with(async |client, table| {
            let rows = client
                .query(
                    &format!(
                        "SELECT i.product_id FROM {table} i \
                         WHERE i.product_id IS NOT NULL AND i.fragment_count IS NOT NULL \
                         AND NOT EXISTS (SELECT 1 FROM {table}_products p WHERE p.product_id = i.product_id) \
                         GROUP BY i.product_id HAVING MIN(i.recorded_ms) < $1 LIMIT $2"
                    ),
                    &[&cutoff_ms, &limit],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
        .await
    }

    /// A product's stored verdict.
    pub async fn product(&self, product_id: &str) -> Result<Option<String>, StoreError> {
        self.with(async |client, table| {
            let row = client
                .query_opt(
                    &format!("SELECT verdict FROM {table}_products WHERE product_id = $1"),
                    &[&product_id],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    /// Images per (camera verdict, model label, route, true label).
    pub async fn verdict_counts(&self) -> Result<Vec<VerdictCount>, StoreError> {
        self.with(async |client, table| {
            let rows = client
                .query(
                    &format!(
                        "SELECT camera_verdict, model_label, route, attributes->>'truth.label', \
                         COUNT(*) FROM {table} GROUP BY 1, 2, 3, 4"
                    ),
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| VerdictCount {
                    camera_verdict: row.get(0),
                    model_label: row.get(1),
                    route: row.get(2),
                    truth: row.get(3),
                    images: row.get::<_, i64>(4) as u64,
                })
                .collect())
        })
        .await
    }

    /// Products per verdict.
    pub async fn product_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(async |client, table| {
            let rows = client
                .query(
                    &format!(
                        "SELECT verdict, COUNT(*) FROM {table}_products GROUP BY verdict ORDER BY verdict"
                    ),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|row| (row.get(0), row.get::<_, i64>(1) as u64)).collect())
        })
        .await
    }

    /// The records table.
    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// Runs a query built by [`crate::query`] and decodes each row with `decode`.
    pub(crate) async fn select<T>(
        &self,
        sql: Sql,
        decode: fn(&dyn Cells) -> T,
    ) -> Result<Vec<T>, StoreError> {
        let params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = sql
            .params
            .into_iter()
            .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                match p {
                    Param::Text(t) => Box::new(t),
                    Param::Int(i) => Box::new(i),
                }
            })
            .collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        self.with(async |client, _| {
            let rows = client.query(&sql.text, &refs).await?;
            Ok(rows.iter().map(|row| decode(row)).collect())
        })
        .await
    }

    /// Stores a review of `uuid`; false when there is no such record.
    pub async fn add_review(&self, uuid: &str, review: &Review) -> Result<bool, StoreError> {
        self.with(async |client, table| {
            let changed = client
                .execute(
                    &format!(
                        "INSERT INTO {table}_feedback (uuid, label, action, reviewer, note, reviewed_ms) \
                         SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint \
                         WHERE EXISTS (SELECT 1 FROM {table} WHERE uuid = $1::text)"
                    ),
                    &[
                        &uuid,
                        &review.label,
                        &review.action,
                        &review.reviewer,
                        &review.note,
                        &review.reviewed_ms,
                    ],
                )
                .await?;
            Ok(changed == 1)
        })
        .await
    }
}

impl Cells for tokio_postgres::Row {
    fn text(&self, i: usize) -> Option<String> {
        self.try_get::<_, Option<String>>(i).ok().flatten()
    }

    fn int(&self, i: usize) -> Option<i64> {
        self.try_get::<_, Option<i64>>(i)
            .ok()
            .flatten()
            .or_else(|| {
                self.try_get::<_, Option<i32>>(i)
                    .ok()
                    .flatten()
                    .map(i64::from)
            })
    }

    fn float(&self, i: usize) -> Option<f64> {
        self.try_get::<_, Option<f64>>(i).ok().flatten()
    }
}

/// The error with its SQLSTATE and the server's message (tokio-postgres's own text is only
/// "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} (SQLSTATE {}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        // Its text already ends with its cause (`error connecting to server: Connection
        // refused`).
        None => error.to_string(),
    }
}

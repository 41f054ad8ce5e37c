//! # loupe-store
//!
//! Where inspection records are kept and read back: the record itself ([`record`]), the
//! SQLite and PostgreSQL stores behind one [`Store`], the queries that read records back
//! (listings, reviews, product verdicts, coil counts, the daily report's rows; [`query`]),
//! the product verdict rows ([`product`]), UTC days ([`day`]) and which errors pass
//! ([`transient`]). The report node writes with it; its dashboard, daily report, `loupe
//! dataset` and `loupe demo` read with it. Deciding verdicts, aggregating figures and serving
//! pages are the report node's (`loupe-report`), not this crate's.
//!
//! SQLite by default (embedded, zero set-up), PostgreSQL by URL so several report nodes can
//! share one database. Both keep one table (default `inspections`, see
//! [`Inspection`] for the columns) with the FlowFile uuid as primary key; a record is
//! inserted with `ON CONFLICT (uuid) DO NOTHING`, so a FlowFile delivered twice — a retry, a
//! restarted node — is one record ([`Written::Duplicate`] the second time).
//!
//! Errors are sorted once, where they happen ([`transient`]): trouble that passes — a
//! server that is down, restarting or hung (every connect and statement has a timeout,
//! [`Timeouts`]), a busy or full database — is [`StoreError::Unavailable`], which the report
//! node answers with a retryable error; a record the database rejects for its data is
//! [`StoreError::Query`], which goes to `failure`.
//!
//! URLs: `sqlite:PATH` (relative to the flow file's directory; the file and its directory are
//! created) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also `postgresql://`).
//!
//! ## Layout
//!
//! | module | what |
//! |---|---|
//! | `lib.rs` | [`Store`] (open by URL, write, read), [`StoreError`], [`Timeouts`], [`Written`], [`CoilCount`], [`VerdictCount`], [`redact`], [`valid_table`] |
//! | [`record`] | [`Inspection`]: one record, read from a FlowFile's attributes |
//! | [`product`] | product verdict rows: [`product::AngleRow`], [`product::ProductVerdict`], [`product::Verdict`] |
//! | [`query`] | reading records back: the SQL both databases share, [`ListQuery`], [`Stored`], [`Review`], [`DailyRow`] |
//! | `sqlite.rs` | [`SqliteStore`]: one file, WAL, `synchronous = FULL` |
//! | `postgres.rs` | [`PostgresStore`]: one shared database, reconnects, timeouts |
//! | [`transient`] | which errors are retried (database, SQLite, files) and which are final |
//! | [`day`] | UTC days `YYYY-MM-DD`: media folders, daily report, `?day=`, `--since` |

pub mod day;
mod postgres;
pub mod product;
pub mod query;
pub mod record;
mod sqlite;
pub mod transient;

use std::path::Path;
use std::time::Duration;

use crate::product::{AngleRow, ProductVerdict};

pub use postgres::PostgresStore;
use query::{Cells, Dialect, Sql};
pub use query::{DailyRow, Disagreement, ListQuery, Review, Stored};
pub use record::Inspection;
pub use sqlite::SqliteStore;

/// A store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one of the supported forms.
    #[error("database URL `{url}` is not supported: use sqlite:PATH or postgres://USER@HOST/DB")]
    Url {
        /// The URL as given.
        url: String,
    },
    /// The database could not be opened or its table created.
    #[error("cannot open database {url}: {message}")]
    Open {
        /// Where (password removed).
        url: String,
        /// What the database said.
        message: String,
    },
    /// The database cannot be reached now; retry later.
    #[error("database {url} unavailable: {message}")]
    Unavailable {
        /// Where (password removed).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A statement failed.
    #[error("database {url}: {message}")]
    Query {
        /// Where (password removed).
        url: String,
        /// What the database said.
        message: String,
    },
}

impl StoreError {
    /// Whether the operation may work later (the database is down, hung, busy or full): the
    /// report node then returns a retryable error and the flow tries the FlowFile again.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// How long a store waits for its database before it calls it unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (PostgreSQL: TCP, startup and authentication together).
    pub connect: Duration,
    /// One statement (PostgreSQL: client side, and `statement_timeout` on the server;
    /// SQLite: how long to wait for a lock another process holds).
    pub statement: Duration,
}

impl Default for Timeouts {
    /// Connect 5 s, statement 10 s.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            statement: Duration::from_secs(10),
        }
    }
}

/// An open store.
#[derive(Debug)]
pub enum Store {
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

impl Store {
    /// Opens the store at `url` (creating the table if needed) with the default
    /// [`Timeouts`]; relative SQLite paths resolve against `base_dir`.
    pub async fn open(url: &str, base_dir: &Path, table: &str) -> Result<Store, StoreError> {
        Store::open_with(url, base_dir, table, Timeouts::default()).await
    }

    /// [`Store::open`] with these `timeouts`.
    pub async fn open_with(
        url: &str,
        base_dir: &Path,
        table: &str,
        timeouts: Timeouts,
    ) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            SqliteStore::open(&base_dir.join(path), table, timeouts)
                .await
                .map(Store::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PostgresStore::open(url, table, timeouts)
                .await
                .map(Store::Postgres)
        } else {
            Err(StoreError::Url { url: redact(url) })
        }
    }

    /// Inserts one record unless its uuid is already stored.
    pub async fn insert(&self, record: &Inspection) -> Result<Written, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert(record.clone()).await,
            Store::Postgres(s) => s.insert(record).await,
        }
    }

    /// Number of records.
    pub async fn count(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.count().await,
            Store::Postgres(s) => s.count().await,
        }
    }

    /// The stored angles of one product.
    pub async fn angles_of(&self, product_id: &str) -> Result<Vec<AngleRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.angles_of(product_id).await,
            Store::Postgres(s) => s.angles_of(product_id).await,
        }
    }

    /// Stores a product's verdict unless it has one already; true when this call stored it
    /// (so exactly one report node acts on a verdict).
    pub async fn record_product(&self, verdict: &ProductVerdict) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.record_product(verdict.clone()).await,
            Store::Postgres(s) => s.record_product(verdict).await,
        }
    }

    /// Up to `limit` products with angles and no verdict whose first angle was recorded
    /// before `cutoff_ms`.
    pub async fn undecided_before(
        &self,
        cutoff_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.undecided_before(cutoff_ms, limit).await,
            Store::Postgres(s) => s.undecided_before(cutoff_ms, limit).await,
        }
    }

    /// A product's stored verdict (`defective`, `review`, `ok`, `incomplete`), if decided.
    pub async fn product(&self, product_id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.product(product_id).await,
            Store::Postgres(s) => s.product(product_id).await,
        }
    }

    /// Images per (camera verdict, model label, route, true label), the figures of a run's
    /// summary. The true label is the `truth.label` attribute (`loupe synth` data has it).
    pub async fn verdict_counts(&self) -> Result<Vec<VerdictCount>, StoreError> {
        match self {
            Store::Sqlite(s) => s.verdict_counts().await,
            Store::Postgres(s) => s.verdict_counts().await,
        }
    }

    /// Images per product, product verdict, camera verdict and true label: what the coil
    /// figures (`loupe_report::coils`) are counted from; only images recorded in
    /// `[from_ms, to_ms)` when `range` is given.
    pub async fn coil_counts(
        &self,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<CoilCount>, StoreError> {
        self.select(
            |table, d| query::coil_counts(table, range, d),
            query::decode_coil_count,
        )
        .await
    }

    /// The newest product verdicts (most recently decided first), at most `limit`, each
    /// continuing after `before` (`decided_ms`, `product_id`) when given.
    pub async fn products(
        &self,
        limit: u32,
        before: Option<(i64, String)>,
    ) -> Result<Vec<ProductVerdict>, StoreError> {
        self.select(
            |table, d| query::products(table, limit, before.as_ref(), d),
            query::decode_product,
        )
        .await
    }

    /// Products per verdict (`defective`, `review`, `ok`, `incomplete`).
    pub async fn product_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.product_counts().await,
            Store::Postgres(s) => s.product_counts().await,
        }
    }

    /// Deletes records written before `cutoff_ms`; returns how many.
    pub async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.delete_older_than(cutoff_ms).await,
            Store::Postgres(s) => s.delete_older_than(cutoff_ms).await,
        }
    }
}

impl Store {
    /// Runs the statement `build` makes for this store's table and dialect; decodes each row.
    async fn select<T: Send + 'static>(
        &self,
        build: impl FnOnce(&str, Dialect) -> Sql,
        decode: fn(&dyn Cells) -> T,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Store::Sqlite(s) => s.select(build(s.table(), Dialect::Sqlite), decode).await,
            Store::Postgres(s) => s.select(build(s.table(), Dialect::Postgres), decode).await,
        }
    }

    /// The records `q` selects, newest first, each with its latest review.
    pub async fn list(&self, q: &ListQuery) -> Result<Vec<Stored>, StoreError> {
        self.select(|table, d| query::list(table, q, d), query::decode)
            .await
    }

    /// One record with its latest review.
    pub async fn get(&self, uuid: &str) -> Result<Option<Stored>, StoreError> {
        let rows = self
            .select(|table, d| query::get(table, uuid, d), query::decode)
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Every review of a record, oldest first.
    pub async fn reviews(&self, uuid: &str) -> Result<Vec<Review>, StoreError> {
        let rows = self
            .select(
                |table, d| query::reviews(table, uuid, d),
                |row| query::decode_review(row, 0),
            )
            .await?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// Stores a review (feedback) of record `uuid`; false when there is no such record.
    /// Reviews are kept, never overwritten: the latest is the record's reviewed verdict.
    pub async fn add_review(&self, uuid: &str, review: &Review) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.add_review(uuid, review.clone()).await,
            Store::Postgres(s) => s.add_review(uuid, review).await,
        }
    }

    /// The daily report's rows for records written in `[from_ms, to_ms)`, at most `limit`.
    pub async fn daily_rows(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<DailyRow>, StoreError> {
        self.select(
            |table, d| query::daily(table, from_ms, to_ms, limit, d),
            query::decode_daily,
        )
        .await
    }
}

/// What writing one record did (to a [`Store`], or to the report node's JSON-lines file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A record was written.
    Recorded,
    /// The uuid was already there: nothing written.
    Duplicate,
}

/// Images of one product with one combination of verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoilCount {
    /// The product.
    pub product_id: String,
    /// Its stored verdict, once decided.
    pub verdict: Option<String>,
    /// `camera.verdict`.
    pub camera_verdict: Option<String>,
    /// `truth.label`, where the data knows it.
    pub truth: Option<String>,
    /// Images.
    pub images: u64,
}

/// Images with one combination of verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictCount {
    /// `camera.verdict`.
    pub camera_verdict: Option<String>,
    /// The model's label.
    pub model_label: Option<String>,
    /// `route`.
    pub route: Option<String>,
    /// `truth.label`, where the data knows it.
    pub truth: Option<String>,
    /// Images.
    pub images: u64,
}

/// Whether `name` can be a table name here (letters, digits, `_`; not starting with a digit):
/// it is put into SQL text, so nothing else is accepted.
pub fn valid_table(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The columns in insert order, shared by both stores' statements.
pub(crate) const COLUMNS: [&str; 21] = [
    "uuid",
    "recorded_ms",
    "captured_ms",
    "latency_ms",
    "product_id",
    "angle",
    "fragment_count",
    "line",
    "camera_id",
    "camera_verdict",
    "model",
    "model_label",
    "model_score",
    "segment_classes",
    "segment_regions",
    "route",
    "error_kind",
    "error_message",
    "trace_id",
    "filename",
    "media_path",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://loupe:secret@db:5432/q"),
            "postgres://loupe:***@db:5432/q"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact("sqlite:report.db"), "sqlite:report.db");
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(valid_table("inspections"));
        assert!(valid_table("_t2"));
        assert!(!valid_table("2t"));
        assert!(!valid_table("a; drop table b"));
        assert!(!valid_table(""));
    }
}

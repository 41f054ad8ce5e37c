//! Reading records back, for the dashboard, the daily report and the dataset export: the SQL
//! both stores share (only the placeholders and the JSON column's type differ), and decoding
//! a result row into a [`Stored`] inspection whichever database it came from.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::product::{ProductVerdict, Verdict};
use crate::record::Inspection;
use crate::{COLUMNS, CoilCount};

/// Which records a listing returns, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only this `line`.
    pub line: Option<String>,
    /// Only the images of this product.
    pub product: Option<String>,
    /// Only records whose verdict — the reviewer's label if reviewed, else the model's —
    /// is this label; `error` selects records that failed somewhere.
    pub verdict: Option<String>,
    /// Only records written in `[from_ms, to_ms)`.
    pub from_ms: Option<i64>,
    /// See `from_ms`.
    pub to_ms: Option<i64>,
    /// Only records where the factory camera and the verdict disagree: the camera flagged
    /// the image (`camera_flag`) and the verdict is not a defect, or the other way round.
    pub disagree: Option<Disagreement>,
    /// Only records reviewed at or after this time (Unix ms).
    pub reviewed_since: Option<i64>,
    /// Continue a listing after this record (`recorded_ms`, `uuid`) of its last page.
    pub before: Option<(i64, String)>,
    /// Most records returned (capped at [`MAX_PAGE`]).
    pub limit: u32,
}

/// What counts as a camera flag and as a defect, for [`ListQuery::disagree`].
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    /// The `camera.verdict` value that means the camera flagged the image.
    pub camera_flag: String,
    /// Labels that are defects.
    pub defect_labels: Vec<String>,
}

/// The most records one listing returns.
pub const MAX_PAGE: u32 = 1000;

/// One reviewer's decision on a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    /// The label the reviewer says is right.
    pub label: String,
    /// `confirmed` (the model's label is right) or `corrected`.
    pub action: String,
    /// Who reviewed.
    pub reviewer: String,
    /// Free text.
    pub note: Option<String>,
    /// When, Unix epoch milliseconds.
    pub reviewed_ms: i64,
}

/// A stored record and its latest review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored {
    /// The record as written.
    #[serde(flatten)]
    pub record: Inspection,
    /// The latest review, if any.
    pub review: Option<Review>,
}

impl Stored {
    /// The verdict people see: the reviewer's label if reviewed, else the model's.
    pub fn verdict(&self) -> Option<&str> {
        self.review
            .as_ref()
            .map(|r| r.label.as_str())
            .or(self.record.model_label.as_deref())
    }
}

/// One record's row for the daily report (aggregated by `loupe_report::daily`).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRow {
    /// When it was written.
    pub recorded_ms: i64,
    /// Its product (the record's uuid when it has none: an image is then its own product).
    pub product: String,
    /// `line`.
    pub line: Option<String>,
    /// `camera.verdict`.
    pub camera_verdict: Option<String>,
    /// The model's label.
    pub model_label: Option<String>,
    /// `segment.classes`.
    pub segment_classes: Option<String>,
    /// The latest reviewer's label.
    pub reviewed_label: Option<String>,
    /// Its product's verdict, once decided.
    pub product_verdict: Option<String>,
}

/// A query parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

/// The SQL dialect: placeholders and how the attributes column reads as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?N` placeholders; attributes are TEXT.
    Sqlite,
    /// `$N` placeholders; attributes are JSONB.
    Postgres,
}

/// A statement and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    /// The statement.
    pub text: String,
    /// Its parameters, in placeholder order.
    pub params: Vec<Param>,
}

impl Sql {
    fn new(dialect: Dialect) -> (Sql, Binder) {
        (
            Sql {
                text: String::new(),
                params: Vec::new(),
            },
            Binder { dialect },
        )
    }
}

struct Binder {
    dialect: Dialect,
}

impl Binder {
    /// Adds `value` to the parameters and returns its placeholder.
    fn bind(&self, sql: &mut Sql, value: Param) -> String {
        sql.params.push(value);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", sql.params.len()),
            Dialect::Postgres => format!("${}", sql.params.len()),
        }
    }
}

/// The latest review of each record, joined as `f`.
fn latest_review(table: &str) -> String {
    format!(
        "LEFT JOIN (SELECT uuid AS f_uuid, label, action, reviewer, note, reviewed_ms, \
         ROW_NUMBER() OVER (PARTITION BY uuid ORDER BY id DESC) AS rn FROM {table}_feedback) f \
         ON f.f_uuid = i.uuid AND f.rn = 1"
    )
}

/// The selected columns of a [`Stored`] row, in the order [`decode`] reads them.
fn stored_columns(dialect: Dialect) -> String {
    let mut columns: Vec<String> = COLUMNS.iter().map(|c| format!("i.{c}")).collect();
    columns.push(match dialect {
        Dialect::Sqlite => "i.attributes".to_string(),
        Dialect::Postgres => "i.attributes::text".to_string(),
    });
    for c in ["label", "action", "reviewer", "note", "reviewed_ms"] {
        columns.push(format!("f.{c}"));
    }
    columns.join(", ")
}

/// The listing `query` asks for.
pub fn list(table: &str, query: &ListQuery, dialect: Dialect) -> Sql {
    let (mut sql, b) = Sql::new(dialect);
    let mut conditions: Vec<String> = Vec::new();
    if let Some(line) = &query.line {
        conditions.push(format!(
            "i.line = {}",
            b.bind(&mut sql, Param::Text(line.clone()))
        ));
    }
    if let Some(product) = &query.product {
        conditions.push(format!(
            "i.product_id = {}",
            b.bind(&mut sql, Param::Text(product.clone()))
        ));
    }
    match query.verdict.as_deref() {
        Some("error") => conditions.push("i.error_kind IS NOT NULL".to_string()),
        Some(verdict) => conditions.push(format!(
            "COALESCE(f.label, i.model_label) = {}",
            b.bind(&mut sql, Param::Text(verdict.to_string()))
        )),
        None => {}
    }
    if let Some(from) = query.from_ms {
        conditions.push(format!(
            "i.recorded_ms >= {}",
            b.bind(&mut sql, Param::Int(from))
        ));
    }
    if let Some(to) = query.to_ms {
        conditions.push(format!(
            "i.recorded_ms < {}",
            b.bind(&mut sql, Param::Int(to))
        ));
    }
    if let Some(d) = &query.disagree {
        let flag = b.bind(&mut sql, Param::Text(d.camera_flag.clone()));
        let labels: Vec<String> = d
            .defect_labels
            .iter()
            .map(|l| b.bind(&mut sql, Param::Text(l.clone())))
            .collect();
        let defect = if labels.is_empty() {
            "1 = 0".to_string()
        } else {
            format!(
                "COALESCE(f.label, i.model_label) IN ({})",
                labels.join(", ")
            )
        };
        conditions.push(format!(
            "COALESCE(f.label, i.model_label) IS NOT NULL \
             AND (COALESCE(i.camera_verdict, '') = {flag}) <> ({defect})"
        ));
    }
    if let Some(since) = query.reviewed_since {
        conditions.push(format!(
            "f.reviewed_ms >= {}",
            b.bind(&mut sql, Param::Int(since))
        ));
    }
    if let Some((ms, uuid)) = &query.before {
        let (a, c, u) = (
            b.bind(&mut sql, Param::Int(*ms)),
            b.bind(&mut sql, Param::Int(*ms)),
            b.bind(&mut sql, Param::Text(uuid.clone())),
        );
        conditions.push(format!(
            "(i.recorded_ms < {a} OR (i.recorded_ms = {c} AND i.uuid < {u}))"
        ));
    }
    let limit = b.bind(
        &mut sql,
        Param::Int(i64::from(query.limit.clamp(1, MAX_PAGE))),
    );
    sql.text = format!(
        "SELECT {} FROM {table} i {} {} ORDER BY i.recorded_ms DESC, i.uuid DESC LIMIT {limit}",
        stored_columns(dialect),
        latest_review(table),
        where_clause(&conditions),
    );
    sql
}

/// One record by uuid.
pub fn get(table: &str, uuid: &str, dialect: Dialect) -> Sql {
    let (mut sql, b) = Sql::new(dialect);
    let u = b.bind(&mut sql, Param::Text(uuid.to_string()));
    sql.text = format!(
        "SELECT {} FROM {table} i {} WHERE i.uuid = {u}",
        stored_columns(dialect),
        latest_review(table)
    );
    sql
}

/// Every review of one record, oldest first.
pub fn reviews(table: &str, uuid: &str, dialect: Dialect) -> Sql {
    let (mut sql, b) = Sql::new(dialect);
    let u = b.bind(&mut sql, Param::Text(uuid.to_string()));
    sql.text = format!(
        "SELECT label, action, reviewer, note, reviewed_ms FROM {table}_feedback \
         WHERE uuid = {u} ORDER BY id"
    );
    sql
}

/// Images per product, product verdict, camera verdict and true label (`truth.label`), of
/// the images recorded in `[from_ms, to_ms)` when a range is given.
pub fn coil_counts(table: &str, range: Option<(i64, i64)>, dialect: Dialect) -> Sql {
    let (mut sql, b) = Sql::new(dialect);
    let within = match range {
        Some((from, to)) => format!(
            " AND i.recorded_ms >= {} AND i.recorded_ms < {}",
            b.bind(&mut sql, Param::Int(from)),
            b.bind(&mut sql, Param::Int(to))
        ),
        None => String::new(),
    };
    let truth = match dialect {
        Dialect::Sqlite => "json_extract(i.attributes, '$.\"truth.label\"')",
        Dialect::Postgres => "i.attributes->>'truth.label'",
    };
    sql.text = format!(
        "SELECT i.product_id, p.verdict, i.camera_verdict, {truth}, COUNT(*) \
         FROM {table} i LEFT JOIN {table}_products p ON p.product_id = i.product_id \
         WHERE i.product_id IS NOT NULL{within} GROUP BY 1, 2, 3, 4"
    );
    sql
}

/// Decodes a row of [`coil_counts`].
pub fn decode_coil_count(row: &dyn Cells) -> CoilCount {
    CoilCount {
        product_id: row.text(0).unwrap_or_default(),
        verdict: row.text(1),
        camera_verdict: row.text(2),
        truth: row.text(3),
        images: row.int(4).unwrap_or_default().max(0) as u64,
    }
}

/// The newest product verdicts, most recently decided first.
pub fn products(table: &str, limit: u32, before: Option<&(i64, String)>, dialect: Dialect) -> Sql {
    let (mut sql, b) = Sql::new(dialect);
    let condition = match before {
        Some((ms, id)) => {
            let (ms, id) = (
                b.bind(&mut sql, Param::Int(*ms)),
                b.bind(&mut sql, Param::Text(id.clone())),
            );
            format!("WHERE decided_ms < {ms} OR (decided_ms = {ms} AND product_id < {id})")
        }
        None => String::new(),
    };
    let limit = b.bind(&mut sql, Param::Int(i64::from(limit.clamp(1, MAX_PAGE))));
    sql.text = format!(
        "SELECT product_id, verdict, line, angles, expected, defect_angles, camera_flagged, \
         defects, decided_ms FROM {table}_products {condition} \
         ORDER BY decided_ms DESC, product_id DESC LIMIT {limit}"
    );
    sql
}

/// Decodes a row of [`products`].
pub fn decode_product(row: &dyn Cells) -> ProductVerdict {
    let int = |i: usize| row.int(i).and_then(|v| i32::try_from(v).ok()).unwrap_or(0);
    let verdict = Verdict::parse(row.text(1).as_deref().unwrap_or(""));
    ProductVerdict {
        product_id: row.text(0).unwrap_or_default(),
        verdict,
        line: row.text(2),
        angles: int(3),
        expected: int(4),
        defect_angles: int(5),
        camera_flagged: int(6),
        defects: row.text(7).unwrap_or_default(),
        decided_ms: row.int(8).unwrap_or_default(),
    }
}

/// The rows of the daily report for records written in `[from_ms, to_ms)`, at most `limit`.
pub fn daily(table: &str, from_ms: i64, to_ms: i64, limit: i64, dialect: Dialect) -> Sql {
    let (mut sql, b) = Sql::new(dialect);
    let (from, to, limit) = (
        b.bind(&mut sql, Param::Int(from_ms)),
        b.bind(&mut sql, Param::Int(to_ms)),
        b.bind(&mut sql, Param::Int(limit)),
    );
    sql.text = format!(
        "SELECT i.recorded_ms, COALESCE(i.product_id, i.uuid), i.line, i.camera_verdict, \
         i.model_label, i.segment_classes, f.label, p.verdict FROM {table} i {} \
         LEFT JOIN {table}_products p ON p.product_id = i.product_id \
         WHERE i.recorded_ms >= {from} AND i.recorded_ms < {to} LIMIT {limit}",
        latest_review(table)
    );
    sql
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// Reads the cells of a result row, whichever database it came from.
pub trait Cells {
    /// A text cell (NULL is `None`).
    fn text(&self, i: usize) -> Option<String>;
    /// An integer cell.
    fn int(&self, i: usize) -> Option<i64>;
    /// A floating-point cell.
    fn float(&self, i: usize) -> Option<f64>;
}

/// Decodes a row selected with the [`list`]/[`get`] columns.
pub fn decode(row: &dyn Cells) -> Stored {
    let text = |i: usize| row.text(i);
    let int32 = |i: usize| row.int(i).and_then(|v| i32::try_from(v).ok());
    let n = COLUMNS.len();
    let attributes: BTreeMap<String, String> = row
        .text(n)
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let record = Inspection {
        uuid: text(0).unwrap_or_default(),
        recorded_ms: row.int(1).unwrap_or_default(),
        captured_ms: row.int(2).unwrap_or_default(),
        latency_ms: row.int(3).unwrap_or_default(),
        product_id: text(4),
        angle: int32(5),
        fragment_count: int32(6),
        line: text(7),
        camera_id: text(8),
        camera_verdict: text(9),
        model: text(10),
        model_label: text(11),
        model_score: row.float(12),
        segment_classes: text(13),
        segment_regions: text(14),
        route: text(15),
        error_kind: text(16),
        error_message: text(17),
        trace_id: text(18),
        filename: text(19),
        media_path: text(20),
        attributes,
    };
    let review = decode_review(row, n + 1);
    Stored { record, review }
}

/// Decodes the five review columns starting at `at` (label, action, reviewer, note, time).
pub fn decode_review(row: &dyn Cells, at: usize) -> Option<Review> {
    Some(Review {
        label: row.text(at)?,
        action: row.text(at + 1).unwrap_or_default(),
        reviewer: row.text(at + 2).unwrap_or_default(),
        note: row.text(at + 3),
        reviewed_ms: row.int(at + 4).unwrap_or_default(),
    })
}

/// Decodes a row selected with [`daily`].
pub fn decode_daily(row: &dyn Cells) -> DailyRow {
    DailyRow {
        recorded_ms: row.int(0).unwrap_or_default(),
        product: row.text(1).unwrap_or_default(),
        line: row.text(2),
        camera_verdict: row.text(3),
        model_label: row.text(4),
        segment_classes: row.text(5),
        reviewed_label: row.text(6),
        product_verdict: row.text(7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_bind_their_values_and_never_inline_them() {
        let query = ListQuery {
            line: Some("L1'; drop table x".into()),
            verdict: Some("burr".into()),
            disagree: Some(Disagreement {
                camera_flag: "loose_wire".into(),
                defect_labels: vec!["loose_wire".into()],
            }),
            before: Some((5, "u".into())),
            limit: 5000,
            ..Default::default()
        };
        let sql = list("inspections", &query, Dialect::Postgres);
        assert!(!sql.text.contains("drop table"));
        assert!(sql.text.contains("i.line = $1"), "{}", sql.text);
        assert!(sql.text.ends_with(&format!("LIMIT ${}", sql.params.len())));
        assert_eq!(sql.params.last(), Some(&Param::Int(i64::from(MAX_PAGE))));
        let sql = list("inspections", &query, Dialect::Sqlite);
        assert!(sql.text.contains("i.line = ?1"), "{}", sql.text);
        assert!(sql.text.contains("i.attributes,"));
    }

    #[test]
    fn the_verdict_is_the_reviewers_label_first() {
        let attrs = [("classify.label".to_string(), "loose_wire".to_string())];
        let flow_file = loupe_sdk::FlowFile::create(Vec::new(), attrs.into_iter().collect());
        let mut stored = Stored {
            record: Inspection::from_flow_file(&flow_file, 0),
            review: None,
        };
        assert_eq!(stored.verdict(), Some("loose_wire"));
        stored.review = Some(Review {
            label: "burr".into(),
            action: "corrected".into(),
            reviewer: "anna".into(),
            note: None,
            reviewed_ms: 1,
        });
        assert_eq!(stored.verdict(), Some("burr"));
    }
}

//! What the products table holds: a product's verdict ([`ProductVerdict`], [`Verdict`]) and
//! the stored angles it is decided from ([`AngleRow`]). The rules that decide a verdict from
//! the angles are the report node's (`loupe_report::product`, under its product policy);
//! the store only reads and writes these rows — one verdict per product, first decision wins.

use std::collections::HashMap;

use serde::Serialize;

/// What one stored angle says (a row of the inspections table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AngleRow {
    /// `camera.angle` / `fragment.index`.
    pub angle: Option<i32>,
    /// `fragment.count`.
    pub fragment_count: Option<i32>,
    /// The model's label for the image.
    pub model_label: Option<String>,
    /// The factory camera's verdict.
    pub camera_verdict: Option<String>,
    /// `line`.
    pub line: Option<String>,
    /// When the record was written.
    pub recorded_ms: i64,
    /// `error.kind` when the image failed somewhere.
    pub error_kind: Option<String>,
    /// Every attribute of the record (what the product policy's rules see).
    pub attributes: HashMap<String, String>,
}

/// A product's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductVerdict {
    /// The product.
    pub product_id: String,
    /// `defective`, `review`, `ok` or `incomplete`.
    pub verdict: Verdict,
    /// The line its images came from (the first one named).
    pub line: Option<String>,
    /// Distinct angles received.
    pub angles: i32,
    /// Angles expected (`fragment.count`).
    pub expected: i32,
    /// Angles the policy stopped (with the suspect ones when they stopped it together).
    pub defect_angles: i32,
    /// Angles the factory camera flagged.
    pub camera_flagged: i32,
    /// What decided it: for a stopped product the reasons of its stopped angles (the defect
    /// labels under the default policy), for one sent to review the reasons it needs a person;
    /// comma-separated, sorted.
    pub defects: String,
    /// When the verdict was made.
    pub decided_ms: i64,
}

/// A product's verdict. The plant stops every product that is not `ok`: a person re-checks
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Enough angles stopped (the policy's `stop_angles`), or enough were suspect or stopped
    /// (`suspect_angles`).
    Defective,
    /// No defect decided, but an angle needs a person (an unusable frame, a failure).
    Review,
    /// Every angle is in, and every one passed.
    Ok,
    /// Angles stopped arriving before all were in, and none stopped the product.
    Incomplete,
}

impl Verdict {
    /// The verdict as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Defective => "defective",
            Verdict::Review => "review",
            Verdict::Ok => "ok",
            Verdict::Incomplete => "incomplete",
        }
    }

    /// The verdict as stored back (an unknown text is `incomplete`: not a decision to pass).
    pub fn parse(stored: &str) -> Verdict {
        [Verdict::Defective, Verdict::Review, Verdict::Ok]
            .into_iter()
            .find(|v| v.as_str() == stored)
            .unwrap_or(Verdict::Incomplete)
    }

    /// Whether the plant stops a product with this stored verdict (everything but `ok`).
    pub fn stops(stored: &str) -> bool {
        stored != Verdict::Ok.as_str()
    }
}

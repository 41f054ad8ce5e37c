//! Product verdicts: the images of one product (its angles, joined by `fragment.identifier` /
//! `product.id` and `fragment.count`, NiFi's convention) make one verdict. A product is
//! `defective` if any angle is, `ok` when every angle is in and none is, and `incomplete` when
//! its angles stopped arriving for `timeout` — reported, never silently dropped.
//!
//! The verdict is computed from the stored records, not from memory, so it survives a
//! restart and is the same whichever report node (sharing a PostgreSQL database) sees the
//! last angle; the products table keeps one verdict per product (first decision wins).

use serde::Serialize;

/// What one stored angle says (a row of the inspections table).
#[derive(Debug, Clone, PartialEq)]
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
}

/// A product's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductVerdict {
    /// The product.
    pub product_id: String,
    /// `defective`, `ok` or `incomplete`.
    pub verdict: Verdict,
    /// The line its images came from (the first one named).
    pub line: Option<String>,
    /// Distinct angles received.
    pub angles: i32,
    /// Angles expected (`fragment.count`).
    pub expected: i32,
    /// Angles the model called defective.
    pub defect_angles: i32,
    /// Angles the factory camera flagged.
    pub camera_flagged: i32,
    /// The defect labels seen, comma-separated, sorted.
    pub defects: String,
    /// When the verdict was made.
    pub decided_ms: i64,
}

/// A product's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// At least one angle is defective.
    Defective,
    /// Every angle is in, none defective.
    Ok,
    /// Angles stopped arriving before all were in, and none was defective.
    Incomplete,
}

impl Verdict {
    /// The verdict as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Defective => "defective",
            Verdict::Ok => "ok",
            Verdict::Incomplete => "incomplete",
        }
    }
}

/// The verdict of `product_id` from its stored angles: `Some` once it can be decided —
/// every expected angle is in, or `timed_out` (then `defective` if any angle is, else
/// `incomplete`). A defective angle decides nothing early: the product waits for its other
/// angles so the verdict lists every defect.
pub fn decide(
    product_id: &str,
    rows: &[AngleRow],
    defect_labels: &[String],
    camera_flag: &str,
    timed_out: bool,
    now_ms: i64,
) -> Option<ProductVerdict> {
    let expected = rows.iter().filter_map(|r| r.fragment_count).max()?;
    let mut angles: Vec<i32> = rows.iter().filter_map(|r| r.angle).collect();
    angles.sort_unstable();
    angles.dedup();
    let complete = angles.len() as i32 >= expected;
    if !complete && !timed_out {
        return None;
    }
    let is_defect = |r: &AngleRow| {
        r.model_label
            .as_ref()
            .is_some_and(|l| defect_labels.iter().any(|d| d == l))
    };
    // One vote per angle (a redelivered image may be stored twice under another uuid).
    let per_angle = |pred: &dyn Fn(&AngleRow) -> bool| {
        let mut hit: Vec<i32> = rows
            .iter()
            .filter(|r| pred(r))
            .filter_map(|r| r.angle)
            .collect();
        hit.sort_unstable();
        hit.dedup();
        hit.len() as i32
    };
    let defect_angles = per_angle(&is_defect);
    let camera_flagged =
        per_angle(&|r: &AngleRow| r.camera_verdict.as_deref() == Some(camera_flag));
    let mut defects: Vec<&str> = rows
        .iter()
        .filter(|r| is_defect(r))
        .filter_map(|r| r.model_label.as_deref())
        .collect();
    defects.sort_unstable();
    defects.dedup();
    let verdict = if defect_angles > 0 {
        Verdict::Defective
    } else if complete {
        Verdict::Ok
    } else {
        Verdict::Incomplete
    };
    Some(ProductVerdict {
        product_id: product_id.to_string(),
        verdict,
        line: rows.iter().find_map(|r| r.line.clone()),
        angles: angles.len() as i32,
        expected,
        defect_angles,
        camera_flagged,
        defects: defects.join(","),
        decided_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(angle: i32, label: &str, camera: &str) -> AngleRow {
        AngleRow {
            angle: Some(angle),
            fragment_count: Some(4),
            model_label: Some(label.to_string()),
            camera_verdict: Some(camera.to_string()),
            line: Some("L1".to_string()),
            recorded_ms: 0,
        }
    }

    fn labels() -> Vec<String> {
        vec!["loose_wire".to_string()]
    }

    #[test]
    fn a_product_is_decided_when_all_angles_are_in() {
        let mut rows = vec![
            row(0, "ok", "ok"),
            row(1, "burr", "loose_wire"),
            row(2, "ok", "ok"),
        ];
        assert_eq!(decide("p", &rows, &labels(), "loose_wire", false, 5), None);
        rows.push(row(2, "ok", "ok")); // a redelivery does not complete it
        assert_eq!(decide("p", &rows, &labels(), "loose_wire", false, 5), None);
        rows.push(row(3, "ok", "ok"));
        let v = decide("p", &rows, &labels(), "loose_wire", false, 5).unwrap();
        assert_eq!((v.verdict, v.angles, v.expected), (Verdict::Ok, 4, 4));
        assert_eq!((v.defect_angles, v.camera_flagged), (0, 1));
    }

    #[test]
    fn any_defective_angle_makes_the_product_defective() {
        let rows = vec![
            row(0, "ok", "ok"),
            row(1, "loose_wire", "loose_wire"),
            row(2, "loose_wire", "loose_wire"),
            row(3, "burr", "loose_wire"),
        ];
        let v = decide("p", &rows, &labels(), "loose_wire", false, 5).unwrap();
        assert_eq!(
            (v.verdict, v.defect_angles, v.camera_flagged),
            (Verdict::Defective, 2, 3)
        );
        assert_eq!(v.defects, "loose_wire");
    }

    #[test]
    fn a_timed_out_product_is_incomplete_or_defective() {
        let rows = vec![row(0, "ok", "ok")];
        let v = decide("p", &rows, &labels(), "loose_wire", true, 5).unwrap();
        assert_eq!((v.verdict, v.angles), (Verdict::Incomplete, 1));
        let rows = vec![row(0, "loose_wire", "ok")];
        let v = decide("p", &rows, &labels(), "loose_wire", true, 5).unwrap();
        assert_eq!(v.verdict, Verdict::Defective);
        let unknown = AngleRow {
            fragment_count: None,
            ..row(0, "ok", "ok")
        };
        assert_eq!(
            decide("p", &[unknown], &labels(), "loose_wire", true, 5),
            None
        );
    }
}

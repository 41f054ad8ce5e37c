//! The daily defect report (seed 004): per day x line x defect class, counted in products
//! (a coil photographed from 8 angles is one product, counted once), the factory camera's
//! flags against the defects confirmed — by a reviewer where one looked, else by the model —
//! and so the camera's false-alarm rate.
//!
//! Days are UTC days (`YYYY-MM-DD`), the same days the media store is laid out by; a product
//! belongs to the day of its first image. An image without a product is its own product.
//!
//! The plant's figures come first, per coil ([`coils`]): per day x line, the coils judged,
//! how many the camera would have stopped, how many Loupe stopped (to a person's review
//! included), the camera's stops Loupe cleared, and the coils Loupe passed that a reviewer
//! found defective.

use std::collections::{BTreeMap, BTreeSet};

use loupe_store::DailyRow;
use loupe_store::day::day_of;
use serde::Serialize;

/// Camera verdicts that are not a flag.
const CAMERA_PASS: [&str; 5] = ["", "ok", "pass", "good", "none"];

/// One row of the daily report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyLine {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Production line (`unknown` when the images did not say).
    pub line: String,
    /// Defect class; empty on the row of a day and line without any flag or defect.
    pub defect: String,
    /// Products inspected on this day and line (all classes).
    pub products: u64,
    /// Products the factory camera flagged with this class.
    pub camera_flagged: u64,
    /// Products confirmed to have this defect (reviewer's label, else the model's).
    pub confirmed: u64,
    /// Products the camera flagged with this class that do not have it: false alarms.
    pub false_alarms: u64,
    /// Products that have this defect and the camera did not flag it.
    pub missed_by_camera: u64,
}

impl DailyLine {
    /// False alarms per camera flag, in percent (`None` without flags).
    pub fn false_alarm_pct(&self) -> Option<f64> {
        (self.camera_flagged > 0)
            .then(|| 100.0 * self.false_alarms as f64 / self.camera_flagged as f64)
    }
}

/// What a product is, across its images.
#[derive(Debug, Default)]
struct ProductFacts {
    first_ms: i64,
    line: Option<String>,
    flagged: BTreeSet<String>,
    defects: BTreeSet<String>,
    verdict: Option<String>,
    reviewed_defect: bool,
}

/// One day and line of the per-coil report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DailyCoils {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Production line (`unknown` when the images did not say).
    pub line: String,
    /// Coils with a verdict.
    pub coils: u64,
    /// Products without a verdict: angles not all in yet, or images that name no product.
    pub waiting: u64,
    /// Coils the factory camera would have stopped (it flagged an angle).
    pub camera_stopped: u64,
    /// Coils Loupe stopped (every verdict but `ok`).
    pub stopped: u64,
    /// Of those, coils sent to a person's review (an unusable frame, a failure) or
    /// incomplete.
    pub review: u64,
    /// Coils the camera would have stopped that Loupe passed.
    pub camera_stops_cleared: u64,
    /// Coils the camera would have passed that Loupe stopped.
    pub stopped_camera_passed: u64,
    /// Coils Loupe passed that a reviewer labelled defective (the defects it let through, as
    /// far as people looked).
    pub reviewed_defective_passed: u64,
}

/// The per-coil report of record rows, sorted by day and line; a coil counts on the day of
/// its first image.
pub fn coils(rows: &[DailyRow], defect_labels: &[String]) -> Vec<DailyCoils> {
    let products = facts(rows, defect_labels);
    let mut out: BTreeMap<(String, String), DailyCoils> = BTreeMap::new();
    for facts in products.values() {
        let day = day_of(facts.first_ms);
        let line = facts.line.clone().unwrap_or_else(|| "unknown".to_string());
        let entry = out
            .entry((day.clone(), line.clone()))
            .or_insert_with(|| DailyCoils {
                day,
                line,
                ..Default::default()
            });
        let Some(verdict) = &facts.verdict else {
            entry.waiting += 1;
            continue;
        };
        let camera = !facts.flagged.is_empty();
        let stopped = loupe_store::product::Verdict::stops(verdict);
        entry.coils += 1;
        entry.camera_stopped += u64::from(camera);
        entry.stopped += u64::from(stopped);
        entry.review += u64::from(stopped && verdict != "defective");
        entry.camera_stops_cleared += u64::from(camera && !stopped);
        entry.stopped_camera_passed += u64::from(!camera && stopped);
        entry.reviewed_defective_passed += u64::from(!stopped && facts.reviewed_defect);
    }
    out.into_values().collect()
}

/// The per-coil report as CSV (same defusing as [`csv`]).
pub fn coils_csv(lines: &[DailyCoils]) -> String {
    let mut out = String::from(
        "day,line,coils,camera_would_stop,loupe_stopped,of_which_review,camera_stops_cleared,\
         loupe_stopped_camera_passed,reviewed_defective_passed,waiting\r\n",
    );
    for l in lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(&l.day),
            csv_field(&l.line),
            l.coils,
            l.camera_stopped,
            l.stopped,
            l.review,
            l.camera_stops_cleared,
            l.stopped_camera_passed,
            l.reviewed_defective_passed,
            l.waiting
        ));
    }
    out
}

/// Each product's facts across its images.
fn facts<'a>(rows: &'a [DailyRow], defect_labels: &[String]) -> BTreeMap<&'a str, ProductFacts> {
    let mut products: BTreeMap<&str, ProductFacts> = BTreeMap::new();
    for row in rows {
        let facts = products
            .entry(row.product.as_str())
            .or_insert_with(|| ProductFacts {
                first_ms: row.recorded_ms,
                ..Default::default()
            });
        facts.first_ms = facts.first_ms.min(row.recorded_ms);
        if facts.line.is_none() {
            facts.line = row.line.clone();
        }
        if let Some(camera) = &row.camera_verdict
            && !CAMERA_PASS.contains(&camera.to_ascii_lowercase().as_str())
        {
            facts.flagged.insert(camera.clone());
        }
        facts.defects.extend(defect_classes(row, defect_labels));
        if facts.verdict.is_none() {
            facts.verdict = row.product_verdict.clone();
        }
        facts.reviewed_defect |= row
            .reviewed_label
            .as_ref()
            .is_some_and(|l| defect_labels.contains(l));
    }
    products
}

/// The defect classes one image has: its reviewed label, else its model label, when that is
/// a defect; a segmentation `defect` stands for each class it found.
pub fn defect_classes(row: &DailyRow, defect_labels: &[String]) -> Vec<String> {
    let segment: Vec<String> = row
        .segment_classes
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let label = row.reviewed_label.as_ref().or(row.model_label.as_ref());
    match label {
        None => Vec::new(),
        Some(label) if label == "defect" && !segment.is_empty() => segment,
        Some(label) if defect_labels.contains(label) => vec![label.clone()],
        // A reviewer naming one of the segmenter's classes.
        Some(label) if row.reviewed_label.is_some() && row.segment_classes.is_some() => {
            if CAMERA_PASS.contains(&label.to_ascii_lowercase().as_str()) {
                Vec::new()
            } else {
                vec![label.clone()]
            }
        }
        Some(_) => Vec::new(),
    }
}

/// Aggregates record rows into the report, sorted by day, line and class.
pub fn aggregate(rows: &[DailyRow], defect_labels: &[String]) -> Vec<DailyLine> {
    let products = facts(rows, defect_labels);
    // (day, line) -> products; (day, line, class) -> counts.
    let mut inspected: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut lines: BTreeMap<(String, String, String), DailyLine> = BTreeMap::new();
    for facts in products.values() {
        let day = day_of(facts.first_ms);
        let line = facts.line.clone().unwrap_or_else(|| "unknown".to_string());
        *inspected.entry((day.clone(), line.clone())).or_default() += 1;
        for class in facts.flagged.union(&facts.defects) {
            let entry = lines
                .entry((day.clone(), line.clone(), class.clone()))
                .or_insert_with(|| DailyLine {
                    day: day.clone(),
                    line: line.clone(),
                    defect: class.clone(),
                    products: 0,
                    camera_flagged: 0,
                    confirmed: 0,
                    false_alarms: 0,
                    missed_by_camera: 0,
                });
            let (flagged, defect) = (facts.flagged.contains(class), facts.defects.contains(class));
            entry.camera_flagged += u64::from(flagged);
            entry.confirmed += u64::from(defect);
            entry.false_alarms += u64::from(flagged && !defect);
            entry.missed_by_camera += u64::from(defect && !flagged);
        }
    }
    let mut out = Vec::new();
    for ((day, line), n) in inspected {
        let classes: Vec<DailyLine> = lines
            .range((day.clone(), line.clone(), String::new())..)
            .take_while(|((d, l, _), _)| *d == day && *l == line)
            .map(|(_, entry)| DailyLine {
                products: n,
                ..entry.clone()
            })
            .collect();
        if classes.is_empty() {
            out.push(DailyLine {
                day,
                line,
                defect: String::new(),
                products: n,
                camera_flagged: 0,
                confirmed: 0,
                false_alarms: 0,
                missed_by_camera: 0,
            });
        } else {
            out.extend(classes);
        }
    }
    out
}

/// The report as CSV (RFC 4180; a header line, then one line per row).
pub fn csv(lines: &[DailyLine]) -> String {
    let mut out = String::from(
        "day,line,defect_class,products_inspected,camera_flagged,confirmed,false_alarms,false_alarm_pct,missed_by_camera\r\n",
    );
    for l in lines {
        let pct = l
            .false_alarm_pct()
            .map(|p| format!("{p:.1}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(&l.day),
            csv_field(&l.line),
            csv_field(&l.defect),
            l.products,
            l.camera_flagged,
            l.confirmed,
            l.false_alarms,
            pct,
            l.missed_by_camera
        ));
    }
    out
}

/// A CSV field, quoted when needed; a leading `=`, `+`, `-`, `@`, tab or carriage return (the
/// characters OWASP lists: spreadsheets start a formula after them) is defused so a
/// spreadsheet never runs a line name as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_763_683_200_000; // 2025-11-21T00:00:00Z

    fn row(product: &str, ms: i64, camera: &str, model: &str, reviewed: Option<&str>) -> DailyRow {
        DailyRow {
            recorded_ms: ms,
            product: product.into(),
            line: Some("L1".into()),
            camera_verdict: Some(camera.into()),
            model_label: Some(model.into()),
            segment_classes: None,
            reviewed_label: reviewed.map(str::to_string),
            product_verdict: None,
        }
    }

    #[test]
    fn products_are_counted_once_and_reviews_override_the_model() {
        let labels = vec!["loose_wire".to_string()];
        let rows = vec![
            // p1: flagged on two angles, the model confirms one: one confirmed product.
            row("p1", DAY, "loose_wire", "loose_wire", None),
            row("p1", DAY + 1, "loose_wire", "burr", None),
            // p2: flagged, model cleared it: a false alarm.
            row("p2", DAY + 2, "loose_wire", "burr", None),
            // p3: flagged, model said loose wire, a reviewer corrected it to burr.
            row("p3", DAY + 3, "loose_wire", "loose_wire", Some("burr")),
            // p4: not flagged, a real loose wire: the camera missed it.
            row("p4", DAY + 4, "ok", "loose_wire", None),
            // p5: the next day, nothing.
            row("p5", DAY + 86_400_000, "ok", "ok", None),
        ];
        let report = aggregate(&rows, &labels);
        assert_eq!(report.len(), 2);
        let l = &report[0];
        assert_eq!(
            (l.day.as_str(), l.line.as_str(), l.defect.as_str()),
            ("2025-11-21", "L1", "loose_wire")
        );
        assert_eq!(
            (
                l.products,
                l.camera_flagged,
                l.confirmed,
                l.false_alarms,
                l.missed_by_camera
            ),
            (4, 3, 2, 2, 1)
        );
        assert_eq!(l.false_alarm_pct().map(|p| p.round()), Some(67.0));
        assert_eq!(
            (
                report[1].day.as_str(),
                report[1].defect.as_str(),
                report[1].products
            ),
            ("2025-11-22", "", 1)
        );
        let text = csv(&report);
        assert!(text.starts_with("day,line,defect_class,"));
        assert!(
            text.contains("2025-11-21,L1,loose_wire,4,3,2,2,66.7,1\r\n"),
            "{text}"
        );
    }

    #[test]
    fn segmentation_defects_count_per_class() {
        let mut r = row("sheet-1", DAY, "", "defect", None);
        r.segment_classes = Some("scratch,pit".into());
        assert_eq!(defect_classes(&r, &["defect".into()]), ["scratch", "pit"]);
        r.reviewed_label = Some("ok".into());
        assert!(defect_classes(&r, &["defect".into()]).is_empty());
        r.reviewed_label = Some("patch".into());
        assert_eq!(defect_classes(&r, &["defect".into()]), ["patch"]);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("L1"), "L1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("\t=cmd()"), "'\t=cmd()");
        assert_eq!(csv_field("\r=cmd()"), "\"'\r=cmd()\"");
    }

    #[test]
    fn coils_are_counted_per_day_and_line_against_the_camera() {
        let labels = vec!["loose_wire".to_string()];
        let with = |mut r: DailyRow, verdict: Option<&str>| {
            r.product_verdict = verdict.map(str::to_string);
            r
        };
        let rows = vec![
            // Camera flags a burr, Loupe clears it.
            with(row("c1", DAY + 1, "loose_wire", "burr", None), Some("ok")),
            with(row("c1", DAY + 2, "ok", "ok", None), Some("ok")),
            // Both stop a real defect.
            with(
                row("c2", DAY + 3, "loose_wire", "loose_wire", None),
                Some("defective"),
            ),
            // Loupe sends an unusable frame to review; the camera passed it.
            with(row("c3", DAY + 4, "ok", "ok", None), Some("review")),
            // Loupe passed it, a reviewer found a loose wire.
            with(
                row("c4", DAY + 5, "ok", "ok", Some("loose_wire")),
                Some("ok"),
            ),
            // Still waiting for angles.
            with(row("c5", DAY + 6, "ok", "ok", None), None),
        ];
        let c = coils(&rows, &labels);
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!(
            (c.coils, c.waiting, c.camera_stopped, c.stopped, c.review),
            (4, 1, 2, 2, 1)
        );
        assert_eq!((c.camera_stops_cleared, c.stopped_camera_passed), (1, 1));
        assert_eq!(c.reviewed_defective_passed, 1);
        let csv = coils_csv(std::slice::from_ref(c));
        assert!(
            csv.starts_with("day,line,coils,camera_would_stop,loupe_stopped"),
            "{csv}"
        );
        assert!(csv.contains("2025-11-21,L1,4,2,2,1,1,1,1,1"), "{csv}");
    }
}

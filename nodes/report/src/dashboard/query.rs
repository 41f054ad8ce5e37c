//! What the JSON API ([`super::api`]) and the HTML pages ([`super::pages`]) both read: the
//! list's filters, one record, the daily report, a record's overlay.

use loupe_store::day::{self, DAY_MS, day_of};
use loupe_store::{Disagreement, ListQuery, Stored};
use serde::{Deserialize, Serialize};

use super::{DashboardError, Shared};
use crate::daily::{self, DailyLine};

/// The longest daily report, in days.
const MAX_REPORT_DAYS: i64 = 92;
/// The most records one daily report reads (a plant's quarter at ~10 000 images a day).
const MAX_REPORT_ROWS: i64 = 1_000_000;

/// The list's filters, as the page's form and the API take them (empty means absent).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Filters {
    /// Only this line.
    pub line: Option<String>,
    /// Only the images of this product.
    pub product: Option<String>,
    /// Only this verdict (reviewed label, else model label; `error` for failures).
    pub verdict: Option<String>,
    /// Only this UTC day, `YYYY-MM-DD`.
    pub day: Option<String>,
    /// Only camera-vs-model disagreements (`1`, `on` or `true`).
    pub disagree: Option<String>,
    /// The page after this record: `RECORDED_MS:UUID`.
    pub before: Option<String>,
    /// Records per page (default 100).
    pub limit: Option<u32>,
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl Filters {
    /// Whether only disagreements are wanted.
    pub fn disagree(&self) -> bool {
        matches!(self.disagree.as_deref(), Some("1" | "on" | "true" | "yes"))
    }

    /// The store query these filters make.
    pub fn query(&self, disagreement: &Disagreement) -> Result<ListQuery, DashboardError> {
        let (from_ms, to_ms) = match given(&self.day) {
            Some(day) => {
                let start = day_start_ms(&day)?;
                (Some(start), Some(start + DAY_MS))
            }
            None => (None, None),
        };
        let before = match given(&self.before) {
            Some(cursor) => {
                let parsed = cursor
                    .split_once(':')
                    .and_then(|(ms, uuid)| Some((ms.parse::<i64>().ok()?, uuid.to_string())));
                Some(parsed.ok_or_else(|| {
                    DashboardError::BadRequest(format!("before `{cursor}` is not RECORDED_MS:UUID"))
                })?)
            }
            None => None,
        };
        Ok(ListQuery {
            line: given(&self.line),
            product: given(&self.product),
            verdict: given(&self.verdict),
            from_ms,
            to_ms,
            disagree: self.disagree().then(|| disagreement.clone()),
            reviewed_since: None,
            before,
            limit: self.limit.unwrap_or(100),
        })
    }
}

/// Unix ms of the start of UTC day `YYYY-MM-DD`; a bad day is a bad request.
pub(super) fn day_start_ms(day: &str) -> Result<i64, DashboardError> {
    day::start_ms(day).map_err(|e| DashboardError::BadRequest(e.to_string()))
}

/// Whether the camera and the verdict disagree on `stored`.
pub(super) fn disagrees(stored: &Stored, d: &Disagreement) -> bool {
    let Some(verdict) = stored.verdict() else {
        return false;
    };
    let flagged = stored.record.camera_verdict.as_deref() == Some(d.camera_flag.as_str());
    flagged != d.defect_labels.iter().any(|l| l == verdict)
}

/// The record `uuid`, or 404.
pub(super) async fn find(shared: &Shared, uuid: &str) -> Result<Stored, DashboardError> {
    shared
        .sources
        .store
        .get(uuid)
        .await?
        .ok_or_else(|| DashboardError::NotFound(format!("no inspection {uuid}")))
}

/// The daily report's range and filter.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ReportRange {
    /// First day, `YYYY-MM-DD` (default: 6 days before `to`).
    pub from: Option<String>,
    /// Last day, included (default: today, UTC).
    pub to: Option<String>,
    /// Only this line.
    pub line: Option<String>,
    /// `coils` for the per-coil table (CSV download), else the per-class table.
    pub view: Option<String>,
}

/// A computed daily report.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DailyReport {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// The line filter.
    pub line: Option<String>,
    /// The plant's figures: per day and line, per coil.
    pub coils: Vec<daily::DailyCoils>,
    /// The rows.
    pub rows: Vec<DailyLine>,
    /// Whether the range held more records than one report reads.
    pub truncated: bool,
}

/// Computes the daily report for `range`.
pub(super) async fn report(
    shared: &Shared,
    range: &ReportRange,
) -> Result<DailyReport, DashboardError> {
    let today = day_of(loupe_sdk::flowfile::now_ms());
    let to = given(&range.to).unwrap_or(today);
    let to_ms = day_start_ms(&to)? + DAY_MS;
    let from = match given(&range.from) {
        Some(from) => from,
        None => day_of(to_ms - 7 * DAY_MS),
    };
    let from_ms = day_start_ms(&from)?;
    if from_ms >= to_ms {
        return Err(DashboardError::BadRequest(format!(
            "from {from} is after to {to}"
        )));
    }
    if to_ms - from_ms > MAX_REPORT_DAYS * DAY_MS {
        return Err(DashboardError::BadRequest(format!(
            "at most {MAX_REPORT_DAYS} days per report"
        )));
    }
    let rows = shared
        .sources
        .store
        .daily_rows(from_ms, to_ms, MAX_REPORT_ROWS)
        .await?;
    let truncated = rows.len() as i64 >= MAX_REPORT_ROWS;
    let line = given(&range.line);
    let labels = &shared.sources.disagreement.defect_labels;
    let mut lines = daily::aggregate(&rows, labels);
    let mut coils = daily::coils(&rows, labels);
    if let Some(line) = &line {
        lines.retain(|l| &l.line == line);
        coils.retain(|l| &l.line == line);
    }
    Ok(DailyReport {
        from,
        to,
        line,
        coils,
        rows: lines,
        truncated,
    })
}

/// The overlay next to a record's image in the media store, if there is one.
pub(super) fn overlay_of(shared: &Shared, media_path: &str) -> Option<String> {
    let dir = shared.sources.media_dir.as_ref()?;
    let (stem, _) = media_path.rsplit_once('.')?;
    let overlay = format!("{stem}.overlay.png");
    dir.join(&overlay).is_file().then_some(overlay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_cursors_parse_or_say_why() {
        assert_eq!(day_start_ms("1970-01-02").unwrap(), DAY_MS);
        assert!(day_start_ms("2026-13-01").is_err());
        assert!(day_start_ms("yesterday").is_err());
        let d = Disagreement {
            camera_flag: "loose_wire".into(),
            defect_labels: vec!["loose_wire".into()],
        };
        let f = Filters {
            day: Some("1970-01-02".into()),
            disagree: Some("on".into()),
            before: Some("12:abc".into()),
            line: Some(" ".into()),
            ..Default::default()
        };
        let q = f.query(&d).unwrap();
        assert_eq!((q.from_ms, q.to_ms), (Some(DAY_MS), Some(2 * DAY_MS)));
        assert_eq!(q.before, Some((12, "abc".to_string())));
        assert_eq!(q.line, None, "an empty form field is no filter");
        assert!(q.disagree.is_some());
        let bad = Filters {
            before: Some("x".into()),
            ..Default::default()
        };
        assert!(bad.query(&d).is_err());
    }
}

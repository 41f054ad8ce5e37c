//! The dashboard's JSON API, live events, CSV download and media files.

use std::convert::Infallible;
use std::path::{Component, Path as FsPath};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::auth::Identity;
use super::{DashboardError, Shared, pages};
use crate::daily::{self, DailyLine};
use crate::media::day_of;
use crate::store::{Disagreement, ListQuery, Review, Stored};

/// One UTC day in milliseconds.
pub(super) const DAY_MS: i64 = 86_400_000;
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

/// Unix ms of the start of UTC day `YYYY-MM-DD`.
pub(super) fn day_start_ms(day: &str) -> Result<i64, DashboardError> {
    let bad = || DashboardError::BadRequest(format!("`{day}` is not a day (YYYY-MM-DD)"));
    if day.len() != 10 {
        return Err(bad());
    }
    let time = humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).map_err(|_| bad())?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?;
    Ok(since.as_millis() as i64)
}

/// Whether the camera and the verdict disagree on `stored`.
pub(super) fn disagrees(stored: &Stored, d: &Disagreement) -> bool {
    let Some(verdict) = stored.verdict() else {
        return false;
    };
    let flagged = stored.record.camera_verdict.as_deref() == Some(d.camera_flag.as_str());
    flagged != d.defect_labels.iter().any(|l| l == verdict)
}

/// `GET /api/inspections`
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(filters): Query<Filters>,
) -> Result<Json<Vec<Stored>>, DashboardError> {
    let query = filters.query(&shared.sources.disagreement)?;
    Ok(Json(shared.sources.store.list(&query).await?))
}

/// `GET /api/inspections/{uuid}`
pub(super) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(uuid): Path<String>,
) -> Result<Json<Stored>, DashboardError> {
    Ok(Json(find(&shared, &uuid).await?))
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

/// A review as posted.
#[derive(Debug, Deserialize)]
pub(super) struct ReviewRequest {
    /// Who reviews: in open mode the name given (stored as `local:NAME`); when logged in,
    /// absent or the logged-in user's name (the review is stored under the login).
    #[serde(default)]
    reviewer: Option<String>,
    /// The right label: one of the record's allowed labels.
    label: String,
    /// Free text.
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/inspections/{uuid}/review`: stores the review under the logged-in user,
/// answers the updated record. A label outside the record's allowed labels is `422`.
pub(super) async fn review(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
    Path(uuid): Path<String>,
    Json(request): Json<ReviewRequest>,
) -> Result<Json<Stored>, DashboardError> {
    let reviewer = who
        .reviewer(request.reviewer.as_deref())
        .map_err(DashboardError::BadRequest)?;
    let label = request.label.trim();
    if label.is_empty()
        || label.len() > 64
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(DashboardError::BadRequest(format!(
            "label `{label}` is not a label (letters, digits, _ - .)"
        )));
    }
    let note = request
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(2000).collect::<String>());
    let current = find(&shared, &uuid).await?;
    let allowed = pages::review_labels(&shared, &current);
    if !allowed.iter().any(|l| l == label) {
        return Err(DashboardError::Unprocessable(format!(
            "label `{label}` is not one of this inspection's labels: {}",
            allowed.join(", ")
        )));
    }
    let action = if current.record.model_label.as_deref() == Some(label) {
        "confirmed"
    } else {
        "corrected"
    };
    let review = Review {
        label: label.to_string(),
        action: action.to_string(),
        reviewer,
        note,
        reviewed_ms: loupe_sdk::flowfile::now_ms(),
    };
    if !shared.sources.store.add_review(&uuid, &review).await? {
        return Err(DashboardError::NotFound(format!("no inspection {uuid}")));
    }
    tracing::info!(%uuid, label = %review.label, action, reviewer = %review.reviewer, "review stored");
    Ok(Json(find(&shared, &uuid).await?))
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

/// `GET /api/daily`
pub(super) async fn daily(
    State(shared): State<Arc<Shared>>,
    Query(range): Query<ReportRange>,
) -> Result<Json<DailyReport>, DashboardError> {
    Ok(Json(report(&shared, &range).await?))
}

/// `GET /daily.csv`
pub(super) async fn daily_csv(
    State(shared): State<Arc<Shared>>,
    Query(range): Query<ReportRange>,
) -> Result<Response, DashboardError> {
    let report = report(&shared, &range).await?;
    let per_coil = range.view.as_deref() == Some("coils");
    let name = format!(
        "loupe-daily-{}{}-to-{}.csv",
        if per_coil { "coils-" } else { "" },
        report.from,
        report.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        if per_coil {
            daily::coils_csv(&report.coils)
        } else {
            daily::csv(&report.rows)
        },
    )
        .into_response())
}

/// A new record as the live list receives it: what its filters need, and the row to show.
#[derive(Debug, Serialize)]
struct LiveRow<'a> {
    uuid: &'a str,
    line: Option<&'a str>,
    product: Option<&'a str>,
    verdict: Option<&'a str>,
    day: String,
    disagree: bool,
    html: String,
}

/// `GET /api/events`: server-sent events for the live list.
pub(super) async fn events(State(shared): State<Arc<Shared>>) -> Result<Response, DashboardError> {
    let Ok(permit) = shared.live_slots.clone().try_acquire_owned() else {
        return Ok((
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "too many live dashboards; retry later",
        )
            .into_response());
    };
    let receiver = shared.live.0.subscribe();
    let for_rows = shared.clone();
    let stream = BroadcastStream::new(receiver).map(move |item| {
        let _held = &permit;
        let event = match item {
            Ok(stored) => {
                let row = LiveRow {
                    uuid: &stored.record.uuid,
                    line: stored.record.line.as_deref(),
                    product: stored.record.product_id.as_deref(),
                    verdict: stored.verdict(),
                    day: day_of(stored.record.recorded_ms),
                    disagree: disagrees(&stored, &for_rows.sources.disagreement),
                    html: pages::row_html(&stored, &for_rows.sources.disagreement),
                };
                Event::default()
                    .event("inspection")
                    .json_data(&row)
                    .unwrap_or_else(|_| Event::default().event("resync").data("reload"))
            }
            Err(BroadcastStreamRecvError::Lagged(_)) => {
                Event::default().event("resync").data("reload")
            }
        };
        Ok::<_, Infallible>(event)
    });
    let stream = futures::StreamExt::take_until(stream, shared.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /media/{path}`: a file of the media store.
pub(super) async fn media(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
) -> Result<Response, DashboardError> {
    let not_found = || DashboardError::NotFound(format!("no media file {path}"));
    let Some(dir) = &shared.sources.media_dir else {
        return Err(not_found());
    };
    let relative = FsPath::new(&path);
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(DashboardError::BadRequest(format!(
            "`{path}` is not a media path"
        )));
    }
    let bytes = tokio::fs::read(dir.join(relative))
        .await
        .map_err(|_| not_found())?;
    let content_type = match relative.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("bmp") => "image/bmp",
        Some("tif" | "tiff") => "image/tiff",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
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

//! The dashboard's JSON API, live events, CSV download and media files.

use std::convert::Infallible;
use std::path::{Component, Path as FsPath};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use loupe_store::day::day_of;
use loupe_store::{Review, Stored};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::identity::Identity;
use super::query::{DailyReport, Filters, ReportRange, disagrees, find, report};
use super::{DashboardError, Shared, pages};
use crate::daily;

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

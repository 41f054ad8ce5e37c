//! The dashboard's pages, rendered on the server; small inline scripts add live updates,
//! review and upload.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Html;

use super::html::{Tab, bar_chart, esc, page, time, url_encode};
use super::identity::Identity;
use super::query::{self, Filters, ReportRange};
use super::users::Role;
use super::{DashboardError, Shared, provenance};
use loupe_store::{Disagreement, Stored};

/// The class a verdict is shown with.
fn verdict_class(verdict: Option<&str>, d: &Disagreement) -> &'static str {
    match verdict {
        Some(v) if d.defect_labels.iter().any(|l| l == v) => "v-bad",
        Some("ok") => "v-ok",
        _ => "v-other",
    }
}

/// One row of the inspection list (also sent to live lists).
pub(super) fn row_html(s: &Stored, d: &Disagreement) -> String {
    let r = &s.record;
    let opt = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let model = match (&r.model_label, r.model_score) {
        (Some(label), Some(score)) => {
            format!("{} <span class=\"muted\">{score:.3}</span>", esc(label))
        }
        (Some(label), None) => esc(label),
        (None, _) => match &r.error_kind {
            Some(kind) => format!("<span class=\"error\">error: {}</span>", esc(kind)),
            None => String::new(),
        },
    };
    let verdict = s.verdict();
    let reviewed = match &s.review {
        Some(review) => format!(
            " <span class=\"muted\" title=\"{} by {}\">✔ {}</span>",
            esc(&review.action),
            esc(&review.reviewer),
            esc(&review.reviewer)
        ),
        None => String::new(),
    };
    let disagree = query::disagrees(s, d);
    format!(
        "<tr data-uuid=\"{uuid}\"{class}><td><a class=\"detail\" href=\"/inspections/{uuid}\">{time}</a></td>\
         <td>{product}</td><td class=\"num\">{angle}</td><td>{line}</td><td>{camera}</td><td>{model}</td>\
         <td class=\"verdict {vclass}\">{verdict}{reviewed}</td><td>{route}</td></tr>",
        uuid = esc(&r.uuid),
        class = if disagree { " class=\"disagree\"" } else { "" },
        time = time(r.recorded_ms),
        product = opt(&r.product_id),
        angle = r.angle.map(|a| a.to_string()).unwrap_or_default(),
        line = opt(&r.line),
        camera = opt(&r.camera_verdict),
        vclass = verdict_class(verdict, d),
        verdict = esc(verdict.unwrap_or("")),
        route = opt(&r.route),
    )
}

/// The per-coil table of the daily report: what the camera would have stopped against what
/// Loupe stopped, per day and line.
fn coil_table(coils: &[crate::daily::DailyCoils]) -> String {
    let mut out = String::from(
        "<h2>Coils</h2><p class=\"muted\">The plant's decision, per coil: the camera would stop a coil \
         when it flags any angle; Loupe stops it when its product policy does (a coil sent to a \
         person's review is stopped too).</p><table id=\"daily-coils\"><thead><tr><th>Day</th><th>Line</th>\
         <th class=\"num\">Coils</th><th class=\"num\">Camera would stop</th><th class=\"num\">Loupe stopped</th>\
         <th class=\"num\">of which review</th><th class=\"num\">Camera stops cleared</th>\
         <th class=\"num\">Stopped, camera passed</th><th class=\"num\">Passed, reviewer found defective</th>\
         <th class=\"num\">Waiting</th></tr></thead><tbody>",
    );
    for c in coils {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&c.day),
            esc(&c.line),
            c.coils,
            c.camera_stopped,
            c.stopped,
            c.review,
            c.camera_stops_cleared,
            c.stopped_camera_passed,
            c.reviewed_defective_passed,
            c.waiting
        );
    }
    out.push_str("</tbody></table>");
    if coils.is_empty() {
        out.push_str("<p class=\"muted\">No coils in this range.</p>");
    }
    out
}

/// The query of the coil list: a page after `before` (`DECIDED_MS:PRODUCT`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(super) struct CoilPage {
    /// The page after this coil: `DECIDED_MS:PRODUCT`.
    pub before: Option<String>,
}

/// `GET /coils`: the coils as the plant sees them — today's figures against the camera, then
/// the newest coil verdicts, each linking to its angles.
pub(super) async fn coils(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
    Query(page_query): Query<CoilPage>,
) -> Result<Html<String>, DashboardError> {
    let store = &shared.sources.store;
    let d = &shared.sources.disagreement;
    let before = match page_query.before.as_deref().filter(|b| !b.is_empty()) {
        Some(cursor) => Some(
            cursor
                .split_once(':')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| {
                    DashboardError::BadRequest(format!(
                        "before `{cursor}` is not DECIDED_MS:PRODUCT"
                    ))
                })?,
        ),
        None => None,
    };
    let today = loupe_store::day::day_of(loupe_sdk::flowfile::now_ms());
    let start = query::day_start_ms(&today)?;
    let counts = store
        .coil_counts(Some((start, start + loupe_store::day::DAY_MS)))
        .await?;
    let figures = crate::coils::CoilFigures::from_counts(&counts, &d.camera_flag, &d.defect_labels);
    let mut body = format!(
        "<h1>Coils</h1><p class=\"muted\">One decision per coil (UTC day {today}): \
         the camera would stop a coil when it flags any angle; Loupe stops it when its product \
         policy does — a coil sent to a person's review is stopped too.</p>\
         <ul id=\"coil-figures\" class=\"figures\"><li><b>{judged}</b> coils judged</li>\
         <li><b>{camera}</b> the camera would have stopped</li><li><b>{stopped}</b> Loupe stopped</li>{truth}</ul>",
        today = esc(&today),
        judged = figures.decided,
        camera = figures.camera_stopped,
        stopped = figures.stopped,
        truth = if figures.truth_known {
            format!(
                "<li><b>{}</b> good coils the camera would have stopped, <b>{}</b> Loupe stopped; \
                 defective coils passed: <b>{}</b></li>",
                figures.good_camera_stopped,
                figures.good_stopped,
                figures.defective_passed()
            )
        } else {
            String::new()
        },
    );
    let products = store.products(100, before).await?;
    body.push_str(
        "<table id=\"coils\"><thead><tr><th>Decided (UTC)</th><th>Coil</th><th>Line</th><th>Verdict</th>\
         <th class=\"num\">Angles</th><th class=\"num\">Stopped angles</th><th class=\"num\">Camera flags</th>\
         <th>Why</th></tr></thead><tbody>",
    );
    for p in &products {
        let verdict = p.verdict.as_str();
        let class = match verdict {
            "ok" => "v-ok",
            "defective" => "v-bad",
            _ => "v-other",
        };
        let _ = write!(
            body,
            "<tr data-product=\"{id}\"><td>{time}</td><td><a href=\"/?product={link}\">{id}</a></td><td>{line}</td>\
             <td class=\"{class}\">{verdict}</td><td class=\"num\">{angles}/{expected}</td>\
             <td class=\"num\">{stopped}</td><td class=\"num\">{camera}</td><td>{why}</td></tr>",
            time = time(p.decided_ms),
            id = esc(&p.product_id),
            link = url_encode(&p.product_id),
            line = esc(p.line.as_deref().unwrap_or("")),
            angles = p.angles,
            expected = p.expected,
            stopped = p.defect_angles,
            camera = p.camera_flagged,
            why = esc(&p.defects),
        );
    }
    body.push_str("</tbody></table>");
    if products.is_empty() {
        body.push_str("<p id=\"empty\" class=\"muted\">No coil has a verdict yet.</p>");
    } else if products.len() >= 100
        && let Some(last) = products.last()
    {
        let _ = write!(
            body,
            "<p><a id=\"older\" href=\"/coils?before={}:{}\">Older coils →</a></p>",
            last.decided_ms,
            url_encode(&last.product_id)
        );
    }
    Ok(Html(page(
        &shared.settings.title,
        "Coils",
        Tab::Coils,
        &body,
        "",
        Some(&who),
    )))
}

/// `GET /`: the live list.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
    Query(filters): Query<Filters>,
) -> Result<Html<String>, DashboardError> {
    let d = &shared.sources.disagreement;
    let query = filters.query(d)?;
    let records = shared.sources.store.list(&query).await?;
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or("").trim());
    let mut body = format!(
        "<h1>Inspections <span id=\"live-status\" class=\"status\">connecting…</span></h1>\
         <form id=\"filters\" class=\"filters\" method=\"get\" action=\"/\">\
         <label>Line<input name=\"line\" value=\"{line}\" size=\"8\"></label>\
         <label>Product<input name=\"product\" value=\"{product}\" size=\"10\"></label>\
         <label>Verdict<input name=\"verdict\" value=\"{verdict}\" size=\"10\" placeholder=\"loose_wire, ok, error\"></label>\
         <label>Day (UTC)<input type=\"date\" name=\"day\" value=\"{day}\"></label>\
         <label class=\"inline\"><input type=\"checkbox\" name=\"disagree\" value=\"1\"{checked}> camera and model disagree</label>\
         <button type=\"submit\">Filter</button> <a href=\"/\">clear</a></form>",
        line = value(&filters.line),
        product = value(&filters.product),
        verdict = value(&filters.verdict),
        day = value(&filters.day),
        checked = if filters.disagree() { " checked" } else { "" },
    );
    let _ = write!(
        body,
        "<table id=\"inspections\" data-line=\"{line}\" data-product=\"{product}\" data-verdict=\"{verdict}\" data-day=\"{day}\" \
         data-disagree=\"{disagree}\" data-live=\"{live}\"><thead><tr><th>Recorded (UTC)</th><th>Product</th>\
         <th>Angle</th><th>Line</th><th>Camera</th><th>Model</th><th>Verdict</th><th>Route</th></tr></thead><tbody>",
        line = value(&filters.line),
        product = value(&filters.product),
        verdict = value(&filters.verdict),
        day = value(&filters.day),
        disagree = filters.disagree(),
        live = query.before.is_none(),
    );
    for s in &records {
        body.push_str(&row_html(s, d));
    }
    body.push_str("</tbody></table>");
    if records.is_empty() {
        body.push_str("<p id=\"empty\" class=\"muted\">No inspections match.</p>");
    }
    if let Some(last) = records.last()
        && records.len() as u32 >= query.limit.clamp(1, loupe_store::query::MAX_PAGE)
    {
        let mut next = format!(
            "before={}:{}",
            last.record.recorded_ms,
            url_encode(&last.record.uuid)
        );
        for (key, v) in [
            ("line", &filters.line),
            ("product", &filters.product),
            ("verdict", &filters.verdict),
            ("day", &filters.day),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                let _ = write!(next, "&{key}={}", url_encode(v.trim()));
            }
        }
        if filters.disagree() {
            next.push_str("&disagree=1");
        }
        let _ = write!(
            body,
            "<p><a id=\"older\" href=\"/?{next}\">Older inspections →</a></p>"
        );
    }
    Ok(Html(page(
        &shared.settings.title,
        "Inspections",
        Tab::Inspections,
        &body,
        LIST_SCRIPT,
        Some(&who),
    )))
}

/// Adds new records at the top as they arrive (only on the first page, and only those the
/// filters let through); reloads when the server says the browser fell behind.
const LIST_SCRIPT: &str = r#"
(function(){
  const table = document.getElementById('inspections');
  const status = document.getElementById('live-status');
  if (table.dataset.live !== 'true') { status.textContent = ''; return; }
  const f = table.dataset, body = table.tBodies[0];
  const events = new EventSource('/api/events');
  events.onopen = () => { status.textContent = '● live'; };
  events.onerror = () => { status.textContent = 'reconnecting…'; };
  events.addEventListener('resync', () => location.reload());
  events.addEventListener('inspection', (e) => {
    const r = JSON.parse(e.data);
    if (f.line && r.line !== f.line) return;
    if (f.product && r.product !== f.product) return;
    if (f.verdict && r.verdict !== f.verdict) return;
    if (f.day && r.day !== f.day) return;
    if (f.disagree === 'true' && !r.disagree) return;
    if (body.querySelector('tr[data-uuid="' + r.uuid + '"]')) return;
    const holder = document.createElement('tbody');
    holder.innerHTML = r.html;
    const row = holder.firstElementChild;
    row.classList.add('new');
    body.insertBefore(row, body.firstElementChild);
    const empty = document.getElementById('empty'); if (empty) empty.remove();
    while (body.rows.length > 500) body.deleteRow(-1);
  });
})();
"#;

/// The labels a reviewer may choose for `s`.
pub(super) fn review_labels(shared: &Shared, s: &Stored) -> Vec<String> {
    if !shared.settings.labels.is_empty() {
        return shared.settings.labels.clone();
    }
    let attrs = &s.record.attributes;
    if let Some(scores) = attrs
        .get("classify.scores")
        .and_then(|j| serde_json::from_str::<BTreeMap<String, f64>>(j).ok())
    {
        return scores.into_keys().collect();
    }
    let mut labels = vec!["ok".to_string(), "defect".to_string()];
    for (key, _) in attrs.range("segment.area_pct.".to_string()..) {
        let Some(class) = key.strip_prefix("segment.area_pct.") else {
            break;
        };
        labels.push(class.to_string());
    }
    if let Some(model) = &s.record.model_label
        && !labels.contains(model)
    {
        labels.push(model.clone());
    }
    labels
}

/// `GET /inspections/{uuid}`: one inspection.
pub(super) async fn detail(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
    Path(uuid): Path<String>,
) -> Result<Html<String>, DashboardError> {
    let s = query::find(&shared, &uuid).await?;
    let reviews = shared.sources.store.reviews(&uuid).await?;
    let d = &shared.sources.disagreement;
    let r = &s.record;
    let verdict = s.verdict().unwrap_or("none");
    let mut body = format!(
        "<p><a href=\"/\">← Inspections</a></p><h1>{title} <span id=\"verdict\" class=\"{class}\">{verdict}</span></h1>",
        title = esc(r.filename.as_deref().unwrap_or(&r.uuid)),
        class = verdict_class(Some(verdict), d),
        verdict = esc(verdict),
    );
    // Images.
    body.push_str("<div class=\"images\">");
    match &r.media_path {
        Some(path) => {
            let _ = write!(
                body,
                "<figure><img id=\"original\" src=\"/media/{p}\" alt=\"original image\"><figcaption>original · <a href=\"/media/{p}\">{p}</a></figcaption></figure>",
                p = esc(path)
            );
            match query::overlay_of(&shared, path) {
                Some(overlay) => {
                    let _ = write!(
                        body,
                        "<figure><img id=\"overlay\" src=\"/media/{o}\" alt=\"model overlay\"><figcaption>model overlay (defect regions)</figcaption></figure>",
                        o = esc(&overlay)
                    );
                }
                None => body.push_str(
                    "<figure><div class=\"muted\" style=\"width:300px\">No overlay: this model gives a label, not regions.</div></figure>",
                ),
            }
        }
        None => body.push_str("<p class=\"muted\">The image was not kept (no media_dir).</p>"),
    }
    body.push_str("</div><div class=\"cols\">");
    // Verdicts and scores.
    let mut facts = String::new();
    let mut fact = |name: &str, value: String| {
        let _ = write!(facts, "<tr><th>{}</th><td>{value}</td></tr>", esc(name));
    };
    let opt = |v: &Option<String>| esc(v.as_deref().unwrap_or("—"));
    fact(
        "Product",
        format!(
            "{} angle {}",
            opt(&r.product_id),
            r.angle.map(|a| a.to_string()).unwrap_or_else(|| "—".into())
        ),
    );
    fact("Line", opt(&r.line));
    fact("Camera verdict", opt(&r.camera_verdict));
    fact(
        "Model",
        format!(
            "{} → {} {}",
            opt(&r.model),
            opt(&r.model_label),
            r.model_score
                .map(|s| format!("({s:.4})"))
                .unwrap_or_default()
        ),
    );
    if let Some(classes) = &r.segment_classes {
        fact("Defect classes", esc(classes));
    }
    fact("Route", opt(&r.route));
    if let Some(kind) = &r.error_kind {
        fact(
            "Error",
            format!(
                "<span class=\"error\">{}: {}</span>",
                esc(kind),
                opt(&r.error_message)
            ),
        );
    }
    let _ = write!(
        body,
        "<div class=\"card\"><h2>Verdict</h2><table id=\"facts\">{facts}</table>"
    );
    let scores: Vec<(String, f64)> = r
        .attributes
        .get("classify.scores")
        .and_then(|j| serde_json::from_str::<BTreeMap<String, f64>>(j).ok())
        .map(|m| m.into_iter().collect())
        .unwrap_or_else(|| {
            r.attributes
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix("segment.area_pct.")?.to_string(),
                        v.parse::<f64>().ok()? / 100.0,
                    ))
                })
                .collect()
        });
    if !scores.is_empty() {
        body.push_str("<h2>Scores</h2><table id=\"scores\">");
        for (label, score) in &scores {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"num\">{score:.4}</td><td><span class=\"bar\" style=\"width:{:.0}px\"></span></td></tr>",
                esc(label),
                (score.clamp(0.0, 1.0) * 200.0)
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</div>");
    // Review.
    let labels = review_labels(&shared, &s);
    let options: String = labels
        .iter()
        .map(|l| {
            let selected = if Some(l.as_str()) == s.verdict() {
                " selected"
            } else {
                ""
            };
            format!("<option value=\"{l}\"{selected}>{l}</option>", l = esc(l))
        })
        .collect();
    let who_field = if who.logged_in() {
        format!(
            "<p>Reviewing as <b id=\"reviewing-as\">{}</b></p>",
            esc(&who.name)
        )
    } else {
        "<label>Your name (not verified: stored as local:NAME)<input id=\"reviewer\" name=\"reviewer\" maxlength=\"80\"></label>"
            .to_string()
    };
    if who.role >= Role::Reviewer {
        let _ = write!(
            body,
            "<div class=\"card\"><h2>Review</h2><form id=\"review-form\" data-uuid=\"{uuid}\" data-model=\"{model}\">\
             {who_field}\
             <label>Right label<select id=\"label\" name=\"label\">{options}</select></label>\
             <label>Note<textarea id=\"note\" name=\"note\" rows=\"2\" maxlength=\"2000\"></textarea></label>\
             <p><button type=\"button\" id=\"confirm\">Confirm model: {model}</button> \
             <button type=\"button\" id=\"correct\" class=\"secondary\">Correct to selected label</button></p>\
             <p id=\"review-status\" class=\"status\"></p></form><ol id=\"reviews\">",
            uuid = esc(&r.uuid),
            model = esc(r.model_label.as_deref().unwrap_or("")),
        );
    } else {
        let _ = write!(
            body,
            "<div class=\"card\"><h2>Review</h2><p id=\"review-off\" class=\"muted\">Reviewing needs a reviewer: \
             <b>{}</b> is a {}.</p><ol id=\"reviews\">",
            esc(&who.name),
            who.role
        );
    }
    for review in &reviews {
        let _ = write!(
            body,
            "<li><b>{}</b> {} by {} at {}{}</li>",
            esc(&review.action),
            esc(&review.label),
            esc(&review.reviewer),
            time(review.reviewed_ms),
            review
                .note
                .as_deref()
                .map(|n| format!(" — {}", esc(n)))
                .unwrap_or_default()
        );
    }
    body.push_str("</ol></div></div>");
    // Provenance.
    let trace = match (&r.trace_id, &shared.settings.trace_url) {
        (Some(id), Some(url)) => format!(
            "<a href=\"{}\">{}</a>",
            esc(&url.replace("{trace_id}", id)),
            esc(id)
        ),
        (Some(id), None) => esc(id),
        (None, _) => "—".to_string(),
    };
    let _ = write!(
        body,
        "<h2>Provenance</h2><table id=\"provenance\"><tr><th>FlowFile</th><td>{uuid}</td></tr>\
         <tr><th>Trace</th><td>{trace}</td></tr><tr><th>Captured</th><td>{captured}</td></tr>\
         <tr><th>Recorded</th><td>{recorded} ({latency} ms after capture)</td></tr></table>",
        uuid = esc(&r.uuid),
        captured = time(r.captured_ms),
        recorded = time(r.recorded_ms),
        latency = r.latency_ms,
    );
    if let Some(file) = shared.sources.provenance.clone() {
        let id = r.uuid.clone();
        let events = tokio::task::spawn_blocking(move || provenance::events_of(&file, &id))
            .await
            .map_err(|e| DashboardError::Internal(e.to_string()))?;
        match events {
            Ok(events) if !events.is_empty() => {
                body.push_str("<table id=\"events\"><thead><tr><th>Time</th><th>Event</th><th>Node</th><th>Relationship</th><th>Details</th></tr></thead><tbody>");
                for e in events {
                    let child = if e.uuid != r.uuid {
                        format!(" (child {})", esc(&e.uuid))
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{}{child}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        time(e.time_ms),
                        esc(&e.event_type),
                        esc(&e.node),
                        esc(e.relationship.as_deref().unwrap_or("")),
                        esc(e.details.as_deref().unwrap_or(""))
                    );
                }
                body.push_str("</tbody></table>");
            }
            Ok(_) => {
                body.push_str("<p class=\"muted\">No provenance events for this FlowFile.</p>")
            }
            Err(e) => {
                let _ = write!(
                    body,
                    "<p class=\"muted\">Provenance file not readable: {}</p>",
                    esc(&e.to_string())
                );
            }
        }
    }
    // Attributes.
    body.push_str("<h2>Attributes</h2><table id=\"attributes\">");
    for (key, value) in &r.attributes {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(key),
            esc(value)
        );
    }
    body.push_str("</table>");
    Ok(Html(page(
        &shared.settings.title,
        r.filename.as_deref().unwrap_or("Inspection"),
        Tab::Inspections,
        &body,
        REVIEW_SCRIPT,
        Some(&who),
    )))
}

/// Sends a review and shows the stored result.
const REVIEW_SCRIPT: &str = r#"
(function(){
  const form = document.getElementById('review-form');
  if (!form) return;
  const who = document.getElementById('reviewer');
  const status = document.getElementById('review-status');
  const csrf = document.querySelector('meta[name=csrf-token]');
  if (who) who.value = localStorage.getItem('loupe.reviewer') || '';
  async function send(label) {
    if (who) localStorage.setItem('loupe.reviewer', who.value.trim());
    status.textContent = 'Saving…';
    const headers = {'content-type': 'application/json'};
    if (csrf) headers['x-csrf-token'] = csrf.content;
    const review = {label: label, note: document.getElementById('note').value};
    if (who) review.reviewer = who.value;
    const response = await fetch('/api/inspections/' + form.dataset.uuid + '/review', {
      method: 'POST', headers: headers, body: JSON.stringify(review)
    });
    if (!response.ok) { status.textContent = 'Not saved: ' + await response.text(); return; }
    location.reload();
  }
  document.getElementById('confirm').addEventListener('click', () => send(form.dataset.model));
  document.getElementById('correct').addEventListener('click', () => send(document.getElementById('label').value));
})();
"#;

/// `GET /upload`: check one image by hand.
pub(super) async fn upload(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
) -> Html<String> {
    let body = match &shared.settings.upload_url {
        Some(_) if who.role < Role::Reviewer => format!(
            "<h1>Check an image</h1><p id=\"upload-refused\">Checking an image needs a reviewer: \
             <b>{}</b> is a {}.</p>",
            esc(&who.name),
            who.role
        ),
        Some(url) => format!(
            "<h1>Check an image</h1><p class=\"muted\">The image goes through the running flow like a camera's \
             (sent to the capture node at {url}); its result appears here and in the list.</p>\
             <form id=\"upload-form\" class=\"filters\"><label>Image<input type=\"file\" id=\"file\" accept=\"image/*\" required></label>\
             <label>Line<input id=\"line\" size=\"8\" placeholder=\"L1\"></label>\
             <label>Camera verdict<input id=\"camera\" size=\"10\" placeholder=\"loose_wire\"></label>\
             <button type=\"submit\" id=\"send\">Check</button></form><div id=\"upload-result\" class=\"card\" hidden></div>",
            url = esc(url)
        ),
        None => "<h1>Check an image</h1><p id=\"upload-off\">Uploads are not configured: set <code>dashboard.upload_url</code> \
                 of the report node to the capture node's upload endpoint.</p>"
            .to_string(),
    };
    Html(page(
        &shared.settings.title,
        "Check an image",
        Tab::Upload,
        &body,
        UPLOAD_SCRIPT,
        Some(&who),
    ))
}

/// Sends the chosen file, then waits for its record.
const UPLOAD_SCRIPT: &str = r#"
(function(){
  const form = document.getElementById('upload-form');
  if (!form) return;
  const out = document.getElementById('upload-result');
  const show = (html) => { out.hidden = false; out.innerHTML = html; };
  const text = (s) => { const d = document.createElement('div'); d.textContent = s; return d.innerHTML; };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const file = document.getElementById('file').files[0];
    if (!file) return;
    const headers = {'content-type': file.type || 'application/octet-stream', 'x-loupe-filename': file.name};
    const csrf = document.querySelector('meta[name=csrf-token]');
    if (csrf) headers['x-csrf-token'] = csrf.content;
    const line = document.getElementById('line').value.trim();
    if (line) headers['x-loupe-attr-line'] = line;
    const camera = document.getElementById('camera').value.trim();
    if (camera) headers['x-loupe-attr-camera.verdict'] = camera;
    show('Sending ' + text(file.name) + '…');
    const response = await fetch('/api/upload', {method: 'POST', headers: headers, body: file});
    if (response.status !== 202) { show('<span class="error">Not accepted: ' + text(await response.text()) + '</span>'); return; }
    const accepted = await response.json();
    show('Accepted as ' + text(accepted.uuid) + '; waiting for the verdict…');
    for (let i = 0; i < 240; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const r = await fetch('/api/inspections/' + accepted.uuid);
      if (r.ok) {
        const rec = await r.json();
        const verdict = (rec.review && rec.review.label) || rec.model_label || (rec.error_kind ? 'error: ' + rec.error_kind : 'none');
        show('<b id="upload-verdict">' + text(verdict) + '</b> ' + (rec.model_score != null ? rec.model_score.toFixed(4) : '') +
             ' — <a id="result-link" href="/inspections/' + encodeURIComponent(rec.uuid) + '">details</a>');
        return;
      }
    }
    show('<span class="error">No record after 2 minutes: is the flow running?</span>');
  });
})();
"#;

/// `GET /daily`: the daily report with charts.
pub(super) async fn daily(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Identity>,
    Query(range): Query<ReportRange>,
) -> Result<Html<String>, DashboardError> {
    let report = query::report(&shared, &range).await?;
    let query = format!(
        "from={}&to={}{}",
        url_encode(&report.from),
        url_encode(&report.to),
        report
            .line
            .as_deref()
            .map(|l| format!("&line={}", url_encode(l)))
            .unwrap_or_default()
    );
    let mut body = format!(
        "<h1>Daily defect report</h1><form id=\"range\" class=\"filters\" method=\"get\" action=\"/daily\">\
         <label>From<input type=\"date\" name=\"from\" value=\"{from}\"></label>\
         <label>To<input type=\"date\" name=\"to\" value=\"{to}\"></label>\
         <label>Line<input name=\"line\" value=\"{line}\" size=\"8\"></label><button type=\"submit\">Show</button>\
         <a id=\"csv\" href=\"/daily.csv?{query}\">Download CSV</a> \
         <a id=\"coils-csv\" href=\"/daily.csv?{query}&view=coils\">Download coils CSV</a></form>",
        from = esc(&report.from),
        to = esc(&report.to),
        line = esc(report.line.as_deref().unwrap_or("")),
    );
    if report.truncated {
        body.push_str("<p class=\"error\">This range holds more records than one report reads: choose fewer days.</p>");
    }
    body.push_str(&coil_table(&report.coils));
    body.push_str(
        "<h2>Per defect class</h2><p class=\"muted\">Products, not images: a product counts once whatever \
         its number of angles. Confirmed = the reviewer's label where someone reviewed, else the model's. \
         Days are UTC.</p>",
    );
    // Charts: per day, over lines and classes.
    let mut per_day: BTreeMap<&str, [f64; 3]> = BTreeMap::new();
    for l in &report.rows {
        let e = per_day.entry(&l.day).or_default();
        e[0] += l.camera_flagged as f64;
        e[1] += l.confirmed as f64;
        e[2] += l.false_alarms as f64;
    }
    if !per_day.is_empty() {
        let counts: Vec<(String, Vec<f64>)> = per_day
            .iter()
            .map(|(day, v)| (day[5..].to_string(), vec![v[0], v[1], v[2]]))
            .collect();
        body.push_str(&bar_chart(
            "Products per day: camera flags vs confirmed defects",
            &[
                ("camera flagged", "#9aa5b1"),
                ("confirmed defect", "#b3261e"),
                ("false alarm", "#e0a100"),
            ],
            &counts,
            "",
        ));
        let rates: Vec<(String, Vec<f64>)> = per_day
            .iter()
            .map(|(day, v)| {
                (
                    day[5..].to_string(),
                    vec![if v[0] > 0.0 { 100.0 * v[2] / v[0] } else { 0.0 }],
                )
            })
            .collect();
        body.push_str(&bar_chart(
            "Camera false-alarm rate",
            &[("false alarms / camera flags", "#e0a100")],
            &rates,
            "%",
        ));
    }
    body.push_str(
        "<table id=\"daily\"><thead><tr><th>Day</th><th>Line</th><th>Defect class</th><th class=\"num\">Products</th>\
         <th class=\"num\">Camera flagged</th><th class=\"num\">Confirmed</th><th class=\"num\">False alarms</th>\
         <th class=\"num\">False-alarm rate</th><th class=\"num\">Missed by camera</th></tr></thead><tbody>",
    );
    for l in &report.rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&l.day),
            esc(&l.line),
            if l.defect.is_empty() {
                "<span class=\"muted\">none</span>".to_string()
            } else {
                esc(&l.defect)
            },
            l.products,
            l.camera_flagged,
            l.confirmed,
            l.false_alarms,
            l.false_alarm_pct()
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(|| "—".into()),
            l.missed_by_camera
        );
    }
    body.push_str("</tbody></table>");
    if report.rows.is_empty() {
        body.push_str("<p class=\"muted\">No inspections in this range.</p>");
    }
    Ok(Html(page(
        &shared.settings.title,
        "Daily report",
        Tab::Daily,
        &body,
        "",
        Some(&who),
    )))
}

//! The dashboard over real HTTP, served by a real `report` node with a SQLite database and a
//! media directory: pages, JSON API, review, live events, CSV, media and refusals. (The
//! browser test, `tests/python/test_dashboard.py`, clicks through the same pages in Chromium.)

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use loupe_report::Report;
use loupe_sdk::factory::factory;
use loupe_sdk::{BuildContext, FlowFile, Processor};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A report node with a dashboard on a free port; returns it and the dashboard's base URL.
async fn node(base: &Path) -> (Arc<dyn Processor>, String) {
    let port = free_port();
    let ctx = BuildContext {
        node_id: "records".into(),
        base_dir: base.to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let settings = json!({
        "database": "sqlite:report.db",
        "media_dir": "media",
        "dashboard": {"listen": format!("127.0.0.1:{port}"), "title": "Test plant"}
    });
    let node = factory::<Report>().build(&settings, &ctx).await.unwrap();
    (node.processor, format!("http://127.0.0.1:{port}"))
}

fn photo(product: &str, angle: &str, camera: &str, label: &str) -> FlowFile {
    let attrs: HashMap<String, String> = [
        ("product.id", product),
        ("camera.angle", angle),
        ("fragment.count", "2"),
        ("line", "L1"),
        ("camera.verdict", camera),
        ("classify.label", label),
        ("classify.score", "0.91"),
        (
            "classify.scores",
            r#"{"ok":0.04,"burr":0.05,"loose_wire":0.91}"#,
        ),
        ("filename", "<b>coil</b>.png"),
        ("mime.type", "image/png"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    FlowFile::create(b"\x89PNG fake image".to_vec(), attrs)
}

struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    fn new() -> Http {
        Http(Client::builder(TokioExecutor::new()).build(HttpConnector::new()))
    }

    async fn send(&self, method: &str, url: &str, body: Option<Value>) -> (u16, String, String) {
        self.send_with(method, url, body, &[]).await
    }

    async fn send_with(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut request = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let response = self
            .0
            .request(request.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn get(&self, url: &str) -> (u16, String, String) {
        self.send("GET", url, None).await
    }
}

#[tokio::test]
async fn pages_api_review_csv_and_media() {
    let tmp = tempfile::tempdir().unwrap();
    let (report, base) = node(tmp.path()).await;
    let flagged = photo("p1", "0", "loose_wire", "loose_wire");
    let cleared = photo("p1", "1", "loose_wire", "burr");
    let (a, b) = (flagged.uuid.clone(), cleared.uuid.clone());
    report.process(flagged).await.unwrap();
    // Records are ordered by the millisecond they were written: make "newest" well defined.
    tokio::time::sleep(Duration::from_millis(5)).await;
    report.process(cleared).await.unwrap();
    let http = Http::new();

    // The list: newest first, names from attributes escaped.
    let (status, content_type, page) = http.get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("Test plant"));
    let (pos_a, pos_b) = (page.find(&a).unwrap(), page.find(&b).unwrap());
    assert!(pos_b < pos_a, "newest first");
    assert!(!page.contains("<b>coil</b>"), "attribute text is escaped");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from outside"
    );
    let (_, _, filtered) = http.get(&format!("{base}/?disagree=1")).await;
    assert!(
        filtered.contains(&b) && !filtered.contains(&a),
        "only the camera-vs-model disagreement"
    );

    // The detail page: the image, the scores, the review form, the attributes.
    let (status, _, detail) = http.get(&format!("{base}/inspections/{b}")).await;
    assert_eq!(status, 200);
    for part in [
        "id=\"original\"",
        "id=\"scores\"",
        "id=\"review-form\"",
        "id=\"attributes\"",
        "id=\"provenance\"",
    ] {
        assert!(detail.contains(part), "{part} missing");
    }
    let src = detail.split("id=\"original\" src=\"").nth(1).unwrap();
    let src = &src[..src.find('"').unwrap()];
    let (status, content_type, _) = http.get(&format!("{base}{src}")).await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    let (status, _, _) = http
        .get(&format!("{base}/media/..%2F..%2Fetc%2Fpasswd"))
        .await;
    assert_eq!(status, 400, "no way out of the media directory");
    let (status, _, _) = http.get(&format!("{base}/inspections/nope")).await;
    assert_eq!(status, 404);

    // Review: refused without a name, stored with who and when, the latest counts.
    let url = format!("{base}/api/inspections/{b}/review");
    let (status, _, why) = http
        .send("POST", &url, Some(json!({"reviewer": " ", "label": "ok"})))
        .await;
    assert_eq!(status, 400, "{why}");
    let (status, _, _) = http
        .send(
            "POST",
            &url,
            Some(json!({"reviewer": "anna", "label": "../x"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _, body) = http
        .send(
            "POST",
            &url,
            Some(json!({"reviewer": "anna", "label": "burr"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["review"]["action"], "confirmed");
    let (_, _, body) = http
        .send(
            "POST",
            &url,
            Some(json!({"reviewer": "ben", "label": "loose_wire", "note": "wire end visible"})),
        )
        .await;
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["review"]["action"], "corrected");
    assert_eq!(stored["review"]["reviewer"], "ben");
    assert!(stored["review"]["reviewed_ms"].as_i64().unwrap() > 0);
    let (_, _, list) = http
        .get(&format!("{base}/api/inspections?verdict=loose_wire"))
        .await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "the reviewed label is the verdict"
    );
    let (_, _, detail) = http.get(&format!("{base}/inspections/{b}")).await;
    assert!(detail.contains("wire end visible") && detail.contains("anna"));
    let (status, _, _) = http
        .send(
            "POST",
            &format!("{base}/api/inspections/nope/review"),
            Some(json!({"reviewer": "a", "label": "ok"})),
        )
        .await;
    assert_eq!(status, 404);

    // The daily report: one product (two angles), flagged, confirmed.
    let (status, _, daily) = http.get(&format!("{base}/daily")).await;
    assert_eq!(status, 200);
    assert!(daily.contains("<svg class=\"chart\""), "charts");
    let (status, content_type, csv) = http.get(&format!("{base}/daily.csv")).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].ends_with(",L1,loose_wire,1,1,1,0,0.0,0"), "{csv}");
    let (status, _, why) = http
        .get(&format!("{base}/daily?from=2026-02-01&to=2026-01-01"))
        .await;
    assert_eq!(status, 400, "{why}");
    // ... and per coil: the camera would have stopped it, Loupe stopped it.
    assert!(daily.contains("id=\"daily-coils\""), "the coil table");
    let (status, _, csv) = http.get(&format!("{base}/daily.csv?view=coils")).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("day,line,coils,camera_would_stop,loupe_stopped"),
        "{csv}"
    );
    assert!(lines[1].ends_with(",L1,1,1,1,0,0,0,0,0"), "{csv}");

    // The coil view: the coil's verdict, linking to its angles.
    let (status, _, coils) = http.get(&format!("{base}/coils")).await;
    assert_eq!(status, 200);
    assert!(coils.contains("data-product=\"p1\""), "{coils}");
    assert!(
        coils.contains("<td class=\"v-bad\">defective</td>"),
        "{coils}"
    );
    assert!(coils.contains("href=\"/?product=p1\""), "{coils}");
    let (_, _, angles) = http.get(&format!("{base}/?product=p1")).await;
    assert!(angles.contains(&a) && angles.contains(&b));
    let (_, _, none) = http.get(&format!("{base}/?product=p2")).await;
    assert!(!none.contains(&a) && none.contains("id=\"empty\""));
    let (status, _, _) = http.get(&format!("{base}/coils?before=x")).await;
    assert_eq!(status, 400);

    // Upload without a capture node configured: said, not failed silently.
    let (_, _, upload) = http.get(&format!("{base}/upload")).await;
    assert!(upload.contains("id=\"upload-off\""));
    let (status, _, _) = http
        .send("POST", &format!("{base}/api/upload"), Some(json!({})))
        .await;
    assert_eq!(status, 404);

    // A page elsewhere cannot write (a browser says where a request comes from), and a name
    // rebound to this address is not served.
    let review = format!("{base}/api/inspections/{a}/review");
    let body = json!({"label": "ok", "reviewer": "mallory"});
    let (status, _, text) = http
        .send_with(
            "POST",
            &review,
            Some(body.clone()),
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(status, 403, "{text}");
    let (status, _, _) = http
        .send_with(
            "POST",
            &review,
            Some(body),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, text) = http
        .send_with(
            "GET",
            &format!("{base}/"),
            None,
            &[("host", "evil.example")],
        )
        .await;
    assert_eq!(status, 421, "{text}");
    assert!(text.contains("allowed_hosts"), "{text}");
}

#[tokio::test]
async fn new_records_reach_live_lists_as_server_sent_events() {
    let tmp = tempfile::tempdir().unwrap();
    let (report, base) = node(tmp.path()).await;
    let http = Http::new();
    let request = http::Request::get(format!("{base}/api/events"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = http.0.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let photo = photo("p9", "0", "ok", "ok");
    let uuid = photo.uuid.clone();
    report.process(photo).await.unwrap();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains(&uuid) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
    assert!(seen.contains("event: inspection"), "{seen}");
    assert!(
        seen.contains("<tr data-uuid="),
        "the row to insert comes with it: {seen}"
    );
}

#[tokio::test]
async fn a_busy_port_is_a_clear_build_error() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ctx = BuildContext {
        node_id: "records".into(),
        base_dir: tmp.path().to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let settings = json!({"dashboard": {"listen": format!("127.0.0.1:{port}")}});
    let err = factory::<Report>()
        .build(&settings, &ctx)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("dashboard cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    // A dashboard without a database is refused when the flow is validated.
    let settings = json!({"path": "r.jsonl", "dashboard": {}});
    let err = factory::<Report>()
        .build(&settings, &ctx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dashboard"), "{err}");
}

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

/// A report node with a dashboard on a free port (in open mode: no logins, loopback);
/// returns it and the dashboard's base URL.
async fn node(base: &Path) -> (Arc<dyn Processor>, String) {
    node_with(base, json!({})).await
}

/// A report node whose dashboard has the settings `auth` as `dashboard.auth`.
async fn node_with(base: &Path, auth: Value) -> (Arc<dyn Processor>, String) {
    let port = free_port();
    let ctx = BuildContext {
        node_id: "records".into(),
        base_dir: base.to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let settings = json!({
        "database": "sqlite:report.db",
        "media_dir": "media",
        "dashboard": {"listen": format!("127.0.0.1:{port}"), "title": "Test plant", "auth": auth}
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

    // Review (open mode: nobody logged in): stored with who and when, the name given marked
    // `local:` (nobody checked it), the latest counts.
    let url = format!("{base}/api/inspections/{b}/review");
    let (status, _, body) = http
        .send("POST", &url, Some(json!({"reviewer": " ", "label": "ok"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["review"]["reviewer"], "local", "no name given");
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
    assert_eq!(stored["review"]["reviewer"], "local:ben");
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
    assert!(detail.contains("wire end visible") && detail.contains("local:anna"));
    // Only the record's labels (its model's scores here): another is refused.
    let (status, _, why) = http
        .send("POST", &url, Some(json!({"label": "scratch"})))
        .await;
    assert_eq!(status, 422, "{why}");
    assert!(why.contains("burr") && why.contains("loose_wire"), "{why}");
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

// ------------------------------------------------------------------------------ logins

/// An HTTP answer with its headers.
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Whether the request was refused for want of a login or a role.
    fn refused(&self) -> bool {
        matches!(self.status, 401 | 403)
            || (self.status == 303 && self.header("location").starts_with("/login?next="))
    }
}

impl Http {
    /// `method` on `url` with `headers` and a body of `content_type`; a live event stream is
    /// answered without its (endless) body.
    async fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Reply {
        let mut request = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let body = match body {
            Some((content_type, text)) => {
                request = request.header("content-type", content_type);
                Bytes::from(text)
            }
            None => Bytes::new(),
        };
        let response = self
            .0
            .request(request.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = if headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes() == b"text/event-stream")
        {
            String::new()
        } else {
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Posts the login form.
    async fn login(&self, base: &str, name: &str, password: &str) -> Reply {
        let form = format!("name={name}&password={password}&next=%2Fcoils");
        self.call(
            "POST",
            &format!("{base}/login"),
            &[],
            Some(("application/x-www-form-urlencoded", form)),
        )
        .await
    }
}

/// A logged-in browser: its cookie header and CSRF token.
struct Login {
    cookie: String,
    csrf: String,
}

/// Logs `name` in (password `NAME-pw`) and reads the CSRF token from a page.
async fn log_in(http: &Http, base: &str, name: &str) -> Login {
    let reply = http.login(base, name, &format!("{name}-pw")).await;
    assert_eq!(reply.status, 303, "{name}: {}", reply.body);
    assert_eq!(
        reply.header("location"),
        "/coils",
        "back to where they were going"
    );
    let set = reply.header("set-cookie").to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let id = cookie.strip_prefix("loupe_session=").unwrap();
    assert_eq!(id.len(), 64, "256 random bits");
    let page = http
        .call("GET", &format!("{base}/"), &[("cookie", &cookie)], None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page
        .body
        .split("<meta name=\"csrf-token\" content=\"")
        .nth(1)
        .expect("the page carries the CSRF token")
        .split('"')
        .next()
        .unwrap()
        .to_string();
    Login { cookie, csrf }
}

/// A users file with vera (viewer), rita (reviewer) and adam (admin), password `NAME-pw`.
fn users_file(dir: &Path) {
    use loupe_report::dashboard::users::{Role, Users};
    let mut users = Users::default();
    for (name, role) in [
        ("vera", Role::Viewer),
        ("rita", Role::Reviewer),
        ("adam", Role::Admin),
    ] {
        users.add(name, role, &format!("{name}-pw")).unwrap();
    }
    users.save(&dir.join("users")).unwrap();
}

/// Who asks, in the table-driven test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Nobody,
    BadCookie,
    Viewer,
    Reviewer,
    Admin,
}

/// A row of the route table: method, path, body (content type, text), the least role (`None`:
/// anyone).
type Route = (
    &'static str,
    String,
    Option<(&'static str, String)>,
    Option<Who>,
);

#[tokio::test]
async fn every_route_refuses_or_serves_by_role() {
    let tmp = tempfile::tempdir().unwrap();
    users_file(tmp.path());
    let (report, base) = node_with(tmp.path(), json!({"users_file": "users"})).await;
    let photo = photo("p1", "0", "loose_wire", "loose_wire");
    let uuid = photo.uuid.clone();
    report.process(photo).await.unwrap();
    let http = Http::new();
    let record: Value = {
        let login = log_in(&http, &base, "vera").await;
        let reply = http
            .call(
                "GET",
                &format!("{base}/api/inspections/{uuid}"),
                &[("cookie", &login.cookie)],
                None,
            )
            .await;
        serde_json::from_str(&reply.body).unwrap()
    };
    let media = record["media_path"].as_str().unwrap().to_string();

    // Every route of the router (mod.rs), every method it answers, and the least role.
    let review = json!({"label": "burr"}).to_string();
    let routes: Vec<Route> = vec![
        ("GET", "/".into(), None, Some(Who::Viewer)),
        ("GET", "/coils".into(), None, Some(Who::Viewer)),
        (
            "GET",
            format!("/inspections/{uuid}"),
            None,
            Some(Who::Viewer),
        ),
        ("GET", "/upload".into(), None, Some(Who::Viewer)),
        ("GET", "/daily".into(), None, Some(Who::Viewer)),
        ("GET", "/daily.csv".into(), None, Some(Who::Viewer)),
        ("GET", "/api/inspections".into(), None, Some(Who::Viewer)),
        (
            "GET",
            format!("/api/inspections/{uuid}"),
            None,
            Some(Who::Viewer),
        ),
        (
            "POST",
            format!("/api/inspections/{uuid}/review"),
            Some(("application/json", review.clone())),
            Some(Who::Reviewer),
        ),
        ("GET", "/api/daily".into(), None, Some(Who::Viewer)),
        ("GET", "/api/events".into(), None, Some(Who::Viewer)),
        (
            "POST",
            "/api/upload".into(),
            Some(("image/png", "png".into())),
            Some(Who::Reviewer),
        ),
        ("GET", format!("/media/{media}"), None, Some(Who::Viewer)),
        ("GET", "/admin/users".into(), None, Some(Who::Admin)),
        ("POST", "/logout".into(), None, Some(Who::Viewer)),
        ("GET", "/login".into(), None, None),
        ("GET", "/health".into(), None, None),
    ];
    let mut failures = Vec::new();
    for who in [
        Who::Nobody,
        Who::BadCookie,
        Who::Viewer,
        Who::Reviewer,
        Who::Admin,
    ] {
        for (method, path, body, least) in &routes {
            // A fresh login per request: logging out must not end the next row's session.
            let login = match who {
                Who::Viewer => Some(log_in(&http, &base, "vera").await),
                Who::Reviewer => Some(log_in(&http, &base, "rita").await),
                Who::Admin => Some(log_in(&http, &base, "adam").await),
                _ => None,
            };
            let bad = format!("loupe_session={}", "ab".repeat(32));
            let mut headers: Vec<(&str, &str)> = Vec::new();
            match (&login, who) {
                (Some(l), _) => {
                    headers.push(("cookie", &l.cookie));
                    headers.push(("x-csrf-token", &l.csrf));
                }
                (None, Who::BadCookie) => headers.push(("cookie", &bad)),
                _ => {}
            }
            let reply = http
                .call(method, &format!("{base}{path}"), &headers, body.clone())
                .await;
            let expect_refused = least.is_some_and(|least| who < least);
            if reply.refused() != expect_refused {
                failures.push(format!(
                    "{who:?} {method} {path}: {} {} {}",
                    reply.status,
                    reply.header("location"),
                    reply.body.chars().take(120).collect::<String>()
                ));
                continue;
            }
            // How a refusal looks: pages send people to log in, data answers 401, a role too
            // low is 403.
            if expect_refused {
                let want = match (
                    who,
                    method,
                    path.starts_with("/api/") || path.starts_with("/media/"),
                ) {
                    (Who::Nobody | Who::BadCookie, &"GET", false) => 303,
                    (Who::Nobody | Who::BadCookie, _, _) => 401,
                    _ => 403,
                };
                if reply.status != want {
                    failures.push(format!(
                        "{who:?} {method} {path}: {} not {want}",
                        reply.status
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The redirect keeps where the person was going, and only to this site.
    let reply = http
        .call("GET", &format!("{base}/daily?line=L1"), &[], None)
        .await;
    assert_eq!(reply.header("location"), "/login?next=%2Fdaily%3Fline%3DL1");
    let form = "name=vera&password=vera-pw&next=https%3A%2F%2Fevil.example%2F".to_string();
    let reply = http
        .call(
            "POST",
            &format!("{base}/login"),
            &[],
            Some(("application/x-www-form-urlencoded", form)),
        )
        .await;
    assert_eq!((reply.status, reply.header("location")), (303, "/"));

    // What each role sees: the viewer no review form, the reviewer one under their name,
    // the admin the users (never a hash).
    let vera = log_in(&http, &base, "vera").await;
    let detail = http
        .call(
            "GET",
            &format!("{base}/inspections/{uuid}"),
            &[("cookie", &vera.cookie)],
            None,
        )
        .await;
    assert!(
        detail.body.contains("id=\"review-off\"") && !detail.body.contains("id=\"review-form\"")
    );
    let rita = log_in(&http, &base, "rita").await;
    let detail = http
        .call(
            "GET",
            &format!("{base}/inspections/{uuid}"),
            &[("cookie", &rita.cookie)],
            None,
        )
        .await;
    assert!(
        detail.body.contains("id=\"review-form\"")
            && detail.body.contains("id=\"reviewing-as\">rita<")
    );
    let adam = log_in(&http, &base, "adam").await;
    let users = http
        .call(
            "GET",
            &format!("{base}/admin/users"),
            &[("cookie", &adam.cookie)],
            None,
        )
        .await;
    assert!(
        users.body.contains("<td>rita</td><td>reviewer</td>"),
        "{}",
        users.body
    );
    assert!(!users.body.contains("argon2"));

    // Logging out ends the session: its cookie no longer opens anything.
    let reply = http
        .call(
            "POST",
            &format!("{base}/logout"),
            &[("cookie", &vera.cookie)],
            Some((
                "application/x-www-form-urlencoded",
                format!("csrf={}", vera.csrf),
            )),
        )
        .await;
    assert_eq!((reply.status, reply.header("location")), (303, "/login"));
    assert!(reply.header("set-cookie").contains("Max-Age=0"));
    let reply = http
        .call(
            "GET",
            &format!("{base}/api/inspections"),
            &[("cookie", &vera.cookie)],
            None,
        )
        .await;
    assert_eq!(reply.status, 401);

    // A user removed from the file is logged out at their next request.
    let mut file = loupe_report::dashboard::users::Users::load(&tmp.path().join("users")).unwrap();
    file.remove("adam").unwrap();
    file.save(&tmp.path().join("users")).unwrap();
    let reply = http
        .call(
            "GET",
            &format!("{base}/api/inspections"),
            &[("cookie", &adam.cookie)],
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn changes_need_the_csrf_token_and_reviews_are_stored_under_the_login() {
    let tmp = tempfile::tempdir().unwrap();
    users_file(tmp.path());
    let (report, base) = node_with(tmp.path(), json!({"users_file": "users"})).await;
    let photo = photo("p1", "0", "loose_wire", "loose_wire");
    let uuid = photo.uuid.clone();
    report.process(photo).await.unwrap();
    let http = Http::new();
    let rita = log_in(&http, &base, "rita").await;
    let other = log_in(&http, &base, "rita").await;
    let url = format!("{base}/api/inspections/{uuid}/review");
    let body = || Some(("application/json", json!({"label": "burr"}).to_string()));
    let cookie = ("cookie", rita.cookie.as_str());
    for (what, token) in [
        ("no token", None),
        ("a wrong token", Some("0".repeat(64))),
        ("another session's token", Some(other.csrf.clone())),
    ] {
        let mut headers = vec![cookie];
        if let Some(t) = &token {
            headers.push(("x-csrf-token", t));
        }
        let reply = http.call("POST", &url, &headers, body()).await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.body);
        assert!(reply.body.contains("CSRF"), "{}", reply.body);
    }
    // A form's field counts like the header; a wrong one does not.
    let reply = http
        .call(
            "POST",
            &format!("{base}/logout"),
            &[("cookie", &other.cookie)],
            Some(("application/x-www-form-urlencoded", "csrf=nope".into())),
        )
        .await;
    assert_eq!(reply.status, 403);

    // With the token: stored under the logged-in user, whatever the body says.
    let with_token = [cookie, ("x-csrf-token", rita.csrf.as_str())];
    let reply = http.call("POST", &url, &with_token, body()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stored: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(stored["review"]["reviewer"], "rita");
    assert_eq!(stored["review"]["label"], "burr");
    let reply = http
        .call(
            "POST",
            &url,
            &with_token,
            Some((
                "application/json",
                json!({"label": "ok", "reviewer": "rita"}).to_string(),
            )),
        )
        .await;
    assert_eq!(reply.status, 200, "naming oneself is fine: {}", reply.body);
    let reply = http
        .call(
            "POST",
            &url,
            &with_token,
            Some((
                "application/json",
                json!({"label": "ok", "reviewer": "ben"}).to_string(),
            )),
        )
        .await;
    assert_eq!(
        reply.status, 400,
        "nobody reviews in another's name: {}",
        reply.body
    );
    // Labels: only the record's.
    let reply = http
        .call(
            "POST",
            &url,
            &with_token,
            Some(("application/json", json!({"label": "scratch"}).to_string())),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let reviews: Value = {
        let r = http
            .call(
                "GET",
                &format!("{base}/api/inspections/{uuid}"),
                &[cookie],
                None,
            )
            .await;
        serde_json::from_str(&r.body).unwrap()
    };
    assert_eq!(reviews["review"]["reviewer"], "rita");
    assert_eq!(reviews["review"]["label"], "ok");
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    users_file(tmp.path());
    let (_report, base) = node_with(tmp.path(), json!({"users_file": "users"})).await;
    let http = Http::new();
    for i in 0..5 {
        let reply = http.login(&base, "rita", "wrong").await;
        assert_eq!(reply.status, 401, "attempt {i}");
        assert!(reply.body.contains("id=\"login-error\""));
        assert!(reply.header("set-cookie").is_empty());
    }
    // The sixth within the minute is refused without a look at the password, even the right one.
    let reply = http.login(&base, "rita", "rita-pw").await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    let retry: u64 = reply.header("retry-after").parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    // The address is limited too: another name from it as well.
    let reply = http.login(&base, "vera", "vera-pw").await;
    assert_eq!(reply.status, 429);
    // An unknown name is no different from a wrong password (same answer).
    let tmp2 = tempfile::tempdir().unwrap();
    users_file(tmp2.path());
    let (_report2, base2) = node_with(tmp2.path(), json!({"users_file": "users"})).await;
    let unknown = http.login(&base2, "nobody", "x").await;
    let wrong = http.login(&base2, "rita", "x").await;
    assert_eq!((unknown.status, wrong.status), (401, 401));
    assert_eq!(unknown.body, wrong.body);
}

#[tokio::test]
async fn no_logins_is_open_on_loopback_only() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = BuildContext {
        node_id: "records".into(),
        base_dir: tmp.path().to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let port = free_port();
    let settings = json!({
        "database": "sqlite:report.db",
        "dashboard": {"listen": format!("0.0.0.0:{port}")}
    });
    let err = factory::<Report>()
        .build(&settings, &ctx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dashboard.auth") && err.contains("users_file") && err.contains("insecure"),
        "{err}"
    );
    // Said so, it serves open anyway (with a warning).
    let settings = json!({
        "database": "sqlite:report.db",
        "dashboard": {"listen": format!("0.0.0.0:{port}"), "auth": {"insecure": true}}
    });
    let node = factory::<Report>().build(&settings, &ctx).await.unwrap();
    let reply = Http::new()
        .call(
            "GET",
            &format!("http://127.0.0.1:{port}/api/inspections"),
            &[],
            None,
        )
        .await;
    assert_eq!(reply.status, 200);
    drop(node);
    // A users file that is not there is a clear error, not an open dashboard.
    let settings = json!({
        "database": "sqlite:report.db",
        "dashboard": {"listen": format!("0.0.0.0:{}", free_port()), "auth": {"users_file": "missing"}}
    });
    let err = factory::<Report>()
        .build(&settings, &ctx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("users_file") && err.contains("missing"),
        "{err}"
    );
}

#[tokio::test]
async fn the_proxy_header_is_honoured_only_from_a_trusted_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy = |trusted: &str| {
        json!({
            "proxy_header": "X-Forwarded-User",
            "proxy_role_header": "X-Forwarded-Role",
            "proxy_default_role": "viewer",
            "trusted_proxies": [trusted],
        })
    };
    let (report, base) = node_with(tmp.path(), proxy("127.0.0.1")).await;
    let photo = photo("p1", "0", "loose_wire", "loose_wire");
    let uuid = photo.uuid.clone();
    report.process(photo).await.unwrap();
    let http = Http::new();
    let list = format!("{base}/api/inspections");
    assert_eq!(http.call("GET", &list, &[], None).await.status, 401);
    let reply = http
        .call("GET", &list, &[("x-forwarded-user", "sso.anna")], None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The default role is a viewer's; the role header makes a reviewer, whose review is
    // stored under the header's name (with the page's CSRF token).
    let url = format!("{base}/api/inspections/{uuid}/review");
    let review = || Some(("application/json", json!({"label": "burr"}).to_string()));
    let viewer = [("x-forwarded-user", "sso.anna")];
    assert_eq!(http.call("POST", &url, &viewer, review()).await.status, 403);
    let reviewer = [
        ("x-forwarded-user", "sso.anna"),
        ("x-forwarded-role", "reviewer"),
    ];
    let page = http.call("GET", &format!("{base}/"), &reviewer, None).await;
    let csrf = page
        .body
        .split("<meta name=\"csrf-token\" content=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        http.call("POST", &url, &reviewer, review()).await.status,
        403,
        "no token"
    );
    let with_token = [reviewer[0], reviewer[1], ("x-csrf-token", csrf.as_str())];
    let reply = http.call("POST", &url, &with_token, review()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stored: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(stored["review"]["reviewer"], "sso.anna");

    // From a peer that is not a trusted proxy the header is refused, not believed.
    let tmp2 = tempfile::tempdir().unwrap();
    let (_other, base2) = node_with(tmp2.path(), proxy("10.9.9.9")).await;
    let reply = http
        .call(
            "GET",
            &format!("{base2}/api/inspections"),
            &[("x-forwarded-user", "sso.anna")],
            None,
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("trusted_proxies"), "{}", reply.body);
    let reply = http
        .call("GET", &format!("{base2}/api/inspections"), &[], None)
        .await;
    assert_eq!(reply.status, 401);
}

/// `GET path` over TLS trusting `ca_pem`; the status code.
#[allow(deprecated)] // rustls' ring provider, as the SDK uses it
async fn https_status(port: u16, ca_pem: &str, path: &str) -> u16 {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn beyond_loopback_the_dashboard_needs_tls_and_serves_https() {
    let tmp = tempfile::tempdir().unwrap();
    users_file(tmp.path());
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(tmp.path().join("dash.crt"), cert.pem()).unwrap();
    std::fs::write(tmp.path().join("dash.key"), key.serialize_pem()).unwrap();
    let ctx = BuildContext {
        node_id: "records".into(),
        base_dir: tmp.path().to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let port = free_port();
    let auth = json!({"users_file": "users"});
    // Logins but no TLS: passwords and session cookies would cross the network in clear.
    let settings = json!({
        "database": "sqlite:report.db",
        "dashboard": {"listen": format!("0.0.0.0:{port}"), "auth": auth}
    });
    let err = factory::<Report>()
        .build(&settings, &ctx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("without TLS") && err.contains("dashboard.tls"),
        "{err}"
    );
    let settings = json!({
        "database": "sqlite:report.db",
        "dashboard": {
            "listen": format!("0.0.0.0:{port}"),
            "auth": auth,
            "tls": {"cert": "dash.crt", "key": "dash.key"},
            "allowed_hosts": ["localhost"]
        }
    });
    let node = factory::<Report>().build(&settings, &ctx).await.unwrap();
    assert_eq!(https_status(port, &cert.pem(), "/login").await, 200);
    // Not logged in: the API refuses, over TLS too.
    assert_eq!(
        https_status(port, &cert.pem(), "/api/inspections").await,
        401
    );
    // Plain HTTP gets no page: the TLS handshake fails and the connection closes.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut answer).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP was served"
    );
    drop(node);
}

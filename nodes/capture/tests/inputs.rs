//! `capture`'s HTTP inputs over real loopback sockets: the upload endpoint (driven by a
//! minimal HTTP/1.1 client written here) and snapshots (from a minimal camera server
//! written here). No assertion depends on timing: waits are generous upper bounds, and
//! "not yet" checks rely on causality (a response cannot exist before the ack that
//! produces it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use loupe_capture::{Capture, CaptureSettings, CaptureSource};
use loupe_sdk::factory::{factory, parse_settings};
use loupe_sdk::pb::Offer;
use loupe_sdk::{BuildContext, Processor, Pulled, Source};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PATIENCE: Duration = Duration::from_secs(20);
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really a png";

fn ctx(base: &Path) -> BuildContext {
    BuildContext {
        node_id: "cap".into(),
        base_dir: base.to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    }
}

async fn open(settings: Value) -> Arc<CaptureSource> {
    // Each test its own base directory: the upload spool lives under it.
    let dir = tempfile::tempdir().unwrap().keep();
    open_in(settings, &dir).await
}

async fn open_in(settings: Value, base: &Path) -> Arc<CaptureSource> {
    let settings: CaptureSettings = parse_settings(&settings).unwrap();
    assert!(settings.problems().is_empty(), "{:?}", settings.problems());
    Arc::new(CaptureSource::open(settings, &ctx(base)).await.unwrap())
}

fn upload_settings(extra: &Value) -> Value {
    let mut upload = json!({"listen": "127.0.0.1:0"});
    for (k, v) in extra.as_object().unwrap() {
        upload[k] = v.clone();
    }
    json!({"upload": upload, "metadata": {"fragment_count": 8}})
}

/// An upload-only capture on an ephemeral port, with `upload` settings `extra`.
async fn uploader(extra: Value) -> (Arc<CaptureSource>, SocketAddr) {
    let src = open(upload_settings(&extra)).await;
    let addr = src.upload_addr().unwrap();
    (src, addr)
}

/// Spool files (`*.upload`) under `dir`.
fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "upload"))
            })
            .count()
        })
        .unwrap_or(0)
}

async fn pull_some(src: &CaptureSource, max: usize) -> Pulled {
    let pulled = src.pull(max, PATIENCE).await.unwrap();
    assert!(
        !pulled.offers.is_empty(),
        "nothing offered within {PATIENCE:?}"
    );
    pulled
}

fn attrs(offer: &Offer) -> &HashMap<String, String> {
    &offer.flow_file.as_ref().unwrap().attributes
}

fn id(offer: &Offer) -> Vec<String> {
    vec![offer.delivery_id.clone()]
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`). A write error is
/// ignored: a server may answer (413) and close before reading everything.
async fn http(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{head}Host: {addr}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    let _ = stream.write_all(&request).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("no complete response in time");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A raw-body upload with extra header lines.
async fn post_raw(addr: SocketAddr, headers: &str, body: &[u8]) -> Reply {
    let head = format!(
        "POST /upload HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: {}\r\n{headers}",
        body.len()
    );
    http(addr, &head, body).await
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "loupe-test-boundary";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: image/png\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /upload HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    (head, body)
}

#[tokio::test]
async fn raw_upload_is_answered_once_spooled_and_kept_until_acknowledged() {
    let base = tempfile::tempdir().unwrap();
    let spool = base.path().join(".loupe/spool/cap");
    let src = open_in(upload_settings(&json!({})), base.path()).await;
    let addr = src.upload_addr().unwrap();
    let reply = post_raw(
        addr,
        "X-Loupe-Filename: p7_a2.png\r\nX-Loupe-Attr-product.id: p7\r\n\
         X-Loupe-Attr-Camera.Angle: 2\r\n",
        PNG,
    )
    .await;
    assert_eq!(reply.status, 202, "answered once on disk: {reply:?}");
    assert_eq!(spooled(&spool), 1, "the upload is in the spool");

    let offered = pull_some(&src, 10).await.offers;
    assert_eq!(offered.len(), 1);
    let ff = offered[0].flow_file.as_ref().unwrap();
    assert_eq!(&ff.content[..], PNG);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["uuid"], ff.uuid.as_str());
    assert_eq!(body["filename"], "p7_a2.png");
    assert_eq!(body["size"], PNG.len());
    let a = attrs(&offered[0]);
    assert_eq!(a["filename"], "p7_a2.png");
    assert_eq!(a["mime.type"], "image/png");
    assert_eq!(a["product.id"], "p7");
    assert_eq!(a["camera.angle"], "2", "header names arrive lower-case");
    assert_eq!(a["fragment.identifier"], "p7");
    assert_eq!(a["fragment.count"], "8");
    assert_eq!(a["file.size"], PNG.len().to_string());
    assert_eq!(a["upload.remote.address"], "127.0.0.1");
    assert_eq!(a["capture.input"], "upload");

    // Rejected: offered again (same FlowFile), still spooled.
    src.ack(vec![], id(&offered[0])).await.unwrap();
    let again = pull_some(&src, 10).await.offers;
    assert_eq!(again[0].flow_file.as_ref().unwrap().uuid, ff.uuid);
    assert_ne!(again[0].delivery_id, offered[0].delivery_id);
    assert_eq!(spooled(&spool), 1);

    // Accepted (its record is durable): the spool file goes.
    src.ack(id(&again[0]), vec![]).await.unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while spooled(&spool) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "spool file not removed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let idle = src.pull(10, Duration::ZERO).await.unwrap();
    assert!(idle.offers.is_empty());
    assert!(!idle.exhausted, "a capture with uploads is never exhausted");
}

#[tokio::test]
async fn a_spooled_upload_survives_a_restart_and_a_retry_is_the_same_flowfile() {
    let base = tempfile::tempdir().unwrap();
    let settings = upload_settings(&json!({}));
    let src = open_in(settings.clone(), base.path()).await;
    let addr = src.upload_addr().unwrap();
    let first = post_raw(addr, "X-Loupe-Filename: a.png\r\n", PNG).await;
    assert_eq!(first.status, 202, "{first:?}");
    // The client lost the answer and sends it again: the same FlowFile.
    let retry = post_raw(addr, "X-Loupe-Filename: a.png\r\n", PNG).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    let uuid = |r: &Reply| {
        let body = serde_json::from_str::<Value>(&r.body).unwrap();
        body["uuid"].as_str().unwrap().to_string()
    };
    assert_eq!(uuid(&first), uuid(&retry));
    let other = post_raw(addr, "X-Loupe-Filename: b.png\r\n", PNG).await;
    assert_ne!(uuid(&other), uuid(&first), "another name is another photo");
    // Offered, never acknowledged: the node stops (a crash keeps the spool the same way).
    let _ = pull_some(&src, 10).await;
    src.stop().await;
    drop(src);

    let src = open_in(settings, base.path()).await;
    let mut uuids = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    while uuids.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "spooled uploads not offered again"
        );
        for o in src
            .pull(10, Duration::from_millis(100))
            .await
            .unwrap()
            .offers
        {
            let ff = o.flow_file.unwrap();
            assert_eq!(&ff.content[..], PNG);
            uuids.insert(ff.uuid);
        }
    }
    assert!(uuids.contains(&uuid(&first)) && uuids.contains(&uuid(&other)));
}

#[tokio::test]
async fn an_unwritable_spool_answers_503_and_offers_nothing() {
    let base = tempfile::tempdir().unwrap();
    let src = open_in(upload_settings(&json!({})), base.path()).await;
    let addr = src.upload_addr().unwrap();
    // The spool's disk goes away: a file where its directory was (fails even as root).
    let spool = base.path().join(".loupe/spool/cap");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"not a directory").unwrap();
    let reply = post_raw(addr, "", PNG).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.headers.contains_key("retry-after"));
    assert!(reply.body.contains("cannot store"), "{reply:?}");
    assert!(
        src.pull(10, Duration::ZERO)
            .await
            .unwrap()
            .offers
            .is_empty()
    );
    // Back: accepted again.
    std::fs::remove_file(&spool).unwrap();
    std::fs::create_dir_all(&spool).unwrap();
    assert_eq!(post_raw(addr, "", PNG).await.status, 202);
}

#[tokio::test]
async fn multipart_upload_takes_fields_as_attributes() {
    let (src, addr) = uploader(json!({})).await;
    let (head, body) = multipart(&[
        ("product.id", None, b"p9"),
        ("file", Some("../../etc/p9_a1.png"), PNG),
        ("camera.angle", None, b"1"),
    ]);
    let reply = http(addr, &head, &body).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let offered = pull_some(&src, 10).await.offers;
    let a = attrs(&offered[0]);
    assert_eq!(a["filename"], "p9_a1.png", "a client's path never leaks in");
    assert_eq!(a["mime.type"], "image/png");
    assert_eq!(a["product.id"], "p9");
    assert_eq!(a["camera.angle"], "1");
    assert_eq!(a["fragment.index"], "1");
    assert_eq!(&offered[0].flow_file.as_ref().unwrap().content[..], PNG);
    src.ack(id(&offered[0]), vec![]).await.unwrap();
}

#[tokio::test]
async fn bad_uploads_are_refused_with_clear_statuses() {
    let (src, addr) = uploader(json!({"max_body_bytes": 256})).await;

    let reply = post_raw(addr, "", b"").await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.body.contains("empty"), "{reply:?}");

    let reply = post_raw(addr, "", &[7u8; 257]).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(
        reply.body.contains("max_body_bytes") && reply.body.contains("256"),
        "{reply:?}"
    );

    // Without a Content-Length (chunked), the limit holds while reading.
    let chunk = [7u8; 300];
    let mut body = format!("{:x}\r\n", chunk.len()).into_bytes();
    body.extend_from_slice(&chunk);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = "POST /upload HTTP/1.1\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n";
    let reply = http(addr, head, &body).await;
    assert_eq!(reply.status, 413, "{reply:?}");

    let (head, body) = multipart(&[("product.id", None, b"p1")]);
    let reply = http(addr, &head, &body).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.body.contains("no file part"), "{reply:?}");

    let (head, body) = multipart(&[("a", Some("a.png"), b"1"), ("b", Some("b.png"), b"2")]);
    let reply = http(addr, &head, &body).await;
    assert_eq!(reply.status, 400, "{reply:?}");

    let reply = http(addr, "GET /upload HTTP/1.1\r\n", b"").await;
    assert_eq!(reply.status, 405, "{reply:?}");

    // Nothing of the above reached the flow.
    assert!(
        src.pull(10, Duration::ZERO)
            .await
            .unwrap()
            .offers
            .is_empty()
    );
}

#[tokio::test]
async fn a_saturated_endpoint_answers_503_with_retry_after() {
    let settings = json!({"max_pending": 1, "retry_after": "7s", "wait_accept": "200ms"});
    let (src, addr) = uploader(settings).await;
    assert_eq!(post_raw(addr, "", b"first").await.status, 202);
    let offered = pull_some(&src, 10).await.offers; // held in flight, not acknowledged

    let reply = post_raw(addr, "", b"second").await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.headers["retry-after"], "7");
    assert!(reply.body.contains("saturated"), "{reply:?}");

    // A request waits for room up to `wait_accept`: an acknowledgement meanwhile lets it in.
    let third = tokio::spawn(post_raw(addr, "", b"third"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    src.ack(id(&offered[0]), vec![]).await.unwrap();
    assert_eq!(third.await.unwrap().status, 202);
    let offered = pull_some(&src, 10).await.offers;
    assert_eq!(
        &offered[0].flow_file.as_ref().unwrap().content[..],
        b"third"
    );
    src.ack(id(&offered[0]), vec![]).await.unwrap();
}

#[tokio::test]
async fn bind_failure_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let err = factory::<Capture>()
        .build(
            &json!({"upload": {"listen": address}}),
            &ctx(&std::env::temp_dir()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&address) && err.contains("upload.listen"),
        "{err}"
    );

    let problems = factory::<Capture>()
        .check(&json!({"upload": {"listen": "localhost:80"}}))
        .unwrap_err();
    assert_eq!(problems[0].path, "upload.listen");
    let problems = factory::<Capture>().check(&json!({})).unwrap_err();
    assert!(problems[0].message.contains("at least one"), "{problems:?}");
}

/// A camera answering every `GET` with [`PNG`], or `500` while `failing`.
struct Camera {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

async fn camera(failing: bool) -> Camera {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failing = Arc::new(AtomicBool::new(failing));
    let requests = Arc::new(AtomicUsize::new(0));
    let (f, r) = (failing.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (f, r) = (f.clone(), r.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                let reply = if f.load(Ordering::SeqCst) {
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\
                      Connection: close\r\n\r\n"
                        .to_vec()
                } else {
                    let mut reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n",
                        PNG.len()
                    )
                    .into_bytes();
                    reply.extend_from_slice(PNG);
                    reply
                };
                let _ = stream.write_all(&reply).await;
            });
        }
    });
    Camera {
        addr,
        failing,
        requests,
    }
}

fn snapshot_settings(addr: SocketAddr, extra: Value) -> Value {
    let mut snapshot = json!({"url": format!("http://{addr}/snap.png"), "interval": "50ms",
        "camera_id": "cam-1"});
    for (k, v) in extra.as_object().unwrap() {
        snapshot[k] = v.clone();
    }
    json!({"snapshot": snapshot, "metadata": {"attributes": {"line": "L1"}}})
}

#[tokio::test]
async fn snapshots_are_grabbed_and_offered() {
    let cam = camera(false).await;
    let src = open(snapshot_settings(cam.addr, json!({}))).await;
    let offered = pull_some(&src, 1).await.offers;
    assert_eq!(offered.len(), 1);
    let ff = offered[0].flow_file.as_ref().unwrap();
    assert_eq!(&ff.content[..], PNG);
    let a = attrs(&offered[0]);
    assert_eq!(a["snapshot.url"], format!("http://{}/snap.png", cam.addr));
    assert_eq!(a["camera.id"], "cam-1");
    assert_eq!(a["mime.type"], "image/png");
    assert_eq!(a["line"], "L1");
    assert_eq!(a["capture.input"], "snapshot");
    assert!(a["filename"].starts_with("snapshot-") && a["filename"].ends_with(".png"));
    humantime::parse_rfc3339(&a["snapshot.time"]).unwrap();

    // A rejected frame comes back; an accepted one is gone; never exhausted.
    src.ack(vec![], id(&offered[0])).await.unwrap();
    let again = pull_some(&src, 10).await.offers;
    assert!(
        again
            .iter()
            .any(|o| o.flow_file.as_ref().unwrap().uuid == ff.uuid)
    );
    src.ack(
        again.iter().map(|o| o.delivery_id.clone()).collect(),
        vec![],
    )
    .await
    .unwrap();
    assert!(!src.pull(10, Duration::ZERO).await.unwrap().exhausted);
}

#[tokio::test]
async fn a_saturated_flow_makes_snapshots_skip_rather_than_queue() {
    let cam = camera(false).await;
    let src = open(snapshot_settings(cam.addr, json!({"max_pending": 1}))).await;
    let held = pull_some(&src, 10).await.offers;
    assert_eq!(held.len(), 1);
    // With the one pending frame unacknowledged, nothing more is queued.
    let more = src.pull(10, Duration::from_millis(300)).await.unwrap();
    assert!(more.offers.is_empty(), "{:?}", more.offers.len());
    src.ack(id(&held[0]), vec![]).await.unwrap();
    let next = pull_some(&src, 10).await.offers;
    assert_eq!(next.len(), 1);
    assert_ne!(
        next[0].flow_file.as_ref().unwrap().uuid,
        held[0].flow_file.as_ref().unwrap().uuid
    );
}

#[tokio::test]
async fn a_failing_camera_is_retried_until_it_comes_back() {
    let cam = camera(true).await;
    let src = open(snapshot_settings(cam.addr, json!({}))).await;
    // It is asked (and fails) repeatedly; the node keeps serving.
    tokio::time::timeout(PATIENCE, async {
        while cam.requests.load(Ordering::SeqCst) < 3 {
            let pulled = src.pull(10, Duration::from_millis(50)).await.unwrap();
            assert!(pulled.offers.is_empty() && !pulled.exhausted);
        }
    })
    .await
    .expect("the camera is asked again after failures");
    cam.failing.store(false, Ordering::SeqCst);
    let offered = pull_some(&src, 10).await.offers;
    assert_eq!(&offered[0].flow_file.as_ref().unwrap().content[..], PNG);
}

#[tokio::test]
async fn an_unreachable_camera_does_not_stop_the_node() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed); // connection refused from now on
    let src = open(snapshot_settings(addr, json!({"timeout": "1s"}))).await;
    let pulled = src.pull(10, Duration::from_millis(200)).await.unwrap();
    assert!(pulled.offers.is_empty());
    assert!(!pulled.exhausted);
}

#[tokio::test]
async fn uploads_need_the_token_when_the_endpoint_asks_for_one() {
    let base = tempfile::tempdir().unwrap();
    std::fs::write(
        base.path().join("camera.token"),
        "camera-token-0123456789abcdef\n",
    )
    .unwrap();
    let spool = base.path().join(".loupe/spool/cap");
    let auth = json!({"auth": {"tokens": [{"name": "camera", "file": "camera.token"}]}});
    let src = open_in(upload_settings(&auth), base.path()).await;
    let addr = src.upload_addr().unwrap();
    for (headers, status) in [
        ("", 401),
        (
            "Authorization: Bearer wrong-token-0123456789abcdef\r\n",
            401,
        ),
    ] {
        let reply = post_raw(addr, headers, PNG).await;
        assert_eq!(reply.status, status, "{reply:?}");
        assert_eq!(spooled(&spool), 0, "a refused upload is never spooled");
    }
    let reply = post_raw(
        addr,
        "Authorization: Bearer camera-token-0123456789abcdef\r\n",
        PNG,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(spooled(&spool), 1);
}

#[tokio::test]
async fn an_upload_endpoint_beyond_loopback_needs_tls_and_credentials() {
    let base = tempfile::tempdir().unwrap();
    let settings: CaptureSettings =
        parse_settings(&json!({"upload": {"listen": "0.0.0.0:0"}})).unwrap();
    let err = match CaptureSource::open(settings, &ctx(base.path())).await {
        Ok(_) => panic!("an open upload endpoint beyond loopback started"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("upload.tls") && err.contains("without TLS and credentials"),
        "{err}"
    );
}

//! Notifications against real receivers: an HTTP server started here (axum on 127.0.0.1:0)
//! and the MQTT broker named by `LOUPE_TEST_MQTT_URL` (skipped without it, except in CI).
//!
//! Nothing here asserts on a sleep: tests wait (generously) for what the receiver saw or for
//! a counter, and only lower bounds of time are checked.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use loupe_report::notify::{
    MAX_NOTICE_BYTES, Notice, NoticeError, Notifier, NotifyError, NotifySettings, NotifyStats,
    Outcome,
};
use loupe_sdk::factory::parse_settings;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest any test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(30);
const SECRET: &str = "test-secret-0123456789abcdef";

fn settings(value: Value) -> NotifySettings {
    parse_settings(&value).unwrap()
}

fn notice(product: &str, line: &str, defects: &[&str]) -> Notice {
    let mut n = Notice::new(product, line, "defective");
    n.defects = defects.iter().map(ToString::to_string).collect();
    n.angles = 4;
    n.camera_verdicts = 3;
    n.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_string());
    n.details.insert("score".to_string(), json!(0.97));
    n
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until the notifier's counts satisfy `ok`.
async fn wait_stats(n: &Notifier, what: &str, ok: impl Fn(&NotifyStats) -> bool) -> NotifyStats {
    within(what, async {
        loop {
            let s = n.stats();
            if ok(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// A real webhook receiver.

#[derive(Debug)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` header"))
            .to_str()
            .unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Receiver {
    tx: mpsc::UnboundedSender<Received>,
    /// Statuses to answer, in order; then `otherwise`. `0` means: never answer.
    script: Mutex<VecDeque<u16>>,
    otherwise: u16,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let at = Instant::now();
    let _ = r.tx.send(Received { at, headers, body });
    let status = r.script.lock().unwrap().pop_front().unwrap_or(r.otherwise);
    if status == 0 {
        std::future::pending::<()>().await;
    }
    (
        StatusCode::from_u16(status).unwrap(),
        "answer from the test receiver",
    )
}

/// Starts a receiver at `http://127.0.0.1:<port>/hook`; returns its URL and what it gets.
async fn receiver(script: &[u16], otherwise: u16) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver {
        tx,
        script: Mutex::new(script.iter().copied().collect()),
        otherwise,
    });
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    within("a webhook request", rx.recv()).await.unwrap()
}

fn webhook(url: &str, extra: Value) -> NotifySettings {
    let mut w = json!({"url": url, "secret": SECRET, "timeout": "10s",
                       "initial_backoff": "50ms", "max_backoff": "200ms"});
    w.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    settings(json!({"webhook": w, "cooldown": "0s"}))
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn webhook_body_and_signature_are_verified_by_the_receiver() {
    let (url, mut rx) = receiver(&[], 200).await;
    let n = Notifier::start(&webhook(&url, json!({}))).unwrap();
    assert_eq!(
        n.notify(&notice("P-1", "line-3", &["scratch"])),
        Outcome::Queued
    );

    let got = next(&mut rx).await;
    // Recompute the signature over `<timestamp>.<raw body>`.
    let timestamp = got.header("x-loupe-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&got.body);
    let hex = got
        .header("x-loupe-signature")
        .strip_prefix("sha256=")
        .expect("sha256= prefix");
    let sig: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    mac.verify_slice(&sig).expect("signature verifies");
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .abs_diff(timestamp.parse().unwrap());
    assert!(age < 600, "timestamp {timestamp} is the time of sending");
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("x-loupe-attempt"), "1");

    let body = got.json();
    assert_eq!(got.header("x-loupe-delivery"), body["id"].as_str().unwrap());
    assert_eq!(body["product_id"], "P-1");
    assert_eq!(body["line"], "line-3");
    assert_eq!(body["verdict"], "defective");
    assert_eq!(body["defects"], json!(["scratch"]));
    assert_eq!(body["angles"], 4);
    assert_eq!(body["camera_verdicts"], 3);
    assert_eq!(body["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(body["details"], json!({"score": 0.97}));
    assert_eq!(body["suppressed"], 0);
    humantime::parse_rfc3339(body["time"].as_str().unwrap()).unwrap();

    wait_stats(&n, "sent = 1", |s| s.sent == 1).await;
    let stats = n.shutdown(PATIENCE).await;
    assert_eq!((stats.sent, stats.failed, stats.dropped), (1, 0, 0));
}

#[tokio::test]
async fn webhook_retries_500_and_503_with_backoff_then_succeeds() {
    let (url, mut rx) = receiver(&[500, 503], 200).await;
    let n = Notifier::start(&webhook(&url, json!({"max_attempts": 5}))).unwrap();
    assert_eq!(
        n.notify(&notice("P-2", "line-1", &["dent"])),
        Outcome::Queued
    );

    let (a, b, c) = (
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    );
    let attempts: Vec<&str> = [&a, &b, &c]
        .iter()
        .map(|r| r.header("x-loupe-attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    // The same notice each time, signed each time.
    assert_eq!(a.body, c.body);
    assert_eq!(a.header("x-loupe-delivery"), c.header("x-loupe-delivery"));
    // Backoff: 50 ms, then 100 ms (lower bounds only).
    assert!(
        b.at - a.at >= Duration::from_millis(50),
        "{:?}",
        b.at - a.at
    );
    assert!(
        c.at - b.at >= Duration::from_millis(100),
        "{:?}",
        c.at - b.at
    );

    let s = wait_stats(&n, "sent = 1", |s| s.sent == 1).await;
    assert_eq!(s.failed, 0);
    n.shutdown(PATIENCE).await;
    assert!(rx.try_recv().is_err(), "no attempt after success");
}

/// Log lines written while it lives (tests run on one thread: spawned tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for Logs {
    type Writer = Logs;

    fn make_writer(&self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(self.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::WARN)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn webhook_gives_up_after_max_attempts() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let (url, mut rx) = receiver(&[], 503).await;
    let n = Notifier::start(&webhook(&url, json!({"max_attempts": 3}))).unwrap();
    n.notify(&notice("P-3", "line-1", &["dent"]));
    let s = wait_stats(&n, "failed = 1", |s| s.failed == 1).await;
    assert_eq!(s.sent, 0);
    for attempt in ["1", "2", "3"] {
        assert_eq!(next(&mut rx).await.header("x-loupe-attempt"), attempt);
    }
    n.shutdown(PATIENCE).await;
    assert!(rx.try_recv().is_err(), "exactly max_attempts requests");
    let logs = logs.text();
    let line = logs
        .lines()
        .find(|l| l.contains("giving up"))
        .unwrap_or_else(|| panic!("no error logged:\n{logs}"));
    assert!(
        line.contains("ERROR") && line.contains("attempts=3"),
        "{line}"
    );
    assert!(line.contains("503 Service Unavailable"), "{line}");
}

#[tokio::test]
async fn webhook_client_errors_are_not_retried() {
    let (url, mut rx) = receiver(&[400], 200).await;
    let n = Notifier::start(&webhook(&url, json!({"max_attempts": 5}))).unwrap();
    n.notify(&notice("P-4", "line-1", &[]));
    wait_stats(&n, "failed = 1", |s| s.failed == 1).await;
    next(&mut rx).await;
    n.shutdown(PATIENCE).await;
    assert!(rx.try_recv().is_err(), "a 400 is final");
}

#[tokio::test]
async fn cooldown_suppresses_repeats_for_the_same_line_and_kind_only() {
    let (url, mut rx) = receiver(&[], 200).await;
    let mut s = webhook(&url, json!({}));
    s.cooldown = Duration::from_secs(3);
    let n = Notifier::start(&s).unwrap();
    let started = Instant::now();
    assert_eq!(
        n.notify(&notice("P-1", "line-1", &["scratch", "dent"])),
        Outcome::Queued
    );
    // Same line, same kind (order and repeats of defects do not matter).
    assert_eq!(
        n.notify(&notice("P-2", "line-1", &["dent", "scratch"])),
        Outcome::Suppressed
    );
    assert_eq!(
        n.notify(&notice("P-3", "line-1", &["scratch", "dent", "dent"])),
        Outcome::Suppressed
    );
    // Another line, another kind: not suppressed.
    assert_eq!(
        n.notify(&notice("P-4", "line-2", &["scratch", "dent"])),
        Outcome::Queued
    );
    assert_eq!(
        n.notify(&notice("P-5", "line-1", &["scratch"])),
        Outcome::Queued
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "machine too slow for this test"
    );
    let mut products: Vec<String> = Vec::new();
    for _ in 0..3 {
        let body = next(&mut rx).await.json();
        assert_eq!(body["suppressed"], 0);
        products.push(body["product_id"].as_str().unwrap().to_string());
    }
    products.sort();
    assert_eq!(products, ["P-1", "P-4", "P-5"]);

    // After the cooldown, the next notice goes out and says how many were held back.
    tokio::time::sleep_until((started + Duration::from_millis(3100)).into()).await;
    assert_eq!(
        n.notify(&notice("P-6", "line-1", &["dent", "scratch"])),
        Outcome::Queued
    );
    let body = next(&mut rx).await.json();
    assert_eq!(
        (body["product_id"].as_str(), body["suppressed"].as_u64()),
        (Some("P-6"), Some(2))
    );

    let stats = n.shutdown(PATIENCE).await;
    assert_eq!((stats.sent, stats.suppressed), (4, 2));
}

#[tokio::test]
async fn full_queue_drops_without_blocking() {
    // The receiver takes requests and never answers: the worker is stuck on the first.
    let (url, mut rx) = receiver(&[], 0).await;
    let mut s = webhook(&url, json!({"timeout": "1h"}));
    s.queue = 2;
    let n = Notifier::start(&s).unwrap();
    assert_eq!(n.notify(&notice("P-0", "line-1", &[])), Outcome::Queued);
    next(&mut rx).await; // the worker holds P-0

    let started = Instant::now();
    let outcomes: Vec<Outcome> = (1..=100)
        .map(|i| n.notify(&notice(&format!("P-{i}"), "line-1", &[])))
        .collect();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "notify waited: {took:?}");
    let queued = outcomes.iter().filter(|o| **o == Outcome::Queued).count();
    let dropped = outcomes.iter().filter(|o| **o == Outcome::Dropped).count();
    assert_eq!((queued, dropped), (2, 98), "{outcomes:?}");
    assert_eq!(n.stats().dropped, 98);

    // Shutdown gives up on the stuck request and the queued two at its deadline.
    let started = Instant::now();
    let stats = n.shutdown(Duration::from_millis(200)).await;
    assert!(started.elapsed() < PATIENCE);
    assert_eq!((stats.sent, stats.dropped), (0, 98 + 3));
}

#[tokio::test]
async fn shutdown_delivers_what_is_queued() {
    let (url, mut rx) = receiver(&[503], 200).await;
    let n = Notifier::start(&webhook(&url, json!({}))).unwrap();
    for i in 0..5 {
        assert_eq!(
            n.notify(&notice(&format!("P-{i}"), "line-1", &[])),
            Outcome::Queued
        );
    }
    let stats = n.shutdown(PATIENCE).await;
    assert_eq!((stats.sent, stats.failed, stats.dropped), (5, 0, 0));
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 6, "five notices, one of them twice (503 first)");
}

#[tokio::test]
async fn unreachable_webhook_never_blocks_notify() {
    let url = format!("http://127.0.0.1:{}/hook", closed_port().await);
    let mut s = webhook(&url, json!({"max_attempts": 2, "initial_backoff": "10ms"}));
    s.queue = 10;
    let n = Notifier::start(&s).unwrap();
    let started = Instant::now();
    let queued = (0..200)
        .filter(|i| n.notify(&notice(&format!("P-{i}"), "line-1", &[])) == Outcome::Queued)
        .count() as u64;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(queued >= 10);
    let s = wait_stats(&n, "every queued notice failed", |s| s.failed == queued).await;
    assert_eq!((s.sent, s.dropped), (0, 200 - queued));
    n.shutdown(PATIENCE).await;
}

#[tokio::test]
async fn unreachable_broker_never_blocks_notify() {
    let url = format!("mqtt://127.0.0.1:{}", closed_port().await);
    let s = settings(
        json!({"mqtt": {"url": url, "max_attempts": 2, "initial_backoff": "10ms",
                                     "max_backoff": "50ms"},
                            "cooldown": "0s", "queue": 10}),
    );
    let n = Notifier::start(&s).unwrap();
    let started = Instant::now();
    let queued = (0..200)
        .filter(|i| n.notify(&notice(&format!("P-{i}"), "line-1", &[])) == Outcome::Queued)
        .count() as u64;
    assert!(started.elapsed() < Duration::from_secs(5));
    let s = wait_stats(&n, "every queued notice failed", |s| s.failed == queued).await;
    assert_eq!((s.sent, s.dropped), (0, 200 - queued));
    let started = Instant::now();
    n.shutdown(PATIENCE).await;
    assert!(started.elapsed() < PATIENCE);
}

#[tokio::test]
async fn bad_settings_and_bad_notices_are_clear_errors() {
    let s = settings(
        json!({"webhook": {"url": "ftp://x/hook", "secret": "short"},
                            "mqtt": {"url": "mqtt://b", "qos": 2}}),
    );
    let e = Notifier::start(&s).unwrap_err();
    let NotifyError::Settings(problems) = &e else {
        panic!("{e}")
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["webhook.url", "webhook.secret", "mqtt.qos"]);
    assert!(e.to_string().contains("must start with `https://`"), "{e}");

    let (url, _rx) = receiver(&[], 200).await;
    let n = Notifier::start(&webhook(&url, json!({}))).unwrap();
    assert_eq!(
        n.notify(&notice("P-1", "", &[])),
        Outcome::Rejected(NoticeError::Empty("line"))
    );
    let mut big = notice("P-1", "line-1", &[]);
    big.details
        .insert("blob".into(), json!("x".repeat(MAX_NOTICE_BYTES)));
    assert!(matches!(
        n.notify(&big),
        Outcome::Rejected(NoticeError::TooLarge { .. })
    ));
    assert_eq!(n.stats().rejected, 2);
    n.shutdown(PATIENCE).await;
}

// ---------------------------------------------------------------------------------------
// MQTT against the real broker.

fn mqtt_url() -> Option<String> {
    let url = std::env::var("LOUPE_TEST_MQTT_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        // In CI a missing broker is a failure, never a silent pass.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and LOUPE_TEST_MQTT_URL is not set"
        );
        println!("SKIPPED: LOUPE_TEST_MQTT_URL not set");
    }
    url
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap()),
        None => (rest.to_string(), 1883),
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Subscribes to `filter` and returns once the broker acknowledged it; publishes arrive on
/// the channel as (topic, payload).
async fn subscribe(url: &str, filter: &str) -> mpsc::UnboundedReceiver<(String, Bytes)> {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
    let (host, port) = host_port(url);
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new(unique("loupe-test-sub"), host, port), 10);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if tx.send((p.topic, p.payload)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("test subscriber lost the broker: {e}"),
            }
        }
    });
    within("the subscription", subscribed).await.unwrap();
    rx
}

#[tokio::test]
async fn mqtt_publishes_the_notice_to_the_broker() {
    let Some(url) = mqtt_url() else { return };
    let base = unique("loupe-test");
    let mut rx = subscribe(&url, &format!("{base}/#")).await;
    let s = settings(
        json!({"mqtt": {"url": url, "topic": format!("{base}/{{line}}/{{verdict}}"),
                                     "qos": 1}}),
    );
    let n = Notifier::start(&s).unwrap();
    assert_eq!(
        n.notify(&notice("P-9", "line/7", &["crack"])),
        Outcome::Queued
    );

    let (topic, payload) = within("the MQTT message", rx.recv()).await.unwrap();
    assert_eq!(topic, format!("{base}/line_7/defective"));
    let body: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(body["product_id"], "P-9");
    assert_eq!(body["line"], "line/7");
    assert_eq!(body["defects"], json!(["crack"]));
    assert_eq!(body["suppressed"], 0);
    // QoS 1: counted as sent once the broker acknowledged it.
    wait_stats(&n, "sent = 1", |s| s.sent == 1).await;
    let stats = n.shutdown(PATIENCE).await;
    assert_eq!((stats.sent, stats.failed), (1, 0));
}

/// A TCP relay to the broker whose connections the test can cut.
struct Relay {
    url: String,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(broker: (String, u16)) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("mqtt://{}", listener.local_addr().unwrap());
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let conns = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let broker = broker.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(broker).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Relay { url, connections }
    }

    /// Closes every connection relayed so far (as a broker restart would).
    fn cut(&self) -> usize {
        let conns = std::mem::take(&mut *self.connections.lock().unwrap());
        for c in &conns {
            c.abort();
        }
        conns.len()
    }
}

#[tokio::test]
async fn mqtt_reconnects_when_the_broker_goes_away() {
    let Some(url) = mqtt_url() else { return };
    let base = unique("loupe-test");
    let mut rx = subscribe(&url, &format!("{base}/#")).await;
    let relay = Relay::start(host_port(&url)).await;
    let s = settings(
        json!({"mqtt": {"url": relay.url, "topic": format!("{base}/{{line}}"),
                                     "qos": 1, "max_attempts": 50, "initial_backoff": "50ms",
                                     "max_backoff": "500ms"},
                            "cooldown": "0s"}),
    );
    let n = Notifier::start(&s).unwrap();
    n.notify(&notice("P-1", "line-1", &[]));
    let (_, first) = within("the first message", rx.recv()).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&first).unwrap()["product_id"],
        "P-1"
    );
    wait_stats(&n, "sent = 1", |s| s.sent == 1).await;

    assert!(
        relay.cut() >= 1,
        "the notifier was connected through the relay"
    );
    n.notify(&notice("P-2", "line-1", &[]));
    // Delivered over a new connection (possibly twice: QoS 1 is at least once).
    let (_, second) = within("the message after reconnecting", rx.recv())
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&second).unwrap()["product_id"],
        "P-2"
    );
    let stats = wait_stats(&n, "sent = 2", |s| s.sent == 2).await;
    assert_eq!(stats.failed, 0);
    n.shutdown(PATIENCE).await;
}

/// The report node end to end: the eighth angle of a product with a loose wire makes the
/// product defective, and the engineers get one MQTT notice for it.
#[tokio::test]
async fn a_product_confirmed_defective_by_the_report_node_is_announced_once() {
    let Some(url) = mqtt_url() else { return };
    let base = unique("loupe-node");
    let mut rx = subscribe(&url, &format!("{base}/#")).await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = loupe_sdk::BuildContext {
        node_id: "report-test".into(),
        base_dir: dir.path().to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let settings = json!({
        "database": "sqlite:r.db",
        "notify": {"mqtt": {"url": url, "topic": format!("{base}/{{line}}"), "qos": 1}},
    });
    let node = loupe_sdk::factory::factory::<loupe_report::Report>()
        .build(&settings, &ctx)
        .await
        .unwrap();
    for angle in 0..8u32 {
        let label = if angle == 6 { "loose_wire" } else { "burr" };
        let ff = loupe_sdk::FlowFile::create(
            b"img".to_vec(),
            [
                ("product.id", "p00042".to_string()),
                ("camera.angle", angle.to_string()),
                ("fragment.count", "8".to_string()),
                ("line", "L3".to_string()),
                ("camera.verdict", "loose_wire".to_string()),
                ("classify.label", label.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        );
        // Each angle delivered twice: still one product, one notice.
        node.processor.process(ff.clone()).await.unwrap();
        node.processor.process(ff).await.unwrap();
    }
    let (topic, payload) = within("the MQTT notice", rx.recv()).await.unwrap();
    assert_eq!(topic, format!("{base}/L3"));
    let body: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(body["product_id"], "p00042");
    assert_eq!(body["verdict"], "defective");
    assert_eq!(body["defects"], json!(["loose_wire"]));
    assert_eq!(body["angles"], 8);
    assert_eq!(body["camera_verdicts"], 8);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "one notice per product"
    );
}

/// The same receiver over TLS (a self-signed certificate for `localhost`, made here), served
/// the way Loupe serves its own HTTP listeners; its URL and the certificate's file.
async fn tls_receiver(
    dir: &std::path::Path,
) -> (
    String,
    std::path::PathBuf,
    mpsc::UnboundedReceiver<Received>,
) {
    use loupe_sdk::serve::{Security, SecuritySettings, TlsSettings, serve_app};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (crt, key_file) = (dir.join("hook.crt"), dir.join("hook.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver {
        tx,
        script: Mutex::new(VecDeque::new()),
        otherwise: 200,
    });
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let security = Security::load(
        &SecuritySettings {
            tls: Some(TlsSettings {
                cert: crt.clone(),
                key: key_file,
                client_ca: None,
                reload_interval: Duration::from_secs(60),
            }),
            ..Default::default()
        },
        dir,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let served = serve_app(listener, app, security, "", true, std::future::pending())
        .await
        .unwrap();
    tokio::spawn(served);
    (url, crt, rx)
}

#[tokio::test]
async fn webhook_over_https_checks_the_receivers_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (url, ca, mut rx) = tls_receiver(dir.path()).await;
    // Trusting the receiver's certificate: delivered over TLS.
    let tls = json!({"tls": {"ca": ca.to_str().unwrap()}});
    let n = Notifier::start(&webhook(&url, tls)).unwrap();
    n.notify(&notice("P-9", "line-1", &["dent"]));
    assert_eq!(next(&mut rx).await.header("x-loupe-attempt"), "1");
    wait_stats(&n, "sent = 1", |s| s.sent == 1).await;
    n.shutdown(PATIENCE).await;
    // Not trusting it (the system's roots): never delivered, the handshake refuses it.
    let n = Notifier::start(&webhook(&url, json!({"max_attempts": 2}))).unwrap();
    n.notify(&notice("P-10", "line-1", &["dent"]));
    let s = wait_stats(&n, "failed = 1", |s| s.failed == 1).await;
    assert_eq!(s.sent, 0);
    assert!(rx.try_recv().is_err(), "nothing reached the receiver");
    n.shutdown(PATIENCE).await;
}

//! Nothing lost: trouble that passes — a database that is down or hung, a locked SQLite file,
//! a media directory that cannot be written, a full disk — is a *retryable* error (never a
//! `failure` output, never a hang, never a silent drop), and once the trouble is over the
//! same FlowFile is recorded exactly once. Everything here is real: the PostgreSQL server
//! named by `LOUPE_TEST_POSTGRES_URL` behind a TCP proxy this test switches between up, down
//! (connections closed) and hung (connections accepted, never answered); a real SQLite file
//! locked by a second connection; a real file where the media directory should be.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loupe_report::{JsonLinesSink, Report};
use loupe_sdk::factory::factory;
use loupe_sdk::{BuildContext, ErrorKind, FlowFile, Invoker, Output, ProcessError};
use loupe_store::{Store, Written};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn ctx(base: &Path) -> BuildContext {
    BuildContext {
        node_id: "report-durability".into(),
        base_dir: base.to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    }
}

/// The report node behind the SDK's `Invoker`, as the flow runner calls it: `Err` only for
/// retryable errors, a final error is a `failure` output.
async fn invoker(base: &Path, settings: Value) -> Invoker {
    let node = factory::<Report>()
        .build(&settings, &ctx(base))
        .await
        .unwrap();
    Invoker::new(
        node.processor,
        "report-durability",
        loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    )
}

fn photo(name: &str) -> FlowFile {
    FlowFile::create(
        b"png bytes".to_vec(),
        HashMap::from([
            ("filename".to_string(), format!("{name}.png")),
            ("mime.type".to_string(), "image/png".to_string()),
            ("product.id".to_string(), name.to_string()),
        ]),
    )
}

/// Invokes and expects a retryable `unavailable` error within `within`; returns it and how
/// long it took.
async fn expect_retryable(
    invoker: &Invoker,
    ff: &FlowFile,
    within: Duration,
) -> (ProcessError, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(within, invoker.invoke(ff.clone(), None))
        .await
        .unwrap_or_else(|_| panic!("no answer within {within:?}: the report node hangs"));
    let elapsed = started.elapsed();
    match result {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
            assert!(e.is_retryable());
            (e, elapsed)
        }
        Ok(outputs) => panic!("expected a retryable error, got outputs {outputs:?}"),
    }
}

/// Invokes and expects success: no output at all (a report outputs nothing on success).
async fn expect_recorded(invoker: &Invoker, ff: &FlowFile) {
    let outputs = tokio::time::timeout(Duration::from_secs(20), invoker.invoke(ff.clone(), None))
        .await
        .expect("no hang")
        .unwrap_or_else(|e| panic!("expected success, got {e}"));
    assert!(outputs.is_empty(), "{outputs:?}");
}

/// Log lines written while it lives (tokio tests run on one thread: the node logs here).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

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
                .with_max_level(tracing::Level::INFO)
                .finish(),
        )
    }

    /// Lines at `level` (`WARN`, `INFO`) that contain `text`.
    fn count(&self, level: &str, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(level) && l.contains(text))
            .count()
    }
}

fn postgres_url() -> Option<String> {
    let url = std::env::var("LOUPE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        // In CI a missing database is a failure, never a silent pass.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and LOUPE_TEST_POSTGRES_URL is not set"
        );
        eprintln!(
            "SKIPPED: LOUPE_TEST_POSTGRES_URL not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
    }
    url
}

fn unique_table(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

async fn drop_table(url: &str, table: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}, {table}_products, {table}_feedback"
        ))
        .await
        .unwrap();
}

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forward both ways.
    Up,
    /// Close every connection, open or new (a server that is down or restarting).
    Down,
    /// Accept, and never answer; open connections stop answering too (a hung server).
    Hung,
}

/// A TCP proxy in front of the real PostgreSQL server.
struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Up);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(socket, target, rx.clone()));
            }
        });
        Proxy {
            addr,
            mode,
            accepted,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let now = *mode.borrow_and_update();
    match now {
        Mode::Down => return,
        Mode::Hung => {
            // Hold the connection, say nothing.
            let _ = mode.wait_for(|m| *m != Mode::Hung).await;
            return;
        }
        Mode::Up => {}
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, mode.clone()) => {}
        () = pump(server_read, client_write, mode) => {}
    }
}

/// Copies `from` to `to` while up; holds the bytes while hung; stops when down.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| *m == Mode::Down) => return,
        };
        match mode.wait_for(|m| *m != Mode::Hung).await {
            Ok(m) if *m == Mode::Up => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The server's address and the same URL pointing at `proxy` instead.
async fn via_proxy(url: &str, proxy: Option<SocketAddr>) -> (SocketAddr, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let at = url[scheme_end..]
        .rfind('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    let end = url[at..].find(['/', '?']).map_or(url.len(), |i| at + i);
    let host_port = &url[at..end];
    let target = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    let target = tokio::net::lookup_host(target)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxied = match proxy {
        Some(addr) => format!("{}{addr}{}", &url[..at], &url[end..]),
        None => url.to_string(),
    };
    (target, proxied)
}

#[tokio::test]
async fn postgres_down_or_hung_is_retried_and_recorded_once_when_back() {
    let Some(url) = postgres_url() else { return };
    let (target, _) = via_proxy(&url, None).await;
    let proxy = Proxy::start(target).await;
    let (_, proxied) = via_proxy(&url, Some(proxy.addr)).await;
    let table = unique_table("loupe_durable");
    let dir = tempfile::tempdir().unwrap();
    let report = invoker(
        dir.path(),
        json!({"database": proxied, "table": table,
               "connect_timeout": "1s", "statement_timeout": "1s"}),
    )
    .await;
    let photos: Vec<FlowFile> = (0..4).map(|i| photo(&format!("p{i}"))).collect();
    expect_recorded(&report, &photos[0]).await;

    let logs = Logs::default();
    let _guard = logs.capture();
    // Down: open connections are cut and new ones closed at once; each delivery is a
    // retryable error, quickly, as often as the flow retries.
    proxy.set(Mode::Down);
    for _ in 0..3 {
        let (e, took) = expect_retryable(&report, &photos[1], Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(2), "{took:?}: {e}");
        assert!(!e.message.contains("hunter2"));
    }

    // Hung: connections are accepted and never answered: the connect timeout ends it.
    proxy.set(Mode::Hung);
    let (e, took) = expect_retryable(&report, &photos[1], Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}: {e}"
    );
    assert!(e.message.contains("connect timeout"), "{e}");

    // Back: the same FlowFile is recorded, over a new connection.
    let before = proxy.accepted();
    proxy.set(Mode::Up);
    expect_recorded(&report, &photos[1]).await;
    assert!(
        proxy.accepted() > before,
        "a new connection after the outage"
    );
    assert_eq!(
        logs.count("WARN", "database failing"),
        1,
        "one warning per outage"
    );
    assert_eq!(logs.count("INFO", "database recovered after"), 1);
    // Down 3 times and hung once (and the product sweeper may have failed too): every
    // failure after the first is a retry.
    assert!(
        (3..=5).any(|n| logs.count("INFO", &format!("{n} retries")) == 1),
        "the recovery line counts the retries"
    );

    // Hung in the middle of a connection that works: the statement timeout ends it.
    expect_recorded(&report, &photos[2]).await;
    proxy.set(Mode::Hung);
    let (e, took) = expect_retryable(&report, &photos[3], Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}: {e}"
    );
    assert!(e.message.contains("statement timeout"), "{e}");
    let before = proxy.accepted();
    proxy.set(Mode::Up);
    expect_recorded(&report, &photos[3]).await;
    assert!(
        proxy.accepted() > before,
        "the hung connection is replaced, not reused"
    );

    // Redelivery (the flow is at-least-once) adds nothing.
    for ff in &photos {
        expect_recorded(&report, ff).await;
    }
    let store = Store::open(&url, dir.path(), &table).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 4, "each photo exactly once");
    for ff in &photos {
        assert!(store.get(&ff.uuid).await.unwrap().is_some(), "{}", ff.uuid);
    }
    drop_table(&url, &table).await;
}

#[tokio::test]
async fn postgres_rejecting_the_data_is_a_failure_with_the_reason() {
    let Some(url) = postgres_url() else { return };
    let table = unique_table("loupe_rejected");
    let dir = tempfile::tempdir().unwrap();
    let report = invoker(dir.path(), json!({"database": url, "table": table})).await;
    // PostgreSQL text cannot hold a NUL character: this record can never be written.
    let bad = photo("bad").with_attr("filename", "bad\u{0}name.png");
    let outputs: Vec<Output> = report.invoke(bad.clone(), None).await.unwrap();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0].relationship, "failure");
    let failed = outputs[0].flow_file.as_ref().unwrap();
    let message = failed.attr("error.message").unwrap_or_default();
    assert!(message.contains("SQLSTATE 22"), "the reason: {message}");
    assert_eq!(failed.attr("error.kind"), Some("invalid_input"));
    assert_eq!(failed.uuid, bad.uuid);
    // The database itself is fine: the next photo is recorded.
    expect_recorded(&report, &photo("good")).await;
    let store = Store::open(&url, dir.path(), &table).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 1);
    drop_table(&url, &table).await;
}

#[tokio::test]
async fn a_locked_sqlite_database_is_retried_then_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let report = invoker(
        dir.path(),
        json!({"database": "sqlite:r.db", "statement_timeout": "300ms"}),
    )
    .await;
    let ff = photo("locked");
    // Another process holds the write lock.
    let other = rusqlite::Connection::open(dir.path().join("r.db")).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (e, took) = expect_retryable(&report, &ff, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}: {e}");
    other.execute_batch("COMMIT").unwrap();
    expect_recorded(&report, &ff).await;
    expect_recorded(&report, &ff).await;
    let store = Store::open("sqlite:r.db", dir.path(), "inspections")
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn an_unwritable_media_dir_is_retried_and_no_record_points_at_missing_media() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the media directory should be: no directory can be made under it,
    // not even by root (as with a full disk, the write fails).
    std::fs::write(dir.path().join("media"), b"not a directory").unwrap();
    let report = invoker(
        dir.path(),
        json!({"database": "sqlite:r.db", "media_dir": "media"}),
    )
    .await;
    let ff = photo("sheet");
    let logs = Logs::default();
    let _guard = logs.capture();
    for _ in 0..3 {
        let (e, _) = expect_retryable(&report, &ff, Duration::from_secs(5)).await;
        assert!(e.message.contains("media"), "{e}");
    }
    assert_eq!(
        logs.count("WARN", "media directory"),
        1,
        "one warning per outage"
    );
    let store = Store::open("sqlite:r.db", dir.path(), "inspections")
        .await
        .unwrap();
    assert_eq!(
        store.count().await.unwrap(),
        0,
        "no record without its media"
    );

    // Fixed: recorded once, pointing at the image on disk.
    std::fs::remove_file(dir.path().join("media")).unwrap();
    expect_recorded(&report, &ff).await;
    expect_recorded(&report, &ff).await;
    assert_eq!(
        logs.count("INFO", "media directory recovered after"),
        1,
        "and one line when it is over"
    );
    assert!(logs.count("INFO", "2 retries") == 1);
    assert_eq!(store.count().await.unwrap(), 1);
    let stored = store.get(&ff.uuid).await.unwrap().unwrap();
    let media = stored.record.media_path.expect("media path");
    assert_eq!(
        std::fs::read(dir.path().join("media").join(&media)).unwrap(),
        b"png bytes"
    );
    // No temporary files left behind.
    let day = dir
        .path()
        .join("media")
        .join(media.split('/').next().unwrap());
    for entry in std::fs::read_dir(day).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "{name}");
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_disk_under_the_json_lines_report_is_retried() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = invoker(dir.path(), json!({"path": "/dev/full"})).await;
    let (e, _) = expect_retryable(&report, &photo("x"), Duration::from_secs(5)).await;
    assert!(e.message.contains("cannot write"), "{e}");
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn json_lines_dedup_is_bounded_by_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let sink = JsonLinesSink::open(path.clone(), true, Some(2))
        .await
        .unwrap();
    let [a, b, c] = [photo("a"), photo("b"), photo("c")];
    assert_eq!(sink.write(a.clone()).await.unwrap(), Written::Recorded);
    assert_eq!(sink.write(b.clone()).await.unwrap(), Written::Recorded);
    assert_eq!(
        sink.write(a.clone()).await.unwrap(),
        Written::Duplicate,
        "a redelivery within the window is not written again"
    );
    assert_eq!(lines(&path).len(), 2);
    assert_eq!(sink.write(c.clone()).await.unwrap(), Written::Recorded);
    assert_eq!(sink.remembered().await, Some((2, 2)), "capacity respected");
    assert_eq!(
        sink.write(a.clone()).await.unwrap(),
        Written::Recorded,
        "past the window a uuid is written again (documented)"
    );
    assert_eq!(lines(&path).len(), 4);
    drop(sink);

    // Reopened: only the newest two uuids of the file (c, a) are remembered.
    let sink = JsonLinesSink::open(path.clone(), true, Some(2))
        .await
        .unwrap();
    assert_eq!(sink.remembered().await, Some((2, 2)));
    assert_eq!(sink.write(a).await.unwrap(), Written::Duplicate);
    assert_eq!(sink.write(c).await.unwrap(), Written::Duplicate);
    assert_eq!(sink.write(b).await.unwrap(), Written::Recorded);
    assert_eq!(lines(&path).len(), 5);

    // Many records: memory stays at the window.
    for i in 0..500 {
        sink.write(photo(&format!("n{i}"))).await.unwrap();
    }
    assert_eq!(sink.remembered().await, Some((2, 2)));

    let without = JsonLinesSink::open(dir.path().join("all.jsonl"), true, None)
        .await
        .unwrap();
    assert_eq!(without.remembered().await, None);
}

#[tokio::test]
async fn concurrent_json_lines_writes_are_all_durable_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let sink = Arc::new(
        JsonLinesSink::open(path.clone(), false, Some(1000))
            .await
            .unwrap(),
    );
    let photos: Vec<FlowFile> = (0..64).map(|i| photo(&format!("c{i}"))).collect();
    let tasks: Vec<_> = photos
        .iter()
        .cloned()
        .map(|ff| {
            let sink = sink.clone();
            tokio::spawn(async move { sink.write(ff).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Written::Recorded);
    }
    let lines = lines(&path);
    assert_eq!(lines.len(), 64);
    for line in lines {
        let record: Value = serde_json::from_str(&line).unwrap();
        assert!(photos.iter().any(|p| p.uuid == record["uuid"]));
    }
}

#[tokio::test]
async fn a_connection_the_server_terminates_is_replaced() {
    let Some(url) = postgres_url() else { return };
    let table = unique_table("loupe_terminated");
    let app = unique_table("loupe_app");
    let sep = if url.contains('?') { '&' } else { '?' };
    let named = format!("{url}{sep}application_name={app}");
    let dir = tempfile::tempdir().unwrap();
    let report = invoker(
        dir.path(),
        json!({"database": named, "table": table, "statement_timeout": "2s"}),
    )
    .await;
    let photos: Vec<FlowFile> = (0..2).map(|i| photo(&format!("t{i}"))).collect();
    expect_recorded(&report, &photos[0]).await;

    // What a server restart or an operator does to the node's connection (SQLSTATE 57P01).
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let old: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(old.len(), 1, "the node's one connection");
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&old[0]])
        .await
        .unwrap()
        .get(0);
    assert!(killed);

    // At most one retryable error (if the node notices the loss only when it uses the
    // connection), then recorded over a new connection.
    let mut retried = 0;
    loop {
        match report.invoke(photos[1].clone(), None).await {
            Ok(outputs) => {
                assert!(outputs.is_empty(), "{outputs:?}");
                break;
            }
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                retried += 1;
                assert!(retried <= 1, "the dead connection is reused: {e}");
            }
        }
    }
    let sessions: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> $2",
            &[&app, &old[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 1, "one new connection");
    expect_recorded(&report, &photos[1]).await;
    let store = Store::open(&url, dir.path(), &table).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 2);
    drop_table(&url, &table).await;
}

/// The whole chain through the runner: a camera folder, the real `capture` and `report`
/// nodes, PostgreSQL behind the proxy going down, then hung, mid-run. The runner waits the
/// outage out (no give-up), the folder is not deleted ahead of its records, and every photo
/// ends as exactly one row. `LOUPE_TEST_OUTAGE_S` sets each outage's length (default 3 s;
/// the issue's target is 300).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_waits_out_a_database_outage_and_records_every_photo_once() {
    let Some(url) = postgres_url() else { return };
    let outage = Duration::from_secs(
        std::env::var("LOUPE_TEST_OUTAGE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
    );
    let (target, _) = via_proxy(&url, None).await;
    let proxy = Proxy::start(target).await;
    let (_, proxied) = via_proxy(&url, Some(proxy.addr)).await;
    let table = unique_table("loupe_outage");
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let photos = 300;
    for i in 0..photos {
        std::fs::write(inbox.join(format!("img-{i:04}.png")), format!("photo {i}")).unwrap();
    }
    let yaml = format!(
        r#"
nodes:
  - id: camera
    type: capture
    settings: {{ directory: "{}", min_age: 0ms, poll_interval: 20ms }}
  - id: records
    type: report
    concurrency: 2
    auto_terminate: [failure]
    retry: {{ initial_backoff: 20ms, max_backoff: 500ms }}
    settings: {{ database: "{proxied}", table: {table}, connect_timeout: 1s, statement_timeout: 1s }}
connections:
  - {{ from: camera.success, to: records, back_pressure: {{ objects: 20 }} }}
"#,
        inbox.display()
    );
    let registry = loupe_sdk::Registry::new()
        .with::<loupe_capture::Capture>()
        .with::<Report>();
    let flow = loupe_flow::compile_str(&yaml, &dir.path().join("flow.yaml"), &registry)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let options = loupe_flow::runner::RunOptions {
        once: true,
        ..Default::default()
    };
    let run = tokio::spawn(async move {
        loupe_flow::runner::run(&flow, &registry, options, std::future::pending()).await
    });
    let remaining = || std::fs::read_dir(&inbox).unwrap().count();
    let started = Instant::now();
    while remaining() > photos - 20 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for mode in [Mode::Down, Mode::Hung] {
        proxy.set(mode);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let left = remaining();
        tokio::time::sleep(outage).await;
        assert_eq!(
            remaining(),
            left,
            "{mode:?}: no photo released while its record cannot be written"
        );
        proxy.set(Mode::Up);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let summary = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run recovers by itself and ends")
        .unwrap()
        .unwrap();
    assert_eq!(remaining(), 0, "every photo released");
    let records = summary.node("records").unwrap();
    assert_eq!(records.failed, 0, "nothing given up: {records:?}");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            &format!("SELECT count(*), count(DISTINCT uuid) FROM {table}"),
            &[],
        )
        .await
        .unwrap();
    let (rows, distinct): (i64, i64) = (row.get(0), row.get(1));
    drop_table(&url, &table).await;
    assert_eq!(
        (rows, distinct),
        (photos as i64, photos as i64),
        "one row per photo"
    );
}

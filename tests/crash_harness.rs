//! The crash harness: `loupe run` and a served report node are SIGKILLed (and SIGTERMed) at
//! random moments while a camera folder is processed; afterwards every photo must be exactly
//! one record — in the JSON-lines report and in the SQLite database — and the folder empty.
//!
//! Bounded for CI by default. The full run of the issue's targets:
//!
//! ```sh
//! LOUPE_CRASH_PHOTOS=10000 LOUPE_CRASH_KILLS=20 cargo test --release --test crash_harness -- --nocapture
//! ```
//!
//! `LOUPE_CRASH_SEED` repeats a run's random moments (each test prints its seed).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Served, fill_folder, loupe, wait_until};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator for the kill moments (xorshift64*).
struct Moments(u64);

impl Moments {
    fn new(test: &str) -> Self {
        let seed = env_or(
            "LOUPE_CRASH_SEED",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        eprintln!("{test}: LOUPE_CRASH_SEED={seed}");
        Moments(seed | 1)
    }

    /// A duration in `[lo, hi)` milliseconds.
    fn between(&mut self, lo: u64, hi: u64) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Duration::from_millis(lo + r % (hi - lo))
    }
}

/// A folder of photos and a flow that records them with a report node.
struct Plant {
    dir: tempfile::TempDir,
    photos: usize,
}

impl Plant {
    fn new(photos: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fill_folder(&dir.path().join("inbox"), photos);
        Plant { dir, photos }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The report node's settings: a JSON-lines file and a SQLite database.
    fn report_settings(&self) -> String {
        format!(
            "{{ path: \"{}\", database: \"sqlite:{}\" }}",
            self.path("report.jsonl").display(),
            self.path("report.db").display()
        )
    }

    /// Writes the flow; `report` is the report node's body (settings or endpoint).
    fn flow(&self, after: &str, report: &str) -> PathBuf {
        let done = self.path("done");
        let after = match after {
            "move" => format!("after: move, move_to: \"{}\"", done.display()),
            _ => "after: delete".to_string(),
        };
        let flow = self.path("flow.yaml");
        std::fs::write(
            &flow,
            format!(
                r#"
name: crash-harness
nodes:
  - id: camera
    type: capture
    settings: {{ directory: "{}", min_age: 0ms, poll_interval: 20ms, {after} }}
  - id: records
    type: report
    concurrency: 4
    auto_terminate: [failure]
    {report}
connections:
  - {{ from: camera.success, to: records, back_pressure: {{ objects: 200 }} }}
"#,
                self.path("inbox").display()
            ),
        )
        .unwrap();
        flow
    }

    fn run(&self, flow: &Path, once: bool) -> Child {
        let mut cmd = loupe();
        cmd.args(["run", "--progress", "off"]);
        if once {
            cmd.arg("--once");
        }
        cmd.arg(flow)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Records in the JSON-lines report (a line torn by a kill is no record).
    fn jsonl_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("report.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Finishes with `--once` and checks exactly-once: every photo one record in the
    /// JSON-lines report and in the database, the folder empty.
    fn check_exactly_once(&self, flow: &Path) {
        let out = self.run(flow, true).wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records = self.jsonl_records();
        let mut per_name: HashMap<String, usize> = HashMap::new();
        for r in &records {
            let name = r["attributes"]["filename"].as_str().unwrap().to_string();
            *per_name.entry(name).or_default() += 1;
        }
        let lost = (0..self.photos)
            .filter(|i| !per_name.contains_key(&format!("img-{i:05}.png")))
            .count();
        let duplicated = per_name.values().filter(|&&n| n > 1).count();
        assert_eq!((lost, duplicated), (0, 0), "JSON-lines: lost, duplicated");
        assert_eq!(records.len(), self.photos);
        let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let db = format!("sqlite:{}", self.path("report.db").display());
            let store = loupe_store::Store::open(&db, self.dir.path(), "inspections")
                .await
                .unwrap();
            store.count().await.unwrap()
        });
        assert_eq!(rows as usize, self.photos, "database: one row per photo");
        assert_eq!(std::fs::read_dir(self.path("inbox")).unwrap().count(), 0);
    }
}

fn sigkill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn signal(child: &Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Kills the runner `kills` times at random moments, then lets a `--once` run finish.
fn runner_kills(after: &str) {
    // Enough that most kills land mid-run: capture drains its backlog without rescanning,
    // so 1500 photos can be through before the later kills.
    let photos = env_or("LOUPE_CRASH_PHOTOS", 4000) as usize;
    let kills = env_or("LOUPE_CRASH_KILLS", 5);
    let plant = Plant::new(photos);
    let flow = plant.flow(after, &format!("settings: {}", plant.report_settings()));
    let mut moments = Moments::new(&format!("runner_kills({after})"));
    let mut mid_run = 0;
    for _ in 0..kills {
        let mut run = plant.run(&flow, false);
        std::thread::sleep(moments.between(100, 600));
        sigkill(&mut run);
        if plant.jsonl_records().len() < photos {
            mid_run += 1;
        }
    }
    assert!(
        mid_run >= kills.min(2),
        "only {mid_run} kills happened mid-run (raise LOUPE_CRASH_PHOTOS on a fast machine)"
    );
    plant.check_exactly_once(&flow);
    if after == "move" {
        assert_eq!(
            std::fs::read_dir(plant.path("done")).unwrap().count(),
            photos
        );
    }
}

#[test]
fn sigkilled_runner_loses_and_duplicates_nothing_after_delete() {
    runner_kills("delete");
}

#[test]
fn sigkilled_runner_loses_and_duplicates_nothing_after_move() {
    runner_kills("move");
}

#[test]
fn sigkilled_report_node_loses_and_duplicates_nothing() {
    let photos = env_or("LOUPE_CRASH_PHOTOS", 600) as usize;
    let kills = env_or("LOUPE_CRASH_KILLS", 5);
    let plant = Plant::new(photos);
    let config = plant.path("report-node.yaml");
    std::fs::write(&config, format!("settings: {}\n", plant.report_settings())).unwrap();
    let mut node = Served::start("report", &config, "127.0.0.1:0");
    let addr = node.addr.clone();
    let flow = plant.flow(
        "delete",
        &format!(
            "endpoint: {}\n    retry: {{ initial_backoff: 20ms, max_backoff: 200ms }}",
            node.endpoint()
        ),
    );
    let mut moments = Moments::new("sigkilled_report_node");
    let run = plant.run(&flow, true);
    for _ in 0..kills {
        std::thread::sleep(moments.between(100, 700));
        node.kill();
        std::thread::sleep(moments.between(50, 300));
        node = Served::start("report", &config, &addr);
    }
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    plant.check_exactly_once(&flow);
    drop(node);
}

#[test]
fn sigterm_drains_within_five_seconds_and_loses_nothing() {
    let photos = env_or("LOUPE_CRASH_PHOTOS", 600) as usize;
    let terms = env_or("LOUPE_CRASH_TERMS", 3);
    let plant = Plant::new(photos);
    let flow = plant.flow("delete", &format!("settings: {}", plant.report_settings()));
    let mut moments = Moments::new("sigterm_drains");
    for _ in 0..terms {
        let run = plant.run(&flow, false);
        std::thread::sleep(moments.between(300, 1000));
        signal(&run, "-TERM");
        let asked = Instant::now();
        let out = run.wait_with_output().unwrap();
        let took = asked.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(took < Duration::from_secs(5), "drain took {took:?}");
    }
    plant.check_exactly_once(&flow);
}

#[test]
fn a_second_signal_stops_at_once_and_still_loses_nothing() {
    let plant = Plant::new(300);
    let config = plant.path("report-node.yaml");
    std::fs::write(&config, format!("settings: {}\n", plant.report_settings())).unwrap();
    let mut node = Served::start("report", &config, "127.0.0.1:0");
    let addr = node.addr.clone();
    let flow = plant.flow(
        "delete",
        &format!(
            "endpoint: {}\n    retry: {{ initial_backoff: 20ms, max_backoff: 200ms }}",
            node.endpoint()
        ),
    );
    let mut cmd = loupe();
    let run = cmd
        .args(["run", "--progress", "off", "--drain-timeout", "60s"])
        .arg(&flow)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || !plant
        .jsonl_records()
        .is_empty()));
    // The report node is down: the drain cannot finish.
    node.kill();
    signal(&run, "-TERM");
    std::thread::sleep(Duration::from_millis(500));
    signal(&run, "-TERM");
    let asked = Instant::now();
    let out = run.wait_with_output().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _node = Served::start("report", &config, &addr);
    plant.check_exactly_once(&flow);
}

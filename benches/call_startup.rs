//! `loupe call` as NiFi's ExecuteStreamCommand runs it: one new process per FlowFile, a thin
//! client of a long-running node (the model stays loaded there). Measures, against a real
//! `loupe serve classify` with the shipped coil classifier:
//!
//! - `loupe --version`: process start-up alone;
//! - `loupe call ENDPOINT < photo.png`: start-up + connect + one classification + exit;
//! - the same classification over an open gRPC channel (what the process adds is the rest).
//!
//! Run: `cargo bench --bench call_startup` (needs the ONNX Runtime library in `.venv`;
//! `LOUPE_CALLS` sets the runs per point, default 50). Figures go in `benches/README.md`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::{FlowFile, Processor};

/// A `loupe serve` child, killed on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loupe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loupe"));
    cmd.env("LOUPE_LOG", "warn");
    cmd
}

fn serve(repo: &std::path::Path) -> (Served, String) {
    let mut child = loupe()
        .args(["serve", "classify", "--listen", "127.0.0.1:0", "--set"])
        .arg(format!(
            "settings.model={}",
            repo.join("models/coil-classifier").display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start loupe serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Served(child), format!("http://{addr}"))
}

/// Milliseconds: mean, p50, p90, max.
fn stats(mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    format!(
        "mean {mean:6.2} ms   p50 {:6.2}   p90 {:6.2}   max {:6.2}",
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

fn time_process(mut command: impl FnMut() -> Command, input: &[u8], runs: usize) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let mut child = command()
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input)
                .expect("stdin");
            let status = child.wait().expect("wait");
            assert!(status.success(), "{status}");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let runs: usize = std::env::var("LOUPE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let photos = tempfile::tempdir().expect("tempdir");
    let status = loupe()
        .args(["synth", "coils", "--products", "1", "--seed", "7", "--out"])
        .arg(photos.path())
        .output()
        .expect("synth");
    assert!(status.status.success());
    let photo = std::fs::read(photos.path().join("images/p00000_a0.png")).expect("photo");
    let (_node, endpoint) = serve(&repo);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let node = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match RemoteNode::connect(std::slice::from_ref(&endpoint), &ClientOptions::default())
                .await
            {
                Ok(node) => break node,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("node not ready: {e}"),
            }
        }
    });
    // Wait until the node is ready (model loaded and warmed up), then warm it some more.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut warm = 0;
    while warm < 5 {
        match runtime.block_on(node.process(FlowFile::create(photo.clone(), Default::default()))) {
            Ok(_) => warm += 1,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("node not ready: {e}"),
        }
    }
    let version = time_process(
        || {
            let mut c = loupe();
            c.arg("--version");
            c
        },
        b"",
        runs,
    );
    let call = time_process(
        || {
            let mut c = loupe();
            c.args(["call", &endpoint, "--output", "json"]);
            c
        },
        &photo,
        runs,
    );
    let channel: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            runtime
                .block_on(node.process(FlowFile::create(photo.clone(), Default::default())))
                .expect("process");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "loupe call start-up ({runs} runs each, coil photo {} bytes)",
        photo.len()
    );
    println!("  loupe --version                 {}", stats(version));
    println!("  loupe call (new process)        {}", stats(call));
    println!("  Process over an open channel    {}", stats(channel));
}

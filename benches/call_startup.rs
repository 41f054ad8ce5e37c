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

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use loupe_sdk::{FlowFile, Processor};

fn loupe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loupe"));
    cmd.env("LOUPE_LOG", "warn");
    cmd
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
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "settings:\n  model: {}\n",
        common::repo().join("models/coil-classifier").display()
    );
    let (_node, endpoint) = common::serve("classify", &config, dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Wait until the node is ready (model loaded and warmed up), then warm it some more.
    let node = runtime.block_on(common::connect_ready(&endpoint, &photo));
    for _ in 0..4 {
        runtime
            .block_on(node.process(FlowFile::create(photo.clone(), Default::default())))
            .expect("warm-up");
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

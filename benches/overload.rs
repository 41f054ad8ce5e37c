//! Overload: a real `loupe serve classify` (the shipped coil classifier) fed camera-size JPEGs
//! (2048 x 2048, ~2 MB) by closed-loop gRPC clients, first at a steady load, then at ten times
//! as many clients, then left idle. Measures the node's resident memory (`VmRSS`, sampled
//! every 100 ms) and the good answers per second in each phase; a refused call
//! (RESOURCE_EXHAUSTED) is retried by its client after 10 ms, as an impatient client would.
//!
//! Prints, against issue 14's targets: the overload phase's peak RSS over the steady
//! phase's, the RSS 30 s after the overload over the baseline before it, and the good answers
//! per second under overload over the steady phase's.
//!
//! Run: `cargo bench --bench overload` (needs the ONNX Runtime library in `.venv`).
//! `LOUPE_LOAD_SECONDS` (default 20) per loaded phase, `LOUPE_OVERLOAD_CLIENTS` (default 8:
//! steady 8, overload 80), `LOUPE_LOAD_IMAGE` (default: a generated 2048 x 2048 coil JPEG),
//! `LOUPE_BIN` (another `loupe` build to compare).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loupe_sdk::client::RemoteNode;
use loupe_sdk::{ErrorKind, FlowFile, Processor};

/// The node's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples the RSS every 100 ms until `stop`; returns the largest.
fn peak_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(100));
        }
        peak.max(rss_kib(pid))
    })
}

/// A 2048 x 2048 coil photo as the camera's JPEG.
fn camera_jpeg(dir: &std::path::Path) -> Vec<u8> {
    let options = loupe_synth::CoilOptions {
        seed: 42,
        products: 1,
        size: 2048,
        format: "jpg".parse().expect("format"),
        ..Default::default()
    };
    let out = dir.join("coils");
    loupe_synth::generate_coils(&options, &out).expect("generate");
    std::fs::read(out.join("images/p00000_a0.jpg")).expect("read the JPEG")
}

/// One loaded phase: `clients` closed-loop clients for `seconds`; good answers, refusals and
/// the peak RSS.
async fn phase(
    node: Arc<RemoteNode>,
    image: Arc<Vec<u8>>,
    clients: usize,
    seconds: f64,
    pid: u32,
) -> (f64, u64, u64) {
    let (good, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = peak_rss(pid, stop.clone());
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (node, image, good, refused) =
                (node.clone(), image.clone(), good.clone(), refused.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let flow_file = FlowFile::create(image.as_slice().to_vec(), HashMap::new());
                    match node.process(flow_file).await {
                        Ok(outputs) => {
                            assert_eq!(outputs[0].relationship, "success");
                            good.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.kind == ErrorKind::Overloaded => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        task.await.expect("client");
    }
    let rate = good.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    (
        rate,
        refused.load(Ordering::Relaxed),
        sampler.join().expect("sampler"),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let number = |name: &str, default: f64| -> f64 {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let seconds = number("LOUPE_LOAD_SECONDS", 20.0);
    let steady = number("LOUPE_OVERLOAD_CLIENTS", 8.0) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let image = Arc::new(match std::env::var("LOUPE_LOAD_IMAGE") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        Err(_) => camera_jpeg(dir.path()),
    });
    let config = format!(
        "settings:\n  model: {}\n  serving:\n    reload_interval: 0s\n",
        common::repo().join("models/coil-classifier").display()
    );
    let (served, endpoint) = common::serve("classify", &config, dir.path());
    let pid = served.0.id();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let node = Arc::new(runtime.block_on(common::connect_ready(&endpoint, &image)));
    runtime.block_on(phase(node.clone(), image.clone(), steady, 2.0, pid));
    std::thread::sleep(Duration::from_secs(2));
    let baseline = rss_kib(pid);
    let (steady_rate, steady_refused, steady_peak) =
        runtime.block_on(phase(node.clone(), image.clone(), steady, seconds, pid));
    let (over_rate, over_refused, over_peak) = runtime.block_on(phase(
        node.clone(),
        image.clone(),
        10 * steady,
        seconds,
        pid,
    ));
    std::thread::sleep(Duration::from_secs(30));
    let after = rss_kib(pid);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "image {} bytes; binary {}",
        image.len(),
        common::loupe_bin().display()
    );
    println!("phase      clients  good/s  refused  peak RSS MiB");
    println!(
        "baseline   {:>7} {:>7} {:>8} {:>13.1}",
        0,
        "-",
        "-",
        mib(baseline)
    );
    println!(
        "steady     {steady:>7} {steady_rate:>7.1} {steady_refused:>8} {:>13.1}",
        mib(steady_peak)
    );
    println!(
        "overload   {:>7} {over_rate:>7.1} {over_refused:>8} {:>13.1}",
        10 * steady,
        mib(over_peak)
    );
    println!(
        "after 30 s {:>7} {:>7} {:>8} {:>13.1}",
        0,
        "-",
        "-",
        mib(after)
    );
    println!(
        "overload peak / steady peak {:.2} (target <= 1.3); after / baseline {:.2} (target <= 1.1); good answers under overload / steady {:.2} (target >= 0.9)",
        over_peak as f64 / steady_peak as f64,
        after as f64 / baseline as f64,
        over_rate / steady_rate
    );
}

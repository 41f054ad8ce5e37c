//! Whole-node load test: a real `loupe serve classify` process with the shipped coil
//! classifier, driven over gRPC (`loupe.v1.Processor/Process`) by closed-loop clients at
//! concurrency 1, 8 and 32, with dynamic batching off (`serving.max_batch: 1`) and on
//! (`serving.max_batch: 8`), with one session (`serving.sessions: 1`: one inference at a time)
//! and with the default (one per core; `LOUPE_LOAD_SESSIONS=1,0` chooses). Prints images per second and latency percentiles; figures and the
//! machine are recorded in `benches/README.md`.
//!
//! Run: `cargo bench --bench node_load` (needs the ONNX Runtime library in `.venv`;
//! `LOUPE_LOAD_SECONDS` sets the seconds per point, default 10; `LOUPE_LOAD_IMAGE` sends
//! that image file instead of the 256 x 256 coil PNG).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Served;
use hdrhistogram::Histogram;
use loupe_sdk::client::RemoteNode;
use loupe_sdk::{FlowFile, Processor};

fn serve(max_batch: usize, sessions: usize) -> (Served, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "settings:\n  model: {}\n  serving:\n    max_batch: {max_batch}\n    sessions: {sessions}\n    max_batch_delay: 2ms\n    reload_interval: 0s\nmax_in_flight: 256\n",
        common::repo().join("models/coil-classifier").display()
    );
    common::serve("classify", &config, dir.path())
}

fn coil_png() -> Vec<u8> {
    let options = loupe_synth::CoilOptions {
        seed: 42,
        products: 8,
        burr: 1.0,
        loose_wire: 0.0,
        both: 0.0,
        ..Default::default()
    };
    loupe_synth::coil_photo(&options, 3, 2)
        .expect("render")
        .png()
        .expect("encode")
}

async fn point(
    node: Arc<RemoteNode>,
    png: Arc<Vec<u8>>,
    concurrency: usize,
    seconds: f64,
) -> (f64, Histogram<u64>) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (node, png) = (node.clone(), png.clone());
            tokio::spawn(async move {
                let mut latencies = Histogram::<u64>::new(3).expect("histogram");
                while Instant::now() < until {
                    let started = Instant::now();
                    let flow_file = FlowFile::create(png.as_slice().to_vec(), HashMap::new());
                    let outputs = node.process(flow_file).await.expect("process");
                    assert_eq!(outputs[0].relationship, "success");
                    latencies
                        .record(started.elapsed().as_micros() as u64)
                        .expect("record");
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    for client in clients {
        all.add(client.await.expect("client")).expect("add");
    }
    (all.len() as f64 / started.elapsed().as_secs_f64(), all)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` from cargo's harness protocol is
    // answered with nothing to list.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds: f64 = std::env::var("LOUPE_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // LOUPE_LOAD_IMAGE: send this image file instead (a camera-size JPEG, say).
    let png = Arc::new(match std::env::var("LOUPE_LOAD_IMAGE") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        Err(_) => coil_png(),
    });
    // `serving.sessions`: 1 (one inference at a time, the node before sessions) and 0 (the
    // default: one per core). Set LOUPE_LOAD_SESSIONS=0 to measure only the default.
    let sessions: Vec<usize> = match std::env::var("LOUPE_LOAD_SESSIONS") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![1, 0],
    };
    println!("sessions max_batch concurrency   images/s   p50 ms   p90 ms   p99 ms");
    for (sessions, max_batch) in sessions
        .iter()
        .flat_map(|&s| [1usize, 8].map(move |b| (s, b)))
    {
        let (_served, endpoint) = serve(max_batch, sessions);
        // Wait until the node has warmed its model up, then warm the connection before
        // measuring.
        let node = Arc::new(runtime.block_on(common::connect_ready(&endpoint, &png)));
        runtime.block_on(point(node.clone(), png.clone(), 2, 1.0));
        for concurrency in [1usize, 8, 32] {
            let (rate, h) =
                runtime.block_on(point(node.clone(), png.clone(), concurrency, seconds));
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{sessions:>8} {max_batch:>9} {concurrency:>11} {rate:>10.1} {:>8.2} {:>8.2} {:>8.2}",
                ms(0.5),
                ms(0.9),
                ms(0.99)
            );
        }
    }
}

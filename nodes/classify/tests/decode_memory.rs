//! Peak memory of a served classify node under concurrent decompression bombs.
//!
//! Six 16000x16000 PNGs of about 200 KB each (256 MB once decoded as 8-bit grey, and three
//! times that as the RGB the model takes) arrive at once over gRPC. Each must be refused from
//! its header with a reason, and the process's peak resident memory (`VmHWM` in
//! `/proc/self/status`, ONNX Runtime and the model included) must stay under 600 MB. Before
//! the decoder limits, each such request took about 1 GB.
//!
//! Its own test binary, so no other test's memory counts. Run it with
//! `cargo test -p loupe-classify --test decode_memory -- --nocapture` to see the figures.

mod common;

use common::{MODEL, build, connect, flow_file, ort_available, peak_rss_bytes, png, serve_node};
use image::Rgb;
use loupe_sdk::Processor;
use serde_json::json;

const MB: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_concurrent_bombs_are_refused_in_under_600_mb() {
    if !ort_available() {
        return;
    }
    let served = serve_node(build(json!({ "model": MODEL })).await, 64).await;
    let remote = connect(&served.addr).await;
    // Warm up: one real image through the whole path.
    let warm = remote
        .process(flow_file(png(64, 48, Rgb([0, 0, 255]))))
        .await
        .unwrap();
    assert_eq!(warm[0].relationship, "success");
    let before = peak_rss_bytes();

    let bomb = loupe_sdk::imaging::testing::zero_png(16_000, 16_000);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let remote = remote.clone();
            let input = flow_file(bomb.clone());
            tokio::spawn(async move { remote.process(input).await })
        })
        .collect();
    for call in calls {
        let outputs = call.await.unwrap().expect("an output, not an error");
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].relationship, "failure");
        let out = outputs[0].flow_file.as_ref().unwrap();
        assert_eq!(out.attr(loupe_sdk::attr::ERROR_KIND), Some("too_large"));
        assert!(
            out.attr(loupe_sdk::attr::ERROR_MESSAGE)
                .unwrap()
                .contains("16000x16000 = 256000000 pixels exceeds the limit"),
            "{:?}",
            out.attributes
        );
    }
    // Still serving.
    let after = remote
        .process(flow_file(png(64, 48, Rgb([0, 0, 255]))))
        .await
        .unwrap();
    assert_eq!(after[0].relationship, "success");

    let peak = peak_rss_bytes();
    eprintln!(
        "peak RSS (VmHWM): {} MB before the bombs, {} MB after 6 concurrent bombs",
        before / MB,
        peak / MB
    );
    assert!(peak < 600 * MB, "peak RSS {} MB is over 600 MB", peak / MB);
    served.stop().await;
}

//! Helpers for the decoding-limit tests: ONNX Runtime, a node served in-process, FlowFiles.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use loupe_classify::Classify;
use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::onnx;
use loupe_sdk::serve::{ServeError, ServeOptions, serve};
use loupe_sdk::{BuildContext, FlowFile, Node, Output, factory::factory};
use tokio::sync::oneshot;

/// The tiny fixed-weight classifier (`models/tiny-classifier`): red is `burr`, green `ok`,
/// blue `loose_wire`.
pub const MODEL: &str = "tiny-classifier";

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// See [`onnx::available_for_tests`].
pub fn ort_available() -> bool {
    onnx::available_for_tests()
}

/// Builds a classify node (not started: serving starts it).
pub async fn build(settings: serde_json::Value) -> Node {
    let ctx = BuildContext {
        node_id: "classify-limits-test".to_string(),
        base_dir: models_dir(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    factory::<Classify>()
        .build(&settings, &ctx)
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"))
}

/// A node served on a free port (Processor service and its extensions), until stopped.
pub struct Served {
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Served {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("serve task").expect("serve");
    }
}

/// Serves `node` as `loupe serve` does, with `max_in_flight` permits.
pub async fn serve_node(node: Node, max_in_flight: usize) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let options = ServeOptions {
        node_id: "classify-limits".into(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
        max_in_flight,
        drain_timeout: Duration::from_secs(5),
        attributes: Default::default(),
        security: Default::default(),
    };
    let extensions = node.server_extensions();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve(node, options, listener, shutdown, extensions));
    Served {
        addr,
        stop: Some(stop),
        task,
    }
}

/// A client of a served node, once it answers `Describe` and is ready (its model warmed up:
/// once per session).
pub async fn connect(addr: &str) -> RemoteNode {
    let node = RemoteNode::connect(&[addr.to_string()], &ClientOptions::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let readiness = node
            .fetch_description()
            .await
            .map(|d| d.readiness)
            .unwrap_or_default();
        if readiness == loupe_sdk::pb::Readiness::Ready as i32 {
            return node;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node at {addr} not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn flow_file(content: Vec<u8>) -> FlowFile {
    FlowFile::create(
        content,
        HashMap::from([("filename".to_string(), "part.png".to_string())]),
    )
}

pub fn png(width: u32, height: u32, colour: Rgb<u8>) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, colour))
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encode");
    bytes.into_inner()
}

/// The one output of a call, which must go to `relationship`.
pub fn single(mut outputs: Vec<Output>, relationship: &str) -> FlowFile {
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let output = outputs.remove(0);
    assert_eq!(
        output.relationship,
        relationship,
        "{:?}",
        output.flow_file.as_ref().map(|f| &f.attributes)
    );
    output.flow_file.expect("a FlowFile")
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

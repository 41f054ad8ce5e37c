//! What the whole-node benchmarks share: a `loupe serve` child process and the wait for its
//! model to be ready.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::{FlowFile, Processor};

/// A `loupe serve` child, killed on drop.
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository root (model paths in configurations are absolute from it).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `loupe` binary to serve with: `LOUPE_BIN` (to compare another build), else this
/// package's own.
pub fn loupe_bin() -> PathBuf {
    std::env::var_os("LOUPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_loupe")))
}

/// Starts `loupe serve NODE_TYPE` with this configuration YAML on a free loopback port;
/// returns the child and its `http://` endpoint.
pub fn serve(node_type: &str, config_yaml: &str, dir: &Path) -> (Served, String) {
    let config = dir.join(format!("{node_type}.yaml"));
    std::fs::write(&config, config_yaml).expect("config");
    let mut child = Command::new(loupe_bin())
        .args(["serve", node_type, "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("LOUPE_LOG", "warn")
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

/// Connects to `endpoint` and waits until the node has warmed its model up (a first image
/// processed), for at most two minutes.
pub async fn connect_ready(endpoint: &str, image: &[u8]) -> RemoteNode {
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let node = RemoteNode::connect(&[endpoint.to_string()], &options)
        .await
        .expect("connect");
    let started = Instant::now();
    loop {
        let flow_file = FlowFile::create(image.to_vec(), HashMap::new());
        match node.process(flow_file).await {
            Ok(_) => return node,
            Err(e) if started.elapsed() < Duration::from_secs(120) => {
                eprintln!("waiting for the node: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the node never became ready: {e}"),
        }
    }
}

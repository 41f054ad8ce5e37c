//! Helpers shared by the integration tests: the `loupe` binary, served nodes, flows.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `loupe` binary cargo built for these tests.
pub fn loupe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loupe"));
    cmd.env("LOUPE_LOG", "warn");
    cmd
}

/// Runs `loupe run --once --progress off FLOW` and asserts it succeeded.
pub fn run_once(flow: &Path) {
    let out = loupe()
        .args(["run", "--once", "--progress", "off"])
        .arg(flow)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when ONNX Runtime loads (tests that need it skip otherwise; with `CI=true` they fail):
/// see [`loupe_sdk::onnx::available_for_tests`].
pub fn onnxruntime_available() -> bool {
    loupe_sdk::onnx::available_for_tests()
}

/// A TCP port free on 127.0.0.1 right now (the OS picks it; another process could take it
/// before it is used, which the OS makes unlikely by not reusing it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Copies a shipped flow file to `to`, moving its dashboard and upload ports to free ones so
/// tests running at once (and a demo running by hand) never collide.
pub fn copy_flow_with_free_ports(flow: &Path, to: &Path) {
    let mut text = std::fs::read_to_string(flow).unwrap();
    for port in ["8090", "8091", "8092", "8093"] {
        text = text.replace(
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{}", free_port()),
        );
    }
    std::fs::write(to, text).unwrap();
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `loupe serve` process; killed when dropped.
pub struct Served {
    pub child: Child,
    pub addr: String,
}

impl Served {
    /// Starts `loupe serve NODE_TYPE` with a YAML config on `listen` and waits for its port.
    pub fn start(node_type: &str, config: &Path, listen: &str) -> Served {
        let mut child = loupe()
            .args(["serve", node_type, "--config"])
            .arg(config)
            .args(["--listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start loupe serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from loupe serve: {line:?}"))
            .to_string();
        Served { child, addr }
    }

    /// `http://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, no drain: what a crash looks like.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `n` small files named `img-NNNNN.png` (content is just bytes; capture does not
/// decode) into `dir`.
pub fn fill_folder(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("img-{i:05}.png")), format!("image {i}")).unwrap();
    }
}

/// Reads a JSON-lines report into values.
pub fn read_report(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until `f` holds, up to `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

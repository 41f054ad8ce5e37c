//! The same flow gives identical outputs with `classify` in-process and as a `loupe serve`
//! process; `loupe call` gets the same verdict from the served node.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{Served, loupe, onnxruntime_available, read_report, repo, run_once};

fn write_images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let dominant = i % 3;
        let img = image::RgbImage::from_fn(40, 40, |x, y| {
            let t = ((x + y + i as u32) % 30) as u8;
            let mut px = [20 + t, 20 + t, 20 + t];
            px[dominant] = 200 + t / 2;
            image::Rgb(px)
        });
        img.save(dir.join(format!("cam-{i:03}.png"))).unwrap();
    }
    // A corrupt image: must end on `failure` with a reason, in both set-ups alike.
    std::fs::write(dir.join("cam-corrupt.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
}

fn flow(dir: &Path, inbox: &Path, report: &Path, classify_extra: &str) -> std::path::PathBuf {
    let model = repo().join("models/tiny-classifier");
    let path = dir.join("flow.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
nodes:
  - id: camera
    type: capture
    settings: {{ directory: "{inbox}", min_age: 50ms }}
  - id: classify
    type: classify
    concurrency: 2
{classify_extra}
    settings: {{ model: "{model}" }}
  - id: records
    type: report
    auto_terminate: [failure]
    settings: {{ path: "{report}" }}
connections:
  - {{ from: camera.success, to: classify }}
  - {{ from: classify.success, to: records }}
  - {{ from: classify.failure, to: records }}
"#,
            inbox = inbox.display(),
            model = model.display(),
            report = report.display(),
        ),
    )
    .unwrap();
    path
}

/// Records keyed by filename, without what differs between runs by nature.
fn comparable(report: &Path) -> BTreeMap<String, serde_json::Value> {
    read_report(report)
        .into_iter()
        .map(|mut r| {
            let attrs = r["attributes"].as_object_mut().unwrap();
            for volatile in [
                "traceparent",
                "tracestate",
                "absolute.path",
                "capture.directory",
                "file.lastModifiedTime",
            ] {
                attrs.remove(volatile);
            }
            let name = attrs["filename"].as_str().unwrap().to_string();
            (name, r["attributes"].take())
        })
        .collect()
}

#[test]
fn in_process_and_served_classify_give_identical_outputs() {
    if !onnxruntime_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    let (inbox_a, report_a) = (
        dir.path().join("a/inbox"),
        dir.path().join("a/report.jsonl"),
    );
    write_images(&inbox_a, 30);
    let flow_a = flow(&dir.path().join("a"), &inbox_a, &report_a, "");
    run_once(&flow_a);

    let config = dir.path().join("classify.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  model: \"{}\"\n",
            repo().join("models/tiny-classifier").display()
        ),
    )
    .unwrap();
    let node = Served::start("classify", &config, "127.0.0.1:0");
    // The node answers Describe while it is still warming up (readiness `starting`).
    let describe = || {
        let out = loupe().args(["describe", &node.addr]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let mut described = describe();
    for _ in 0..300 {
        if described["readiness"] == "ready" {
            break;
        }
        assert_eq!(described["readiness"], "starting");
        std::thread::sleep(std::time::Duration::from_millis(100));
        described = describe();
    }
    assert_eq!(described["node_type"], "classify");
    assert_eq!(described["readiness"], "ready");
    assert_eq!(described["max_message_bytes"], 64 * 1024 * 1024);
    let rels: Vec<&str> = described["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(rels, ["success", "failure"]);
    assert!(described["settings_schema"]["properties"]["model"].is_object());
    let (inbox_b, report_b) = (
        dir.path().join("b/inbox"),
        dir.path().join("b/report.jsonl"),
    );
    write_images(&inbox_b, 30);
    let flow_b = flow(
        &dir.path().join("b"),
        &inbox_b,
        &report_b,
        &format!("    endpoint: {}", node.endpoint()),
    );
    run_once(&flow_b);

    let (a, b) = (comparable(&report_a), comparable(&report_b));
    assert_eq!(a.len(), 31);
    assert_eq!(a, b, "in-process and served outputs differ");
    let corrupt = &a["cam-corrupt.png"];
    assert_eq!(corrupt["error.kind"], "invalid_input");
    assert!(
        corrupt["error.message"]
            .as_str()
            .unwrap()
            .contains("decode")
    );
    assert_eq!(a["cam-001.png"]["classify.label"], "ok");

    // `loupe call` against the same node: same verdict, content passed through.
    let image = std::fs::read(repo().join("models/tiny-classifier").join("model.yaml")).ok();
    assert!(image.is_some());
    let png = {
        let mut buf = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(32, 32, image::Rgb([20, 220, 20]))
            .write_to(&mut buf, image::ImageFormat::Png)
            .unwrap();
        buf.into_inner()
    };
    let attrs_file = dir.path().join("attrs.json");
    let mut call = loupe()
        .args([
            "call",
            &node.endpoint(),
            "--attr",
            "camera.id=cam7",
            "--attributes-out",
        ])
        .arg(&attrs_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    call.stdin.take().unwrap().write_all(&png).unwrap();
    let out = call.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, png, "content passes through classify unchanged");
    let attrs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&attrs_file).unwrap()).unwrap();
    let first = &attrs["outputs"][0];
    assert_eq!(first["relationship"], "success");
    assert_eq!(first["attributes"]["classify.label"], "ok");
    assert_eq!(first["attributes"]["camera.id"], "cam7");

    // `--output json`: the outputs as one JSON line on stdout (ExecuteStreamCommand's "Output
    // Destination Attribute"), nothing on stderr.
    let mut call = loupe()
        .args(["call", &node.endpoint(), "--output", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    call.stdin.take().unwrap().write_all(&png).unwrap();
    let out = call.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outputs"][0]["attributes"]["classify.label"], "ok");
    assert_eq!(json["outputs"][0]["size"], png.len());

    // A corrupt image: exit code 2, the reason on stderr.
    let mut call = loupe()
        .args(["call", &node.endpoint()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    call.stdin.take().unwrap().write_all(b"garbage").unwrap();
    let out = call.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot decode image"));
}

#[test]
fn call_to_an_unreachable_node_exits_3_with_the_reason() {
    let out = loupe()
        .args(["call", "http://127.0.0.1:1", "--timeout", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}

#[test]
fn run_with_an_unreachable_endpoint_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    let flow = dir.path().join("flow.yaml");
    std::fs::write(
        &flow,
        format!(
            r#"
nodes:
  - {{ id: camera, type: capture, settings: {{ directory: "{}" }} }}
  - {{ id: records, type: report, endpoint: "http://127.0.0.1:1" }}
connections:
  - {{ from: camera.success, to: records }}
"#,
            dir.path().join("in").display()
        ),
    )
    .unwrap();
    let out = loupe()
        .args(["run", "--once", "--connect-timeout", "1"])
        .arg(&flow)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`records`") && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
}

//! `loupe dataset export` over a small report database: the reviewed images land in one
//! folder per latest-review label with a manifest and counts; unreviewed, earlier-reviewed
//! and image-less records are left out; the split keeps each product together; a non-empty
//! `--out` and a bad `--since` are refused. No ONNX Runtime needed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::loupe;
use loupe_report::MediaStore;
use loupe_sdk::FlowFile;
use loupe_store::{Inspection, Review, Store};
use serde_json::Value;

/// 2026-11-01T00:00:00Z.
const SINCE_MS: i64 = 1_793_491_200_000;

const FLOW: &str = r#"
name: export-test
nodes:
  - id: camera
    type: capture
    settings: { directory: ../inbox }
  - id: log
    type: report
    settings: { path: ../log.jsonl }
    auto_terminate: [failure]
  - id: records
    type: report
    settings:
      database: sqlite:../data/report.db
      media_dir: ../data/media
    auto_terminate: [failure]
connections:
  - from: camera.success
    to: log
  - from: camera.success
    to: records
"#;

/// One record to store: attributes, whether its image is kept, its reviews (label, action,
/// reviewer, ms after `SINCE_MS`).
struct Case {
    key: &'static str,
    attrs: Vec<(&'static str, String)>,
    media: bool,
    reviews: Vec<(&'static str, &'static str, &'static str, i64)>,
}

fn coil(product: &str, angle: u32, model_label: &str, camera: &str) -> Vec<(&'static str, String)> {
    vec![
        ("product.id", product.to_string()),
        ("camera.angle", angle.to_string()),
        ("fragment.count", "8".to_string()),
        ("line", "L1".to_string()),
        ("camera.verdict", camera.to_string()),
        ("classify.model", "coil-classifier@1.0.0".to_string()),
        ("classify.label", model_label.to_string()),
        ("classify.score", "0.875".to_string()),
        (
            "classify.scores",
            r#"{"ok":0.1,"burr":0.025,"loose_wire":0.875}"#.to_string(),
        ),
        ("filename", format!("{product}_a{angle}.png")),
        ("mime.type", "image/png".to_string()),
    ]
}

fn cases() -> Vec<Case> {
    let case = |key, attrs, reviews| Case {
        key,
        attrs,
        media: true,
        reviews,
    };
    vec![
        case(
            "p1a0",
            coil("p00001", 0, "loose_wire", "loose_wire"),
            vec![("loose_wire", "confirmed", "anna", 1_000)],
        ),
        case(
            "p1a1",
            coil("p00001", 1, "loose_wire", "loose_wire"),
            vec![("burr", "corrected", "ben", 2_000)],
        ),
        // Reviewed twice: the latest review wins.
        case(
            "p1a2",
            coil("p00001", 2, "loose_wire", "loose_wire"),
            vec![
                ("loose_wire", "confirmed", "anna", 3_000),
                ("ok", "corrected", "ben", 4_000),
            ],
        ),
        case(
            "p2a0",
            coil("p00006", 0, "burr", "loose_wire"),
            vec![("burr", "confirmed", "anna", 5_000)],
        ),
        case(
            "p2a1",
            coil("p00006", 1, "burr", "ok"),
            vec![("ok", "corrected", "anna", 6_000)],
        ),
        // Reviewed before --since: left out.
        case(
            "p3a0",
            coil("p00003", 0, "ok", "ok"),
            vec![("burr", "corrected", "anna", -3_600_000)],
        ),
        // Not reviewed: left out.
        case("p3a1", coil("p00003", 1, "ok", "ok"), vec![]),
        // Its image is deleted below: skipped.
        case(
            "p4a0",
            coil("p00007", 0, "ok", "ok"),
            vec![("ok", "confirmed", "ben", 7_000)],
        ),
        case(
            "p4a1",
            coil("p00007", 1, "ok", "loose_wire"),
            vec![("loose_wire", "corrected", "ben", 8_000)],
        ),
        // A segmenter's record without product: its own product.
        case(
            "sheet",
            vec![
                ("segment.model", "surface-segmenter@1.0.0".to_string()),
                ("segment.defect", "true".to_string()),
                ("segment.score", "0.5".to_string()),
                ("filename", "sheet-7.png".to_string()),
                ("mime.type", "image/png".to_string()),
            ],
            vec![("defect", "confirmed", "anna", 9_000)],
        ),
        // No image kept: skipped.
        Case {
            key: "nomedia",
            attrs: coil("p00005", 0, "burr", "ok"),
            media: false,
            reviews: vec![("burr", "confirmed", "anna", 10_000)],
        },
    ]
}

/// A scratch tree: `flows/export.yaml`, `data/report.db`, `data/media/...`. Returns the
/// tree, the stored records by case key, and each record's image bytes by uuid.
fn scratch() -> (
    tempfile::TempDir,
    HashMap<&'static str, Inspection>,
    HashMap<String, Vec<u8>>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/export.yaml"), FLOW).unwrap();
    let media = MediaStore::new(dir.path().join("data/media"));
    let mut records = HashMap::new();
    let mut bytes = HashMap::new();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!("sqlite:{}", dir.path().join("data/report.db").display());
        let store = Store::open(&url, dir.path(), "inspections").await.unwrap();
        for (i, case) in cases().into_iter().enumerate() {
            let content = format!("\u{89}PNG image of {}", case.key).into_bytes();
            let attrs = case
                .attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let flow_file = FlowFile::create(content.clone(), attrs);
            // Recorded the week before --since, one minute apart.
            let recorded = SINCE_MS - 7 * 86_400_000 + 60_000 * i as i64;
            let mut record = Inspection::from_flow_file(&flow_file, recorded);
            if case.media {
                let day = loupe_store::day::day_of(recorded);
                record.media_path = Some(media.store(&flow_file, &record, &day).unwrap());
            }
            store.insert(&record).await.unwrap();
            for (label, action, reviewer, at) in &case.reviews {
                let review = Review {
                    label: label.to_string(),
                    action: action.to_string(),
                    reviewer: reviewer.to_string(),
                    note: None,
                    reviewed_ms: SINCE_MS + at,
                };
                assert!(store.add_review(&record.uuid, &review).await.unwrap());
            }
            bytes.insert(record.uuid.clone(), content);
            records.insert(case.key, record);
        }
    });
    let gone = records["p4a0"].media_path.as_ref().unwrap();
    std::fs::remove_file(dir.path().join("data/media").join(gone)).unwrap();
    (dir, records, bytes)
}

fn export(args: &[&str], flow: &Path, out: &Path) -> Output {
    loupe()
        .args(["dataset", "export", "--flow"])
        .arg(flow)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn refused(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "expected a refusal, got success: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

fn manifest(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn reviewed_images_are_exported_by_their_latest_label() {
    let (dir, records, bytes) = scratch();
    let flow = dir.path().join("flows/export.yaml");
    let out = dir.path().join("feedback");
    let run = export(&["--since", "2026-11-01"], &flow, &out);
    let stdout = ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stdout.contains("7 reviewed images"), "{stdout}");
    assert!(stdout.contains(&out.display().to_string()), "{stdout}");
    assert!(
        stdout.contains("1 without media, 1 with the image file missing"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&records["p4a0"].uuid) && stderr.contains(&records["nomedia"].uuid),
        "skipped records are named: {stderr}"
    );

    let ds: Value =
        serde_json::from_slice(&std::fs::read(out.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(ds["kind"], "feedback");
    assert_eq!(ds["generator"], "loupe dataset export");
    assert_eq!(ds["since"], "2026-11-01");
    assert!(ds["exported_ms"].as_i64().unwrap() > SINCE_MS - 365 * 86_400_000);
    assert_eq!(ds["images"], 7);
    assert_eq!(
        ds["classes"],
        serde_json::json!({"burr": 2, "defect": 1, "loose_wire": 2, "ok": 2})
    );
    assert_eq!(ds["val_fraction"], 0.2);
    assert_eq!(
        ds["skipped"],
        serde_json::json!({"no_media": 1, "missing_file": 1})
    );

    let lines = manifest(&out);
    assert_eq!(lines.len(), 7);
    let files: Vec<&str> = lines.iter().map(|l| l["file"].as_str().unwrap()).collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "sorted by file");

    let by_uuid: HashMap<&str, &Value> = lines
        .iter()
        .map(|l| (l["uuid"].as_str().unwrap(), l))
        .collect();
    let expected = [
        ("p1a0", "loose_wire", "anna", 1_000),
        ("p1a1", "burr", "ben", 2_000),
        ("p1a2", "ok", "ben", 4_000),
        ("p2a0", "burr", "anna", 5_000),
        ("p2a1", "ok", "anna", 6_000),
        ("p4a1", "loose_wire", "ben", 8_000),
        ("sheet", "defect", "anna", 9_000),
    ];
    for (key, label, reviewer, at) in expected {
        let record = &records[key];
        let line = by_uuid
            .get(record.uuid.as_str())
            .unwrap_or_else(|| panic!("{key} is exported: {lines:?}"));
        let name = Path::new(record.media_path.as_deref().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(line["file"], format!("{label}/{name}"), "{key}");
        assert_eq!(line["label"], label, "{key}");
        assert_eq!(line["reviewer"], reviewer, "{key}");
        assert_eq!(line["reviewed_ms"], SINCE_MS + at, "{key}");
        assert!(matches!(line["split"].as_str(), Some("train" | "val")));
        let copied = std::fs::read(out.join(line["file"].as_str().unwrap())).unwrap();
        assert_eq!(copied, bytes[&record.uuid], "{key}: a copy of the original");
    }
    for key in ["p3a0", "p3a1", "p4a0", "nomedia"] {
        assert!(
            !by_uuid.contains_key(records[key].uuid.as_str()),
            "{key} is not exported"
        );
    }

    let p1a1 = by_uuid[records["p1a1"].uuid.as_str()];
    assert_eq!(p1a1["product_id"], "p00001");
    assert_eq!(p1a1["angle"], 1);
    assert_eq!(p1a1["line"], "L1");
    assert_eq!(p1a1["camera_verdict"], "loose_wire");
    assert_eq!(p1a1["model"], "coil-classifier@1.0.0");
    assert_eq!(p1a1["model_label"], "loose_wire");
    assert_eq!(p1a1["model_score"], 0.875);
    assert_eq!(p1a1["source_kind"], "coil");
    let sheet = by_uuid[records["sheet"].uuid.as_str()];
    assert_eq!(sheet["source_kind"], "surface");
    assert_eq!(sheet["product_id"], Value::Null);
    assert_eq!(sheet["angle"], Value::Null);
    assert_eq!(sheet["model_label"], "defect");

    // Every angle of a product is in the same split.
    let mut splits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in &lines {
        let product = line["product_id"]
            .as_str()
            .or(line["uuid"].as_str())
            .unwrap()
            .to_string();
        splits
            .entry(product)
            .or_default()
            .push(line["split"].as_str().unwrap().to_string());
    }
    for (product, s) in &splits {
        assert!(s.iter().all(|x| x == &s[0]), "{product}: {s:?}");
    }
    // The hash of the product id decides (sha256, first 8 bytes / u64::MAX < 0.2 is val):
    // p00001 is at 0.028, p00006 at 0.827, p00007 at 0.526.
    assert_eq!(splits["p00001"], ["val", "val", "val"]);
    assert_eq!(splits["p00006"], ["train", "train"]);
    assert_eq!(splits["p00007"], ["train"]);

    // Only the label folders and the two files.
    let mut entries: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "burr",
            "dataset.json",
            "defect",
            "loose_wire",
            "manifest.jsonl",
            "ok"
        ]
    );

    // A non-empty --out is refused, and left as it was.
    let before = std::fs::read(out.join("manifest.jsonl")).unwrap();
    let stderr = refused(&export(&["--since", "2026-11-01"], &flow, &out));
    assert!(
        stderr.contains("is not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(out.join("manifest.jsonl")).unwrap(), before);

    // --force replaces the earlier export; the same records give the same split.
    ok(&export(&["--since", "2026-11-01", "--force"], &flow, &out));
    assert_eq!(std::fs::read(out.join("manifest.jsonl")).unwrap(), before);

    // A later --since takes fewer; the earlier export's folders do not linger.
    ok(&export(&["--since", "2026-11-02", "--force"], &flow, &out));
    assert!(manifest(&out).is_empty());
    assert!(!out.join("burr").exists());

    // The database and media given directly, all products in val.
    let direct = dir.path().join("direct");
    let run = loupe()
        .args([
            "dataset",
            "export",
            "--since",
            "2026-11-01",
            "--val-fraction",
            "1",
        ])
        .arg("--database")
        .arg(format!(
            "sqlite:{}",
            dir.path().join("data/report.db").display()
        ))
        .arg("--media")
        .arg(dir.path().join("data/media"))
        .arg("--out")
        .arg(&direct)
        .output()
        .unwrap();
    ok(&run);
    let lines = manifest(&direct);
    assert_eq!(lines.len(), 7);
    assert!(lines.iter().all(|l| l["split"] == "val"), "{lines:?}");
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let (dir, _, _) = scratch();
    let flow = dir.path().join("flows/export.yaml");
    let out = dir.path().join("feedback");
    for bad in ["2026-13-01", "2026-02-30", "yesterday", "01.11.2026"] {
        let stderr = refused(&export(&["--since", bad], &flow, &out));
        assert!(
            stderr.contains("is not a date") && stderr.contains("YYYY-MM-DD"),
            "{bad}: {stderr}"
        );
    }
    let stderr = refused(&export(
        &["--since", "2026-11-01", "--node", "log"],
        &flow,
        &out,
    ));
    assert!(stderr.contains("keeps no database"), "{stderr}");
    let stderr = refused(&export(
        &["--since", "2026-11-01", "--node", "camera"],
        &flow,
        &out,
    ));
    assert!(stderr.contains("not a `report` node"), "{stderr}");
    let stderr = refused(&export(
        &["--since", "2026-11-01", "--node", "nope"],
        &flow,
        &out,
    ));
    assert!(stderr.contains("no node `nope`"), "{stderr}");

    let no_report: PathBuf = dir.path().join("flows/no-report.yaml");
    std::fs::write(
        &no_report,
        "nodes:\n  - id: camera\n    type: capture\n    settings: { directory: x }\n    auto_terminate: [success]\n",
    )
    .unwrap();
    let stderr = refused(&export(&["--since", "2026-11-01"], &no_report, &out));
    assert!(
        stderr.contains("no report node with a database"),
        "{stderr}"
    );

    // A database that is not there is not created empty.
    let elsewhere = dir.path().join("flows/elsewhere.yaml");
    std::fs::write(
        &elsewhere,
        FLOW.replace("../data/report.db", "../nowhere/r.db"),
    )
    .unwrap();
    let stderr = refused(&export(&["--since", "2026-11-01"], &elsewhere, &out));
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(!dir.path().join("nowhere").exists());
    assert!(!out.exists(), "nothing written on a refusal");
}

//! `capture` against a real filesystem. No assertion depends on timing: "not yet offered"
//! checks use a fresh observation (a file's stability clock starts when first seen), and
//! "eventually offered" checks poll with a generous wait.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loupe_capture::Capture;
use loupe_sdk::factory::factory;
use loupe_sdk::pb::Offer;
use loupe_sdk::{BuildContext, Node, NodeError, Pulled, Source};
use serde_json::{Value, json};

/// Long enough for any "eventually" on a slow CI machine; never reached when things work.
const PATIENCE: Duration = Duration::from_secs(10);

fn ctx(base: &Path) -> BuildContext {
    BuildContext {
        node_id: "cap".into(),
        base_dir: base.to_path_buf(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    }
}

/// Settings with test-friendly defaults (no stability wait, fast polling) plus `extra`.
fn settings(dir: &Path, extra: Value) -> Value {
    let mut s = json!({"directory": dir, "min_age": "0s", "poll_interval": "10ms"});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

async fn try_build(dir: &Path, extra: Value) -> Result<Node, NodeError> {
    factory::<Capture>()
        .build(&settings(dir, extra), &ctx(dir.parent().unwrap()))
        .await
}

async fn source(dir: &Path, extra: Value) -> Arc<dyn Source> {
    try_build(dir, extra).await.unwrap().source.unwrap()
}

/// One scan, no waiting.
async fn pull_now(src: &Arc<dyn Source>, max: usize) -> Pulled {
    src.pull(max, Duration::ZERO).await.unwrap()
}

/// Waits (up to [`PATIENCE`]) for at least one offer.
async fn pull_some(src: &Arc<dyn Source>, max: usize) -> Pulled {
    let pulled = src.pull(max, PATIENCE).await.unwrap();
    assert!(
        !pulled.offers.is_empty(),
        "nothing offered within {PATIENCE:?}"
    );
    pulled
}

fn names(offers: &[Offer]) -> Vec<String> {
    let mut names: Vec<_> = offers.iter().map(|o| attr(o, "filename")).collect();
    names.sort();
    names
}

fn attr(offer: &Offer, key: &str) -> String {
    offer.flow_file.as_ref().unwrap().attributes[key].clone()
}

fn content(offer: &Offer) -> Vec<u8> {
    offer.flow_file.as_ref().unwrap().content.to_vec()
}

fn ids(offers: &[Offer]) -> Vec<String> {
    offers.iter().map(|o| o.delivery_id.clone()).collect()
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    fs::create_dir(&dir).unwrap();
    (tmp, dir)
}

#[tokio::test]
async fn a_file_still_being_written_is_not_offered_until_stable() {
    let (_tmp, dir) = tmp();
    let src = source(&dir, json!({"min_age": "300ms"})).await;
    let file = dir.join("frame.jpg");

    write(&file, b"half");
    // First sight starts the clock: not offered, whatever the machine's speed.
    assert!(pull_now(&src, 10).await.offers.is_empty());
    // The writer goes on: the size changes, the clock restarts.
    fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b" and the rest"))
        .unwrap();
    assert!(pull_now(&src, 10).await.offers.is_empty());

    // Left alone past min_age, it is offered, complete.
    let pulled = pull_some(&src, 10).await;
    assert_eq!(pulled.offers.len(), 1);
    assert_eq!(content(&pulled.offers[0]), b"half and the rest");
}

#[tokio::test]
async fn attributes_follow_nifi_getfile() {
    let (_tmp, dir) = tmp();
    write(&dir.join("top.JPG"), b"jpeg");
    write(&dir.join("sub/deeper/b.png"), b"png!!");
    write(&dir.join("sub/notes.bin"), b"?");
    let src = source(&dir, json!({"recursive": true})).await;

    let offers = pull_some(&src, 10).await.offers;
    assert_eq!(names(&offers), ["b.png", "notes.bin", "top.JPG"]);
    let by_name = |n: &str| offers.iter().find(|o| attr(o, "filename") == n).unwrap();

    let top = by_name("top.JPG");
    assert_eq!(attr(top, "path"), "./");
    assert_eq!(attr(top, "mime.type"), "image/jpeg");
    assert_eq!(attr(top, "file.size"), "4");
    let abs = PathBuf::from(attr(top, "absolute.path"));
    assert!(attr(top, "absolute.path").ends_with('/'));
    assert_eq!(
        fs::canonicalize(abs).unwrap(),
        fs::canonicalize(&dir).unwrap()
    );
    assert_eq!(
        fs::canonicalize(attr(top, "capture.directory")).unwrap(),
        fs::canonicalize(&dir).unwrap()
    );
    let modified = humantime::parse_rfc3339(&attr(top, "file.lastModifiedTime")).unwrap();
    let actual = fs::metadata(dir.join("top.JPG"))
        .unwrap()
        .modified()
        .unwrap();
    let delta = actual
        .duration_since(modified)
        .unwrap_or_else(|e| e.duration());
    assert!(
        delta < Duration::from_millis(1),
        "{modified:?} vs {actual:?}"
    );

    let deep = by_name("b.png");
    assert_eq!(attr(deep, "path"), "sub/deeper/");
    assert_eq!(attr(deep, "mime.type"), "image/png");
    assert!(attr(deep, "absolute.path").ends_with("sub/deeper/"));
    assert_eq!(content(deep), b"png!!");
    assert_eq!(
        attr(by_name("notes.bin"), "mime.type"),
        "application/octet-stream"
    );

    // Without `recursive`, subdirectories are left alone.
    let (_tmp2, flat) = tmp();
    write(&flat.join("a.jpg"), b"a");
    write(&flat.join("sub/b.jpg"), b"b");
    let src = source(&flat, json!({})).await;
    assert_eq!(names(&pull_some(&src, 10).await.offers), ["a.jpg"]);
}

#[tokio::test]
async fn pattern_and_hidden_files() {
    let (_tmp, dir) = tmp();
    for name in ["a.jpg", "b.png", ".c.jpg.partial", ".d.jpg"] {
        write(&dir.join(name), b"x");
    }
    let src = source(&dir, json!({"pattern": "*.jpg"})).await;
    assert_eq!(names(&pull_some(&src, 10).await.offers), ["a.jpg"]);

    let src = source(&dir, json!({"pattern": "*.jpg", "ignore_hidden": false})).await;
    assert_eq!(
        names(&pull_some(&src, 10).await.offers),
        [".d.jpg", "a.jpg"]
    );
}

#[tokio::test]
async fn offered_files_are_not_offered_again_while_in_flight() {
    let (_tmp, dir) = tmp();
    for name in ["1.jpg", "2.jpg", "3.jpg"] {
        write(&dir.join(name), name.as_bytes());
    }
    let src = source(&dir, json!({})).await;

    let first = pull_some(&src, 2).await.offers;
    assert_eq!(names(&first), ["1.jpg", "2.jpg"], "name order, at most max");
    let second = pull_some(&src, 10).await.offers;
    assert_eq!(names(&second), ["3.jpg"]);
    assert!(pull_now(&src, 10).await.offers.is_empty());

    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3, "delivery ids are unique");
}

#[tokio::test]
async fn accept_deletes_and_reject_offers_again() {
    let (_tmp, dir) = tmp();
    write(&dir.join("keep.jpg"), b"k");
    write(&dir.join("take.jpg"), b"t");
    let src = source(&dir, json!({})).await;

    let offers = pull_some(&src, 10).await.offers;
    let id_of = |n: &str| {
        offers
            .iter()
            .find(|o| attr(o, "filename") == n)
            .unwrap()
            .delivery_id
            .clone()
    };
    src.ack(vec![id_of("take.jpg")], vec![id_of("keep.jpg")])
        .await
        .unwrap();

    assert!(!dir.join("take.jpg").exists(), "accepted file is deleted");
    assert!(dir.join("keep.jpg").exists(), "rejected file is kept");
    let again = pull_some(&src, 10).await.offers;
    assert_eq!(names(&again), ["keep.jpg"]);
    assert_ne!(again[0].delivery_id, id_of("keep.jpg"));

    // Unknown ids (e.g. from before a restart) are ignored.
    src.ack(vec!["nope".into()], vec!["nada".into()])
        .await
        .unwrap();
}

#[tokio::test]
async fn accept_moves_keeping_the_relative_path() {
    let (tmp, dir) = tmp();
    write(&dir.join("sub/a.jpg"), b"a");
    write(&dir.join("b.jpg"), b"b");
    // `move_to` relative: resolved against the flow's base directory (tmp here).
    let src = source(
        &dir,
        json!({"recursive": true, "after": "move", "move_to": "done"}),
    )
    .await;

    let offers = pull_some(&src, 10).await.offers;
    src.ack(ids(&offers), vec![]).await.unwrap();
    let done = tmp.path().join("done");
    assert_eq!(fs::read(done.join("sub/a.jpg")).unwrap(), b"a");
    assert_eq!(fs::read(done.join("b.jpg")).unwrap(), b"b");
    assert!(!dir.join("sub/a.jpg").exists() && !dir.join("b.jpg").exists());

    // The same name again never overwrites what was moved before.
    write(&dir.join("b.jpg"), b"b2");
    let offers = pull_some(&src, 10).await.offers;
    src.ack(ids(&offers), vec![]).await.unwrap();
    assert_eq!(fs::read(done.join("b.jpg")).unwrap(), b"b");
    assert_eq!(fs::read(done.join("b-1.jpg")).unwrap(), b"b2");
}

#[tokio::test]
async fn move_to_inside_a_recursive_directory_is_not_captured_again() {
    let (_tmp, dir) = tmp();
    write(&dir.join("a.jpg"), b"a");
    let archive = dir.join("archive");
    let src = source(
        &dir,
        json!({"recursive": true, "after": "move", "move_to": archive}),
    )
    .await;
    let offers = pull_some(&src, 10).await.offers;
    src.ack(ids(&offers), vec![]).await.unwrap();
    assert!(archive.join("a.jpg").exists());
    let pulled = pull_now(&src, 10).await;
    assert!(pulled.offers.is_empty());
    assert!(pulled.exhausted);
}

#[tokio::test]
async fn exhausted_only_after_every_ack() {
    let (_tmp, dir) = tmp();
    write(&dir.join("1.jpg"), b"1");
    write(&dir.join("2.jpg"), b"2");
    let src = source(&dir, json!({})).await;

    let first = pull_some(&src, 1).await;
    assert!(!first.exhausted);
    let second = pull_some(&src, 10).await;
    assert!(!second.exhausted);
    let idle = pull_now(&src, 10).await;
    assert!(idle.offers.is_empty());
    assert!(!idle.exhausted, "offers still in flight");

    src.ack(ids(&first.offers), vec![]).await.unwrap();
    assert!(!pull_now(&src, 10).await.exhausted, "one still in flight");
    // A rejected offer is not done either: it comes back.
    src.ack(vec![], ids(&second.offers)).await.unwrap();
    let back = pull_some(&src, 10).await;
    assert!(!back.exhausted);
    src.ack(ids(&back.offers), vec![]).await.unwrap();

    let end = pull_now(&src, 10).await;
    assert!(end.offers.is_empty());
    assert!(end.exhausted);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);

    // New files make the folder live again.
    write(&dir.join("3.jpg"), b"3");
    let again = pull_some(&src, 10).await;
    assert_eq!(again.offers.len(), 1);
    assert!(!again.exhausted);
}

#[tokio::test]
async fn not_exhausted_while_files_are_still_being_written() {
    let (_tmp, dir) = tmp();
    let src = source(&dir, json!({"min_age": "1h"})).await;
    write(&dir.join("slow.jpg"), b"x");
    let pulled = pull_now(&src, 10).await;
    assert!(pulled.offers.is_empty());
    assert!(!pulled.exhausted, "an unstable file is still to come");
}

#[tokio::test]
async fn unacknowledged_files_are_offered_again_after_a_crash() {
    let (_tmp, dir) = tmp();
    write(&dir.join("a.jpg"), b"a");
    write(&dir.join("b.jpg"), b"b");
    let before = source(&dir, json!({})).await;
    let offers = pull_some(&before, 10).await.offers;
    before
        .ack(vec![offers[0].delivery_id.clone()], vec![])
        .await
        .unwrap();
    let acked = attr(&offers[0], "filename");
    drop(before); // "crash": the second offer is never acknowledged

    let after = source(&dir, json!({})).await;
    let again = pull_some(&after, 10).await.offers;
    assert_eq!(again.len(), 1);
    assert_ne!(attr(&again[0], "filename"), acked);
    assert_eq!(attr(&again[0], "filename"), attr(&offers[1], "filename"));
    // The same file is the same FlowFile: an idempotent sink that already has it (the flow
    // took it before the crash, the acknowledgement was lost) records it once.
    let uuid = |o: &Offer| o.flow_file.as_ref().unwrap().uuid.clone();
    assert_eq!(uuid(&again[0]), uuid(&offers[1]));
    assert_ne!(uuid(&offers[0]), uuid(&offers[1]));
}

#[tokio::test]
async fn a_file_rewritten_after_a_crash_is_a_new_flow_file() {
    let (_tmp, dir) = tmp();
    write(&dir.join("a.jpg"), b"first");
    let before = source(&dir, json!({})).await;
    let first = pull_some(&before, 10).await.offers;
    drop(before);
    write(&dir.join("a.jpg"), b"second version");
    let after = source(&dir, json!({})).await;
    let again = pull_some(&after, 10).await.offers;
    assert_eq!(content(&again[0]), b"second version");
    assert_ne!(
        again[0].flow_file.as_ref().unwrap().uuid,
        first[0].flow_file.as_ref().unwrap().uuid
    );
}

#[tokio::test]
async fn an_offer_never_acknowledged_is_offered_again_after_redeliver_after() {
    let (_tmp, dir) = tmp();
    write(&dir.join("a.jpg"), b"a");
    let src = source(&dir, json!({"redeliver_after": "50ms"})).await;
    let lost = pull_some(&src, 10).await.offers;
    // The reply "never arrived": no ack. Eventually the file comes back, under a new id.
    let again = pull_some(&src, 10).await.offers;
    assert_eq!(names(&again), ["a.jpg"]);
    assert_ne!(again[0].delivery_id, lost[0].delivery_id);
    // A late ack of the lost offer changes nothing; the new one settles the file.
    src.ack(ids(&lost), vec![]).await.unwrap();
    assert!(dir.join("a.jpg").exists());
    src.ack(ids(&again), vec![]).await.unwrap();
    assert!(!dir.join("a.jpg").exists());
    assert!(pull_now(&src, 10).await.exhausted);
}

#[tokio::test]
async fn oversize_files_are_moved_aside_with_a_reason() {
    let (_tmp, dir) = tmp();
    write(&dir.join("small.jpg"), b"12345");
    write(&dir.join("sub/big.jpg"), &[0u8; 20]);
    let src = source(
        &dir,
        // ignore_hidden off: `.rejected` must still never be scanned.
        json!({"max_file_bytes": 10, "recursive": true, "ignore_hidden": false}),
    )
    .await;

    let offers = pull_some(&src, 10).await.offers;
    assert_eq!(names(&offers), ["small.jpg"]);
    let rejected = dir.join(".rejected/sub/big.jpg");
    assert_eq!(fs::read(&rejected).unwrap().len(), 20, "kept, not lost");
    assert!(!dir.join("sub/big.jpg").exists());
    let reason = fs::read_to_string(dir.join(".rejected/sub/big.jpg.reason.txt")).unwrap();
    assert!(
        reason.contains("20 bytes") && reason.contains("max_file_bytes"),
        "{reason}"
    );

    src.ack(ids(&offers), vec![]).await.unwrap();
    assert!(pull_now(&src, 10).await.offers.is_empty());
}

#[tokio::test]
async fn a_file_rewritten_while_in_flight_is_not_deleted() {
    let (_tmp, dir) = tmp();
    let file = dir.join("a.jpg");
    write(&file, b"v1");
    let src = source(&dir, json!({})).await;
    let offers = pull_some(&src, 10).await.offers;

    write(&file, b"version 2");
    src.ack(ids(&offers), vec![]).await.unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"version 2");
    let again = pull_some(&src, 10).await.offers;
    assert_eq!(content(&again[0]), b"version 2");
}

#[tokio::test]
async fn mtime_order_offers_oldest_first() {
    let (_tmp, dir) = tmp();
    let now = SystemTime::now();
    for (name, age) in [("a.jpg", 10), ("b.jpg", 30), ("c.jpg", 20)] {
        write(&dir.join(name), b"x");
        let f = fs::File::options()
            .write(true)
            .open(dir.join(name))
            .unwrap();
        f.set_modified(now - Duration::from_secs(age)).unwrap();
    }
    let src = source(&dir, json!({"order": "mtime"})).await;
    let offers = pull_some(&src, 10).await.offers;
    let order: Vec<_> = offers.iter().map(|o| attr(o, "filename")).collect();
    assert_eq!(order, ["b.jpg", "c.jpg", "a.jpg"]);
}

#[tokio::test]
async fn settings_and_directory_problems_are_clear() {
    let (_tmp, dir) = tmp();
    let missing = dir.join("nope");
    let err = try_build(&missing, json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not accessible") && err.contains("nope"),
        "{err}"
    );

    let file = dir.join("file");
    write(&file, b"x");
    let err = try_build(&file, json!({})).await.unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");

    let err = try_build(&dir, json!({"after": "move"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("move_to"), "{err}");
    let err = try_build(&dir, json!({"after": "move", "move_to": &dir}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("move_to"), "{err}");

    let problems = factory::<Capture>()
        .check(&json!({"directory": "x", "pattern": "[", "order": "size"}))
        .unwrap_err();
    assert_eq!(problems[0].path, "order");
    let problems = factory::<Capture>()
        .check(&json!({"directory": "x", "pattern": "["}))
        .unwrap_err();
    assert_eq!(problems[0].path, "pattern");
    let rels = factory::<Capture>()
        .check(&json!({"directory": "x"}))
        .unwrap();
    assert_eq!(rels.len(), 1);
    assert_eq!(rels[0].name, "success");
}

#[tokio::test]
async fn as_a_processor_it_passes_through() {
    let (_tmp, dir) = tmp();
    let node = try_build(&dir, json!({})).await.unwrap();
    let desc = node.processor.describe();
    assert_eq!(desc.node_type, "capture");
    assert!(desc.is_source);
    assert!(desc.settings_schema.contains("min_age"));
    let ff = loupe_sdk::FlowFile::create(&b"x"[..], Default::default()).with_attr("k", "v");
    let out = node.processor.process(ff.clone()).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].relationship, "success");
    assert_eq!(out[0].flow_file.as_ref().unwrap(), &ff);
}

fn attrs(offer: &Offer) -> &std::collections::HashMap<String, String> {
    &offer.flow_file.as_ref().unwrap().attributes
}

#[tokio::test]
async fn synth_coil_manifest_becomes_attributes() {
    let (_tmp, dir) = tmp();
    write(&dir.join("images/p00042_a3.png"), b"png3");
    write(&dir.join("images/p00042_a4.png"), b"png4");
    write(&dir.join("images/p00043_a0.png"), b"no record");
    write(&dir.join("dataset.json"), b"{}");
    let line = |angle: u8, label: &str| {
        json!({"file": format!("images/p00042_a{angle}.png"), "product_id": "p00042",
            "angle": angle, "label": label, "product_label": "burr",
            "camera_verdict": "loose_wire", "camera_score": 12.5,
            "defects": [{"kind": "burr", "bbox": [1, 2, 3, 4], "length_px": 7.1}],
            "width": 256, "height": 256})
        .to_string()
    };
    let manifest = format!("{}\n{}\n", line(3, "burr"), line(4, "ok"));
    write(&dir.join("manifest.jsonl"), manifest.as_bytes());
    let src = source(
        &dir,
        json!({"recursive": true, "pattern": "*.png",
            "metadata": {"manifest": "manifest.jsonl", "attributes": {"line": "L1"}}}),
    )
    .await;

    let offers = pull_some(&src, 10).await.offers;
    assert_eq!(
        names(&offers),
        ["p00042_a3.png", "p00042_a4.png", "p00043_a0.png"]
    );
    let by_name = |n: &str| offers.iter().find(|o| attr(o, "filename") == n).unwrap();
    let a3 = attrs(by_name("p00042_a3.png"));
    let expected = [
        ("product.id", "p00042"),
        ("camera.angle", "3"),
        ("camera.verdict", "loose_wire"),
        ("camera.score", "12.5"),
        ("fragment.identifier", "p00042"),
        ("fragment.index", "3"),
        ("fragment.count", "8"),
        ("truth.label", "burr"),
        ("truth.product_label", "burr"),
        ("image.width", "256"),
        ("line", "L1"),
        ("capture.input", "directory"),
    ];
    for (k, v) in expected {
        assert_eq!(a3.get(k).map(String::as_str), Some(v), "{k} in {a3:?}");
    }
    let defects: Value = serde_json::from_str(&a3["truth.defects"]).unwrap();
    assert_eq!(defects[0]["kind"], "burr");
    assert_eq!(attrs(by_name("p00042_a4.png"))["truth.label"], "ok");
    assert_eq!(attrs(by_name("p00042_a4.png"))["fragment.index"], "4");
    let unknown = attrs(by_name("p00043_a0.png"));
    assert!(!unknown.contains_key("product.id"), "{unknown:?}");
    assert_eq!(unknown["line"], "L1");

    src.ack(ids(&offers), vec![]).await.unwrap();
    assert!(
        dir.join("manifest.jsonl").exists(),
        "the manifest is never consumed"
    );
    let end = pull_now(&src, 10).await;
    assert!(end.offers.is_empty() && end.exhausted);
}

#[tokio::test]
async fn sidecar_and_filename_pattern_give_attributes_and_leave_with_the_image() {
    let (tmp, dir) = tmp();
    write(&dir.join("p1_a3.png"), b"img");
    write(
        &dir.join("p1_a3.json"),
        br#"{"camera.id": "cam2", "camera.angle": "3", "light": {"lux": 800}}"#,
    );
    write(&dir.join("p2_a5.png"), b"img2");
    write(
        &dir.join("p2_a5.png.json"),
        br#"{"product.id": "override"}"#,
    );
    write(&dir.join("orphan.json"), b"{}");
    let src = source(
        &dir,
        json!({"after": "move", "move_to": "done", "metadata": {
            "sidecar": true, "fragment_count": 8,
            "filename_pattern": "{product.id}_a{camera.angle:[0-9]+}.png",
            "attributes": {"line": "L1", "camera.id": "default"}}}),
    )
    .await;

    let offers = pull_some(&src, 10).await.offers;
    assert_eq!(
        names(&offers),
        ["p1_a3.png", "p2_a5.png"],
        "sidecars are not images"
    );
    let by_name = |n: &str| offers.iter().find(|o| attr(o, "filename") == n).unwrap();
    let p1 = attrs(by_name("p1_a3.png"));
    assert_eq!(p1["product.id"], "p1");
    assert_eq!(p1["camera.angle"], "3");
    assert_eq!(p1["camera.id"], "cam2", "sidecar beats static attributes");
    assert_eq!(p1["light.lux"], "800");
    assert_eq!(p1["line"], "L1");
    assert_eq!(p1["fragment.identifier"], "p1");
    assert_eq!(p1["fragment.index"], "3");
    assert_eq!(p1["fragment.count"], "8");
    assert!(p1["capture.sidecar"].ends_with("p1_a3.json"));
    let p2 = attrs(by_name("p2_a5.png"));
    assert_eq!(p2["product.id"], "override", "sidecar beats the file name");
    assert_eq!(p2["fragment.identifier"], "override");

    src.ack(ids(&offers), vec![]).await.unwrap();
    let done = tmp.path().join("done");
    for name in ["p1_a3.png", "p1_a3.json", "p2_a5.png", "p2_a5.png.json"] {
        assert!(done.join(name).exists(), "{name} moved");
        assert!(!dir.join(name).exists(), "{name} gone");
    }
    assert!(dir.join("orphan.json").exists());
    assert!(
        pull_now(&src, 10).await.exhausted,
        "an orphan sidecar is not pending"
    );
}

#[tokio::test]
async fn malformed_sidecar_or_manifest_line_never_loses_the_image() {
    let (_tmp, dir) = tmp();
    write(&dir.join("bad.png"), b"b");
    write(&dir.join("bad.png.json"), b"{not json");
    write(&dir.join("list.png"), b"l");
    write(&dir.join("good.png"), b"g");
    write(
        &dir.join("m.jsonl"),
        b"garbage\n[1,2]\n{\"no_file\": 1}\n{\"file\": \"good.png\", \"product.id\": \"p9\"}\n",
    );
    write(&dir.join("list.png.json"), b"[1]");
    let src = source(
        &dir,
        json!({"metadata": {"sidecar": true, "manifest": "m.jsonl"}}),
    )
    .await;

    let offers = pull_some(&src, 10).await.offers;
    assert_eq!(names(&offers), ["bad.png", "good.png", "list.png"]);
    let by_name = |n: &str| offers.iter().find(|o| attr(o, "filename") == n).unwrap();
    let error = &attrs(by_name("bad.png"))["metadata.error"];
    assert!(
        error.contains("bad.png.json") && error.contains("JSON"),
        "{error}"
    );
    let error = &attrs(by_name("list.png"))["metadata.error"];
    assert!(error.contains("object"), "{error}");
    assert_eq!(content(by_name("bad.png")), b"b");
    assert_eq!(attrs(by_name("good.png"))["product.id"], "p9");

    src.ack(ids(&offers), vec![]).await.unwrap();
    assert!(!dir.join("bad.png").exists() && !dir.join("bad.png.json").exists());
}

#[tokio::test]
async fn a_sidecar_still_changing_holds_its_image_back() {
    let (_tmp, dir) = tmp();
    let src = source(
        &dir,
        json!({"min_age": "300ms", "metadata": {"sidecar": true}}),
    )
    .await;
    write(&dir.join("a.png"), b"a");
    assert!(pull_now(&src, 10).await.offers.is_empty());
    write(&dir.join("a.png.json"), br#"{"k": "v"}"#);
    // The sidecar restarts the clock: still not offered on this fresh look.
    assert!(pull_now(&src, 10).await.offers.is_empty());
    let offers = pull_some(&src, 10).await.offers;
    assert_eq!(attr(&offers[0], "k"), "v");
}

#[tokio::test]
async fn an_oversize_file_takes_its_sidecar_to_rejected() {
    let (_tmp, dir) = tmp();
    write(&dir.join("big.png"), &[0u8; 20]);
    write(&dir.join("big.png.json"), b"{}");
    let src = source(
        &dir,
        json!({"max_file_bytes": 10, "metadata": {"sidecar": true}}),
    )
    .await;
    let pulled = pull_now(&src, 10).await;
    assert!(pulled.offers.is_empty());
    assert!(dir.join(".rejected/big.png").exists());
    assert!(dir.join(".rejected/big.png.json").exists());
    assert!(!dir.join("big.png.json").exists());
}

#[tokio::test]
async fn draining_from_the_backlog_still_sees_new_files_and_files_given_back() {
    let (_tmp, dir) = tmp();
    for i in 0..40 {
        write(&dir.join(format!("a{i:02}.png")), b"x");
    }
    // A slow poll: what arrives is found through the backlog's rescans (events, given back),
    // not by a scan per pull.
    let src = source(&dir, json!({"poll_interval": "200ms"})).await;
    let first = pull_some(&src, 5).await.offers;
    assert_eq!(first.len(), 5);
    write(&dir.join("late.png"), b"y");
    let mut offered: Vec<String> = names(&first);
    src.ack(ids(&first), vec![]).await.unwrap();
    let mut given_back = None;
    let deadline = std::time::Instant::now() + PATIENCE;
    while offered.len() < 41 {
        assert!(
            std::time::Instant::now() < deadline,
            "offered {} of 41: {offered:?}",
            offered.len()
        );
        let offers = src
            .pull(5, Duration::from_millis(300))
            .await
            .unwrap()
            .offers;
        let mut accepted = ids(&offers);
        // Give the first offer of the second pull back once: it must come again.
        if given_back.is_none() && !offers.is_empty() {
            given_back = Some(attr(&offers[0], "filename"));
            src.ack(vec![], vec![accepted.remove(0)]).await.unwrap();
            offered.extend(names(&offers[1..]));
        } else {
            offered.extend(names(&offers));
        }
        src.ack(accepted, vec![]).await.unwrap();
    }
    offered.sort();
    let before = offered.len();
    offered.dedup();
    assert_eq!(before, offered.len(), "nothing offered twice once accepted");
    assert!(offered.contains(&"late.png".to_string()));
    assert!(offered.contains(&given_back.unwrap()));
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        0,
        "every file accepted and deleted"
    );
}

//! The shipped loose-wire re-check flow (`flows/loose-wire-recheck.yaml`) on a generated camera
//! folder: every photo recorded once with its route, every coil a product verdict, photos kept;
//! and both demos (`loupe demo`, `loupe demo surfaces`) end with their summaries.

mod common;

use common::{copy_flow_with_free_ports, loupe, onnxruntime_available, repo, run_once};

/// A scratch tree holding a copy of the shipped re-check flow and the repository's models:
/// the flow's relative paths (`../.loupe/...`, `../models/...`) resolve inside it.
fn scratch_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    for flow in ["loose-wire-recheck.yaml", "surface-defects.yaml"] {
        copy_flow_with_free_ports(
            &repo().join("flows").join(flow),
            &dir.path().join("flows").join(flow),
        );
    }
    std::os::unix::fs::symlink(repo().join("models"), dir.path().join("models")).unwrap();
    dir
}

/// Opens the re-check flow's report database in `root`, reads the verdicts of coils
/// `p00000..` (`coils` of them) and whatever `more` reads.
fn read_report<T, F>(
    root: &std::path::Path,
    coils: usize,
    more: impl FnOnce(std::sync::Arc<loupe_store::Store>) -> F,
) -> (T, Vec<Option<String>>)
where
    F: std::future::Future<Output = T>,
{
    let db = root.join(".loupe/recheck/report.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!("sqlite:{}", db.display());
        let store = std::sync::Arc::new(
            loupe_store::Store::open(&url, root, "inspections")
                .await
                .unwrap(),
        );
        let mut verdicts = Vec::new();
        for p in 0..coils {
            verdicts.push(store.product(&format!("p{p:05}")).await.unwrap());
        }
        (more(store).await, verdicts)
    })
}

/// Generates coils (`loupe synth coils ARGS`) into the re-check flow's inbox under `root`.
fn synth_coils(root: &std::path::Path, args: &[&str]) -> std::path::PathBuf {
    let inbox = root.join(".loupe/recheck/inbox");
    let out = loupe()
        .args(["synth", "coils"])
        .args(args)
        .arg("--out")
        .arg(&inbox)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    inbox
}

#[test]
fn the_recheck_flow_records_routes_products_and_media() {
    if !onnxruntime_available() {
        return;
    }
    let dir = scratch_tree();
    let inbox = synth_coils(dir.path(), &["--products", "6", "--seed", "21"]);
    run_once(&dir.path().join("flows/loose-wire-recheck.yaml"));

    let (records, products) = read_report(dir.path(), 6, |store| async move {
        store.count().await.unwrap()
    });
    assert_eq!(records, 48, "6 coils x 8 angles, each once");
    assert!(
        products
            .iter()
            .all(|v| matches!(v.as_deref(), Some("ok" | "defective"))),
        "every coil has a verdict: {products:?}"
    );
    let day_dirs: Vec<_> = std::fs::read_dir(dir.path().join(".loupe/recheck/media"))
        .unwrap()
        .flatten()
        .collect();
    let kept = std::fs::read_dir(day_dirs[0].path()).unwrap().count();
    assert_eq!(kept, 96, "each photo and its record JSON");
    assert_eq!(
        std::fs::read_dir(inbox.join("images")).unwrap().count(),
        0,
        "every photo moved to done"
    );
}

/// Frames that cannot be judged — a failed camera (black, white, static), a coil far too
/// small in the frame — on one angle or on all of them: the coil goes to a person, never `ok`.
#[test]
fn unusable_frames_send_their_coil_to_review_never_to_ok() {
    use loupe_synth::faults::Fault;
    if !onnxruntime_available() {
        return;
    }
    let dir = scratch_tree();
    let inbox = synth_coils(
        dir.path(),
        &[
            "--products",
            "6",
            "--seed",
            "33",
            "--loose-wire",
            "0",
            "--burr",
            "0",
            "--both",
            "0",
        ],
    );
    // p00000..p00003: every angle faulted; p00004: one angle; p00005: untouched.
    let faulted = [
        ("p00000", Fault::Black, 0u32..8),
        ("p00001", Fault::White, 0..8),
        ("p00002", Fault::Static, 0..8),
        ("p00003", Fault::Small, 0..8),
        ("p00004", Fault::Black, 3..4),
    ];
    for (product, fault, angles) in &faulted {
        for angle in angles.clone() {
            let path = inbox.join(format!("images/{product}_a{angle}.png"));
            let image = image::open(&path).unwrap().into_rgb8();
            fault.apply(&image, u64::from(angle)).save(&path).unwrap();
        }
    }
    run_once(&dir.path().join("flows/loose-wire-recheck.yaml"));
    let (unusable, verdicts) = read_report(dir.path(), 6, |store| async move {
        let records = store
            .list(&loupe_store::ListQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        records
            .iter()
            .filter(|s| {
                s.record.attributes.get("frame.usable").map(String::as_str) == Some("false")
            })
            .map(|s| {
                (
                    s.record.filename.clone().unwrap_or_default(),
                    s.record
                        .attributes
                        .get("frame.reason")
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    });
    for (i, verdict) in verdicts.iter().take(5).enumerate() {
        assert_eq!(
            verdict.as_deref(),
            Some("review"),
            "coil {i}: {verdicts:?} {unusable:?}"
        );
    }
    assert_eq!(
        verdicts[5].as_deref(),
        Some("ok"),
        "{verdicts:?} {unusable:?}"
    );
    assert_eq!(unusable.len(), 4 * 8 + 1, "{unusable:?}");
    assert!(
        unusable.iter().all(|(_, reason)| !reason.is_empty()),
        "{unusable:?}"
    );
}

#[test]
fn the_demo_ends_with_a_summary_for_the_plant() {
    if !onnxruntime_available() {
        return;
    }
    // The demo runs where its flow's paths assume (the repository root): a scratch tree keeps
    // it out of the way of a `loupe demo` run by hand.
    let dir = scratch_tree();
    let out = loupe()
        .current_dir(dir.path())
        .args(["demo", "--products", "3", "--seed", "5", "--exit"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("camera flagged"), "{stdout}");
    assert!(stdout.contains("of 24 images"), "{stdout}");
    assert!(stdout.contains("missed by the model"), "{stdout}");
    assert!(stdout.contains("coils: 3 judged"), "{stdout}");
    assert!(stdout.contains("defective coils passed: 0"), "{stdout}");
    assert!(stdout.contains("dashboard: http://127.0.0.1:"), "{stdout}");
}

#[test]
fn the_surface_demo_outlines_defects_and_keeps_overlays() {
    if !onnxruntime_available() {
        return;
    }
    let dir = scratch_tree();
    let out = loupe()
        .current_dir(dir.path())
        .args([
            "demo",
            "surfaces",
            "--products",
            "6",
            "--seed",
            "3",
            "--exit",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("inspected 6 sheets"), "{stdout}");
    assert!(stdout.contains("missed by the model"), "{stdout}");
    assert!(stdout.contains("dashboard: http://127.0.0.1:"), "{stdout}");
    // Each sheet: the photo, its record, its overlay and its mask, next to each other.
    let media = dir.path().join(".loupe/surface-defects/media");
    let day = std::fs::read_dir(&media)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let names: Vec<String> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let count = |suffix: &str| names.iter().filter(|n| n.ends_with(suffix)).count();
    assert_eq!(count(".overlay.png"), 6, "{names:?}");
    assert_eq!(count(".mask.png"), 6, "{names:?}");
    assert_eq!(count(".json"), 6, "{names:?}");
}

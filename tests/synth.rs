//! `loupe synth` through the binary: a small run writes its files and summary; bad
//! arguments are refused with a clear message and a non-zero exit.

use std::process::Command;

fn loupe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
}

#[test]
fn synth_coils_writes_a_data_set_and_prints_the_camera_confusion() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("coils");
    let run = loupe()
        .args([
            "synth",
            "coils",
            "--products",
            "3",
            "--seed",
            "7",
            "--size",
            "64",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("3 products x 8 angles = 24 images"),
        "{stdout}"
    );
    assert!(stdout.contains("camera verdicts per image"), "{stdout}");
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 24);
    assert!(out.join("images/p00002_a7.png").is_file());
    let ds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(ds["seed"], 7);
}

#[test]
fn synth_surfaces_writes_images_and_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let run = loupe()
        .args([
            "synth", "surfaces", "--images", "4", "--size", "64", "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(tmp.path().join("images/s00003.png").is_file());
    assert!(tmp.path().join("masks/s00003.png").is_file());
}

#[test]
fn synth_refuses_impossible_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let file = file.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["coils", "--products", "0", "--out", out],
            "--products must be at least 1",
        ),
        (
            vec![
                "coils",
                "--products",
                "2",
                "--loose-wire",
                "1.5",
                "--out",
                out,
            ],
            "--loose-wire is a fraction of products and must be within [0, 1]",
        ),
        (
            vec!["coils", "--products", "2", "--size", "32", "--out", out],
            "--size must be between 64 and 2048",
        ),
        (
            vec!["coils", "--products", "2", "--format", "bmp", "--out", out],
            "unknown image format `bmp`",
        ),
        (
            vec!["coils", "--products", "2", "--out", file],
            "is not a directory",
        ),
        (
            vec!["surfaces", "--images", "0", "--out", out],
            "--images must be at least 1",
        ),
    ] {
        let run = loupe().arg("synth").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected `{needle}` in:\n{stderr}"
        );
    }
    assert!(
        !std::path::Path::new(out).exists(),
        "refused runs write nothing"
    );
}

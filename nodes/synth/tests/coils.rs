//! `generate_coils` end to end: real files in temporary directories.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use loupe_synth::{CoilLabel, CoilOptions, ImageFormat, SynthError, generate_coils};
use serde_json::Value;

fn opts(products: u32, seed: u64, size: u32) -> CoilOptions {
    CoilOptions {
        products,
        seed,
        size,
        ..CoilOptions::default()
    }
}

fn manifest(dir: &Path) -> Vec<Value> {
    fs::read_to_string(dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn label(v: &Value) -> CoilLabel {
    match v.as_str().unwrap() {
        "ok" => CoilLabel::Ok,
        "burr" => CoilLabel::Burr,
        "loose_wire" => CoilLabel::LooseWire,
        other => panic!("unknown label {other}"),
    }
}

/// Every file of a directory tree, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let o = CoilOptions {
        loose_wire: 0.5,
        burr: 0.5,
        both: 0.25,
        ..opts(4, 11, 128)
    };
    generate_coils(&o, &a).unwrap();
    generate_coils(&o, &b).unwrap();
    generate_coils(
        &CoilOptions {
            seed: 12,
            ..o.clone()
        },
        &c,
    )
    .unwrap();
    let (ta, tb, tc) = (tree(&a), tree(&b), tree(&c));
    assert_eq!(ta.len(), 4 * 8 + 2, "{:?}", ta.keys().collect::<Vec<_>>());
    assert!(ta == tb, "same options must give byte-identical files");
    assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    let differing = ta
        .iter()
        .filter(|(k, v)| k.starts_with("images/") && tc[*k] != **v)
        .count();
    assert_eq!(differing, 32, "another seed must change every image");
    // Regenerating into an earlier output replaces it, byte for byte.
    generate_coils(&o, &c).unwrap();
    assert!(tree(&c) == ta);
}

#[test]
fn labels_are_consistent_and_boxes_inside_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let o = CoilOptions {
        loose_wire: 0.4,
        burr: 0.5,
        both: 0.2,
        ..opts(24, 3, 128)
    };
    let ds = generate_coils(&o, tmp.path()).unwrap();
    let rows = manifest(tmp.path());
    assert_eq!(rows.len(), 24 * 8);
    assert_eq!(ds.images, 24 * 8);
    let mut by_product: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &rows {
        by_product
            .entry(r["product_id"].as_str().unwrap().to_string())
            .or_default()
            .push(r);
        let file = r["file"].as_str().unwrap();
        let angle = r["angle"].as_u64().unwrap();
        assert_eq!(
            file,
            format!("images/{}_a{angle}.png", r["product_id"].as_str().unwrap())
        );
        assert!(tmp.path().join(file).is_file());
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(128), Some(128))
        );
        // The image label is the worst visible defect.
        let defects = r["defects"].as_array().unwrap();
        let worst = defects
            .iter()
            .map(|d| label(&d["kind"]))
            .max()
            .unwrap_or(CoilLabel::Ok);
        assert_eq!(label(&r["label"]), worst, "{r}");
        for d in defects {
            let b: Vec<u64> = d["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert!(
                b[0] < b[2] && b[1] < b[3] && b[2] <= 128 && b[3] <= 128,
                "{r}"
            );
            assert!(d["length_px"].as_f64().unwrap() >= 0.0);
        }
        let verdict = label(&r["camera_verdict"]);
        assert!(
            verdict != CoilLabel::Burr,
            "the camera only says ok or loose_wire"
        );
    }
    let mut seen_partial = false;
    for (id, images) in &by_product {
        assert_eq!(images.len(), 8, "{id}");
        let angles: Vec<u64> = images
            .iter()
            .map(|r| r["angle"].as_u64().unwrap())
            .collect();
        assert_eq!(angles, (0..8).collect::<Vec<_>>());
        let worst = images.iter().map(|r| label(&r["label"])).max().unwrap();
        for r in images {
            assert_eq!(label(&r["product_label"]), worst, "{id}");
        }
        // A defect is seen only from the angles facing it.
        let with = images
            .iter()
            .filter(|r| label(&r["label"]) == worst)
            .count();
        if worst == CoilLabel::LooseWire && with < 8 {
            seen_partial = true;
        }
    }
    assert!(
        seen_partial,
        "loose wires must be visible from some angles only"
    );
    // dataset.json agrees with the manifest.
    let json: Value =
        serde_json::from_str(&fs::read_to_string(tmp.path().join("dataset.json")).unwrap())
            .unwrap();
    assert_eq!(json["generator"], "loupe-synth/1");
    assert_eq!(json["products"], 24);
    for l in CoilLabel::ALL {
        let n = rows.iter().filter(|r| label(&r["label"]) == l).count() as u64;
        assert_eq!(json["counts"]["images"][l.as_str()], n);
        assert_eq!(ds.counts.images.get(l), n);
    }
}

#[test]
fn prevalence_is_roughly_as_asked() {
    let tmp = tempfile::tempdir().unwrap();
    // 400 products, at the smallest size to keep the test quick.
    let o = CoilOptions {
        loose_wire: 0.1,
        burr: 0.3,
        both: 0.05,
        ..opts(400, 5, 64)
    };
    let ds = generate_coils(&o, tmp.path()).unwrap();
    let p = ds.counts.products;
    assert_eq!(p.total(), 400);
    let rows = manifest(tmp.path());
    let mut lw = 0;
    let mut burr = 0;
    let mut both = 0;
    for images in rows.chunks(8) {
        let has = |l: CoilLabel| {
            images.iter().any(|r| {
                r["defects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| label(&d["kind"]) == l)
            })
        };
        let (a, b) = (has(CoilLabel::LooseWire), has(CoilLabel::Burr));
        lw += a as u32;
        burr += b as u32;
        both += (a && b) as u32;
    }
    let frac = |n: u32| n as f64 / 400.0;
    // Binomial standard deviations at n = 400: 0.015, 0.023, 0.011.
    assert!((frac(lw) - 0.1).abs() < 0.05, "loose wire {}", frac(lw));
    assert!((frac(burr) - 0.3).abs() < 0.08, "burr {}", frac(burr));
    assert!((frac(both) - 0.05).abs() < 0.035, "both {}", frac(both));
    assert_eq!(p.loose_wire as u32, lw);
}

#[test]
fn the_camera_flags_loose_wires_and_most_burrs() {
    let tmp = tempfile::tempdir().unwrap();
    let o = CoilOptions {
        loose_wire: 0.6,
        burr: 0.6,
        both: 0.3,
        ..opts(48, 8, 256)
    };
    let ds = generate_coils(&o, tmp.path()).unwrap();
    let cam = ds.camera.images;
    let (lw, burr, ok) = (cam.loose_wire, cam.burr, cam.ok);
    assert!(
        lw.ok + lw.loose_wire >= 40,
        "too few loose-wire images: {cam:?}"
    );
    assert!(lw.flagged_fraction() >= 0.9, "{cam:?}");
    assert!(burr.flagged_fraction() > 0.5, "{cam:?}");
    assert!(ok.flagged_fraction() < 0.2, "{cam:?}");
    // The manifest says the same.
    let rows = manifest(tmp.path());
    let flagged_lw = rows
        .iter()
        .filter(|r| r["label"] == "loose_wire" && r["camera_verdict"] == "loose_wire")
        .count() as u64;
    assert_eq!(flagged_lw, lw.loose_wire);
}

#[test]
fn jpeg_output_and_in_memory_photos() {
    let tmp = tempfile::tempdir().unwrap();
    let o = CoilOptions {
        format: ImageFormat::Jpg,
        ..opts(2, 1, 96)
    };
    generate_coils(&o, tmp.path()).unwrap();
    let rows = manifest(tmp.path());
    let f = rows[3]["file"].as_str().unwrap();
    assert!(f.ends_with(".jpg"));
    let img = image::open(tmp.path().join(f)).unwrap();
    assert_eq!((img.width(), img.height()), (96, 96));
    // PNG files hold exactly the pixels of `coil_photo`.
    let png = tmp.path().join("png");
    let o = CoilOptions {
        format: ImageFormat::Png,
        ..o
    };
    generate_coils(&o, &png).unwrap();
    let photo = loupe_synth::coil_photo(&o, 1, 5).unwrap();
    let img = image::open(png.join("images/p00001_a5.png"))
        .unwrap()
        .to_rgb8();
    assert!(img.as_raw() == &photo.rgb);
    assert_eq!(manifest(&png)[13]["label"], photo.label.as_str());
}

#[test]
fn impossible_options_are_refused_clearly() {
    let bad = |o: CoilOptions| o.validate().unwrap_err().to_string();
    assert!(bad(opts(0, 1, 256)).contains("--products must be at least 1"));
    assert!(bad(opts(1, 1, 32)).contains("--size must be between 64 and 2048"));
    assert!(bad(opts(1, 1, 4096)).contains("(got 4096)"));
    let m = bad(CoilOptions {
        loose_wire: 1.5,
        ..opts(1, 1, 256)
    });
    assert!(m.contains("--loose-wire") && m.contains("[0, 1]"), "{m}");
    let m = bad(CoilOptions {
        burr: -0.1,
        ..opts(1, 1, 256)
    });
    assert!(m.contains("--burr"), "{m}");
    let m = bad(CoilOptions {
        both: f64::NAN,
        ..opts(1, 1, 256)
    });
    assert!(m.contains("--both"), "{m}");
    let m = bad(CoilOptions {
        loose_wire: 0.05,
        both: 0.1,
        ..opts(1, 1, 256)
    });
    assert!(
        m.contains("--both (0.1) cannot exceed --loose-wire (0.05)"),
        "{m}"
    );
    let m = bad(CoilOptions {
        loose_wire: 0.7,
        burr: 0.7,
        both: 0.1,
        ..opts(1, 1, 256)
    });
    assert!(m.contains("exceeds 1"), "{m}");
    let m = "bmp".parse::<ImageFormat>().unwrap_err().to_string();
    assert!(m.contains("unknown image format `bmp`"), "{m}");
    assert_eq!("JPEG".parse::<ImageFormat>().unwrap(), ImageFormat::Jpg);

    // Output paths.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let e = generate_coils(&opts(1, 1, 64), &file).unwrap_err();
    assert!(matches!(e, SynthError::OutNotADirectory(_)), "{e}");
    assert!(e.to_string().contains("is not a directory"));
    let full = tmp.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("notes.txt"), b"mine").unwrap();
    let e = generate_coils(&opts(1, 1, 64), &full).unwrap_err();
    assert!(e.to_string().contains("is not empty"), "{e}");
    assert!(
        full.join("notes.txt").is_file(),
        "nothing of the user's is touched"
    );
    // Refused arguments write nothing.
    let none = tmp.path().join("none");
    assert!(generate_coils(&opts(0, 1, 64), &none).is_err());
    assert!(!none.exists());
}

//! `generate_surfaces` end to end: real files in temporary directories.

use std::fs;
use std::path::Path;

use loupe_synth::{SurfaceClass, SurfaceOptions, generate_surfaces};
use serde_json::Value;

fn manifest(dir: &Path) -> Vec<Value> {
    fs::read_to_string(dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn masks_hold_exactly_the_classes_of_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SurfaceOptions {
        images: 120,
        seed: 4,
        size: 96,
    };
    let ds = generate_surfaces(&o, tmp.path()).unwrap();
    let rows = manifest(tmp.path());
    assert_eq!(rows.len(), 120);
    let mut seen = [0u32; 5];
    for r in &rows {
        let img = image::open(tmp.path().join(r["file"].as_str().unwrap())).unwrap();
        assert_eq!(img.color(), image::ColorType::L8);
        assert_eq!((img.width(), img.height()), (96, 96));
        let mask = image::open(tmp.path().join(r["mask"].as_str().unwrap())).unwrap();
        assert_eq!(
            mask.color(),
            image::ColorType::L8,
            "masks are 8-bit single channel"
        );
        let mask = mask.to_luma8();
        let mut area = [0u64; 5];
        for p in mask.pixels() {
            assert!(p.0[0] <= 4, "mask value {} is no class", p.0[0]);
            area[p.0[0] as usize] += 1;
        }
        let present: Vec<&str> = SurfaceClass::ALL
            .iter()
            .filter(|c| area[c.index() as usize] > 0)
            .map(|c| c.name())
            .collect();
        let listed: Vec<&str> = r["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(present, listed, "{r}");
        for c in SurfaceClass::ALL {
            assert_eq!(r["area_px"][c.name()], area[c.index() as usize], "{r}");
            if area[c.index() as usize] > 0 {
                seen[c.index() as usize] += 1;
            }
        }
        assert_eq!(r["defect"], !listed.is_empty());
        if listed.is_empty() {
            assert_eq!(
                area[0],
                96 * 96,
                "a defect-free image has an all-background mask"
            );
        }
    }
    assert!(
        seen[1..].iter().all(|&n| n > 5),
        "every class shows up: {seen:?}"
    );
    let free = rows.iter().filter(|r| r["defect"] == false).count();
    assert!(
        (20..=55).contains(&free),
        "about 30% defect-free, got {free}/120"
    );
    assert_eq!(ds.counts.defect_free, free as u64);
    let json: Value =
        serde_json::from_str(&fs::read_to_string(tmp.path().join("dataset.json")).unwrap())
            .unwrap();
    assert_eq!(json["classes"][0]["name"], "background");
    assert_eq!(json["classes"][4]["name"], "inclusion");
    assert_eq!(json["classes"][4]["index"], 4);
}

#[test]
fn defects_change_the_pixels_where_the_mask_says() {
    // Defects are drawn where the mask marks them: those pixels differ from the sheet
    // around them more than unmarked ones do, on average.
    let tmp = tempfile::tempdir().unwrap();
    let o = SurfaceOptions {
        images: 40,
        seed: 9,
        size: 128,
    };
    generate_surfaces(&o, tmp.path()).unwrap();
    let (mut inside, mut outside) = ((0.0f64, 0u64), (0.0f64, 0u64));
    for r in manifest(tmp.path()) {
        let img = image::open(tmp.path().join(r["file"].as_str().unwrap()))
            .unwrap()
            .to_luma8();
        let mask = image::open(tmp.path().join(r["mask"].as_str().unwrap()))
            .unwrap()
            .to_luma8();
        let mean = img.pixels().map(|p| p.0[0] as f64).sum::<f64>() / (128.0 * 128.0);
        for (p, m) in img.pixels().zip(mask.pixels()) {
            let d = (p.0[0] as f64 - mean).abs();
            let acc = if m.0[0] > 0 {
                &mut inside
            } else {
                &mut outside
            };
            acc.0 += d;
            acc.1 += 1;
        }
    }
    let (i, o) = (inside.0 / inside.1 as f64, outside.0 / outside.1 as f64);
    assert!(i > 1.5 * o, "defect pixels {i:.1} vs sheet {o:.1}");
}

#[test]
fn surfaces_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let o = SurfaceOptions {
        images: 6,
        seed: 2,
        size: 64,
    };
    generate_surfaces(&o, &tmp.path().join("a")).unwrap();
    generate_surfaces(&o, &tmp.path().join("b")).unwrap();
    generate_surfaces(
        &SurfaceOptions {
            seed: 3,
            ..o.clone()
        },
        &tmp.path().join("c"),
    )
    .unwrap();
    for f in [
        "manifest.jsonl",
        "dataset.json",
        "images/s00003.png",
        "masks/s00003.png",
    ] {
        let a = fs::read(tmp.path().join("a").join(f)).unwrap();
        assert_eq!(a, fs::read(tmp.path().join("b").join(f)).unwrap(), "{f}");
    }
    let a = fs::read(tmp.path().join("a/images/s00003.png")).unwrap();
    assert_ne!(a, fs::read(tmp.path().join("c/images/s00003.png")).unwrap());
}

#[test]
fn bad_surface_options_are_refused() {
    let e = SurfaceOptions {
        images: 0,
        ..SurfaceOptions::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("--images must be at least 1"), "{e}");
    let e = SurfaceOptions {
        size: 63,
        ..SurfaceOptions::default()
    }
    .validate()
    .unwrap_err();
    assert!(
        e.to_string().contains("--size must be between 64 and 2048"),
        "{e}"
    );
}

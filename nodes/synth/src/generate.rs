//! Generating whole data sets into a directory, in parallel and deterministically.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;

use crate::camera::{self, Reading};
use crate::coil::{ANGLES, Coil};
use crate::error::SynthError;
use crate::manifest::{
    CameraReport, ClassCounts, CoilCounts, CoilDataset, CoilLabel, CoilRecord, Confusion,
    DefectRecord, GENERATOR, LabelCounts, Prevalence, SurfaceClass, SurfaceCounts, SurfaceDataset,
    SurfaceRecord, class_table,
};
use crate::options::{CoilOptions, ImageFormat, SurfaceOptions};
use crate::raster::Canvas;
use crate::render::{self, Exposure};
use crate::rng::{Rng, stream};
use crate::{defects, scene, surface};

/// One coil photograph, in memory.
#[derive(Debug, Clone)]
pub struct CoilPhoto {
    /// 8-bit RGB pixels, row-major (before any JPEG compression).
    pub rgb: Vec<u8>,
    /// Width and height in pixels.
    pub size: u32,
    /// Worst defect visible.
    pub label: CoilLabel,
    /// The defects visible.
    pub defects: Vec<DefectRecord>,
}

impl CoilPhoto {
    /// The photo encoded as PNG (the bytes `generate_coils` writes for `--format png`).
    pub fn png(&self) -> Result<Vec<u8>, image::ImageError> {
        render::encode(&self.rgb, self.size, self.size, 3, ImageFormat::Png)
    }
}

/// Renders photo `angle` (0..7) of product `product` exactly as [`generate_coils`] does
/// (same pixels for PNG output), without writing anything.
pub fn coil_photo(opts: &CoilOptions, product: u32, angle: u32) -> Result<CoilPhoto, SynthError> {
    opts.validate()?;
    let coil = Coil::plan(opts, product);
    Ok(render_photo(opts, &coil, product, angle))
}

fn render_photo(opts: &CoilOptions, coil: &Coil, product: u32, angle: u32) -> CoilPhoto {
    let mut rng = Rng::new(
        opts.seed,
        &[stream::COIL_VIEW, product as u64, angle as u64],
    );
    let n = opts.size as usize;
    let view = coil.view(angle, &mut rng, opts.size as f32);
    let mut canvas = Canvas::new(n, n, &[0.0, 0.0, 0.0]);
    scene::paint(&mut canvas, &mut rng, coil, &view);
    crate::coil::draw(&mut canvas, coil, &view);
    let defects: Vec<DefectRecord> = coil
        .defects
        .iter()
        .filter_map(|d| defects::draw(&mut canvas, &coil.material, &view, d))
        .collect();
    let exposure = Exposure::random(&mut rng, opts.size);
    exposure.develop(&mut canvas, &mut rng);
    let label = defects
        .iter()
        .map(|d| d.kind)
        .max()
        .unwrap_or(CoilLabel::Ok);
    CoilPhoto {
        rgb: canvas.to_bytes(),
        size: opts.size,
        label,
        defects,
    }
}

/// Writes `loupe synth coils` output into `out` and returns what `dataset.json` says.
///
/// `out` is created if missing; it must be empty or hold an earlier `loupe synth`
/// output (whose `images/`, `masks/`, `manifest.jsonl` and `dataset.json` are replaced).
pub fn generate_coils(opts: &CoilOptions, out: &Path) -> Result<CoilDataset, SynthError> {
    opts.validate()?;
    prepare_out(out, &["images"])?;
    let digits = id_digits(opts.products);
    let products = par_map(opts.products as usize, |p| {
        coil_product(opts, out, p as u32, digits)
    })?;

    let mut images = LabelCounts::default();
    let mut product_counts = LabelCounts::default();
    let mut cam_images = Confusion::default();
    let mut cam_products = Confusion::default();
    let manifest = out.join("manifest.jsonl");
    let file = fs::File::create(&manifest).map_err(|e| SynthError::io(&manifest, e))?;
    let mut writer = BufWriter::new(file);
    for records in &products {
        let product_label = records[0].product_label;
        product_counts.add(product_label);
        let mut flagged = CoilLabel::Ok;
        for r in records {
            images.add(r.label);
            cam_images.add(r.label, r.camera_verdict);
            flagged = flagged.max(r.camera_verdict);
            write_line(&mut writer, r, &manifest)?;
        }
        cam_products.add(product_label, flagged);
    }
    writer.flush().map_err(|e| SynthError::io(&manifest, e))?;

    let dataset = CoilDataset {
        generator: GENERATOR.to_string(),
        kind: "coils".to_string(),
        seed: opts.seed,
        products: opts.products,
        angles: ANGLES,
        images: images.total(),
        size: opts.size,
        format: opts.format,
        prevalence: Prevalence {
            loose_wire: opts.loose_wire,
            burr: opts.burr,
            both: opts.both,
        },
        counts: CoilCounts {
            images,
            products: product_counts,
        },
        camera: CameraReport {
            rule: camera::RULE.to_string(),
            images: cam_images,
            products: cam_products,
        },
    };
    write_json(&out.join("dataset.json"), &dataset)?;
    Ok(dataset)
}

fn coil_product(
    opts: &CoilOptions,
    out: &Path,
    product: u32,
    digits: usize,
) -> Result<Vec<CoilRecord>, SynthError> {
    let coil = Coil::plan(opts, product);
    let product_id = format!("p{product:0digits$}");
    let mut records = Vec::with_capacity(ANGLES as usize);
    for angle in 0..ANGLES {
        let photo = render_photo(opts, &coil, product, angle);
        let file = format!("images/{product_id}_a{angle}.{}", opts.format.extension());
        let path = out.join(&file);
        let image_err = |source| SynthError::Image {
            path: path.clone(),
            source,
        };
        let bytes =
            render::encode(&photo.rgb, opts.size, opts.size, 3, opts.format).map_err(image_err)?;
        // The camera sees what was written: decode a JPEG back.
        let reading: Reading = match opts.format {
            ImageFormat::Png => camera::inspect(&photo.rgb, opts.size as usize, opts.size as usize),
            ImageFormat::Jpg => {
                let rgb = render::decode_rgb(&bytes).map_err(image_err)?;
                camera::inspect(&rgb, opts.size as usize, opts.size as usize)
            }
        };
        fs::write(&path, &bytes).map_err(|e| SynthError::io(&path, e))?;
        records.push(CoilRecord {
            file,
            product_id: product_id.clone(),
            angle: angle as u8,
            label: photo.label,
            product_label: CoilLabel::Ok,
            camera_verdict: reading.verdict,
            camera_score: (reading.score * 100.0).round() / 100.0,
            defects: photo.defects,
            width: opts.size,
            height: opts.size,
        });
    }
    let product_label = records
        .iter()
        .map(|r| r.label)
        .max()
        .unwrap_or(CoilLabel::Ok);
    for r in &mut records {
        r.product_label = product_label;
    }
    Ok(records)
}

/// Writes `loupe synth surfaces` output into `out` and returns what `dataset.json` says.
///
/// Same rules for `out` as [`generate_coils`].
pub fn generate_surfaces(opts: &SurfaceOptions, out: &Path) -> Result<SurfaceDataset, SynthError> {
    opts.validate()?;
    prepare_out(out, &["images", "masks"])?;
    let digits = id_digits(opts.images);
    let records = par_map(opts.images as usize, |i| {
        surface_image(opts, out, i as u32, digits)
    })?;
    let manifest = out.join("manifest.jsonl");
    let file = fs::File::create(&manifest).map_err(|e| SynthError::io(&manifest, e))?;
    let mut writer = BufWriter::new(file);
    let mut counts = SurfaceCounts {
        defect_free: 0,
        with_defect: 0,
        images_with: ClassCounts::default(),
        area_px: ClassCounts::default(),
    };
    for r in &records {
        if r.defect {
            counts.with_defect += 1;
        } else {
            counts.defect_free += 1;
        }
        for &c in &r.classes {
            counts.images_with.add(c, 1);
        }
        for c in SurfaceClass::ALL {
            counts.area_px.add(c, r.area_px.get(c));
        }
        write_line(&mut writer, r, &manifest)?;
    }
    writer.flush().map_err(|e| SynthError::io(&manifest, e))?;
    let dataset = SurfaceDataset {
        generator: GENERATOR.to_string(),
        kind: "surfaces".to_string(),
        seed: opts.seed,
        images: opts.images,
        size: opts.size,
        format: ImageFormat::Png,
        color: "gray8".to_string(),
        classes: class_table(),
        counts,
    };
    write_json(&out.join("dataset.json"), &dataset)?;
    Ok(dataset)
}

fn surface_image(
    opts: &SurfaceOptions,
    out: &Path,
    index: u32,
    digits: usize,
) -> Result<SurfaceRecord, SynthError> {
    let s = surface::render(opts.seed, index, opts.size);
    let id = format!("s{index:0digits$}");
    let file = format!("images/{id}.png");
    let mask = format!("masks/{id}.png");
    for (rel, pixels) in [(&file, &s.pixels), (&mask, &s.mask)] {
        let path = out.join(rel);
        let bytes = render::encode(pixels, opts.size, opts.size, 1, ImageFormat::Png).map_err(
            |source| SynthError::Image {
                path: path.clone(),
                source,
            },
        )?;
        fs::write(&path, bytes).map_err(|e| SynthError::io(&path, e))?;
    }
    let mut area = ClassCounts::default();
    for &v in &s.mask {
        if let Some(c) = SurfaceClass::from_index(v) {
            area.add(c, 1);
        }
    }
    let classes: Vec<SurfaceClass> = SurfaceClass::ALL
        .into_iter()
        .filter(|&c| area.get(c) > 0)
        .collect();
    Ok(SurfaceRecord {
        file,
        mask,
        id,
        defect: !classes.is_empty(),
        classes,
        area_px: area,
        instances: s.instances,
        width: opts.size,
        height: opts.size,
    })
}

/// Digits of zero-padded ids: at least 5, enough for `count - 1`.
fn id_digits(count: u32) -> usize {
    (count.saturating_sub(1).max(1).ilog10() as usize + 1).max(5)
}

fn write_line<T: Serialize>(w: &mut impl Write, value: &T, path: &Path) -> Result<(), SynthError> {
    serde_json::to_writer(&mut *w, value)?;
    w.write_all(b"\n").map_err(|e| SynthError::io(path, e))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SynthError> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    fs::write(path, text).map_err(|e| SynthError::io(path, e))
}

/// Makes `out` ready: created if missing; if not empty it must hold an earlier
/// `loupe synth` output, whose files are removed. Then creates `subdirs`.
fn prepare_out(out: &Path, subdirs: &[&str]) -> Result<(), SynthError> {
    match fs::metadata(out) {
        Ok(m) if !m.is_dir() => return Err(SynthError::OutNotADirectory(out.to_path_buf())),
        Ok(_) => {
            let mut entries = fs::read_dir(out).map_err(|e| SynthError::io(out, e))?;
            if entries.next().is_some() {
                if !earlier_output(out) {
                    return Err(SynthError::OutNotEmpty(out.to_path_buf()));
                }
                for dir in ["images", "masks"] {
                    let p = out.join(dir);
                    if p.is_dir() {
                        fs::remove_dir_all(&p).map_err(|e| SynthError::io(&p, e))?;
                    }
                }
                for file in ["manifest.jsonl", "dataset.json"] {
                    let p = out.join(file);
                    if p.is_file() {
                        fs::remove_file(&p).map_err(|e| SynthError::io(&p, e))?;
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(out).map_err(|e| SynthError::io(out, e))?
        }
        Err(e) => return Err(SynthError::io(out, e)),
    }
    for sub in subdirs {
        let p: PathBuf = out.join(sub);
        fs::create_dir_all(&p).map_err(|e| SynthError::io(&p, e))?;
    }
    Ok(())
}

/// Whether `out/dataset.json` was written by this generator.
fn earlier_output(out: &Path) -> bool {
    fs::read(out.join("dataset.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("generator")?
                .as_str()
                .map(|g| g.starts_with("loupe-synth/"))
        })
        .unwrap_or(false)
}

/// Maps `f` over `0..n` on all cores; results in index order. On failure, the error of
/// the lowest failed index (work stops early).
fn par_map<T: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T, SynthError> + Sync,
) -> Result<Vec<T>, SynthError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut results: Vec<(usize, Result<T, SynthError>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let r = f(i);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        done.push((i, r));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

//! `loupe synth coils|surfaces|faults`: deterministic synthetic inspection data (`loupe-synth`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use loupe_synth::manifest::Confusion;
use loupe_synth::{CoilLabel, CoilOptions, SurfaceClass, SurfaceOptions};

/// `loupe synth` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Wire coils photographed from 8 angles: `ok`, `burr`, `loose_wire`, with the
    /// simulated factory camera's verdict per image.
    ///
    /// Writes DIR/images/<product>_a<angle>.<ext>, DIR/manifest.jsonl (one line per
    /// image) and DIR/dataset.json; prints the label counts and the camera's confusion.
    Coils {
        /// Number of products (8 images each).
        #[arg(long)]
        products: u32,
        /// Seed: the same arguments give byte-identical files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory (created; must be empty or an earlier synth output).
        #[arg(long)]
        out: PathBuf,
        /// Image width and height in pixels (64..=2048).
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Image format: png or jpg.
        #[arg(long, default_value = "png")]
        format: String,
        /// Fraction of products with a loose wire.
        #[arg(long, default_value_t = 0.05)]
        loose_wire: f64,
        /// Fraction of products with burrs.
        #[arg(long, default_value_t = 0.25)]
        burr: f64,
        /// Fraction of products with both (counted in the two above).
        #[arg(long, default_value_t = 0.01)]
        both: f64,
    },
    /// A copy of a labelled folder with a camera fault applied to every image (blur:S,
    /// jpeg:Q, exposure:F, noise:S, tilt:D, black, white, grey, static, small): the same
    /// manifest, the images as PNG under the same names, masks copied.
    Faults {
        /// The labelled folder (manifest.jsonl + images).
        #[arg(long)]
        data: PathBuf,
        /// The fault.
        #[arg(long)]
        fault: String,
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the noise faults (image i of the manifest gets seed + i).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Steel-sheet surfaces with scratches, pits, patches and inclusions, and a class
    /// mask per image.
    ///
    /// Writes DIR/images/<id>.png (8-bit gray), DIR/masks/<id>.png (pixel = class index:
    /// 0 background, 1 scratch, 2 pit, 3 patch, 4 inclusion), DIR/manifest.jsonl and
    /// DIR/dataset.json.
    Surfaces {
        /// Number of images.
        #[arg(long)]
        images: u32,
        /// Seed: the same arguments give byte-identical files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory (created; must be empty or an earlier synth output).
        #[arg(long)]
        out: PathBuf,
        /// Image width and height in pixels (64..=2048).
        #[arg(long, default_value_t = 256)]
        size: u32,
    },
}

/// Generates the data set and prints its summary.
pub fn synth(what: Command) -> anyhow::Result<ExitCode> {
    match what {
        Command::Coils {
            products,
            seed,
            out,
            size,
            format,
            loose_wire,
            burr,
            both,
        } => {
            let opts = CoilOptions {
                products,
                seed,
                size,
                format: format.parse()?,
                loose_wire,
                burr,
                both,
            };
            opts.validate()?;
            let started = Instant::now();
            let ds = loupe_synth::generate_coils(&opts, &out)
                .with_context(|| format!("generating coils into {}", out.display()))?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "loupe synth coils: {} products x {} angles = {} images, {size}x{size} {}, \
                 seed {seed} -> {} ({secs:.1} s)",
                ds.products,
                ds.angles,
                ds.images,
                ds.format,
                out.display()
            );
            println!("{:<12}{:>8}{:>8}{:>12}", "", "ok", "burr", "loose_wire");
            for (name, c) in [
                ("images", ds.counts.images),
                ("products", ds.counts.products),
            ] {
                println!("  {name:<10}{:>8}{:>8}{:>12}", c.ok, c.burr, c.loose_wire);
            }
            print_confusion("per image", &ds.camera.images);
            print_confusion(
                "per product (flagged when any of its images is)",
                &ds.camera.products,
            );
            print_written(&out);
        }
        Command::Faults {
            data,
            fault,
            out,
            seed,
        } => {
            let fault: loupe_synth::faults::Fault = fault.parse()?;
            let started = Instant::now();
            let n = loupe_synth::faults::write_faulted_copy(&data, &out, fault, seed)
                .with_context(|| format!("applying {fault} to {}", data.display()))?;
            println!(
                "loupe synth faults: {fault} applied to {n} images of {} -> {} ({:.1} s)",
                data.display(),
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Surfaces {
            images,
            seed,
            out,
            size,
        } => {
            let opts = SurfaceOptions { images, seed, size };
            opts.validate()?;
            let started = Instant::now();
            let ds = loupe_synth::generate_surfaces(&opts, &out)
                .with_context(|| format!("generating surfaces into {}", out.display()))?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "loupe synth surfaces: {} images, {size}x{size} gray png, seed {seed} -> {} \
                 ({secs:.1} s)",
                ds.images,
                out.display()
            );
            println!(
                "  defect-free {}, with defects {}",
                ds.counts.defect_free, ds.counts.with_defect
            );
            println!(
                "  {:<4}{:<12}{:>8}{:>12}",
                "idx", "class", "images", "pixels"
            );
            for c in SurfaceClass::ALL {
                println!(
                    "  {:<4}{:<12}{:>8}{:>12}",
                    c.index(),
                    c.name(),
                    ds.counts.images_with.get(c),
                    ds.counts.area_px.get(c)
                );
            }
            print_written(&out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_confusion(what: &str, c: &Confusion) {
    println!("camera verdicts {what}:");
    println!(
        "  {:<12}{:>9}{:>17}{:>9}",
        "true label", "said ok", "said loose_wire", "flagged"
    );
    for label in CoilLabel::ALL {
        let row = c.row(label);
        println!(
            "  {:<12}{:>9}{:>17}{:>8.1}%",
            label.as_str(),
            row.ok,
            row.loose_wire,
            100.0 * row.flagged_fraction()
        );
    }
    let flagged: u64 = CoilLabel::ALL.iter().map(|&l| c.row(l).loose_wire).sum();
    let real = c.loose_wire.loose_wire;
    if flagged > 0 {
        println!(
            "  {real} of {flagged} flagged show a loose wire ({:.1}%); the rest are false alarms",
            100.0 * real as f64 / flagged as f64
        );
    }
}

fn print_written(out: &Path) {
    println!(
        "wrote {}, {}",
        out.join("manifest.jsonl").display(),
        out.join("dataset.json").display()
    );
}

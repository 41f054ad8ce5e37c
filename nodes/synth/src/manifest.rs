//! What is written next to the images: one `manifest.jsonl` line per image and one
//! `dataset.json` per data set.

use serde::Serialize;

use crate::options::ImageFormat;

/// The manifest file of a generated folder: one JSON line per image.
pub const MANIFEST_FILE: &str = "manifest.jsonl";

/// Generator name and algorithm version, written into every `dataset.json`. Bumped
/// whenever the same options would produce different files.
pub const GENERATOR: &str = "loupe-synth/1";

/// A coil image or product label, in order of severity (`ok` < `burr` < `loose_wire`).
///
/// The camera's verdict uses the same type but only ever says `ok` or `loose_wire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoilLabel {
    /// No visible defect.
    Ok,
    /// Burrs: short sharp protrusions or bright flecks; harmless.
    Burr,
    /// A strand of wire leaving the winding: a real defect.
    LooseWire,
}

impl CoilLabel {
    /// The label as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            CoilLabel::Ok => "ok",
            CoilLabel::Burr => "burr",
            CoilLabel::LooseWire => "loose_wire",
        }
    }

    /// All labels, least severe first.
    pub const ALL: [CoilLabel; 3] = [CoilLabel::Ok, CoilLabel::Burr, CoilLabel::LooseWire];
}

/// One defect as seen in one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefectRecord {
    /// `burr` or `loose_wire`.
    pub kind: CoilLabel,
    /// `[x0, y0, x1, y1]` in pixels of this image; `x1`, `y1` exclusive.
    pub bbox: [u32; 4],
    /// Length as seen in this image, in pixels (the longest spike of a burr, the strand
    /// of a loose wire), to 0.1 px.
    pub length_px: f32,
}

/// One `manifest.jsonl` line of `loupe synth coils`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoilRecord {
    /// Image path relative to the output directory (`images/p00042_a3.png`).
    pub file: String,
    /// Product id (`p00042`).
    pub product_id: String,
    /// Camera angle index, 0..7 (45 degrees apart around the coil).
    pub angle: u8,
    /// Worst defect visible in this image.
    pub label: CoilLabel,
    /// Worst defect of the product (over its 8 images).
    pub product_label: CoilLabel,
    /// What the simulated factory camera says: `ok` or `loose_wire`.
    pub camera_verdict: CoilLabel,
    /// The camera's protrusion score (pixels beyond the coil outline); it says
    /// `loose_wire` above its threshold.
    pub camera_score: f32,
    /// The defects visible in this image.
    pub defects: Vec<DefectRecord>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

/// Counts per label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LabelCounts {
    /// `ok`.
    pub ok: u64,
    /// `burr`.
    pub burr: u64,
    /// `loose_wire`.
    pub loose_wire: u64,
}

impl LabelCounts {
    /// Adds one to `label`'s count.
    pub fn add(&mut self, label: CoilLabel) {
        *self.get_mut(label) += 1;
    }
    /// The count of `label`.
    pub fn get(&self, label: CoilLabel) -> u64 {
        match label {
            CoilLabel::Ok => self.ok,
            CoilLabel::Burr => self.burr,
            CoilLabel::LooseWire => self.loose_wire,
        }
    }
    fn get_mut(&mut self, label: CoilLabel) -> &mut u64 {
        match label {
            CoilLabel::Ok => &mut self.ok,
            CoilLabel::Burr => &mut self.burr,
            CoilLabel::LooseWire => &mut self.loose_wire,
        }
    }
    /// Sum over labels.
    pub fn total(&self) -> u64 {
        self.ok + self.burr + self.loose_wire
    }
}

/// The camera's verdicts for one true label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerdictCounts {
    /// Said `ok`.
    pub ok: u64,
    /// Said `loose_wire` (flagged).
    pub loose_wire: u64,
}

impl VerdictCounts {
    /// Fraction flagged (0 when empty).
    pub fn flagged_fraction(&self) -> f64 {
        let n = self.ok + self.loose_wire;
        if n == 0 {
            0.0
        } else {
            self.loose_wire as f64 / n as f64
        }
    }
}

/// Camera confusion: true label -> verdict counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Truly `ok`.
    pub ok: VerdictCounts,
    /// Truly `burr`.
    pub burr: VerdictCounts,
    /// Truly `loose_wire`.
    pub loose_wire: VerdictCounts,
}

impl Confusion {
    /// Adds one observation.
    pub fn add(&mut self, truth: CoilLabel, verdict: CoilLabel) {
        let row = self.row_mut(truth);
        if verdict == CoilLabel::LooseWire {
            row.loose_wire += 1;
        } else {
            row.ok += 1;
        }
    }
    /// The verdicts for one true label.
    pub fn row(&self, truth: CoilLabel) -> VerdictCounts {
        match truth {
            CoilLabel::Ok => self.ok,
            CoilLabel::Burr => self.burr,
            CoilLabel::LooseWire => self.loose_wire,
        }
    }
    fn row_mut(&mut self, truth: CoilLabel) -> &mut VerdictCounts {
        match truth {
            CoilLabel::Ok => &mut self.ok,
            CoilLabel::Burr => &mut self.burr,
            CoilLabel::LooseWire => &mut self.loose_wire,
        }
    }
}

/// Prevalences asked for (fractions of products).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prevalence {
    /// Products with a loose wire.
    pub loose_wire: f64,
    /// Products with burrs.
    pub burr: f64,
    /// Products with both.
    pub both: f64,
}

/// Label counts of a coil data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoilCounts {
    /// Per image label.
    pub images: LabelCounts,
    /// Per product label.
    pub products: LabelCounts,
}

/// How the simulated camera did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraReport {
    /// The rule, in words.
    pub rule: String,
    /// Per image.
    pub images: Confusion,
    /// Per product (flagged when any of its images is flagged).
    pub products: Confusion,
}

/// `dataset.json` of `loupe synth coils`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoilDataset {
    /// [`GENERATOR`].
    pub generator: String,
    /// `coils`.
    pub kind: String,
    /// The seed.
    pub seed: u64,
    /// Number of products.
    pub products: u32,
    /// Camera angles per product (8).
    pub angles: u32,
    /// Number of images.
    pub images: u64,
    /// Image width and height.
    pub size: u32,
    /// Image format.
    pub format: ImageFormat,
    /// Prevalences asked for.
    pub prevalence: Prevalence,
    /// Label counts.
    pub counts: CoilCounts,
    /// The camera's confusion.
    pub camera: CameraReport,
}

/// A steel-surface defect class; its index is the pixel value in the masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SurfaceClass {
    /// Long thin line, possibly curved (mask value 1).
    Scratch = 1,
    /// Small dark round spots, often clustered (2).
    Pit = 2,
    /// Irregular blotch of another tone or texture (3).
    Patch = 3,
    /// Elongated dark streak along the rolling direction (4).
    Inclusion = 4,
}

impl SurfaceClass {
    /// All classes, by index.
    pub const ALL: [SurfaceClass; 4] = [
        SurfaceClass::Scratch,
        SurfaceClass::Pit,
        SurfaceClass::Patch,
        SurfaceClass::Inclusion,
    ];

    /// The mask pixel value.
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The class name.
    pub fn name(self) -> &'static str {
        match self {
            SurfaceClass::Scratch => "scratch",
            SurfaceClass::Pit => "pit",
            SurfaceClass::Patch => "patch",
            SurfaceClass::Inclusion => "inclusion",
        }
    }

    /// The class with mask value `index` (1..=4).
    pub fn from_index(index: u8) -> Option<SurfaceClass> {
        SurfaceClass::ALL
            .get(index.wrapping_sub(1) as usize)
            .copied()
    }
}

/// One `manifest.jsonl` line of `loupe synth surfaces`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurfaceRecord {
    /// Image path relative to the output directory (`images/s00042.png`, 8-bit gray).
    pub file: String,
    /// Mask path (`masks/s00042.png`, 8-bit gray, pixel value = class index).
    pub mask: String,
    /// Image id (`s00042`).
    pub id: String,
    /// Classes present in the mask, by index.
    pub classes: Vec<SurfaceClass>,
    /// Whether any defect is present.
    pub defect: bool,
    /// Mask pixels per class (every class, 0 when absent).
    pub area_px: ClassCounts,
    /// Number of defect instances drawn.
    pub instances: u32,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

/// A count per surface defect class, in class-index order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    /// `scratch` (1).
    pub scratch: u64,
    /// `pit` (2).
    pub pit: u64,
    /// `patch` (3).
    pub patch: u64,
    /// `inclusion` (4).
    pub inclusion: u64,
}

impl ClassCounts {
    /// The count of `class`.
    pub fn get(&self, class: SurfaceClass) -> u64 {
        match class {
            SurfaceClass::Scratch => self.scratch,
            SurfaceClass::Pit => self.pit,
            SurfaceClass::Patch => self.patch,
            SurfaceClass::Inclusion => self.inclusion,
        }
    }

    /// Adds `n` to the count of `class`.
    pub fn add(&mut self, class: SurfaceClass, n: u64) {
        match class {
            SurfaceClass::Scratch => self.scratch += n,
            SurfaceClass::Pit => self.pit += n,
            SurfaceClass::Patch => self.patch += n,
            SurfaceClass::Inclusion => self.inclusion += n,
        }
    }
}

/// One row of the class index table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassEntry {
    /// Mask pixel value.
    pub index: u8,
    /// Class name.
    pub name: &'static str,
}

/// Counts of a surface data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurfaceCounts {
    /// Images without any defect.
    pub defect_free: u64,
    /// Images with at least one defect.
    pub with_defect: u64,
    /// Images where each class is present.
    pub images_with: ClassCounts,
    /// Mask pixels per class over the data set.
    pub area_px: ClassCounts,
}

/// `dataset.json` of `loupe synth surfaces`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurfaceDataset {
    /// [`GENERATOR`].
    pub generator: String,
    /// `surfaces`.
    pub kind: String,
    /// The seed.
    pub seed: u64,
    /// Number of images.
    pub images: u32,
    /// Image width and height.
    pub size: u32,
    /// Image format of images and masks (`png`).
    pub format: ImageFormat,
    /// Pixel format of the images (`gray8`).
    pub color: String,
    /// Mask values: 0 background, then the classes.
    pub classes: Vec<ClassEntry>,
    /// Counts.
    pub counts: SurfaceCounts,
}

/// The class index table: 0 `background`, 1 `scratch`, 2 `pit`, 3 `patch`, 4 `inclusion`.
pub fn class_table() -> Vec<ClassEntry> {
    std::iter::once(ClassEntry {
        index: 0,
        name: "background",
    })
    .chain(SurfaceClass::ALL.iter().map(|c| ClassEntry {
        index: c.index(),
        name: c.name(),
    }))
    .collect()
}

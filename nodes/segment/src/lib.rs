//! # loupe-segment
//!
//! The `segment` node: runs an ONNX segmentation model on ONNX Runtime, turns its per-pixel
//! classes into defect regions, and draws their contours on the original image.
//!
//! Relationships:
//! - `success`: the original content, unchanged, with the `segment.*` attributes;
//! - `overlay` (when `overlay: true`): a child FlowFile whose content is the original with
//!   each region's contour drawn in its class colour (PNG, the original's size);
//! - `mask` (when `mask: true`): a child FlowFile whose content is the class mask at the
//!   original's size (8-bit gray PNG, pixel value = class index in the card's labels, 0 =
//!   background; stretch it with nearest neighbour only);
//! - `failure`: undecodable images (`error.kind = invalid_input`), images over the size
//!   limits (`error.kind = too_large`: `serving.max_pixels`, `serving.max_bytes`, checked
//!   from the header, so a decompression bomb costs nothing) and model errors.
//!
//! The children carry the parent's attributes plus `segment.output` (`overlay` or `mask`),
//! `segment.parent` (the original's uuid), `mime.type = image/png` and a `filename` with
//! `.overlay.png` / `.mask.png` in place of the extension.
//!
//! Attributes written (see [`attr`]): `segment.defect` (`true` when the image score reaches
//! the card's `image_threshold`), `segment.score`, `segment.classes` (defect classes present,
//! comma-separated), `segment.area_pct.<class>` for every defect class (share of the image,
//! percent, 3 decimals), `segment.regions` (JSON list, largest first: `class`, `bbox`
//! `[x0, y0, x1, y1]` in original pixels with `x1`/`y1` exclusive, `area_px` in original
//! pixels, `area_pct`), `segment.regions.count` and `segment.model`.
//!
//! Serving is the classify node's: dynamic batching, warm-up before SERVING, hot reload of a
//! changed model (all in [`loupe_sdk::model`]), set by the same `serving:` settings with the
//! same defaults ([`loupe_sdk::model::serving::ServingSettings`]: `intra_threads: 1`, `sessions: 0`
//! (one per core),
//! `max_batch: 1`, `max_batch_delay: 2ms`, `batch_queue: 64`, `reload_interval: 2s`,
//! `max_pixels: 50000000`, `max_bytes: 67108864`):
//!
//! ```yaml
//! settings:
//!   model: models/surface-segmenter
//!   serving: { max_batch: 4, reload_interval: 0s }
//! ```
//!
//! With `loupe serve segment` the port also answers the Open Inference Protocol
//! (`inference.GRPCInferenceService`) for the model, under the card's name and version,
//! through the same session ([`loupe_sdk::model::oip::service`]).
//!
//! ## Layout
//! - [`card`]: the segmentation model card.
//! - [`segmenter`]: card + session: images in, class masks and image scores out (shared with
//!   `loupe eval`).
//! - [`regions`]: connected regions and outlines of a class mask.
//! - [`overlay`]: the mask at the original size, contours on the original, PNG encoding.
//! - [`eval`]: Dice, IoU and AUROC over a labelled folder, for `loupe eval`.
//! - this file: the node type ([`Segment`]), its settings and its processor.

pub mod card;
pub mod eval;
pub mod overlay;
pub mod regions;
pub mod segmenter;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use image::DynamicImage;
use loupe_sdk::model::oip::{self, OipModel};
use loupe_sdk::model::server::{ModelServer, model_problems};
use loupe_sdk::model::serving::{self, ServingSettings};
use loupe_sdk::model::{interrupted, resume_panic};
use loupe_sdk::{
    BuildContext, ErrorKind, FlowFile, Node, NodeDescription, NodeError, NodeKind, Output,
    ProcessError, Processor, Relationship, SettingsError,
};
use schemars::JsonSchema;
use serde::Deserialize;

pub use card::SegmenterCard;
pub use segmenter::{Segmentation, Segmenter, SegmenterError};

/// Attribute names this node writes.
pub mod attr {
    /// `true` when the image score reaches the card's image threshold.
    pub const DEFECT: &str = "segment.defect";
    /// The image score (largest per-pixel defect probability), 4 decimals.
    pub const SCORE: &str = "segment.score";
    /// Defect classes present in the mask, comma-separated, in label order.
    pub const CLASSES: &str = "segment.classes";
    /// Prefix of the per-class area attributes: `segment.area_pct.<class>`.
    pub const AREA_PCT_PREFIX: &str = "segment.area_pct.";
    /// JSON list of regions, largest first.
    pub const REGIONS: &str = "segment.regions";
    /// Number of regions found (the JSON list may be capped by `max_regions`).
    pub const REGION_COUNT: &str = "segment.regions.count";
    /// `name@version` of the model.
    pub const MODEL: &str = "segment.model";
    /// On `overlay` and `mask` children: which of the two it is.
    pub const OUTPUT: &str = "segment.output";
    /// On `overlay` and `mask` children: the uuid of the FlowFile they were made from.
    pub const PARENT: &str = "segment.parent";
}

/// Relationship of the overlay images.
pub const OVERLAY: &str = "overlay";
/// Relationship of the class masks.
pub const MASK: &str = "mask";

/// The `segment` node type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Segment;

/// Settings of a `segment` node.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentSettings {
    /// Directory holding `model.onnx` and its card `model.yaml`; relative to the flow file.
    pub model: PathBuf,
    /// Image threshold in `[0, 1]` replacing the card's `image_threshold` for
    /// `segment.defect`.
    #[serde(default)]
    pub threshold_override: Option<f32>,
    /// Regions smaller than this many pixels of the model's mask are ignored (specks).
    #[serde(default = "default_min_region_px")]
    pub min_region_px: u64,
    /// Most regions listed in `segment.regions` (the largest); `segment.regions.count` has
    /// them all.
    #[serde(default = "default_max_regions")]
    pub max_regions: usize,
    /// Emit the overlay image (contours on the original) to the `overlay` relationship.
    #[serde(default = "default_true")]
    pub overlay: bool,
    /// Emit the class mask to the `mask` relationship.
    #[serde(default = "default_true")]
    pub mask: bool,
    /// How the model is served: batching, threads, hot reload (`serving: { max_batch: 4 }`;
    /// every key optional, defaults in [`ServingSettings`], the same as classify's).
    #[serde(default)]
    pub serving: ServingSettings,
}

fn default_min_region_px() -> u64 {
    4
}
fn default_max_regions() -> usize {
    50
}
fn default_true() -> bool {
    true
}

#[async_trait]
impl NodeKind for Segment {
    const TYPE: &'static str = "segment";
    type Settings = SegmentSettings;

    fn relationships(settings: &SegmentSettings) -> Vec<Relationship> {
        let mut relationships = vec![Relationship::new(
            loupe_sdk::SUCCESS,
            "Segmented: segment.* attributes written, content unchanged",
        )];
        if settings.overlay {
            relationships.push(Relationship::new(
                OVERLAY,
                "The original with each defect's contour drawn on it (PNG)",
            ));
        }
        if settings.mask {
            relationships.push(Relationship::new(
                MASK,
                "The class mask at the original size (gray PNG, value = class index)",
            ));
        }
        relationships.push(Relationship::failure());
        relationships
    }

    fn validate(settings: &SegmentSettings) -> Vec<SettingsError> {
        let mut problems = model_problems(&settings.model, settings.threshold_override);
        problems.extend(settings.serving.problems_at(serving::KEY));
        problems
    }

    async fn build(settings: SegmentSettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let server = Arc::new(
            ModelServer::open(
                Self::TYPE,
                &ctx.node_id,
                ctx.resolve(&settings.model),
                &settings.model,
                settings.serving,
            )
            .await?,
        );
        let current = server.clone();
        Ok(Node::processor(SegmentProcessor {
            server,
            description: loupe_sdk::factory::describe::<Self>(&settings, ctx),
            settings,
        })
        .with_extension(oip::extension(move || current.current())))
    }
}

/// The Open Inference Protocol serves the model under its card's name and version, through
/// the session the node segments with.
impl OipModel for Segmenter {
    fn oip_name(&self) -> &str {
        &self.card().name
    }

    fn oip_version(&self) -> &str {
        &self.card().version
    }

    fn onnx_session(&self) -> &Mutex<ort::session::Session> {
        self.session()
    }
}

/// The built node.
struct SegmentProcessor {
    server: Arc<ModelServer<Segmenter>>,
    settings: SegmentSettings,
    description: NodeDescription,
}

#[async_trait]
impl Processor for SegmentProcessor {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    async fn start(&self) -> Result<(), NodeError> {
        self.server.warm_up().await
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let inference = self.server.infer(flow_file.content.clone()).await?;
        let settings = self.settings.clone();
        // Regions, contours and PNG encoding are CPU work too.
        resume_panic(
            tokio::task::spawn_blocking(move || {
                outputs(
                    flow_file,
                    &inference.image,
                    &inference.output,
                    inference.model.card(),
                    &settings,
                )
            })
            .await,
        )
        .map_err(|e| interrupted(Segment::TYPE, e))?
    }
}

/// The FlowFiles for one segmented image.
fn outputs(
    flow_file: FlowFile,
    image: &DynamicImage,
    segmentation: &Segmentation,
    card: &SegmenterCard,
    settings: &SegmentSettings,
) -> Result<Vec<Output>, ProcessError> {
    let (width, height) = (image.width(), image.height());
    let (mask_w, mask_h) = segmentation.mask.dimensions();
    let (sx, sy) = (
        f64::from(width) / f64::from(mask_w),
        f64::from(height) / f64::from(mask_h),
    );
    let mask_pixels = (u64::from(mask_w) * u64::from(mask_h)).max(1) as f64;
    let found = regions::regions(&segmentation.mask, settings.min_region_px);
    let listed: Vec<serde_json::Value> = found
        .iter()
        .take(settings.max_regions)
        .map(|r| {
            let scale = |v: u32, s: f64, max: u32| ((f64::from(v) * s).round() as u32).min(max);
            serde_json::json!({
                "class": card.labels[usize::from(r.class)],
                "bbox": [scale(r.bbox[0], sx, width), scale(r.bbox[1], sy, height),
                         scale(r.bbox[2], sx, width), scale(r.bbox[3], sy, height)],
                "area_px": (r.area_px as f64 * sx * sy).round() as u64,
                "area_pct": round3(r.area_px as f64 / mask_pixels * 100.0),
            })
        })
        .collect();
    let threshold = settings.threshold_override.unwrap_or(card.image_threshold);
    let defect = segmentation.score >= threshold;
    let present: Vec<&str> = card
        .labels
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, _)| segmentation.class_pixels[*i] > 0)
        .map(|(_, l)| l.as_str())
        .collect();

    let mut original = flow_file
        .with_attr(attr::DEFECT, defect.to_string())
        .with_attr(attr::SCORE, format!("{:.4}", segmentation.score))
        .with_attr(attr::CLASSES, present.join(","))
        .with_attr(attr::REGIONS, serde_json::Value::Array(listed).to_string())
        .with_attr(attr::REGION_COUNT, found.len().to_string())
        .with_attr(attr::MODEL, card.id());
    for (i, label) in card.labels.iter().enumerate().skip(1) {
        let pct = segmentation.class_pixels[i] as f64 / mask_pixels * 100.0;
        original = original.with_attr(
            format!("{}{label}", attr::AREA_PCT_PREFIX),
            format!("{pct:.3}"),
        );
    }

    let mut out = Vec::with_capacity(3);
    if settings.overlay || settings.mask {
        let full_mask = overlay::mask_at(&segmentation.mask, width, height);
        let encode_error = |e: image::ImageError| {
            ProcessError::new(ErrorKind::Internal, format!("encoding PNG: {e}"))
        };
        if settings.overlay {
            let drawn =
                overlay::draw_contours(image, &full_mask, overlay::thickness_for(width, height));
            let png = overlay::png(&DynamicImage::ImageRgb8(drawn)).map_err(encode_error)?;
            out.push(child(&original, png, OVERLAY).to(OVERLAY));
        }
        if settings.mask {
            let png = overlay::png(&DynamicImage::ImageLuma8(full_mask)).map_err(encode_error)?;
            out.push(child(&original, png, MASK).to(MASK));
        }
    }
    out.insert(0, original.to(loupe_sdk::SUCCESS));
    Ok(out)
}

/// A PNG child of `parent`: `segment.output`, `segment.parent`, `mime.type` and a derived
/// file name.
fn child(parent: &FlowFile, png: Vec<u8>, kind: &str) -> FlowFile {
    let stem = parent
        .attr(loupe_sdk::attr::FILENAME)
        .map(|name| {
            Path::new(name)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| parent.uuid.clone());
    parent
        .child(Bytes::from(png), kind)
        .with_attr(attr::OUTPUT, kind)
        .with_attr(attr::PARENT, parent.uuid.clone())
        .with_attr(loupe_sdk::attr::MIME_TYPE, "image/png")
        .with_attr(loupe_sdk::attr::FILENAME, format!("{stem}.{kind}.png"))
}

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

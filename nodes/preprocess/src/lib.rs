//! # loupe-preprocess
//!
//! The `preprocess` node: decodes a camera image (JPEG, PNG, BMP, TIFF; 8- or 16-bit, grey
//! or colour, with or without alpha), turns it the right way up (EXIF orientation), crops a
//! region of interest, resizes it with SIMD (`fast_image_resize`), converts its pixel format
//! and re-encodes it (PNG or JPEG) as the FlowFile's new content.
//!
//! ## Behaviour
//! - The format is recognised **from the content**, never from `filename` or `mime.type`.
//! - Limits (`max_bytes`, `max_pixels`, and the SDK's side and allocation limits) are checked
//!   from the header **before** pixels are allocated: a decompression bomb costs nothing.
//! - Steps, in order: decode, orientation, `roi`, `resize`, `color`, `output`
//!   (see [`PreprocessSettings`]); with `frame_check`, the output image is checked to be
//!   worth judging and `frame.usable` / `frame.reason` / `frame.<measure>` are written.
//! - Success: the FlowFile (same uuid) goes to `success` with the new content and the
//!   attributes in [`attr`] plus `mime.type`.
//! - Failure: `failure` with `error.kind` = `invalid_input` (empty, unsupported, corrupt or
//!   truncated data, a region of interest outside the image) or `too_large` (a limit), and
//!   an `error.message` naming the problem; the content is untouched.
//! - The CPU work runs on Tokio's blocking pool; the decoders cannot bring the node down
//!   (a decoder panic is contained and reported as a corrupt image).
//!
//! ## Layout
//! - [`settings`]: the settings and their validation.
//! - [`frame`]: the usable-frame check (exposure, focus, noise, object at its scale).
//! - [`geometry`]: region of interest, `fit` and `fill` rectangles (pure arithmetic).
//! - [`pipeline`]: decode, crop, resize, convert, encode (pure, synchronous).
//! - [`error`]: [`PreprocessError`] and its error kinds.
//! - [`processor`]: the built node.

pub mod error;
pub mod frame;
pub mod geometry;
pub mod pipeline;
pub mod processor;
pub mod settings;

use async_trait::async_trait;
use loupe_sdk::{BuildContext, Node, NodeError, NodeKind, Relationship, SettingsError};

pub use error::PreprocessError;
pub use pipeline::{Pipeline, Processed};
pub use processor::PreprocessProcessor;
pub use settings::{
    ColorMode, Filter, OutputFormat, OutputSettings, PreprocessSettings, Resize, ResizeMode, Roi,
};

/// Attribute names this node writes (besides `mime.type`).
pub mod attr {
    /// Output width in pixels.
    pub const WIDTH: &str = "image.width";
    /// Output height in pixels.
    pub const HEIGHT: &str = "image.height";
    /// Width of the input image, upright (after EXIF orientation): the frame `roi` refers to.
    pub const ORIGINAL_WIDTH: &str = "image.original.width";
    /// Height of the input image, upright.
    pub const ORIGINAL_HEIGHT: &str = "image.original.height";
    /// Format of the input, from its content: `jpeg`, `png`, `bmp` or `tiff`.
    pub const ORIGINAL_FORMAT: &str = "image.original.format";
    /// EXIF orientation of the input (1 to 8; 1 when it had none), already applied.
    pub const ORIGINAL_ORIENTATION: &str = "image.original.orientation";
}

/// The `preprocess` node type (register it with `Registry::with::<Preprocess>()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Preprocess;

#[async_trait]
impl NodeKind for Preprocess {
    const TYPE: &'static str = "preprocess";
    type Settings = PreprocessSettings;

    fn relationships(_settings: &PreprocessSettings) -> Vec<Relationship> {
        vec![
            Relationship::new(
                loupe_sdk::SUCCESS,
                "Preprocessed: content = the re-encoded image; image.* and mime.type written",
            ),
            Relationship::failure(),
        ]
    }

    fn validate(settings: &PreprocessSettings) -> Vec<SettingsError> {
        settings.problems()
    }

    async fn build(settings: PreprocessSettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let description = loupe_sdk::factory::describe::<Self>(&settings, ctx);
        let pipeline = Pipeline::new(&settings);
        tracing::info!(
            node = %ctx.node_id,
            roi = ?settings.roi,
            resize = ?settings.resize,
            color = ?settings.color,
            output = ?settings.output.format,
            max_pixels = settings.max_pixels,
            max_bytes = settings.max_bytes,
            "preprocess node built"
        );
        Ok(Node::processor(PreprocessProcessor::new(
            pipeline,
            description,
        )))
    }
}

//! Errors of the `preprocess` node and their [`ProcessError`] kinds.

use loupe_sdk::imaging::ImageError;
use loupe_sdk::{ErrorKind, ProcessError};

use crate::settings::{OutputFormat, Roi};

/// Why one image could not be preprocessed.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The content is not an acceptable image (kind `invalid_input` or `too_large`, see
    /// [`ImageError::kind`]).
    #[error(transparent)]
    Decode(#[from] ImageError),
    /// The region of interest is not inside the image (`invalid_input`).
    #[error(
        "roi {roi} does not fit inside the {width}x{height} image (size after EXIF orientation): it reaches x={}, y={}",
        u64::from(roi.x) + u64::from(roi.width),
        u64::from(roi.y) + u64::from(roi.height)
    )]
    RoiOutside {
        /// The configured region.
        roi: Roi,
        /// Width of the upright image.
        width: u32,
        /// Height of the upright image.
        height: u32,
    },
    /// The resizer refused its input (`internal`: a bug, not bad data).
    #[error("resizing failed: {0}")]
    Resize(String),
    /// The encoder refused the result (`internal`).
    #[error("encoding the output as {format:?} failed: {reason}")]
    Encode {
        /// The output format.
        format: OutputFormat,
        /// What the encoder said.
        reason: String,
    },
}

impl PreprocessError {
    /// The [`ErrorKind`] reported for this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PreprocessError::Decode(e) => e.kind(),
            PreprocessError::RoiOutside { .. } => ErrorKind::InvalidInput,
            PreprocessError::Resize(_) | PreprocessError::Encode { .. } => ErrorKind::Internal,
        }
    }
}

impl From<PreprocessError> for ProcessError {
    fn from(e: PreprocessError) -> Self {
        ProcessError::new(e.kind(), e.to_string())
    }
}

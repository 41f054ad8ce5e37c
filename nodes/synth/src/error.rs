//! Errors of the generators.

use std::path::PathBuf;

/// Why a synthetic data set could not be generated.
///
/// Argument errors name the command-line flag they come from (`--products`, `--size`, ...):
/// the option structs mirror the flags of `loupe synth`.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A count (`--products`, `--images`) is zero.
    #[error("{flag} must be at least 1 (got 0): there would be nothing to generate")]
    ZeroCount {
        /// The flag, e.g. `--products`.
        flag: &'static str,
    },
    /// A prevalence is not a fraction in [0, 1].
    #[error("{flag} is a fraction of products and must be within [0, 1] (got {value})")]
    PrevalenceOutOfRange {
        /// The flag, e.g. `--loose-wire`.
        flag: &'static str,
        /// The value given.
        value: f64,
    },
    /// The prevalences cannot hold together (e.g. more products with both defects than
    /// with one of them).
    #[error("inconsistent prevalences: {0}")]
    InconsistentPrevalence(String),
    /// `--size` is outside the supported range.
    #[error("--size must be between {min} and {max} pixels (got {value})")]
    SizeOutOfRange {
        /// The value given.
        value: u32,
        /// Smallest supported size.
        min: u32,
        /// Largest supported size.
        max: u32,
    },
    /// `--format` is not one of the supported image formats.
    #[error("unknown image format `{0}` (expected `png` or `jpg`)")]
    UnknownFormat(String),
    /// The output path exists and is not a directory.
    #[error("output path {} exists and is not a directory", .0.display())]
    OutNotADirectory(PathBuf),
    /// The output directory holds files that are not an earlier `loupe synth` output.
    #[error(
        "output directory {} is not empty and holds no earlier `loupe synth` output \
         (no dataset.json from this generator); choose a new or empty directory",
        .0.display()
    )]
    OutNotEmpty(PathBuf),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding an image failed.
    #[error("{}: {source}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: image::ImageError,
    },
    /// Serializing the manifest failed.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl SynthError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SynthError::Io {
            path: path.into(),
            source,
        }
    }
}

//! Image decoding with limits, shared by the nodes that read camera images.
//!
//! [`decode`] takes encoded bytes (a FlowFile's content) and returns an upright
//! [`DynamicImage`], or an [`ImageError`] that says what is wrong in words an operator can
//! act on. It:
//!
//! 1. refuses empty content and content over [`DecodeLimits::max_bytes`];
//! 2. recognises the format **from the content** (never from a file name or `mime.type`):
//!    JPEG, PNG, BMP or TIFF; anything else (GIF, WebP, a ZIP archive, HTML, ...) is
//!    [`ImageError::UnsupportedFormat`] naming what it looks like;
//! 3. reads only the header first and checks the dimensions against
//!    [`DecodeLimits::max_width`]/[`max_height`](DecodeLimits::max_height)/
//!    [`max_pixels`](DecodeLimits::max_pixels) and the decoded size against
//!    [`max_alloc`](DecodeLimits::max_alloc) **before** any pixel buffer is allocated, so a
//!    small file claiming 100000x100000 pixels (a decompression bomb) costs nothing;
//! 4. refuses a JPEG whose data ends before its end-of-image marker (the JPEG decoder would
//!    otherwise fill the missing part with grey and call it a success);
//! 5. decodes (8- and 16-bit, grey and colour, with or without alpha, as stored) and applies
//!    the EXIF orientation, so the image is the right way up;
//! 6. never panics: a panic inside a decoder is caught and reported as a corrupt image.
//!
//! [`decode_at_least`] does the same for a consumer that needs fewer pixels (a model's
//! input): a JPEG much larger than that is decoded with DCT scaling (`scaled_jpeg`).
//!
//! Every [`ImageError`] converts into a [`ProcessError`] of kind `invalid_input` (bad data)
//! or `too_large` (a limit), so a node can simply use `?`.

use std::fmt;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::error::LimitErrorKind;
use image::{ImageDecoder, ImageReader};

use crate::error::{ErrorKind, ProcessError};

mod scaled_jpeg;

pub use image::DynamicImage;
pub use image::metadata::Orientation;

/// Image formats [`decode`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG (JFIF/EXIF), baseline or progressive.
    Jpeg,
    /// PNG, 1 to 16 bits per sample.
    Png,
    /// Windows bitmap.
    Bmp,
    /// TIFF (little- or big-endian, BigTIFF), 8 or 16 bits per sample.
    Tiff,
}

impl Format {
    /// Lower-case short name (`jpeg`, `png`, `bmp`, `tiff`), as written to attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
        }
    }

    /// The MIME type.
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Bmp => "image/bmp",
            Format::Tiff => "image/tiff",
        }
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Bmp => image::ImageFormat::Bmp,
            Format::Tiff => image::ImageFormat::Tiff,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::Bmp => "BMP",
            Format::Tiff => "TIFF",
        })
    }
}

/// What [`decode`] accepts. Every limit is checked before pixels are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded input, in bytes.
    pub max_bytes: usize,
    /// Largest width in pixels, as stored (before EXIF orientation).
    pub max_width: u32,
    /// Largest height in pixels, as stored (before EXIF orientation).
    pub max_height: u32,
    /// Largest width x height.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate, the decoded image included (the `image` crate's
    /// `Limits::max_alloc`).
    pub max_alloc: u64,
}

impl DecodeLimits {
    /// Default largest input: 64 MiB, the SDK's default message size.
    pub const DEFAULT_MAX_BYTES: usize = crate::DEFAULT_MAX_MESSAGE_BYTES;
    /// Default largest side: 65535 pixels, JPEG's own maximum.
    pub const DEFAULT_MAX_SIDE: u32 = 65_535;
    /// Default largest image: 50 megapixels.
    pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;
    /// Default allocation limit: 512 MiB, the `image` crate's default.
    pub const DEFAULT_MAX_ALLOC: u64 = 512 * 1024 * 1024;

    /// Limits for images up to `max_pixels`, with an allocation limit that lets the largest
    /// of them decode at 16 bits per channel with alpha (8 bytes per pixel) plus 64 MiB for
    /// the decoder's own buffers, and never less than the default.
    pub fn for_pixels(max_bytes: usize, max_pixels: u64) -> Self {
        DecodeLimits {
            max_bytes,
            max_pixels,
            max_alloc: max_pixels
                .saturating_mul(8)
                .saturating_add(64 * 1024 * 1024)
                .max(Self::DEFAULT_MAX_ALLOC),
            ..Self::default()
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_width: Self::DEFAULT_MAX_SIDE,
            max_height: Self::DEFAULT_MAX_SIDE,
            max_pixels: Self::DEFAULT_MAX_PIXELS,
            max_alloc: Self::DEFAULT_MAX_ALLOC,
        }
    }
}

/// A decoded image, the right way up.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The pixels in their stored depth and channels, EXIF orientation applied.
    pub image: DynamicImage,
    /// The format recognised from the content.
    pub format: Format,
    /// Width as stored in the file (before orientation).
    pub stored_width: u32,
    /// Height as stored in the file (before orientation).
    pub stored_height: u32,
    /// The EXIF orientation that was applied (`NoTransforms` without EXIF, or when the EXIF
    /// data cannot be read: a broken EXIF block does not make a good image unusable).
    pub orientation: Orientation,
}

impl Decoded {
    /// Width of the upright image.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height of the upright image.
    pub fn height(&self) -> u32 {
        self.image.height()
    }
}

/// Why encoded bytes could not be decoded. Each variant maps to a [`ProcessError`] kind:
/// `too_large` for limits, `invalid_input` for everything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// No bytes at all.
    #[error("empty content: expected an encoded image (JPEG, PNG, BMP or TIFF)")]
    Empty,
    /// The encoded input is larger than [`DecodeLimits::max_bytes`].
    #[error("image content of {size} bytes exceeds the limit of {limit} bytes")]
    TooManyBytes {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The content is not one of the supported formats.
    #[error("unsupported image format: {detected}; expected JPEG, PNG, BMP or TIFF")]
    UnsupportedFormat {
        /// What the content looks like (`GIF`, `ZIP archive`, `text`, the first bytes, ...).
        detected: String,
    },
    /// The data ends before the image does.
    #[error("truncated {format} image: the data ends before the image is complete ({detail})")]
    Truncated {
        /// The format recognised.
        format: Format,
        /// What was missing.
        detail: String,
    },
    /// The data is damaged or inconsistent.
    #[error("corrupt {format} image: {reason}")]
    Corrupt {
        /// The format recognised.
        format: Format,
        /// What the decoder found wrong.
        reason: String,
    },
    /// A valid file using a feature the decoder does not implement.
    #[error("unsupported {format} image: {reason}")]
    UnsupportedFeature {
        /// The format recognised.
        format: Format,
        /// The feature.
        reason: String,
    },
    /// A side is longer than [`DecodeLimits::max_width`] or [`DecodeLimits::max_height`].
    #[error(
        "{format} image of {width}x{height} pixels exceeds the largest accepted size of {max_width}x{max_height}"
    )]
    TooLarge {
        /// The format recognised.
        format: Format,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The width limit.
        max_width: u32,
        /// The height limit.
        max_height: u32,
    },
    /// width x height is over [`DecodeLimits::max_pixels`].
    #[error(
        "{format} image of {width}x{height} = {pixels} pixels exceeds the limit of {limit} pixels"
    )]
    TooManyPixels {
        /// The format recognised.
        format: Format,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// width x height.
        pixels: u64,
        /// The limit.
        limit: u64,
    },
    /// Decoding would allocate more than [`DecodeLimits::max_alloc`].
    #[error("decoding the {format} image needs more memory than allowed: {detail}")]
    TooMuchMemory {
        /// The format recognised.
        format: Format,
        /// How much, against which limit.
        detail: String,
    },
    /// The decoder panicked on this input (a decoder bug triggered by malformed data); the
    /// panic was contained.
    #[error("corrupt {format} image: the decoder failed unexpectedly ({message})")]
    DecoderPanicked {
        /// The format recognised.
        format: Format,
        /// The panic message.
        message: String,
    },
}

impl ImageError {
    /// The [`ErrorKind`] this error is reported as.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::TooManyBytes { .. }
            | ImageError::TooLarge { .. }
            | ImageError::TooManyPixels { .. }
            | ImageError::TooMuchMemory { .. } => ErrorKind::TooLarge,
            ImageError::Empty
            | ImageError::UnsupportedFormat { .. }
            | ImageError::Truncated { .. }
            | ImageError::Corrupt { .. }
            | ImageError::UnsupportedFeature { .. }
            | ImageError::DecoderPanicked { .. } => ErrorKind::InvalidInput,
        }
    }
}

impl From<ImageError> for ProcessError {
    fn from(e: ImageError) -> Self {
        ProcessError::new(e.kind(), e.to_string())
    }
}

/// Recognises the format from the first bytes of the content.
pub fn sniff(bytes: &[u8]) -> Result<Format, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    // JPEG: SOI (FF D8). The third byte (FF of the next marker) is not required, so that a
    // file cut right after SOI is reported as a truncated JPEG rather than as unknown data.
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(Format::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if bytes.starts_with(b"BM") {
        return Ok(Format::Bmp);
    }
    if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
        .iter()
        .any(|sig| bytes.starts_with(&sig[..]))
    {
        return Ok(Format::Tiff);
    }
    Err(ImageError::UnsupportedFormat {
        detected: describe_unknown(bytes),
    })
}

/// Names what unsupported content looks like, for the error message.
fn describe_unknown(bytes: &[u8]) -> String {
    const KNOWN: &[(&[u8], &str)] = &[
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"PK\x03\x04", "ZIP archive"),
        (b"PK\x05\x06", "ZIP archive (empty)"),
        (b"%PDF", "PDF document"),
        (b"\x1f\x8b", "gzip data"),
        (b"\0\0\x01\0", "ICO"),
        (b"8BPS", "Photoshop PSD"),
        (b"\x89PNG", "damaged PNG signature"),
        (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
        (b"\0\0\0\x0cjP  ", "JPEG 2000"),
        (b"\xff\x0a", "JPEG XL"),
        (b"qoif", "QOI"),
        (b"farbfeld", "farbfeld"),
        (b"\x76\x2f\x31\x01", "OpenEXR"),
        (b"#?RADIANCE", "Radiance HDR"),
    ];
    if let Some((_, name)) = KNOWN.iter().find(|(sig, _)| bytes.starts_with(sig)) {
        return (*name).to_string();
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" {
        return match &bytes[8..12] {
            b"WEBP" => "WebP".to_string(),
            b"AVI " => "AVI video".to_string(),
            b"WAVE" => "WAV audio".to_string(),
            _ => "RIFF container".to_string(),
        };
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"avif" | b"avis" => "AVIF".to_string(),
            b"heic" | b"heix" | b"mif1" | b"msf1" => "HEIF/HEIC".to_string(),
            _ => "MP4/ISO media".to_string(),
        };
    }
    let head = &bytes[..bytes.len().min(512)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        // A multi-byte character cut at the 512-byte boundary is still text.
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    if let Some(text) = text
        && text
            .chars()
            .all(|c| !c.is_control() || c.is_ascii_whitespace())
    {
        let trimmed = text.trim_start_matches('\u{feff}').trim_start();
        let lower: String = trimmed.chars().take(16).collect::<String>().to_lowercase();
        return if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
            "HTML document".to_string()
        } else if lower.starts_with("<?xml") || lower.starts_with("<svg") {
            "XML/SVG document".to_string()
        } else if trimmed.starts_with('{') || trimmed.starts_with('[') {
            "JSON/text".to_string()
        } else {
            "plain text".to_string()
        };
    }
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unrecognised data starting with bytes {}", shown.join(" "))
}

/// Decodes an image, enforcing `limits` before allocating, and applies its EXIF orientation.
///
/// See the [module documentation](self) for the steps. Never panics.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, ImageError> {
    let format = checked_format(bytes, limits)?;
    guarded(format, || decode_format(bytes, format, limits))
}

/// [`decode`] for a consumer that needs at most `min_width` x `min_height` pixels (a model's
/// input): a JPEG at least twice that size on both sides (upright) is decoded with DCT
/// scaling — 1/2, 1/4 or 1/8, the smallest scale still at least that size — which skips
/// most of the decoding work of a camera-size photo (a 2448 x 2048 photo for a 256 x 256
/// model decodes at 1/8: 306 x 256). Anything else decodes as [`decode`] does. The same
/// limits apply (checked on the stored size); the result is upright, and
/// [`Decoded::stored_width`]/[`stored_height`](Decoded::stored_height) are the file's.
pub fn decode_at_least(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_width: u32,
    min_height: u32,
) -> Result<Decoded, ImageError> {
    let format = checked_format(bytes, limits)?;
    // Whatever the scaled decoder cannot do (or a panic in it) is left to the full decoder.
    if format == Format::Jpeg
        && let Ok(Some(decoded)) = catch_unwind(AssertUnwindSafe(|| {
            scaled_jpeg::decode(bytes, limits, min_width, min_height)
        }))
    {
        return Ok(decoded);
    }
    guarded(format, || decode_format(bytes, format, limits))
}

/// The content's format, after the checks every decode starts with: not empty, within
/// `max_bytes`, a supported format, and the format's own cheap header checks.
fn checked_format(bytes: &[u8], limits: &DecodeLimits) -> Result<Format, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(ImageError::TooManyBytes {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let format = sniff(bytes)?;
    match format {
        Format::Jpeg => check_jpeg_complete(bytes)?,
        Format::Bmp => check_bmp_size(bytes, limits)?,
        Format::Tiff => check_tiff_directory(bytes)?,
        Format::Png => {}
    }
    Ok(format)
}

/// Runs a decoder on untrusted input: the decoders are meant not to panic, but a panic is
/// caught here, the last line of defence, and reported as an error.
fn guarded<T>(
    format: Format,
    decode: impl FnOnce() -> Result<T, ImageError>,
) -> Result<T, ImageError> {
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(panic) => Err(ImageError::DecoderPanicked {
            format,
            message: panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string()),
        }),
    }
}

/// The stored size against the limits on width, height and pixel count.
fn check_size(
    format: Format,
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            format,
            reason: format!("the header gives a size of {width}x{height} pixels"),
        });
    }
    if width > limits.max_width || height > limits.max_height {
        return Err(ImageError::TooLarge {
            format,
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooManyPixels {
            format,
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

fn decode_format(
    bytes: &[u8],
    format: Format,
    limits: &DecodeLimits,
) -> Result<Decoded, ImageError> {
    let fail = |e| map_image_error(format, e);

    // Allocation limit only while reading the header; the sizes are checked below with
    // clear messages before anything else is read.
    let mut header_limits = image::Limits::default();
    header_limits.max_image_width = None;
    header_limits.max_image_height = None;
    header_limits.max_alloc = Some(limits.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(fail)?;

    let (width, height) = decoder.dimensions();
    check_size(format, width, height, limits)?;
    let needed = decoder.total_bytes();
    if needed > limits.max_alloc {
        return Err(ImageError::TooMuchMemory {
            format,
            detail: format!(
                "{width}x{height} {:?} needs {needed} bytes, over the limit of {} bytes",
                decoder.color_type(),
                limits.max_alloc
            ),
        });
    }
    // The output buffer counts towards the limit; the decoder gets what is left.
    let mut decode_limits = image::Limits::default();
    decode_limits.max_image_width = None;
    decode_limits.max_image_height = None;
    decode_limits.max_alloc = Some(limits.max_alloc - needed);
    decoder.set_limits(decode_limits).map_err(fail)?;

    // Unreadable EXIF is not a reason to refuse the pixels.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        image,
        format,
        stored_width: width,
        stored_height: height,
        orientation,
    })
}

/// A JPEG must reach its end-of-image marker (FF D9) after its first scan. The JPEG
/// decoder is lenient and would return a partly grey image for a file cut short.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), ImageError> {
    let truncated = |detail: &str| ImageError::Truncated {
        format: Format::Jpeg,
        detail: detail.to_string(),
    };
    // Walk the marker segments up to the first start-of-scan.
    let mut pos = 2;
    loop {
        // Fill bytes (FF FF ...) may precede a marker.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&ff), Some(&marker)) = (bytes.get(pos), bytes.get(pos + 1)) else {
            return Err(truncated(if pos <= 2 {
                "nothing after the start-of-image marker"
            } else {
                "no image data after the headers"
            }));
        };
        if ff != 0xFF {
            return Err(ImageError::Corrupt {
                format: Format::Jpeg,
                reason: format!("expected a marker at byte {pos}, found 0x{ff:02x}"),
            });
        }
        match marker {
            0xD9 => {
                return Err(ImageError::Corrupt {
                    format: Format::Jpeg,
                    reason: "end-of-image marker before any image data".to_string(),
                });
            }
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            _ => {}
        }
        let (Some(&hi), Some(&lo)) = (bytes.get(pos + 2), bytes.get(pos + 3)) else {
            return Err(truncated("a header segment is cut short"));
        };
        let length = usize::from(u16::from_be_bytes([hi, lo]));
        if length < 2 {
            return Err(ImageError::Corrupt {
                format: Format::Jpeg,
                reason: format!(
                    "segment 0xFF{marker:02X} at byte {pos} has invalid length {length}"
                ),
            });
        }
        let end = pos + 2 + length;
        if end > bytes.len() {
            return Err(truncated("a header segment is cut short"));
        }
        if marker == 0xDA {
            // Start of scan: the entropy-coded data and any further scans follow; they
            // cannot contain FF D9 except as the end-of-image marker.
            let data = &bytes[end..];
            return if data.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
                Ok(())
            } else {
                Err(truncated("no end-of-image marker after the image data"))
            };
        }
        pos = end;
    }
}

/// Checks a BMP's header dimensions against the limits: the BMP decoder refuses large
/// sizes itself, but only as a generic decoding error.
fn check_bmp_size(bytes: &[u8], limits: &DecodeLimits) -> Result<(), ImageError> {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let i32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let header_size = bytes
        .get(14..18)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let size = match header_size {
        // BITMAPCOREHEADER: unsigned 16-bit sides.
        Some(12) => u16_at(18)
            .zip(u16_at(20))
            .map(|(w, h)| (u32::from(w), u32::from(h))),
        // BITMAPINFOHEADER and later: signed 32-bit sides (a negative height is top-down).
        Some(_) => i32_at(18)
            .zip(i32_at(22))
            .map(|(w, h)| (w.unsigned_abs(), h.unsigned_abs())),
        None => None,
    };
    // A header too short to say is left to the decoder, which reports it as truncated.
    let Some((width, height)) = size else {
        return Ok(());
    };
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            format: Format::Bmp,
            reason: format!("the header gives a size of {width}x{height} pixels"),
        });
    }
    if width > limits.max_width || height > limits.max_height {
        return Err(ImageError::TooLarge {
            format: Format::Bmp,
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    Ok(())
}

/// Checks that a classic TIFF's first image directory lies inside the data (the decoder
/// would only say that it failed to read).
fn check_tiff_directory(bytes: &[u8]) -> Result<(), ImageError> {
    let Some(header) = bytes.get(..8) else {
        return Err(ImageError::Truncated {
            format: Format::Tiff,
            detail: format!("{} bytes, shorter than the 8-byte header", bytes.len()),
        });
    };
    let raw = [header[4], header[5], header[6], header[7]];
    let offset = match &header[..4] {
        b"II*\0" => u32::from_le_bytes(raw),
        b"MM\0*" => u32::from_be_bytes(raw),
        // BigTIFF has 64-bit offsets; left to the decoder.
        _ => return Ok(()),
    };
    // An IFD holds at least its 2-byte entry count.
    if u64::from(offset) + 2 > bytes.len() as u64 {
        return Err(ImageError::Corrupt {
            format: Format::Tiff,
            reason: format!(
                "the image directory offset {offset} lies beyond the end of the {}-byte data (cut short or damaged)",
                bytes.len()
            ),
        });
    }
    if offset < 8 {
        return Err(ImageError::Corrupt {
            format: Format::Tiff,
            reason: format!("the image directory offset {offset} points into the header"),
        });
    }
    Ok(())
}

/// Maps the `image` crate's error to ours, telling truncation from other damage.
fn map_image_error(format: Format, e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => ImageError::TooMuchMemory {
                format,
                detail: "the image dimensions exceed the decoder's limits".to_string(),
            },
            _ => ImageError::TooMuchMemory {
                format,
                detail: l.to_string(),
            },
        },
        image::ImageError::Unsupported(u) => ImageError::UnsupportedFeature {
            format,
            reason: u.to_string(),
        },
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Truncated {
                format,
                detail: "unexpected end of data".to_string(),
            }
        }
        other => {
            let reason = other.to_string();
            if is_truncation(&other) {
                ImageError::Truncated {
                    format,
                    detail: if reason.contains("fill whole buffer") {
                        "unexpected end of data".to_string()
                    } else {
                        reason
                    },
                }
            } else {
                ImageError::Corrupt { format, reason }
            }
        }
    }
}

/// Whether a decoder error says the data ended early: an `UnexpectedEof` anywhere in its
/// source chain, or a message saying so (some decoders only report it in words).
fn is_truncation(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return true;
        }
        let message = err.to_string().to_ascii_lowercase();
        if [
            "unexpected eof",
            "unexpected end",
            "end of file",
            "eof",
            "truncated",
            "not enough data",
            "no more data",
            "fill whole buffer",
            "premature end",
        ]
        .iter()
        .any(|needle| message.contains(needle))
        {
            return true;
        }
        current = err.source();
    }
    false
}

/// Test support: hostile images made in memory, never downloaded.
pub mod testing {
    /// Inserts an EXIF APP1 segment (little-endian TIFF, one IFD entry: Orientation =
    /// `orientation`) right after a JPEG's start-of-image marker.
    pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
        let mut tiff = b"II*\0".to_vec(); // byte order, magic 42
        tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD at offset 8
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // tag: Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // type: SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes()); // count
        tiff.extend_from_slice(&orientation.to_le_bytes()); // value, left-justified
        tiff.extend_from_slice(&[0, 0]); // padding of the 4-byte value field
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend(tiff);
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend(payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// A valid 1-bit greyscale PNG of `width` x `height` black pixels, compressed to about
    /// 1/160 of its raw size with fixed-Huffman runs: 16000x16000 (256 megapixels, a 256 MB
    /// 8-bit image once decoded) is a file of about 200 KB — a decompression bomb. Cheap to
    /// make: nothing of the image's size is ever held in memory.
    pub fn zero_png(width: u32, height: u32) -> Vec<u8> {
        let row = 1 + (u64::from(width)).div_ceil(8);
        let raw = row * u64::from(height);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        // Bit depth 1, colour type 0 (grey), deflate, filter method 0, no interlace.
        ihdr.extend_from_slice(&[1, 0, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &zlib_zeros(raw));
        chunk(&mut png, b"IEND", &[]);
        png
    }

    fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A zlib stream of `n` zero bytes: one fixed-Huffman block of a literal zero then
    /// matches of 258 bytes at distance 1.
    fn zlib_zeros(n: u64) -> Vec<u8> {
        let mut bits = BitWriter::default();
        bits.bits(1, 1); // BFINAL
        bits.bits(1, 2); // BTYPE = fixed Huffman
        let mut left = n;
        if left > 0 {
            bits.code(0x30, 8); // literal 0
            left -= 1;
        }
        while left >= 258 {
            bits.code(0xC5, 8); // length 258 (symbol 285)
            bits.code(0, 5); // distance 1 (code 0)
            left -= 258;
        }
        for _ in 0..left {
            bits.code(0x30, 8);
        }
        bits.code(0, 7); // end of block (symbol 256)
        let mut out = vec![0x78, 0x01];
        out.extend_from_slice(&bits.finish());
        // Adler-32 of n zeros: a = 1, b = n (mod 65521).
        let adler = (((n % 65_521) as u32) << 16) | 1;
        out.extend_from_slice(&adler.to_be_bytes());
        out
    }

    /// Deflate's bit order: values from their least significant bit, Huffman codes from
    /// their most significant.
    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        current: u8,
        used: u8,
    }

    impl BitWriter {
        fn bit(&mut self, bit: u32) {
            self.current |= ((bit & 1) as u8) << self.used;
            self.used += 1;
            if self.used == 8 {
                self.out.push(self.current);
                self.current = 0;
                self.used = 0;
            }
        }

        fn bits(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.bit(value >> i);
            }
        }

        fn code(&mut self, code: u32, len: u32) {
            for i in (0..len).rev() {
                self.bit(code >> i);
            }
        }

        fn finish(mut self) -> Vec<u8> {
            if self.used > 0 {
                self.out.push(self.current);
            }
            self.out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_png_is_a_valid_png_and_a_bomb_at_size() {
        for (w, h) in [(1, 1), (7, 3), (64, 48), (300, 2)] {
            let d = decode(&testing::zero_png(w, h), &DecodeLimits::default()).unwrap();
            assert_eq!((d.width(), d.height(), d.format), (w, h, Format::Png));
            assert!(d.image.to_luma8().pixels().all(|p| p.0 == [0]));
        }
        let bomb = testing::zero_png(16_000, 16_000);
        assert!(bomb.len() < 300_000, "{} bytes", bomb.len());
        let e = decode(&bomb, &DecodeLimits::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PNG image of 16000x16000 = 256000000 pixels exceeds the limit of 50000000 pixels"
        );
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(width, height, image::Rgb([10, 20, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_and_reports_format() {
        let d = decode(&png(7, 5), &DecodeLimits::default()).unwrap();
        assert_eq!((d.width(), d.height(), d.format), (7, 5, Format::Png));
        assert_eq!(d.orientation, Orientation::NoTransforms);
    }

    #[test]
    fn limits_come_before_decoding() {
        let limits = DecodeLimits {
            max_pixels: 34,
            ..DecodeLimits::default()
        };
        let e = decode(&png(7, 5), &limits).unwrap_err();
        assert!(
            matches!(e, ImageError::TooManyPixels { pixels: 35, .. }),
            "{e}"
        );
        assert_eq!(ProcessError::from(e).kind, ErrorKind::TooLarge);
        let limits = DecodeLimits {
            max_width: 6,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode(&png(7, 5), &limits),
            Err(ImageError::TooLarge { width: 7, .. })
        ));
        let limits = DecodeLimits {
            max_alloc: 7 * 5 * 3 - 1,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode(&png(7, 5), &limits),
            Err(ImageError::TooMuchMemory { .. })
        ));
    }

    #[test]
    fn unknown_content_is_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"GIF89a\x01\0\x01\0", "GIF"),
            (b"RIFF\0\0\0\0WEBPVP8 ", "WebP"),
            (b"PK\x03\x04\x14\0", "ZIP archive"),
            (b"<!DOCTYPE html><html>", "HTML document"),
            (b"hello, world\n", "plain text"),
            (
                b"\x00\x01\x02\x03",
                "unrecognised data starting with bytes 00 01 02 03",
            ),
        ];
        for (bytes, name) in cases {
            match sniff(bytes) {
                Err(ImageError::UnsupportedFormat { detected }) => assert_eq!(&detected, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(sniff(&[]), Err(ImageError::Empty));
    }

    #[test]
    fn jpeg_completeness() {
        assert!(matches!(
            check_jpeg_complete(&[0xFF, 0xD8]),
            Err(ImageError::Truncated { .. })
        ));
        // SOI, a COM segment, SOS (length 2 for the sketch), data, EOI.
        let ok = [
            0xFF, 0xD8, 0xFF, 0xFE, 0, 4, b'h', b'i', 0xFF, 0xDA, 0, 2, 1, 2, 0xFF, 0xD9,
        ];
        assert_eq!(check_jpeg_complete(&ok), Ok(()));
        assert!(matches!(
            check_jpeg_complete(&ok[..ok.len() - 1]),
            Err(ImageError::Truncated { .. })
        ));
        assert!(matches!(
            check_jpeg_complete(&ok[..6]),
            Err(ImageError::Truncated { .. })
        ));
        assert!(matches!(
            check_jpeg_complete(&[0xFF, 0xD8, 0x00, 0x00]),
            Err(ImageError::Corrupt { .. })
        ));
    }
}

//! Rectangles for cropping and resizing: pure arithmetic, no pixels.

use crate::error::PreprocessError;
use crate::settings::Roi;

/// A rectangle in whole pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A source rectangle in fractional pixels, as the resizer takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FracRect {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

impl From<Rect> for FracRect {
    fn from(r: Rect) -> Self {
        FracRect {
            left: f64::from(r.x),
            top: f64::from(r.y),
            width: f64::from(r.width),
            height: f64::from(r.height),
        }
    }
}

/// The part of a `width` x `height` image to use: the whole image without a region of
/// interest, else the region, which must lie entirely inside the image.
pub fn source_rect(roi: Option<Roi>, width: u32, height: u32) -> Result<Rect, PreprocessError> {
    let Some(roi) = roi else {
        return Ok(Rect {
            x: 0,
            y: 0,
            width,
            height,
        });
    };
    let inside = roi.width > 0
        && roi.height > 0
        && u64::from(roi.x) + u64::from(roi.width) <= u64::from(width)
        && u64::from(roi.y) + u64::from(roi.height) <= u64::from(height);
    if inside {
        Ok(Rect {
            x: roi.x,
            y: roi.y,
            width: roi.width,
            height: roi.height,
        })
    } else {
        Err(PreprocessError::RoiOutside { roi, width, height })
    }
}

/// `fit`: where a `src` of its aspect ratio lands inside a `dst_width` x `dst_height` box,
/// scaled as large as fits and centred. Never empty, never larger than the box.
pub fn fit_inside(src: Rect, dst_width: u32, dst_height: u32) -> Rect {
    let scale = (f64::from(dst_width) / f64::from(src.width))
        .min(f64::from(dst_height) / f64::from(src.height));
    let side = |s: u32, max: u32| ((f64::from(s) * scale).round() as u32).clamp(1, max);
    let width = side(src.width, dst_width);
    let height = side(src.height, dst_height);
    Rect {
        x: (dst_width - width) / 2,
        y: (dst_height - height) / 2,
        width,
        height,
    }
}

/// `fill`: the centred part of `src` with the aspect ratio of `dst_width` x `dst_height`, as
/// large as `src` allows (what remains visible once the box is covered).
pub fn fill_crop(src: Rect, dst_width: u32, dst_height: u32) -> FracRect {
    let (sw, sh) = (f64::from(src.width), f64::from(src.height));
    let (dw, dh) = (f64::from(dst_width), f64::from(dst_height));
    let width = sw.min(sh * dw / dh);
    let height = sh.min(sw * dh / dw);
    FracRect {
        left: f64::from(src.x) + (sw - width) / 2.0,
        top: f64::from(src.y) + (sh - height) / 2.0,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn roi_must_be_inside() {
        assert_eq!(source_rect(None, 10, 8).unwrap(), rect(0, 0, 10, 8));
        let roi = |x, y, width, height| {
            Some(Roi {
                x,
                y,
                width,
                height,
            })
        };
        assert_eq!(
            source_rect(roi(2, 3, 8, 5), 10, 8).unwrap(),
            rect(2, 3, 8, 5)
        );
        for bad in [
            roi(2, 3, 9, 5),
            roi(0, 0, 10, 9),
            roi(10, 0, 1, 1),
            roi(u32::MAX, 0, 1, 1),
        ] {
            let e = source_rect(bad, 10, 8).unwrap_err();
            assert!(
                e.to_string().contains("does not fit inside the 10x8 image"),
                "{e}"
            );
        }
    }

    #[test]
    fn fit_keeps_aspect_and_centres() {
        // 400x200 into 224x224: 224x112, 56 px of padding above and below.
        assert_eq!(
            fit_inside(rect(0, 0, 400, 200), 224, 224),
            rect(0, 56, 224, 112)
        );
        // Tall: 100x300 into 300x300 -> 100x300 centred horizontally.
        assert_eq!(
            fit_inside(rect(5, 5, 100, 300), 300, 300),
            rect(100, 0, 100, 300)
        );
        // Extreme aspect never gives an empty side.
        assert_eq!(fit_inside(rect(0, 0, 10_000, 1), 10, 10), rect(0, 4, 10, 1));
    }

    #[test]
    fn fill_crops_the_centre() {
        let c = fill_crop(rect(0, 0, 400, 200), 100, 100);
        assert_eq!(
            c,
            FracRect {
                left: 100.0,
                top: 0.0,
                width: 200.0,
                height: 200.0
            }
        );
        let c = fill_crop(rect(10, 20, 100, 300), 50, 100);
        assert_eq!(
            c,
            FracRect {
                left: 10.0,
                top: 70.0,
                width: 100.0,
                height: 200.0
            }
        );
    }
}

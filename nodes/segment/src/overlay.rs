//! The images the node produces besides its verdict: the class mask at the original size, and
//! the original with every defect's contour drawn on it in its class colour.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage};

use crate::regions::is_outline;

/// Contour colours by class index (1..); class `i` uses `PALETTE[(i - 1) % len]`. Chosen to
/// stand out on grey steel and on copper coils alike.
pub const PALETTE: [[u8; 3]; 6] = [
    [255, 40, 40],  // red
    [40, 220, 255], // cyan
    [255, 220, 0],  // yellow
    [200, 60, 255], // violet
    [60, 255, 60],  // green
    [255, 140, 0],  // orange
];

/// The model's mask stretched (nearest neighbour) to `width` x `height`.
pub fn mask_at(mask: &GrayImage, width: u32, height: u32) -> GrayImage {
    if mask.dimensions() == (width, height) {
        mask.clone()
    } else {
        image::imageops::resize(mask, width, height, FilterType::Nearest)
    }
}

/// The original image with the contour of every region of `mask` (already at the image's
/// size) drawn over it, `thickness` pixels wide.
pub fn draw_contours(original: &DynamicImage, mask: &GrayImage, thickness: u32) -> RgbImage {
    let mut out = original.to_rgb8();
    let (width, height) = mask.dimensions();
    let reach = thickness.saturating_sub(1) / 2;
    let extra = thickness.saturating_sub(1) - reach;
    for y in 0..height {
        for x in 0..width {
            if !is_outline(mask, x, y) {
                continue;
            }
            let class = mask.get_pixel(x, y).0[0] as usize;
            let colour = Rgb(PALETTE[(class - 1) % PALETTE.len()]);
            // Thicken inwards and outwards so thin defects stay visible on large images.
            for py in y.saturating_sub(reach)..=(y + extra).min(height - 1) {
                for px in x.saturating_sub(reach)..=(x + extra).min(width - 1) {
                    out.put_pixel(px, py, colour);
                }
            }
        }
    }
    out
}

/// A contour thickness that reads well at this image size: 1 px up to 400 px, then 1 px more
/// per 400.
pub fn thickness_for(width: u32, height: u32) -> u32 {
    1 + width.max(height) / 400
}

/// PNG bytes of an image (lossless: a mask's class indices must survive).
pub fn png(image: &DynamicImage) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png)?;
    Ok(bytes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn contours_are_drawn_in_the_class_colour_and_the_inside_is_untouched() {
        let original = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([100, 100, 100])));
        let mut mask = GrayImage::new(8, 8);
        for y in 2..6 {
            for x in 2..6 {
                mask.put_pixel(x, y, Luma([2]));
            }
        }
        let out = draw_contours(&original, &mask, 1);
        assert_eq!(out.get_pixel(2, 2).0, PALETTE[1]);
        assert_eq!(out.get_pixel(5, 3).0, PALETTE[1]);
        assert_eq!(out.get_pixel(3, 3).0, [100, 100, 100], "inside");
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100], "outside");
    }

    #[test]
    fn masks_are_stretched_with_nearest_so_classes_survive() {
        let mut mask = GrayImage::new(2, 2);
        mask.put_pixel(1, 1, Luma([4]));
        let big = mask_at(&mask, 6, 4);
        assert_eq!(big.dimensions(), (6, 4));
        assert!(big.pixels().all(|p| p.0[0] == 0 || p.0[0] == 4));
        assert_eq!(big.get_pixel(5, 3).0[0], 4);
        assert_eq!(big.get_pixel(0, 0).0[0], 0);
        assert_eq!(thickness_for(256, 256), 1);
        assert_eq!(thickness_for(2048, 1536), 6);
    }
}

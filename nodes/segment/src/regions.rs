//! Class mask -> connected defect regions, and their outlines.
//!
//! A region is a set of pixels of one defect class connected through their 8 neighbours
//! (diagonal steps count, so a thin diagonal scratch is one region, not a staircase of dots).
//! Outline pixels are region pixels with at least one 4-neighbour outside the region (or on
//! the image border): drawn on the original image, they are the defect's contour.

use image::GrayImage;
use serde::Serialize;

/// One connected defect region, in the mask's pixel coordinates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Region {
    /// Class index (1.. in the card's labels).
    pub class: u8,
    /// `[x0, y0, x1, y1]`, `x1` and `y1` exclusive.
    pub bbox: [u32; 4],
    /// Pixels in the region.
    pub area_px: u64,
}

/// Every connected region of a non-zero class in `mask`, largest first (ties: top-left
/// first). Regions smaller than `min_area_px` are left out.
pub fn regions(mask: &GrayImage, min_area_px: u64) -> Vec<Region> {
    let (width, height) = mask.dimensions();
    let (w, h) = (width as usize, height as usize);
    let pixels = mask.as_raw();
    let mut seen = vec![false; w * h];
    let mut stack = Vec::new();
    let mut found = Vec::new();
    for start in 0..w * h {
        let class = pixels[start];
        if class == 0 || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        let mut area = 0u64;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            area += 1;
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if (dx, dy) == (0, 0) || nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] && pixels[j] == class {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if area >= min_area_px {
            found.push(Region {
                class,
                bbox: [x0 as u32, y0 as u32, x1 as u32, y1 as u32],
                area_px: area,
            });
        }
    }
    found.sort_by(|a, b| {
        b.area_px
            .cmp(&a.area_px)
            .then(a.bbox[1].cmp(&b.bbox[1]))
            .then(a.bbox[0].cmp(&b.bbox[0]))
    });
    found
}

/// Whether the non-zero pixel at `(x, y)` lies on its class's outline: a 4-neighbour has
/// another class, or the pixel touches the image border.
pub fn is_outline(mask: &GrayImage, x: u32, y: u32) -> bool {
    let class = mask.get_pixel(x, y).0[0];
    if class == 0 {
        return false;
    }
    let (width, height) = mask.dimensions();
    if x == 0 || y == 0 || x + 1 == width || y + 1 == height {
        return true;
    }
    [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
        .iter()
        .any(|&(nx, ny)| mask.get_pixel(nx, ny).0[0] != class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn mask(rows: &[&str]) -> GrayImage {
        let (w, h) = (rows[0].len() as u32, rows.len() as u32);
        GrayImage::from_fn(w, h, |x, y| {
            Luma([rows[y as usize].as_bytes()[x as usize] - b'0'])
        })
    }

    #[test]
    fn diagonal_pixels_join_and_classes_stay_apart() {
        let m = mask(&[
            "1000022", //
            "0100022", "0010000", "0000300",
        ]);
        let found = regions(&m, 1);
        assert_eq!(
            found,
            vec![
                Region {
                    class: 2,
                    bbox: [5, 0, 7, 2],
                    area_px: 4
                },
                Region {
                    class: 1,
                    bbox: [0, 0, 3, 3],
                    area_px: 3
                },
                Region {
                    class: 3,
                    bbox: [4, 3, 5, 4],
                    area_px: 1
                },
            ]
        );
        assert_eq!(
            regions(&m, 2).len(),
            2,
            "specks below the minimum are dropped"
        );
    }

    #[test]
    fn outlines_are_the_region_edges() {
        let m = mask(&[
            "00000", //
            "01110", "01110", "01110", "00000",
        ]);
        assert!(is_outline(&m, 1, 1));
        assert!(!is_outline(&m, 2, 2), "interior");
        assert!(!is_outline(&m, 0, 0), "background");
    }
}

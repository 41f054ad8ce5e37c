//! Float raster images and anti-aliased drawing.
//!
//! A [`Canvas`] holds 1 (gray) or 3 (RGB) planes of `f32` in [0, 1]. Shapes are drawn in
//! two steps: rasterize into a [`Coverage`] (a local alpha map, 0..1 per pixel), then
//! composite that into the canvas (and, for surfaces, into the label mask). Pixel
//! `(x, y)` has its centre at `(x + 0.5, y + 0.5)`.

use crate::geom::{V2, segment_distance, v2};

/// A float image with 1 or 3 planes.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// One `width * height` plane per channel, row-major.
    pub planes: Vec<Vec<f32>>,
}

impl Canvas {
    /// A canvas filled with `fill` (one value per channel).
    pub fn new(width: usize, height: usize, fill: &[f32]) -> Self {
        Canvas {
            width,
            height,
            planes: fill.iter().map(|&v| vec![v; width * height]).collect(),
        }
    }

    /// Mixes `color` into pixel `i` with opacity `a`.
    pub fn blend(&mut self, i: usize, color: &[f32], a: f32) {
        for (plane, &c) in self.planes.iter_mut().zip(color) {
            plane[i] += (c - plane[i]) * a;
        }
    }

    /// Mixes `color` into every covered pixel, with opacity `coverage * strength`.
    pub fn paint(&mut self, cov: &Coverage, color: &[f32], strength: f32) {
        cov.for_each(|x, y, a| self.blend(y * self.width + x, color, a * strength));
    }

    /// Multiplies every covered pixel by `1 - coverage * (1 - factor)`.
    pub fn shade(&mut self, cov: &Coverage, factor: f32) {
        let w = self.width;
        cov.for_each(|x, y, a| {
            let k = 1.0 - a * (1.0 - factor);
            for plane in &mut self.planes {
                plane[y * w + x] *= k;
            }
        });
    }

    /// Adds `delta(x, y) * coverage` to every channel of every covered pixel.
    pub fn add(&mut self, cov: &Coverage, delta: impl Fn(usize, usize) -> f32) {
        let w = self.width;
        cov.for_each(|x, y, a| {
            let d = delta(x, y) * a;
            for plane in &mut self.planes {
                plane[y * w + x] += d;
            }
        });
    }

    /// Separable Gaussian blur with standard deviation `sigma` (pixels); edges clamp.
    pub fn blur(&mut self, sigma: f32) {
        if sigma < 0.05 {
            return;
        }
        let radius = (sigma * 3.0).ceil() as usize;
        let mut k: Vec<f32> = (0..=2 * radius)
            .map(|i| {
                let d = i as f32 - radius as f32;
                (-d * d / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        let sum: f32 = k.iter().sum();
        k.iter_mut().for_each(|v| *v /= sum);
        let (w, h) = (self.width, self.height);
        let mut tmp = vec![0.0f32; w * h];
        let mut padded = vec![0.0f32; w.max(h) + 2 * radius];
        for plane in &mut self.planes {
            // Rows.
            for y in 0..h {
                let row = &plane[y * w..(y + 1) * w];
                padded[..radius].fill(row[0]);
                padded[radius..radius + w].copy_from_slice(row);
                padded[radius + w..radius * 2 + w].fill(row[w - 1]);
                let out = &mut tmp[y * w..(y + 1) * w];
                out.fill(0.0);
                for (j, &kj) in k.iter().enumerate() {
                    for (o, &p) in out.iter_mut().zip(&padded[j..j + w]) {
                        *o += kj * p;
                    }
                }
            }
            // Columns: accumulate whole rows so the inner loop runs along memory.
            plane.fill(0.0);
            for y in 0..h {
                let out = &mut plane[y * w..(y + 1) * w];
                for (j, &kj) in k.iter().enumerate() {
                    let sy = (y + j).saturating_sub(radius).min(h - 1);
                    for (o, &p) in out.iter_mut().zip(&tmp[sy * w..(sy + 1) * w]) {
                        *o += kj * p;
                    }
                }
            }
        }
    }

    /// Quantizes to 8 bits per channel, interleaved (RGB8 or L8).
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.width * self.height;
        let c = self.planes.len();
        let mut out = vec![0u8; n * c];
        for (ch, plane) in self.planes.iter().enumerate() {
            for (i, &v) in plane.iter().enumerate() {
                out[i * c + ch] = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
            }
        }
        out
    }
}

/// Coverage (alpha, 0..1) of a shape over a rectangle of the image.
#[derive(Debug, Clone)]
pub struct Coverage {
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    a: Vec<f32>,
}

impl Coverage {
    /// An empty coverage over the pixels touching the box `min..max` (pixel coordinates),
    /// clipped to an image of `width` x `height`.
    pub fn new(min: V2, max: V2, width: usize, height: usize) -> Self {
        let x0 = min.x.floor().clamp(0.0, width as f32) as usize;
        let y0 = min.y.floor().clamp(0.0, height as f32) as usize;
        let x1 = (max.x.ceil().max(0.0) as usize).min(width);
        let y1 = (max.y.ceil().max(0.0) as usize).min(height);
        let (w, h) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
        Coverage {
            x0,
            y0,
            w,
            h,
            a: vec![0.0; w * h],
        }
    }

    /// An empty coverage over the points' bounding box grown by `pad` pixels.
    pub fn around(points: &[V2], pad: f32, width: usize, height: usize) -> Self {
        let (mut lo, mut hi) = (v2(f32::MAX, f32::MAX), v2(f32::MIN, f32::MIN));
        for p in points {
            lo = v2(lo.x.min(p.x), lo.y.min(p.y));
            hi = v2(hi.x.max(p.x), hi.y.max(p.y));
        }
        Self::new(lo - v2(pad, pad), hi + v2(pad, pad), width, height)
    }

    /// Adds (union, by maximum) a polyline stroked with a width per point, linearly
    /// interpolated along each segment. Strokes thinner than a pixel get proportionally
    /// fainter instead of aliasing.
    pub fn stroke(&mut self, points: &[V2], widths: &[f32]) {
        for (seg, ws) in points.windows(2).zip(widths.windows(2)) {
            let (p, q) = (seg[0], seg[1]);
            let pad = ws[0].max(ws[1]).max(1.0) * 0.5 + 1.0;
            let (xa, xb) = self.span(p.x.min(q.x) - pad, p.x.max(q.x) + pad, self.x0, self.w);
            let (ya, yb) = self.span(p.y.min(q.y) - pad, p.y.max(q.y) + pad, self.y0, self.h);
            for y in ya..yb {
                for x in xa..xb {
                    let c = v2((x + self.x0) as f32 + 0.5, (y + self.y0) as f32 + 0.5);
                    let (d, t) = segment_distance(c, p, q);
                    let wd = ws[0] + (ws[1] - ws[0]) * t;
                    let cov = ((wd.max(1.0) * 0.5 + 0.5 - d).clamp(0.0, 1.0)) * wd.min(1.0);
                    let a = &mut self.a[y * self.w + x];
                    *a = a.max(cov);
                }
            }
        }
    }

    /// Adds (union) the shape whose signed distance (negative inside, pixels) is `sdf`.
    pub fn fill_sdf(&mut self, sdf: impl Fn(V2) -> f32) {
        for y in 0..self.h {
            for x in 0..self.w {
                let c = v2((x + self.x0) as f32 + 0.5, (y + self.y0) as f32 + 0.5);
                let cov = (0.5 - sdf(c)).clamp(0.0, 1.0);
                let a = &mut self.a[y * self.w + x];
                *a = a.max(cov);
            }
        }
    }

    /// Adds (union) a disc.
    pub fn disc(&mut self, centre: V2, radius: f32) {
        // Small discs fade like thin strokes.
        let r = radius.max(0.5);
        let k = (radius / 0.5).min(1.0);
        for y in 0..self.h {
            for x in 0..self.w {
                let c = v2((x + self.x0) as f32 + 0.5, (y + self.y0) as f32 + 0.5);
                let cov = (r + 0.5 - (c - centre).len()).clamp(0.0, 1.0) * k;
                let a = &mut self.a[y * self.w + x];
                *a = a.max(cov);
            }
        }
    }

    /// Scales every coverage value by `f(x, y)` (image pixel coordinates).
    pub fn modulate(&mut self, f: impl Fn(usize, usize) -> f32) {
        for y in 0..self.h {
            for x in 0..self.w {
                self.a[y * self.w + x] *= f(x + self.x0, y + self.y0);
            }
        }
    }

    /// Calls `f(x, y, alpha)` for every pixel with non-zero coverage (image coordinates).
    pub fn for_each(&self, mut f: impl FnMut(usize, usize, f32)) {
        for y in 0..self.h {
            for x in 0..self.w {
                let a = self.a[y * self.w + x];
                if a > 0.0 {
                    f(x + self.x0, y + self.y0, a);
                }
            }
        }
    }

    /// Bounding box `[x0, y0, x1, y1]` (x1, y1 exclusive) of the pixels covered at least
    /// `threshold`, or `None` when there are none.
    pub fn bbox(&self, threshold: f32) -> Option<[u32; 4]> {
        let mut b: Option<[u32; 4]> = None;
        self.for_each(|x, y, a| {
            if a >= threshold {
                let (x, y) = (x as u32, y as u32);
                b = Some(match b {
                    None => [x, y, x + 1, y + 1],
                    Some([a0, b0, a1, b1]) => [a0.min(x), b0.min(y), a1.max(x + 1), b1.max(y + 1)],
                });
            }
        });
        b
    }

    /// Clamped local index range of image span `lo..hi` on an axis starting at `origin`
    /// with `len` pixels.
    fn span(&self, lo: f32, hi: f32, origin: usize, len: usize) -> (usize, usize) {
        let a = (lo.floor() - origin as f32).clamp(0.0, len as f32) as usize;
        let b = (hi.ceil() - origin as f32).clamp(0.0, len as f32) as usize;
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_a_flat_image_flat_and_spreads_a_dot() {
        let mut c = Canvas::new(16, 16, &[0.5]);
        c.blur(1.0);
        assert!(c.planes[0].iter().all(|v| (v - 0.5).abs() < 1e-5));
        let mut d = Canvas::new(16, 16, &[0.0]);
        d.planes[0][8 * 16 + 8] = 1.0;
        d.blur(1.0);
        let sum: f32 = d.planes[0].iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        assert!(d.planes[0][8 * 16 + 8] < 0.2 && d.planes[0][8 * 16 + 9] > 0.05);
    }

    #[test]
    fn stroke_covers_its_line_and_nothing_far() {
        let mut cov = Coverage::new(v2(0.0, 0.0), v2(20.0, 20.0), 20, 20);
        cov.stroke(&[v2(2.0, 10.5), v2(18.0, 10.5)], &[2.0, 2.0]);
        // Round caps: half a width beyond each end.
        assert_eq!(cov.bbox(0.5), Some([1, 9, 19, 12]));
    }
}

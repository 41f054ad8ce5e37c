//! Steel-sheet surfaces with labelled defects, for segmentation.
//!
//! Images are 8-bit grayscale. The sheet: a base tone, rolled grain along the rolling
//! direction (horizontal: row-to-row variation, horizontally smeared noise, long faint
//! streaks), mill-scale blotches stretched along the rolling direction, a lighting
//! gradient and sometimes the bright band of a line light. Defects:
//!
//! | index | class | drawn as |
//! |---|---|---|
//! | 1 | scratch | a long thin line (0.25-0.9 of the image), straight or curved, lighter or darker |
//! | 2 | pit | 1-14 small dark round spots, clustered |
//! | 3 | patch | an irregular blotch of another tone and a mottled texture |
//! | 4 | inclusion | an elongated dark streak along the rolling direction, sometimes broken |
//!
//! The mask holds, per pixel, the class of the last defect covering at least half of
//! that pixel, else 0. Lens blur and sensor noise come after, on the image only.

use std::f32::consts::PI;

use crate::geom::{V2, bezier2, v2};
use crate::manifest::SurfaceClass;
use crate::raster::{Canvas, Coverage};
use crate::render::Exposure;
use crate::rng::{Rng, stream};

/// One rendered surface: gray pixels, mask, and how many defects were drawn.
pub(crate) struct Surface {
    /// 8-bit gray pixels, row-major.
    pub pixels: Vec<u8>,
    /// Class index per pixel.
    pub mask: Vec<u8>,
    /// Defect instances drawn.
    pub instances: u32,
}

/// Renders surface image `index` of a data set.
pub(crate) fn render(seed: u64, index: u32, size: u32) -> Surface {
    let mut rng = Rng::new(seed, &[stream::SURFACE, index as u64]);
    let n = size as usize;
    let sz = size as f32;
    let unit = sz / 256.0;
    let mut canvas = Canvas::new(n, n, &[rng.range(0.35, 0.62)]);
    sheet(&mut canvas, &mut rng, unit);
    let mut mask = vec![0u8; n * n];
    let instances = if rng.chance(0.3) {
        0
    } else {
        1 + rng.weighted(&[0.5, 0.27, 0.13, 0.07, 0.03]) as u32
    };
    for _ in 0..instances {
        let class = SurfaceClass::ALL[rng.weighted(&[0.3, 0.25, 0.2, 0.25])];
        let covs = match class {
            SurfaceClass::Scratch => scratch(&mut canvas, &mut rng, unit),
            SurfaceClass::Pit => pits(&mut canvas, &mut rng, unit),
            SurfaceClass::Patch => patch(&mut canvas, &mut rng, unit),
            SurfaceClass::Inclusion => inclusion(&mut canvas, &mut rng, unit),
        };
        for cov in &covs {
            cov.for_each(|x, y, a| {
                if a >= 0.5 {
                    mask[y * n + x] = class.index();
                }
            });
        }
    }
    let mut exposure = Exposure::random(&mut rng, size);
    exposure.balance = [1.0; 3];
    exposure.vignette *= 0.5;
    exposure.blur = rng.range(0.3, 0.7) * unit;
    exposure.develop(&mut canvas, &mut rng);
    Surface {
        pixels: canvas.to_bytes(),
        mask,
        instances,
    }
}

/// Bilinear value noise on a `gx` x `gy` grid of values in [-1, 1].
struct ValueNoise {
    gx: usize,
    gy: usize,
    v: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut Rng, gx: usize, gy: usize) -> Self {
        let v = (0..gx * gy).map(|_| rng.range(-1.0, 1.0)).collect();
        ValueNoise { gx, gy, v }
    }

    /// At `(u, v)` in [0, 1]^2, smoothstepped between grid points.
    fn at(&self, u: f32, v: f32) -> f32 {
        let x = u.clamp(0.0, 1.0) * (self.gx - 1) as f32;
        let y = v.clamp(0.0, 1.0) * (self.gy - 1) as f32;
        let (ix, iy) = ((x as usize).min(self.gx - 2), (y as usize).min(self.gy - 2));
        let s = |t: f32| t * t * (3.0 - 2.0 * t);
        let (fx, fy) = (s(x - ix as f32), s(y - iy as f32));
        let g = |i: usize, j: usize| self.v[j * self.gx + i];
        (g(ix, iy) * (1.0 - fx) + g(ix + 1, iy) * fx) * (1.0 - fy)
            + (g(ix, iy + 1) * (1.0 - fx) + g(ix + 1, iy + 1) * fx) * fy
    }
}

/// The defect-free sheet.
fn sheet(canvas: &mut Canvas, rng: &mut Rng, unit: f32) {
    let n = canvas.width;
    let sz = n as f32;
    let plane = &mut canvas.planes[0];
    // Row-to-row variation of the rolled grain.
    let row_amp = rng.range(0.008, 0.03);
    let rows: Vec<f32> = (0..n).map(|_| rng.normal() * row_amp).collect();
    // Horizontally smeared noise: brushed look.
    let smear = ((rng.range(6.0, 36.0) * unit) as usize).max(2);
    let smear_amp = rng.range(0.015, 0.05) * (smear as f32).sqrt();
    let mut line = vec![0.0f32; n + smear];
    for y in 0..n {
        for v in line.iter_mut() {
            *v = rng.noise();
        }
        let mut acc: f32 = line[..smear].iter().sum();
        for x in 0..n {
            plane[y * n + x] += rows[y] + acc / smear as f32 * smear_amp;
            acc += line[x + smear] - line[x];
        }
    }
    // Long faint streaks.
    let streaks = (sz * rng.range(0.1, 0.5)) as usize;
    for _ in 0..streaks {
        let y = rng.below(n as u32) as usize;
        let len = rng.range(20.0 * unit, 0.9 * sz);
        let x0 = rng.range(-0.2 * sz, sz);
        let amp = rng.sign() * rng.range(0.008, 0.04);
        let (a, b) = (x0.max(0.0) as usize, ((x0 + len).min(sz)).max(0.0) as usize);
        for x in a..b {
            let t = (x as f32 - x0) / len;
            plane[y * n + x] += amp * (PI * t).sin();
        }
    }
    // Mill scale: blotches stretched along the rolling direction.
    let scale = if rng.chance(0.6) {
        let cells = rng.int(3, 7) as usize;
        Some((
            ValueNoise::new(rng, cells + 1, cells * 3 + 1),
            rng.range(-0.1, 0.4),
            rng.sign() * rng.range(0.04, 0.14),
        ))
    } else {
        None
    };
    // Light: gradient and perhaps a bright band.
    let gdir = v2(1.0, 0.0).rotate(rng.range(0.0, 2.0 * PI));
    let gamp = rng.range(0.0, 0.16);
    let band = rng.chance(0.35).then(|| {
        (
            rng.range(0.0, sz),
            rng.range(0.08, 0.3) * sz,
            rng.range(0.03, 0.1),
        )
    });
    let c = v2(sz / 2.0, sz / 2.0);
    for y in 0..n {
        for x in 0..n {
            let p = v2(x as f32 + 0.5, y as f32 + 0.5);
            let mut d = gamp * (p - c).dot(gdir) / sz;
            if let Some((noise, threshold, amp)) = &scale {
                let s = noise.at(p.x / sz, p.y / sz);
                let t = ((s - threshold) / 0.25).clamp(0.0, 1.0);
                d += amp * t * t * (3.0 - 2.0 * t);
            }
            if let Some((by, bw, ba)) = band {
                let q = (p.y - by) / bw;
                d += ba * (-q * q).exp();
            }
            plane[y * n + x] += d;
        }
    }
}

/// A long thin line, possibly curved.
fn scratch(canvas: &mut Canvas, rng: &mut Rng, unit: f32) -> Vec<Coverage> {
    let sz = canvas.width as f32;
    // Both ends on the sheet, at least a quarter of the image apart.
    let mut ends = (v2(0.0, 0.0), v2(sz, sz));
    for _ in 0..16 {
        let a = v2(rng.range(0.0, sz), rng.range(0.0, sz));
        let b = v2(rng.range(0.0, sz), rng.range(0.0, sz));
        ends = (a, b);
        if (b - a).len() >= 0.25 * sz {
            break;
        }
    }
    let (p0, p2) = ends;
    let len = (p2 - p0).len().max(1.0);
    let dir = (p2 - p0).norm();
    let p1 = p0.lerp(p2, 0.5) + dir.perp() * (len * rng.range(-0.25, 0.25));
    let pts = bezier2(p0, p1, p2, 48);
    let width = rng.range(1.0, 2.8) * unit;
    let mut cov = Coverage::around(&pts, width + 2.0, canvas.width, canvas.height);
    cov.stroke(&pts, &vec![width; pts.len()]);
    let delta = if rng.chance(0.6) {
        rng.range(0.15, 0.35)
    } else {
        -rng.range(0.15, 0.3)
    };
    // Uneven along its length.
    let (f, ph) = (rng.range(1.0, 4.0) / len, rng.range(0.0, 6.3));
    canvas.add(&cov, |x, y| {
        let t = (v2(x as f32, y as f32) - p0).dot(dir);
        delta * (0.75 + 0.25 * (t * f * 2.0 * PI + ph).sin())
    });
    vec![cov]
}

/// A cluster of small dark round spots.
fn pits(canvas: &mut Canvas, rng: &mut Rng, unit: f32) -> Vec<Coverage> {
    let sz = canvas.width as f32;
    let c = v2(rng.range(0.05, 0.95) * sz, rng.range(0.05, 0.95) * sz);
    let count = 1 + rng.weighted(&[
        0.2, 0.15, 0.15, 0.1, 0.1, 0.08, 0.07, 0.05, 0.04, 0.03, 0.03,
    ]) as u32;
    let count = if rng.chance(0.15) {
        count + rng.int(0, 3)
    } else {
        count
    };
    let spread = rng.range(2.0, 18.0) * unit;
    (0..count)
        .map(|_| {
            let p = c + v2(rng.normal(), rng.normal()) * spread;
            let r = rng.range(0.8, 3.2) * unit;
            let depth = rng.range(0.15, 0.35);
            let mut cov = Coverage::around(&[p], r + 2.0, canvas.width, canvas.height);
            cov.disc(p, r);
            canvas.add(&cov, |x, y| {
                let d = (v2(x as f32 + 0.5, y as f32 + 0.5) - p).len() / r;
                -depth * (1.0 - 0.4 * d * d).max(0.5)
            });
            cov
        })
        .collect()
}

/// An irregular blotch of another tone and texture.
fn patch(canvas: &mut Canvas, rng: &mut Rng, unit: f32) -> Vec<Coverage> {
    let sz = canvas.width as f32;
    let c = v2(rng.range(0.1, 0.9) * sz, rng.range(0.1, 0.9) * sz);
    let r0 = rng.range(10.0, 55.0) * unit;
    let aspect = rng.range(0.6, 1.6);
    let harmonics: Vec<(f32, f32, f32)> = (2..=6)
        .map(|k| {
            (
                k as f32,
                rng.range(0.0, 0.32 / k as f32 * 2.0),
                rng.range(0.0, 2.0 * PI),
            )
        })
        .collect();
    let soft = rng.range(1.0, 4.0) * unit;
    let boundary = |q: V2| {
        let a = q.y.atan2(q.x);
        let wob: f32 = harmonics
            .iter()
            .map(|(k, amp, ph)| amp * (k * a + ph).sin())
            .sum();
        r0 * (1.0 + wob).max(0.3)
    };
    let reach = r0 * 2.2 * aspect.max(1.0);
    let mut cov = Coverage::new(
        c - v2(reach, reach),
        c + v2(reach, reach),
        canvas.width,
        canvas.height,
    );
    cov.fill_sdf(|p| {
        let d = p - c;
        let q = v2(d.x / aspect, d.y);
        // Signed distance (roughly, pixels) scaled so the soft edge spans `soft`.
        (q.len() - boundary(q)) / soft * 1.0 - 0.0
    });
    let delta = rng.sign() * rng.range(0.06, 0.18);
    let texture = ValueNoise::new(rng, 12, 12);
    let tex_amp = rng.range(0.02, 0.08);
    let origin = c - v2(reach, reach);
    canvas.add(&cov, |x, y| {
        let t = texture.at(
            (x as f32 - origin.x) / (2.0 * reach),
            (y as f32 - origin.y) / (2.0 * reach),
        );
        delta + tex_amp * t
    });
    vec![cov]
}

/// An elongated dark streak along the rolling direction, sometimes broken.
fn inclusion(canvas: &mut Canvas, rng: &mut Rng, unit: f32) -> Vec<Coverage> {
    let sz = canvas.width as f32;
    let len = rng.range(25.0, 160.0) * unit;
    let start = v2(
        rng.range(-0.1 * sz, sz - 0.5 * len),
        rng.range(0.03, 0.97) * sz,
    );
    let angle = rng.range(-4.0, 4.0).to_radians();
    let width = rng.range(1.5, 6.0) * unit;
    let (wave, lambda, phase) = (
        rng.range(0.0, 1.5) * unit,
        rng.range(20.0, 80.0) * unit,
        rng.range(0.0, 6.3),
    );
    let depth = rng.range(0.15, 0.35);
    let pieces = if rng.chance(0.3) { rng.int(2, 3) } else { 1 };
    let mut out = Vec::new();
    let gap = rng.range(0.05, 0.15);
    for k in 0..pieces {
        let (t0, t1) = (
            k as f32 / pieces as f32 + if k > 0 { gap / 2.0 } else { 0.0 },
            (k + 1) as f32 / pieces as f32 - if k + 1 < pieces { gap / 2.0 } else { 0.0 },
        );
        let steps = 32;
        let mut pts = Vec::with_capacity(steps + 1);
        let mut widths = Vec::with_capacity(steps + 1);
        for i in 0..=steps {
            let t = t0 + (t1 - t0) * i as f32 / steps as f32;
            let along = t * len;
            let p = v2(along, wave * (along / lambda * 2.0 * PI + phase).sin());
            pts.push(start + p.rotate(angle));
            let s = (i as f32 / steps as f32 * PI).sin();
            widths.push(width * (0.25 + 0.75 * s.sqrt()));
        }
        let mut cov = Coverage::around(&pts, width + 2.0, canvas.width, canvas.height);
        cov.stroke(&pts, &widths);
        canvas.add(&cov, |_, _| -depth);
        out.push(cov);
    }
    out
}

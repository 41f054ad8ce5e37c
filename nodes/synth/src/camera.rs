//! The simulated factory camera: a rule-based protrusion detector that looks at the
//! rendered pixels, as the plant's camera does, and says `loose_wire` or `ok`.
//!
//! 1. **Background model**: the floor colour is the colour most of the image border
//!    shares (bars and tags at the border are outvoted); a smooth surface
//!    (`a + bx + cy + d(x² + y²)` per channel, for gradients and vignetting) is fitted
//!    to those border samples and refined with the ones it explains.
//! 2. **Foreground**: pixels differing from the surface by more than
//!    [`FOREGROUND_LEVEL`] in some channel; of its 4-connected regions, the one with the
//!    most pixels near the image centre is taken as the coil.
//! 3. **Outline profile**: from the region's centroid, the farthest region pixel in each
//!    angular bin (about 3 px of outline per bin).
//! 4. **Protrusions**: the profile minus a smooth outline (a Fourier series of 6
//!    harmonics, fitted so that bins far above it hardly count, so a long strand hugging
//!    the coil cannot lift it). The score is the largest excess; above [`threshold`] the
//!    verdict is `loose_wire`.
//!
//! Anything that sticks out of a smooth outline trips it: loose wires, and also most
//! burrs (they stick out too) and clutter touching the coil. That is the camera's known
//! weakness the deep-learning re-check is for.

use crate::manifest::CoilLabel;

/// Minimum difference from the background (0-255, any channel) of a coil pixel.
pub const FOREGROUND_LEVEL: f32 = 28.0;

/// Short description of the rule (written into `dataset.json`).
pub const RULE: &str = "coil = central region differing from a background surface fitted \
to the image border; protrusion = outline radius per angle minus a robust 6-harmonic \
Fourier fit of the outline; loose_wire when the largest protrusion exceeds \
max(2.5 px, 4% of the region's equivalent radius)";

/// Protrusion (pixels) above which the camera says `loose_wire`, for a coil region of
/// equivalent radius `radius` pixels.
pub fn threshold(radius: f32) -> f32 {
    (0.04 * radius).max(2.5)
}

/// What the camera says about one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// `ok` or `loose_wire`.
    pub verdict: CoilLabel,
    /// Largest protrusion beyond the smooth outline (pixels).
    pub score: f32,
    /// The threshold it was compared with (pixels).
    pub threshold: f32,
}

/// Inspects an 8-bit RGB image (`width * height * 3` bytes).
pub fn inspect(rgb: &[u8], width: usize, height: usize) -> Reading {
    let (w, h) = (width, height);
    let bg = fit_background(rgb, w, h);
    let (hw, hh) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut mask = vec![false; w * h];
    // The background surface split into a per-column and a per-row part.
    let columns: Vec<[f32; 3]> = (0..w)
        .map(|x| {
            let f = features(x, 0, hw, hh);
            std::array::from_fn(|c| bg[c][1] * f[1] + bg[c][3] * f[1] * f[1])
        })
        .collect();
    for y in 0..h {
        let f = features(0, y, hw, hh);
        let row: [f32; 3] =
            std::array::from_fn(|c| bg[c][0] + bg[c][2] * f[2] + bg[c][3] * f[2] * f[2]);
        let pixels = &rgb[y * w * 3..(y + 1) * w * 3];
        for ((m, px), col) in mask[y * w..(y + 1) * w]
            .iter_mut()
            .zip(pixels.chunks_exact(3))
            .zip(&columns)
        {
            let d = (0..3)
                .map(|c| (px[c] as f32 - row[c] - col[c]).abs())
                .fold(0.0f32, f32::max);
            *m = d > FOREGROUND_LEVEL;
        }
    }
    let region = largest_region(&mask, w, h);
    let area = region.iter().filter(|&&r| r).count();
    let nothing = Reading {
        verdict: CoilLabel::Ok,
        score: 0.0,
        threshold: threshold(0.0),
    };
    if area < (w * h) / 100 {
        return nothing;
    }
    let (mut sx, mut sy) = (0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            if region[y * w + x] {
                sx += x as f64;
                sy += y as f64;
            }
        }
    }
    let (cx, cy) = ((sx / area as f64) as f32, (sy / area as f64) as f32);
    let radius = (area as f32 / std::f32::consts::PI).sqrt();
    let bins = ((std::f32::consts::TAU * radius / 3.0).round() as usize).clamp(90, 720);
    let mut rmax = vec![0.0f32; bins];
    let inside = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && region[y as usize * w + x as usize]
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            if !inside(x, y) {
                continue;
            }
            let edge =
                !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
            if !edge {
                continue;
            }
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let a = dy.atan2(dx) + std::f32::consts::PI;
            let b = ((a / std::f32::consts::TAU * bins as f32) as usize) % bins;
            rmax[b] = rmax[b].max((dx * dx + dy * dy).sqrt());
        }
    }
    fill_gaps(&mut rmax);
    let base = outline_fit(&rmax);
    let score = rmax
        .iter()
        .zip(&base)
        .map(|(r, b)| r - b)
        .fold(0.0f32, f32::max);
    let t = threshold(radius);
    Reading {
        verdict: if score > t {
            CoilLabel::LooseWire
        } else {
            CoilLabel::Ok
        },
        score,
        threshold: t,
    }
}

fn features(x: usize, y: usize, hw: f32, hh: f32) -> [f32; 4] {
    let (u, v) = ((x as f32 + 0.5 - hw) / hw, (y as f32 + 0.5 - hh) / hh);
    [1.0, u, v, u * u + v * v]
}

/// Per channel, the coefficients of the background surface fitted to the border.
fn fit_background(rgb: &[u8], w: usize, h: usize) -> [[f32; 4]; 3] {
    let (hw, hh) = (w as f32 / 2.0, h as f32 / 2.0);
    let margin = 4;
    let mut samples: Vec<([f32; 4], [f32; 3])> = Vec::new();
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            // The same number of samples from each side.
            if x < margin || y < margin || x + margin >= w || y + margin >= h {
                let i = (y * w + x) * 3;
                samples.push((
                    features(x, y, hw, hh),
                    [rgb[i] as f32, rgb[i + 1] as f32, rgb[i + 2] as f32],
                ));
            }
        }
    }
    // Candidate floors: the main peaks of the border's brightness histogram. The
    // candidate whose colour the most border samples share (within a tolerance broad
    // enough for gradients and vignetting) is the floor; the others are bars and tags.
    let lum = |s: &([f32; 4], [f32; 3])| (s.1[0] + s.1[1] + s.1[2]) / 3.0;
    let mut hist = [0u32; 64];
    for s in &samples {
        hist[(lum(s) / 4.0) as usize % 64] += 1;
    }
    let smooth: Vec<u32> = (0..64)
        .map(|i: usize| {
            (i.saturating_sub(3)..(i + 4).min(64))
                .map(|j| hist[j])
                .sum()
        })
        .collect();
    let mut peaks: Vec<usize> = (0..64)
        .filter(|&i| {
            smooth[i] > 0
                && (i == 0 || smooth[i] >= smooth[i - 1])
                && (i == 63 || smooth[i] > smooth[i + 1])
        })
        .collect();
    peaks.sort_by_key(|&i| (std::cmp::Reverse(smooth[i]), i));
    let mut floor: Vec<([f32; 4], [f32; 3])> = Vec::new();
    for &peak in peaks.iter().take(3) {
        let mode = peak as f32 * 4.0 + 2.0;
        let near: Vec<[f32; 3]> = samples
            .iter()
            .filter(|s| (lum(s) - mode).abs() <= 16.0)
            .map(|s| s.1)
            .collect();
        if near.is_empty() {
            continue;
        }
        let colour: [f32; 3] = std::array::from_fn(|c| {
            let mut v: Vec<f32> = near.iter().map(|p| p[c]).collect();
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        });
        let members: Vec<_> = samples
            .iter()
            .filter(|s| (0..3).all(|c| (s.1[c] - colour[c]).abs() <= 26.0))
            .copied()
            .collect();
        if members.len() > floor.len() {
            floor = members;
        }
    }
    // A smooth surface through the floor samples, refined with the samples it explains.
    let tolerance = (3.5 * noise_level(rgb, w, h)).max(10.0);
    let mut coef = solve_all(&floor);

    for _ in 0..2 {
        let next: Vec<_> = samples
            .iter()
            .filter(|s| residual(s, &coef) <= tolerance)
            .copied()
            .collect();
        if next.len() < 16 {
            break;
        }
        coef = solve_all(&next);
    }
    coef
}

/// Sensor noise (sigma, 0-255) estimated from neighbouring pixels of the top and
/// bottom rows.
fn noise_level(rgb: &[u8], w: usize, h: usize) -> f32 {
    let mut d: Vec<f32> = Vec::new();
    for y in [1, h - 2] {
        for x in 0..w - 1 {
            for c in 0..3 {
                let a = rgb[(y * w + x) * 3 + c] as f32;
                let b = rgb[(y * w + x + 1) * 3 + c] as f32;
                d.push((a - b).abs());
            }
        }
    }
    d.sort_by(f32::total_cmp);
    // Median absolute difference of two samples -> sigma of one.
    d[d.len() / 2] * 1.4826 / std::f32::consts::SQRT_2
}

/// Largest per-channel difference between a sample and the surface `coef`.
fn residual(s: &([f32; 4], [f32; 3]), coef: &[[f32; 4]; 3]) -> f32 {
    (0..3)
        .map(|c| (s.1[c] - (0..4).map(|k| coef[c][k] * s.0[k]).sum::<f32>()).abs())
        .fold(0.0f32, f32::max)
}

fn solve_all(samples: &[([f32; 4], [f32; 3])]) -> [[f32; 4]; 3] {
    let mut ata = [[0.0f64; 4]; 4];
    let mut atb = [[0.0f64; 4]; 3];
    for (f, v) in samples {
        for i in 0..4 {
            for j in 0..4 {
                ata[i][j] += (f[i] * f[j]) as f64;
            }
            for c in 0..3 {
                atb[c][i] += (f[i] * v[c]) as f64;
            }
        }
    }
    // A little ridge keeps the curvature term tame when the border cannot pin it.
    for (i, row) in ata.iter_mut().enumerate() {
        row[i] += 1e-3 * samples.len() as f64;
    }
    let mut out = [[0.0f32; 4]; 3];
    for (o, rhs) in out.iter_mut().zip(atb) {
        let x = solve(ata.iter().map(|r| r.to_vec()).collect(), rhs.to_vec());
        *o = std::array::from_fn(|k| x[k] as f32);
    }
    out
}

/// The 4-connected region of `mask` with the most pixels in the central disc (the
/// coil is placed near the centre; bars and tags lie at the sides).
fn largest_region(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let r2 = (0.35 * w.min(h) as f32).powi(2);
    let central = |i: usize| {
        let (dx, dy) = ((i % w) as f32 + 0.5 - cx, (i / w) as f32 + 0.5 - cy);
        dx * dx + dy * dy <= r2
    };
    let mut label = vec![0u32; w * h];
    let mut best = (0u32, (0usize, 0usize));
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let mut count = (0usize, 0usize);
        while let Some(i) = stack.pop() {
            count = (count.0 + central(i) as usize, count.1 + 1);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] && label[j] == 0 {
                    label[j] = next;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        if count > best.1 {
            best = (next, count);
        }
    }
    label.iter().map(|&l| l != 0 && l == best.0).collect()
}

/// Harmonics of the smooth outline model.
const HARMONICS: usize = 6;

/// The smooth outline under the profile: a Fourier series up to [`HARMONICS`], fitted by
/// iteratively reweighted least squares that all but ignores bins far above it
/// (protrusions), so a long strand hugging the coil cannot lift it.
fn outline_fit(r: &[f32]) -> Vec<f32> {
    const N: usize = 2 * HARMONICS + 1;
    let n = r.len();
    let basis: Vec<[f64; N]> = (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * (i as f64 + 0.5) / n as f64;
            let mut f = [0.0; N];
            f[0] = 1.0;
            for k in 1..=HARMONICS {
                f[2 * k - 1] = (k as f64 * a).cos();
                f[2 * k] = (k as f64 * a).sin();
            }
            f
        })
        .collect();
    let mut weights = vec![1.0f64; n];
    let mut fit = vec![0.0f32; n];
    for _ in 0..6 {
        let mut ata = vec![vec![0.0f64; N]; N];
        let mut atb = vec![0.0f64; N];
        for ((f, &w), &y) in basis.iter().zip(&weights).zip(r) {
            for i in 0..N {
                for j in 0..N {
                    ata[i][j] += w * f[i] * f[j];
                }
                atb[i] += w * f[i] * y as f64;
            }
        }
        for (i, row) in ata.iter_mut().enumerate() {
            row[i] += 1e-6;
        }
        let c = solve(ata, atb);
        for (i, f) in basis.iter().enumerate() {
            fit[i] = f.iter().zip(&c).map(|(a, b)| a * b).sum::<f64>() as f32;
            let res = r[i] - fit[i];
            weights[i] = if res > 1.5 {
                0.01
            } else if res < -3.0 {
                0.1
            } else {
                1.0
            };
        }
    }
    fit
}

/// Solves a small dense linear system (Gaussian elimination, partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let p = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, p);
        b.swap(col, p);
        let d = a[col][col];
        if d.abs() < 1e-12 {
            continue;
        }
        let (pivot, pivot_b) = (a[col].clone(), b[col]);
        for r in col + 1..n {
            let f = a[r][col] / d;
            for (x, p) in a[r][col..].iter_mut().zip(&pivot[col..]) {
                *x -= f * p;
            }
            b[r] -= f * pivot_b;
        }
    }
    let mut x = vec![0.0f64; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = if a[r][r].abs() < 1e-12 {
            0.0
        } else {
            (b[r] - s) / a[r][r]
        };
    }
    x
}

/// Fills empty (zero) bins by interpolating between the nearest filled ones, circularly.
fn fill_gaps(r: &mut [f32]) {
    let n = r.len();
    let filled: Vec<usize> = (0..n).filter(|&i| r[i] > 0.0).collect();
    if filled.is_empty() {
        return;
    }
    for (k, &i) in filled.iter().enumerate() {
        let j = filled[(k + 1) % filled.len()];
        let gap = (j + n - i) % n;
        let gap = if gap == 0 { n } else { gap };
        for s in 1..gap {
            let t = s as f32 / gap as f32;
            r[(i + s) % n] = r[i] * (1.0 - t) + r[j] * t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc_image(size: usize, spike: bool) -> Vec<u8> {
        let mut img = vec![30u8; size * size * 3];
        let c = size as f32 / 2.0;
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 + 0.5 - c, y as f32 + 0.5 - c);
                let r = (dx * dx + dy * dy).sqrt();
                let on_spike = spike && dy.abs() < 1.5 && dx > 0.0 && r < 0.3 * size as f32 + 12.0;
                if r < 0.3 * size as f32 || on_spike {
                    img[(y * size + x) * 3..(y * size + x) * 3 + 3]
                        .copy_from_slice(&[200, 120, 60]);
                }
            }
        }
        img
    }

    #[test]
    fn a_smooth_disc_passes_and_a_spike_is_flagged() {
        let ok = inspect(&disc_image(128, false), 128, 128);
        assert_eq!(ok.verdict, CoilLabel::Ok, "{ok:?}");
        let bad = inspect(&disc_image(128, true), 128, 128);
        assert_eq!(bad.verdict, CoilLabel::LooseWire, "{bad:?}");
        assert!(bad.score > 10.0, "{bad:?}");
    }

    #[test]
    fn an_empty_image_passes() {
        let r = inspect(&vec![90u8; 64 * 64 * 3], 64, 64);
        assert_eq!(r.verdict, CoilLabel::Ok);
    }
}

//! What lies around the coil: the floor or fixture plate, the coil's shadow, and clutter
//! (fixture bars, bolts, tags, cables, now and then a clamp touching the coil).

use crate::coil::Coil;
use crate::geom::{V2, bezier2, v2};
use crate::raster::{Canvas, Coverage};
use crate::rng::Rng;
use crate::view::View;

/// Paints the background of one photo, before the coil is drawn over it.
pub(crate) fn paint(canvas: &mut Canvas, rng: &mut Rng, coil: &Coil, view: &View) {
    let size = canvas.width as f32;
    let unit = size / 256.0;
    let dark = coil.material.luminance() >= 0.4;
    // Floor: dark for bright wire, light for dark enamel, slightly tinted.
    let level = if dark {
        rng.range(0.04, 0.17)
    } else {
        rng.range(0.5, 0.72)
    };
    let tint = [0; 3].map(|_| 1.0 + rng.range(-0.08, 0.08));
    let base = tint.map(|t| (level * t).min(1.0));
    let gdir = v2(1.0, 0.0).rotate(rng.range(-3.2, 3.2));
    let gamp = rng.range(0.0, 0.2);
    // Smooth blotches: bilinear value noise on a 7x7 grid.
    let grid_n = 7usize;
    let namp = rng.range(0.01, 0.06);
    let grid: Vec<f32> = (0..grid_n * grid_n)
        .map(|_| rng.range(-namp, namp))
        .collect();
    // Conveyor belt ribs on some floors.
    let ribs = if rng.chance(0.35) {
        Some((
            rng.range(6.0, 18.0) * unit,
            rng.range(0.008, 0.025),
            rng.chance(0.5),
        ))
    } else {
        None
    };
    let (w, h) = (canvas.width, canvas.height);
    let mut noise_row = vec![0.0f32; grid_n];
    for y in 0..h {
        let py = y as f32 + 0.5;
        // The grid interpolated to this row, then along it.
        let gy = py / size * (grid_n - 1) as f32;
        let iy = (gy as usize).min(grid_n - 2);
        let fy = gy - iy as f32;
        for (i, v) in noise_row.iter_mut().enumerate() {
            *v = grid[iy * grid_n + i] * (1.0 - fy) + grid[(iy + 1) * grid_n + i] * fy;
        }
        let rib = match ribs {
            Some((period, amp, true)) if (py / period).fract() < 0.15 => -amp,
            _ => 0.0,
        };
        let g_row = 1.0 + gamp * (py - size / 2.0) * gdir.y / size;
        for x in 0..w {
            let px = x as f32 + 0.5;
            let g = g_row + gamp * (px - size / 2.0) * gdir.x / size;
            let gx = px / size * (grid_n - 1) as f32;
            let ix = (gx as usize).min(grid_n - 2);
            let fx = gx - ix as f32;
            let n = noise_row[ix] * (1.0 - fx) + noise_row[ix + 1] * fx;
            let rib = match ribs {
                Some((period, amp, false)) if (px / period).fract() < 0.15 => -amp,
                _ => rib,
            };
            let i = y * w + x;
            for (plane, &b) in canvas.planes.iter_mut().zip(&base) {
                plane[i] = b * g * (1.0 + n) + rib;
            }
        }
    }
    let (centre, reach) = view.silhouette_circle();
    // The coil's soft shadow, away from the light.
    let sdir = -view.light_image;
    let sc = centre + sdir * (view.radius * rng.range(0.06, 0.2));
    let (ra, rb) = (
        view.radius * 1.03,
        (view.radius * view.k + view.band() / 2.0) * 1.03,
    );
    let soft = view.radius * 0.12;
    let mut cov = Coverage::new(
        sc - v2(ra + soft, ra + soft),
        sc + v2(ra + soft, ra + soft),
        w,
        h,
    );
    let (rc, rs) = view.roll;
    cov.fill_sdf(|p| {
        let d = p - sc;
        let l = v2(rc * d.x + rs * d.y, -rs * d.x + rc * d.y);
        let e = v2(l.x / ra, l.y / rb).len();
        (e - 1.0) * view.radius / soft
    });
    let strength = if dark {
        rng.range(0.15, 0.35)
    } else {
        rng.range(0.04, 0.1)
    };
    canvas.shade(&cov, 1.0 - strength);

    let keep_out = reach + 6.0 * unit;
    // Fixture bars along the sides.
    let bars = if rng.chance(0.55) {
        1 + rng.chance(0.2) as u32
    } else {
        0
    };
    for i in 0..bars {
        // At most one bar spans a whole side; others are short brackets.
        let span = if i == 0 && rng.chance(0.6) {
            None
        } else {
            Some(rng.range(0.15, 0.45) * size)
        };
        fixture_bar(canvas, rng, centre, keep_out, dark, span);
    }
    // Bolts, tags, labels.
    for _ in 0..rng.weighted(&[0.3, 0.3, 0.2, 0.12, 0.08]) {
        shape(canvas, rng, centre, keep_out, None);
    }
    // A cable lying around, sometimes the colour of the wire.
    if rng.chance(0.12) {
        cable(canvas, rng, coil, centre, keep_out);
    }
    // Rarely, a clamp or stop right at the coil's outline.
    if rng.chance(0.02) {
        let dir = v2(1.0, 0.0).rotate(rng.range(-3.2, 3.2));
        let l = view.local(centre + dir * reach) - v2(0.0, view.band() / 2.0);
        // Distance to the outline along `dir`, roughly: the ellipse radius that way.
        let ang = l.y.atan2(l.x);
        let rr = {
            let (s, c) = ang.sin_cos();
            let (a, b) = (view.radius, view.radius * view.k + view.band() / 2.0);
            a * b / ((b * c).powi(2) + (a * s).powi(2)).sqrt()
        };
        shape(
            canvas,
            rng,
            centre,
            0.0,
            Some(centre + dir * (rr + 2.0 * unit)),
        );
    }
}

fn random_colour(rng: &mut Rng) -> [f32; 3] {
    let grey = rng.range(0.15, 0.8);
    let sat = rng.range(0.0, 0.6);
    [0; 3].map(|_| grey + sat * (rng.f32() - 0.5))
}

fn fixture_bar(
    canvas: &mut Canvas,
    rng: &mut Rng,
    centre: V2,
    keep_out: f32,
    dark: bool,
    span: Option<f32>,
) {
    let (w, h) = (canvas.width, canvas.height);
    let size = w as f32;
    let side = rng.below(4);
    // Inward normal of the bar's edge, tilted a little.
    let inward = [v2(1.0, 0.0), v2(-1.0, 0.0), v2(0.0, 1.0), v2(0.0, -1.0)][side as usize]
        .rotate(rng.range(-0.1, 0.1));
    let edge_origin = [
        v2(0.0, size / 2.0),
        v2(size, size / 2.0),
        v2(size / 2.0, 0.0),
        v2(size / 2.0, size),
    ][side as usize];
    // How deep the bar may reach before it comes near the coil.
    let room = (centre - edge_origin).dot(inward) - keep_out;
    let depth = rng.range(0.03, 0.16) * size;
    let depth = depth.min(room);
    if depth < 0.02 * size {
        return;
    }
    let along = inward.perp();
    let line = edge_origin + inward * depth + along * rng.range(-0.3, 0.3) * size;
    let half = span.map_or(size * 4.0, |s| s / 2.0);
    let colour = if dark {
        [0; 3].map(|_| rng.range(0.3, 0.5))
    } else {
        [0; 3].map(|_| rng.range(0.2, 0.4))
    };
    let mut cov = Coverage::new(v2(0.0, 0.0), v2(size, h as f32), w, h);
    cov.fill_sdf(|p| {
        (p - line)
            .dot(inward)
            .max((p - line).dot(along).abs() - half)
    });
    canvas.paint(&cov, &colour, 1.0);
    // A bright bevel along its edge.
    let reach = half.min(size * 2.0);
    let bevel = [line - along * reach, line + along * reach];
    let mut cov = Coverage::new(v2(0.0, 0.0), v2(size, h as f32), w, h);
    cov.stroke(
        &[bevel[0] - inward * 1.0, bevel[1] - inward * 1.0],
        &[1.5 * size / 256.0; 2],
    );
    canvas.paint(&cov, &[0.85, 0.85, 0.85], rng.range(0.3, 0.7));
}

fn shape(canvas: &mut Canvas, rng: &mut Rng, centre: V2, keep_out: f32, at: Option<V2>) {
    let (w, h) = (canvas.width, canvas.height);
    let size = w as f32;
    let r = rng.range(0.015, 0.06) * size;
    let c = match at {
        Some(c) => c,
        None => {
            let mut found = None;
            for _ in 0..8 {
                let c = v2(rng.range(0.0, size), rng.range(0.0, size));
                if (c - centre).len() > keep_out + r * 1.5 {
                    found = Some(c);
                    break;
                }
            }
            match found {
                Some(c) => c,
                None => return,
            }
        }
    };
    let colour = random_colour(rng);
    let mut cov = Coverage::new(c - v2(r * 1.5, r * 1.5), c + v2(r * 1.5, r * 1.5), w, h);
    if rng.chance(0.5) {
        cov.disc(c, r);
    } else {
        let (hx, hy) = (r, r * rng.range(0.4, 1.0));
        let angle = rng.range(0.0, 3.2);
        cov.fill_sdf(|p| {
            let d = (p - c).rotate(-angle);
            let q = v2(d.x.abs() - hx, d.y.abs() - hy);
            v2(q.x.max(0.0), q.y.max(0.0)).len() + q.x.max(q.y).min(0.0)
        });
    }
    // Some are lit unevenly.
    if rng.chance(0.4) {
        let g = v2(1.0, 0.0).rotate(rng.range(0.0, 6.3));
        cov.modulate(|x, y| {
            let t = (v2(x as f32 + 0.5, y as f32 + 0.5) - c).dot(g) / r;
            (0.7 + 0.3 * t).clamp(0.3, 1.0)
        });
    }
    canvas.paint(&cov, &colour, 1.0);
}

fn cable(canvas: &mut Canvas, rng: &mut Rng, coil: &Coil, centre: V2, keep_out: f32) {
    let (w, h) = (canvas.width, canvas.height);
    let size = w as f32;
    for _ in 0..8 {
        let p0 = v2(rng.range(0.0, size), rng.range(0.0, size));
        let p1 = v2(rng.range(0.0, size), rng.range(0.0, size));
        let p2 = v2(rng.range(0.0, size), rng.range(0.0, size));
        let pts = bezier2(p0, p1, p2, 32);
        if pts.iter().any(|&p| (p - centre).len() < keep_out + 4.0) {
            continue;
        }
        let width = rng.range(1.5, 3.5) * size / 256.0;
        let colour = if rng.chance(0.5) {
            coil.material.base.map(|c| c * 0.8)
        } else {
            random_colour(rng)
        };
        let mut cov = Coverage::around(&pts, width + 2.0, w, h);
        cov.stroke(&pts, &vec![width; pts.len()]);
        canvas.paint(&cov, &colour, 1.0);
        return;
    }
}

//! A wound wire coil: the product model shared by its 8 photographs, the pose and light
//! of each photograph ([`Coil::view`]), and the shading of the coil body.
//!
//! The coil lies flat (axis vertical): a top face of concentric turns around a hub hole,
//! and an outer wall of stacked turns. Each of the 8 cameras stands at azimuth
//! `angle * 45°` around it and looks down at an elevation of 58-78°, so the coil shows
//! as an elliptical ring with the near part of its wall below. Coordinates relative to a
//! camera: `X` right, `Y` towards the camera, `Z` up, origin at the centre of the top
//! face; a point projects to the image at `(X, Y sin e - Z cos e)`, rolled and shifted.

use std::f32::consts::PI;

use crate::defects::{self, Defect};
use crate::geom::{V2, v2};
use crate::options::CoilOptions;
use crate::raster::Canvas;
use crate::rng::Rng;
use crate::view::{Material, View, normalize3};

/// Camera angles per product.
pub const ANGLES: u32 = 8;

/// Number of distinct turn brightnesses (a power of two).
pub(crate) const TONES: usize = 64;

/// One product: a coil and its defects.
#[derive(Debug, Clone)]
pub(crate) struct Coil {
    /// Surface of the wire.
    pub material: Material,
    /// Outer radius in pixels (before the per-photo scale jitter).
    pub radius: f32,
    /// Hub (inner) radius / outer radius.
    pub hub: f32,
    /// Height / outer radius.
    pub height: f32,
    /// Turns across the top face.
    pub rings: u32,
    /// Irregularity of the turns (fractions of a turn), by harmonic.
    pub wobble: [f32; 4],
    /// Slope of the wall turns.
    pub helix: f32,
    /// Brightness of each turn of the top face (index modulo [`TONES`]).
    pub ring_tone: [f32; TONES],
    /// Brightness of each turn of the wall (index modulo [`TONES`]).
    pub wall_tone: [f32; TONES],
    /// Elevation of this station's cameras (radians).
    pub elevation: f32,
    /// The defects, placed around the coil.
    pub defects: Vec<Defect>,
}

impl Coil {
    /// Draws product `product` of a data set.
    pub fn plan(opts: &CoilOptions, product: u32) -> Coil {
        let mut rng = Rng::new(
            opts.seed,
            &[crate::rng::stream::COIL_PRODUCT, product as u64],
        );
        let unit = opts.size as f32 / 256.0;
        // Which defects: a joint distribution with the asked marginals.
        let x = rng.f64();
        let (lw_only, burr_only) = (opts.loose_wire - opts.both, opts.burr - opts.both);
        let (has_lw, has_burr) = if x < opts.both {
            (true, true)
        } else if x < opts.both + lw_only {
            (true, false)
        } else if x < opts.both + lw_only + burr_only {
            (false, true)
        } else {
            (false, false)
        };
        let material = Material::random(&mut rng);
        let radius = opts.size as f32 * rng.range(0.25, 0.32);
        let hub = rng.range(0.36, 0.56);
        let height = rng.range(0.25, 0.5);
        // Turns 3.5-6.5 px wide at 256 px: fine, but coarser than the pixel grid.
        let turn = rng.range(3.5, 6.5) * unit;
        let rings = (((1.0 - hub) * radius / turn).round() as u32).max(4);
        let wobble = [0; 4].map(|_| rng.normal() * 0.12);
        let helix = rng.range(-0.5, 0.5);
        let ring_tone = [0; TONES].map(|_| 1.0 + 0.06 * rng.normal().clamp(-2.0, 2.0));
        let wall_tone = [0; TONES].map(|_| 1.0 + 0.06 * rng.normal().clamp(-2.0, 2.0));
        let elevation = rng.range(60.0, 76.0).to_radians();
        let geometry = defects::CoilGeometry { radius, hub, unit };
        let defects = defects::plan(&mut rng, &geometry, has_lw, has_burr);
        Coil {
            material,
            radius,
            hub,
            height,
            rings,
            wobble,
            helix,
            ring_tone,
            wall_tone,
            elevation,
            defects,
        }
    }

    /// The pose and light of photo `angle` of this coil.
    pub fn view(&self, angle: u32, rng: &mut Rng, size: f32) -> View {
        let coil = self;
        let alpha = angle as f32 * (2.0 * PI / ANGLES as f32)
            + rng.normal().clamp(-2.5, 2.5) * 1.2f32.to_radians();
        let e = coil.elevation + rng.range(-2.5, 2.5).to_radians();
        let (k, cos_e) = (e.sin(), e.cos());
        let scale = rng.range(0.94, 1.06);
        let radius = coil.radius * scale;
        let height = coil.height * radius;
        let band = height * cos_e;
        let roll_angle = rng.normal().clamp(-2.0, 2.0) * 5f32.to_radians();
        let roll = (roll_angle.cos(), roll_angle.sin());
        // Centre the silhouette (top ellipse + wall band), then jitter.
        let jitter = v2(rng.range(-0.045, 0.045), rng.range(-0.045, 0.045)) * size;
        let centre = v2(size / 2.0, size / 2.0) + jitter;
        let mid = v2(0.0, band / 2.0);
        let origin = centre
            - v2(
                roll.0 * mid.x - roll.1 * mid.y,
                roll.1 * mid.x + roll.0 * mid.y,
            );
        let (la, le) = (rng.range(-PI, PI), rng.range(25.0, 70.0).to_radians());
        let light = [le.cos() * la.sin(), le.cos() * la.cos(), le.sin()];
        let view_dir = [0.0, cos_e, k];
        let half = normalize3([
            light[0] + view_dir[0],
            light[1] + view_dir[1],
            light[2] + view_dir[2],
        ]);
        let ambient = rng.range(0.45, 0.6);
        let diffuse = rng.range(0.5, 0.7);
        let mut view = View {
            alpha,
            k,
            cos_e,
            radius,
            scale,
            height,
            origin,
            roll,
            light,
            half,
            ambient,
            diffuse,
            light_image: v2(0.0, -1.0),
        };
        let li = view.project_dir([light[0], light[1], light[2]]);
        view.light_image = if li.len() > 1e-3 {
            li.norm()
        } else {
            v2(0.0, -1.0)
        };
        view
    }
}

/// Paints the coil body (top face, wall, hub hole) over the background.
pub(crate) fn draw(canvas: &mut Canvas, coil: &Coil, view: &View) {
    let (w, h) = (canvas.width, canvas.height);
    let m = &coil.material;
    let r = view.radius;
    let r2 = r * r;
    let rin = r * coil.hub;
    let rin2 = rin * rin;
    let band = view.band();
    let wire = (r - rin) / coil.rings as f32;
    let ring_scale = coil.rings as f32 / (1.0 - coil.hub);
    let (sa, ca) = view.alpha.sin_cos();
    let wob = coil.wobble;
    let (centre, reach) = view.silhouette_circle();
    let reach = reach + 2.0;
    let y0 = (centre.y - reach - 2.0).floor().max(0.0) as usize;
    let y1 = ((centre.y + reach + 2.0).ceil().max(0.0) as usize).min(h);
    let wall_turn = |z: f32, across: f32| -> (f32, f32, usize) {
        let s = z / wire + coil.helix * across;
        let fi = fast_floor(s);
        let q = 2.0 * (s - fi) - 1.0;
        let idx = (fi as i32 as usize) & (TONES - 1);
        (q, (1.0 - q * q).max(0.0).sqrt(), idx)
    };
    // What one sample point shows.
    enum Sample {
        Wire([f32; 3]),
        Floor,
        Background,
    }
    let sample = |p: V2| -> Sample {
        let l = view.local(p);
        let (xx, yy) = (l.x, l.y);
        let ty = yy / view.k;
        let rho2 = xx * xx + ty * ty;
        if rho2 <= r2 && rho2 >= rin2 {
            // Top face: concentric turns, each a round wire in cross-section.
            let rho = rho2.sqrt();
            let inv = 1.0 / rho;
            let (su, cu) = (xx * inv, ty * inv);
            let (sphi, cphi) = (su * ca + cu * sa, cu * ca - su * sa);
            let wobble = wob[0] * cphi
                + wob[1] * sphi
                + wob[2] * (cphi * cphi - sphi * sphi)
                + wob[3] * 2.0 * sphi * cphi;
            let s = (rho / r - coil.hub) * ring_scale + wobble;
            let fi = fast_floor(s);
            let q = 2.0 * (s - fi) - 1.0;
            let nq = (1.0 - q * q).max(0.0).sqrt();
            let idx = (fi as i32 as usize) & (TONES - 1);
            let groove = 0.5 + 0.5 * nq;
            Sample::Wire(view.shade(m, [su * q, cu * q, nq], coil.ring_tone[idx] * groove, nq))
        } else if rho2 < rin2 {
            // Hub hole: the far inner wall, then the floor in shadow.
            let yr = (rin2 - xx * xx).max(0.0).sqrt();
            let top = -yr * view.k;
            if yy < top + band {
                let (q, nq, idx) = wall_turn((yy - top) / view.cos_e, xx / rin);
                let n = [-xx / rin * nq, yr / rin * nq, -q];
                let tone = 0.65 * coil.wall_tone[idx] * (0.5 + 0.5 * nq);
                Sample::Wire(view.shade(m, n, tone, nq))
            } else {
                Sample::Floor
            }
        } else if xx.abs() < r {
            // Outer wall below the near rim.
            let yr = (r2 - xx * xx).sqrt();
            let top = yr * view.k;
            if yy > top && yy < top + band {
                let (q, nq, idx) = wall_turn((yy - top) / view.cos_e, xx / r);
                let n = [xx / r * nq, yr / r * nq, -q];
                Sample::Wire(view.shade(m, n, coil.wall_tone[idx] * (0.5 + 0.5 * nq), nq))
            } else {
                Sample::Background
            }
        } else {
            Sample::Background
        }
    };
    // Two samples per pixel, on the diagonal: smooth edges, little moire in the turns.
    const OFFSETS: [(f32, f32); 2] = [(0.25, 0.25), (0.75, 0.75)];
    for y in y0..y1 {
        // Only the pixels within the silhouette's circle.
        let dy = y as f32 + 0.5 - centre.y;
        let half = (reach * reach - dy * dy).max(0.0).sqrt();
        let x0 = (centre.x - half).floor().max(0.0) as usize;
        let x1 = ((centre.x + half).ceil().max(0.0) as usize).min(w);
        for x in x0..x1 {
            let i = y * w + x;
            let mut acc = [0.0f32; 3];
            let mut bg = 0.0f32;
            let mut any = false;
            for (ox, oy) in OFFSETS {
                match sample(v2(x as f32 + ox, y as f32 + oy)) {
                    Sample::Wire(c) => {
                        any = true;
                        for k in 0..3 {
                            acc[k] += c[k];
                        }
                    }
                    Sample::Floor => {
                        any = true;
                        bg += 0.45;
                    }
                    Sample::Background => bg += 1.0,
                }
            }
            if any {
                for (k, p) in canvas.planes.iter_mut().enumerate() {
                    p[i] = (acc[k] + p[i] * bg) * 0.5;
                }
            }
        }
    }
}

/// `floor` without a libm call (the values here are small).
fn fast_floor(v: f32) -> f32 {
    let t = v as i32 as f32;
    if t > v { t - 1.0 } else { t }
}

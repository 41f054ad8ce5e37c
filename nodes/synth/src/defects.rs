//! Coil defects: burrs and loose wires, placed on the coil in 3-D and drawn per photo.
//!
//! A defect sits at a world azimuth on the coil's bottom outer edge, top outer edge or
//! top face, and is seen from the cameras facing it: a bottom-edge defect from cameras
//! within its `halfwidth` of straight on (it sticks out below the coil's outline), a
//! top-edge defect from the cameras on the far side (it sticks out above the far rim),
//! a face burr from the cameras that catch its glint. Its shape is a 3-D polyline in the
//! frame of its anchor (radial, tangential, up), so one defect looks different from each
//! angle that sees it.
//!
//! - **Burr**: 1-3 short, straight, sharply tapered spikes roughly along the radial
//!   direction, bright and bright-edged, with bright flecks around their base.
//!   Usually 3-10 px at 256 px; 12% are long (11-19 px), as long as a short loose wire.
//! - **Loose wire**: a thin strand of the wire's own colour, with a specular line and a
//!   faint shadow; either a curved tail (18-80 px; 20% short and thin, 10-17 px) that may
//!   curl back into the winding, or an arch that leaves the winding and re-enters it.

use std::f32::consts::PI;

use crate::geom::{V2, polyline_length};
use crate::manifest::{CoilLabel, DefectRecord};
use crate::raster::{Canvas, Coverage};
use crate::rng::Rng;
use crate::view::{Material, View, faces};

/// Product geometry the defect planner needs.
pub(crate) struct CoilGeometry {
    /// Outer radius in pixels.
    pub radius: f32,
    /// Hub radius / outer radius.
    pub hub: f32,
    /// Pixels per pixel-at-256 (`size / 256`).
    pub unit: f32,
}

/// Where on the coil a defect sits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Site {
    /// The bottom outer edge: outline below the coil, seen from the near side.
    Bottom,
    /// The top outer edge: outline above the far rim, seen from the far side.
    Top,
    /// The top face at this fraction of the outer radius.
    Face(f32),
}

/// A defect of a product.
#[derive(Debug, Clone)]
pub(crate) struct Defect {
    /// `burr` or `loose_wire`.
    pub kind: CoilLabel,
    /// World azimuth (radians).
    pub azimuth: f32,
    /// Camera-relative azimuth from which it is best seen (0: straight on).
    pub facing: f32,
    /// Seen by cameras within this angle (radians) of `facing`.
    pub halfwidth: f32,
    /// Where it sits.
    pub site: Site,
    /// Its shape.
    pub shape: Shape,
}

/// A defect's shape, in pixels at the product's nominal scale.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// Spikes and flecks.
    Burr {
        spikes: Vec<Spike>,
        flecks: Vec<Fleck>,
        /// Brightness multiplier.
        brightness: f32,
        /// Mix of the wire colour towards white.
        whiteness: f32,
    },
    /// A strand: points (radial, tangential, up) relative to the anchor.
    Strand { points: Vec<[f32; 3]>, width: f32 },
}

/// One spike of a burr.
#[derive(Debug, Clone)]
pub(crate) struct Spike {
    /// Offset along the rim from the defect's azimuth (pixels).
    offset: f32,
    /// Unit direction (radial, tangential, up).
    dir: [f32; 3],
    /// Length (pixels).
    length: f32,
    /// Base width (pixels).
    base: f32,
}

/// A bright fleck near a burr.
#[derive(Debug, Clone)]
pub(crate) struct Fleck {
    offset: f32,
    lift: f32,
    radius: f32,
    bright: f32,
}

/// Draws the defects of a product: loose wires if `loose_wire`, burrs if `burr`.
pub(crate) fn plan(rng: &mut Rng, geo: &CoilGeometry, loose_wire: bool, burr: bool) -> Vec<Defect> {
    let mut out = Vec::new();
    if loose_wire {
        let n = if rng.chance(0.15) { 2 } else { 1 };
        for _ in 0..n {
            out.push(plan_loose_wire(rng, geo));
        }
    }
    if burr {
        let n = 1 + rng.weighted(&[0.45, 0.3, 0.17, 0.08]);
        for _ in 0..n {
            out.push(plan_burr(rng, geo));
        }
    }
    out
}

fn plan_loose_wire(rng: &mut Rng, geo: &CoilGeometry) -> Defect {
    let u = geo.unit;
    let r = geo.radius;
    let (site, facing) = if rng.chance(0.65) {
        (Site::Bottom, 0.0)
    } else {
        (Site::Top, PI)
    };
    let halfwidth = rng.range(45.0, 85.0).to_radians();
    let azimuth = rng.range(-PI, PI);
    let hard = rng.chance(0.2);
    let width = if hard {
        rng.range(1.0, 1.4)
    } else {
        rng.range(1.3, 2.4)
    } * u;
    // Vertical slope: hanging down at the bottom edge, standing up at the top edge.
    let slope = match site {
        Site::Top => rng.range(-0.1, 0.45),
        _ => rng.range(-0.45, 0.1),
    };
    let mut points = vec![[0.0f32; 3]];
    if !hard && rng.chance(0.4) {
        // Arch: leaves the winding and re-enters it further along.
        let span = rng.range(14.0, 48.0) * u;
        let rise = rng.range(5.0, 22.0) * u;
        let skew = rng.range(-0.3, 0.3);
        let side = rng.sign();
        let n = 24;
        for i in 1..=n {
            let t = i as f32 / n as f32;
            let beta = span / r * t;
            let bump = (PI * t).sin();
            let a = rise * bump * (1.0 + skew * (2.0 * t - 1.0));
            points.push([
                (r + a) * beta.cos() - r,
                side * (r + a) * beta.sin(),
                slope * rise * bump,
            ]);
        }
    } else {
        // Tail: starts outwards, curls; stops where it dives back into the winding.
        let length = if hard {
            rng.range(10.0, 17.0)
        } else {
            rng.range(18.0, 80.0)
        } * u;
        let mut heading = rng.normal().clamp(-2.2, 2.2) * 0.45;
        let turn = rng.sign() * rng.range(0.3, 2.4);
        let s_curve = rng.chance(0.25);
        let n = 24;
        let ds = length / n as f32;
        let mut p = [0.0f32; 3];
        for i in 0..n {
            let k = if s_curve && i >= n / 2 { -turn } else { turn };
            heading += k / length * ds;
            p = [
                p[0] + heading.cos() * ds,
                p[1] + heading.sin() * ds,
                p[2] + slope * ds,
            ];
            points.push(p);
            let back_in = (r + p[0]) * (r + p[0]) + p[1] * p[1] < r * r;
            if i >= n * 7 / 10 && back_in {
                break;
            }
        }
    }
    Defect {
        kind: CoilLabel::LooseWire,
        azimuth,
        facing,
        halfwidth,
        site,
        shape: Shape::Strand { points, width },
    }
}

fn plan_burr(rng: &mut Rng, geo: &CoilGeometry) -> Defect {
    let u = geo.unit;
    let face = rng.chance(0.2);
    let (site, facing, halfwidth) = if face {
        let rho = rng.range(geo.hub + 0.08, 0.95);
        (
            Site::Face(rho),
            rng.range(-PI, PI),
            rng.range(35.0, 70.0).to_radians(),
        )
    } else if rng.chance(0.6) {
        (Site::Bottom, 0.0, rng.range(38.0, 75.0).to_radians())
    } else {
        (Site::Top, PI, rng.range(38.0, 75.0).to_radians())
    };
    let n = 1 + rng.weighted(&[0.55, 0.3, 0.15]);
    let spikes = (0..n)
        .map(|_| {
            let offset = rng.normal() * 2.5 * u;
            let dir = if face {
                normalize([rng.normal() * 0.5, rng.normal() * 0.5, 1.0])
            } else {
                let up = match site {
                    Site::Top => 0.1,
                    _ => -0.1,
                };
                normalize([1.0, rng.normal() * 0.3, rng.normal() * 0.25 + up])
            };
            let length = if face {
                rng.range(2.0, 6.0)
            } else if rng.chance(0.12) {
                rng.range(11.0, 19.0)
            } else {
                rng.range(3.0, 10.5)
            } * u;
            let base = if face {
                rng.range(1.5, 2.5)
            } else {
                rng.range(1.8, 3.2)
            } * u;
            Spike {
                offset,
                dir,
                length,
                base,
            }
        })
        .collect();
    let flecks = (0..rng.int(1, 5))
        .map(|_| Fleck {
            offset: rng.normal() * 4.0 * u,
            lift: rng.range(0.0, 1.5) * u,
            radius: rng.range(0.5, 1.2) * u,
            bright: rng.range(0.7, 1.0),
        })
        .collect();
    Defect {
        kind: CoilLabel::Burr,
        azimuth: rng.range(-PI, PI),
        facing,
        halfwidth,
        site,
        shape: Shape::Burr {
            spikes,
            flecks,
            brightness: rng.range(0.85, 1.1),
            whiteness: rng.range(0.45, 0.8),
        },
    }
}

fn normalize(a: [f32; 3]) -> [f32; 3] {
    let l = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt().max(1e-9);
    [a[0] / l, a[1] / l, a[2] / l]
}

/// The anchor frame of a defect point in one view: camera-relative position and the
/// radial and tangential unit vectors.
struct Anchor {
    at: [f32; 3],
    radial: [f32; 3],
    tangent: [f32; 3],
}

impl Anchor {
    fn new(view: &View, defect: &Defect, offset_px: f32) -> Anchor {
        let u = view.relative(defect.azimuth + offset_px * view.scale / view.radius);
        let (s, c) = u.sin_cos();
        let (r, z) = match defect.site {
            Site::Bottom => (view.radius, -view.height),
            Site::Top => (view.radius, 0.0),
            Site::Face(rho) => (rho * view.radius, 0.0),
        };
        Anchor {
            at: [r * s, r * c, z],
            radial: [s, c, 0.0],
            tangent: [c, -s, 0.0],
        }
    }

    /// Camera-relative position of a local offset (radial, tangential, up), in pixels.
    fn point(&self, local: [f32; 3]) -> [f32; 3] {
        [
            self.at[0] + local[0] * self.radial[0] + local[1] * self.tangent[0],
            self.at[1] + local[0] * self.radial[1] + local[1] * self.tangent[1],
            self.at[2] + local[2],
        ]
    }
}

/// Whether `defect` can be seen in this view.
pub(crate) fn visible(view: &View, defect: &Defect) -> bool {
    faces(view, defect.azimuth, defect.facing, defect.halfwidth)
}

/// Draws `defect` into the photo if this view sees it; returns what was drawn.
pub(crate) fn draw(
    canvas: &mut Canvas,
    material: &Material,
    view: &View,
    defect: &Defect,
) -> Option<DefectRecord> {
    if !visible(view, defect) {
        return None;
    }
    let (w, h) = (canvas.width, canvas.height);
    let m = material;
    let (bbox, length) = match &defect.shape {
        Shape::Strand { points, width } => {
            let anchor = Anchor::new(view, defect, 0.0);
            let pts: Vec<V2> = points
                .iter()
                .map(|p| view.project(anchor.point(p.map(|v| v * view.scale))))
                .collect();
            let width = width * view.scale;
            // Seen end-on it is no more than a burr-like stub: not shown from here.
            let seen = polyline_length(&pts);
            let full: f32 = points
                .windows(2)
                .map(|w| {
                    let d = [w[1][0] - w[0][0], w[1][1] - w[0][1], w[1][2] - w[0][2]];
                    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
                })
                .sum::<f32>()
                * view.scale;
            if seen < 0.5 * full {
                return None;
            }
            // A faint shadow on whatever lies behind, away from the light.
            let off = -view.light_image * (2.0 * width + 1.0);
            let shadow: Vec<V2> = pts.iter().map(|&p| p + off).collect();
            let mut cov = Coverage::around(&shadow, width + 2.0, w, h);
            cov.stroke(&shadow, &vec![width * 1.3; shadow.len()]);
            canvas.shade(&cov, 0.65);
            // The wire itself, lit like the coil's turns.
            let mut body = Coverage::around(&pts, width + 2.0, w, h);
            body.stroke(&pts, &vec![width; pts.len()]);
            let k = view.ambient + view.diffuse * 0.6;
            canvas.paint(&body, &m.base.map(|c| c * k), 1.0);
            // Its specular line, on the side facing the light.
            let highlight: Vec<V2> = (0..pts.len())
                .map(|i| {
                    let a = pts[i.saturating_sub(1)];
                    let b = pts[(i + 1).min(pts.len() - 1)];
                    let n = (b - a).norm().perp();
                    let side = if n.dot(view.light_image) >= 0.0 {
                        1.0
                    } else {
                        -1.0
                    };
                    pts[i] + n * (side * width * 0.22)
                })
                .collect();
            let mut hl = Coverage::around(&highlight, width + 2.0, w, h);
            hl.stroke(&highlight, &vec![width * 0.4; highlight.len()]);
            let spec: Vec<f32> = (0..3)
                .map(|c| m.spec[c] * m.gloss + m.base[c] * 0.3)
                .collect();
            canvas.paint(&hl, &spec, 0.75);
            (body.bbox(0.25), polyline_length(&pts))
        }
        Shape::Burr {
            spikes,
            flecks,
            brightness,
            whiteness,
        } => {
            let bright: Vec<f32> = m
                .base
                .iter()
                .map(|c| (c + (1.0 - c) * whiteness) * brightness)
                .collect();
            let dark: Vec<f32> = m.base.iter().map(|c| c * 0.3).collect();
            let mut bbox: Option<[u32; 4]> = None;
            let mut longest = 0.0f32;
            for s in spikes {
                let anchor = Anchor::new(view, defect, s.offset);
                let a3 = anchor.at;
                let tip3 = anchor.point(s.dir.map(|v| v * s.length * view.scale));
                let (a, t) = (view.project(a3), view.project(tip3));
                let d = t - a;
                longest = longest.max(d.len());
                let base = s.base * view.scale;
                let dirn = if d.len() > 1e-3 {
                    d.norm()
                } else {
                    view.light_image
                };
                let a0 = a - dirn * 0.8;
                let mut body = Coverage::around(&[a0, t], base + 2.0, w, h);
                body.stroke(&[a0, a, t], &[base, base, 0.15]);
                canvas.paint(&body, &bright, 1.0);
                let n = dirn.perp();
                let side = if n.dot(view.light_image) >= 0.0 {
                    1.0
                } else {
                    -1.0
                };
                let o = n * (side * base * 0.3);
                let mut edge = Coverage::around(&[a + o, t], base + 2.0, w, h);
                edge.stroke(&[a + o, t + o * 0.2], &[base * 0.45, 0.1]);
                canvas.paint(&edge, &[1.0, 1.0, 1.0], 0.85);
                let mut shadow = Coverage::around(&[a - o, t], base + 2.0, w, h);
                shadow.stroke(&[a - o, t - o * 0.2], &[base * 0.35, 0.1]);
                canvas.paint(&shadow, &dark, 0.5);
                bbox = union(bbox, body.bbox(0.25));
            }
            for f in flecks {
                let anchor = Anchor::new(view, defect, f.offset);
                let c = view.project(anchor.point([f.lift * view.scale, 0.0, 0.0]));
                let r = f.radius * view.scale;
                let mut cov = Coverage::around(&[c], r + 2.0, w, h);
                cov.disc(c, r);
                canvas.paint(&cov, &[f.bright, f.bright, f.bright * 0.97], 0.9);
                bbox = union(bbox, cov.bbox(0.25));
            }
            (bbox, longest)
        }
    };
    bbox.map(|bbox| DefectRecord {
        kind: defect.kind,
        bbox,
        length_px: (length * 10.0).round() / 10.0,
    })
}

fn union(a: Option<[u32; 4]>, b: Option<[u32; 4]>) -> Option<[u32; 4]> {
    match (a, b) {
        (Some(a), Some(b)) => Some([
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[2].max(b[2]),
            a[3].max(b[3]),
        ]),
        (a, None) => a,
        (None, b) => b,
    }
}

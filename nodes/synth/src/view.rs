//! How one photograph sees a coil: the wire's surface ([`Material`]), the camera's pose and
//! light ([`View`], posed by [`crate::coil::Coil::view`]), projection and shading. A leaf:
//! the coil body and its defects are both drawn through it.

use crate::geom::{V2, v2, wrap_angle};
use crate::rng::Rng;

/// The wire's surface.
#[derive(Debug, Clone)]
pub(crate) struct Material {
    /// Diffuse colour.
    pub base: [f32; 3],
    /// Specular colour.
    pub spec: [f32; 3],
    /// Specular strength.
    pub gloss: f32,
    /// Specular exponent is `2^shininess_log2`.
    pub shininess_log2: u32,
}

impl Material {
    pub(crate) fn random(rng: &mut Rng) -> Material {
        // copper, enamelled red, enamelled green, enamelled amber, tinned (silver)
        let kind = rng.weighted(&[0.32, 0.2, 0.14, 0.12, 0.22]);
        let (base, spec, gloss, sh) = match kind {
            0 => ([0.78, 0.45, 0.25], [1.0, 0.86, 0.72], 0.65, 5),
            1 => ([0.56, 0.11, 0.07], [1.0, 0.95, 0.95], 0.75, 6),
            2 => ([0.13, 0.42, 0.17], [0.95, 1.0, 0.95], 0.75, 6),
            3 => ([0.76, 0.53, 0.13], [1.0, 0.97, 0.9], 0.7, 6),
            _ => ([0.72, 0.73, 0.76], [1.0, 1.0, 1.0], 0.55, 4),
        };
        let j = rng.range(0.9, 1.08);
        let base = base.map(|c: f32| (c * j * rng.range(0.96, 1.04)).min(1.0));
        Material {
            base,
            spec,
            gloss,
            shininess_log2: sh,
        }
    }

    /// Relative luminance of the diffuse colour.
    pub fn luminance(&self) -> f32 {
        0.3 * self.base[0] + 0.59 * self.base[1] + 0.11 * self.base[2]
    }
}

/// How one photograph is taken: camera pose, coil placement, light.
#[derive(Debug, Clone)]
pub(crate) struct View {
    /// Camera azimuth (radians).
    pub alpha: f32,
    /// `sin(elevation)`: the squash of the top face.
    pub k: f32,
    /// `cos(elevation)`: how heights project.
    pub cos_e: f32,
    /// Outer radius in pixels in this photo.
    pub radius: f32,
    /// Photo scale relative to the product's nominal size.
    pub scale: f32,
    /// Coil height in pixels in this photo (3-D, not projected).
    pub height: f32,
    /// Image position of the centre of the top face.
    pub origin: V2,
    /// Camera roll (radians) as cosine and sine.
    pub roll: (f32, f32),
    /// Unit vector towards the light (camera coordinates).
    pub light: [f32; 3],
    /// Unit half vector between light and camera.
    pub half: [f32; 3],
    /// Ambient light.
    pub ambient: f32,
    /// Diffuse light strength.
    pub diffuse: f32,
    /// Unit image-plane direction towards the light.
    pub light_image: V2,
}

impl View {
    /// Height of the visible wall band in pixels.
    pub fn band(&self) -> f32 {
        self.height * self.cos_e
    }

    /// Camera-relative azimuth of world azimuth `azimuth`, in (-pi, pi].
    pub fn relative(&self, azimuth: f32) -> f32 {
        wrap_angle(azimuth - self.alpha)
    }

    /// Image position of a camera-relative 3-D point.
    pub fn project(&self, p: [f32; 3]) -> V2 {
        self.origin + self.project_dir(p)
    }

    /// Image displacement of a camera-relative 3-D vector.
    pub fn project_dir(&self, p: [f32; 3]) -> V2 {
        let l = v2(p[0], p[1] * self.k - p[2] * self.cos_e);
        v2(
            self.roll.0 * l.x - self.roll.1 * l.y,
            self.roll.1 * l.x + self.roll.0 * l.y,
        )
    }

    /// Unrolled image offset of an image point from the origin (the inverse of the roll).
    pub fn local(&self, p: V2) -> V2 {
        let d = p - self.origin;
        v2(
            self.roll.0 * d.x + self.roll.1 * d.y,
            -self.roll.1 * d.x + self.roll.0 * d.y,
        )
    }

    /// Image centre of the silhouette and a radius containing it.
    pub fn silhouette_circle(&self) -> (V2, f32) {
        let band = self.band();
        let centre = self.origin + self.project_dir([0.0, 0.0, 0.0]) + {
            let m = v2(0.0, band / 2.0);
            v2(
                self.roll.0 * m.x - self.roll.1 * m.y,
                self.roll.1 * m.x + self.roll.0 * m.y,
            )
        };
        (
            centre,
            self.radius.max(self.radius * self.k + band / 2.0) + 1.0,
        )
    }

    /// Shaded colour for a surface normal (camera coordinates).
    pub(crate) fn shade(&self, m: &Material, n: [f32; 3], tone: f32, spec_scale: f32) -> [f32; 3] {
        let d = dot3(n, self.light).max(0.0);
        let mut s = dot3(n, self.half);
        // Below 0.6 the highlight (s^16 and up) is nil: skip the squarings.
        if s > 0.6 {
            for _ in 0..m.shininess_log2 {
                s *= s;
            }
        } else {
            s = 0.0;
        }
        let diffuse = tone * (self.ambient + self.diffuse * d);
        let sp = m.gloss * s * spec_scale;
        [
            m.base[0] * diffuse + m.spec[0] * sp,
            m.base[1] * diffuse + m.spec[1] * sp,
            m.base[2] * diffuse + m.spec[2] * sp,
        ]
    }
}

pub(crate) fn dot3(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn normalize3(a: [f32; 3]) -> [f32; 3] {
    let l = dot3(a, a).sqrt().max(1e-9);
    [a[0] / l, a[1] / l, a[2] / l]
}

/// Whether world azimuth `facing` is within `halfwidth` of the camera-relative azimuth
/// `centre` in this view.
pub(crate) fn faces(view: &View, azimuth: f32, centre: f32, halfwidth: f32) -> bool {
    wrap_angle(view.relative(azimuth) - centre).abs() < halfwidth
}

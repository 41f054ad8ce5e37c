//! 2-D points and curves in image pixels (x right, y down).

use std::ops::{Add, Mul, Neg, Sub};

/// A point or vector in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct V2 {
    /// Right.
    pub x: f32,
    /// Down.
    pub y: f32,
}

/// Shorthand constructor.
pub const fn v2(x: f32, y: f32) -> V2 {
    V2 { x, y }
}

impl V2 {
    /// Dot product.
    pub fn dot(self, o: V2) -> f32 {
        self.x * o.x + self.y * o.y
    }
    /// Length.
    pub fn len(self) -> f32 {
        self.dot(self).sqrt()
    }
    /// Unit vector in the same direction (zero stays zero).
    pub fn norm(self) -> V2 {
        let l = self.len();
        if l > 1e-9 { self * (1.0 / l) } else { self }
    }
    /// Rotated by +90 degrees (clockwise on screen, since y points down).
    pub fn perp(self) -> V2 {
        v2(-self.y, self.x)
    }
    /// Rotated by `angle` radians.
    pub fn rotate(self, angle: f32) -> V2 {
        let (s, c) = angle.sin_cos();
        v2(c * self.x - s * self.y, s * self.x + c * self.y)
    }
    /// Linear interpolation towards `o`.
    pub fn lerp(self, o: V2, t: f32) -> V2 {
        self + (o - self) * t
    }
}

impl Add for V2 {
    type Output = V2;
    fn add(self, o: V2) -> V2 {
        v2(self.x + o.x, self.y + o.y)
    }
}
impl Sub for V2 {
    type Output = V2;
    fn sub(self, o: V2) -> V2 {
        v2(self.x - o.x, self.y - o.y)
    }
}
impl Mul<f32> for V2 {
    type Output = V2;
    fn mul(self, k: f32) -> V2 {
        v2(self.x * k, self.y * k)
    }
}
impl Neg for V2 {
    type Output = V2;
    fn neg(self) -> V2 {
        v2(-self.x, -self.y)
    }
}

/// `n + 1` points along the quadratic Bezier curve `p0, p1, p2`.
pub fn bezier2(p0: V2, p1: V2, p2: V2, n: usize) -> Vec<V2> {
    (0..=n)
        .map(|i| {
            let t = i as f32 / n as f32;
            let u = 1.0 - t;
            p0 * (u * u) + p1 * (2.0 * u * t) + p2 * (t * t)
        })
        .collect()
}

/// Total length of a polyline.
pub fn polyline_length(points: &[V2]) -> f32 {
    points.windows(2).map(|w| (w[1] - w[0]).len()).sum()
}

/// Distance from `p` to the segment `a..b`, and the parameter (0..1) of the closest point.
pub fn segment_distance(p: V2, a: V2, b: V2) -> (f32, f32) {
    let ab = b - a;
    let l2 = ab.dot(ab);
    let t = if l2 > 1e-12 {
        ((p - a).dot(ab) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((p - (a + ab * t)).len(), t)
}

/// Wraps an angle to (-pi, pi].
pub fn wrap_angle(a: f32) -> f32 {
    let t = std::f32::consts::TAU;
    let mut a = a % t;
    if a > std::f32::consts::PI {
        a -= t;
    } else if a <= -std::f32::consts::PI {
        a += t;
    }
    a
}

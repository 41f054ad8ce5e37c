//! The seeded random number generator behind every random choice.
//!
//! Every image draws from its own stream, keyed by `(seed, purpose, product, angle, ...)`,
//! so images can be generated in any order, on any number of threads, and still come out
//! byte-identical. The stream is ChaCha8 (`rand_chacha`, pinned), whose output is fixed by
//! its specification; the conversions to floats and ranges are written here rather than
//! taken from `rand`, so no upstream change of a sampling algorithm can change the data.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Stream purposes (the first key after the seed), so that no two uses share a stream.
pub(crate) mod stream {
    /// A coil product's model (colour, size, defects).
    pub const COIL_PRODUCT: u64 = 1;
    /// One photograph of a coil (pose, light, clutter, noise).
    pub const COIL_VIEW: u64 = 2;
    /// One steel-surface image.
    pub const SURFACE: u64 = 3;
}

/// A deterministic random stream.
pub struct Rng {
    inner: ChaCha8Rng,
}

/// SplitMix64 step: a good 64-bit mixer for deriving keys.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream for `seed` and the keys `keys` (purpose first, then indices).
    pub fn new(seed: u64, keys: &[u64]) -> Self {
        let mut state = seed ^ 0x6C6F_7570_6553_796E; // "loupeSyn"
        let mut acc = splitmix(&mut state);
        for (i, &k) in keys.iter().enumerate() {
            let mut s = acc ^ k.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (i as u64 + 1);
            acc = splitmix(&mut s);
        }
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix(&mut acc).to_le_bytes());
        }
        Rng {
            inner: ChaCha8Rng::from_seed(key),
        }
    }

    /// 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1).
    pub fn f32(&mut self) -> f32 {
        (self.inner.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }

    /// Uniform integer in [0, n) (n > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.inner.next_u32() as u64 * n as u64) >> 32) as u32
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn int(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// -1 or +1.
    pub fn sign(&mut self) -> f32 {
        if self.inner.next_u32() & 1 == 0 {
            -1.0
        } else {
            1.0
        }
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = 1.0 - self.f64(); // (0, 1]
        let u2 = self.f64();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    /// Fast approximately normal noise (mean 0, variance 1) from one 64-bit draw: the
    /// centred sum of four 16-bit uniforms. For per-pixel sensor noise.
    pub fn noise(&mut self) -> f32 {
        let v = self.u64();
        let s = (v & 0xFFFF) + ((v >> 16) & 0xFFFF) + ((v >> 32) & 0xFFFF) + (v >> 48);
        // Sum of 4 U(0,1): mean 2, variance 1/3.
        (s as f32 * (1.0 / 65536.0) - 2.0) * 1.732_050_8
    }

    /// Index drawn with the given (non-negative, not all zero) weights.
    pub fn weighted(&mut self, weights: &[f32]) -> usize {
        let total: f32 = weights.iter().sum();
        let mut x = self.f32() * total;
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, &[1, 2]).u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, &[1, 2]).u64(), Rng::new(7, &[2, 1]).u64());
        assert_ne!(Rng::new(7, &[1, 2]).u64(), Rng::new(8, &[1, 2]).u64());
    }

    #[test]
    fn noise_has_unit_variance() {
        let mut r = Rng::new(1, &[]);
        let n = 100_000;
        let xs: Vec<f32> = (0..n).map(|_| r.noise()).collect();
        let mean = xs.iter().sum::<f32>() / n as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
    }
}

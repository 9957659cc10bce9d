//! The closed form of every value of an nwp-fields dataset (docs/FORMATS.md, "The values: a closed form").
//!
//! Every value can be recomputed from its coordinates alone, so any output chunk
//! can be verified without a reference run, in any language.

/// The dataset parameters that the values depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueParams {
    /// Variables per group.
    pub variables: u32,
    /// Steps per variable.
    pub steps: u32,
    /// Rows of every field.
    pub ny: u32,
    /// Columns of every field.
    pub nx: u32,
    /// The seed of the noise.
    pub seed: u64,
    /// 0..=8: how many low bits of noise each value carries.
    pub noise_bits: u32,
}

/// SplitMix64's output function (docs/FORMATS.md, "The values"), all arithmetic wrapping.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ValueParams {
    /// The value at (g, v, s, y, x).
    #[inline]
    pub fn value(&self, g: u32, v: u32, s: u32, y: u32, x: u32) -> f32 {
        let key = self.key(g, v, s, y, x);
        self.value_at_key(key, g, v, s, y, x)
    }

    #[inline]
    fn key(&self, g: u32, v: u32, s: u32, y: u32, x: u32) -> u64 {
        let (vv, ss, ny, nx) = (
            self.variables as u64,
            self.steps as u64,
            self.ny as u64,
            self.nx as u64,
        );
        let gvs = ((g as u64).wrapping_mul(vv).wrapping_add(v as u64))
            .wrapping_mul(ss)
            .wrapping_add(s as u64);
        (gvs.wrapping_mul(ny).wrapping_add(y as u64))
            .wrapping_mul(nx)
            .wrapping_add(x as u64)
    }

    /// The integer q of value = 200 + q / 2^b at `key` = (g, v, s, y, x) flattened;
    /// q < 2^(12 + b).
    #[inline]
    fn q_at_key(&self, key: u64, g: u32, v: u32, s: u32, y: u32, x: u32) -> u64 {
        let b = self.noise_bits;
        // Computed in u64 so that huge coordinates wrap the same way in any language.
        let smooth = (x as u64 + 2 * y as u64 + 3 * s as u64 + 5 * v as u64 + 7 * g as u64) % 4096;
        let noise = if b == 0 {
            0
        } else {
            splitmix64(self.seed.wrapping_add(key)) >> (64 - b)
        };
        (smooth << b) + noise
    }

    #[inline]
    fn value_at_key(&self, key: u64, g: u32, v: u32, s: u32, y: u32, x: u32) -> f32 {
        let b = self.noise_bits;
        let q = self.q_at_key(key, g, v, s, y, x);
        // (200·2^b + q) < 2^21 and the scale is a power of two, so both steps are exact.
        ((200u64 << b) + q) as f32 / (1u64 << b) as f32
    }

    /// Fills `out` (ny·nx, row-major) with the integers q of field (g, v, s):
    /// value = 200 + q / 2^b, q < 2^(12 + b). GRIB2 packs exactly these
    /// (docs/FORMATS.md, "nwp-grib2").
    pub fn fill_field_q(&self, g: u32, v: u32, s: u32, out: &mut [u32]) {
        self.fill_with(g, v, s, out, |p, key, y, x| {
            p.q_at_key(key, g, v, s, y, x) as u32
        });
    }

    /// Fills `out` (ny·nx values, row-major) with the field (g, v, s).
    pub fn fill_field(&self, g: u32, v: u32, s: u32, out: &mut [f32]) {
        self.fill_with(g, v, s, out, |p, key, y, x| {
            p.value_at_key(key, g, v, s, y, x)
        });
    }

    /// Fills `out` row by row with `at(self, key, y, x)`, each row's first key
    /// computed once.
    #[inline]
    fn fill_with<T>(
        &self,
        g: u32,
        v: u32,
        s: u32,
        out: &mut [T],
        at: impl Fn(&Self, u64, u32, u32) -> T,
    ) {
        let (ny, nx) = (self.ny as usize, self.nx as usize);
        assert_eq!(out.len(), ny * nx, "field buffer has the wrong size");
        for y in 0..ny {
            let row = &mut out[y * nx..(y + 1) * nx];
            let key0 = self.key(g, v, s, y as u32, 0);
            for (x, slot) in row.iter_mut().enumerate() {
                *slot = at(self, key0.wrapping_add(x as u64), y as u32, x as u32);
            }
        }
    }

    /// The field (g, v, s) as a new vector.
    pub fn field(&self, g: u32, v: u32, s: u32) -> Vec<f32> {
        let mut out = vec![0.0; self.ny as usize * self.nx as usize];
        self.fill_field(g, v, s, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(noise_bits: u32) -> ValueParams {
        ValueParams {
            variables: 3,
            steps: 5,
            ny: 7,
            nx: 11,
            seed: 42,
            noise_bits,
        }
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of the reference SplitMix64 generator seeded with 0
        // (Vigna's splitmix64.c: state += golden gamma, then the mix), i.e.
        // splitmix64(0), splitmix64(gamma), splitmix64(2·gamma).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(
            splitmix64(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(2)),
            0x06C4_5D18_8009_454F
        );
    }

    #[test]
    fn values_without_noise_are_the_smooth_ramp() {
        let p = params(0);
        // smooth = x + 2y + 3s + 5v + 7g, value = 200 + smooth.
        assert_eq!(p.value(0, 0, 0, 0, 0), 200.0);
        assert_eq!(p.value(0, 0, 0, 0, 1), 201.0);
        assert_eq!(p.value(1, 2, 3, 4, 5), 200.0 + (5 + 8 + 9 + 10 + 7) as f32);
        // The ramp wraps at 4096.
        assert_eq!(
            p.value(585, 0, 0, 0, 1),
            200.0 + ((585 * 7 + 1) % 4096) as f32
        );
    }

    #[test]
    fn values_with_noise_match_a_hand_computation() {
        let p = params(4);
        // (g, v, s, y, x) = (1, 2, 3, 4, 5):
        // key = (((1·3 + 2)·5 + 3)·7 + 4)·11 + 5 = ((28·7)+4)·11 + 5 = 200·11 + 5 = 2205
        let key = 2205u64;
        let noise = splitmix64(42 + key) >> 60;
        let smooth = 5 + 8 + 9 + 10 + 7;
        let expected = 200.0 + (smooth as f64 * 16.0 + noise as f64) / 16.0;
        assert_eq!(p.value(1, 2, 3, 4, 5) as f64, expected);
        // Every value is a multiple of 1/16 between 200 and 4296.
        for x in 0..11 {
            let v = p.value(0, 1, 2, 3, x) as f64;
            assert!((200.0..4296.0).contains(&v));
            assert_eq!((v * 16.0).fract(), 0.0);
        }
    }

    #[test]
    fn q_is_the_value_scaled() {
        for b in [0, 4, 8] {
            let p = params(b);
            let mut q = vec![0u32; 77];
            p.fill_field_q(1, 2, 3, &mut q);
            let f = p.field(1, 2, 3);
            for (q, f) in q.iter().zip(&f) {
                assert!(*q < 1 << (12 + b));
                assert_eq!(200.0 + *q as f32 / (1u32 << b) as f32, *f);
            }
        }
    }

    #[test]
    fn fill_field_agrees_with_value() {
        let p = params(8);
        let f = p.field(2, 1, 4);
        for y in 0..7 {
            for x in 0..11 {
                assert_eq!(f[(y * 11 + x) as usize], p.value(2, 1, 4, y, x));
            }
        }
    }
}

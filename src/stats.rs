//! Statistics over repetitions: medians, seeded bootstrap confidence intervals of a
//! median and of a ratio of medians. Seeded, so a report redrawn from the same
//! results file shows the same intervals.

/// The median; NaN for no samples.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut xs = xs.to_vec();
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// splitmix64: a small, fast, seedable generator (bootstrap needs no more).
pub struct Rng(u64);

impl Rng {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next output: the state advances by 0x9E3779B97F4A7C15 and is mixed.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Resamples per bootstrap estimate.
pub const BOOTSTRAP_ITERATIONS: usize = 10_000;

/// The median of one resample (with replacement) of `xs`, built in `buf`.
pub fn resample_median(xs: &[f64], rng: &mut Rng, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..xs.len()).map(|_| xs[rng.below(xs.len())]));
    median(buf)
}

/// The central `level` (e.g. 0.95) percentile interval of bootstrap estimates
/// (non-finite ones dropped).
pub fn interval(mut estimates: Vec<f64>, level: f64) -> (f64, f64) {
    estimates.retain(|x| x.is_finite());
    if estimates.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    estimates.sort_by(|a, b| a.total_cmp(b));
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| {
        let i = (q * (estimates.len() - 1) as f64).round() as usize;
        estimates[i.min(estimates.len() - 1)]
    };
    (at(tail), at(1.0 - tail))
}

/// Bootstrap percentile interval of the median of `xs`.
pub fn median_ci(xs: &[f64], level: f64, seed: u64) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(xs.len());
    let est = (0..BOOTSTRAP_ITERATIONS)
        .map(|_| resample_median(xs, &mut rng, &mut buf))
        .collect();
    interval(est, level)
}

/// The share of samples left out at each end by [`trimmed_geomean`].
pub const TRIM: f64 = 0.1;

/// The geometric mean of the positive `xs` with the lowest and highest
/// [`TRIM`] of them (rounded down) left out: for ratios that scatter symmetrically
/// in the logarithm, its spread is about 0.8 times the median's, and one wild round
/// still moves it little. NaN for no samples (or a non-positive one).
pub fn trimmed_geomean(xs: &[f64]) -> f64 {
    if xs.is_empty() || xs.iter().any(|&x| x.is_nan() || x <= 0.0) {
        return f64::NAN;
    }
    let mut logs: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    logs.sort_by(|a, b| a.total_cmp(b));
    let k = (logs.len() as f64 * TRIM) as usize;
    let kept = &logs[k..logs.len() - k];
    (kept.iter().sum::<f64>() / kept.len() as f64).exp()
}

/// Bootstrap percentile interval of trimmed_geomean(`a`) / trimmed_geomean(`b`),
/// resampling each independently.
pub fn trimmed_ratio_ci(a: &[f64], b: &[f64], level: f64, seed: u64) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = Rng::new(seed);
    let (mut ba, mut bb) = (Vec::new(), Vec::new());
    let resample = |xs: &[f64], buf: &mut Vec<f64>, rng: &mut Rng| {
        buf.clear();
        buf.extend((0..xs.len()).map(|_| xs[rng.below(xs.len())]));
        trimmed_geomean(buf)
    };
    let est = (0..BOOTSTRAP_ITERATIONS)
        .map(|_| resample(a, &mut ba, &mut rng) / resample(b, &mut bb, &mut rng))
        .collect();
    interval(est, level)
}

/// Bootstrap percentile interval of median(`a`) / median(`b`), resampling each
/// independently.
pub fn ratio_ci(a: &[f64], b: &[f64], level: f64, seed: u64) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = Rng::new(seed);
    let (mut ba, mut bb) = (Vec::new(), Vec::new());
    let est = (0..BOOTSTRAP_ITERATIONS)
        .map(|_| resample_median(a, &mut rng, &mut ba) / resample_median(b, &mut rng, &mut bb))
        .collect();
    interval(est, level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn bootstrap_intervals_are_seeded_and_cover_what_they_should() {
        let xs = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0];
        let a = median_ci(&xs, 0.95, 7);
        assert_eq!(a, median_ci(&xs, 0.95, 7), "same seed, same interval");
        assert!(
            a.0 <= 14.0 && 14.0 <= a.1 && a.0 >= 10.0 && a.1 <= 18.0,
            "{a:?}"
        );
        // A constant sample has a zero-width interval.
        assert_eq!(median_ci(&[5.0; 4], 0.95, 1), (5.0, 5.0));
        // Two clearly separated samples: the ratio's interval excludes 1.
        let fast = [20.0, 21.0, 19.5, 20.5, 20.2];
        let slow = [10.0, 10.4, 9.8, 10.1, 10.3];
        let (lo, hi) = ratio_ci(&fast, &slow, 0.95, 3);
        assert!(lo > 1.8 && hi < 2.2, "({lo}, {hi})");
        // Known: with three samples the median's resamples take only sample values.
        let (lo, hi) = median_ci(&[1.0, 2.0, 3.0], 0.95, 9);
        assert_eq!((lo, hi), (1.0, 3.0));
    }

    #[test]
    fn the_trimmed_geometric_mean_leaves_out_the_wild_rounds() {
        assert!((trimmed_geomean(&[2.0, 8.0]) - 4.0).abs() < 1e-12);
        // Ten samples: the lowest and the highest are left out.
        let xs = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1e-6, 1e6];
        assert!((trimmed_geomean(&xs) - 1.0).abs() < 1e-12);
        assert!(trimmed_geomean(&[]).is_nan() && trimmed_geomean(&[1.0, 0.0]).is_nan());
        // Two samples 15 % apart: the interval of their ratio excludes 1, seeded.
        let a = [0.85, 0.86, 0.84, 0.85, 0.87, 0.83, 0.85, 0.86];
        let b = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01];
        let ci = trimmed_ratio_ci(&a, &b, 0.95, 5);
        assert_eq!(ci, trimmed_ratio_ci(&a, &b, 0.95, 5));
        assert!(ci.0 > 0.8 && ci.1 < 0.9, "{ci:?}");
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut r = Rng::new(1);
        assert!((0..10_000).all(|_| r.below(3) < 3));
    }
}

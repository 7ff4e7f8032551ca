//! Summaries of repeated measurements: median, quartiles, extremes.

use std::fmt;

/// Median, interquartile range and extremes of a set of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises `samples` (NaN-free); all zero for an empty set.
    pub fn of(samples: &[f64]) -> Self {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        Self {
            n: v.len(),
            median: quantile(&v, 0.5),
            p25: quantile(&v, 0.25),
            p75: quantile(&v, 0.75),
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    /// Whether there were no samples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `median (p25–p75)` with `decimals` decimals.
    pub fn fmt_iqr(&self, decimals: usize) -> String {
        if self.is_empty() {
            return "n/a".into();
        }
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.p25,
            self.p75,
            d = decimals
        )
    }

    /// `min–max` with `decimals` decimals.
    pub fn fmt_range(&self, decimals: usize) -> String {
        if self.is_empty() {
            return "n/a".into();
        }
        format!("{:.d$}–{:.d$}", self.min, self.max, d = decimals)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.fmt_iqr(1), self.fmt_range(1))
    }
}

/// Linear-interpolated quantile of sorted data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.len() == 1 {
        return sorted[0];
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Element-wise ratio `a[i] / b[i]` of two per-round series (pairs with a
/// zero or missing denominator are skipped).
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, d)| **d > 0.0)
        .map(|(n, d)| n / d)
        .collect()
}

/// Median of raw samples (0 when empty).
pub fn median(samples: &[f64]) -> f64 {
    Summary::of(samples).median
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.p25, 2.0);
        assert_eq!(s.p75, 4.0);
        assert_eq!((s.min, s.max), (1.0, 5.0));
        assert_eq!(Summary::of(&[2.0, 4.0]).median, 3.0);
        assert!(Summary::of(&[]).is_empty());
        assert_eq!(ratios(&[2.0, 3.0], &[1.0, 0.0]), vec![2.0]);
    }
}

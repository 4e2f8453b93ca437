//! Exact rational numbers for frame rates and time bases (29.97 is 30000/1001, never 29.97).

use serde::{Deserialize, Serialize};

/// A positive rational number `num / den`, always stored reduced.
///
/// Frame rates and time bases are rational so that frame `n`'s time is exact at any `n`:
/// `n * den / num` seconds never drifts the way `n as f64 / 29.97` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rational {
    /// Numerator.
    pub num: u64,
    /// Denominator, never zero.
    pub den: u64,
}

impl Rational {
    /// `num / den`, reduced. Returns `None` when `den` is zero.
    pub fn new(num: u64, den: u64) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        Some(Self {
            num: num / g,
            den: den / g,
        })
    }

    /// An integer rate such as 25 or 30.
    pub const fn integer(n: u64) -> Self {
        Self { num: n, den: 1 }
    }

    /// The value as a float, for display and for rates that feed an encoder's rate control.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Parses `30`, `29.97`, `30000/1001` or `23.976`. The common NTSC decimals map to their
    /// exact `x000/1001` forms.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some((n, d)) = s.split_once('/') {
            return Self::new(n.trim().parse().ok()?, d.trim().parse().ok()?);
        }
        match s {
            "23.976" | "23.98" => return Self::new(24000, 1001),
            "29.97" => return Self::new(30000, 1001),
            "59.94" => return Self::new(60000, 1001),
            "47.952" => return Self::new(48000, 1001),
            "119.88" => return Self::new(120000, 1001),
            _ => {}
        }
        if let Ok(n) = s.parse::<u64>() {
            return Self::new(n, 1);
        }
        let v: f64 = s.parse().ok()?;
        if !(v.is_finite() && v > 0.0) {
            return None;
        }
        Self::new((v * 1000.0).round() as u64, 1000)
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{} ({:.3})", self.num, self.den, self.as_f64())
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::Rational;

    #[test]
    fn parses_and_reduces() {
        assert_eq!(Rational::parse("29.97"), Rational::new(30000, 1001));
        assert_eq!(Rational::parse("60/2"), Some(Rational::integer(30)));
        assert_eq!(Rational::parse("25"), Some(Rational::integer(25)));
        assert_eq!(Rational::parse("12.5"), Rational::new(25, 2));
        assert_eq!(Rational::parse("x"), None);
        assert_eq!(Rational::parse("1/0"), None);
    }
}

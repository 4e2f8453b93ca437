//! The frame-locked loop's time: the [`Clock`] trait (wall or virtual) and the [`FramePacer`]
//! that turns a rational frame rate into exact tick deadlines.
//!
//! Tick `n` is due at exactly `n * den / num` seconds after the start (integer nanoseconds
//! from a `u128` product: an hour of 29.97 lands on the nanosecond, no float accumulates).
//! A loop that falls behind does not try to catch up by running late ticks back to back: it
//! skips to the tick that is due now and counts the ticks it skipped.

mod clock;

pub use clock::{Clock, VirtualClock, WallClock};

use std::time::Duration;

use framelock_components::Rational;

/// Exact deadlines for a frame rate.
#[derive(Clone, Copy, Debug)]
pub struct FramePacer {
    rate: Rational,
}

/// What the pacer says about the next tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickPlan {
    /// The tick to run.
    pub tick: u64,
    /// When it is due (since the start).
    pub due: Duration,
    /// Ticks skipped to get here (the loop was behind).
    pub skipped: u64,
}

impl FramePacer {
    /// A pacer for `rate` frames per second.
    pub fn new(rate: Rational) -> Self {
        Self { rate }
    }

    /// The rate.
    pub fn rate(&self) -> Rational {
        self.rate
    }

    /// When tick `n` is due: exactly, rounded up to the next nanosecond (so that
    /// `tick_at(time_of(n)) == n`).
    pub fn time_of(&self, n: u64) -> Duration {
        let nanos = (u128::from(n) * u128::from(self.rate.den) * 1_000_000_000)
            .div_ceil(u128::from(self.rate.num.max(1)));
        Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
    }

    /// The last tick due at or before `t`.
    pub fn tick_at(&self, t: Duration) -> u64 {
        let n = t.as_nanos() * u128::from(self.rate.num)
            / (u128::from(self.rate.den.max(1)) * 1_000_000_000);
        n.min(u128::from(u64::MAX)) as u64
    }

    /// The next tick to run after `last` (None before the first), given the time `now`: the
    /// following tick if it is not yet overdue by a whole period, else the tick due now.
    pub fn next(&self, last: Option<u64>, now: Duration) -> TickPlan {
        let wanted = last.map_or(0, |l| l + 1);
        let due_now = self.tick_at(now);
        let tick = if due_now > wanted { due_now } else { wanted };
        TickPlan {
            tick,
            due: self.time_of(tick),
            skipped: tick - wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntsc_hour_is_exact() {
        let p = FramePacer::new(Rational::new(30000, 1001).unwrap_or(Rational::integer(30)));
        // 107 892 frames of 29.97 is 3599.9964 s
        assert_eq!(p.time_of(107_892), Duration::from_nanos(3_599_996_400_000));
        for n in [0, 1, 2, 1000, 107_891, 107_892, 10_000_000] {
            assert_eq!(p.tick_at(p.time_of(n)), n);
        }
    }

    #[test]
    fn skips_when_behind() {
        let p = FramePacer::new(Rational::integer(25));
        assert_eq!(p.next(None, Duration::ZERO).tick, 0);
        let on_time = p.next(Some(0), Duration::from_millis(10));
        assert_eq!((on_time.tick, on_time.skipped), (1, 0));
        let late = p.next(Some(1), Duration::from_millis(205)); // tick 5 is due at 200 ms
        assert_eq!((late.tick, late.skipped), (5, 3));
    }
}

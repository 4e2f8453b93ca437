//! Clocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::signal::Progress;

/// Time for the frame-locked loop.
///
/// Contract: [`Clock::now`] never goes backwards; [`Clock::sleep_until`] returns once
/// `now() >= t` (at once if it already is). A virtual clock makes both deterministic.
pub trait Clock: Send + Sync {
    /// Time since the clock's start.
    fn now(&self) -> Duration;
    /// Waits until `now() >= t`.
    fn sleep_until(&self, t: Duration);

    /// Like [`Clock::sleep_until`], but returns early (`true`) when `progress` counts past
    /// `seen` first: a worker finished something the loop is waiting to show. A clock that
    /// does not run by itself (virtual time) just sleeps, so runs on it stay deterministic.
    fn sleep_until_or_woken(&self, t: Duration, progress: &Progress, seen: u64) -> bool {
        let _ = (progress, seen);
        self.sleep_until(t);
        false
    }
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now = {:?})", self.now())
    }
}

/// Real time, from a monotonic [`Instant`].
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    start: Instant,
}

impl WallClock {
    /// Starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep_until_or_woken(&self, t: Duration, progress: &Progress, seen: u64) -> bool {
        // On the condition variable to within a millisecond, then to the deadline as usual.
        let left = t.saturating_sub(self.now());
        if left > Duration::from_millis(1)
            && progress.wait_past(seen, left - Duration::from_millis(1)) > seen
        {
            return true;
        }
        self.sleep_until(t);
        false
    }

    fn sleep_until(&self, t: Duration) {
        // Sleep to within a millisecond (the OS timer's slack), then yield to the deadline.
        loop {
            let now = self.now();
            if now >= t {
                return;
            }
            let left = t - now;
            if left > Duration::from_millis(2) {
                std::thread::sleep(left - Duration::from_millis(1));
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Time that advances only when told: tests and deterministic replays. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// At zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Sets the time (never backwards).
    pub fn set(&self, t: Duration) {
        self.nanos.fetch_max(t.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    /// Virtual sleeping jumps the clock to `t`: the loop never waits on a virtual clock.
    fn sleep_until(&self, t: Duration) {
        self.set(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_wakes_on_progress_and_a_virtual_one_does_not() {
        let progress = Progress::default();
        let bump = progress.clone();
        let wall = WallClock::new();
        let deadline = wall.now() + Duration::from_secs(20);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            bump.bump();
        });
        assert!(wall.sleep_until_or_woken(deadline, &progress, 0));
        assert!(wall.now() < deadline, "woken before the deadline");
        assert!(t.join().is_ok());
        // Already past `seen`: no wait at all. Not past it by the deadline: not woken.
        assert!(wall.sleep_until_or_woken(deadline, &progress, 0));
        let soon = wall.now() + Duration::from_millis(5);
        assert!(!wall.sleep_until_or_woken(soon, &progress, 1));
        assert!(wall.now() >= soon);

        let virtual_clock = VirtualClock::new();
        let t = Duration::from_secs(3);
        assert!(!virtual_clock.sleep_until_or_woken(t, &progress, 0));
        assert_eq!(virtual_clock.now(), t, "virtual time jumps to the deadline");
    }
}

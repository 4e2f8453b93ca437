//! Clocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Time for the frame-locked loop.
///
/// Contract: [`Clock::now`] never goes backwards; [`Clock::sleep_until`] returns once
/// `now() >= t` (at once if it already is). A virtual clock makes both deterministic.
pub trait Clock: Send + Sync {
    /// Time since the clock's start.
    fn now(&self) -> Duration;
    /// Waits until `now() >= t`.
    fn sleep_until(&self, t: Duration);
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

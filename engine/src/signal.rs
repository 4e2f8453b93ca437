//! [`Progress`]: a counter worker threads bump when they finish a job, so a driver outside the
//! tick (the offline renderer, tests, shutdown) sleeps until something happened instead of
//! polling. The tick itself never waits on it.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Completed-work counter with a wait (see the module doc).
#[derive(Clone, Default)]
pub struct Progress(Arc<(Mutex<u64>, Condvar)>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Progress").field(&self.count()).finish()
    }
}

impl Progress {
    /// Counts one finished job and wakes every waiter.
    pub fn bump(&self) {
        let (m, c) = &*self.0;
        let mut n = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *n += 1;
        c.notify_all();
    }

    /// Jobs finished so far.
    pub fn count(&self) -> u64 {
        *self
            .0
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the count passes `seen` or `timeout` elapses; returns the count.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let (m, c) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut n = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *n <= seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            n = c
                .wait_timeout(n, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *n
    }
}

impl Progress {
    /// Waits until `done()` holds, rechecking it after every bump (and at least every 50 ms,
    /// for conditions that change without one), or until `timeout` passes; returns whether it
    /// holds.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.count();
            if done() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wait_past(seen, left.min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_bump_or_the_timeout() {
        let p = Progress::default();
        assert_eq!(p.wait_past(0, Duration::from_millis(5)), 0);
        let q = p.clone();
        let t = std::thread::spawn(move || q.bump());
        assert_eq!(p.wait_past(0, Duration::from_secs(30)), 1);
        let _ = t.join();
    }
}

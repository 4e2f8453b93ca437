//! A thin profiling layer of our own over the profilers, so that choosing one is a build
//! feature, not a code change (rerun's `re_tracing`, wgpu's `profiling` crate).
//!
//! [`profile_function!`](crate::profile_function) and [`profile_scope!`](crate::profile_scope)
//! mark scopes; [`finish_frame`] marks the end of a tick. Today they feed puffin (scopes cost
//! one relaxed atomic load while [`set_enabled`] is off); Tracy joins here behind a feature.

pub use puffin;

/// Profiles the enclosing function.
#[macro_export]
macro_rules! profile_function {
    () => {
        $crate::profile::puffin::profile_function!();
    };
}

/// Profiles the rest of the enclosing block under `name`.
#[macro_export]
macro_rules! profile_scope {
    ($name:expr) => {
        $crate::profile::puffin::profile_scope!($name);
    };
}

/// Ends a profiler frame (one playback tick).
pub fn finish_frame() {
    puffin::GlobalProfiler::lock().new_frame();
}

/// Turns scope recording on or off (off by default: scopes are then nearly free).
pub fn set_enabled(on: bool) {
    puffin::set_scopes_on(on);
}

/// Whether scopes are recorded.
pub fn enabled() -> bool {
    puffin::are_scopes_on()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn scopes_reach_the_profiler_as_frames() {
        let frames = Arc::new(Mutex::new(0usize));
        let seen = frames.clone();
        let sink = puffin::GlobalProfiler::lock().add_sink(Box::new(move |frame| {
            if frame.meta().num_scopes > 0
                && let Ok(mut n) = seen.lock()
            {
                *n += 1;
            }
        }));
        super::set_enabled(true);
        assert!(super::enabled());
        {
            crate::profile_scope!("work");
            crate::profile_function!();
        }
        super::finish_frame();
        {
            crate::profile_scope!("more work");
        }
        super::finish_frame();
        puffin::GlobalProfiler::lock().remove_sink(sink);
        super::set_enabled(false);
        assert!(
            *frames
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                >= 1
        );
    }
}

//! A thin profiling layer of our own over the profilers, so that choosing one is a build
//! feature, not a code change (rerun's `re_tracing`, wgpu's `profiling` crate).
//!
//! | call | puffin (always built) | Tracy (`tracy` feature) |
//! |---|---|---|
//! | [`profile_function!`](crate::profile_function), [`profile_scope!`](crate::profile_scope) | a scope (one relaxed atomic load while [`set_enabled`] is off) | a zone |
//! | [`finish_frame`] (end of a tick) | a frame | a frame mark |
//! | [`profile_plot!`](crate::profile_plot) | — | a plot (fps, memory, cache hit rate) |
//! | [`set_thread_name`] (workers) | (std thread names) | the thread's name |
//!
//! Without the `tracy` feature the Tracy side expands to nothing: no Tracy code or symbol is
//! in the binary (a test checks the `framelock` binary). With it, the Tracy client runs
//! on demand (`ondemand`: it collects only while a profiler is connected) and the Tracy
//! profiler finds it on the network (default port 8086).

pub use puffin;
#[cfg(feature = "tracy")]
#[doc(hidden)]
pub use tracy_client;

/// Profiles the enclosing function.
#[macro_export]
macro_rules! profile_function {
    () => {
        $crate::profile::puffin::profile_function!();
        $crate::__tracy_function!();
    };
}

/// Profiles the rest of the enclosing block under `name` (a string literal).
#[macro_export]
macro_rules! profile_scope {
    ($name:literal) => {
        $crate::profile::puffin::profile_scope!($name);
        $crate::__tracy_scope!($name);
    };
}

/// Plots `value` under `name` (a string literal) in Tracy; nothing without the feature.
#[macro_export]
macro_rules! profile_plot {
    ($name:literal, $value:expr) => {
        $crate::__tracy_plot!($name, $value);
    };
}

#[cfg(feature = "tracy")]
#[doc(hidden)]
#[macro_export]
macro_rules! __tracy_function {
    () => {
        let _tracy_zone = $crate::profile::tracy_client::span!();
    };
}

#[cfg(not(feature = "tracy"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __tracy_function {
    () => {};
}

#[cfg(feature = "tracy")]
#[doc(hidden)]
#[macro_export]
macro_rules! __tracy_scope {
    ($name:literal) => {
        let _tracy_zone = $crate::profile::tracy_client::span!($name);
    };
}

#[cfg(not(feature = "tracy"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __tracy_scope {
    ($name:literal) => {};
}

#[cfg(feature = "tracy")]
#[doc(hidden)]
#[macro_export]
macro_rules! __tracy_plot {
    ($name:literal, $value:expr) => {
        if let Some(client) = $crate::profile::tracy_client::Client::running() {
            client.plot(
                $crate::profile::tracy_client::plot_name!($name),
                $value as f64,
            );
        }
    };
}

#[cfg(not(feature = "tracy"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __tracy_plot {
    ($name:literal, $value:expr) => {
        let _ = &$value;
    };
}

/// Ends a profiler frame (one playback tick).
pub fn finish_frame() {
    puffin::GlobalProfiler::lock().new_frame();
    #[cfg(feature = "tracy")]
    if let Some(client) = tracy_client::Client::running() {
        client.frame_mark();
    }
}

/// Names the calling thread in Tracy (std's thread name serves puffin).
pub fn set_thread_name(name: &str) {
    #[cfg(feature = "tracy")]
    if let Some(client) = tracy_client::Client::running() {
        client.set_thread_name(name);
    }
    #[cfg(not(feature = "tracy"))]
    let _ = name;
}

/// Whether this build has Tracy.
pub const TRACY: bool = cfg!(feature = "tracy");

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

//! Probe from bytes: boxes, parameter sets and the decoder choice (openh264 only: libav is
//! not in the fuzz build) on any input, without a panic.
#![no_main]

use framelock_engine::media::{DecoderRegistry, probe_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    contain_caught_panics();
    let registry = DecoderRegistry::openh264_only();
    let _ = probe_bytes(data.to_vec(), "fuzz.mp4", &registry);
});

/// The demuxer runs `re_mp4` under `catch_unwind` and reports its panics on malformed tables as
/// errors. libFuzzer's panic hook aborts on every panic, caught or not; the default hook
/// lets the caught ones be, and a panic that escapes still fails the run (the harness
/// aborts on it).
fn contain_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| drop(std::panic::take_hook()));
}

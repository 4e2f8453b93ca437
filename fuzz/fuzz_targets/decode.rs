//! Open and decode from bytes: the first three frames of whatever the demuxer accepts, through
//! the reader (openh264), without a panic.
#![no_main]

use std::sync::Arc;

use framelock_engine::media::{DecoderRegistry, Mp4Demuxer, VideoReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    contain_caught_panics();
    let registry = DecoderRegistry::openh264_only();
    let Ok(demux) = Mp4Demuxer::from_bytes(data.to_vec(), "fuzz.mp4") else {
        return;
    };
    if let Ok(mut reader) = VideoReader::from_demuxer(Arc::new(demux), &registry) {
        for f in 0..reader.frame_count().min(3) {
            let _ = reader.frame(f);
        }
    }
});

/// The demuxer runs `re_mp4` under `catch_unwind` and reports its panics on malformed tables as
/// errors. libFuzzer's panic hook aborts on every panic, caught or not; the default hook
/// lets the caught ones be, and a panic that escapes still fails the run (the harness
/// aborts on it).
fn contain_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| drop(std::panic::take_hook()));
}

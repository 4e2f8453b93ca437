//! The demuxer from bytes: any input is refused with an error or indexed; every sample the
//! index names is then read (at most 256), and none may panic or read past the input.
#![no_main]

use framelock_engine::media::Mp4Demuxer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    contain_caught_panics();
    if let Ok(demux) = Mp4Demuxer::from_bytes(data.to_vec(), "fuzz.mp4") {
        let mut buf = Vec::new();
        for i in 0..demux.video().samples.len().min(256) {
            let _ = demux.read_sample(i, &mut buf);
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

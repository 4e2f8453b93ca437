//! openh264's messages go through the `log` facade (target `openh264`), never straight to
//! stderr: with constant QP its parameter check warns that frame skipping is off.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use std::sync::Mutex;

use framelock_components::Rational;
use framelock_engine::media::{EncodeSettings, EncodeSpeed, H264Encoder, Picture, RateControl};

static RECORDS: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

struct Collect;

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push((r.level(), r.target().to_string(), r.args().to_string()));
    }
    fn flush(&self) {}
}

#[test]
fn openh264_warnings_reach_the_log_facade() {
    log::set_logger(&Collect).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let mut enc = H264Encoder::new(EncodeSettings {
        width: 64,
        height: 64,
        frame_rate: Rational::integer(30),
        rate: RateControl::ConstantQp(26),
        gop: 30,
        speed: EncodeSpeed::Fast,
    })
    .unwrap();
    let picture = enc.encode(&Picture::black(64, 64)).unwrap();
    assert!(!picture.nals.is_empty());
    let records = RECORDS.lock().unwrap();
    assert!(
        records
            .iter()
            .any(|(level, target, text)| *level == log::Level::Warn
                && target == "openh264"
                && text.contains("bEnableFrameSkip")),
        "{records:?}"
    );
}

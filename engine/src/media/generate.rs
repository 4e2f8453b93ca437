//! Generated test media: H.264 MP4s whose pictures carry their own frame index
//! (see [`testcard`](super::testcard)).

use std::path::Path;

use framelock_components::Rational;

use super::encode::{EncodeSettings, EncodeSpeed, Mp4VideoWriter, RateControl, WriteSummary};
use super::{Picture, WriteError, testcard};

/// What clip to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Width (even).
    pub width: u32,
    /// Height (even).
    pub height: u32,
    /// Frame rate.
    pub frame_rate: Rational,
    /// Number of frames.
    pub frames: u64,
    /// Keyframe interval in frames (1 = all-intra).
    pub gop: u32,
    /// Rate control; `None` picks 0.1 bit per pixel per frame (25 Mb/s at 4K30).
    pub rate: Option<RateControl>,
}

impl GenerateOptions {
    /// `width`×`height` at `fps`, `seconds` long, a keyframe every second.
    pub fn new(width: u32, height: u32, frame_rate: Rational, seconds: f64) -> Self {
        let frames = (seconds * frame_rate.as_f64()).round().max(1.0) as u64;
        Self {
            width,
            height,
            frame_rate,
            frames,
            gop: frame_rate.as_f64().round().max(1.0) as u32,
            rate: None,
        }
    }

    /// The encoder settings these options produce.
    pub fn encode_settings(&self) -> EncodeSettings {
        let bits = (f64::from(self.width) * f64::from(self.height) * self.frame_rate.as_f64() * 0.1)
            as u32;
        EncodeSettings {
            width: self.width,
            height: self.height,
            frame_rate: self.frame_rate,
            rate: self.rate.unwrap_or(RateControl::Bitrate(bits.max(200_000))),
            gop: self.gop,
            speed: EncodeSpeed::Balanced,
        }
    }
}

/// Writes a test clip to `path` (atomically), calling `progress(done, total)` after each frame.
pub fn generate_test_clip(
    path: impl AsRef<Path>,
    options: &GenerateOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<WriteSummary, WriteError> {
    if options.frames > testcard::MAX_INDEX + 1 {
        return Err(WriteError::InvalidSettings(format!(
            "{} frames is more than the test pattern can number",
            options.frames
        )));
    }
    let mut writer = Mp4VideoWriter::create(path, options.encode_settings())?;
    let mut frame = Picture::black(options.width, options.height);
    for i in 0..options.frames {
        let [y, u, v] = &mut frame.planes;
        testcard::draw_i420(i, options.width, options.height, y, u, v);
        writer.write_frame(&frame)?;
        progress(i + 1, options.frames);
    }
    writer.finish()
}

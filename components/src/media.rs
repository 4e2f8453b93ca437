//! What a probe learns about a media file, without decoding anything.

use serde::{Deserialize, Serialize};

use crate::Rational;

/// A compressed stream's codec, as named by its sample entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 / AVC (`avc1`, `avc3`).
    H264,
    /// H.265 / HEVC (`hvc1`, `hev1`).
    Hevc,
    /// AV1 (`av01`).
    Av1,
    /// VP8 (`vp08`).
    Vp8,
    /// VP9 (`vp09`).
    Vp9,
    /// AAC audio (`mp4a`).
    Aac,
    /// Apple ProRes (`apco`, `apcs`, `apcn`, `apch`, `ap4h`, `ap4x`; the code names the
    /// profile).
    ProRes,
    /// A sample entry framelock does not know; the four-character code as written.
    Other(String),
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::H264 => f.write_str("h264"),
            Self::Hevc => f.write_str("hevc"),
            Self::Av1 => f.write_str("av1"),
            Self::Vp8 => f.write_str("vp8"),
            Self::Vp9 => f.write_str("vp9"),
            Self::Aac => f.write_str("aac"),
            Self::ProRes => f.write_str("prores"),
            Self::Other(fourcc) => write!(f, "unknown ({fourcc})"),
        }
    }
}

/// Chroma subsampling of a video stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChromaFormat {
    /// Luma only.
    Monochrome,
    /// 4:2:0, the format of nearly all delivery video.
    Yuv420,
    /// 4:2:2, common in camera and intermediate codecs.
    Yuv422,
    /// 4:4:4.
    Yuv444,
}

impl std::fmt::Display for ChromaFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Monochrome => "4:0:0",
            Self::Yuv420 => "4:2:0",
            Self::Yuv422 => "4:2:2",
            Self::Yuv444 => "4:4:4",
        })
    }
}

/// A video stream's facts, read from the container and the codec's parameter sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoStreamInfo {
    /// The container's track id.
    pub track_id: u32,
    /// Codec.
    pub codec: Codec,
    /// RFC 6381 codec string, e.g. `avc1.640028`, when known.
    pub codec_string: Option<String>,
    /// Profile name, e.g. `High`, `Constrained Baseline`, `Main 10`, when known.
    pub profile: Option<String>,
    /// Level, e.g. `4.0`, when known.
    pub level: Option<String>,
    /// Displayed picture width in pixels: the coded width after cropping, or the height
    /// when [`VideoStreamInfo::rotation`] is a quarter turn.
    pub width: u32,
    /// Displayed picture height in pixels (see `width`).
    pub height: u32,
    /// Degrees the decoded pictures are turned clockwise for display (0, 90, 180, 270), from
    /// the track header's matrix; frames come out turned. (Required when read back, so a
    /// probe cached before orientation was read is probed again.)
    pub rotation: u16,
    /// Mirrored left to right before the rotation.
    pub mirrored: bool,
    /// Bytes one decoder of this stream holds while it runs (reference and reordering
    /// pictures, per-macroblock state), as the chosen backend estimates it; 0 when no backend
    /// decodes it. The memory budget counts this per open decoder. Required in a cached
    /// probe, so entries written before it are probed again.
    pub decoder_bytes: u64,
    /// Bits per luma sample, when known.
    pub bit_depth: Option<u8>,
    /// Chroma subsampling, when known.
    pub chroma: Option<ChromaFormat>,
    /// Whether the stream is interlaced (field or MBAFF coded), when known.
    pub interlaced: Option<bool>,
    /// Whether any frame is presented in another order than it is decoded (B-frames).
    pub has_reordering: bool,
    /// Frames per second, exact.
    pub frame_rate: Rational,
    /// Number of frames presented.
    pub frame_count: u64,
    /// Presented duration in seconds.
    pub duration_secs: f64,
    /// Presentation indices of the frames a decoder can start at (sync samples), ascending.
    pub keyframes: Vec<u64>,
    /// The frames' presentation times, when they are not evenly spaced (variable frame rate,
    /// as phones record): then [`VideoStreamInfo::frame_rate`] is the average and the timeline
    /// maps time to frames by these timestamps, not by counting frames. `None` for constant
    /// frame rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_times: Option<FrameTimes>,
    /// Which decoder backend will decode this stream in this build, or `None` if none can
    /// (then [`VideoStreamInfo::unsupported`] says why).
    pub backend: Option<String>,
    /// Why no built backend can decode this stream, when none can.
    pub unsupported: Option<String>,
}

/// Bytes of one decoded `width`×`height` picture: its planes at the chroma sampling (4:2:0
/// when unknown) and bit depth (16 bits a sample above 8).
pub fn picture_bytes(
    width: u32,
    height: u32,
    chroma: Option<ChromaFormat>,
    bit_depth: Option<u8>,
) -> usize {
    let pixels = width as usize * height as usize;
    let halves = match chroma {
        Some(ChromaFormat::Yuv422) => 4,
        Some(ChromaFormat::Yuv444) => 6,
        _ => 3,
    };
    let sample = if bit_depth.unwrap_or(8) > 8 { 2 } else { 1 };
    pixels * halves * sample / 2
}

impl VideoStreamInfo {
    /// Bytes of one decoded picture (see [`picture_bytes`]): what the memory budget counts
    /// a frame at until it is decoded.
    pub fn picture_bytes(&self) -> usize {
        picture_bytes(self.width, self.height, self.chroma, self.bit_depth)
    }

    /// The GOP `frame` is in: the keyframes at or before it (0 before the first keyframe).
    pub fn gop_of(&self, frame: u64) -> u64 {
        self.keyframes.partition_point(|&k| k <= frame) as u64
    }

    /// The keyframe a decode of `frame` starts at: the last one at or before it.
    pub fn keyframe_at_or_before(&self, frame: u64) -> Option<u64> {
        let i = usize::try_from(self.gop_of(frame)).ok()?.checked_sub(1)?;
        self.keyframes.get(i).copied()
    }
}

/// A variable-frame-rate stream's presentation times: frame `n` is shown from `pts[n]` until
/// `pts[n + 1]` (the last one until `end`), in units of `1 / timescale` seconds, frame 0 at
/// zero or later (an edit list's delay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameTimes {
    /// Units per second.
    pub timescale: u64,
    /// Presentation time of each frame, ascending.
    pub pts: std::sync::Arc<[i64]>,
    /// When the last frame stops being shown (its time plus its duration).
    pub end: i64,
}

impl FrameTimes {
    /// The times of `pts` (ascending), the last frame lasting until `end`. `None` when there
    /// are no frames, the timescale is zero or the times are not ascending.
    pub fn new(timescale: u64, pts: Vec<i64>, end: i64) -> Option<Self> {
        let ascending = pts.windows(2).all(|w| w[0] < w[1]);
        let last = *pts.last()?;
        (timescale > 0 && ascending && end > last).then(|| Self {
            timescale,
            pts: pts.into(),
            end,
        })
    }

    /// Frames.
    pub fn len(&self) -> u64 {
        self.pts.len() as u64
    }

    /// Whether there are no frames (never, for times made by [`FrameTimes::new`]).
    pub fn is_empty(&self) -> bool {
        self.pts.is_empty()
    }

    /// Seconds from frame 0's time to the end of the last frame.
    pub fn duration_secs(&self) -> f64 {
        let first = self.pts.first().copied().unwrap_or(0);
        (self.end - first) as f64 / self.timescale as f64
    }

    /// The average frame rate (frames over the span they are shown), as ffprobe's
    /// `avg_frame_rate`.
    pub fn average_rate(&self) -> Option<Rational> {
        let first = self.pts.first().copied()?;
        let span = u64::try_from(self.end - first).ok()?;
        Rational::new(self.len() * self.timescale, span)
    }

    /// Frame `n`'s time in seconds as an exact fraction of `timescale` (clamped to the last
    /// frame).
    pub fn time_of(&self, n: u64) -> i64 {
        let i = (n as usize).min(self.pts.len().saturating_sub(1));
        self.pts.get(i).copied().unwrap_or(0)
    }

    /// The frame shown `offset` timeline frames (of a timeline at `rate`) after frame `from`
    /// is shown: the last frame whose time is at or before `time_of(from) + offset / rate`.
    /// [`FrameTimes::len`] when that time is at or past [`FrameTimes::end`] (past the media).
    pub fn frame_after(&self, from: u64, offset: u64, rate: Rational) -> u64 {
        let num = u128::from(offset) * u128::from(self.timescale) * u128::from(rate.den);
        let ticks = num / u128::from(rate.num.max(1));
        let at = i128::from(self.time_of(from)) + ticks as i128;
        if at >= i128::from(self.end) {
            return self.len();
        }
        let found = self.pts.partition_point(|&p| i128::from(p) <= at);
        found.saturating_sub(1) as u64
    }
}

/// An audio stream's facts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioStreamInfo {
    /// The container's track id.
    pub track_id: u32,
    /// Codec.
    pub codec: Codec,
    /// RFC 6381 codec string, e.g. `mp4a.40.2`, when known.
    pub codec_string: Option<String>,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Duration in seconds.
    pub duration_secs: f64,
}

/// Everything a probe learns about one media file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The file probed.
    pub path: std::path::PathBuf,
    /// File size in bytes.
    pub file_size: u64,
    /// Container brand, e.g. `isom`, `qt  `.
    pub container: String,
    /// The video stream framelock plays (the first video track).
    pub video: VideoStreamInfo,
    /// The first audio track, if any.
    pub audio: Option<AudioStreamInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_times_pick_the_frame_that_covers_a_time() {
        // 1/30 s, then 1/10 s, then 1/60 s apart, at timescale 60.
        let t = FrameTimes::new(60, vec![0, 2, 4, 10, 16, 17, 18], 19).unwrap();
        let r30 = Rational::integer(30);
        let picks: Vec<u64> = (0..11).map(|o| t.frame_after(0, o, r30)).collect();
        // timeline times (1/60 s): 0 2 4 6 8 10 12 14 16 18 20
        assert_eq!(picks, [0, 1, 2, 2, 2, 3, 3, 3, 4, 6, 7]);
        // From a later source frame: its own time is the base.
        assert_eq!(t.frame_after(3, 3, r30), 4);
        assert_eq!(t.len(), 7);
        assert!((t.duration_secs() - 19.0 / 60.0).abs() < 1e-12);
        assert_eq!(t.average_rate(), Rational::new(7 * 60, 19));
        assert!(
            FrameTimes::new(60, vec![0, 2, 2], 3).is_none(),
            "not ascending"
        );
        assert!(
            FrameTimes::new(60, vec![0, 2], 2).is_none(),
            "the last frame lasts"
        );
        assert!(FrameTimes::new(0, vec![0], 1).is_none());
    }
}

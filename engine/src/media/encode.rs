//! H.264 encoding (openh264) and H.264 MP4 writing, for test-media generation, proxies and
//! export.
//!
//! openh264's defaults are wrong for media files and are always overridden here: its target
//! bitrate is 120 kb/s and frame skipping is on (it silently drops frames to meet the rate).
//! Constant QP is quality-mode rate control clamped to a one-value QP range (openh264 ignores
//! the range with rate control off).
//!
//! Muxing is [`Mp4Muxer`]'s (samples spooled to disk, only the sample tables in memory, the
//! index first); the file is written atomically: a failed encode never leaves a partial file.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::{Path, PathBuf};

use framelock_components::Rational;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;

use super::mux::{Container, Mp4Muxer, TrackCodec, TrackId};
use super::{Picture, PixelFormat, WriteError, h264};

/// How the encoder spends bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateControl {
    /// Target bits per second.
    Bitrate(u32),
    /// A fixed quantiser (0..=51; lower is better), rate control off.
    ConstantQp(u8),
}

/// What to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeSettings {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub frame_rate: Rational,
    /// Rate control.
    pub rate: RateControl,
    /// Frames from one keyframe to the next: 1 is all-intra, 0 only the first frame.
    pub gop: u32,
    /// Speed against compression.
    pub speed: EncodeSpeed,
}

/// How hard the encoder works per frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EncodeSpeed {
    /// openh264's defaults (medium complexity, adaptive quantisation, background detection).
    #[default]
    Balanced,
    /// Low complexity, no adaptive quantisation or background detection: for proxies, where
    /// encode time matters more than a few percent of size at the same QP.
    Fast,
    /// High complexity: the smallest file at the same QP, for the slowest encode.
    Best,
}

impl EncodeSettings {
    fn validate(&self) -> Result<(), WriteError> {
        if self.width == 0 || self.height == 0 || self.width % 2 == 1 || self.height % 2 == 1 {
            return Err(WriteError::InvalidSettings(format!(
                "size {}x{} must be non-zero and even",
                self.width, self.height
            )));
        }
        if self.width > 8192 || self.height > 8192 {
            return Err(WriteError::InvalidSettings(format!(
                "size {}x{} is over 8192",
                self.width, self.height
            )));
        }
        if self.frame_rate.num == 0 {
            return Err(WriteError::InvalidSettings("frame rate is zero".into()));
        }
        if let RateControl::ConstantQp(q) = self.rate
            && q > 51
        {
            return Err(WriteError::InvalidSettings(format!("QP {q} is over 51")));
        }
        Ok(())
    }
}

/// One encoded picture.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EncodedPicture {
    /// NAL units (no start codes).
    pub nals: Vec<Vec<u8>>,
    /// An IDR picture: decoding can start here.
    pub is_sync: bool,
}

/// An openh264 encoder set up from [`EncodeSettings`].
pub struct H264Encoder {
    inner: Encoder,
    settings: EncodeSettings,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// openh264's messages, through the `log` facade (target `openh264`) instead of straight to
/// stderr, where they broke progress bars: warnings as warnings, errors as errors. Set
/// before the encoder initialises, as its parameter check already writes (a warning that
/// constant-QP quality mode has frame skipping off, which is what framelock wants).
fn route_log(encoder: &mut Encoder) {
    unsafe extern "C" fn to_log(_: *mut c_void, level: c_int, text: *const c_char) {
        if text.is_null() {
            return;
        }
        // SAFETY: openh264 passes a NUL-terminated string that lives for the call.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let text = text.trim_end();
        let level = match level {
            openh264_sys2::WELS_LOG_ERROR => log::Level::Error,
            openh264_sys2::WELS_LOG_WARNING => log::Level::Warn,
            openh264_sys2::WELS_LOG_INFO => log::Level::Info,
            _ => log::Level::Debug,
        };
        log::log!(target: "openh264", level, "{text}");
    }
    let mut callback: openh264_sys2::WelsTraceCallback = Some(to_log);
    // SAFETY: the encoder was just created and is valid; TRACE_CALLBACK is one of the options
    // openh264 accepts before initialisation, and it copies the function pointer out of the
    // pointed-to value during the call.
    unsafe {
        encoder.raw_api().set_option(
            openh264_sys2::ENCODER_OPTION_TRACE_CALLBACK,
            (&raw mut callback).cast(),
        );
    }
}

impl H264Encoder {
    /// Creates an encoder.
    pub fn new(settings: EncodeSettings) -> Result<Self, WriteError> {
        settings.validate()?;
        let mut config = EncoderConfig::new()
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .max_frame_rate(FrameRate::from_hz(settings.frame_rate.as_f64() as f32))
            .intra_frame_period(IntraFramePeriod::from_num_frames(settings.gop))
            .scene_change_detect(false)
            .num_threads(1);
        match settings.speed {
            EncodeSpeed::Fast => {
                config = config
                    .complexity(Complexity::Low)
                    .adaptive_quantization(false)
                    .background_detection(false);
            }
            EncodeSpeed::Best => config = config.complexity(Complexity::High),
            EncodeSpeed::Balanced => {}
        }
        config = match settings.rate {
            RateControl::Bitrate(bps) => config
                .rate_control_mode(RateControlMode::Bitrate)
                .bitrate(BitRate::from_bps(bps)),
            // openh264 ignores the QP range with rate control off (it encodes at its fixed
            // default); quality mode clamped to [q, q] is constant QP.
            RateControl::ConstantQp(q) => config
                .rate_control_mode(RateControlMode::Quality)
                .qp(QpRange::new(q, q)),
        };
        let mut inner = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| WriteError::Encode(e.to_string()))?;
        route_log(&mut inner);
        Ok(Self { inner, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &EncodeSettings {
        &self.settings
    }

    /// Makes the next picture an IDR (a new segment starts there).
    pub fn force_keyframe(&mut self) {
        self.inner.force_intra_frame();
    }

    /// Encodes one 8-bit 4:2:0 frame of the configured size.
    pub fn encode(&mut self, frame: &Picture) -> Result<EncodedPicture, WriteError> {
        let s = self.settings;
        check_frame(frame, s.width, s.height)?;
        let (w, h) = (s.width as usize, s.height as usize);
        let yuv = YUVSlices::new(
            (&frame.planes[0], &frame.planes[1], &frame.planes[2]),
            (w, h),
            (w, w / 2, w / 2),
        );
        let bitstream = self
            .inner
            .encode(&yuv)
            .map_err(|e| WriteError::Encode(e.to_string()))?;
        let annexb = bitstream.to_vec();
        let nals: Vec<Vec<u8>> = h264::annexb_nal_units(&annexb)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let is_sync = nals.iter().any(|n| h264::nal_type(n) == 5);
        Ok(EncodedPicture { nals, is_sync })
    }
}

/// What a finished write produced.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteSummary {
    /// The file written.
    pub path: PathBuf,
    /// Frames written.
    pub frames: u64,
    /// Keyframes written.
    pub keyframes: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// Refuses a frame an encoder of `width`x`height` 8-bit 4:2:0 cannot take.
pub(super) fn check_frame(frame: &Picture, width: u32, height: u32) -> Result<(), WriteError> {
    if frame.width != width || frame.height != height {
        return Err(WriteError::FrameSize {
            width,
            height,
            got_width: frame.width,
            got_height: frame.height,
        });
    }
    if frame.format != PixelFormat::Yuv420p {
        return Err(WriteError::InvalidSettings(format!(
            "encoder takes 8-bit 4:2:0 frames, got {:?}",
            frame.format
        )));
    }
    Ok(())
}

/// A video timescale in which a frame at `rate` lasts a whole number of ticks, and that
/// number: 90 kHz for integer rates that divide it, the rate's own numerator (30000 for
/// 29.97) otherwise.
pub fn frame_timescale(rate: Rational) -> Result<(u32, u32), WriteError> {
    let (timescale, delta) = if rate.den == 1 && rate.num > 0 && 90_000 % rate.num == 0 {
        (90_000, 90_000 / rate.num)
    } else {
        (rate.num, rate.den)
    };
    let timescale = u32::try_from(timescale)
        .map_err(|_| WriteError::InvalidSettings(format!("frame rate {rate} too fine")))?;
    let delta = u32::try_from(delta)
        .map_err(|_| WriteError::InvalidSettings(format!("frame rate {rate} too coarse")))?;
    Ok((timescale, delta))
}

/// Writes already-encoded H.264 pictures into an MP4, atomically: the muxing half of
/// [`Mp4VideoWriter`], for pipelines that encode on several threads (proxies, export) and
/// mux in order on one. A video-only [`Mp4Muxer`] (index first); export adds audio through
/// [`H264Mp4Muxer::muxer_mut`].
///
/// The first picture must carry SPS and PPS; they go into `avcC`. Later pictures' parameter
/// sets are dropped from the samples, so every encoder feeding one muxer must use the same
/// settings (same SPS/PPS); a picture whose parameter sets differ is refused.
pub struct H264Mp4Muxer {
    muxer: Mp4Muxer,
    track: TrackId,
    delta: u32,
    parameter_sets: Option<(Vec<u8>, Vec<u8>)>,
    frames: u64,
    keyframes: u64,
}

impl std::fmt::Debug for H264Mp4Muxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Mp4Muxer")
            .field("muxer", &self.muxer)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl H264Mp4Muxer {
    /// Starts writing `path` (nothing appears there until [`H264Mp4Muxer::finish`]).
    pub fn create(path: impl AsRef<Path>, settings: EncodeSettings) -> Result<Self, WriteError> {
        Self::create_in(path, settings, Container::Mp4)
    }

    /// Like [`H264Mp4Muxer::create`], in the given container.
    pub fn create_in(
        path: impl AsRef<Path>,
        settings: EncodeSettings,
        container: Container,
    ) -> Result<Self, WriteError> {
        settings.validate()?;
        let (timescale, delta) = frame_timescale(settings.frame_rate)?;
        let mut muxer = Mp4Muxer::create(path, container)?;
        let track = muxer.add_video(settings.width, settings.height, timescale)?;
        Ok(Self {
            muxer,
            track,
            delta,
            parameter_sets: None,
            frames: 0,
            keyframes: 0,
        })
    }

    /// The muxer underneath, to add and write other tracks (audio).
    pub fn muxer_mut(&mut self) -> &mut Mp4Muxer {
        &mut self.muxer
    }

    /// Appends one picture as the next frame (presentation order = decode order: no
    /// B-frames).
    pub fn write_picture(&mut self, picture: &EncodedPicture) -> Result<(), WriteError> {
        if picture.nals.is_empty() {
            return Err(WriteError::Encode("encoder produced no picture".into()));
        }
        let find = |t| {
            picture
                .nals
                .iter()
                .find(|n| h264::nal_type(n) == t)
                .map(Vec::as_slice)
        };
        let (sps, pps) = (find(h264::NAL_SPS), find(h264::NAL_PPS));
        match (&self.parameter_sets, sps, pps) {
            (None, Some(sps), Some(pps)) => {
                self.muxer.set_codec(
                    self.track,
                    TrackCodec::Avc {
                        sps: sps.to_vec(),
                        pps: pps.to_vec(),
                    },
                )?;
                self.parameter_sets = Some((sps.to_vec(), pps.to_vec()));
            }
            (None, _, _) => {
                return Err(WriteError::Encode(
                    "first picture carries no SPS/PPS".into(),
                ));
            }
            (Some((a, b)), Some(sps), Some(pps)) if (a.as_slice(), b.as_slice()) != (sps, pps) => {
                return Err(WriteError::Encode(
                    "a picture's SPS/PPS differ from the stream's".into(),
                ));
            }
            _ => {}
        }
        // Parameter sets live in avcC; samples carry only the picture's own NAL units.
        let data = h264::nal_units_to_avcc(
            picture
                .nals
                .iter()
                .filter(|n| !matches!(h264::nal_type(n), h264::NAL_SPS | h264::NAL_PPS))
                .map(Vec::as_slice),
        );
        self.muxer
            .write_sample(self.track, &data, self.delta, picture.is_sync)?;
        self.frames += 1;
        self.keyframes += u64::from(picture.is_sync);
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Writes the index, flushes, and renames the file into place.
    pub fn finish(self) -> Result<WriteSummary, WriteError> {
        self.finish_verified(|_| Ok(()))
    }

    /// Like [`H264Mp4Muxer::finish`], but first calls `verify` on the complete temporary
    /// file; if it fails the file is deleted and the destination is left as it was.
    pub fn finish_verified(
        self,
        verify: impl FnOnce(&Path) -> Result<(), WriteError>,
    ) -> Result<WriteSummary, WriteError> {
        if self.frames == 0 {
            return Err(WriteError::InvalidSettings("no frame was written".into()));
        }
        let summary = self.muxer.finish_verified(verify)?;
        Ok(WriteSummary {
            path: summary.path,
            frames: self.frames,
            keyframes: self.keyframes,
            bytes: summary.bytes,
        })
    }
}

/// Encodes frames to an H.264 MP4, atomically.
pub struct Mp4VideoWriter {
    encoder: H264Encoder,
    muxer: H264Mp4Muxer,
}

impl std::fmt::Debug for Mp4VideoWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp4VideoWriter")
            .field("muxer", &self.muxer)
            .finish_non_exhaustive()
    }
}

impl Mp4VideoWriter {
    /// Starts writing `path` (nothing appears there until [`Mp4VideoWriter::finish`]).
    pub fn create(path: impl AsRef<Path>, settings: EncodeSettings) -> Result<Self, WriteError> {
        let encoder = H264Encoder::new(settings)?;
        let muxer = H264Mp4Muxer::create(path, settings)?;
        Ok(Self { encoder, muxer })
    }

    /// Encodes and appends one frame.
    pub fn write_frame(&mut self, frame: &Picture) -> Result<(), WriteError> {
        let picture = self.encoder.encode(frame)?;
        self.muxer.write_picture(&picture)
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.muxer.frames()
    }

    /// Writes the index, flushes, and renames the file into place.
    pub fn finish(self) -> Result<WriteSummary, WriteError> {
        self.muxer.finish()
    }
}

/// Checks a finished MP4 before it is renamed into place (proxies, export): it holds
/// `frames` video frames and its first sample is a keyframe.
pub fn verify_video(path: &Path, frames: u64) -> Result<(), WriteError> {
    let demux = super::Mp4Demuxer::open(path)?;
    let track = demux.video();
    if track.frame_count() != frames {
        return Err(WriteError::Verify(format!(
            "{} frames written, {frames} expected",
            track.frame_count()
        )));
    }
    if !track.samples.first().is_some_and(|s| s.is_sync) {
        return Err(WriteError::Verify("first frame is not a keyframe".into()));
    }
    Ok(())
}

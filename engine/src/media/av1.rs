//! AV1 encoding with rav1e (8-bit 4:2:0, one thread per encoder: export runs one encoder per
//! segment on each core), and what an MP4 `av01` track needs from the stream.
//!
//! rav1e runs in low-latency mode (no frame reordering), so every input frame comes out as
//! one temporal unit, in order: a sample of its own, presentation order = decode order, as
//! with openh264. Temporal delimiter OBUs are dropped from the samples (the AV1-in-ISOBMFF
//! rules); the sequence header OBU stays in each keyframe's sample and is also the `av1C`
//! configOBUs. Encoders with the same settings write the same sequence header, so segments
//! encoded apart join into one track.

use framelock_components::Rational;
use rav1e::prelude::{
    ChromaSampling, Config, Context, EncoderConfig, EncoderStatus, FrameType, SpeedSettings,
};

use super::{Av1Config, Picture, WriteError};

/// What to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Av1Settings {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub frame_rate: Rational,
    /// rav1e's quantizer, 0 (best) ..= 255.
    pub quantizer: u8,
    /// rav1e's speed preset, 0 (slowest, smallest) ..= 10 (fastest).
    pub speed: u8,
    /// At most this many frames from one keyframe to the next (the first frame is one).
    pub keyframe_interval: u64,
}

/// One encoded frame: a temporal unit without its temporal delimiter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Av1Frame {
    /// The OBUs.
    pub data: Vec<u8>,
    /// A keyframe: decoding can start here.
    pub is_sync: bool,
}

/// A rav1e encoder set up from [`Av1Settings`].
pub struct Av1Encoder {
    ctx: Context<u8>,
    settings: Av1Settings,
}

impl std::fmt::Debug for Av1Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Av1Encoder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;

fn encode_error(what: impl std::fmt::Display) -> WriteError {
    WriteError::Encode(format!("rav1e: {what}"))
}

impl Av1Encoder {
    /// Creates an encoder.
    pub fn new(settings: Av1Settings) -> Result<Self, WriteError> {
        let s = settings;
        if s.width == 0 || s.height == 0 || s.width % 2 == 1 || s.height % 2 == 1 {
            return Err(WriteError::InvalidSettings(format!(
                "size {}x{} must be non-zero and even",
                s.width, s.height
            )));
        }
        if s.frame_rate.num == 0 || s.speed > 10 {
            return Err(WriteError::InvalidSettings(format!(
                "frame rate {} / speed {}",
                s.frame_rate, s.speed
            )));
        }
        let mut enc = EncoderConfig::with_speed_preset(s.speed);
        enc.width = s.width as usize;
        enc.height = s.height as usize;
        enc.bit_depth = 8;
        enc.chroma_sampling = ChromaSampling::Cs420;
        // A frame lasts time_base: den/num of the rate.
        enc.time_base = rav1e::data::Rational::new(s.frame_rate.den, s.frame_rate.num);
        enc.quantizer = usize::from(s.quantizer);
        enc.min_quantizer = 0;
        enc.bitrate = 0;
        enc.low_latency = true;
        let interval = s.keyframe_interval.max(1);
        enc.max_key_frame_interval = interval;
        enc.min_key_frame_interval = interval.min(12);
        enc.speed_settings = SpeedSettings::from_preset(s.speed);
        let config = Config::new().with_encoder_config(enc).with_threads(1);
        let ctx = config
            .new_context::<u8>()
            .map_err(|e| WriteError::InvalidSettings(format!("rav1e: {e}")))?;
        Ok(Self { ctx, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &Av1Settings {
        &self.settings
    }

    /// Sends one frame and appends the frames the encoder has finished to `out`.
    pub fn encode(&mut self, frame: &Picture, out: &mut Vec<Av1Frame>) -> Result<(), WriteError> {
        let s = self.settings;
        super::encode::check_frame(frame, s.width, s.height)?;
        let mut f = self.ctx.new_frame();
        let w = s.width as usize;
        for (i, plane) in f.planes.iter_mut().enumerate() {
            let stride = if i == 0 { w } else { w / 2 };
            plane.copy_from_raw_u8(&frame.planes[i], stride, 1);
        }
        self.ctx.send_frame(f).map_err(encode_error)?;
        self.drain(out)
    }

    /// Flushes the encoder, appending every frame still inside it to `out`.
    pub fn finish(&mut self, out: &mut Vec<Av1Frame>) -> Result<(), WriteError> {
        self.ctx.flush();
        self.drain(out)
    }

    fn drain(&mut self, out: &mut Vec<Av1Frame>) -> Result<(), WriteError> {
        loop {
            match self.ctx.receive_packet() {
                Ok(p) => out.push(Av1Frame {
                    data: strip_temporal_delimiters(&p.data)?,
                    is_sync: p.frame_type == FrameType::KEY,
                }),
                Err(EncoderStatus::Encoded) => {}
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => return Ok(()),
                Err(e) => return Err(encode_error(e)),
            }
        }
    }

    /// The `av1C` fields for this encoder's stream, with `keyframe`'s sequence header OBU as
    /// configOBUs.
    pub fn config(&self, keyframe: &Av1Frame) -> Result<Av1Config, WriteError> {
        let head = self.ctx.container_sequence_header();
        let (Some(&b1), Some(&b2)) = (head.get(1), head.get(2)) else {
            return Err(encode_error("no sequence header"));
        };
        let config_obus = obus(&keyframe.data)?
            .into_iter()
            .find(|o| o.kind == OBU_SEQUENCE_HEADER)
            .map(|o| keyframe.data[o.range].to_vec())
            .ok_or_else(|| encode_error("the keyframe carries no sequence header"))?;
        Ok(Av1Config {
            profile: b1 >> 5,
            level: b1 & 0x1f,
            tier: b2 & 0x80 != 0,
            high_bitdepth: b2 & 0x40 != 0,
            subsampling: (b2 & 0x08 != 0, b2 & 0x04 != 0),
            config_obus,
        })
    }
}

struct Obu {
    kind: u8,
    range: std::ops::Range<usize>,
}

/// The OBUs of a temporal unit (each with its size field, as rav1e writes them).
fn obus(data: &[u8]) -> Result<Vec<Obu>, WriteError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let header = data[at];
        let kind = (header >> 3) & 0x0f;
        let extension = header & 0x04 != 0;
        if header & 0x02 == 0 {
            return Err(encode_error("an OBU without a size field"));
        }
        let mut p = at + 1 + usize::from(extension);
        let mut size = 0usize;
        for i in 0..8 {
            let b = *data
                .get(p)
                .ok_or_else(|| encode_error("a truncated OBU size"))?;
            size |= usize::from(b & 0x7f) << (7 * i);
            p += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = p + size;
        if end > data.len() {
            return Err(encode_error("an OBU past the end of its packet"));
        }
        out.push(Obu {
            kind,
            range: at..end,
        });
        at = end;
    }
    Ok(out)
}

fn strip_temporal_delimiters(data: &[u8]) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::with_capacity(data.len());
    for o in obus(data)? {
        if o.kind != OBU_TEMPORAL_DELIMITER {
            out.extend_from_slice(&data[o.range]);
        }
    }
    Ok(out)
}

//! ProRes 422 encoding through libav's `prores_ks` (cargo feature `ffmpeg`): proxies in the
//! codec editors exchange.
//!
//! Every ProRes frame is a keyframe and the encoder holds none back, so one picture in gives
//! one packet out, and each worker of a parallel pipeline can own an encoder over any frames.
//! The encoder runs on one thread (the pipeline's workers are the parallelism).

use ffmpeg_next as av;
use framelock_components::{ProResProfile, Rational};

use super::{Picture, PixelFormat, WriteError};

/// A ProRes 422 encoder for pictures of one size.
pub struct ProResEncoder {
    inner: av::encoder::video::Encoder,
    frame: av::frame::Video,
    packet: av::Packet,
    width: u32,
    height: u32,
    pts: i64,
}

impl std::fmt::Debug for ProResEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProResEncoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

fn encode_error(what: &str, e: &av::Error) -> WriteError {
    WriteError::Encode(format!("ProRes (libav prores_ks): {what}: {e}"))
}

impl ProResEncoder {
    /// An encoder of `profile` for `width`×`height` (even) 10-bit 4:2:2 pictures at
    /// `frame_rate`, BT.709 limited range.
    pub fn new(
        width: u32,
        height: u32,
        frame_rate: Rational,
        profile: ProResProfile,
    ) -> Result<Self, WriteError> {
        super::decode::ffmpeg::init();
        if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
            return Err(WriteError::InvalidSettings(format!(
                "size {width}x{height} must be non-zero and even"
            )));
        }
        let codec = av::encoder::find_by_name("prores_ks").ok_or_else(|| {
            WriteError::Encode("this libav has no ProRes encoder (prores_ks)".into())
        })?;
        let mut ctx = av::codec::Context::new_with_codec(codec);
        ctx.set_threading(av::threading::Config::count(1));
        let mut video = ctx
            .encoder()
            .video()
            .map_err(|e| encode_error("no video encoder", &e))?;
        video.set_width(width);
        video.set_height(height);
        video.set_format(av::format::Pixel::YUV422P10LE);
        let den = i32::try_from(frame_rate.den.max(1)).unwrap_or(1);
        let num = i32::try_from(frame_rate.num.max(1)).unwrap_or(1);
        video.set_time_base(av::Rational::new(den, num));
        video.set_frame_rate(Some(av::Rational::new(num, den)));
        video.set_colorspace(av::color::Space::BT709);
        video.set_color_range(av::color::Range::MPEG);
        let mut options = av::Dictionary::new();
        options.set("profile", profile.libav_name());
        // Apple's vendor code, as Apple's and ffmpeg's own ProRes files carry.
        options.set("vendor", "apl0");
        let inner = video
            .open_with(options)
            .map_err(|e| encode_error("cannot open", &e))?;
        Ok(Self {
            inner,
            frame: av::frame::Video::new(av::format::Pixel::YUV422P10LE, width, height),
            packet: av::Packet::empty(),
            width,
            height,
            pts: 0,
        })
    }

    /// Encodes one picture (10-bit 4:2:2 at the encoder's size, see
    /// [`Picture::scaled_yuv422p10`]) into one ProRes frame.
    pub fn encode(&mut self, picture: &Picture) -> Result<Vec<u8>, WriteError> {
        if picture.format != PixelFormat::Yuv422p10
            || (picture.width, picture.height) != (self.width, self.height)
        {
            return Err(WriteError::InvalidSettings(format!(
                "ProRes takes {}x{} yuv422p10le, not {}x{} {}",
                self.width,
                self.height,
                picture.width,
                picture.height,
                picture.format.ffmpeg_name()
            )));
        }
        let (cw, _) = picture.chroma_size();
        let rows = [
            (self.width as usize * 2, self.height as usize),
            (cw as usize * 2, self.height as usize),
            (cw as usize * 2, self.height as usize),
        ];
        for (p, &(row, count)) in rows.iter().enumerate() {
            let stride = self.frame.stride(p);
            let src = &picture.planes[p];
            let dst = self.frame.data_mut(p);
            for y in 0..count {
                dst[y * stride..y * stride + row].copy_from_slice(&src[y * row..(y + 1) * row]);
            }
        }
        self.frame.set_pts(Some(self.pts));
        self.pts += 1;
        self.inner
            .send_frame(&self.frame)
            .map_err(|e| encode_error("encode", &e))?;
        match self.inner.receive_packet(&mut self.packet) {
            Ok(()) => Ok(self.packet.data().map(<[u8]>::to_vec).unwrap_or_default()),
            Err(e) => Err(encode_error("no frame came out", &e)),
        }
    }
}

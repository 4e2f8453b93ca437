//! The libav backend (cargo feature `ffmpeg`): Debian's libavcodec through `ffmpeg-next`.
//!
//! Packets go in as the MP4 stores them, with the sample entry's configuration record
//! (`avcC`, `hvcC`) as extradata, so no Annex-B conversion is needed. libav carries the packet
//! pts through to the picture. Frame threads: two (the machines this targets have two cores).

use std::sync::Once;

use ffmpeg_next as av;
use framelock_components::{ChromaFormat, Codec};

use super::{
    DecodeOptions, DecodedPicture, Decoder, DecoderBackend, Packet, StreamDescription, Support,
};
use crate::media::demux::CodecConfig;
use crate::media::pixel::{ColorSpace, MatrixCoefficients, YuvRange};
use crate::media::{MediaError, Picture, PixelFormat};

const NAME: &str = "ffmpeg";

/// The libav backend.
#[derive(Debug)]
pub struct FfmpegBackend {
    threads: usize,
}

impl FfmpegBackend {
    /// A backend whose decoders use two frame threads.
    pub fn new() -> Self {
        Self { threads: 2 }
    }

    /// A backend whose decoders use `threads` frame threads (1 = single-threaded).
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
        }
    }
}

impl Default for FfmpegBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// Initialises libav once (and quiets its log).
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Registration is a no-op on libav >= 4; init also quiets the log.
        let _ = av::init();
        av::util::log::set_level(av::util::log::Level::Error);
    });
}

fn codec_id(s: &StreamDescription) -> Option<av::codec::Id> {
    Some(match &s.codec {
        Codec::H264 => av::codec::Id::H264,
        Codec::Hevc => av::codec::Id::HEVC,
        Codec::Av1 => av::codec::Id::AV1,
        Codec::Vp8 => av::codec::Id::VP8,
        Codec::Vp9 => av::codec::Id::VP9,
        Codec::ProRes => av::codec::Id::PRORES,
        Codec::Other(fourcc) => match fourcc.as_str() {
            "mp4v" => av::codec::Id::MPEG4,
            "jpeg" | "mjpa" | "mjpb" => av::codec::Id::MJPEG,
            "dvh1" | "dvhe" => av::codec::Id::HEVC,
            "avc3" => av::codec::Id::H264,
            // Streams libavformat demuxed are named by libav's own codec names
            // (`mpeg2video`, `dnxhd` …).
            name => return av::decoder::find_by_name(name).map(|c| c.id()),
        },
        _ => return None,
    })
}

impl DecoderBackend for FfmpegBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn codecs(&self) -> Option<&'static [Codec]> {
        None
    }

    fn support(&self, s: &StreamDescription) -> Support {
        init();
        let Some(id) = codec_id(s) else {
            return Support::No(format!("no libav mapping for {}", s.codec));
        };
        if av::decoder::find(id).is_none() {
            return Support::No(format!("this libav has no {id:?} decoder"));
        }
        if let Some(b) = s.bit_depth.filter(|&b| b != 8 && b != 10) {
            return Support::No(format!("{b}-bit output is not supported"));
        }
        if s.chroma == Some(ChromaFormat::Monochrome) {
            return Support::No("monochrome output is not supported".into());
        }
        Support::Exact
    }

    /// Measured (`tests/decoder_memory.rs` in the workspace root): libav holds the stream's references and
    /// reordering delay, the picture being decoded and the one handed out, and each frame
    /// thread beyond the first two more pictures in flight.
    fn state_bytes(&self, s: &StreamDescription) -> usize {
        let pictures = s.held_pictures() + 2 + 2 * (self.threads - 1);
        pictures * s.picture_bytes() + s.width as usize * s.height as usize / 4
    }

    fn create(&self, s: &StreamDescription) -> Result<Box<dyn Decoder>, MediaError> {
        self.create_with(s, DecodeOptions::default())
    }

    fn create_with(
        &self,
        s: &StreamDescription,
        options: DecodeOptions,
    ) -> Result<Box<dyn Decoder>, MediaError> {
        init();
        let unsupported = |reason: String| MediaError::Unsupported {
            codec: s.describe(),
            reason,
        };
        let id = codec_id(s).ok_or_else(|| unsupported("no libav mapping".into()))?;
        let codec = av::decoder::find(id).ok_or_else(|| unsupported("no libav decoder".into()))?;
        let extradata = match &s.config {
            CodecConfig::Avc { avcc, .. } => Some(avcc.clone()),
            CodecConfig::Hevc { hvcc, .. } => Some(hvcc.clone()),
            CodecConfig::Other { raw } => raw.clone(),
        };
        let open = || -> Result<av::decoder::Video, av::Error> {
            let mut ctx = av::codec::Context::new_with_codec(codec);
            if let Some(extra) = &extradata {
                set_extradata(&mut ctx, extra)?;
            }
            let mut threading = av::threading::Config::kind(av::threading::Type::Frame);
            threading.count = self.threads;
            ctx.set_threading(threading);
            if options.skip_loop_filter {
                // SAFETY: the context is allocated and not yet opened; `skip_loop_filter` is
                // a plain field libav reads when decoding starts.
                unsafe {
                    (*ctx.as_mut_ptr()).skip_loop_filter = av::ffi::AVDiscard::AVDISCARD_ALL;
                }
            }
            ctx.decoder().video()
        };
        let inner = open().map_err(|e| decode_error(&e))?;
        Ok(Box::new(FfmpegDecoder {
            inner,
            frame: av::frame::Video::empty(),
            pool: None,
        }))
    }
}

fn set_extradata(ctx: &mut av::codec::Context, extra: &[u8]) -> Result<(), av::Error> {
    let padding = av::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: the context is freshly allocated and not yet opened; libav owns `extradata`
    // (allocated here with av_mallocz, zero-padded as libav requires) and frees it with the
    // context.
    unsafe {
        let buf = av::ffi::av_mallocz(extra.len() + padding).cast::<u8>();
        if buf.is_null() {
            return Err(av::Error::Other {
                errno: av::error::ENOMEM,
            });
        }
        std::ptr::copy_nonoverlapping(extra.as_ptr(), buf, extra.len());
        let raw = ctx.as_mut_ptr();
        (*raw).extradata = buf;
        (*raw).extradata_size = extra.len() as i32;
    }
    Ok(())
}

fn decode_error(e: &av::Error) -> MediaError {
    MediaError::Decode {
        backend: NAME,
        reason: e.to_string(),
    }
}

struct FfmpegDecoder {
    inner: av::decoder::Video,
    frame: av::frame::Video,
    pool: Option<crate::memory::BufferPool>,
}

impl FfmpegDecoder {
    fn drain(&mut self, out: &mut Vec<DecodedPicture>) -> Result<(), MediaError> {
        loop {
            match self.inner.receive_frame(&mut self.frame) {
                Ok(()) => out.push(convert(&self.frame, self.pool.as_ref())?),
                Err(av::Error::Other { errno }) if errno == av::error::EAGAIN => return Ok(()),
                Err(av::Error::Eof) => return Ok(()),
                Err(e) => return Err(decode_error(&e)),
            }
        }
    }
}

fn convert(
    f: &av::frame::Video,
    pool: Option<&crate::memory::BufferPool>,
) -> Result<DecodedPicture, MediaError> {
    use av::format::Pixel;
    let (format, full) = match f.format() {
        Pixel::YUV420P => (PixelFormat::Yuv420p, false),
        Pixel::YUVJ420P => (PixelFormat::Yuv420p, true),
        Pixel::YUV422P => (PixelFormat::Yuv422p, false),
        Pixel::YUVJ422P => (PixelFormat::Yuv422p, true),
        Pixel::YUV444P => (PixelFormat::Yuv444p, false),
        Pixel::YUVJ444P => (PixelFormat::Yuv444p, true),
        Pixel::YUV420P10LE => (PixelFormat::Yuv420p10, false),
        Pixel::YUV422P10LE => (PixelFormat::Yuv422p10, false),
        other => {
            return Err(MediaError::Decode {
                backend: NAME,
                reason: format!("pixel format {other:?} is not supported"),
            });
        }
    };
    let mut frame = Picture::from_strided_in(
        pool,
        f.width(),
        f.height(),
        format,
        [f.data(0), f.data(1), f.data(2)],
        [f.stride(0), f.stride(1), f.stride(2)],
    )
    .ok_or_else(|| MediaError::Decode {
        backend: NAME,
        reason: "picture buffers smaller than their dimensions".into(),
    })?;
    frame.color = ColorSpace {
        matrix: match f.color_space() {
            av::color::Space::BT470BG | av::color::Space::SMPTE170M => MatrixCoefficients::Bt601,
            av::color::Space::BT709 => MatrixCoefficients::Bt709,
            _ if f.height() < 720 => MatrixCoefficients::Bt601,
            _ => MatrixCoefficients::Bt709,
        },
        range: if full || f.color_range() == av::color::Range::JPEG {
            YuvRange::Full
        } else {
            YuvRange::Limited
        },
    };
    Ok(DecodedPicture {
        frame,
        pts: f.pts(),
    })
}

impl Decoder for FfmpegDecoder {
    fn backend(&self) -> &'static str {
        NAME
    }

    fn decode(
        &mut self,
        packet: Packet<'_>,
        out: &mut Vec<DecodedPicture>,
    ) -> Result<(), MediaError> {
        let mut p = av::Packet::copy(packet.data);
        p.set_pts(Some(packet.pts));
        if packet.is_sync {
            p.set_flags(av::packet::Flags::KEY);
        }
        self.inner.send_packet(&p).map_err(|e| decode_error(&e))?;
        self.drain(out)
    }

    fn flush(&mut self, out: &mut Vec<DecodedPicture>) -> Result<(), MediaError> {
        self.inner.send_eof().map_err(|e| decode_error(&e))?;
        self.drain(out)?;
        // Ready for more packets after the flush (a following range).
        self.inner.flush();
        Ok(())
    }

    fn reset(&mut self) -> Result<(), MediaError> {
        self.inner.flush();
        Ok(())
    }

    fn set_frame_pool(&mut self, pool: crate::memory::BufferPool) {
        self.pool = Some(pool);
    }
}

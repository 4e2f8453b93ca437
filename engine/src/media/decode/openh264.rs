//! The openh264 backend: bundled, always built, H.264 4:2:0 8-bit progressive.

use framelock_components::{ChromaFormat, Codec};
use openh264::OpenH264API;
use openh264::decoder::{DecodeOptions, DecodedYUV, Decoder as Oh264, DecoderConfig, Flush};
use openh264::formats::YUVSource;

use crate::memory::BufferPool;

use super::{DecodedPicture, Decoder, DecoderBackend, Packet, StreamDescription, Support};
use crate::media::demux::CodecConfig;
use crate::media::pixel::{ColorSpace, MatrixCoefficients, YuvRange};
use crate::media::{MediaError, Picture, PixelFormat, h264};

const NAME: &str = "openh264";

/// The openh264 backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenH264Backend;

impl DecoderBackend for OpenH264Backend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn codecs(&self) -> Option<&'static [Codec]> {
        Some(&[Codec::H264])
    }

    fn support(&self, s: &StreamDescription) -> Support {
        if s.codec != Codec::H264 {
            return Support::No(format!("decodes H.264 only, not {}", s.codec));
        }
        if !matches!(s.config, CodecConfig::Avc { .. }) {
            return Support::No("no avcC decoder configuration".into());
        }
        match s.chroma {
            Some(ChromaFormat::Yuv420) => {}
            Some(c) => return Support::No(format!("{c} chroma is not supported")),
            None => return Support::No("unreadable sequence parameter set".into()),
        }
        if let Some(b) = s.bit_depth.filter(|&b| b != 8) {
            return Support::No(format!("{b}-bit is not supported"));
        }
        if s.interlaced == Some(true) {
            return Support::No("interlaced coding is not supported".into());
        }
        if let Some(why) = beyond_max_level(s.width, s.height) {
            return Support::No(why);
        }
        if s.open_gop {
            return Support::No(
                "open GOP (key frames that are not IDR pictures) is not supported; libav \
                 decodes it (the `ffmpeg` feature)"
                    .into(),
            );
        }
        if s.has_reordering {
            return Support::Approximate(
                "B-frames: frame order exact, small B-slice deblocking errors (>= 45 dB)".into(),
            );
        }
        Support::Exact
    }

    /// Measured (`tests/decoder_memory.rs` in the workspace root): openh264 keeps two pictures per slot of its
    /// reference list, which is `max_num_ref_frames + 2` long, each padded by 32 samples on
    /// every side, plus about 2.4 bytes per pixel of per-macroblock state. (4K with one
    /// reference: 94 MiB; with four: 169 MiB.)
    fn state_bytes(&self, s: &StreamDescription) -> usize {
        let (w, h) = (s.width as usize, s.height as usize);
        let padded = (w + 64) * (h + 64) * 3 / 2;
        let refs = s.ref_frames.unwrap_or(16) as usize;
        2 * (refs + 2) * padded + w * h * 12 / 5
    }

    fn create(&self, s: &StreamDescription) -> Result<Box<dyn Decoder>, MediaError> {
        let CodecConfig::Avc {
            length_size,
            sps,
            pps,
            ..
        } = &s.config
        else {
            return Err(MediaError::Unsupported {
                codec: s.describe(),
                reason: "openh264: no avcC decoder configuration".into(),
            });
        };
        let mut headers = Vec::new();
        for nal in sps.iter().chain(pps) {
            headers.extend_from_slice(&[0, 0, 0, 1]);
            headers.extend_from_slice(nal);
        }
        let color = ColorSpace {
            matrix: match s.matrix_coefficients {
                Some(5 | 6) => MatrixCoefficients::Bt601,
                Some(1) => MatrixCoefficients::Bt709,
                _ if s.height < 720 => MatrixCoefficients::Bt601,
                _ => MatrixCoefficients::Bt709,
            },
            range: if s.full_range {
                YuvRange::Full
            } else {
                YuvRange::Limited
            },
        };
        Ok(Box::new(OpenH264Decoder {
            inner: new_decoder()?,
            headers,
            length_size: *length_size,
            needs_headers: true,
            annexb: Vec::new(),
            color,
            pool: None,
        }))
    }
}

fn new_decoder() -> Result<Oh264, MediaError> {
    Oh264::with_api_config(
        OpenH264API::from_source(),
        DecoderConfig::new().flush_after_decode(Flush::NoFlush),
    )
    .map_err(|e| decode_error(&e))
}

fn decode_error(e: &openh264::Error) -> MediaError {
    let text = e.to_string();
    MediaError::Decode {
        backend: NAME,
        reason: native_code(&text)
            .map(|code| format!("{} (openh264 state {code:#x})", in_words(code)))
            .unwrap_or(text),
    }
}

/// The decoding-state code in openh264's error text (`… Native:4. …`).
fn native_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Native:")? + "Native:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// openh264's decoding-state bits (`DECODING_STATE` in its `codec_def.h`) in words.
fn in_words(code: u32) -> String {
    const BITS: [(u32, &str); 10] = [
        (0x02, "a reference picture was lost"),
        (0x04, "the bitstream is damaged"),
        (0x08, "a dependent layer was lost"),
        (
            0x10,
            "no parameter sets (SPS/PPS) before this picture, or a picture larger than openh264 decodes",
        ),
        (0x20, "damaged data was concealed"),
        (0x40, "the reference list is broken"),
        (0x1000, "an invalid argument"),
        (0x2000, "the decoder was not initialised"),
        (0x4000, "out of memory"),
        (0x8000, "the output buffer is too small"),
    ];
    let words: Vec<&str> = BITS
        .iter()
        .filter(|(bit, _)| code & bit != 0)
        .map(|&(_, w)| w)
        .collect();
    if words.is_empty() {
        "the decoder failed".into()
    } else {
        words.join("; ")
    }
}

struct OpenH264Decoder {
    inner: Oh264,
    /// SPS + PPS from `avcC`, as Annex-B, fed before the first packet after (re)creation.
    headers: Vec<u8>,
    length_size: usize,
    needs_headers: bool,
    annexb: Vec<u8>,
    color: ColorSpace,
    pool: Option<BufferPool>,
}

fn to_frame(yuv: &DecodedYUV<'_>, color: ColorSpace, pool: Option<&BufferPool>) -> Option<Picture> {
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let mut f = Picture::from_strided_in(
        pool,
        w as u32,
        h as u32,
        PixelFormat::Yuv420p,
        [yuv.y(), yuv.u(), yuv.v()],
        [sy, su, sv],
    )?;
    f.color = color;
    Some(f)
}

impl Decoder for OpenH264Decoder {
    fn backend(&self) -> &'static str {
        NAME
    }

    fn decode(
        &mut self,
        packet: Packet<'_>,
        out: &mut Vec<DecodedPicture>,
    ) -> Result<(), MediaError> {
        self.annexb.clear();
        if self.needs_headers {
            self.annexb.extend_from_slice(&self.headers);
            self.needs_headers = false;
        }
        if !h264::avcc_to_annexb(packet.data, self.length_size, &mut self.annexb) {
            return Err(MediaError::Decode {
                backend: NAME,
                reason: "sample's NAL lengths run past its end (corrupt sample)".into(),
            });
        }
        let color = self.color;
        let picture = self
            .inner
            .decode_with_options(
                &self.annexb,
                DecodeOptions::new().flush_after_decode(Flush::NoFlush),
            )
            .map_err(|e| decode_error(&e))?;
        if let Some(yuv) = picture {
            let frame =
                to_frame(&yuv, color, self.pool.as_ref()).ok_or_else(|| MediaError::Decode {
                    backend: NAME,
                    reason: "picture buffers smaller than their dimensions".into(),
                })?;
            out.push(DecodedPicture { frame, pts: None });
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<DecodedPicture>) -> Result<(), MediaError> {
        let color = self.color;
        let pictures = self.inner.flush_remaining().map_err(|e| decode_error(&e))?;
        for yuv in &pictures {
            if let Some(frame) = to_frame(yuv, color, self.pool.as_ref()) {
                out.push(DecodedPicture { frame, pts: None });
            }
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<(), MediaError> {
        // openh264 has no reliable "forget everything" call: a fresh instance is the reset
        // (cheap next to decoding a GOP).
        self.inner = new_decoder()?;
        self.needs_headers = true;
        Ok(())
    }

    fn set_frame_pool(&mut self, pool: BufferPool) {
        self.pool = Some(pool);
    }
}

/// openh264 decodes up to level 5.2: at most 36 864 macroblocks a frame (4096x2304), and
/// neither side over √(8 × 36 864) = 543 macroblocks (its `au_parser.cpp` refuses the
/// sequence parameter set otherwise, with `Native:16`). Why `width`x`height` is beyond
/// that, or `None`.
pub(crate) fn beyond_max_level(width: u32, height: u32) -> Option<String> {
    const MAX_FS: u64 = 36_864;
    let (mw, mh) = (
        u64::from(width.div_ceil(16)),
        u64::from(height.div_ceil(16)),
    );
    let too_many = mw * mh > MAX_FS;
    let too_long = mw * mw > 8 * MAX_FS || mh * mh > 8 * MAX_FS;
    (too_many || too_long).then(|| {
        format!(
            "{width}x{height} is beyond openh264's largest picture (level 5.2: {MAX_FS} \
             macroblocks, 4096x2304); libav decodes it (the `ffmpeg` feature)"
        )
    })
}

#[cfg(test)]
mod error_tests {
    use super::{in_words, native_code};

    #[test]
    fn native_codes_read_as_words() {
        let text = "OpenH264 encountered an error. Native:4. Decoding State:0. User Message:None.";
        assert_eq!(native_code(text), Some(4));
        assert_eq!(in_words(4), "the bitstream is damaged");
        assert!(in_words(0x14).contains("damaged") && in_words(0x14).contains("SPS/PPS"));
        assert_eq!(native_code("no code here"), None);
    }

    #[test]
    fn pictures_beyond_level_5_2_are_refused() {
        use super::beyond_max_level;
        for (w, h) in [(3840, 2160), (4096, 2160), (4096, 2304), (320, 180)] {
            assert_eq!(beyond_max_level(w, h), None, "{w}x{h}");
        }
        for (w, h) in [(5120, 2880), (7680, 4320), (8704, 16), (4112, 2304)] {
            let why = beyond_max_level(w, h).expect("refused");
            assert!(why.contains("ffmpeg"), "{why}");
        }
    }
}

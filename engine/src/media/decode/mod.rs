//! Decoding: the [`Decoder`] contract, the backends that implement it, and the registry that
//! picks one for a stream.
//!
//! Backends:
//! - `openh264` — always built, bundled (no system library). H.264 4:2:0 8-bit progressive.
//!   Facts designed around: it runs with `Flush::NoFlush` (auto-flush breaks B-frame streams
//!   after ~10 frames) and drains with `flush_remaining()` at the end of the stream; its own
//!   threads deadlock, so parallelism comes from several instances (see
//!   [`parallel_decode`](super::parallel_decode)); it passes no timestamps through, so the
//!   reader assigns them; B-slices decode with small deblocking errors (≥ 45 dB).
//! - `ffmpeg` — with the `ffmpeg` cargo feature, Debian's libav through `ffmpeg-next`: H.264
//!   bit-exact including B-frames, HEVC, 10-bit, 4:2:2, frame threads.
//!
//! The registry prefers a backend that decodes a stream exactly over one that only
//! approximates it, and among equals the one registered first (openh264, the default).

mod openh264;
pub use openh264::OpenH264Backend;

#[cfg(feature = "ffmpeg")]
pub(crate) mod ffmpeg;
#[cfg(feature = "ffmpeg")]
pub use ffmpeg::FfmpegBackend;

use std::collections::BTreeMap;
use std::sync::Arc;

use framelock_components::{ChromaFormat, Codec};

use super::demux::{CodecConfig, VideoTrack};
use super::{MediaError, Picture, h264};

/// One compressed access unit, as the container stores it (AVCC length-prefixed NAL units for
/// H.264/HEVC in MP4).
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// The sample's bytes.
    pub data: &'a [u8],
    /// Presentation time in the track's timescale.
    pub pts: i64,
    /// A decoder can start here.
    pub is_sync: bool,
}

/// A picture out of a decoder.
#[derive(Debug)]
pub struct DecodedPicture {
    /// The picture (index and time are filled in by the reader).
    pub frame: Picture,
    /// The packet pts the backend carried through, if it carries timestamps (libav does,
    /// openh264 does not).
    pub pts: Option<i64>,
}

/// A video decoder instance. One per thread; each owns its state.
///
/// Contract:
/// - packets arrive in **decode order**, starting at a sync sample (after creation or
///   [`Decoder::reset`]);
/// - pictures come out in **presentation order**, possibly several packets later (reordering
///   delay), none dropped and none duplicated: the caller matches them to packets by order;
/// - [`Decoder::flush`] at the end of the stream (or of a range) drains every held picture;
/// - [`Decoder::reset`] is required before feeding anything that does not follow on from the
///   last packet (a backward seek, a jump): it discards every held picture and reference.
pub trait Decoder: Send {
    /// The backend's name.
    fn backend(&self) -> &'static str;

    /// Decodes one packet; pictures that became ready are appended to `out`.
    fn decode(
        &mut self,
        packet: Packet<'_>,
        out: &mut Vec<DecodedPicture>,
    ) -> Result<(), MediaError>;

    /// Drains every picture still held (end of stream).
    fn flush(&mut self, out: &mut Vec<DecodedPicture>) -> Result<(), MediaError>;

    /// Forgets all state; the next packet must be a sync sample.
    fn reset(&mut self) -> Result<(), MediaError>;

    /// Pictures from now on take their planes from `pool` (recycled buffers, counted against
    /// the memory budget) instead of plain allocations.
    fn set_frame_pool(&mut self, pool: crate::memory::BufferPool);
}

/// How well a backend decodes a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Bit-exact with the reference decoder.
    Exact,
    /// Decodes every frame in the right order, with small pixel differences (why).
    Approximate(String),
    /// Cannot decode it (why).
    No(String),
}

/// What a backend needs to know to judge and open a stream.
#[derive(Clone, Debug)]
pub struct StreamDescription {
    /// Codec.
    pub codec: Codec,
    /// Sample entry four-character code.
    pub fourcc: String,
    /// Decoder configuration from the sample entry.
    pub config: CodecConfig,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Profile name, when known.
    pub profile: Option<String>,
    /// Level, when known.
    pub level: Option<String>,
    /// Chroma subsampling, when known.
    pub chroma: Option<ChromaFormat>,
    /// Luma bit depth, when known.
    pub bit_depth: Option<u8>,
    /// Interlaced coding, when known.
    pub interlaced: Option<bool>,
    /// B-frames (presentation order ≠ decode order).
    pub has_reordering: bool,
    /// Open GOP: the track's sync samples after the first are I pictures that are not IDR.
    pub open_gop: bool,
    /// Full-range samples (VUI), when said.
    pub full_range: bool,
    /// VUI matrix coefficients, when said.
    pub matrix_coefficients: Option<u8>,
    /// Reference pictures the stream keeps (H.264 `max_num_ref_frames`), when known.
    pub ref_frames: Option<u32>,
    /// Pictures held back for presentation order (H.264 `max_num_reorder_frames`), when
    /// known.
    pub reorder_frames: Option<u32>,
}

impl StreamDescription {
    /// Describes a demuxed video track, reading the codec's parameter sets.
    pub fn from_track(track: &VideoTrack) -> Self {
        let mut d = Self {
            codec: track.codec.clone(),
            fourcc: track.fourcc.clone(),
            config: track.config.clone(),
            width: track.width,
            height: track.height,
            profile: None,
            level: None,
            chroma: None,
            bit_depth: None,
            interlaced: None,
            has_reordering: track.has_reordering,
            open_gop: track.open_gop,
            full_range: false,
            matrix_coefficients: None,
            ref_frames: None,
            reorder_frames: None,
        };
        match &track.config {
            CodecConfig::Avc { sps, .. } => {
                if let Some(f) = sps.first().and_then(|s| h264::parse_sps(s)) {
                    d.profile = Some(f.profile);
                    d.level = Some(f.level);
                    d.chroma = Some(f.chroma);
                    d.bit_depth = Some(f.bit_depth);
                    d.interlaced = Some(f.interlaced);
                    d.width = f.width;
                    d.height = f.height;
                    d.full_range = f.full_range;
                    d.matrix_coefficients = f.matrix_coefficients;
                    d.ref_frames = Some(f.ref_frames);
                    d.reorder_frames = f.reorder_frames;
                }
            }
            CodecConfig::Hevc {
                profile_idc,
                level_idc,
                chroma_format_idc,
                bit_depth,
                ..
            } => {
                d.profile = Some(
                    match profile_idc {
                        1 => "Main",
                        2 => "Main 10",
                        3 => "Main Still Picture",
                        4 => "Range Extensions",
                        _ => "other",
                    }
                    .to_string(),
                );
                d.level = Some(format!("{:.1}", f64::from(*level_idc) / 30.0));
                d.chroma = match chroma_format_idc {
                    0 => Some(ChromaFormat::Monochrome),
                    1 => Some(ChromaFormat::Yuv420),
                    2 => Some(ChromaFormat::Yuv422),
                    3 => Some(ChromaFormat::Yuv444),
                    _ => None,
                };
                d.bit_depth = Some(*bit_depth);
            }
            CodecConfig::Other { .. } => {
                // ProRes says what it is in its sample entry code.
                let (profile, chroma, bits) = match d.fourcc.as_str() {
                    "apco" => ("422 Proxy", ChromaFormat::Yuv422, 10),
                    "apcs" => ("422 LT", ChromaFormat::Yuv422, 10),
                    "apcn" => ("422", ChromaFormat::Yuv422, 10),
                    "apch" => ("422 HQ", ChromaFormat::Yuv422, 10),
                    "ap4h" => ("4444", ChromaFormat::Yuv444, 12),
                    "ap4x" => ("4444 XQ", ChromaFormat::Yuv444, 12),
                    _ => return d,
                };
                d.profile = Some(profile.into());
                d.chroma = Some(chroma);
                d.bit_depth = Some(bits);
            }
        }
        d
    }

    /// Bytes of one decoded picture in the stream's own sampling.
    pub fn picture_bytes(&self) -> usize {
        framelock_components::picture_bytes(self.width, self.height, self.chroma, self.bit_depth)
    }

    /// Pictures a decoder of this stream must hold: the references and the reordering
    /// delay when the parameter sets say them, else the most H.264 allows (16 references;
    /// intra-only codecs hold none).
    pub fn held_pictures(&self) -> usize {
        match (&self.config, self.ref_frames) {
            (CodecConfig::Other { .. }, _) => 0,
            (_, Some(refs)) => refs as usize + self.reorder_frames.unwrap_or(0) as usize,
            (_, None) => 16,
        }
    }

    /// A one-line name of the codec and profile, for errors and reports.
    pub fn describe(&self) -> String {
        let mut s = self.codec.to_string();
        if let Some(p) = &self.profile {
            s += &format!(" {p}");
        }
        if let Some(c) = self.chroma {
            s += &format!(" {c}");
        }
        if let Some(b) = self.bit_depth {
            s += &format!(" {b}-bit");
        }
        if self.interlaced == Some(true) {
            s += " interlaced";
        }
        s
    }
}

/// A decoder implementation that can judge streams and open decoders for them.
pub trait DecoderBackend: Send + Sync {
    /// Short name shown in probe output and metrics (`openh264`, `ffmpeg`).
    fn name(&self) -> &'static str;
    /// The codecs this backend registers for; `None` means it is asked about every codec
    /// (libav knows hundreds).
    fn codecs(&self) -> Option<&'static [Codec]>;
    /// How well it decodes `stream`.
    fn support(&self, stream: &StreamDescription) -> Support;
    /// Opens a decoder for `stream` (only called when [`DecoderBackend::support`] is not `No`).
    fn create(&self, stream: &StreamDescription) -> Result<Box<dyn Decoder>, MediaError>;

    /// Like [`DecoderBackend::create`], with `options` the backend honours where it can (a
    /// backend without the knob decodes as [`DecoderBackend::create`] would).
    fn create_with(
        &self,
        stream: &StreamDescription,
        options: DecodeOptions,
    ) -> Result<Box<dyn Decoder>, MediaError> {
        let _ = options;
        self.create(stream)
    }

    /// The memory one decoder of `stream` holds once it runs (its picture buffers and
    /// per-macroblock state), estimated from the stream's parameters: what the memory
    /// budget counts for each open decoder. The default assumes the held pictures, one being
    /// decoded and one handed out.
    fn state_bytes(&self, stream: &StreamDescription) -> usize {
        (stream.held_pictures() + 2) * stream.picture_bytes()
    }
}

/// Trade-offs a caller may ask of a decoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Skip H.264/HEVC's in-loop deblocking filter (libav `skip_loop_filter = all`): 5–25 %
    /// less decode time, and blocking that drifts within each GOP. Only for pictures that
    /// are then shrunk 3x or more (proxies of 4K), where it mostly averages away; never for
    /// playback or export. openh264 has no such switch and ignores it.
    pub skip_loop_filter: bool,
}

/// The built backends, keyed by codec.
#[derive(Clone)]
pub struct DecoderRegistry {
    backends: Vec<Arc<dyn DecoderBackend>>,
    by_codec: BTreeMap<String, Vec<usize>>,
    any_codec: Vec<usize>,
}

impl std::fmt::Debug for DecoderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.backends.iter().map(|b| b.name()))
            .finish()
    }
}

impl Default for DecoderRegistry {
    fn default() -> Self {
        Self::new()
    }
}

/// The registry's selection for one stream.
#[derive(Clone)]
pub struct Selection {
    /// The chosen backend.
    pub backend: Arc<dyn DecoderBackend>,
    /// How well it decodes the stream.
    pub support: Support,
}

impl DecoderRegistry {
    /// Every backend this build has: openh264, then libav with the `ffmpeg` feature.
    pub fn new() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(OpenH264Backend));
        #[cfg(feature = "ffmpeg")]
        r.register(Arc::new(FfmpegBackend::new()));
        r
    }

    /// Every backend this build has, the fastest first: libav (measured 1.4–2.7x openh264's
    /// single-thread speed on the same H.264 streams) when built, then openh264. For
    /// throughput work (proxies, export) where both decode a stream exactly and parallelism
    /// comes from several decoder instances over GOP ranges, so libav runs single-threaded
    /// (frame threads on top would only oversubscribe the cores).
    pub fn fastest_first() -> Self {
        let mut r = Self::empty();
        #[cfg(feature = "ffmpeg")]
        r.register(Arc::new(FfmpegBackend::with_threads(1)));
        r.register(Arc::new(OpenH264Backend));
        r
    }

    /// openh264 alone: what a build without the `ffmpeg` feature decodes.
    pub fn openh264_only() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(OpenH264Backend));
        r
    }

    /// A registry with no backend.
    pub fn empty() -> Self {
        Self {
            backends: Vec::new(),
            by_codec: BTreeMap::new(),
            any_codec: Vec::new(),
        }
    }

    /// Adds a backend; earlier registrations win ties.
    pub fn register(&mut self, backend: Arc<dyn DecoderBackend>) {
        let i = self.backends.len();
        match backend.codecs() {
            Some(codecs) => {
                for c in codecs {
                    self.by_codec.entry(codec_key(c)).or_default().push(i);
                }
            }
            None => self.any_codec.push(i),
        }
        self.backends.push(backend);
    }

    /// Names of the registered backends, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    /// Picks the backend for `stream`: exact beats approximate, then registration order.
    /// A stream nothing can decode is refused with [`MediaError::Unsupported`], naming the
    /// codec, profile and each backend's reason.
    pub fn select(&self, stream: &StreamDescription) -> Result<Selection, MediaError> {
        let mut candidates: Vec<usize> = self
            .by_codec
            .get(&codec_key(&stream.codec))
            .cloned()
            .unwrap_or_default();
        candidates.extend(&self.any_codec);
        candidates.sort_unstable();
        candidates.dedup();
        let mut approximate = None;
        let mut reasons = Vec::new();
        for i in candidates {
            let backend = &self.backends[i];
            match backend.support(stream) {
                Support::Exact => {
                    return Ok(Selection {
                        backend: backend.clone(),
                        support: Support::Exact,
                    });
                }
                Support::Approximate(why) => {
                    if approximate.is_none() {
                        approximate = Some(Selection {
                            backend: backend.clone(),
                            support: Support::Approximate(why),
                        });
                    }
                }
                Support::No(why) => reasons.push(format!("{}: {why}", backend.name())),
            }
        }
        if let Some(sel) = approximate {
            return Ok(sel);
        }
        if reasons.is_empty() {
            reasons.push(format!(
                "no decoder backend for this codec in this build (built: {})",
                self.names().join(", ")
            ));
        }
        Err(MediaError::Unsupported {
            codec: stream.describe(),
            reason: reasons.join("; "),
        })
    }
}

fn codec_key(c: &Codec) -> String {
    c.to_string()
}

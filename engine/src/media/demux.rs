//! MP4/MOV demuxing with `re_mp4`: the video track's samples in decode order, each with its
//! presentation index, time and sync flag; the first audio track's format.
//!
//! `re_mp4` parses the boxes and the sample table and normalises composition times so that the
//! first presented sample is at zero. This module adds what no demuxer crate does:
//! - the edit list (`elst`): leading empty edits delay the start, and the first real edit's
//!   `media_time` trims the samples presented before it (🟧 later edits and rate changes are
//!   ignored);
//! - presentation indices: frame `n` is the `n`-th sample in presentation order;
//! - bounds checks, so that a truncated file is refused up front, not on some later frame.
//!
//! Samples are read with positional reads (`pread`), so one [`Mp4Demuxer`] can be shared by
//! several decoder threads.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use framelock_components::{AudioStreamInfo, Codec, FrameTimes, Rational};
use re_mp4::{StsdBoxContent, TrackKind};

use super::MediaError;
pub(super) use super::presentation::present;
use super::source::Source;

/// One sample (access unit) of the video track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRef {
    /// Byte offset in the file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u32,
    /// Decode time, in the track's timescale.
    pub dts: i64,
    /// Presentation time, in the track's timescale, edit list applied (frame 0 is at the
    /// start delay, usually 0).
    pub pts: i64,
    /// A decoder can start here.
    pub is_sync: bool,
    /// Presentation index, or `None` for a sample the edit list trims away (still decoded,
    /// as later frames may reference it, but never shown).
    pub frame: Option<u64>,
}

/// What a decoder needs besides the samples.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecConfig {
    /// H.264 with an `avcC` record.
    Avc {
        /// The raw `avcC` payload (libav's extradata).
        avcc: Vec<u8>,
        /// Bytes in each NAL length prefix (1, 2 or 4).
        length_size: usize,
        /// Sequence parameter sets (NAL units, header byte included).
        sps: Vec<Vec<u8>>,
        /// Picture parameter sets.
        pps: Vec<Vec<u8>>,
    },
    /// HEVC with an `hvcC` record.
    Hevc {
        /// The raw `hvcC` payload.
        hvcc: Vec<u8>,
        /// `general_profile_idc`.
        profile_idc: u8,
        /// `general_level_idc` (level × 30).
        level_idc: u8,
        /// `chroma_format_idc`.
        chroma_format_idc: u8,
        /// Luma bit depth.
        bit_depth: u8,
    },
    /// Any other sample entry; `raw` is its codec configuration box when `re_mp4` knows it.
    Other {
        /// The configuration record, if any.
        raw: Option<Vec<u8>>,
    },
}

/// The video track, ready for random access.
#[derive(Clone, Debug)]
pub struct VideoTrack {
    /// Container track id.
    pub track_id: u32,
    /// Codec.
    pub codec: Codec,
    /// Four-character code of the sample entry.
    pub fourcc: String,
    /// RFC 6381 codec string, when known.
    pub codec_string: Option<String>,
    /// Decoder configuration.
    pub config: CodecConfig,
    /// Width from the sample entry.
    pub width: u32,
    /// Height from the sample entry.
    pub height: u32,
    /// Units per second of `dts`/`pts`.
    pub timescale: u64,
    /// Samples in decode order.
    pub samples: Vec<SampleRef>,
    /// Presentation index → decode index.
    pub by_frame: Vec<u32>,
    /// Presentation indices of sync samples, ascending.
    pub keyframes: Vec<u64>,
    /// Frame rate (exact when sample durations are constant; the average when they vary).
    pub frame_rate: Rational,
    /// The frames' times when the frame rate varies (`None` when constant).
    pub frame_times: Option<FrameTimes>,
    /// Whether presentation order differs from decode order (B-frames).
    pub has_reordering: bool,
    /// H.264 whose sync samples after the first are I pictures that are not IDR (open GOP:
    /// pictures after them may reference pictures before them).
    pub open_gop: bool,
    /// How pictures are turned for display (the track header's matrix).
    pub orientation: super::Orientation,
}

impl VideoTrack {
    /// Frames presented.
    pub fn frame_count(&self) -> u64 {
        self.by_frame.len() as u64
    }

    /// Presented duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        match &self.frame_times {
            Some(t) => t.duration_secs(),
            None => self.frame_count() as f64 / self.frame_rate.as_f64(),
        }
    }

    /// The sample presented as frame `n`.
    pub fn frame_sample(&self, n: u64) -> Option<&SampleRef> {
        let d = *self.by_frame.get(n as usize)?;
        self.samples.get(d as usize)
    }

    /// Decode index of the sync sample to start at for frame `n`: the last sync sample in decode
    /// order at or before `n`'s sample whose own frame is not after `n` (so that leading frames
    /// of an open GOP are reached from the previous keyframe).
    pub fn seek_point(&self, n: u64) -> Option<usize> {
        let target = *self.by_frame.get(n as usize)? as usize;
        (0..=target).rev().find(|&d| {
            let s = &self.samples[d];
            s.is_sync && s.frame.is_none_or(|f| f <= n)
        })
    }
}

/// The first audio track.
pub type AudioTrack = AudioStreamInfo;

/// Where samples are read from.
#[derive(Debug)]
enum Reads {
    /// Positional reads at the sample table's offsets (MP4/MOV).
    Positional(Source),
    /// libavformat's packets (other containers).
    #[cfg(feature = "ffmpeg")]
    Lavf(Arc<super::lavf::Lavf>),
}

/// An open media file: MP4/MOV through the box parser, and with the `ffmpeg` feature the
/// containers libavformat reads (Matroska/WebM, MPEG-TS, AVI, MXF …; see `lavf/`) behind
/// the same interface.
#[derive(Debug)]
pub struct Mp4Demuxer {
    path: PathBuf,
    reads: Reads,
    file_size: u64,
    brand: String,
    video: VideoTrack,
    audio: Option<AudioTrack>,
}

impl Mp4Demuxer {
    /// Opens and indexes `path`. Reads the boxes, not the media data: milliseconds even for
    /// hour-long files.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MediaError> {
        let path = path.as_ref().to_path_buf();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MediaError::NotFound { path });
            }
            Err(e) => return Err(MediaError::io(path, e)),
        };
        if meta.is_dir() {
            return Err(MediaError::IsDirectory { path });
        }
        let file_size = meta.len();
        if file_size == 0 {
            return Err(MediaError::Empty { path });
        }
        #[cfg_attr(
            not(feature = "ffmpeg"),
            allow(unused_mut, reason = "read from only to sniff for libavformat")
        )]
        let mut file = File::open(&path).map_err(|e| MediaError::io(&path, e))?;
        #[cfg(feature = "ffmpeg")]
        {
            let mut head = [0u8; 512];
            let got = super::sniff::read_up_to(&mut file, &mut head)
                .map_err(|e| MediaError::io(&path, e))?;
            if let Some(found) = super::sniff::not_mp4(&head[..got])
                .filter(|found| super::sniff::libavformat_reads(found))
            {
                let lavf = super::lavf::open(&path, found)?;
                return Ok(Self {
                    brand: lavf.format().to_string(),
                    video: lavf.video().clone(),
                    audio: lavf.audio().cloned(),
                    path,
                    file_size,
                    reads: Reads::Lavf(lavf),
                });
            }
        }
        Self::from_source(path, Source::File(file, file_size), file_size)
    }

    /// Demuxes an MP4/MOV held in memory, as [`Mp4Demuxer::open`] does a file; `name` stands
    /// for its path in errors and reports. The entry point of the fuzz targets (`fuzz/`).
    pub fn from_bytes(
        bytes: impl Into<Arc<[u8]>>,
        name: impl Into<PathBuf>,
    ) -> Result<Self, MediaError> {
        let bytes: Arc<[u8]> = bytes.into();
        let path = name.into();
        if bytes.is_empty() {
            return Err(MediaError::Empty { path });
        }
        let size = bytes.len() as u64;
        Self::from_source(path, Source::Bytes(bytes), size)
    }

    fn from_source(path: PathBuf, source: Source, file_size: u64) -> Result<Self, MediaError> {
        let mut file = source.cursor();
        let mut head = [0u8; 512];
        let got =
            super::sniff::read_up_to(&mut file, &mut head).map_err(|e| MediaError::io(&path, e))?;
        if let Some(found) = super::sniff::not_mp4(&head[..got]) {
            return Err(MediaError::InvalidContainer {
                path,
                reason: super::sniff::refusal(found, matches!(source, Source::Bytes(_))),
            });
        }
        if let Some(needed) = super::box_check::top_level_overrun(&mut file, file_size) {
            return Err(MediaError::Truncated {
                path,
                needed,
                size: file_size,
            });
        }
        if let Err(reason) = super::box_check::check_moov(&mut file, file_size) {
            return Err(MediaError::InvalidContainer { path, reason });
        }

        let mp4 = match super::box_check::parse(BufReader::new(source.cursor()), file_size) {
            Ok(mp4) => mp4,
            Err(reason) => {
                // Damaged metadata (`udta`, `meta`) must not refuse intact samples: once more
                // with those boxes skipped.
                let patches = super::metadata_skip::metadata_patches(&mut file, file_size);
                let retried = (!patches.is_empty())
                    .then(|| {
                        let reader = super::metadata_skip::Patched::new(
                            BufReader::new(source.cursor()),
                            patches,
                        );
                        super::box_check::parse(reader, file_size).ok()
                    })
                    .flatten();
                match retried {
                    Some(mp4) => mp4,
                    None => return Err(MediaError::InvalidContainer { path, reason }),
                }
            }
        };

        let brand = mp4.ftyp.major_brand.to_string();
        let Some(track) = mp4
            .tracks()
            .values()
            .find(|t| handler_is(&mp4, t, TrackKind::Video, b"vide") && !t.samples.is_empty())
        else {
            return Err(MediaError::NoVideoTrack { path });
        };
        let video = index_video(&mp4, track).map_err(|reason| MediaError::InvalidContainer {
            path: path.clone(),
            reason,
        })?;
        let needed = video
            .samples
            .iter()
            .map(|s| s.offset + u64::from(s.size))
            .max()
            .unwrap_or(0);
        if needed > file_size {
            return Err(MediaError::Truncated {
                path,
                needed,
                size: file_size,
            });
        }
        let audio = mp4
            .tracks()
            .values()
            .find(|t| handler_is(&mp4, t, TrackKind::Audio, b"soun"))
            .map(|t| audio_info(&mp4, t));
        let mut video = video;
        video.open_gop = super::box_check::open_gop(&source, &video);

        Ok(Self {
            path,
            reads: Reads::Positional(source),
            file_size,
            brand,
            video,
            audio,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The `ftyp` major brand.
    pub fn brand(&self) -> &str {
        &self.brand
    }

    /// The video track.
    pub fn video(&self) -> &VideoTrack {
        &self.video
    }

    /// The first audio track, if any.
    pub fn audio(&self) -> Option<&AudioTrack> {
        self.audio.as_ref()
    }

    /// Reads sample `decode_index` into `buf` (replacing its contents), as stored (AVCC for H.264).
    pub fn read_sample(&self, decode_index: usize, buf: &mut Vec<u8>) -> Result<(), MediaError> {
        #[cfg_attr(
            not(feature = "ffmpeg"),
            allow(
                clippy::infallible_destructuring_match,
                reason = "a second variant with the ffmpeg feature"
            )
        )]
        let source = match &self.reads {
            Reads::Positional(source) => source,
            #[cfg(feature = "ffmpeg")]
            Reads::Lavf(lavf) => return lavf.read_sample(decode_index, buf),
        };
        let s = self
            .video
            .samples
            .get(decode_index)
            .ok_or(MediaError::FrameOutOfRange {
                index: decode_index as u64,
                frames: self.video.samples.len() as u64,
            })?;
        buf.resize(s.size as usize, 0);
        source
            .read_exact_at(buf, s.offset)
            .map_err(|e| MediaError::io(&self.path, e))
    }
}

/// Whether a track is of `kind`: by its handler (`vide`, `soun`), so that a sample entry
/// `re_mp4` does not know (ProRes, a codec nobody has) is still found as video.
pub(super) fn handler_is(
    mp4: &re_mp4::Mp4,
    t: &re_mp4::Track,
    kind: TrackKind,
    handler: &[u8; 4],
) -> bool {
    t.kind == Some(kind) || &t.trak(mp4).mdia.hdlr.handler_type.value == handler
}

pub(super) fn codec_of(content: &StsdBoxContent) -> (Codec, String) {
    match content {
        StsdBoxContent::Avc1(_) => (Codec::H264, "avc1".into()),
        StsdBoxContent::Hvc1(_) => (Codec::Hevc, "hvc1".into()),
        StsdBoxContent::Hev1(_) => (Codec::Hevc, "hev1".into()),
        StsdBoxContent::Av01(_) => (Codec::Av1, "av01".into()),
        StsdBoxContent::Vp08(_) => (Codec::Vp8, "vp08".into()),
        StsdBoxContent::Vp09(_) => (Codec::Vp9, "vp09".into()),
        StsdBoxContent::Mp4a(_) => (Codec::Aac, "mp4a".into()),
        StsdBoxContent::Tx3g(_) => (Codec::Other("tx3g".into()), "tx3g".into()),
        StsdBoxContent::Unknown(fourcc) => {
            let s = fourcc.to_string();
            match s.as_str() {
                "apco" | "apcs" | "apcn" | "apch" | "ap4h" | "ap4x" => (Codec::ProRes, s),
                _ => (Codec::Other(s.clone()), s),
            }
        }
    }
}

fn index_video(mp4: &re_mp4::Mp4, track: &re_mp4::Track) -> Result<VideoTrack, String> {
    let trak = track.trak(mp4);
    let stbl = &trak.mdia.minf.stbl;
    let (codec, fourcc) = codec_of(&stbl.stsd.contents);
    let config = match &stbl.stsd.contents {
        StsdBoxContent::Avc1(avc1) => CodecConfig::Avc {
            avcc: avc1.avcc.raw.clone(),
            length_size: usize::from(avc1.avcc.length_size_minus_one & 3) + 1,
            sps: avc1
                .avcc
                .sequence_parameter_sets
                .iter()
                .map(|n| n.bytes.clone())
                .collect(),
            pps: avc1
                .avcc
                .picture_parameter_sets
                .iter()
                .map(|n| n.bytes.clone())
                .collect(),
        },
        StsdBoxContent::Hvc1(h) | StsdBoxContent::Hev1(h) => CodecConfig::Hevc {
            hvcc: h.hvcc.raw.clone(),
            profile_idc: h.hvcc.general_profile_idc,
            level_idc: h.hvcc.general_level_idc,
            chroma_format_idc: h.hvcc.chroma_format_idc,
            bit_depth: 8 + h.hvcc.bit_depth_luma_minus8,
        },
        _ => CodecConfig::Other {
            raw: track.raw_codec_config(mp4),
        },
    };
    let timescale = track.timescale.max(1);

    let (delay, media_time) = edit_list(mp4, trak, timescale);
    // re_mp4 shifted times by the smallest composition time (and by the ctts dts shift): undo
    // that to compare with the edit's media_time.
    let dts_shift = stbl
        .ctts
        .as_ref()
        .map(|c| {
            c.entries
                .iter()
                .map(|e| -(e.sample_offset as i64))
                .max()
                .unwrap_or(0)
                .max(0)
        })
        .unwrap_or(0);
    let first_dts = track.samples.first().map_or(0, |s| s.decode_timestamp);
    let cts_base = -first_dts - dts_shift;

    let mut samples: Vec<SampleRef> = track
        .samples
        .iter()
        .map(|s| SampleRef {
            offset: s.offset,
            size: s.size.min(u64::from(u32::MAX)) as u32,
            dts: s.decode_timestamp,
            pts: s.composition_timestamp,
            is_sync: s.is_sync,
            frame: None,
        })
        .collect();
    let trim_before = media_time.map_or(i64::MIN, |m| m - cts_base);
    let presented = present(
        &mut samples,
        timescale,
        trim_before,
        delay,
        track.duration,
        |d| i64::try_from(track.samples[d].duration).ok(),
    )?;

    Ok(VideoTrack {
        track_id: track.track_id,
        codec,
        fourcc,
        codec_string: track.codec_string(mp4),
        config,
        width: u32::from(track.width),
        height: u32::from(track.height),
        timescale,
        samples,
        by_frame: presented.order,
        keyframes: presented.keyframes,
        frame_rate: presented.frame_rate,
        frame_times: presented.frame_times,
        has_reordering: presented.has_reordering,
        open_gop: false,
        orientation: {
            let m = &track.trak(mp4).tkhd.matrix;
            super::Orientation::from_matrix(m.a, m.b, m.c, m.d)
        },
    })
}

/// The edit list of `trak` (timescale `timescale`): leading empty edits delay the start
/// (movie timescale, returned in the track's); the first real edit's `media_time` (track
/// timescale, the file's own composition times) trims what precedes it. Later edits are not
/// applied.
pub(super) fn edit_list(
    mp4: &re_mp4::Mp4,
    trak: &re_mp4::TrakBox,
    timescale: u64,
) -> (i64, Option<i64>) {
    let movie_timescale = u64::from(mp4.moov.mvhd.timescale.max(1));
    let mut delay = 0i64;
    let mut media_time: Option<i64> = None;
    if let Some(elst) = trak.edts.as_ref().and_then(|e| e.elst.as_ref()) {
        for e in &elst.entries {
            let empty = e.media_time == u64::from(u32::MAX) || e.media_time == u64::MAX;
            if empty && media_time.is_none() {
                let d = (e.segment_duration as u128 * timescale as u128 / movie_timescale as u128)
                    as i64;
                delay = delay.saturating_add(d);
            } else if !empty {
                media_time = Some(e.media_time as i64);
                break;
            }
        }
    }
    (delay, media_time)
}

pub(super) fn audio_info(mp4: &re_mp4::Mp4, track: &re_mp4::Track) -> AudioStreamInfo {
    let content = &track.trak(mp4).mdia.minf.stbl.stsd.contents;
    let (codec, _) = codec_of(content);
    let (sample_rate, channels) = match content {
        StsdBoxContent::Mp4a(a) => {
            // The AudioSpecificConfig in esds is authoritative; the sample entry's own
            // channel count is often a placeholder 2.
            let asc = a.esds.as_ref().map(|e| &e.es_desc.dec_config.dec_specific);
            let rate = asc
                .and_then(|d| re_mp4::SampleFreqIndex::try_from(d.freq_index).ok())
                .map_or(u32::from(a.samplerate.value()), |f| f.freq());
            let channels = asc
                .map(|d| match d.chan_conf {
                    7 => 8,
                    c => u16::from(c),
                })
                .filter(|&c| (1..=8).contains(&c))
                .unwrap_or(a.channelcount);
            (rate, channels)
        }
        _ => (track.timescale as u32, 0),
    };
    AudioStreamInfo {
        track_id: track.track_id,
        codec,
        codec_string: track.codec_string(mp4),
        sample_rate,
        channels,
        duration_secs: track.duration as f64 / track.timescale.max(1) as f64,
    }
}

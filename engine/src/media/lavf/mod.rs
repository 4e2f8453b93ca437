//! Containers other than MP4/MOV through libavformat (cargo feature `ffmpeg`): Matroska/WebM,
//! MPEG-TS and -PS, AVI, MXF, FLV, Ogg — behind the same demuxer interface as MP4
//! ([`Mp4Demuxer`](super::Mp4Demuxer)), keyframe index included.
//!
//! - **Indexing.** These containers have no sample table to read, so opening reads every
//!   packet of the video stream once (libavformat reads their data too) and builds the table
//!   MP4 stores: decode order, presentation index, sync flags, keyframes, frame rate. The
//!   index is kept per file (path, size, modification time), so the readers opened after the
//!   probe do not read the file again.
//! - **Reading.** A sample is read through a small pool of libavformat contexts, each left
//!   after the sample it read last: decoding reads forward, so a reader's next sample is one
//!   `av_read_frame` away. Any other sample is reached by seeking to its keyframe and reading
//!   forward; packets are recognised by their byte position (or position and timestamp
//!   where positions repeat), never by counting, so an imprecise seek costs time, not
//!   correctness.
//! - **One form for the decoders.** H.264 and HEVC stored as Annex B (MPEG-TS, AVI) are
//!   handed out as MP4 stores them: 4-byte length prefixes and an `avcC`/`hvcC` record built
//!   from the stream's parameter sets.
//! - 🟧 The first real edit of a Matroska edition and rotation outside a display matrix are
//!   not applied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use ffmpeg_next as av;
use framelock_components::{AudioStreamInfo, Codec};

use super::MediaError;
use super::demux::{SampleRef, VideoTrack, present};

/// Idle libavformat contexts kept per file.
const IDLE_CURSORS: usize = 4;
/// Files whose index is kept.
const KEPT_INDEXES: usize = 16;
/// Read errors in a row after which a file is given up on.
const ERRORS_IN_A_ROW: u32 = 64;

mod describe;
mod nal;

use describe::{audio_info, codec_of, display_matrix, sampling};
use nal::{Stored, annexb_to_lengths, annexb_units, config, idr_in, is_parameter_set};

/// A file libavformat demuxes: its index and the contexts that read it.
pub(super) struct Lavf {
    path: PathBuf,
    format: String,
    stream: usize,
    video: VideoTrack,
    audio: Option<AudioStreamInfo>,
    stored: Stored,
    /// Each sample's key (decode order), to know a packet again after a seek.
    by_key: HashMap<(i64, i64), u32>,
    /// Packets are told apart by position alone (no two share one).
    key_by_pos: bool,
    /// Where to seek for each sample, in the stream's time base.
    seek_ts: Vec<i64>,
    cursors: Mutex<Vec<Cursor>>,
}

impl std::fmt::Debug for Lavf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lavf")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("stream", &self.stream)
            .field("stored", &self.stored)
            .finish_non_exhaustive()
    }
}

/// An open libavformat context and the decode index of the sample it reads next.
struct Cursor {
    input: av::format::context::Input,
    next: Option<usize>,
    packet: av::Packet,
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> MediaError {
    MediaError::InvalidContainer {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn open_input(path: &Path) -> Result<av::format::context::Input, MediaError> {
    super::decode::ffmpeg::init();
    let mut input =
        av::format::input(&path).map_err(|e| invalid(path, format!("libavformat: {e}")))?;
    // SAFETY: the context is open and owned here; `flags` is a plain field libavformat
    // reads on each `av_read_frame` (GENPTS: fill presentation times the container omits).
    unsafe {
        (*input.as_mut_ptr()).flags |= av::ffi::AVFMT_FLAG_GENPTS;
    }
    Ok(input)
}

/// The demuxer of `path` (`found`: what sniffing took it for), from the kept indexes or by
/// indexing it now.
pub(super) fn open(path: &Path, found: &str) -> Result<Arc<Lavf>, MediaError> {
    static KEPT: Mutex<Vec<(FileKey, Arc<Lavf>)>> = Mutex::new(Vec::new());
    let meta = std::fs::metadata(path).map_err(|e| MediaError::io(path, e))?;
    let key = FileKey {
        path: path.to_path_buf(),
        len: meta.len(),
        modified: meta.modified().ok(),
    };
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, lavf)) = kept.iter().find(|(k, _)| *k == key) {
        return Ok(lavf.clone());
    }
    drop(kept);
    let lavf = Arc::new(index(path).map_err(|e| match e {
        MediaError::InvalidContainer { path, reason } => MediaError::InvalidContainer {
            path,
            reason: format!("found {found}, which libavformat could not index: {reason}"),
        },
        e => e,
    })?);
    kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    // Another reader indexed it meanwhile (workers open a file at once): one entry per file.
    if let Some((_, first)) = kept.iter().find(|(k, _)| *k == key) {
        return Ok(first.clone());
    }
    if kept.len() >= KEPT_INDEXES {
        kept.remove(0);
    }
    kept.push((key, lavf.clone()));
    Ok(lavf)
}

#[derive(PartialEq, Eq)]
struct FileKey {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// One video packet as the scan saw it.
struct Scanned {
    pos: i64,
    pts: Option<i64>,
    dts: Option<i64>,
    duration: i64,
    size: usize,
    key: bool,
    idr: bool,
}

fn index(path: &Path) -> Result<Lavf, MediaError> {
    let mut input = open_input(path)?;
    let format = input.format().name().to_string();
    let Some(st) = input.streams().best(av::media::Type::Video) else {
        return Err(MediaError::NoVideoTrack {
            path: path.to_path_buf(),
        });
    };
    let stream = st.index();
    let tb = st.time_base();
    let (num, den) = (
        i64::from(tb.numerator()).max(1),
        i64::from(tb.denominator()).max(1),
    );
    let orientation = st
        .side_data()
        .find(|d| d.kind() == av::packet::side_data::Type::DisplayMatrix)
        .and_then(|d| display_matrix(d.data()))
        .unwrap_or_default();
    // One frame at the nominal rate, in the time base (the packets' own steps when unknown).
    let rate = st.rate();
    let nominal_step = (rate.numerator() > 0 && rate.denominator() > 0)
        .then(|| den * i64::from(rate.denominator()) / (num * i64::from(rate.numerator())))
        .filter(|&s| s > 0);
    let params = st.parameters();
    let id = params.id();
    // SAFETY: `params` points at the stream's codec parameters, alive while `input` is.
    let par = unsafe { &*params.as_ptr() };
    let (width, height) = (par.width.max(0) as u32, par.height.max(0) as u32);
    let extradata = if par.extradata.is_null() || par.extradata_size <= 0 {
        Vec::new()
    } else {
        // SAFETY: libavformat keeps `extradata_size` bytes at `extradata`.
        unsafe { std::slice::from_raw_parts(par.extradata, par.extradata_size as usize) }.to_vec()
    };
    let pixel = par.format;
    let stream_duration = st.duration();
    let audio = input
        .streams()
        .best(av::media::Type::Audio)
        .map(|a| audio_info(&a));
    let (codec, fourcc) = codec_of(id);
    let nal = matches!(codec, Codec::H264 | Codec::Hevc);
    let stored = if nal && extradata.first() != Some(&1) {
        Stored::AnnexB
    } else {
        Stored::AsIs
    };
    for i in 0..input.nb_streams() as usize {
        if i != stream {
            // SAFETY: `i` is below `nb_streams`; `discard` is read by the next read.
            unsafe {
                (**(*input.as_mut_ptr()).streams.add(i)).discard =
                    av::ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }

    let mut scanned = Vec::new();
    let mut parameter_sets: Vec<Vec<u8>> = annexb_units(&extradata).map(<[u8]>::to_vec).collect();
    let mut packet = av::Packet::empty();
    let mut converted = Vec::new();
    let mut errors = 0;
    loop {
        match packet.read(&mut input) {
            Ok(()) => errors = 0,
            Err(av::Error::Eof) => break,
            Err(e) => {
                errors += 1;
                if errors >= ERRORS_IN_A_ROW {
                    return Err(invalid(path, format!("libavformat: {e}")));
                }
                continue;
            }
        }
        let Some(data) = packet.data().filter(|d| !d.is_empty()) else {
            continue;
        };
        if packet.stream() != stream {
            continue;
        }
        let data = if stored == Stored::AnnexB {
            if packet.is_key() {
                for unit in annexb_units(data) {
                    if is_parameter_set(&codec, unit) && !parameter_sets.iter().any(|p| p == unit) {
                        parameter_sets.push(unit.to_vec());
                    }
                }
            }
            annexb_to_lengths(data, &mut converted);
            &converted[..]
        } else {
            data
        };
        scanned.push(Scanned {
            pos: packet.position() as i64,
            pts: packet.pts(),
            dts: packet.dts(),
            duration: packet.duration(),
            size: data.len(),
            key: packet.is_key(),
            idr: packet.is_key() && codec == Codec::H264 && idr_in(data, &extradata, stored),
        });
    }
    drop_unpresentable_tail(&mut scanned, nominal_step);
    if scanned.is_empty() {
        return Err(MediaError::NoVideoTrack {
            path: path.to_path_buf(),
        });
    }
    let config = config(&codec, &extradata, stored, &parameter_sets, sampling(pixel))
        .ok_or_else(|| invalid(path, format!("{codec} without its parameter sets")))?;

    let mut positions: Vec<i64> = scanned.iter().map(|s| s.pos).collect();
    positions.sort_unstable();
    let key_by_pos = positions[0] >= 0 && positions.windows(2).all(|w| w[0] != w[1]);
    let mut by_key = HashMap::with_capacity(scanned.len());
    let mut samples = Vec::with_capacity(scanned.len());
    let mut seek_ts = Vec::with_capacity(scanned.len());
    for (i, s) in scanned.iter().enumerate() {
        let Some(ts) = s.pts.or(s.dts) else {
            return Err(invalid(path, format!("video packet {i} has no timestamp")));
        };
        by_key.insert(packet_key(key_by_pos, s.pos, s.pts.or(s.dts)), i as u32);
        seek_ts.push(ts);
        let scaled = |t: i64| t.saturating_mul(num);
        samples.push(SampleRef {
            offset: s.pos.max(0) as u64,
            size: s.size.min(u32::MAX as usize) as u32,
            dts: scaled(s.dts.unwrap_or(ts)),
            pts: scaled(ts),
            is_sync: s.key,
            frame: None,
        });
    }
    let duration = (stream_duration.max(0) as u64).saturating_mul(num as u64);
    let presented = present(&mut samples, den as u64, i64::MIN, 0, duration, |d| {
        Some(scanned[d].duration.saturating_mul(num))
    })
    .map_err(|e| invalid(path, e))?;
    let open_gop = codec == Codec::H264
        && scanned
            .iter()
            .filter(|s| s.key)
            .skip(1)
            .take(4)
            .any(|s| !s.idr);
    let video = VideoTrack {
        track_id: stream as u32,
        codec,
        fourcc,
        codec_string: None,
        config,
        width,
        height,
        timescale: den as u64,
        samples,
        by_frame: presented.order,
        keyframes: presented.keyframes,
        frame_rate: presented.frame_rate,
        frame_times: presented.frame_times,
        has_reordering: presented.has_reordering,
        open_gop,
        orientation,
    };
    Ok(Lavf {
        path: path.to_path_buf(),
        format,
        stream,
        video,
        audio,
        stored,
        by_key,
        key_by_pos,
        seek_ts,
        cursors: Mutex::new(vec![Cursor {
            input,
            next: None,
            packet,
        }]),
    })
}

/// A file cut short in decode order (copying, a crashed recorder) loses some B-frames
/// before the last packets it kept: those would then take the missing frames' presentation
/// indices. Packets presented after the first gap in the presentation times go, when they
/// are the last in decode order (nothing decoded later needs them) and fewer than 16 (a
/// reordering window): a gap earlier in the file, or a longer run after it, is the stream's
/// own timing (variable frame rate, a lost packet) and stays, as frame times. Gaps are
/// measured against the stream's nominal frame duration (`nominal_step`, time base units),
/// else the median step.
fn drop_unpresentable_tail(scanned: &mut Vec<Scanned>, nominal_step: Option<i64>) {
    const REORDER_WINDOW: usize = 16;
    let mut by_pts: Vec<(i64, usize)> = scanned
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((s.pts.or(s.dts)?, i)))
        .collect();
    by_pts.sort_unstable();
    let mut steps: Vec<i64> = by_pts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    steps.sort_unstable();
    let Some(median) = nominal_step.or(steps.get(steps.len() / 2).copied().filter(|&m| m > 0))
    else {
        return;
    };
    let tail_from = by_pts.len().saturating_sub(REORDER_WINDOW);
    let Some(gap) = (tail_from.max(1)..by_pts.len())
        .find(|&k| by_pts[k].0 - by_pts[k - 1].0 > median + median / 2)
    else {
        return;
    };
    let after = &by_pts[gap..];
    let first_dropped = scanned.len() - after.len();
    if after.iter().all(|&(_, i)| i >= first_dropped) {
        scanned.truncate(first_dropped);
    }
}

fn packet_key(by_pos: bool, pos: i64, ts: Option<i64>) -> (i64, i64) {
    if by_pos {
        (pos, 0)
    } else {
        (pos, ts.unwrap_or(i64::MIN))
    }
}

impl Lavf {
    /// libavformat's name of the container ("matroska,webm", "mpegts", "avi" …).
    pub(super) fn format(&self) -> &str {
        &self.format
    }

    /// The video track's index.
    pub(super) fn video(&self) -> &VideoTrack {
        &self.video
    }

    /// The best audio stream, described.
    pub(super) fn audio(&self) -> Option<&AudioStreamInfo> {
        self.audio.as_ref()
    }

    /// Reads sample `d` (decode order) into `buf`, length-prefixed for H.264/HEVC.
    pub(super) fn read_sample(&self, d: usize, buf: &mut Vec<u8>) -> Result<(), MediaError> {
        if d >= self.video.samples.len() {
            return Err(MediaError::FrameOutOfRange {
                index: d as u64,
                frames: self.video.samples.len() as u64,
            });
        }
        let mut cursor = {
            let mut idle = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
            match idle.iter().position(|c| c.next == Some(d)) {
                Some(i) => Some(idle.swap_remove(i)),
                None => idle.pop(),
            }
        };
        let mut c = match cursor.take() {
            Some(c) => c,
            None => self.fresh()?,
        };
        self.read_with(&mut c, d, buf)?;
        let mut idle = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() >= IDLE_CURSORS {
            idle.remove(0);
        }
        idle.push(c);
        Ok(())
    }

    fn fresh(&self) -> Result<Cursor, MediaError> {
        let mut input = open_input(&self.path)?;
        for i in 0..input.nb_streams() as usize {
            if i != self.stream {
                // SAFETY: as in `index`.
                unsafe {
                    (**(*input.as_mut_ptr()).streams.add(i)).discard =
                        av::ffi::AVDiscard::AVDISCARD_ALL;
                }
            }
        }
        Ok(Cursor {
            input,
            next: Some(0),
            packet: av::Packet::empty(),
        })
    }

    fn read_with(&self, c: &mut Cursor, d: usize, buf: &mut Vec<u8>) -> Result<(), MediaError> {
        let mut attempt = 0;
        if c.next != Some(d) {
            self.seek(c, d, attempt)?;
        }
        loop {
            match self.next_packet(c)? {
                Some(i) if i == d => {
                    let data = c.packet.data().unwrap_or_default();
                    match self.stored {
                        Stored::AsIs => {
                            buf.clear();
                            buf.extend_from_slice(data);
                        }
                        Stored::AnnexB => annexb_to_lengths(data, buf),
                    }
                    c.next = Some(d + 1);
                    return Ok(());
                }
                Some(i) if i < d => {}
                // Past it, or the end: the seek landed late; go further back.
                _ => {
                    attempt += 1;
                    self.seek(c, d, attempt)?;
                }
            }
        }
    }

    /// Positions `c` at or before sample `d`: at its keyframe, then (on later attempts) at
    /// keyframes further back, and at last back at the start of the file.
    fn seek(&self, c: &mut Cursor, d: usize, attempt: usize) -> Result<(), MediaError> {
        const SEEKS: usize = 3;
        if attempt > SEEKS {
            return Err(invalid(
                &self.path,
                format!("libavformat could not reach video packet {d}"),
            ));
        }
        let samples = &self.video.samples;
        let keyframe = (0..=d).rev().filter(|&k| samples[k].is_sync).nth(attempt);
        match keyframe {
            Some(k) if attempt < SEEKS && k > 0 => {
                let ts = self.seek_ts[k];
                // SAFETY: the context is open and owned by `c`; the stream index is valid.
                let r = unsafe {
                    av::ffi::avformat_seek_file(
                        c.input.as_mut_ptr(),
                        self.stream as i32,
                        i64::MIN,
                        ts,
                        ts,
                        0,
                    )
                };
                if r >= 0 {
                    c.next = None;
                    return Ok(());
                }
                *c = self.fresh()?;
            }
            _ => *c = self.fresh()?,
        }
        Ok(())
    }

    /// Reads the next video packet into `c.packet`: its decode index, or `None` at the end.
    fn next_packet(&self, c: &mut Cursor) -> Result<Option<usize>, MediaError> {
        let mut errors = 0;
        loop {
            match c.packet.read(&mut c.input) {
                Ok(()) => errors = 0,
                Err(av::Error::Eof) => return Ok(None),
                Err(e) => {
                    errors += 1;
                    if errors >= ERRORS_IN_A_ROW {
                        return Err(MediaError::io(
                            &self.path,
                            std::io::Error::other(format!("libavformat: {e}")),
                        ));
                    }
                    continue;
                }
            }
            if c.packet.stream() != self.stream || c.packet.size() == 0 {
                continue;
            }
            let key = packet_key(
                self.key_by_pos,
                c.packet.position() as i64,
                c.packet.pts().or(c.packet.dts()),
            );
            if let Some(&i) = self.by_key.get(&key) {
                return Ok(Some(i as usize));
            }
        }
    }
}

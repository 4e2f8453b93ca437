//! MP4 and MOV writing on `mp4-atom`: H.264 (`avc1`), AV1 (`av01`) and ProRes (MOV) video,
//! Opus, AAC and 16-bit PCM audio, interleaved, with the index first ("faststart").
//!
//! Samples may arrive in any order across tracks (export encodes audio on its own thread
//! while video segments finish out of order): each track's samples are spooled to an
//! anonymous temporary file beside the output as they come, and [`Mp4Muxer::finish`] writes
//! `ftyp`, `moov` and `mdat` in one pass, laying the tracks' samples out in chunks of at most
//! half a second, ordered by time (A/V interleaving). Only the sample tables stay in memory.
//!
//! Why `mp4-atom`: the `mp4` crate (what proxies used first) writes `avc1`/`hev1`/`mp4a`
//! only, and its writer puts the index last; `muxide` holds every sample in memory.
//! `mp4-atom` encodes any box (`av01`, `Opus`/`dOps`, `sowt`, edit lists, `co64`) and leaves
//! the layout to us, which faststart needs.
//!
//! Encoder delay (Opus pre-skip, AAC priming) is an edit list: the track's presentation
//! starts `delay` ticks into its media, so the first sample heard is the first one fed in.
//!
//! The output goes through [`AtomicFile`]: nothing appears at the destination until the
//! file is complete (and, with [`Mp4Muxer::finish_verified`], checked).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mp4_atom::{Encode, FourCC};

use super::WriteError;
use crate::fs::AtomicFile;

mod boxes;

/// The longest stretch of one track in one chunk, in seconds.
const CHUNK_SECONDS: f64 = 0.5;

/// The file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// ISO MP4 (`isom`): what browsers play.
    Mp4,
    /// QuickTime (`qt  `): for PCM audio (`sowt`), which MP4 readers such as ffmpeg 5 refuse.
    Mov,
}

/// An AV1 stream's `av1C` fields (from its sequence header).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Av1Config {
    /// `seq_profile` (0: Main, 8/10-bit 4:2:0).
    pub profile: u8,
    /// `seq_level_idx[0]`.
    pub level: u8,
    /// `seq_tier[0]`.
    pub tier: bool,
    /// 10- or 12-bit.
    pub high_bitdepth: bool,
    /// 4:2:0 when both are set.
    pub subsampling: (bool, bool),
    /// The sequence header OBU (and any metadata OBUs) as carried in `av1C`.
    pub config_obus: Vec<u8>,
}

/// A track's codec and its decoder configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackCodec {
    /// H.264 with one SPS and one PPS (NAL units without start codes).
    Avc {
        /// Sequence parameter set.
        sps: Vec<u8>,
        /// Picture parameter set.
        pps: Vec<u8>,
    },
    /// AV1.
    Av1(Av1Config),
    /// Opus (48 kHz media timescale).
    Opus {
        /// Samples the decoder drops at the start (the encoder's look-ahead).
        pre_skip: u16,
    },
    /// AAC with its AudioSpecificConfig.
    Aac {
        /// The AudioSpecificConfig bytes (`esds` decoder-specific info).
        config: Vec<u8>,
        /// Average bits per second.
        bitrate: u32,
    },
    /// Interleaved signed 16-bit little-endian PCM (`sowt`, MOV only). A sample written is a
    /// packet of `duration` PCM frames.
    Pcm16,
    /// Apple ProRes (MOV only), with its sample entry code (`apco`, `apcs`, `apcn`, …): every
    /// sample is one self-contained frame, so there is no decoder configuration.
    ProRes {
        /// The sample entry code, which names the profile.
        fourcc: [u8; 4],
    },
}

/// A track of an [`Mp4Muxer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackId(usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrackKind {
    Video { width: u32, height: u32 },
    Audio { rate: u32, channels: u16 },
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    spool_offset: u64,
    size: u32,
    duration: u32,
    sync: bool,
}

#[derive(Debug)]
struct Track {
    kind: TrackKind,
    timescale: u32,
    codec: Option<TrackCodec>,
    delay: u64,
    presented: Option<u64>,
    spool: BufWriter<File>,
    spooled: u64,
    samples: Vec<Sample>,
}

impl Track {
    fn media_duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }

    /// The presentation duration in media ticks (after the encoder delay).
    fn presented(&self) -> u64 {
        self.presented
            .unwrap_or_else(|| self.media_duration().saturating_sub(self.delay))
    }

    fn is_pcm(&self) -> bool {
        matches!(self.codec, Some(TrackCodec::Pcm16))
    }

    /// PCM and ProRes are QuickTime's: MP4 readers refuse them.
    fn needs_mov(&self) -> bool {
        matches!(
            self.codec,
            Some(TrackCodec::Pcm16 | TrackCodec::ProRes { .. })
        )
    }
}

/// One chunk of the output: `count` consecutive samples of one track.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    track: usize,
    first: usize,
    count: usize,
    start: f64,
    spool_offset: u64,
    bytes: u64,
}

/// Writes an MP4 or MOV; see the module docs.
pub struct Mp4Muxer {
    file: AtomicFile,
    container: Container,
    tracks: Vec<Track>,
}

impl std::fmt::Debug for Mp4Muxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp4Muxer")
            .field("dest", &self.file.dest())
            .field("container", &self.container)
            .field("tracks", &self.tracks.len())
            .finish_non_exhaustive()
    }
}

/// What [`Mp4Muxer::finish`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuxSummary {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Samples per track, in the order the tracks were added.
    pub samples: Vec<u64>,
}

impl Mp4Muxer {
    /// Starts writing `path` (nothing appears there until [`Mp4Muxer::finish`]).
    pub fn create(path: impl AsRef<Path>, container: Container) -> Result<Self, WriteError> {
        let path = path.as_ref();
        let file = AtomicFile::create(path).map_err(|e| io_error(path, e))?;
        Ok(Self {
            file,
            container,
            tracks: Vec::new(),
        })
    }

    fn add(&mut self, kind: TrackKind, timescale: u32) -> Result<TrackId, WriteError> {
        if timescale == 0 {
            return Err(WriteError::InvalidSettings(
                "track timescale is zero".into(),
            ));
        }
        let dir = self.file.temp_path().parent().unwrap_or(Path::new("."));
        let spool = tempfile::tempfile_in(dir).map_err(|e| io_error(self.file.dest(), e))?;
        self.tracks.push(Track {
            kind,
            timescale,
            codec: None,
            delay: 0,
            presented: None,
            spool: BufWriter::with_capacity(1 << 20, spool),
            spooled: 0,
            samples: Vec::new(),
        });
        Ok(TrackId(self.tracks.len() - 1))
    }

    /// Adds a video track; a frame of duration `d` lasts `d / timescale` seconds.
    pub fn add_video(
        &mut self,
        width: u32,
        height: u32,
        timescale: u32,
    ) -> Result<TrackId, WriteError> {
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(WriteError::InvalidSettings(format!(
                "video size {width}x{height}"
            )));
        }
        self.add(TrackKind::Video { width, height }, timescale)
    }

    /// Adds an audio track at `rate` Hz (its media timescale).
    pub fn add_audio(&mut self, rate: u32, channels: u16) -> Result<TrackId, WriteError> {
        if channels == 0 || rate > 65535 {
            return Err(WriteError::InvalidSettings(format!(
                "audio {rate} Hz, {channels} channels"
            )));
        }
        self.add(TrackKind::Audio { rate, channels }, rate)
    }

    /// Sets a track's codec (any time before [`Mp4Muxer::finish`]: H.264's parameter sets
    /// come with the first picture).
    pub fn set_codec(&mut self, track: TrackId, codec: TrackCodec) -> Result<(), WriteError> {
        let t = self.track_mut(track)?;
        let fits = matches!(
            (&codec, t.kind),
            (
                TrackCodec::Avc { .. } | TrackCodec::Av1(_) | TrackCodec::ProRes { .. },
                TrackKind::Video { .. }
            ) | (
                TrackCodec::Opus { .. } | TrackCodec::Aac { .. } | TrackCodec::Pcm16,
                TrackKind::Audio { .. }
            )
        );
        if !fits {
            return Err(WriteError::InvalidSettings(format!(
                "{codec:?} on a {:?} track",
                t.kind
            )));
        }
        t.codec = Some(codec);
        Ok(())
    }

    /// The track's codec, once set.
    pub fn codec(&self, track: TrackId) -> Option<&TrackCodec> {
        self.tracks.get(track.0).and_then(|t| t.codec.as_ref())
    }

    /// The presentation starts `delay` media ticks in (encoder delay) and lasts `presented`
    /// ticks (`None`: to the end of the samples).
    pub fn set_edit(
        &mut self,
        track: TrackId,
        delay: u64,
        presented: Option<u64>,
    ) -> Result<(), WriteError> {
        let t = self.track_mut(track)?;
        t.delay = delay;
        t.presented = presented;
        Ok(())
    }

    /// Appends one sample (an encoded picture, an audio packet; for PCM, `duration` frames)
    /// lasting `duration` media ticks.
    pub fn write_sample(
        &mut self,
        track: TrackId,
        data: &[u8],
        duration: u32,
        sync: bool,
    ) -> Result<(), WriteError> {
        let dest = self.file.dest().to_path_buf();
        let t = self.track_mut(track)?;
        let size = u32::try_from(data.len())
            .map_err(|_| WriteError::Mux(format!("a {} byte sample", data.len())))?;
        if let (true, TrackKind::Audio { channels, .. }) = (t.is_pcm(), t.kind)
            && u64::from(size) != u64::from(duration) * u64::from(channels) * 2
        {
            return Err(WriteError::Mux(format!(
                "a PCM packet of {size} bytes is not {duration} frames of {channels} channels"
            )));
        }
        t.spool.write_all(data).map_err(|e| io_error(&dest, e))?;
        t.samples.push(Sample {
            spool_offset: t.spooled,
            size,
            duration,
            sync,
        });
        t.spooled += u64::from(size);
        Ok(())
    }

    /// Samples written to a track so far.
    pub fn samples(&self, track: TrackId) -> u64 {
        self.tracks
            .get(track.0)
            .map_or(0, |t| t.samples.len() as u64)
    }

    fn track_mut(&mut self, track: TrackId) -> Result<&mut Track, WriteError> {
        self.tracks
            .get_mut(track.0)
            .ok_or_else(|| WriteError::InvalidSettings(format!("no track {}", track.0)))
    }

    /// Writes the file and renames it into place.
    pub fn finish(self) -> Result<MuxSummary, WriteError> {
        self.finish_verified(|_| Ok(()))
    }

    /// Like [`Mp4Muxer::finish`], but first calls `verify` on the complete temporary file;
    /// if it fails the file is deleted and the destination is left as it was.
    pub fn finish_verified(
        mut self,
        verify: impl FnOnce(&Path) -> Result<(), WriteError>,
    ) -> Result<MuxSummary, WriteError> {
        let dest = self.file.dest().to_path_buf();
        if self.tracks.is_empty() || self.tracks.iter().any(|t| t.samples.is_empty()) {
            return Err(WriteError::InvalidSettings("a track has no samples".into()));
        }
        if let Some(t) = self.tracks.iter().find(|t| t.codec.is_none()) {
            return Err(WriteError::InvalidSettings(format!(
                "the {:?} track has no codec",
                t.kind
            )));
        }
        if self.container == Container::Mp4 && self.tracks.iter().any(Track::needs_mov) {
            return Err(WriteError::InvalidSettings(
                "PCM audio and ProRes video need a MOV file (.mov)".into(),
            ));
        }
        for t in &mut self.tracks {
            t.spool.flush().map_err(|e| io_error(&dest, e))?;
        }
        let chunks = self.chunks();
        let ftyp = self.ftyp();
        let mut head = Vec::new();
        ftyp.encode(&mut head).map_err(atom_error)?;
        let payload: u64 = chunks.iter().map(|c| c.bytes).sum();
        let large_mdat = payload + 8 > u64::from(u32::MAX);
        let mdat_header = if large_mdat { 16 } else { 8 };
        // The moov's size does not depend on the offsets it holds (fixed-width entries), so
        // one encode with zero offsets measures it; a file past 4 GiB needs co64.
        let mut moov_len = encoded_len(&self.moov(&chunks, 0, false))?;
        let co64 = head.len() as u64 + moov_len + mdat_header + payload > u64::from(u32::MAX);
        if co64 {
            moov_len = encoded_len(&self.moov(&chunks, 0, true))?;
        }
        let base = head.len() as u64 + moov_len + mdat_header;
        let moov_at = head.len();
        self.moov(&chunks, base, co64)
            .encode(&mut head)
            .map_err(atom_error)?;
        let codes: Vec<Option<[u8; 4]>> = self
            .tracks
            .iter()
            .map(|t| match t.codec {
                Some(TrackCodec::ProRes { fourcc }) => Some(fourcc),
                _ => None,
            })
            .collect();
        boxes::name_entries(&mut head[moov_at..], &codes)?;
        if large_mdat {
            head.extend_from_slice(&1u32.to_be_bytes());
            head.extend_from_slice(b"mdat");
            head.extend_from_slice(&(payload + 16).to_be_bytes());
        } else {
            head.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
            head.extend_from_slice(b"mdat");
        }
        if head.len() as u64 != base {
            return Err(WriteError::Mux("moov size changed between passes".into()));
        }
        let mut out = BufWriter::with_capacity(1 << 20, self.file.file_mut());
        out.write_all(&head).map_err(|e| io_error(&dest, e))?;
        let mut buf = Vec::new();
        for c in &chunks {
            buf.resize(c.bytes as usize, 0);
            let spool = self.tracks[c.track].spool.get_ref();
            spool
                .read_exact_at(&mut buf, c.spool_offset)
                .map_err(|e| io_error(&dest, e))?;
            out.write_all(&buf).map_err(|e| io_error(&dest, e))?;
        }
        out.flush().map_err(|e| io_error(&dest, e))?;
        drop(out);
        verify(self.file.temp_path())?;
        let samples = self.tracks.iter().map(|t| t.samples.len() as u64).collect();
        self.file.commit().map_err(|e| io_error(&dest, e))?;
        let bytes = std::fs::metadata(&dest)
            .map_err(|e| io_error(&dest, e))?
            .len();
        Ok(MuxSummary {
            path: dest,
            bytes,
            samples,
        })
    }

    /// Every track cut into chunks of at most [`CHUNK_SECONDS`], ordered by start time
    /// (video before audio at a tie).
    fn chunks(&self) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            let limit = (CHUNK_SECONDS * f64::from(t.timescale)).max(1.0) as u64;
            let mut time = 0u64;
            let mut i = 0;
            while i < t.samples.len() {
                let (first, start) = (i, time);
                let mut bytes = 0;
                while i < t.samples.len() && (i == first || time - start < limit) {
                    bytes += u64::from(t.samples[i].size);
                    time += u64::from(t.samples[i].duration);
                    i += 1;
                }
                chunks.push(Chunk {
                    track: ti,
                    first,
                    count: i - first,
                    start: start as f64 / f64::from(t.timescale),
                    spool_offset: t.samples[first].spool_offset,
                    bytes,
                });
            }
        }
        chunks.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.track.cmp(&b.track)));
        chunks
    }

    fn ftyp(&self) -> mp4_atom::Ftyp {
        match self.container {
            Container::Mov => mp4_atom::Ftyp {
                major_brand: FourCC::new(b"qt  "),
                minor_version: 0x200,
                compatible_brands: vec![FourCC::new(b"qt  ")],
            },
            Container::Mp4 => {
                let mut brands = vec![FourCC::new(b"isom"), FourCC::new(b"iso2")];
                for t in &self.tracks {
                    match t.codec {
                        Some(TrackCodec::Avc { .. }) => brands.push(FourCC::new(b"avc1")),
                        Some(TrackCodec::Av1(_)) => brands.push(FourCC::new(b"av01")),
                        Some(TrackCodec::Opus { .. }) => brands.push(FourCC::new(b"Opus")),
                        _ => {}
                    }
                }
                brands.push(FourCC::new(b"mp41"));
                mp4_atom::Ftyp {
                    major_brand: FourCC::new(b"isom"),
                    minor_version: 0x200,
                    compatible_brands: brands,
                }
            }
        }
    }

    /// The movie timescale: the first video track's (so its frame durations are exact).
    fn movie_timescale(&self) -> u32 {
        self.tracks
            .iter()
            .find(|t| matches!(t.kind, TrackKind::Video { .. }))
            .or(self.tracks.first())
            .map_or(1000, |t| t.timescale)
    }

    fn moov(&self, chunks: &[Chunk], base: u64, co64: bool) -> mp4_atom::Moov {
        let movie = self.movie_timescale();
        let mut offsets: Vec<Vec<u64>> = vec![Vec::new(); self.tracks.len()];
        let mut at = base;
        for c in chunks {
            offsets[c.track].push(at);
            at += c.bytes;
        }
        let mut traks = Vec::new();
        let mut movie_duration = 0;
        for (i, t) in self.tracks.iter().enumerate() {
            let own: Vec<&Chunk> = chunks.iter().filter(|c| c.track == i).collect();
            let presented = rescale(t.presented(), t.timescale, movie);
            movie_duration = movie_duration.max(presented);
            traks.push(boxes::trak(
                t,
                i as u32 + 1,
                &own,
                &offsets[i],
                co64,
                presented,
            ));
        }
        mp4_atom::Moov {
            mvhd: mp4_atom::Mvhd {
                creation_time: 0,
                modification_time: 0,
                timescale: movie,
                duration: movie_duration,
                rate: 1.into(),
                volume: 1.into(),
                matrix: boxes::identity(),
                next_track_id: self.tracks.len() as u32 + 1,
            },
            trak: traks,
            ..Default::default()
        }
    }
}

/// `ticks` from one timescale to another, rounded up (a duration never comes out short).
fn rescale(ticks: u64, from: u32, to: u32) -> u64 {
    (u128::from(ticks) * u128::from(to)).div_ceil(u128::from(from)) as u64
}

fn encoded_len(moov: &mp4_atom::Moov) -> Result<u64, WriteError> {
    let mut buf = Vec::new();
    moov.encode(&mut buf).map_err(atom_error)?;
    Ok(buf.len() as u64)
}

fn atom_error(e: mp4_atom::Error) -> WriteError {
    WriteError::Mux(e.to_string())
}

fn io_error(path: &Path, source: std::io::Error) -> WriteError {
    WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

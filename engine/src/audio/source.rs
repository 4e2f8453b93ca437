//! One media file's audio, decoded with symphonia: open, then read any range of frames (a
//! frame = one sample per channel) at the file's own rate and channels, sample-exact after a
//! seek.
//!
//! Positions come from the packets' timestamps, not from counting decoded frames, so a seek
//! lands on the exact frame: the reader seeks a little before the frame asked for (codecs
//! with overlapping transforms, like AAC, need the packet before to decode a packet right),
//! decodes forward and drops what lies before it. Encoder delay and padding are trimmed as
//! the container says (`Packet::trim_start` / `trim_end`). A packet that does not decode is
//! skipped and counted ([`AudioSource::corrupt_packets`]); its frames read as silence, so
//! everything after it stays in place.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Timestamp;

use super::AudioError;

/// Frames decoded before the one asked for after a seek (and thrown away): more than one
/// AAC packet (1024 frames) and its overlap.
const PREROLL: u64 = 4096;

/// Packets that fail in a row, before any decoded, that make the stream unsupported rather
/// than damaged.
const GIVE_UP: u32 = 16;

/// A file's audio track, ready to read.
pub struct AudioSource {
    path: PathBuf,
    backend: Backend,
    rate: u32,
    channels: usize,
    frames: Option<u64>,
    /// The next frame a sequential read would return without seeking, and what was decoded
    /// past the end of the last read (interleaved), starting at that frame.
    cursor: Option<u64>,
    carry: Vec<f32>,
    corrupt: u64,
    scratch: Vec<f32>,
}

/// What decodes: symphonia, or (the `ffmpeg` feature) libav for what symphonia cannot.
enum Backend {
    Symphonia(Symphonia),
    #[cfg(feature = "ffmpeg")]
    Libav(super::libav::LibavAudio),
}

/// One step of a backend's decoding.
pub(super) enum Run {
    /// Frames from this frame on are in the scratch buffer (interleaved).
    At(i64),
    /// A packet that gave nothing to place (another track, a damaged packet: counted).
    Nothing,
    /// The end of the track.
    End,
}

struct Symphonia {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track: u32,
    /// Track timestamps per frame: `frame = ts * tb.0 / tb.1`.
    tb: (u64, u64),
    /// Frames added to the container's positions: the MP4 edit list's delay minus its
    /// `media_time` (the encoder's priming frames, which the edit list hides).
    shift: i64,
    /// Packets failed in a row, and whether any packet ever decoded.
    failing: u32,
    decoded_any: bool,
}

impl std::fmt::Debug for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioSource")
            .field("path", &self.path)
            .field("backend", &self.backend_name())
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

fn sym_err(path: &Path) -> impl Fn(SymError) -> AudioError + '_ {
    move |e| match e {
        SymError::IoError(source) => AudioError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// What symphonia opened: the reader, its rate, channels and frame count.
type Opened = (Symphonia, u32, usize, Option<u64>);

fn open_symphonia(path: &Path) -> Result<Opened, AudioError> {
    let file = File::open(path).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // A malformed container must be an error, never a panic of the caller's thread.
    let probed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        symphonia::default::get_probe().probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
    }))
    .map_err(|_| AudioError::Unsupported {
        path: path.to_path_buf(),
        reason: "malformed container (the reader gave up)".into(),
    })?;
    let format = probed.map_err(sym_err(path))?;
    let Some(track) = format.default_track(TrackType::Audio) else {
        return Err(AudioError::NoAudio(path.to_path_buf()));
    };
    let Some(params) = track.codec_params.as_ref().and_then(|p| p.audio()) else {
        return Err(AudioError::NoAudio(path.to_path_buf()));
    };
    let rate = params.sample_rate.unwrap_or(0);
    let channels = params.channels.as_ref().map_or(0, |c| c.count());
    if rate == 0 || channels == 0 {
        return Err(AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "the audio track has no sample rate or channel layout".into(),
        });
    }
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(sym_err(path))?;
    // ts per frame = rate / (tb.denom / tb.numer) = rate * numer / denom.
    let tb = track.time_base.map_or((1, 1), |tb| {
        (
            u64::from(tb.denom.get()),
            u64::from(tb.numer.get()) * u64::from(rate),
        )
    });
    // symphonia's MP4 reader does not apply edit lists: apply the first edit here.
    let shift = crate::media::audio_edit(path).map_or(0, |(ticks, timescale)| {
        (i128::from(ticks) * i128::from(rate) / i128::from(timescale.max(1))) as i64
    });
    let frames = track
        .num_frames
        .or_else(|| track.duration.map(|d| d.get() * tb.0 / tb.1.max(1)))
        .map(|n| n.saturating_add_signed(shift));
    let track_id = track.id;
    Ok((
        Symphonia {
            format,
            decoder,
            track: track_id,
            tb,
            shift,
            failing: 0,
            decoded_any: false,
        },
        rate,
        channels,
        frames,
    ))
}

impl AudioSource {
    /// Opens the default audio track of `path`: with symphonia (MP4/MOV, WAV, OGG, MP3,
    /// FLAC; AAC-LC, MP3, FLAC, Vorbis, PCM), and with the `ffmpeg` feature through libav
    /// what symphonia cannot read (Opus, AC-3, E-AC-3, HE-AAC, Matroska …).
    /// [`AudioError::NoAudio`] when the file has none.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref();
        let (backend, rate, channels, frames) = match open_symphonia(path) {
            Ok((s, rate, channels, frames)) => (Backend::Symphonia(s), rate, channels, frames),
            // An MP4/MOV whose boxes show no sound track has none for libav either (and
            // opening it there probes the video, which costs a decode or two).
            #[cfg(feature = "ffmpeg")]
            Err(AudioError::NoAudio(_))
                if crate::media::Mp4Demuxer::open(path).is_ok_and(|d| d.audio().is_none()) =>
            {
                return Err(AudioError::NoAudio(path.to_path_buf()));
            }
            #[cfg(feature = "ffmpeg")]
            Err(AudioError::Unsupported { .. } | AudioError::NoAudio(_)) => {
                let l = super::libav::LibavAudio::open(path)?;
                let (rate, channels, frames) = (l.rate(), l.channels(), l.frames());
                (Backend::Libav(l), rate, channels, frames)
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.to_path_buf(),
            backend,
            rate,
            channels,
            frames,
            cursor: None,
            carry: Vec::new(),
            corrupt: 0,
            scratch: Vec::new(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which decoder reads it: `symphonia` or `ffmpeg`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Symphonia(_) => "symphonia",
            #[cfg(feature = "ffmpeg")]
            Backend::Libav(_) => "ffmpeg",
        }
    }

    /// Sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Channels (interleaved in what [`AudioSource::read`] returns).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames in the track, when the container says.
    pub fn frames(&self) -> Option<u64> {
        self.frames
    }

    /// Packets that did not decode (their frames read as silence).
    pub fn corrupt_packets(&self) -> u64 {
        self.corrupt
    }

    /// Reads `frames` frames from frame `start` into `out` (interleaved, `channels` per
    /// frame, appended). Past the end of the track the rest is silence. Sequential reads do
    /// not seek.
    pub fn read(
        &mut self,
        start: u64,
        frames: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), AudioError> {
        let ch = self.channels;
        let base = out.len();
        out.resize(base + frames * ch, 0.0);
        let end = start + frames as u64;
        // The decode position: continue where the last read stopped, or seek.
        let mut pos = match self.cursor {
            Some(c) if c == start => c,
            _ => {
                self.carry.clear();
                let at = start.saturating_sub(PREROLL);
                match &mut self.backend {
                    Backend::Symphonia(s) => s.seek(&self.path, at)?,
                    #[cfg(feature = "ffmpeg")]
                    Backend::Libav(l) => l.seek(at)?,
                }
            }
        };
        // What was decoded past the last read's end first.
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            pos = self.consume(&carry, pos, start, end, base, out);
        }
        while pos < end {
            self.scratch.clear();
            let run = match &mut self.backend {
                Backend::Symphonia(s) => {
                    s.next_run(&self.path, ch, &mut self.scratch, &mut self.corrupt)?
                }
                #[cfg(feature = "ffmpeg")]
                Backend::Libav(l) => l.next_run(&mut self.scratch, &mut self.corrupt)?,
            };
            let first = match run {
                Run::At(first) => first,
                Run::Nothing => continue,
                Run::End => break,
            };
            let mut data = std::mem::take(&mut self.scratch);
            let first = match u64::try_from(first) {
                Ok(f) => f,
                Err(_) => {
                    // Encoder delay before the track's start: only what reaches frame 0 counts.
                    let before = (first.unsigned_abs() as usize * ch).min(data.len());
                    data.drain(..before);
                    0
                }
            };
            pos = self.consume(&data, first, start, end, base, out);
            self.scratch = data;
        }
        self.cursor = Some(end);
        Ok(())
    }

    /// Places a decoded run starting at frame `first` into the read window, keeps what lies
    /// past its end for the next read, and returns the frame after the run.
    fn consume(
        &mut self,
        data: &[f32],
        first: u64,
        start: u64,
        end: u64,
        base: usize,
        out: &mut [f32],
    ) -> u64 {
        let ch = self.channels;
        let n = (data.len() / ch) as u64;
        self.place(data, first, start, end, &mut out[base..]);
        if first + n > end {
            let from = (end.saturating_sub(first) as usize) * ch;
            self.carry = data[from.min(data.len())..].to_vec();
        }
        first + n
    }

    /// Copies the part of `data` (frames from `first`) inside `start..end` into `window`.
    fn place(&self, data: &[f32], first: u64, start: u64, end: u64, window: &mut [f32]) {
        let ch = self.channels;
        let n = (data.len() / ch) as u64;
        let lo = first.max(start);
        let hi = (first + n).min(end);
        if lo >= hi {
            return;
        }
        let src = ((lo - first) as usize) * ch..((hi - first) as usize) * ch;
        let dst = ((lo - start) as usize) * ch..((hi - start) as usize) * ch;
        window[dst].copy_from_slice(&data[src]);
    }
}

impl Symphonia {
    /// A duration in track ticks as frames.
    fn ticks_to_frames(&self, ticks: i64) -> i64 {
        ((i128::from(ticks) * i128::from(self.tb.0)) / i128::from(self.tb.1.max(1))) as i64
    }

    /// A packet timestamp as the frame it presents (edit list applied).
    fn ts_to_frame(&self, ts: i64) -> i64 {
        self.ticks_to_frames(ts) + self.shift
    }

    fn frame_to_ts(&self, frame: u64) -> i64 {
        let f = i128::from(frame) - i128::from(self.shift);
        ((f.max(0) * i128::from(self.tb.1)) / i128::from(self.tb.0.max(1))) as i64
    }

    /// Decodes the next packet of the track into `out` (interleaved, `ch` channels).
    fn next_run(
        &mut self,
        path: &Path,
        ch: usize,
        out: &mut Vec<f32>,
        corrupt: &mut u64,
    ) -> Result<Run, AudioError> {
        let packet = match self.format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Run::End),
            Err(SymError::DecodeError(_)) => {
                *corrupt += 1;
                return Ok(Run::Nothing);
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(Run::End);
            }
            Err(e) => return Err(sym_err(path)(e)),
        };
        if packet.track_id != self.track {
            return Ok(Run::Nothing);
        }
        let first = self.ts_to_frame(packet.pts.get());
        let valid = self.ticks_to_frames(packet.dur.get() as i64).max(0) as usize;
        let trim_start = self.ticks_to_frames(packet.trim_start.get() as i64).max(0) as usize;
        let trim_end = self.ticks_to_frames(packet.trim_end.get() as i64).max(0) as usize;
        match self.decoder.decode(&packet) {
            Ok(buf) => {
                self.decoded_any = true;
                self.failing = 0;
                buf.copy_to_vec_interleaved(out);
                let decoded = buf.frames();
                // Some decoders trim delay and padding themselves, others leave it.
                let (skip, take) = if decoded == valid + trim_start + trim_end {
                    (trim_start, valid)
                } else {
                    (0, decoded)
                };
                let lo = (skip * ch).min(out.len());
                let hi = ((skip + take) * ch).min(out.len());
                out.truncate(hi);
                out.drain(..lo);
                Ok(Run::At(first))
            }
            Err(SymError::IoError(e)) => Err(AudioError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
            Err(e) => {
                // Skipped: its frames stay silent, the next packets keep their places.
                // Damaged data can read as any error ("unsupported feature" too); a stream
                // that never decoded a packet is not damaged but unsupported.
                *corrupt += 1;
                self.failing += 1;
                self.decoder.reset();
                if !self.decoded_any && self.failing >= GIVE_UP {
                    return Err(AudioError::Unsupported {
                        path: path.to_path_buf(),
                        reason: format!("no packet decodes: {e}"),
                    });
                }
                Ok(Run::Nothing)
            }
        }
    }

    /// Seeks to at most `frame` and returns the frame decoding continues from.
    fn seek(&mut self, path: &Path, frame: u64) -> Result<u64, AudioError> {
        let ts = Timestamp::new(self.frame_to_ts(frame));
        let seeked = self.format.seek(
            SeekMode::Accurate,
            SeekTo::Timestamp {
                ts,
                track_id: self.track,
            },
        );
        self.decoder.reset();
        match seeked {
            Ok(s) => Ok(self.ts_to_frame(s.actual_ts.get()).max(0) as u64),
            // Past the end: nothing more to decode.
            Err(SymError::SeekError(_)) => Ok(frame),
            Err(e) => Err(sym_err(path)(e)),
        }
    }
}

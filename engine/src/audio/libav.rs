//! Audio symphonia cannot decode, through Debian's libav (cargo feature `ffmpeg`): Opus,
//! AC-3/E-AC-3, HE-AAC, and containers symphonia does not read (Matroska/WebM, raw AC-3 …).
//! libavformat demuxes and applies the container's edit list and priming (the decoder drops
//! the priming samples and moves the frame times past them), so frame positions here are
//! already the presented ones; [`AudioSource`](super::AudioSource) does the windowing.

use std::path::{Path, PathBuf};

use ffmpeg_next as av;

use super::AudioError;
use super::source::Run;

/// An open libav demuxer and decoder of one audio stream.
pub(super) struct LibavAudio {
    path: PathBuf,
    input: av::format::context::Input,
    decoder: av::codec::decoder::Audio,
    stream: usize,
    /// Stream time base as (num, den).
    tb: (i64, i64),
    rate: u32,
    channels: usize,
    frames: Option<u64>,
    frame: av::frame::Audio,
    /// Where the next decoded frame goes when it carries no timestamp.
    next: Option<i64>,
    /// Packets sent and frames still to drain at the end.
    flushed: bool,
    failing: u32,
    decoded_any: bool,
}

fn unsupported(path: &Path, reason: impl std::fmt::Display) -> AudioError {
    AudioError::Unsupported {
        path: path.to_path_buf(),
        reason: format!("libav: {reason}"),
    }
}

impl LibavAudio {
    /// Opens the best audio stream of `path`.
    pub(super) fn open(path: &Path) -> Result<Self, AudioError> {
        crate::media::decode::ffmpeg::init();
        if let Err(source) = std::fs::metadata(path) {
            return Err(AudioError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
        let input = av::format::input(&path).map_err(|e| unsupported(path, e))?;
        let Some(stream) = input.streams().best(av::media::Type::Audio) else {
            return Err(AudioError::NoAudio(path.to_path_buf()));
        };
        let index = stream.index();
        let tb = stream.time_base();
        let tb = (
            i64::from(tb.numerator()),
            i64::from(tb.denominator()).max(1),
        );
        let context = av::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| unsupported(path, e))?;
        let mut decoder = context
            .decoder()
            .audio()
            .map_err(|e| unsupported(path, e))?;
        // Frame times in the stream's time base, moved past the priming samples it drops.
        decoder.set_packet_time_base(stream.time_base());
        let rate = decoder.rate();
        let channels = usize::from(decoder.channels());
        if rate == 0 || channels == 0 {
            return Err(unsupported(path, "no sample rate or channel layout"));
        }
        let duration = stream.duration();
        let frames = (duration > 0).then(|| {
            (i128::from(duration) * i128::from(tb.0) * i128::from(rate) / i128::from(tb.1)) as u64
        });
        Ok(Self {
            path: path.to_path_buf(),
            input,
            decoder,
            stream: index,
            tb,
            rate,
            channels,
            frames,
            frame: av::frame::Audio::empty(),
            next: None,
            flushed: false,
            failing: 0,
            decoded_any: false,
        })
    }

    pub(super) fn rate(&self) -> u32 {
        self.rate
    }

    pub(super) fn channels(&self) -> usize {
        self.channels
    }

    pub(super) fn frames(&self) -> Option<u64> {
        self.frames
    }

    fn ts_to_frame(&self, ts: i64) -> i64 {
        (i128::from(ts) * i128::from(self.tb.0) * i128::from(self.rate) / i128::from(self.tb.1))
            as i64
    }

    /// Seeks to at most `frame`; returns the frame decoding continues from (the first
    /// decoded frame's time says exactly, so this is a lower bound that the next runs
    /// correct).
    pub(super) fn seek(&mut self, frame: u64) -> Result<u64, AudioError> {
        // avformat_seek_file with no stream: AV_TIME_BASE (µs) units, at or before.
        let us = (i128::from(frame) * 1_000_000 / i128::from(self.rate.max(1))) as i64;
        self.decoder.flush();
        self.flushed = false;
        self.next = None;
        // Past the end (or a stream that cannot seek) there is nothing before it to decode;
        // either way the decoded frames' own times place them.
        let _ = self.input.seek(us, ..us);
        Ok(frame)
    }

    /// Decodes until one frame of samples is out (appended to `out`, interleaved).
    pub(super) fn next_run(
        &mut self,
        out: &mut Vec<f32>,
        corrupt: &mut u64,
    ) -> Result<Run, AudioError> {
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => {
                    self.decoded_any = true;
                    self.failing = 0;
                    let at = match self.frame.timestamp().or(self.frame.pts()) {
                        Some(ts) => self.ts_to_frame(ts),
                        None => self.next.unwrap_or(0),
                    };
                    let n = self.frame.samples();
                    self.next = Some(at + n as i64);
                    interleave(&self.frame, self.channels, out)
                        .map_err(|why| unsupported(&self.path, why))?;
                    return Ok(Run::At(at));
                }
                Err(av::Error::Eof) => return Ok(Run::End),
                Err(av::Error::Other {
                    errno: av::util::error::EAGAIN,
                }) => {}
                Err(e) => {
                    *corrupt += 1;
                    self.fail(e)?;
                    return Ok(Run::Nothing);
                }
            }
            // The decoder wants input.
            if self.flushed {
                return Ok(Run::End);
            }
            let mut sent = false;
            while let Some((stream, packet)) = self.input.packets().next() {
                if stream.index() != self.stream {
                    continue;
                }
                match self.decoder.send_packet(&packet) {
                    Ok(()) => {}
                    Err(e) => {
                        *corrupt += 1;
                        self.fail(e)?;
                    }
                }
                sent = true;
                break;
            }
            if !sent {
                // The end (or unreadable rest): drain what the decoder holds.
                self.flushed = true;
                let _ = self.decoder.send_eof();
            }
        }
    }

    /// A packet that did not decode; a stream that never decodes is unsupported.
    fn fail(&mut self, e: av::Error) -> Result<(), AudioError> {
        self.failing += 1;
        if !self.decoded_any && self.failing >= 16 {
            return Err(unsupported(&self.path, format!("no packet decodes: {e}")));
        }
        Ok(())
    }
}

/// Appends `frame`'s samples to `out` as interleaved f32, whatever libav's sample format.
fn interleave(frame: &av::frame::Audio, channels: usize, out: &mut Vec<f32>) -> Result<(), String> {
    use av::format::Sample;
    use av::format::sample::Type;
    let n = frame.samples();
    let (size, read): (usize, fn(&[u8]) -> f32) = match frame.format() {
        Sample::U8(_) => (1, |b| (f32::from(b[0]) - 128.0) / 128.0),
        Sample::I16(_) => (2, |b| f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32768.0),
        Sample::I32(_) => (4, |b| {
            i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
        }),
        Sample::F32(_) => (4, |b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        Sample::F64(_) => (8, |b| {
            f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }),
        other => return Err(format!("sample format {other:?}")),
    };
    let base = out.len();
    out.resize(base + n * channels, 0.0);
    let dst = &mut out[base..];
    match frame.format() {
        Sample::U8(Type::Planar)
        | Sample::I16(Type::Planar)
        | Sample::I32(Type::Planar)
        | Sample::F32(Type::Planar)
        | Sample::F64(Type::Planar) => {
            for c in 0..channels.min(frame.planes()) {
                let plane = frame.data(c);
                let plane = plane.get(..n * size).ok_or("short plane")?;
                for (i, b) in plane.chunks_exact(size).enumerate() {
                    dst[i * channels + c] = read(b);
                }
            }
        }
        _ => {
            let plane = frame.data(0);
            let plane = plane.get(..n * channels * size).ok_or("short frame")?;
            for (d, b) in dst.iter_mut().zip(plane.chunks_exact(size)) {
                *d = read(b);
            }
        }
    }
    Ok(())
}

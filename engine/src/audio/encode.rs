//! Audio encoding for export: Opus (libopus, every build), 16-bit PCM (no encoder), and AAC-LC
//! (libav's native encoder, with the `ffmpeg` feature).
//!
//! Why Opus in the default build: it is what browsers, ffmpeg and every current player decode
//! in MP4, it is transparent at 128–160 kb/s stereo where PCM takes 1536 kb/s, and libopus
//! is a small, well-kept C library in every distribution (Debian's `libopus-dev`, linked
//! through the `opus` crate). There is no AAC encoder in Rust or in a small C library; PCM
//! is offered for lossless masters (in MOV, as `sowt`).
//!
//! An encoder takes interleaved f32 samples in any block size and returns whole packets.
//! Its *delay* is the number of samples of the decoded stream that come before the first
//! sample fed in (Opus pre-skip, AAC priming); the muxer writes it as an edit list, so a
//! player starts exactly at the first sample. The last packet is padded with silence; the
//! edit list's duration cuts the padding off.

use framelock_components::AudioFormat;

use super::AudioError;
use crate::media::{Container, TrackCodec};

/// The audio codec of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioCodec {
    /// Opus at `bitrate` bits per second (48 kHz; mono or stereo).
    Opus {
        /// Bits per second.
        bitrate: u32,
    },
    /// AAC-LC at `bitrate` bits per second (libav's encoder: `ffmpeg` feature builds only).
    Aac {
        /// Bits per second.
        bitrate: u32,
    },
    /// Uncompressed signed 16-bit little-endian PCM, in a MOV.
    Pcm16,
}

impl AudioCodec {
    /// Opus at 160 kb/s.
    pub const OPUS: Self = Self::Opus { bitrate: 160_000 };
    /// AAC-LC at 192 kb/s.
    pub const AAC: Self = Self::Aac { bitrate: 192_000 };

    /// The container this codec needs: MOV for PCM, MP4 otherwise.
    pub fn container(self) -> Container {
        match self {
            Self::Pcm16 => Container::Mov,
            _ => Container::Mp4,
        }
    }

    /// The sample rate the codec encodes at, given the timeline's: Opus only takes 48 kHz
    /// (the mixer resamples to it), the others keep the timeline's.
    pub fn sample_rate(self, timeline: u32) -> u32 {
        match self {
            Self::Opus { .. } => 48_000,
            _ => timeline,
        }
    }

    /// Whether this build can encode it.
    pub fn available(self) -> bool {
        !matches!(self, Self::Aac { .. }) || cfg!(feature = "ffmpeg")
    }
}

impl std::fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Opus { bitrate } => write!(f, "opus {} kb/s", bitrate / 1000),
            Self::Aac { bitrate } => write!(f, "aac {} kb/s", bitrate / 1000),
            Self::Pcm16 => f.write_str("pcm s16le"),
        }
    }
}

/// One encoded packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioPacket {
    /// The packet's bytes.
    pub data: Vec<u8>,
    /// Frames (samples per channel) it decodes to.
    pub frames: u32,
}

enum Inner {
    Opus(Box<opus::Encoder>),
    Pcm,
    #[cfg(feature = "ffmpeg")]
    Aac(aac::AacEncoder),
}

/// An audio encoder; see the module docs.
pub struct AudioEncoder {
    inner: Inner,
    codec: AudioCodec,
    format: AudioFormat,
    /// Frames per packet.
    packet: usize,
    delay: u32,
    track: TrackCodec,
    pending: Vec<f32>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("codec", &self.codec)
            .field("format", &self.format)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

fn unsupported(reason: impl Into<String>) -> AudioError {
    AudioError::Unsupported {
        path: "export".into(),
        reason: reason.into(),
    }
}

impl AudioEncoder {
    /// An encoder for `codec` taking samples in `format` (whose rate must be
    /// [`AudioCodec::sample_rate`]'s).
    pub fn new(codec: AudioCodec, format: AudioFormat) -> Result<Self, AudioError> {
        if format.channels == 0 {
            return Err(unsupported("audio with no channels"));
        }
        let (inner, packet, delay, track) = match codec {
            AudioCodec::Opus { bitrate } => {
                let channels = match format.channels {
                    1 => opus::Channels::Mono,
                    2 => opus::Channels::Stereo,
                    n => {
                        return Err(unsupported(format!(
                            "Opus export is mono or stereo, the timeline has {n} channels \
                             (use aac or pcm)"
                        )));
                    }
                };
                if format.sample_rate != 48_000 {
                    return Err(unsupported("Opus is encoded at 48 kHz"));
                }
                let opus_err = |e: opus::Error| unsupported(format!("libopus: {e}"));
                let mut enc = opus::Encoder::new(48_000, channels, opus::Application::Audio)
                    .map_err(opus_err)?;
                enc.set_bitrate(opus::Bitrate::Bits(bitrate.clamp(6_000, 510_000) as i32))
                    .map_err(opus_err)?;
                let lookahead = enc.get_lookahead().map_err(opus_err)?;
                let pre_skip = u16::try_from(lookahead).unwrap_or(312);
                (
                    Inner::Opus(Box::new(enc)),
                    960,
                    u32::from(pre_skip),
                    TrackCodec::Opus { pre_skip },
                )
            }
            AudioCodec::Pcm16 => (Inner::Pcm, 1024, 0, TrackCodec::Pcm16),
            #[cfg(feature = "ffmpeg")]
            AudioCodec::Aac { bitrate } => {
                let enc = aac::AacEncoder::new(format, bitrate)?;
                let (packet, delay) = (enc.frame_size(), enc.delay());
                let config = enc.config();
                (
                    Inner::Aac(enc),
                    packet,
                    delay,
                    TrackCodec::Aac { config, bitrate },
                )
            }
            #[cfg(not(feature = "ffmpeg"))]
            AudioCodec::Aac { .. } => {
                return Err(unsupported(
                    "AAC export needs a build with the `ffmpeg` feature (use opus or pcm)",
                ));
            }
        };
        Ok(Self {
            inner,
            codec,
            format,
            packet,
            delay,
            track,
            pending: Vec::new(),
            scratch: vec![0; 4000],
        })
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The format samples are taken in.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Frames of the decoded stream before the first frame fed in.
    pub fn delay(&self) -> u32 {
        self.delay
    }

    /// The track's codec description for the muxer.
    pub fn track_codec(&self) -> TrackCodec {
        self.track.clone()
    }

    /// Encodes `samples` (interleaved), appending whole packets to `out`; a partial packet
    /// waits for more samples or [`AudioEncoder::finish`].
    pub fn encode(
        &mut self,
        samples: &[f32],
        out: &mut Vec<AudioPacket>,
    ) -> Result<(), AudioError> {
        self.pending.extend_from_slice(samples);
        let n = self.packet * usize::from(self.format.channels);
        let whole = self.pending.len() / n * n;
        let block = std::mem::take(&mut self.pending);
        for chunk in block[..whole].chunks_exact(n) {
            self.packet_into(chunk, out)?;
        }
        self.pending = block[whole..].to_vec();
        Ok(())
    }

    /// Pads what is left with silence into a last packet and drains the encoder.
    pub fn finish(&mut self, out: &mut Vec<AudioPacket>) -> Result<(), AudioError> {
        let ch = usize::from(self.format.channels);
        if !self.pending.is_empty() {
            let frames = self.pending.len() / ch;
            if matches!(self.inner, Inner::Pcm) {
                let rest = std::mem::take(&mut self.pending);
                out.push(pcm_packet(&rest, frames));
            } else {
                self.pending.resize(self.packet * ch, 0.0);
                let rest = std::mem::take(&mut self.pending);
                self.packet_into(&rest, out)?;
            }
        }
        // The delay is samples the decoder drops: feed silence until the samples fed in are
        // all out of the encoder's look-ahead.
        match &mut self.inner {
            Inner::Opus(_) => {
                let silence = vec![0.0; self.packet * ch];
                let tail = (self.delay as usize).div_ceil(self.packet);
                for _ in 0..tail {
                    self.packet_into(&silence, out)?;
                }
            }
            Inner::Pcm => {}
            #[cfg(feature = "ffmpeg")]
            Inner::Aac(enc) => enc.flush(out)?,
        }
        Ok(())
    }

    fn packet_into(
        &mut self,
        samples: &[f32],
        out: &mut Vec<AudioPacket>,
    ) -> Result<(), AudioError> {
        let frames = samples.len() / usize::from(self.format.channels);
        match &mut self.inner {
            Inner::Opus(enc) => {
                let len = enc
                    .encode_float(samples, &mut self.scratch)
                    .map_err(|e| unsupported(format!("libopus: {e}")))?;
                out.push(AudioPacket {
                    data: self.scratch[..len].to_vec(),
                    frames: frames as u32,
                });
            }
            Inner::Pcm => out.push(pcm_packet(samples, frames)),
            #[cfg(feature = "ffmpeg")]
            Inner::Aac(enc) => enc.encode(samples, out)?,
        }
        Ok(())
    }
}

/// Samples as s16le, rounded and clipped.
fn pcm_packet(samples: &[f32], frames: usize) -> AudioPacket {
    let mut data = Vec::with_capacity(samples.len() * 2);
    for &s in samples {
        let v = (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
        data.extend_from_slice(&v.to_le_bytes());
    }
    AudioPacket {
        data,
        frames: frames as u32,
    }
}

#[cfg(feature = "ffmpeg")]
mod aac {
    //! libav's native AAC-LC encoder (ffmpeg-next).

    use ffmpeg_next as ff;
    use framelock_components::AudioFormat;

    use super::{AudioError, AudioPacket, unsupported};

    pub(super) struct AacEncoder {
        enc: ff::encoder::Audio,
        channels: usize,
        frame_size: usize,
        pts: i64,
    }

    fn err(e: ff::Error) -> AudioError {
        unsupported(format!("libav aac: {e}"))
    }

    impl AacEncoder {
        pub(super) fn new(format: AudioFormat, bitrate: u32) -> Result<Self, AudioError> {
            ff::init().map_err(err)?;
            let codec = ff::encoder::find(ff::codec::Id::AAC)
                .ok_or_else(|| unsupported("this libav has no AAC encoder"))?;
            let mut enc = ff::codec::context::Context::new_with_codec(codec)
                .encoder()
                .audio()
                .map_err(err)?;
            let layout = ff::ChannelLayout::default(i32::from(format.channels));
            enc.set_rate(format.sample_rate as i32);
            enc.set_channel_layout(layout);
            enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
            enc.set_bit_rate(bitrate as usize);
            enc.set_time_base(ff::Rational::new(1, format.sample_rate as i32));
            // Global header: the AudioSpecificConfig goes into extradata (esds), not ADTS.
            enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
            let enc = enc.open_as(codec).map_err(err)?;
            let frame_size = (enc.frame_size() as usize).max(1);
            Ok(Self {
                enc,
                channels: usize::from(format.channels),
                frame_size,
                pts: 0,
            })
        }

        pub(super) fn frame_size(&self) -> usize {
            self.frame_size
        }

        /// The encoder's priming samples (`initial_padding`, 1024 for libav's AAC).
        pub(super) fn delay(&self) -> u32 {
            // SAFETY: the context is open and owned by `self.enc`; reading a field.
            let padding = unsafe { (*self.enc.as_ptr()).initial_padding };
            u32::try_from(padding).unwrap_or(1024)
        }

        /// The AudioSpecificConfig.
        pub(super) fn config(&self) -> Vec<u8> {
            // SAFETY: extradata is `extradata_size` bytes owned by the open context.
            unsafe {
                let ctx = self.enc.as_ptr();
                if (*ctx).extradata.is_null() || (*ctx).extradata_size <= 0 {
                    return vec![0x11, 0x90];
                }
                std::slice::from_raw_parts((*ctx).extradata, (*ctx).extradata_size as usize)
                    .to_vec()
            }
        }

        pub(super) fn encode(
            &mut self,
            samples: &[f32],
            out: &mut Vec<AudioPacket>,
        ) -> Result<(), AudioError> {
            let frames = samples.len() / self.channels;
            let mut frame = ff::frame::Audio::new(
                ff::format::Sample::F32(ff::format::sample::Type::Planar),
                frames,
                ff::ChannelLayout::default(self.channels as i32),
            );
            for c in 0..self.channels {
                let plane = frame.plane_mut::<f32>(c);
                for (i, v) in plane.iter_mut().enumerate().take(frames) {
                    *v = samples[i * self.channels + c];
                }
            }
            frame.set_pts(Some(self.pts));
            self.pts += frames as i64;
            self.enc.send_frame(&frame).map_err(err)?;
            self.receive(out)
        }

        pub(super) fn flush(&mut self, out: &mut Vec<AudioPacket>) -> Result<(), AudioError> {
            self.enc.send_eof().map_err(err)?;
            self.receive(out)
        }

        fn receive(&mut self, out: &mut Vec<AudioPacket>) -> Result<(), AudioError> {
            let mut packet = ff::Packet::empty();
            loop {
                match self.enc.receive_packet(&mut packet) {
                    // Every AAC packet decodes to one frame of `frame_size` samples.
                    Ok(()) => out.push(AudioPacket {
                        data: packet.data().map(<[u8]>::to_vec).unwrap_or_default(),
                        frames: self.frame_size as u32,
                    }),
                    Err(ff::Error::Other {
                        errno: ff::util::error::EAGAIN,
                    })
                    | Err(ff::Error::Eof) => return Ok(()),
                    Err(e) => return Err(err(e)),
                }
            }
        }
    }
}

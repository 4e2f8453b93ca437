//! The export's video codecs behind one face: an encoder per segment ([`SegmentEncoder`]) and
//! the muxer that joins the segments ([`VideoMux`]), for H.264 (openh264) and AV1 (rav1e).

use std::path::Path;

use framelock_engine::media::{
    Av1Config, Av1Encoder, Av1Frame, Av1Settings, Container, EncodeSettings, EncodedPicture,
    H264Encoder, H264Mp4Muxer, Mp4Muxer, Picture, TrackCodec, TrackId, WriteError, WriteSummary,
    frame_timescale,
};

use super::VideoCodec;

/// A segment's encoded frames, in order (serialisable: render nodes send it back whole).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) enum Encoded {
    H264(Vec<EncodedPicture>),
    Av1 {
        frames: Vec<Av1Frame>,
        config: Av1Config,
    },
}

impl Encoded {
    pub(super) fn frames(&self) -> u64 {
        match self {
            Self::H264(p) => p.len() as u64,
            Self::Av1 { frames, .. } => frames.len() as u64,
        }
    }
}

/// The AV1 settings an export's H.264 settings and codec choice come to: rav1e's quantizer
/// from the same quality scale (quality 100 → 40, 70 → 104, 0 → 255).
pub(super) fn av1_settings(settings: &EncodeSettings, quality: u8, speed: u8) -> Av1Settings {
    let q = u32::from(quality.min(100));
    Av1Settings {
        width: settings.width,
        height: settings.height,
        frame_rate: settings.frame_rate,
        quantizer: (40 + ((100 - q) * 215 + 50) / 100) as u8,
        speed,
        keyframe_interval: u64::from(settings.gop.max(1)),
    }
}

/// One segment's encoder (it starts with a keyframe: segments are closed GOPs).
pub(super) enum SegmentEncoder {
    H264(Box<H264Encoder>, Vec<EncodedPicture>),
    Av1(Box<Av1Encoder>, Vec<Av1Frame>),
}

impl SegmentEncoder {
    /// An encoder for a segment of `frames` frames.
    pub(super) fn new(
        codec: VideoCodec,
        settings: &EncodeSettings,
        quality: u8,
        frames: u64,
    ) -> Result<Self, WriteError> {
        let mut settings = *settings;
        settings.gop = u32::try_from(frames).unwrap_or(u32::MAX);
        Ok(match codec {
            VideoCodec::H264 => Self::H264(
                Box::new(H264Encoder::new(settings)?),
                Vec::with_capacity(frames as usize),
            ),
            VideoCodec::Av1 { speed } => Self::Av1(
                Box::new(Av1Encoder::new(av1_settings(&settings, quality, speed))?),
                Vec::with_capacity(frames as usize),
            ),
        })
    }

    pub(super) fn encode(&mut self, picture: &Picture) -> Result<(), WriteError> {
        match self {
            Self::H264(enc, out) => out.push(enc.encode(picture)?),
            Self::Av1(enc, out) => enc.encode(picture, out)?,
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<Encoded, WriteError> {
        match self {
            Self::H264(_, pictures) => Ok(Encoded::H264(pictures)),
            Self::Av1(mut enc, mut frames) => {
                enc.finish(&mut frames)?;
                let first = frames
                    .first()
                    .ok_or_else(|| WriteError::Encode("rav1e: no frame came out".into()))?;
                let config = enc.config(first)?;
                Ok(Encoded::Av1 { frames, config })
            }
        }
    }
}

/// The muxer of an export's video (and, through [`VideoMux::muxer_mut`], its audio).
pub(super) enum VideoMux {
    H264(H264Mp4Muxer),
    Av1 {
        muxer: Mp4Muxer,
        track: TrackId,
        delta: u32,
        frames: u64,
        keyframes: u64,
        config: Option<Av1Config>,
    },
}

impl VideoMux {
    pub(super) fn create(
        path: &Path,
        codec: VideoCodec,
        settings: &EncodeSettings,
        container: Container,
    ) -> Result<Self, WriteError> {
        Ok(match codec {
            VideoCodec::H264 => Self::H264(H264Mp4Muxer::create_in(path, *settings, container)?),
            VideoCodec::Av1 { .. } => {
                let (timescale, delta) = frame_timescale(settings.frame_rate)?;
                let mut muxer = Mp4Muxer::create(path, container)?;
                let track = muxer.add_video(settings.width, settings.height, timescale)?;
                Self::Av1 {
                    muxer,
                    track,
                    delta,
                    frames: 0,
                    keyframes: 0,
                    config: None,
                }
            }
        })
    }

    pub(super) fn muxer_mut(&mut self) -> &mut Mp4Muxer {
        match self {
            Self::H264(m) => m.muxer_mut(),
            Self::Av1 { muxer, .. } => muxer,
        }
    }

    /// Appends a segment's frames. AV1 segments must share one sequence header (they do when
    /// their encoders share settings); one that differs is refused.
    pub(super) fn write(&mut self, encoded: &Encoded) -> Result<(), WriteError> {
        match (self, encoded) {
            (Self::H264(m), Encoded::H264(pictures)) => {
                for p in pictures {
                    m.write_picture(p)?;
                }
            }
            (
                Self::Av1 {
                    muxer,
                    track,
                    delta,
                    frames,
                    keyframes,
                    config,
                },
                Encoded::Av1 {
                    frames: samples,
                    config: seg,
                },
            ) => {
                match config {
                    None => {
                        muxer.set_codec(*track, TrackCodec::Av1(seg.clone()))?;
                        *config = Some(seg.clone());
                    }
                    Some(c) if c != seg => {
                        return Err(WriteError::Encode(
                            "rav1e: a segment's sequence header differs from the stream's".into(),
                        ));
                    }
                    Some(_) => {}
                }
                for f in samples {
                    muxer.write_sample(*track, &f.data, *delta, f.is_sync)?;
                    *frames += 1;
                    *keyframes += u64::from(f.is_sync);
                }
            }
            _ => return Err(WriteError::Mux("a segment of another codec".into())),
        }
        Ok(())
    }

    pub(super) fn finish_verified(
        self,
        verify: impl FnOnce(&Path) -> Result<(), WriteError>,
    ) -> Result<WriteSummary, WriteError> {
        match self {
            Self::H264(m) => m.finish_verified(verify),
            Self::Av1 {
                muxer,
                frames,
                keyframes,
                ..
            } => {
                let summary = muxer.finish_verified(verify)?;
                Ok(WriteSummary {
                    path: summary.path,
                    frames,
                    keyframes,
                    bytes: summary.bytes,
                })
            }
        }
    }
}

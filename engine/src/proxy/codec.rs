//! The proxy codecs behind one face: each pipeline worker's encoder ([`RangeEncoder`]: scale
//! to what the codec takes, encode) and the muxer the caller writes them through
//! ([`ProxyMux`]: H.264 in MP4, ProRes in MOV).

use std::path::{Path, PathBuf};

use framelock_components::ProxyCodec;

use super::ProxyError;
#[cfg(feature = "ffmpeg")]
use crate::media::{Container, TrackCodec, TrackId, frame_timescale};
use crate::media::{
    EncodeSettings, EncodedPicture, H264Encoder, H264Mp4Muxer, Mp4Muxer, Picture, WriteError,
};

/// One encoded proxy frame.
pub(super) enum Encoded {
    H264(EncodedPicture),
    /// A ProRes frame (always a keyframe).
    #[cfg(feature = "ffmpeg")]
    ProRes(Vec<u8>),
}

/// A worker's encoder; it scales each decoded picture to the proxy's size and layout first.
pub(super) enum RangeEncoder {
    /// Boxed: openh264's state is 7 KB, and one encoder lives per worker.
    H264(Box<H264Encoder>),
    #[cfg(feature = "ffmpeg")]
    ProRes(crate::media::ProResEncoder),
}

/// Refuses a codec this build cannot write, before any work starts.
pub(super) fn check_codec(codec: ProxyCodec) -> Result<(), ProxyError> {
    match codec {
        ProxyCodec::ProRes { .. } if !cfg!(feature = "ffmpeg") => Err(ProxyError::Unsupported(
            "ProRes proxies need a build with the `ffmpeg` feature (libav's prores_ks \
             encoder); use h264-intra for an all-keyframe proxy"
                .into(),
        )),
        _ => Ok(()),
    }
}

impl RangeEncoder {
    pub(super) fn new(codec: ProxyCodec, settings: EncodeSettings) -> Result<Self, ProxyError> {
        check_codec(codec)?;
        match codec {
            #[cfg(feature = "ffmpeg")]
            ProxyCodec::ProRes { profile } => Ok(Self::ProRes(crate::media::ProResEncoder::new(
                settings.width,
                settings.height,
                settings.frame_rate,
                profile,
            )?)),
            _ => Ok(Self::H264(Box::new(H264Encoder::new(settings)?))),
        }
    }

    /// The next frame starts a range, which must decode on its own.
    pub(super) fn start_range(&mut self) {
        match self {
            Self::H264(e) => e.force_keyframe(),
            #[cfg(feature = "ffmpeg")]
            Self::ProRes(_) => {} // every frame is a keyframe
        }
    }

    /// Scales `frame` to `width`×`height` and encodes it.
    pub(super) fn encode(
        &mut self,
        frame: &Picture,
        width: u32,
        height: u32,
    ) -> Result<Encoded, ProxyError> {
        let unscalable = || ProxyError::Worker(format!("cannot scale a {:?} frame", frame.format));
        match self {
            Self::H264(e) => {
                let scaled = frame.scaled_yuv420p(width, height).ok_or_else(unscalable)?;
                Ok(Encoded::H264(e.encode(&scaled)?))
            }
            #[cfg(feature = "ffmpeg")]
            Self::ProRes(e) => {
                let scaled = frame
                    .scaled_yuv422p10(width, height)
                    .ok_or_else(unscalable)?;
                Ok(Encoded::ProRes(e.encode(&scaled)?))
            }
        }
    }
}

/// The proxy file being written.
pub(super) enum ProxyMux {
    H264(H264Mp4Muxer),
    #[cfg(feature = "ffmpeg")]
    ProRes {
        muxer: Mp4Muxer,
        track: TrackId,
        delta: u32,
    },
}

impl ProxyMux {
    pub(super) fn create(
        path: &Path,
        codec: ProxyCodec,
        settings: EncodeSettings,
    ) -> Result<Self, ProxyError> {
        check_codec(codec)?;
        match codec {
            #[cfg(feature = "ffmpeg")]
            ProxyCodec::ProRes { profile } => {
                let (timescale, delta) = frame_timescale(settings.frame_rate)?;
                let mut muxer = Mp4Muxer::create(path, Container::Mov)?;
                let track = muxer.add_video(settings.width, settings.height, timescale)?;
                muxer.set_codec(
                    track,
                    TrackCodec::ProRes {
                        fourcc: profile.fourcc(),
                    },
                )?;
                Ok(Self::ProRes {
                    muxer,
                    track,
                    delta,
                })
            }
            _ => Ok(Self::H264(H264Mp4Muxer::create(path, settings)?)),
        }
    }

    /// Appends the next frame.
    pub(super) fn write(&mut self, frame: &Encoded) -> Result<(), WriteError> {
        match (self, frame) {
            (Self::H264(m), Encoded::H264(p)) => m.write_picture(p),
            #[cfg(feature = "ffmpeg")]
            (
                Self::ProRes {
                    muxer,
                    track,
                    delta,
                },
                Encoded::ProRes(bytes),
            ) => muxer.write_sample(*track, bytes, *delta, true),
            #[cfg(feature = "ffmpeg")]
            _ => Err(WriteError::Mux("a frame of another codec".into())),
        }
    }

    /// The muxer underneath, for the audio track.
    pub(super) fn muxer_mut(&mut self) -> &mut Mp4Muxer {
        match self {
            Self::H264(m) => m.muxer_mut(),
            #[cfg(feature = "ffmpeg")]
            Self::ProRes { muxer, .. } => muxer,
        }
    }

    /// Writes the index, verifies the temporary file and renames it into place.
    pub(super) fn finish_verified(
        self,
        verify: impl FnOnce(&Path) -> Result<(), WriteError>,
    ) -> Result<PathBuf, WriteError> {
        Ok(match self {
            Self::H264(m) => m.finish_verified(verify)?.path,
            #[cfg(feature = "ffmpeg")]
            Self::ProRes { muxer, .. } => muxer.finish_verified(verify)?.path,
        })
    }
}

#[cfg(test)]
mod tests {
    use framelock_components::ProResProfile;

    use super::*;

    #[test]
    fn prores_needs_libav() {
        let prores = ProxyCodec::ProRes {
            profile: ProResProfile::Lt,
        };
        let checked = check_codec(prores);
        if cfg!(feature = "ffmpeg") {
            assert!(checked.is_ok());
        } else {
            let e = checked.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("`ffmpeg` feature"), "{e}");
        }
        assert!(check_codec(ProxyCodec::H264Intra).is_ok());
    }
}

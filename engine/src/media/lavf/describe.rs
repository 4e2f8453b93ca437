//! What a libavformat stream is, in the engine's terms: its codec, an audio stream's
//! description, the rotation of a display matrix, the sampling of a pixel format.

use ffmpeg_next as av;
use framelock_components::{AudioStreamInfo, Codec};

use crate::media::Orientation;

/// The codec and its four-character code for a libav codec id.
pub(super) fn codec_of(id: av::codec::Id) -> (Codec, String) {
    use av::codec::Id;
    let (codec, fourcc) = match id {
        Id::H264 => (Codec::H264, "avc1"),
        Id::HEVC => (Codec::Hevc, "hvc1"),
        Id::AV1 => (Codec::Av1, "av01"),
        Id::VP8 => (Codec::Vp8, "vp08"),
        Id::VP9 => (Codec::Vp9, "vp09"),
        Id::PRORES => (Codec::ProRes, "apcn"),
        Id::MPEG4 => (Codec::Other("mp4v".into()), "mp4v"),
        Id::MJPEG => (Codec::Other("jpeg".into()), "jpeg"),
        other => {
            let name = format!("{other:?}").to_lowercase();
            return (Codec::Other(name.clone()), name);
        }
    };
    (codec, fourcc.to_string())
}

/// An audio stream as the probe reports it.
pub(super) fn audio_info(a: &av::format::stream::Stream<'_>) -> AudioStreamInfo {
    let params = a.parameters();
    // SAFETY: the stream's codec parameters, alive while the context is.
    let par = unsafe { &*params.as_ptr() };
    let tb = a.time_base();
    let duration =
        a.duration().max(0) as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1));
    let codec = match params.id() {
        av::codec::Id::AAC => Codec::Aac,
        other => Codec::Other(format!("{other:?}").to_lowercase()),
    };
    AudioStreamInfo {
        track_id: a.index() as u32,
        codec,
        codec_string: None,
        sample_rate: par.sample_rate.max(0) as u32,
        channels: par.ch_layout.nb_channels.max(0) as u16,
        duration_secs: duration,
    }
}

/// The rotation a display matrix (nine 32-bit values, as in `tkhd`) says.
pub(super) fn display_matrix(data: &[u8]) -> Option<Orientation> {
    let m: Vec<i32> = data
        .chunks_exact(4)
        .take(9)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (m.len() == 9).then(|| Orientation::from_matrix(m[0], m[1], m[3], m[4]))
}

/// Chroma format and bit depth of the libav pixel formats HEVC streams come in.
pub(super) fn sampling(pixel: i32) -> (u8, u8) {
    use av::ffi::AVPixelFormat as P;
    let is = |p: P| pixel == p as i32;
    if is(P::AV_PIX_FMT_YUV420P10LE) {
        (1, 10)
    } else if is(P::AV_PIX_FMT_YUV422P10LE) {
        (2, 10)
    } else if is(P::AV_PIX_FMT_YUV422P) {
        (2, 8)
    } else if is(P::AV_PIX_FMT_YUV444P) {
        (3, 8)
    } else if is(P::AV_PIX_FMT_YUV444P10LE) {
        (3, 10)
    } else if is(P::AV_PIX_FMT_GRAY8) {
        (0, 8)
    } else {
        (1, 8)
    }
}

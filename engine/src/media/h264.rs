//! H.264 bitstream helpers: AVCC (length-prefixed, as MP4 stores it) ↔ Annex-B (start codes,
//! as openh264 reads and writes it), and the facts in a sequence parameter set.
//!
//! Parameter-set parsing is `h264-reader`'s; this module only reframes NAL units.

use framelock_components::ChromaFormat;
use h264_reader::nal::sps::{FrameMbsFlags, SeqParameterSet};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// Appends the NAL units of one AVCC sample (`length_size`-byte big-endian length prefixes) to
/// `out` as Annex-B. Returns `false`, appending nothing more, if a length runs past the sample
/// (a corrupt or truncated sample).
pub fn avcc_to_annexb(sample: &[u8], length_size: usize, out: &mut Vec<u8>) -> bool {
    let mut rest = sample;
    while !rest.is_empty() {
        if rest.len() < length_size || length_size == 0 || length_size > 4 {
            return false;
        }
        let len = rest[..length_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        rest = &rest[length_size..];
        if len > rest.len() {
            return false;
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
    }
    true
}

/// Splits an Annex-B stream into its NAL units (without start codes).
pub fn annexb_nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
        // A 4-byte start code leaves one zero byte at the end of the previous unit.
        while end > s && stream[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > s {
            nals.push(&stream[s..end]);
        }
    }
    nals
}

/// Converts Annex-B NAL units to one AVCC sample with 4-byte length prefixes.
pub fn nal_units_to_avcc<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// The NAL unit type (low five bits of the header byte).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// What a sequence parameter set says about decodability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsFacts {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// Profile name, e.g. `High`.
    pub profile: String,
    /// Level, e.g. `4.0`.
    pub level: String,
    /// Chroma subsampling.
    pub chroma: ChromaFormat,
    /// Luma bit depth.
    pub bit_depth: u8,
    /// Field or MBAFF coding.
    pub interlaced: bool,
    /// Cropped picture size.
    pub width: u32,
    /// Cropped picture height.
    pub height: u32,
    /// `video_full_range_flag` from the VUI.
    pub full_range: bool,
    /// `matrix_coefficients` from the VUI, when present.
    pub matrix_coefficients: Option<u8>,
    /// `max_num_ref_frames`: reference pictures the decoder keeps.
    pub ref_frames: u32,
    /// `max_num_reorder_frames` from the VUI's bitstream restrictions, when said: pictures
    /// held back for presentation order.
    pub reorder_frames: Option<u32>,
}

/// Parses an SPS NAL unit (header byte included).
pub fn parse_sps(nal: &[u8]) -> Option<SpsFacts> {
    let rbsp = h264_reader::rbsp::decode_nal(nal).ok()?;
    let sps = SeqParameterSet::from_bits(h264_reader::rbsp::BitReader::new(&rbsp[..])).ok()?;
    let (width, height) = sps.pixel_dimensions().ok()?;
    let chroma = match sps.chroma_info.chroma_format {
        h264_reader::nal::sps::ChromaFormat::Monochrome => ChromaFormat::Monochrome,
        h264_reader::nal::sps::ChromaFormat::YUV420 => ChromaFormat::Yuv420,
        h264_reader::nal::sps::ChromaFormat::YUV422 => ChromaFormat::Yuv422,
        h264_reader::nal::sps::ChromaFormat::YUV444 => ChromaFormat::Yuv444,
        h264_reader::nal::sps::ChromaFormat::Invalid(_) => return None,
    };
    let signal = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.video_signal_type.as_ref());
    let level_idc = sps.level_idc;
    Some(SpsFacts {
        profile_idc: sps.profile_idc.into(),
        profile: format!("{:?}", sps.profile()),
        level: format!("{}.{}", level_idc / 10, level_idc % 10),
        chroma,
        bit_depth: 8 + sps.chroma_info.bit_depth_luma_minus8,
        interlaced: !matches!(sps.frame_mbs_flags, FrameMbsFlags::Frames),
        width,
        height,
        full_range: signal.is_some_and(|s| s.video_full_range_flag),
        matrix_coefficients: signal
            .and_then(|s| s.colour_description.as_ref())
            .map(|c| c.matrix_coefficients),
        ref_frames: sps.max_num_ref_frames,
        reorder_frames: sps
            .vui_parameters
            .as_ref()
            .and_then(|v| v.bitstream_restrictions.as_ref())
            .map(|b| b.max_num_reorder_frames),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_annexb_roundtrip() {
        let nals: [&[u8]; 3] = [&[0x67, 1, 2, 3], &[0x68, 0, 0, 5], &[0x65, 9, 9]];
        let avcc = nal_units_to_avcc(nals);
        let mut annexb = Vec::new();
        assert!(avcc_to_annexb(&avcc, 4, &mut annexb));
        assert_eq!(annexb_nal_units(&annexb), nals.to_vec());
        // a length that runs past the sample is refused
        let mut out = Vec::new();
        assert!(!avcc_to_annexb(&avcc[..avcc.len() - 1], 4, &mut out));
    }

    #[test]
    fn three_byte_start_codes() {
        let stream = [0, 0, 1, 0x67, 7, 0, 0, 0, 1, 0x68, 8];
        assert_eq!(
            annexb_nal_units(&stream),
            vec![&[0x67, 7][..], &[0x68, 8][..]]
        );
    }
}

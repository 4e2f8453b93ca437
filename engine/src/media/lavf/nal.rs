//! NAL-unit streams as libavformat hands them out of Annex B containers (MPEG-TS, AVI),
//! turned into what MP4 stores: 4-byte length prefixes, and `avcC`/`hvcC` records built from
//! the parameter sets; and the container's own records read as the MP4 demuxer reads them.

use framelock_components::Codec;

use crate::media::demux::CodecConfig;

/// How samples are stored, when not as the decoders take them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// As MP4 stores them (length-prefixed NAL units, or a codec without NAL units).
    AsIs,
    /// Annex B start codes, rewritten to 4-byte length prefixes.
    AnnexB,
}

/// The decoder configuration: the container's record, or one built from Annex B parameter
/// sets.
pub(super) fn config(
    codec: &Codec,
    extradata: &[u8],
    stored: Stored,
    sets: &[Vec<u8>],
    sampling: (u8, u8),
) -> Option<CodecConfig> {
    match (codec, stored) {
        (Codec::H264, Stored::AsIs) => avc_config(extradata.to_vec()),
        (Codec::H264, Stored::AnnexB) => {
            let sps: Vec<&Vec<u8>> = sets.iter().filter(|u| u[0] & 0x1f == 7).collect();
            let pps: Vec<&Vec<u8>> = sets.iter().filter(|u| u[0] & 0x1f == 8).collect();
            let first = sps.first()?;
            if first.len() < 4 || pps.is_empty() {
                return None;
            }
            let mut avcc = vec![
                1,
                first[1],
                first[2],
                first[3],
                0xFF,
                0xE0 | sps.len() as u8,
            ];
            for s in &sps {
                avcc.extend_from_slice(&(s.len() as u16).to_be_bytes());
                avcc.extend_from_slice(s);
            }
            avcc.push(pps.len() as u8);
            for p in &pps {
                avcc.extend_from_slice(&(p.len() as u16).to_be_bytes());
                avcc.extend_from_slice(p);
            }
            avc_config(avcc)
        }
        (Codec::Hevc, Stored::AsIs) => hevc_config(extradata.to_vec()),
        (Codec::Hevc, Stored::AnnexB) => hevc_config(build_hvcc(sets, sampling)?),
        _ => Some(CodecConfig::Other {
            raw: (!extradata.is_empty()).then(|| extradata.to_vec()),
        }),
    }
}

/// An `avcC` record read as the MP4 demuxer reads it.
fn avc_config(avcc: Vec<u8>) -> Option<CodecConfig> {
    let length_size = usize::from(*avcc.get(4)? & 3) + 1;
    let mut at = 5;
    let mut list = |count_mask: u8| -> Option<Vec<Vec<u8>>> {
        let n = *avcc.get(at)? & count_mask;
        at += 1;
        (0..n)
            .map(|_| {
                let len = usize::from(u16::from_be_bytes([*avcc.get(at)?, *avcc.get(at + 1)?]));
                let unit = avcc.get(at + 2..at + 2 + len)?.to_vec();
                at += 2 + len;
                Some(unit)
            })
            .collect()
    };
    let sps = list(0x1f)?;
    let pps = list(0xff)?;
    Some(CodecConfig::Avc {
        avcc,
        length_size,
        sps,
        pps,
    })
}

/// An `hvcC` record read as the MP4 demuxer reads it.
fn hevc_config(hvcc: Vec<u8>) -> Option<CodecConfig> {
    if hvcc.len() < 23 {
        return None;
    }
    Some(CodecConfig::Hevc {
        profile_idc: hvcc[1] & 0x1f,
        level_idc: hvcc[12],
        chroma_format_idc: hvcc[16] & 3,
        bit_depth: 8 + (hvcc[17] & 7),
        hvcc,
    })
}

/// An `hvcC` record from Annex B VPS/SPS/PPS units: the profile, tier and level from the SPS,
/// the sampling (chroma format, bit depth) as libavformat says it, 4-byte lengths.
fn build_hvcc(sets: &[Vec<u8>], sampling: (u8, u8)) -> Option<Vec<u8>> {
    let kind = |u: &Vec<u8>| (u[0] >> 1) & 0x3f;
    let sps = sets.iter().find(|u| kind(u) == 33)?;
    let rbsp = unescape(sps.get(2..)?);
    let ptl = rbsp.get(1..13)?;
    let sub_layers = (rbsp[0] >> 1) & 7;
    let nested = rbsp[0] & 1;
    let (chroma, depth) = sampling;
    let mut h = vec![1];
    h.extend_from_slice(ptl);
    h.extend_from_slice(&[
        0xF0,
        0x00,
        0xFC,
        0xFC | chroma,
        0xF8 | (depth - 8),
        0xF8 | (depth - 8),
        0,
        0,
        ((sub_layers + 1) << 3) | (nested << 2) | 3,
    ]);
    let arrays: Vec<(u8, Vec<&Vec<u8>>)> = [32u8, 33, 34]
        .iter()
        .map(|&t| (t, sets.iter().filter(|u| kind(u) == t).collect::<Vec<_>>()))
        .filter(|(_, units)| !units.is_empty())
        .collect();
    h.push(arrays.len() as u8);
    for (t, units) in arrays {
        h.push(0x80 | t);
        h.extend_from_slice(&(units.len() as u16).to_be_bytes());
        for u in units {
            h.extend_from_slice(&(u.len() as u16).to_be_bytes());
            h.extend_from_slice(u);
        }
    }
    Some(h)
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`).
pub(super) fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

pub(super) fn is_parameter_set(codec: &Codec, unit: &[u8]) -> bool {
    match codec {
        Codec::H264 => matches!(unit[0] & 0x1f, 7 | 8),
        Codec::Hevc => matches!((unit[0] >> 1) & 0x3f, 32..=34),
        _ => false,
    }
}

/// Whether a keyframe (as handed out) holds an IDR slice.
pub(super) fn idr_in(data: &[u8], extradata: &[u8], stored: Stored) -> bool {
    let length_size = match stored {
        Stored::AnnexB => 4,
        Stored::AsIs => extradata.get(4).map_or(4, |b| usize::from(b & 3) + 1),
    };
    crate::media::box_check::avcc_has_idr(data, length_size)
}

/// The NAL units of an Annex B stream, without start codes.
pub(super) fn annexb_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    crate::media::h264::annexb_nal_units(data).into_iter()
}

/// Rewrites an Annex B access unit as 4-byte length-prefixed NAL units into `out`.
pub(super) fn annexb_to_lengths(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for unit in annexb_units(data) {
        out.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        out.extend_from_slice(unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_becomes_length_prefixed() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9,
        ];
        let mut out = Vec::new();
        annexb_to_lengths(&au, &mut out);
        assert_eq!(
            out,
            [
                0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 3, 0x65, 9, 9
            ]
        );
        assert!(crate::media::box_check::avcc_has_idr(&out, 4));
        assert_eq!(unescape(&[1, 0, 0, 3, 1, 0, 0, 3]), [1, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn a_built_avcc_reads_back() {
        let sets = vec![vec![0x67, 0x64, 0, 0x28, 0xAC], vec![0x68, 0xEE, 0x3C]];
        let Some(CodecConfig::Avc {
            length_size,
            sps,
            pps,
            ..
        }) = config(&Codec::H264, &[], Stored::AnnexB, &sets, (1, 8))
        else {
            panic!("an avcC");
        };
        assert_eq!(
            (length_size, sps, pps),
            (4, vec![sets[0].clone()], vec![sets[1].clone()])
        );
    }
}

//! A walk over the `moov` box tree before it is parsed: a box inside it whose size is 0 (only
//! a top-level box may run "to the end of the file"), smaller than its header, or past its
//! parent is refused here with where it is. `re_mp4` loops forever on a zero-sized child (a
//! mutation test found it: `mvhd` with size 0).
//!
//! `udta` and `meta` are not walked into: damage there is metadata only, and the demuxer
//! skips those boxes when they do not parse ([`super::metadata_skip`]).
//!
//! Also here, the demuxer's other checks of a file's structure before and around parsing:
//! a top-level box cut short (a truncated file), the parse itself with `re_mp4`'s panics
//! contained, and whether an H.264 track is open-GOP.

use std::io::{Read, Seek, SeekFrom};

use super::CodecConfig;
use super::demux::VideoTrack;
use super::metadata_skip::MAX_MOOV;

/// The boxes whose payload is a list of boxes.
const CONTAINERS: [&[u8; 4]; 10] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex", b"moof", b"traf",
];

/// How deep the walk goes (real files nest five or six levels).
const MAX_DEPTH: usize = 16;

/// Checks the `moov` tree of `file`, and each top-level `moof`'s (a fragment: `re_mp4` parses
/// those too, and loops the same way on a zero-sized child — the fuzz target found it); `Err`
/// says which box is malformed and where. A file without a readable `moov` passes (the
/// parser says what is wrong with it). One pass over the top-level boxes.
pub(super) fn check_moov(file: &mut (impl Read + Seek), file_size: u64) -> Result<(), String> {
    let mut moov_seen = false;
    let mut pos = 0u64;
    while pos + 8 <= file_size {
        let Some((kind, size)) = top_level_box(file, pos, file_size) else {
            break;
        };
        let Some(end) = pos
            .checked_add(size)
            .filter(|&e| size >= 8 && e <= file_size)
        else {
            break;
        };
        let walked = match &kind {
            // The first `moov` only, and not an outsized one: the parser judges those.
            b"moov" if !moov_seen => {
                moov_seen = true;
                size <= MAX_MOOV
            }
            b"moof" if size > MAX_FRAGMENT => {
                return Err(format!(
                    "fragment `moof` at offset {pos} claims {size} bytes"
                ));
            }
            b"moof" => true,
            _ => false,
        };
        if walked {
            let mut data = vec![0u8; usize::try_from(size).map_err(|e| e.to_string())?];
            file.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
            file.read_exact(&mut data).map_err(|e| e.to_string())?;
            walk(&data, pos, 0..data.len(), 0)?;
        }
        pos = end;
    }
    Ok(())
}

/// The largest `moof` walked (real fragments hold a sample table of a few KB to a few MB).
const MAX_FRAGMENT: u64 = 64 << 20;

fn walk(data: &[u8], base: u64, range: std::ops::Range<usize>, depth: usize) -> Result<(), String> {
    let mut at = range.start;
    while at + 8 <= range.end {
        let kind = String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned();
        let offset = base + at as u64;
        let size32 = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let (size, header) = match size32 {
            0 if depth > 0 => {
                return Err(format!(
                    "box `{kind}` at offset {offset} has size 0 (to the end of the file), \
                     which only a top-level box may have"
                ));
            }
            0 => (range.end - at, 8),
            1 => {
                let Some(large) = data.get(at + 8..at + 16) else {
                    return Err(format!("box `{kind}` at offset {offset} is cut short"));
                };
                let mut b = [0u8; 8];
                b.copy_from_slice(large);
                (
                    usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
                    16,
                )
            }
            s => (s as usize, 8),
        };
        if size < header {
            return Err(format!(
                "box `{kind}` at offset {offset} claims {size} bytes, less than its header"
            ));
        }
        let end = at.saturating_add(size);
        if end > range.end {
            return Err(format!(
                "box `{kind}` at offset {offset} ({size} bytes) runs past the box it is in"
            ));
        }
        if depth < MAX_DEPTH
            && CONTAINERS
                .iter()
                .any(|c| c.as_slice() == &data[at + 4..at + 8])
        {
            walk(data, base, at + header..end, depth + 1)?;
        }
        at = end;
    }
    Ok(())
}

/// Walks the top-level boxes; returns the end offset of a box that runs past the end of the
/// file (the file was cut short), if any.
pub(super) fn top_level_overrun(file: &mut (impl Read + Seek), file_size: u64) -> Option<u64> {
    let mut pos = 0u64;
    while pos + 8 <= file_size {
        let (_, size) = top_level_box(file, pos, file_size)?;
        if size < 8 {
            return None; // not a box structure at all: let the parser say so
        }
        let end = pos.checked_add(size)?;
        if end > file_size {
            return Some(end);
        }
        pos = end;
    }
    None
}

/// The type and size of the top-level box at `pos` (a size of 0, "to the end of the file",
/// read as the bytes left); `None` when its header cannot be read.
pub(super) fn top_level_box(
    file: &mut (impl Read + Seek),
    pos: u64,
    file_size: u64,
) -> Option<([u8; 4], u64)> {
    let mut h = [0u8; 16];
    file.seek(SeekFrom::Start(pos)).ok()?;
    file.read_exact(&mut h[..8]).ok()?;
    let size = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
        0 => file_size - pos,
        1 => {
            file.read_exact(&mut h[8..16]).ok()?;
            u64::from_be_bytes(h[8..16].try_into().ok()?)
        }
        s => u64::from(s),
    };
    Some(([h[4], h[5], h[6], h[7]], size))
}

/// Parses the boxes with `re_mp4`. It panics on some malformed tables (a missing
/// chunk-offset box, out-of-range indices): that is contained here and reported as an error.
pub(super) fn parse(reader: impl Read + Seek, file_size: u64) -> Result<re_mp4::Mp4, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        re_mp4::Mp4::read(reader, file_size)
    })) {
        Ok(Ok(mp4)) => Ok(mp4),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("malformed sample table".into()),
    }
}

/// Sync samples the open-GOP check reads (each a positional read of one sample).
const OPEN_GOP_PROBES: usize = 4;

/// Whether an H.264 track's sync samples after the first (up to [`OPEN_GOP_PROBES`]) carry
/// no IDR picture: a recovery point in an open GOP, which a decoder cannot start at cleanly.
pub(super) fn open_gop(file: &super::source::Source, video: &VideoTrack) -> bool {
    let CodecConfig::Avc { length_size, .. } = video.config else {
        return false;
    };
    let mut buf = Vec::new();
    video
        .samples
        .iter()
        .filter(|s| s.is_sync)
        .skip(1)
        .take(OPEN_GOP_PROBES)
        .any(|s| {
            buf.resize(s.size as usize, 0);
            if file.read_exact_at(&mut buf, s.offset).is_err() {
                return false;
            }
            !avcc_has_idr(&buf, length_size)
        })
}

/// Whether an H.264 access unit in length-prefixed form (`length_size` bytes) holds an IDR
/// slice.
pub(super) fn avcc_has_idr(buf: &[u8], length_size: usize) -> bool {
    let mut at = 0;
    while at + length_size <= buf.len() {
        let len = buf[at..at + length_size]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        at += length_size;
        if len == 0 || at + len > buf.len() {
            break;
        }
        if buf[at] & 0x1f == 5 {
            return true;
        }
        at += len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn zero_short_and_overrunning_children_are_refused() {
        let mvhd = boxed(b"mvhd", &[0; 12]);
        let good = boxed(
            b"moov",
            &[mvhd.clone(), boxed(b"trak", &boxed(b"tkhd", &[1; 4]))].concat(),
        );
        assert_eq!(walk(&good, 100, 0..good.len(), 0), Ok(()));
        let mut zero = good.clone();
        zero[8..12].copy_from_slice(&0u32.to_be_bytes());
        let why = walk(&zero, 100, 0..zero.len(), 0).expect_err("size 0 inside moov");
        assert!(
            why.contains("`mvhd` at offset 108") && why.contains("size 0"),
            "{why}"
        );
        let mut short = good.clone();
        short[8..12].copy_from_slice(&3u32.to_be_bytes());
        assert!(walk(&short, 0, 0..short.len(), 0).is_err());
        let mut long = good.clone();
        long[8..12].copy_from_slice(&4000u32.to_be_bytes());
        assert!(walk(&long, 0, 0..long.len(), 0).is_err());
        // Inside udta nothing is checked: metadata damage is skipped later.
        let udta = boxed(
            b"moov",
            &boxed(b"udta", &[0, 0, 0, 0, b'm', b'e', b't', b'a']),
        );
        assert_eq!(walk(&udta, 0, 0..udta.len(), 0), Ok(()));
    }
}

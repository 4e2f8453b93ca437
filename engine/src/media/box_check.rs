//! A walk over the `moov` box tree before it is parsed: a box inside it whose size is 0 (only
//! a top-level box may run "to the end of the file"), smaller than its header, or past its
//! parent is refused here with where it is. `re_mp4` loops forever on a zero-sized child (a
//! mutation test found it: `mvhd` with size 0).
//!
//! `udta` and `meta` are not walked into: damage there is metadata only, and the demuxer
//! skips those boxes when they do not parse ([`super::metadata_skip`]).

use std::fs::File;

use super::metadata_skip::read_moov;

/// The boxes whose payload is a list of boxes.
const CONTAINERS: [&[u8; 4]; 10] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex", b"moof", b"traf",
];

/// How deep the walk goes (real files nest five or six levels).
const MAX_DEPTH: usize = 16;

/// Checks the `moov` tree of `file`; `Err` says which box is malformed and where. A file
/// without a readable `moov` passes (the parser says what is wrong with it).
pub(super) fn check_moov(file: &mut File, file_size: u64) -> Result<(), String> {
    match read_moov(file, file_size) {
        Some((at, moov)) => walk(&moov, at, 0..moov.len(), 0),
        None => Ok(()),
    }
}

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

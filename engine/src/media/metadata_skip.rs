//! A second chance for a file whose metadata boxes are damaged: `udta` and `meta` (titles,
//! encoder tags, GPS) hold nothing playback needs, yet a flipped byte there makes the parser
//! refuse the whole file. When the first parse fails, the demuxer finds those boxes under
//! `moov` and each `trak` and parses again through a reader that shows each of them as a
//! `free` box (skipped by every parser), without touching the file. A file whose samples or
//! sample tables are damaged still fails, as it must.

use std::io::{Read, Seek, SeekFrom};

/// The most of `moov` read to look for metadata boxes (a sample table of hours of video is a
/// few megabytes).
pub(super) const MAX_MOOV: u64 = 256 << 20;

/// A reader that shows `patches` (offset, 4 bytes) over what `inner` holds.
pub(super) struct Patched<R> {
    inner: R,
    patches: Vec<(u64, [u8; 4])>,
    pos: u64,
}

impl<R> Patched<R> {
    pub(super) fn new(inner: R, patches: Vec<(u64, [u8; 4])>) -> Self {
        Self {
            inner,
            patches,
            pos: 0,
        }
    }
}

impl<R: Read> Read for Patched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        for &(at, bytes) in &self.patches {
            for (i, b) in bytes.iter().enumerate() {
                let p = at + i as u64;
                if (start..end).contains(&p) {
                    buf[(p - start) as usize] = *b;
                }
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl<R: Seek> Seek for Patched<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

/// A box header: (type, offset of the type field, start of the payload, end).
fn header(data: &[u8], at: usize, parent_end: usize) -> Option<([u8; 4], usize, usize, usize)> {
    let h = data.get(at..at + 8)?;
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let kind = [h[4], h[5], h[6], h[7]];
    let (size, payload) = match size32 {
        0 => (parent_end - at, at + 8),
        1 => {
            let l = data.get(at + 8..at + 16)?;
            let s = u64::from_be_bytes(l.try_into().ok()?);
            (usize::try_from(s).ok()?, at + 16)
        }
        s => (s, at + 8),
    };
    let end = at.checked_add(size)?;
    (size >= 8 && end <= parent_end).then_some((kind, at + 4, payload, end))
}

/// The offsets (in the file) of the type fields of the `udta` and `meta` boxes directly under
/// `moov` and under each `trak`, each with `free` to show there instead. Empty when there is
/// no `moov` or it cannot be walked.
pub(super) fn metadata_patches(
    file: &mut (impl Read + Seek),
    file_size: u64,
) -> Vec<(u64, [u8; 4])> {
    let Some((moov_at, moov)) = read_moov(file, file_size) else {
        return Vec::new();
    };
    let Some((_, _, payload, end)) = header(&moov, 0, moov.len()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (from, to) in walk(&moov, moov_at, (payload, end), &mut out) {
        walk(&moov, moov_at, (from, to), &mut out);
    }
    out
}

/// Walks the boxes in `moov[from..end]`: each `udta` and `meta` is patched to `free`; returns
/// the payloads of the `trak` boxes found.
fn walk(
    moov: &[u8],
    moov_at: u64,
    (from, end): (usize, usize),
    out: &mut Vec<(u64, [u8; 4])>,
) -> Vec<(usize, usize)> {
    let mut at = from;
    let mut traks = Vec::new();
    while let Some((kind, type_at, payload, box_end)) = header(moov, at, end) {
        match &kind {
            b"udta" | b"meta" => out.push((moov_at + type_at as u64, *b"free")),
            b"trak" => traks.push((payload, box_end)),
            _ => {}
        }
        at = box_end;
    }
    traks
}

/// The top-level `moov` box's offset and bytes.
pub(super) fn read_moov(file: &mut (impl Read + Seek), file_size: u64) -> Option<(u64, Vec<u8>)> {
    let mut pos = 0u64;
    while pos + 8 <= file_size {
        let (kind, size) = super::box_check::top_level_box(file, pos, file_size)?;
        if size < 8 || pos.checked_add(size)? > file_size {
            return None;
        }
        if &kind == b"moov" {
            if size > MAX_MOOV {
                return None;
            }
            let mut moov = vec![0u8; size as usize];
            file.seek(SeekFrom::Start(pos)).ok()?;
            file.read_exact(&mut moov).ok()?;
            return Some((pos, moov));
        }
        pos += size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patched_reader_shows_the_patches_across_reads() {
        let data: Vec<u8> = (0..32).collect();
        let mut r = Patched::new(std::io::Cursor::new(data), vec![(6, *b"free")]);
        let mut a = [0u8; 8];
        r.read_exact(&mut a).unwrap();
        assert_eq!(a, [0, 1, 2, 3, 4, 5, b'f', b'r']);
        let mut b = [0u8; 4];
        r.read_exact(&mut b).unwrap();
        assert_eq!(b, [b'e', b'e', 10, 11]);
        r.seek(SeekFrom::Start(7)).unwrap();
        r.read_exact(&mut b).unwrap();
        assert_eq!(b, [b'r', b'e', b'e', 10]);
    }
}

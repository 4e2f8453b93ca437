//! Where a demuxer reads from: a file (positional reads, shared by every reader of it) or
//! bytes in memory (fuzzing, media a host already holds). Both give positional reads and a
//! `Read + Seek` cursor for the box parsers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// A demuxer's bytes.
#[derive(Debug)]
pub(crate) enum Source {
    /// An open file, and its size when opened.
    File(File, u64),
    /// Bytes in memory.
    Bytes(Arc<[u8]>),
}

/// Seeks a cursor allows: the box parser seeks a few times per box, and a file holds at most
/// one box header per 8 bytes, so a parser past this is going round in circles (`re_mp4`
/// does on some malformed boxes: the fuzz targets found three). Then the cursor fails, and
/// the parse with it.
fn seek_budget(len: u64) -> u64 {
    100_000 + len / 2
}

impl Source {
    /// Fills `buf` from `offset`; an error when the source ends first.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Self::File(f, _) => f.read_exact_at(buf, offset),
            Self::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(buf.len());
                let src = b.get(start..end).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the end")
                })?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::File(_, len) => *len,
            Self::Bytes(b) => b.len() as u64,
        }
    }

    /// A reader from the start, with a budget of seeks (see [`seek_budget`]).
    pub(crate) fn cursor(&self) -> Cursor<'_> {
        Cursor {
            source: self,
            pos: 0,
            seeks_left: seek_budget(self.len()),
        }
    }
}

/// `Read + Seek` over a [`Source`] (its own position: several cursors may read at once).
pub(crate) struct Cursor<'a> {
    source: &'a Source,
    pos: u64,
    seeks_left: u64,
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.source {
            Source::File(f, _) => f.read_at(buf, self.pos)?,
            Source::Bytes(b) => {
                let start = usize::try_from(self.pos).unwrap_or(usize::MAX).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.seeks_left = self.seeks_left.checked_sub(1).ok_or_else(|| {
            std::io::Error::other("the box parser keeps seeking without getting anywhere")
        })?;
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.source.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_and_seek_like_a_file() -> std::io::Result<()> {
        let s = Source::Bytes(Arc::from(&b"0123456789"[..]));
        let mut c = s.cursor();
        let mut buf = [0u8; 4];
        assert_eq!(c.read(&mut buf)?, 4);
        assert_eq!(&buf, b"0123");
        assert_eq!(c.seek(SeekFrom::End(-2))?, 8);
        assert_eq!(c.read(&mut buf)?, 2);
        assert_eq!(c.read(&mut buf)?, 0);
        assert!(c.seek(SeekFrom::Current(-20)).is_err());
        let mut going_round = s.cursor();
        let budget = seek_budget(10);
        for _ in 0..budget {
            going_round.seek(SeekFrom::Start(0))?;
        }
        assert!(
            going_round.seek(SeekFrom::Start(0)).is_err(),
            "out of seeks"
        );
        s.read_exact_at(&mut buf[..3], 7)?;
        assert_eq!(&buf[..3], b"789");
        assert!(s.read_exact_at(&mut buf, 8).is_err());
        assert!(s.read_exact_at(&mut buf, u64::MAX).is_err());
        Ok(())
    }
}
